//! `gateway-fleet`: one controller-shim feeding N Envoys over xDS, on loopback, with the filter
//! pulled from a real OCI registry; every scenario of issue 14 checked on every Envoy, and timed.
//!
//! 1. every Envoy routes (half of them on state-of-the-world ADS, half on delta);
//! 2. route pushes reach all of them (push → effect per Envoy, p50/p99 across the fleet);
//! 3. a listener added to the Gateway serves on every Envoy, none restarted;
//! 4. a rotated certificate is served by every Envoy, none restarted;
//! 5. the shim killed: every Envoy keeps serving; restarted: they reconnect and converge;
//! 6. a filter release that refuses every configuration, pushed under the tag the shim follows:
//!    every Envoy NACKs it, the report and `/metrics` say so, traffic keeps flowing; the tag moved
//!    back, every Envoy converges;
//! 7. the shim's memory per connected Envoy;
//! 8. a second shim replica on the same manifests with Envoys of its own (`replicas`): both
//!    halves serve the same routes, a push reaches all through both replicas, the second replica
//!    killed leaves its Envoys serving, restarted they reconnect and converge.
//!
//! `cargo xtask fleet` runs it with 20 Envoys (docs/benchmarks.md has the numbers);
//! `cargo xtask test` with 4 (two of each ADS variant). Exits non-zero when a scenario fails.

mod checks;
mod replicas;
mod topology;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use testkit::certs::CertificateAuthority;

use checks::{backend, https_with, metric, millis, percentile, wait_all, wait_in_sync};
use topology::{Manifests, Published, REJECTING_MODULE_WAT, Shim, pids};

#[derive(Parser)]
#[command(
    name = "gateway-fleet",
    about = "One controller-shim, N Envoys over xDS: every fleet scenario, checked and timed"
)]
struct Args {
    /// How many Envoys (`--concurrency 1` each).
    #[arg(long, default_value_t = 20)]
    envoys: usize,
    /// Route pushes to time.
    #[arg(long, default_value_t = 10)]
    pushes: usize,
    /// The filter module [default: target/wasm32-wasip1/wasm/gateway_wasm.wasm, built if missing].
    #[arg(long)]
    wasm: Option<PathBuf>,
    /// The controller-shim binary [default: next to this one].
    #[arg(long)]
    shim: Option<PathBuf>,
    /// Also write the report (Markdown) here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the work directory (logs of the shim and every Envoy).
    #[arg(long)]
    keep: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("gateway-fleet: FAILED: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn step(text: &str) {
    eprintln!("==> {text}");
}

fn shim_binary(args: &Args) -> Result<PathBuf> {
    if let Some(path) = &args.shim {
        return Ok(path.clone());
    }
    let me = std::env::current_exe()?;
    let path = me
        .parent()
        .map(|d| d.join("controller-shim"))
        .context("locating the controller-shim binary")?;
    if !path.exists() {
        bail!(
            "{} is missing: `cargo build -p controller-shim` (or pass --shim)",
            path.display()
        );
    }
    Ok(path)
}

fn run(args: &Args) -> Result<String> {
    if args.envoys == 0 {
        bail!("--envoys must be at least 1");
    }
    let started = Instant::now();
    let shim_binary = shim_binary(args)?;
    let wasm = match &args.wasm {
        Some(path) => path.clone(),
        None => testkit::wasm::plugin_wasm()?,
    };
    let module = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
    testkit::envoy::ensure_envoy()?;
    let work = tempfile::Builder::new()
        .prefix("gateway-fleet-")
        .tempdir()?;
    let (dir, _work) = if args.keep {
        let dir = work.keep();
        eprintln!("work directory (kept): {}", dir.display());
        (dir, None)
    } else {
        (work.path().to_path_buf(), Some(work))
    };

    step("registry, backends, manifests, controller-shim");
    let published = Published::start(&module)?;
    let (api, v2) = topology::backends()?;
    let first_ca = CertificateAuthority::new("fleet CA 1")?;
    let second_ca = CertificateAuthority::new("fleet CA 2")?;
    let manifests = Manifests::write(&dir.join("manifests"), &api, &v2, &first_ca)?;
    let mut shim = Shim::start(&shim_binary, &dir, &manifests.dir, &published.reference())?;
    std::thread::sleep(Duration::from_millis(500));
    let rss_alone = shim.rss_kib()?;

    step(&format!(
        "{} Envoys from `controller-shim bootstrap`",
        args.envoys
    ));
    let envoys_started = Instant::now();
    let members = topology::start_envoys(&shim_binary, shim.xds, &dir, "envoy", args.envoys)?;
    let serving = wait_all(
        &members,
        envoys_started,
        Duration::from_secs(120),
        "routing",
        |m| backend(m.ports.http).as_deref() == Some("api"),
    )?;
    let all_serving = serving.iter().max().copied().unwrap_or_default();
    wait_in_sync(&shim, &members, Duration::from_secs(30))?;
    std::thread::sleep(Duration::from_millis(500));
    let rss_fleet = shim.rss_kib()?;
    let pids_before = pids(&members);

    step(&format!("{} route pushes", args.pushes));
    let mut push_samples = Vec::new();
    for i in 0..args.pushes {
        let target = if i % 2 == 0 { "api-v2" } else { "api" };
        let pushed = Instant::now();
        manifests.set_route(target)?;
        push_samples.extend(wait_all(
            &members,
            pushed,
            Duration::from_secs(30),
            "a route push",
            |m| backend(m.ports.http).as_deref() == Some(target),
        )?);
    }
    let last_backend = if args.pushes % 2 == 1 {
        "api-v2"
    } else {
        "api"
    };

    step("a listener added to the Gateway");
    let added = Instant::now();
    manifests.set_gateway(true)?;
    let listener = wait_all(
        &members,
        added,
        Duration::from_secs(60),
        "the new listener",
        |m| backend(m.ports.extra).as_deref() == Some(last_backend),
    )?;

    step("a certificate rotated");
    let rotated = Instant::now();
    manifests.set_certificate(&second_ca)?;
    let certificate = wait_all(
        &members,
        rotated,
        Duration::from_secs(60),
        "the new certificate",
        |m| https_with(m.ports.https, &second_ca),
    )?;
    if members.iter().any(|m| https_with(m.ports.https, &first_ca)) {
        bail!("an Envoy still presents the old certificate");
    }

    step("the controller-shim killed, the route changed meanwhile, the shim restarted");
    shim.kill();
    std::thread::sleep(Duration::from_secs(1));
    wait_all(
        &members,
        Instant::now(),
        Duration::from_secs(5),
        "serving without the shim",
        |m| backend(m.ports.http).as_deref() == Some(last_backend),
    )?;
    let next_backend = if last_backend == "api" {
        "api-v2"
    } else {
        "api"
    };
    manifests.set_route(next_backend)?;
    let restarted = Instant::now();
    shim.restart()?;
    let converged = wait_all(
        &members,
        restarted,
        Duration::from_secs(90),
        "convergence after the restart",
        |m| backend(m.ports.http).as_deref() == Some(next_backend),
    )?;

    step("a filter release that refuses every configuration, under the followed tag");
    let nacks_before = metric(&shim, "gateway_wasm_xds_nacks_total{type=\"ECDS\"}").unwrap_or(0.0);
    let bad = wat::parse_str(REJECTING_MODULE_WAT)?;
    published.publish(&bad)?;
    let bad_pushed = Instant::now();
    // Each Envoy is asked for a route on every poll until its NACK is reported; one poll that
    // does not reach the previous backend fails the run.
    let failed_polls = AtomicUsize::new(0);
    let nacked = wait_all(
        &members,
        bad_pushed,
        Duration::from_secs(120),
        "the NACK of the bad release",
        |m| {
            if backend(m.ports.http).as_deref() != Some(next_backend) {
                failed_polls.fetch_add(1, Ordering::Relaxed);
            }
            reported_nack(&shim.report, &m.name)
        },
    )?;
    let failed_polls = failed_polls.into_inner();
    if failed_polls > 0 {
        bail!(
            "{failed_polls} requests did not reach {next_backend} while the bad release was NACKed"
        );
    }
    let nacks =
        metric(&shim, "gateway_wasm_xds_nacks_total{type=\"ECDS\"}").unwrap_or(0.0) - nacks_before;
    #[allow(clippy::cast_precision_loss)]
    if nacks < members.len() as f64 {
        bail!(
            "/metrics counts {nacks} ECDS NACKs for {} Envoys",
            members.len()
        );
    }
    published.publish(&module)?;
    let recovered_at = Instant::now();
    wait_in_sync(&shim, &members, Duration::from_secs(60))
        .context("the fleet did not converge on the good release again")?;
    let recovered = recovered_at.elapsed();
    wait_all(
        &members,
        Instant::now(),
        Duration::from_secs(10),
        "routing after the recovery",
        |m| backend(m.ports.http).as_deref() == Some(next_backend),
    )?;

    step(&format!(
        "a second controller-shim replica with {} Envoys of its own",
        replicas::ENVOYS
    ));
    let (replica, _) = replicas::run(
        &shim_binary,
        &dir,
        &manifests,
        &published.reference(),
        &shim,
        &members,
        next_backend,
    )?;

    if pids(&members) != pids_before {
        bail!("an Envoy restarted during the run");
    }
    let report = report(&ReportInput {
        members: members.len(),
        delta: members.iter().filter(|m| m.delta).count(),
        all_serving,
        push_samples: &push_samples,
        pushes: args.pushes,
        listener: &listener,
        certificate: &certificate,
        converged: &converged,
        nacked: &nacked,
        recovered,
        rss_alone,
        rss_fleet,
        replica: &replica,
        took: started.elapsed(),
    });
    if let Some(out) = &args.out {
        std::fs::write(out, &report).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(report)
}

/// Whether the status report lists a NACK of the extension config by `node`.
fn reported_nack(report: &Path, node: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(report) else {
        return false;
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    value
        .pointer("/xds/nacks")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|nacks| {
            nacks.iter().any(|n| {
                n.get("node").and_then(serde_json::Value::as_str) == Some(node)
                    && n.get("type").and_then(serde_json::Value::as_str) == Some("ECDS")
            })
        })
}

struct ReportInput<'a> {
    members: usize,
    delta: usize,
    all_serving: Duration,
    push_samples: &'a [Duration],
    pushes: usize,
    listener: &'a [Duration],
    certificate: &'a [Duration],
    converged: &'a [Duration],
    nacked: &'a [Duration],
    recovered: Duration,
    rss_alone: u64,
    rss_fleet: u64,
    replica: &'a replicas::ReplicaTimes,
    took: Duration,
}

fn report(input: &ReportInput<'_>) -> String {
    let max = |samples: &[Duration]| samples.iter().max().copied().unwrap_or_default();
    let per_envoy = input.rss_fleet.saturating_sub(input.rss_alone) / input.members.max(1) as u64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Fleet: one controller-shim, {} Envoys (`--concurrency 1`; {} state of the world, {} delta), \
         filter pulled from a local registry; {} cores; run took {:.0} s.\n",
        input.members,
        input.members - input.delta,
        input.delta,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        input.took.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| scenario | result (every Envoy checked) |\n|---|---|"
    );
    let _ = writeln!(
        out,
        "| all Envoys started and routing | {} after the first start |",
        millis(input.all_serving)
    );
    let _ = writeln!(
        out,
        "| route push → effect ({} pushes × {} Envoys) | p50 {}, p99 {}, max {} |",
        input.pushes,
        input.members,
        millis(percentile(input.push_samples, 50.0)),
        millis(percentile(input.push_samples, 99.0)),
        millis(max(input.push_samples))
    );
    let _ = writeln!(
        out,
        "| listener added to the Gateway → served | p50 {}, max {}; no restart |",
        millis(percentile(input.listener, 50.0)),
        millis(max(input.listener))
    );
    let _ = writeln!(
        out,
        "| certificate rotated → served | p50 {}, max {}; no restart |",
        millis(percentile(input.certificate, 50.0)),
        millis(max(input.certificate))
    );
    let _ = writeln!(
        out,
        "| shim killed | every Envoy kept serving its last config |\n\
         | shim restarted (route changed meanwhile) → converged | p50 {}, max {} |",
        millis(percentile(input.converged, 50.0)),
        millis(max(input.converged))
    );
    let _ = writeln!(
        out,
        "| release refusing every config → NACKed and reported | every Envoy within {}, traffic kept on the previous one; good release back → in sync within {} |",
        millis(max(input.nacked)),
        millis(input.recovered)
    );
    let _ = writeln!(
        out,
        "| shim memory (RSS) | {} KiB alone, {} KiB with the fleet: {} KiB per connected Envoy |",
        input.rss_alone, input.rss_fleet, per_envoy
    );
    let replica = input.replica;
    let _ = writeln!(
        out,
        "| second shim replica, same manifests, {} Envoys of its own | routing {} after their start; \
         push through both replicas → effect on all {} Envoys p50 {}, max {}; replica killed: its \
         Envoys kept serving while the other half took a push; restarted → converged p50 {}, max {} \
         (scenario: {:.0} s) |",
        replicas::ENVOYS,
        millis(max(&replica.serving)),
        replica.pushed.len(),
        millis(percentile(&replica.pushed, 50.0)),
        millis(max(&replica.pushed)),
        millis(percentile(&replica.converged, 50.0)),
        millis(max(&replica.converged)),
        replica.took.as_secs_f64()
    );
    out
}
