//! The gRPC unary rows: the same Envoy routing GRPCRoutes natively (the routes Envoy Gateway
//! would generate, [`table::GrpcTable::native_route_config`]), with the gateway-wasm filter, and
//! with the dynamic module, in front of real gRPC backends (testkit's tonic echo servers, one per
//! backend key, h2c clusters rendered by the controller-shim).
//!
//! Each run starts Envoy, makes one real gRPC call per call of the mix with testkit's client and
//! checks the answer against the engine's decision (grpc-status 0 and the echo backend the route
//! names, or the gateway's own UNIMPLEMENTED with no backend reached), then loads it with
//! [`load::run`], which checks the grpc-status and backend of every answer too. A misrouted setup
//! fails the benchmark instead of being measured.

pub mod load;
pub mod table;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use controller_shim::envoy::{BOOTSTRAP_FILE, CLUSTERS_FILE, render, write_files};
use controller_shim::resolution::{BackendTarget, Endpoint};
use testkit::EchoIdentity;
use testkit::grpc::{GrpcClient, GrpcCode, GrpcEchoServer, GrpcRequest};

use crate::report::{self, RunResult};
use crate::run::{Bench, Measured};
use crate::setups::{self, Variant};
use table::{GrpcCall, GrpcExpect, GrpcTable};

/// The `appProtocol` that makes the shim render an HTTP/2 (h2c) cluster (Gateway API GEP-1911).
const H2C: &str = "kubernetes.io/h2c";
const NAMESPACE: &str = "grpc";

/// The echo backend's service name for a backend key (`grpc/echo-0-canary:9000` → `echo-0-canary`).
fn service_of(key: &str) -> &str {
    let rest = key.split_once('/').map_or(key, |(_, r)| r);
    rest.split(':').next().unwrap_or(rest)
}

/// One running echo server per backend key.
pub struct Backends {
    servers: BTreeMap<String, GrpcEchoServer>,
}

impl Backends {
    pub fn start() -> Result<Backends> {
        let mut servers = BTreeMap::new();
        for key in table::all_backends() {
            let service = service_of(&key).to_owned();
            let identity = EchoIdentity::new(NAMESPACE, &service, format!("{service}-pod"));
            let server = GrpcEchoServer::start(identity, SocketAddr::from(([127, 0, 0, 1], 0)))
                .with_context(|| format!("starting the gRPC echo backend {service}"))?;
            servers.insert(key, server);
        }
        Ok(Backends { servers })
    }

    fn requests_seen(&self) -> u64 {
        self.servers
            .values()
            .map(GrpcEchoServer::request_count)
            .sum()
    }

    fn targets(&self) -> BTreeMap<String, BackendTarget> {
        self.servers
            .iter()
            .map(|(key, server)| {
                let target = BackendTarget {
                    namespace: NAMESPACE.to_owned(),
                    service: service_of(key).to_owned(),
                    port: 9000,
                    app_protocol: Some(H2C.to_owned()),
                    endpoints: vec![Endpoint {
                        address: "127.0.0.1".into(),
                        port: server.addr().port(),
                    }],
                };
                (key.clone(), target)
            })
            .collect()
    }
}

/// Writes one setup's files into `dir` and returns the bootstrap: the shim's files for the filter
/// and the dynamic module; for native, the shim's clusters and a static route table.
fn write_setup(
    bench: &Bench<'_>,
    variant: Variant,
    table: &GrpcTable,
    backends: &Backends,
    dir: &Path,
    listen_port: u16,
) -> Result<std::path::PathBuf> {
    let result = setups::shim_result(&table.plugin_config(), backends.targets())?;
    let options = setups::shim_options(
        dir,
        &bench.wasm.plugin,
        listen_port,
        setups::shim_filter(variant, bench.wasm),
    );
    let files = render(&result, &options).context("rendering the shim's files")?;
    match variant {
        Variant::Plugin | Variant::Dynamic => {
            write_files(dir, &files).context("writing the shim's files")?;
            Ok(dir.join(BOOTSTRAP_FILE))
        }
        Variant::Native => {
            let clusters = files
                .get(CLUSTERS_FILE)
                .ok_or_else(|| anyhow!("the shim rendered no clusters file"))?;
            setups::write_file(&dir.join(CLUSTERS_FILE), clusters.as_bytes())?;
            // Inline routes (no pushes are timed here); their clusters arrive later, from CDS.
            let mut routes = table.native_route_config("bench-grpc-native");
            if let Some(o) = routes.as_object_mut() {
                o.insert("validate_clusters".into(), false.into());
            }
            let hcm = setups::connection_manager(("route_config", routes), Vec::new());
            let path = dir.join("bootstrap.json");
            setups::write_json(&path, &setups::bootstrap(variant, dir, listen_port, hcm))?;
            Ok(path)
        }
        Variant::Floor | Variant::DynamicFloor => {
            bail!("the gRPC rows run the routing setups only")
        }
    }
}

fn grpc_request(call: &GrpcCall) -> GrpcRequest {
    let mut request =
        GrpcRequest::echo(testkit::grpc::EchoMethod::Echo).with_authority(call.authority.clone());
    request.path = call.path.clone();
    for (name, value) in &call.metadata {
        request = request.with_metadata(name.clone(), value.clone());
    }
    request
}

/// One real call through Envoy; `Ok(())` when the answer is what `expect` says.
fn check_call(
    addr: SocketAddr,
    backends: &Backends,
    call: &GrpcCall,
    expect: &GrpcExpect,
) -> Result<std::result::Result<(), String>> {
    let before = backends.requests_seen();
    let answer = GrpcClient::h2c(addr)
        .with_timeout(Duration::from_secs(5))
        .echo(&grpc_request(call))?;
    let reached = backends.requests_seen() - before;
    let served_by = answer
        .response
        .as_ref()
        .and_then(|r| r.assertions.as_ref())
        .and_then(|a| a.context.as_ref())
        .map(|c| c.service_name.clone());
    let ok = match expect {
        GrpcExpect::Forward { backend, .. } => {
            answer.code() == GrpcCode::OK
                && reached == 1
                && served_by.as_deref() == Some(service_of(backend))
        }
        GrpcExpect::Unimplemented => answer.code() == GrpcCode::UNIMPLEMENTED && reached == 0,
    };
    Ok(if ok {
        Ok(())
    } else {
        Err(format!(
            "{} {}{}: grpc-status {} ({}), answered by {served_by:?}, {reached} backend request(s); \
             expected {expect:?}",
            call.label,
            call.authority,
            call.path,
            answer.code(),
            answer.status.message,
        ))
    })
}

/// The mix as the load loop sends it.
fn prepare(calls: &[GrpcCall], expect: &[GrpcExpect]) -> Result<Vec<load::Prepared>> {
    calls
        .iter()
        .zip(expect)
        .map(|(call, expected)| {
            let (status, backend) = match expected {
                GrpcExpect::Forward { backend, .. } => (0, Some(service_of(backend).to_owned())),
                GrpcExpect::Unimplemented => (12, None),
            };
            load::Prepared::new(&call.authority, &call.path, &call.metadata, status, backend)
        })
        .collect()
}

/// What the gRPC rows need besides the [`Bench`].
pub struct GrpcRun<'a> {
    pub bench: &'a Bench<'a>,
    pub backends: &'a Backends,
}

impl GrpcRun<'_> {
    /// One measured run of `variant` on `table`.
    pub fn run_one(
        &self,
        variant: Variant,
        table: &GrpcTable,
        calls: &[GrpcCall],
        expect: &[GrpcExpect],
        round: usize,
    ) -> Result<RunResult> {
        let bench = self.bench;
        let dir = tempfile::Builder::new()
            .prefix(&format!("gateway-bench-grpc-{}-", variant.name()))
            .tempdir()?;
        let listen_port = testkit::free_port()?;
        let bootstrap = write_setup(
            bench,
            variant,
            table,
            self.backends,
            dir.path(),
            listen_port,
        )?;
        let addr = SocketAddr::from(([127, 0, 0, 1], listen_port));
        let started = Instant::now();
        let log_path = dir.path().join("envoy.log");
        let envoy = bench.start_envoy(&bootstrap, &log_path)?;
        // Ready means listening; the routes may still be on their way (ECDS).
        let (first, first_expect) = calls
            .first()
            .zip(expect.first())
            .context("the gRPC mix is empty")?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while !check_call(addr, self.backends, first, first_expect).is_ok_and(|r| r.is_ok()) {
            if Instant::now() > deadline {
                bail!(
                    "no routed gRPC answer within 120 s of starting Envoy:\n{}",
                    envoy.log_tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let startup_ms = started.elapsed().as_secs_f64() * 1000.0;
        for (call, expected) in calls.iter().zip(expect) {
            if let Err(problem) = check_call(addr, self.backends, call, expected)? {
                bail!("{}: {problem}", variant.name());
            }
        }
        let rss_kib = crate::sys::rss_kib(envoy.pid()).unwrap_or(0);
        let mix = prepare(calls, expect)?;
        let args = bench.args;
        if args.warmup > 0 {
            load::run(
                addr,
                &mix,
                args.connections,
                Duration::from_secs(args.warmup),
            )?;
        }
        let window = crate::sys::CpuWindow::open(envoy.pid());
        let (measured, problem) = load::run(
            addr,
            &mix,
            args.connections,
            Duration::from_secs(args.duration),
        )?;
        let usage = window.close(envoy.pid(), measured.requests);
        let rss_after_load_kib = crate::sys::rss_kib(envoy.pid()).unwrap_or(0);
        if measured.requests == 0 || measured.status_errors > 0 || measured.socket_errors > 0 {
            bail!(
                "{}: {} calls, {} wrong answers, {} failed connections under load; first: {}",
                variant.name(),
                measured.requests,
                measured.status_errors,
                measured.socket_errors,
                problem.unwrap_or_else(|| "none".into())
            );
        }
        let log_name = format!("grpc-{}-{}-{round}.log", table.len(), variant.name());
        let measured = Measured {
            variant,
            routes: table.len(),
            round,
            startup_ms,
            load: measured,
            usage,
            rss_kib,
            rss_after_load_kib,
            push_ms: Vec::new(),
        };
        bench.finish_run(envoy, measured, &log_path, &log_name, &table.revision())
    }
}

/// Every gRPC row: for each GRPCRoute table size and round, every routing setup among `variants`
/// in order. Pins this process (the echo backends and the load loop) to the load generator's CPU.
/// Returns the runs and how many were repeated because Envoy was starved of CPU.
pub fn run_rows(bench: &Bench<'_>, variants: &[Variant]) -> Result<(Vec<RunResult>, u32)> {
    let variants = routing_variants(variants);
    if let Some(cpu) = bench.load_cpu {
        crate::sys::pin_process(std::process::id(), cpu)?;
    }
    let backends = Backends::start()?;
    crate::progress(&format!(
        "gRPC: {} tonic echo backends on 127.0.0.1 (this process, with the load loop)",
        table::all_backends().len()
    ));
    let run = GrpcRun {
        bench,
        backends: &backends,
    };
    let (mut runs, mut repeated) = (Vec::new(), 0);
    let args = bench.args;
    for &size in &args.grpc_sizes {
        let table = GrpcTable::generate(size);
        let calls = table.calls();
        let expect = table.expectations(&calls)?;
        for round in 0..args.rounds {
            for &variant in &variants {
                crate::progress(&format!(
                    "gRPC · {size} GRPCRoutes · round {}/{} · {}",
                    round + 1,
                    args.rounds,
                    variant.name()
                ));
                let once = || run.run_one(variant, &table, &calls, &expect, round);
                // --quick only proves the harness: no repeats (a debug build's load loop, not
                // Envoy, is the bottleneck there).
                let measured = if args.quick {
                    once().map(|result| (result, 0))
                } else {
                    bench.repeat_while_starved(once)
                };
                let (result, again) = measured
                    .with_context(|| format!("gRPC {} with {size} GRPCRoutes", variant.name()))?;
                repeated += again;
                crate::progress(&format!(
                    "  {:.0} calls/s · {:.1} µs Envoy CPU/call · p50 {:.2} ms · p99 {:.2} ms · \
                     Envoy CPU {:.0} %",
                    result.requests_per_second,
                    result.envoy_cpu_us_per_request,
                    result.load.p50_us / 1000.0,
                    result.load.p99_us / 1000.0,
                    result.envoy_cpu * 100.0,
                ));
                runs.push(result);
            }
        }
    }
    Ok((runs, repeated))
}

/// The gRPC setups among `variants`: the routing ones (the floors forward everything to one
/// backend, which the per-call backend check would reject).
fn routing_variants(variants: &[Variant]) -> Vec<Variant> {
    variants.iter().copied().filter(|v| v.routes()).collect()
}

/// The Markdown section of the gRPC rows (its own section: a `--grpc-only` run writes only it).
pub fn markdown(context: &report::Context, runs: &[RunResult], envoy_cpu_index: usize) -> String {
    let mut out = String::new();
    if runs.is_empty() {
        return out;
    }
    let mix: Vec<&str> = GrpcTable::generate(10)
        .calls()
        .iter()
        .map(|c| c.label)
        .collect();
    let _ = writeln!(out, "Command: `{}`\n", context.command);
    let _ = writeln!(
        out,
        "Machine: {} ({} cores), Linux {}, {}. {}. Load generator: gateway-bench's in-process \
         HTTP/2 loop (h2 crate, h2c with prior knowledge), {} connections with one unary call in \
         flight each, {} s measured after {} s of warm-up, {} round(s), setups alternating native → \
         plugin → dynamic in every round; every answer's `grpc-status` and answering echo backend \
         checked. Backends: {} tonic echo servers (testkit), h2c clusters rendered by the \
         controller-shim. Load average (1 min) {:.2} before, {:.2} after (the whole benchmark); {} \
         run(s) repeated because other processes took Envoy's CPU.\n",
        context.cpu_model,
        context.cores,
        context.kernel,
        context.envoy_version,
        context.pinning.replace(
            "wrk (-t1) and the upstream",
            "the load loop and the echo backends"
        ),
        context.connections,
        context.duration_s,
        context.warmup_s,
        context.rounds,
        table::all_backends().len(),
        context.load_before,
        context.load_after,
        context.repeated_runs,
    );
    let _ = writeln!(out, "Call mix (cycled in order): {}.\n", mix.join(", "));
    let _ = writeln!(
        out,
        "| GRPCRoutes | setup | calls/s (median) | calls/s (min–max) | Envoy CPU µs/call | p50 ms | p99 ms | RSS MiB | start → routed ms | on_configure ms per VM | Envoy CPU (steal) | load-gen CPU |"
    );
    let _ = writeln!(
        out,
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut by: BTreeMap<(usize, &str), Vec<&RunResult>> = BTreeMap::new();
    for run in runs {
        by.entry((run.routes, run.variant.as_str()))
            .or_default()
            .push(run);
    }
    let mut sizes: Vec<usize> = runs.iter().map(|r| r.routes).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let summary = |size: usize, variant: &str| {
        by.get(&(size, variant))
            .map(|runs| report::summarize(runs, envoy_cpu_index))
    };
    for &size in &sizes {
        for variant in ["native", "plugin", "dynamic"] {
            let Some(s) = summary(size, variant) else {
                continue;
            };
            let _ = writeln!(
                out,
                "| {} | {variant} | {} | {}–{} | {} | {} | {} | {} | {} | {} | {} ({}) | {} |",
                report::thousands(Some(size as f64)),
                report::thousands(s.rps),
                report::thousands(s.rps_min),
                report::thousands(s.rps_max),
                report::num(s.cpu_us, 1),
                report::num(s.p50_ms, 2),
                report::num(s.p99_ms, 2),
                report::num(s.rss_mib, 1),
                report::num(s.startup_ms, 0),
                report::num(s.on_configure_ms, 1),
                report::percent(s.envoy_cpu),
                report::percent(s.envoy_steal),
                report::percent(s.other_cpu),
            );
        }
    }
    let _ = writeln!(
        out,
        "\n| GRPCRoutes | plugin/native calls/s | native/plugin CPU per call | dynamic/native calls/s | native/dynamic CPU per call | plugin/native p99 |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|");
    for &size in &sizes {
        let native = summary(size, "native").unwrap_or_default();
        let plugin = summary(size, "plugin").unwrap_or_default();
        let dynamic = summary(size, "dynamic").unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            report::thousands(Some(size as f64)),
            report::num(report::ratio(plugin.rps, native.rps), 2),
            report::num(report::ratio(native.cpu_us, plugin.cpu_us), 2),
            report::num(report::ratio(dynamic.rps, native.rps), 2),
            report::num(report::ratio(native.cpu_us, dynamic.cpu_us), 2),
            report::num(report::ratio(plugin.p99_ms, native.p99_ms), 2),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn backend_keys_name_their_echo_service() {
        assert_eq!(service_of("grpc/echo-0-canary:9000"), "echo-0-canary");
        assert_eq!(service_of("echo-1:9000"), "echo-1");
    }
}
