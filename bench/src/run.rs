//! One measured run: start Envoy with one setup, check that every request of the mix is routed
//! where the engine says, load it with wrk, time route pushes, read Envoy's memory and the filter's
//! `on_configure` times.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use testkit::client::{HttpClient, Request};
use testkit::envoy::{Envoy, EnvoyOptions};

use crate::load::LoadResult;
use crate::report::RunResult;
use crate::setups::{Setup, Variant, WasmFiles};
use crate::tables::{BenchRequest, Expect, Table};
use crate::{RunArgs, load, setups, sys, upstream};

pub(crate) struct Bench<'a> {
    pub(crate) args: &'a RunArgs,
    pub(crate) wasm: &'a WasmFiles,
    pub(crate) envoy_bin: &'a Path,
    pub(crate) upstream: &'a upstream::Upstream,
    pub(crate) envoy_cpu: Option<usize>,
    pub(crate) load_cpu: Option<usize>,
    pub(crate) out_dir: &'a Path,
}

fn send(addr: SocketAddr, request: &BenchRequest) -> Result<u16> {
    let mut r = Request::get(request.path.clone()).with_host(request.host.clone());
    for (name, value) in &request.headers {
        r = r.with_header(name.clone(), value.clone());
    }
    let response = HttpClient::http1(addr)
        .with_timeout(Duration::from_secs(5))
        .send(&r)?;
    Ok(response.status)
}

/// `cluster.<name>.upstream_rq_total` for every cluster, by stat name.
fn upstream_totals(envoy: &Envoy) -> Result<BTreeMap<String, u64>> {
    let text = envoy.admin_get("/stats?format=json&filter=upstream_rq_total$")?;
    testkit::envoy::parse_stats_json(&text)
}

fn cluster_stat(cluster: &str) -> String {
    format!("cluster.{}.upstream_rq_total", cluster.replace(':', "_"))
}

/// What one run measured while its Envoy was up; [`Bench::finish_run`] turns it into a row.
pub(crate) struct Measured {
    pub(crate) variant: Variant,
    /// The table size.
    pub(crate) routes: usize,
    pub(crate) round: usize,
    pub(crate) startup_ms: f64,
    pub(crate) load: LoadResult,
    pub(crate) usage: sys::CpuUsage,
    pub(crate) rss_kib: u64,
    pub(crate) rss_after_load_kib: u64,
    pub(crate) push_ms: Vec<f64>,
}

/// A run in which Envoy got less of its CPU than this is run again (up to `--retries` times).
const MIN_ENVOY_CPU: f64 = 0.9;

impl Bench<'_> {
    /// [`Bench::run_one`], repeated (up to `--retries` times) while Envoy got less than 90 % of
    /// its CPU; returns the last result and how many runs were repeated.
    pub(crate) fn run_measured(
        &self,
        variant: Variant,
        table: &Table,
        requests: &[BenchRequest],
        expect: &[Expect],
        round: usize,
    ) -> Result<(RunResult, u32)> {
        self.repeat_while_starved(|| self.run_one(variant, table, requests, expect, round))
    }

    /// Runs `run`, again (up to `--retries` times) while Envoy got less than 90 % of its CPU;
    /// returns the last result and how many runs were repeated.
    pub(crate) fn repeat_while_starved(
        &self,
        mut run: impl FnMut() -> Result<RunResult>,
    ) -> Result<(RunResult, u32)> {
        let mut attempt = 0;
        loop {
            let result = run()?;
            // Envoy saturates its CPU; when it got much less, other processes took that CPU from
            // it (a shared machine) and the run says little about Envoy.
            if result.envoy_cpu >= MIN_ENVOY_CPU || attempt >= self.args.retries {
                return Ok((result, attempt));
            }
            attempt += 1;
            crate::progress(&format!(
                "  Envoy had only {:.0} % of its CPU (other processes ran there): running again \
                 ({attempt}/{})",
                result.envoy_cpu * 100.0,
                self.args.retries
            ));
        }
    }

    /// Keeps Envoy's log next to the results as `logs/<name>` (the run's directory goes away).
    pub(crate) fn keep_log(&self, log_path: &Path, name: &str) -> Result<()> {
        let logs = self.out_dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let _ = std::fs::copy(log_path, logs.join(name));
        Ok(())
    }

    /// Starts Envoy (`--concurrency 1`) with `bootstrap`, logging to `log_path`, pinned to its CPU.
    pub(crate) fn start_envoy(&self, bootstrap: &Path, log_path: &Path) -> Result<Envoy> {
        let envoy = Envoy::start(EnvoyOptions {
            log_path: Some(log_path.to_path_buf()),
            log_level: self.args.envoy_log_level.clone(),
            concurrency: 1,
            ready_timeout: Duration::from_secs(180),
            binary: Some(self.envoy_bin.to_path_buf()),
            ..EnvoyOptions::new(bootstrap)
        })?;
        if let Some(cpu) = self.envoy_cpu {
            sys::pin_process(envoy.pid(), cpu)?;
        }
        Ok(envoy)
    }

    pub(crate) fn run_one(
        &self,
        variant: Variant,
        table: &Table,
        requests: &[BenchRequest],
        expect: &[Expect],
        round: usize,
    ) -> Result<RunResult> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("gateway-bench-{}-", variant.name()))
            .tempdir()?;
        let listen_port = testkit::free_port()?;
        let setup = setups::write_setup(
            variant,
            table,
            dir.path(),
            self.wasm,
            listen_port,
            self.upstream.addr.port(),
        )?;
        let addr = SocketAddr::from(([127, 0, 0, 1], setup.listen_port));
        let started = Instant::now();
        // Envoy buffers its log file; it is complete once Envoy has exited.
        let log_path = dir.path().join("envoy.log");
        let envoy = self.start_envoy(&setup.bootstrap, &log_path)?;
        // Ready means listening; the routes may still be on their way (RDS, ECDS).
        let first = requests.first().context("the request mix is empty")?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if send(addr, first).is_ok_and(|s| s == 200) {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "no routed response within 120 s of starting Envoy:\n{}",
                    envoy.log_tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let startup_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.verify(&envoy, addr, variant, table, requests, expect)?;
        let rss_kib = sys::rss_kib(envoy.pid()).unwrap_or(0);

        let script = dir.path().join("mix.lua");
        std::fs::write(&script, load::lua_script(requests))?;
        if self.args.warmup > 0 {
            load::run_wrk(
                addr,
                &script,
                self.args.connections,
                Duration::from_secs(self.args.warmup),
                self.load_cpu,
            )?;
        }
        let window = sys::CpuWindow::open(envoy.pid());
        let load = load::run_wrk(
            addr,
            &script,
            self.args.connections,
            Duration::from_secs(self.args.duration),
            self.load_cpu,
        )?;
        let usage = window.close(envoy.pid(), load.requests);
        let rss_after_load_kib = sys::rss_kib(envoy.pid()).unwrap_or(0);
        check_load(variant, &load, expect)?;

        let mut push_ms = Vec::new();
        if variant.routes() {
            for k in 1..=self.args.pushes {
                push_ms.push(self.push(&setup, &envoy, addr, table, k)?);
            }
        }
        let log_name = format!("{}-{}-{round}.log", table.len(), variant.name());
        let measured = Measured {
            variant,
            routes: table.len(),
            round,
            startup_ms,
            load,
            usage,
            rss_kib,
            rss_after_load_kib,
            push_ms,
        };
        self.finish_run(envoy, measured, &log_path, &log_name, &table.revision())
    }

    /// The tail every measured run shares: stops Envoy, reads the filter's compile times for
    /// `revision` out of its log (setups that run the engine), keeps the log as `logs/<log_name>`
    /// and builds the row.
    pub(crate) fn finish_run(
        &self,
        envoy: Envoy,
        measured: Measured,
        log_path: &Path,
        log_name: &str,
        revision: &str,
    ) -> Result<RunResult> {
        envoy.shutdown()?;
        let (on_configure_us, push_on_configure_us) = if measured.variant.runs_the_engine() {
            compile_times(log_path, revision)
        } else {
            (Vec::new(), Vec::new())
        };
        self.keep_log(log_path, log_name)?;
        let usage = measured.usage;
        Ok(RunResult {
            routes: measured.routes,
            variant: measured.variant.name().to_owned(),
            round: measured.round,
            requests_per_second: measured.load.requests_per_second(),
            load: measured.load,
            rss_kib: measured.rss_kib,
            rss_after_load_kib: measured.rss_after_load_kib,
            envoy_cpu: usage.envoy_cpu,
            envoy_cpu_us_per_request: usage.envoy_cpu_us_per_request,
            cpu_busy: usage.cpu_busy,
            cpu_steal: usage.cpu_steal,
            startup_ms: measured.startup_ms,
            push_ms: measured.push_ms,
            on_configure_us,
            push_on_configure_us,
        })
    }

    /// Sends every request of the mix once and checks the status and the cluster it reached
    /// against the engine's decision (the floor forwards everything to its one cluster).
    fn verify(
        &self,
        envoy: &Envoy,
        addr: SocketAddr,
        variant: Variant,
        table: &Table,
        requests: &[BenchRequest],
        expect: &[Expect],
    ) -> Result<()> {
        let floor_cluster = table.backends().into_iter().next().unwrap_or_default();
        for (request, expected) in requests.iter().zip(expect) {
            let before = upstream_totals(envoy)?;
            let status = send(addr, request)?;
            let after = upstream_totals(envoy)?;
            let reached: Vec<&String> = after
                .iter()
                .filter(|(name, value)| before.get(*name).copied().unwrap_or(0) < **value)
                .map(|(name, _)| name)
                .collect();
            let what = format!("{} ({}{})", request.label, request.host, request.path);
            let ok = match (variant, expected) {
                (Variant::Floor | Variant::DynamicFloor, _) => {
                    status == 200 && reached == [&cluster_stat(&floor_cluster)]
                }
                (_, Expect::NotFound) => status == 404 && reached.is_empty(),
                (_, Expect::Forward { clusters, .. }) => {
                    status == 200
                        && reached.len() == 1
                        && clusters.iter().any(|c| reached.contains(&&cluster_stat(c)))
                }
            };
            if !ok {
                bail!(
                    "{}: {what} answered {status} via {reached:?}; expected {expected:?}",
                    variant.name()
                );
            }
        }
        Ok(())
    }

    /// Pushes the table with push `k` and returns the milliseconds from the rename to the first
    /// response that shows the new route.
    fn push(
        &self,
        setup: &Setup,
        envoy: &Envoy,
        addr: SocketAddr,
        table: &Table,
        k: u32,
    ) -> Result<f64> {
        let (pushed, probe) = table.with_push(k);
        let status = send(addr, &probe)?;
        if status != 404 {
            bail!(
                "push probe {} answered {status} before the push",
                probe.path
            );
        }
        let (path, content) =
            setups::push_file(setup, &pushed, self.wasm, self.upstream.addr.port())?;
        // The push is the rename, as the shim does it: time from there.
        let staged = atomic_file::stage(&path, content.as_bytes(), atomic_file::Access::Public)?;
        let pushed_at = Instant::now();
        staged.commit()?;
        let deadline = pushed_at + Duration::from_secs(60);
        loop {
            if send(addr, &probe).is_ok_and(|s| s == 200) {
                return Ok(pushed_at.elapsed().as_secs_f64() * 1000.0);
            }
            if Instant::now() > deadline {
                bail!("push {k} not in effect after 60 s:\n{}", envoy.log_tail(30));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The load must have seen exactly the mix's share of 404s and no socket errors; anything else
/// means requests were misrouted or failed under load.
fn check_load(variant: Variant, load: &load::LoadResult, expect: &[Expect]) -> Result<()> {
    if load.requests == 0 {
        bail!("wrk completed no request");
    }
    if load.socket_errors > 0 {
        bail!("{} socket errors under load", load.socket_errors);
    }
    let missing = expect.iter().filter(|e| **e == Expect::NotFound).count();
    let expected = if variant.routes() && !expect.is_empty() {
        missing as f64 / expect.len() as f64
    } else {
        0.0
    };
    let seen = load.status_errors as f64 / load.requests as f64;
    if (seen - expected).abs() > 0.01 {
        bail!(
            "{:.1} % of responses were errors under load, expected {:.1} % (the mix's 404s)",
            seen * 100.0,
            expected * 100.0
        );
    }
    Ok(())
}

/// The filter's `compiled in N µs` times from Envoy's log: for `revision` (the initial
/// configuration), and for every other revision (pushes).
pub(crate) fn compile_times(log: &Path, revision: &str) -> (Vec<u64>, Vec<u64>) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let (mut initial, mut pushes) = (Vec::new(), Vec::new());
    for line in text
        .lines()
        .filter(|l| l.contains("accepted config revision"))
    {
        let Some(micros) = line
            .split_once("compiled in ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if line.contains(&format!("\"{revision}\"")) {
            initial.push(micros);
        } else {
            pushes.push(micros);
        }
    }
    (initial, pushes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn reads_compile_times_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("envoy.log");
        std::fs::write(
            &log,
            "[info][wasm] wasm log gateway-wasm gateway-wasm: accepted config revision \"bench-10-push-0\" for \
             gateway infra/bench: 1 listeners, 10 routes, 24 rules, 24 matches, 20 upstreams, 9000 bytes, compiled in 812 µs\n\
             [info][wasm] wasm log gateway-wasm gateway-wasm: accepted config revision \"bench-10-push-1\" for \
             gateway infra/bench: 1 listeners, 10 routes, 25 rules, 25 matches, 20 upstreams, 9100 bytes, compiled in 790 µs\n\
             [info][wasm] wasm log gateway-wasm gateway-wasm: accepted config revision \"bench-10-push-1\" for \
             gateway infra/bench: 1 listeners, 10 routes, 25 rules, 25 matches, 20 upstreams, 91000 bytes \
             (gzip: 3000, inflated in 200 µs), compiled in 950 µs\n\
             [info][main] something else\n",
        )
        .unwrap();
        assert_eq!(
            compile_times(&log, "bench-10-push-0"),
            (vec![812], vec![790, 950])
        );
    }

    #[test]
    fn checks_the_share_of_404s() {
        let load = |errors| load::LoadResult {
            requests: 700,
            duration_us: 1,
            status_errors: errors,
            socket_errors: 0,
            p50_us: 0.0,
            p90_us: 0.0,
            p99_us: 0.0,
            mean_us: 0.0,
        };
        let expect = Table::generate(10)
            .expectations(&Table::generate(10).requests())
            .unwrap();
        assert!(check_load(Variant::Plugin, &load(200), &expect).is_ok());
        assert!(check_load(Variant::Plugin, &load(300), &expect).is_err());
        assert!(check_load(Variant::Floor, &load(0), &expect).is_ok());
        assert!(check_load(Variant::Floor, &load(200), &expect).is_err());
    }
}
