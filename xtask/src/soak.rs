//! `cargo xtask soak`: the demo topology (examples/quickstart: four echo backends, the
//! controller-shim in directory mode, Envoy with the filter) under steady load while one route file
//! is edited N times, with an Envoy hot restart after a third of the edits and a controller-shim
//! restart after two thirds.
//!
//! The edited file is an HTTPRoute for `soak.example.com` with two rules: `/soak`, whose backend
//! every valid edit switches (site-v1 ↔ site-v2), and `/steady`, never edited. Every tenth edit is a
//! YAML syntax error (the shim rejects the file and keeps its last good objects: no push), every
//! twentieth makes the `/soak` rule invalid (a `ReplacePrefixMatch` on an `Exact` match; the rule
//! is dropped and the route is PartiallyInvalid, so `/soak` answers 404 until the next valid edit:
//! an intended 404). Each edit waits for its effect (a push with the new backend serving, or the
//! rejection counted) before the next. Files are replaced by rename, as editors and ConfigMap
//! volumes do.
//!
//! Counted: requests, answers that were not what the configuration meant (a wrong status or the
//! wrong backend; 404s on `/soak` while its rule was dropped are counted apart, as intended),
//! socket errors, stale keep-alive retries, pushes, rejected configs, and the RSS of Envoy and the
//! shim before and after. It fails on any unintended answer, socket error or edit that did not
//! take effect. Results: target/soak/report.json; logs in target/soak/logs/.

mod load;
mod report;
mod topology;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::demo::http::http_get;
use crate::demo::procs::{Processes, copy_dir, wait_for};
use crate::demo::setup::{SHIM_AND_ECHO_BUILD, cargo_build, ensure_envoy, ensure_wasm_target};
use load::{Expect, Load, Target};
use report::{Report, RssSpan, print_report};
use topology::{Topology, free_port, rss_kb};

const PUSHES: &str = "extension_config_discovery.http_filter.gateway-wasm.update_success";
const REJECTED: &str = "gateway_wasm_rejected_configs_total{reason=\"manifest\"}";
/// After an edit took effect on one Envoy worker, how long another worker may still answer with
/// the previous configuration (each worker swaps its filter configuration on its own).
const WORKER_SWITCH_GRACE: Duration = Duration::from_secs(1);
/// The longest one edit may take to show.
const EDIT_TIMEOUT: Duration = Duration::from_secs(15);
const EDITED_FILE: &str = "soak/route.yaml";
/// The quickstart's echo ports, rewritten to free ones in the copy.
const QUICKSTART_PORTS: [u16; 4] = [18081, 18082, 18083, 18084];
const BACKENDS: [(&str, &str); 4] = [
    ("store", "store-v1"),
    ("store", "store-v2"),
    ("site", "site-v1"),
    ("site", "site-v2"),
];

/// Soak the demo topology: many route edits under load, with restarts
///
/// Runs examples/quickstart (echo backends, the controller-shim in directory mode, Envoy with the
/// filter) on free loopback ports, sends steady load, and edits one route file --pushes times:
/// valid edits switch a rule's backend, every tenth edit is a YAML syntax error and every
/// twentieth an invalid rule (dropped: its 404s are intended). Envoy is hot-restarted after a
/// third of the edits and the controller-shim restarted after two thirds. Reports requests,
/// unintended answers, socket errors, pushes, rejected configs and memory; fails on any
/// unintended answer, socket error or edit that did not take effect.
/// Results: target/soak/report.json; logs: target/soak/logs/.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct SoakArgs {
    /// How many edits (each valid or invalid-rule edit is one push).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(10..))]
    pub pushes: u32,
    /// Keep-alive connections sending the load.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub connections: u32,
    /// Requests per second, all connections together.
    #[arg(long, value_name = "N", default_value_t = 400)]
    pub rate: u32,
    /// Use the controller-shim and echo-backend binaries already in target/debug (as `cargo xtask
    /// test` leaves them) instead of building them.
    #[arg(long)]
    pub prebuilt: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    /// Switches `/soak` to this backend.
    Valid(&'static str),
    SyntaxError,
    /// Drops the `/soak` rule.
    InvalidRule,
}

fn edit_for(n: u32, last_backend: &'static str) -> Edit {
    if n.is_multiple_of(20) {
        Edit::InvalidRule
    } else if n.is_multiple_of(10) {
        Edit::SyntaxError
    } else if last_backend == "site-v1" {
        Edit::Valid("site-v2")
    } else {
        Edit::Valid("site-v1")
    }
}

fn route_yaml(edit: Edit, n: u32) -> String {
    let soak_rule = match edit {
        Edit::Valid(backend) => format!(
            "  - name: edited\n    matches: [{{path: {{type: PathPrefix, value: /soak}}}}]\n    backendRefs: [{{name: {backend}, port: 8080}}]\n"
        ),
        // ReplacePrefixMatch needs a PathPrefix match: the resolver drops this rule.
        Edit::InvalidRule => "  - name: edited\n    matches: [{path: {type: Exact, value: /soak}}]\n    filters:\n    - {type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}}\n    backendRefs: [{name: site-v1, port: 8080}]\n".to_owned(),
        Edit::SyntaxError => "  - name: edited\n    matches: [{path: {type: PathPrefix, value: /soak}\n".to_owned(),
    };
    format!(
        "# cargo xtask soak, edit {n}\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: soak, namespace: site}}\nspec:\n  parentRefs: [{{name: quickstart, namespace: infra}}]\n  hostnames: [soak.example.com]\n  rules:\n{soak_rule}  - name: steady\n    matches: [{{path: {{type: PathPrefix, value: /steady}}}}]\n    backendRefs: [{{name: site-v1, port: 8080}}]\n"
    )
}

/// Replaces a file by writing a sibling and renaming it over.
fn replace(path: &Path, content: &str) -> anyhow::Result<()> {
    let temp = path.with_file_name(".soak-edit.tmp");
    std::fs::write(&temp, content).with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("renaming onto {}", path.display()))
}

pub fn run(args: &SoakArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let root = crate::steps::root();
    let target = crate::demo::target_dir(&root);
    println!(
        "gateway-wasm soak: {} edits under load, one Envoy hot restart, one shim restart",
        args.pushes
    );
    ensure_wasm_target()?;
    let envoy_bin = ensure_envoy(&root)?;
    cargo_build(
        &root,
        "build the filter",
        &crate::steps::wasm_build_args(&["plugin"]),
    )?;
    if !args.prebuilt {
        cargo_build(
            &root,
            "build controller-shim and echo-backend",
            &SHIM_AND_ECHO_BUILD,
        )?;
    }
    let echo_bin = target.join("debug/echo-backend");
    let shim_bin = target.join("debug/controller-shim");
    for binary in [&echo_bin, &shim_bin] {
        if !binary.exists() {
            bail!(
                "{} is missing; run without --prebuilt to build it",
                binary.display()
            );
        }
    }
    let work = target.join("soak");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("clearing {}", work.display()))?;
    }
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs)?;
    let manifests = work.join("manifests");
    copy_dir(&root.join("examples/quickstart"), &manifests)?;
    let backend_ports: Vec<u16> = (0..4).map(|_| free_port()).collect::<anyhow::Result<_>>()?;
    for team in ["site", "store"] {
        let file = manifests.join(team).join("services.yaml");
        let mut text = std::fs::read_to_string(&file)?;
        for (from, to) in QUICKSTART_PORTS.iter().zip(&backend_ports) {
            text = text.replace(&from.to_string(), &to.to_string());
        }
        std::fs::write(&file, text)?;
    }
    std::fs::create_dir_all(manifests.join("soak"))?;
    let edited = manifests.join(EDITED_FILE);
    replace(&edited, &route_yaml(Edit::Valid("site-v1"), 0))?;

    let localhost = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let mut topology = Topology {
        root: root.clone(),
        work: work.clone(),
        logs: logs.clone(),
        shim_bin,
        envoy_bin,
        manifests,
        envoy_dir: work.join("envoy"),
        wasm: target.join("wasm32-wasip1/wasm/gateway_wasm.wasm"),
        listen: localhost(free_port()?),
        admin: localhost(free_port()?),
        metrics: localhost(free_port()?),
        processes: Processes::new()?,
        shim_pid: 0,
        shim_starts: 0,
        envoy_pid: 0,
        envoy_epoch: 0,
    };
    for ((namespace, service), port) in BACKENDS.iter().zip(&backend_ports) {
        let mut command = Command::new(&echo_bin);
        command
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--namespace", namespace, "--service", service])
            .arg("--pod")
            .arg(format!("{service}-0"));
        topology
            .processes
            .spawn(service, command, &logs.join(format!("echo-{service}.log")))?;
    }
    topology.start_shim()?;
    topology.start_envoy()?;
    let listen = topology.listen;
    wait_for(
        "routing",
        Duration::from_secs(30),
        &mut topology.processes,
        || http_get(listen, "soak.example.com", "/soak", &[]).is_ok_and(|r| r.status == 200),
    )?;
    println!(
        "  running: Envoy on {listen}, admin {}, shim metrics {}",
        topology.admin, topology.metrics
    );

    let targets = [
        Target {
            host: "store.example.com",
            path: "/cart",
            expect: Expect::Backend("store/store-v1"),
        },
        Target {
            host: "www.example.com",
            path: "/about",
            expect: Expect::Backend("site/site-v1"),
        },
        Target {
            host: "www.example.com",
            path: "/store/cart",
            expect: Expect::Backend("store/store-v1"),
        },
        Target {
            host: "soak.example.com",
            path: "/soak",
            expect: Expect::Edited,
        },
        Target {
            host: "soak.example.com",
            path: "/steady",
            expect: Expect::Backend("site/site-v1"),
        },
    ];
    let load = Load::start(listen, &targets, args.connections, args.rate);
    let result = edit_loop(&mut topology, args);
    let tally = load.finish();
    let stopped = topology.processes.stop();
    let (mut report, invalid_windows) = result?;

    // 404s on /soak are intended while the invalid edit is live (and briefly after, while the
    // other worker switches); everything else that was not the expected 200 is not.
    let misses = tally.misses.lock().map(|m| m.clone()).unwrap_or_default();
    for miss in &misses {
        let intended = matches!(miss.target.expect, Expect::Edited)
            && miss.status == 404
            && invalid_windows
                .iter()
                .any(|(from, to)| miss.at >= *from && miss.at <= *to + WORKER_SWITCH_GRACE);
        if intended {
            report.intended_404 += 1;
        } else {
            report.unintended += 1;
            if report.unintended_examples.len() < 10 {
                report.unintended_examples.push(format!(
                    "{}{}: {}{} at {:.1} s",
                    miss.target.host,
                    miss.target.path,
                    miss.status,
                    miss.backend
                        .as_ref()
                        .map(|b| format!(" from {b}"))
                        .unwrap_or_default(),
                    miss.at.duration_since(started).as_secs_f64()
                ));
            }
        }
    }
    report.requests = tally.requests.load(std::sync::atomic::Ordering::Relaxed);
    report.ok = tally.ok.load(std::sync::atomic::Ordering::Relaxed);
    report.stale_keepalive_retries = tally
        .stale_retries
        .load(std::sync::atomic::Ordering::Relaxed);
    let socket_errors = tally
        .socket_errors
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
    report.socket_errors = socket_errors.len() as u64;
    report.socket_error_examples = socket_errors
        .iter()
        .take(10)
        .map(|(at, why)| format!("{why} at {:.1} s", at.duration_since(started).as_secs_f64()))
        .collect();
    report.seconds = started.elapsed().as_secs_f64();
    print_report(&report, &topology.root, &work);
    println!("stopped the {stopped} processes the soak started");
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(work.join("report.json"), json + "\n")?;
    if report.unintended > 0 || report.socket_errors > 0 || !report.edits_not_applied.is_empty() {
        bail!(
            "soak failed: {} unintended answers, {} socket errors, {} edits not applied (logs in {})",
            report.unintended,
            report.socket_errors,
            report.edits_not_applied.len(),
            logs.display()
        );
    }
    Ok(())
}

/// From an invalid-rule edit being written to the next valid edit serving.
type Window = (Instant, Instant);

/// Waits until `done` holds, checking the processes; `false` after [`EDIT_TIMEOUT`].
fn wait_effect(
    topology: &mut Topology,
    mut done: impl FnMut(&Topology) -> bool,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + EDIT_TIMEOUT;
    loop {
        if done(topology) {
            return Ok(true);
        }
        topology.processes.check_running()?;
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sample(topology: &Topology, process: &str) -> u64 {
    let pid = if process == "envoy" {
        topology.envoy_pid
    } else {
        topology.shim_pid
    };
    rss_kb(pid).unwrap_or(0)
}

fn edit_loop(topology: &mut Topology, args: &SoakArgs) -> anyhow::Result<(Report, Vec<Window>)> {
    let edits = args.pushes;
    let envoy_restart = edits / 3;
    let shim_restart = edits * 2 / 3;
    // Memory is compared over stretches of one process's life, once it is warm (20 edits in).
    let warm = 20.min(envoy_restart / 2);
    let mut report = Report {
        edits,
        envoy_restarted_at_edit: envoy_restart,
        shim_restarted_at_edit: shim_restart,
        ..Report::default()
    };
    let mut windows: Vec<Window> = Vec::new();
    let mut open_window: Option<Instant> = None;
    let mut last_backend = "site-v1";
    let mut pushes_seen = topology
        .envoy_pushes()
        .context("reading Envoy's push counter")?;
    let mut rejected_seen = topology.rejected().context("reading the shim's metrics")?;
    let mut rss_start: Vec<(String, u32, u64)> = Vec::new();
    let started = Instant::now();
    for n in 1..=edits {
        if n == warm || n == envoy_restart + warm || n == shim_restart + warm {
            for process in ["envoy", "controller-shim"] {
                if !rss_start.iter().any(|(p, _, _)| p == process) {
                    rss_start.push((process.to_owned(), n, sample(topology, process)));
                }
            }
        }
        let edit = edit_for(n, last_backend);
        let written = Instant::now();
        replace(&topology.manifests.join(EDITED_FILE), &route_yaml(edit, n))?;
        let applied = match edit {
            Edit::Valid(backend) => {
                report.valid_edits += 1;
                wait_effect(topology, |t| {
                    t.envoy_pushes().is_some_and(|p| p > pushes_seen)
                        && t.soak_answer().as_deref() == Ok(backend)
                })?
            }
            Edit::InvalidRule => {
                report.invalid_rules += 1;
                wait_effect(topology, |t| {
                    t.envoy_pushes().is_some_and(|p| p > pushes_seen) && t.soak_answer() == Err(404)
                })?
            }
            Edit::SyntaxError => {
                report.syntax_errors += 1;
                wait_effect(topology, |t| {
                    t.rejected().is_some_and(|r| r > rejected_seen)
                })?
            }
        };
        if !applied {
            report.edits_not_applied.push(format!(
                "edit {n} ({edit:?}): no effect within {EDIT_TIMEOUT:?}"
            ));
        }
        match edit {
            Edit::Valid(backend) => {
                last_backend = backend;
                if let Some(from) = open_window.take() {
                    windows.push((from, Instant::now()));
                }
            }
            Edit::InvalidRule => {
                open_window.get_or_insert(written);
            }
            Edit::SyntaxError => {}
        }
        if let Some(pushes) = topology.envoy_pushes() {
            if edit != Edit::SyntaxError && pushes > pushes_seen {
                report.pushes += 1;
            }
            pushes_seen = pushes;
        }
        if let Some(rejected) = topology.rejected() {
            report.rejected_configs += rejected.saturating_sub(rejected_seen);
            rejected_seen = rejected;
        }
        if n.is_multiple_of(50) || n == edits {
            println!(
                "  {n:>5}/{edits} edits, {} pushes, {} rejected, {:.0} s",
                report.pushes,
                report.rejected_configs,
                started.elapsed().as_secs_f64()
            );
        }
        let restart = if n == envoy_restart {
            Some("envoy")
        } else if n == shim_restart {
            Some("controller-shim")
        } else {
            None
        };
        if let Some(process) = restart {
            close_span(topology, &mut report, &mut rss_start, process, n);
            let took = Instant::now();
            if process == "envoy" {
                topology.start_envoy()?;
                pushes_seen = topology
                    .envoy_pushes()
                    .context("reading the new Envoy's pushes")?;
            } else {
                let pid = topology.shim_pid;
                let status = Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status()?;
                if !status.success() {
                    bail!("could not signal the controller-shim ({pid})");
                }
                topology.processes.retire(pid, Duration::from_secs(10));
                topology.start_shim()?;
                rejected_seen = topology
                    .rejected()
                    .context("reading the new shim's metrics")?;
            }
            println!(
                "  {process} restarted after edit {n} in {:.1} s",
                took.elapsed().as_secs_f64()
            );
        }
    }
    if let Some(from) = open_window {
        windows.push((from, Instant::now()));
    }
    for process in ["envoy", "controller-shim"] {
        close_span(topology, &mut report, &mut rss_start, process, edits);
    }
    Ok((report, windows))
}

/// Ends the memory stretch of `process` that started at its warm-up.
fn close_span(
    topology: &Topology,
    report: &mut Report,
    starts: &mut Vec<(String, u32, u64)>,
    process: &str,
    at: u32,
) {
    if let Some(index) = starts.iter().position(|(p, _, _)| p == process) {
        let (process, from_edit, start_kb) = starts.remove(index);
        report.rss.push(RssSpan {
            end_kb: sample(topology, &process),
            process,
            from_edit,
            to_edit: at,
            start_kb,
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::topology::counter;
    use super::*;

    #[test]
    fn edits_alternate_backends_with_a_syntax_error_every_tenth_and_an_invalid_rule_every_twentieth()
     {
        let mut last = "site-v1";
        let mut kinds = Vec::new();
        for n in 1..=40 {
            let edit = edit_for(n, last);
            if let Edit::Valid(backend) = edit {
                assert_ne!(backend, last, "edit {n} must change the backend");
                last = backend;
            }
            kinds.push(edit);
        }
        assert_eq!(kinds.iter().filter(|k| **k == Edit::SyntaxError).count(), 2);
        assert_eq!(kinds.iter().filter(|k| **k == Edit::InvalidRule).count(), 2);
        assert_eq!(kinds[9], Edit::SyntaxError);
        assert_eq!(kinds[19], Edit::InvalidRule);
    }

    #[test]
    fn the_edited_route_is_what_the_shim_expects() {
        let valid = route_yaml(Edit::Valid("site-v2"), 3);
        assert!(valid.contains("backendRefs: [{name: site-v2, port: 8080}]"));
        assert!(valid.contains("hostnames: [soak.example.com]"));
        let invalid = route_yaml(Edit::InvalidRule, 20);
        assert!(invalid.contains("type: Exact") && invalid.contains("ReplacePrefixMatch"));
        let broken = route_yaml(Edit::SyntaxError, 10);
        assert!(
            broken.contains("value: /soak}\n"),
            "an unclosed flow mapping"
        );
    }

    #[test]
    fn counters_are_read_from_envoy_and_prometheus_listings() {
        assert_eq!(counter(&format!("{PUSHES}: 42\n"), PUSHES), Some(42));
        assert_eq!(
            counter(&format!("# TYPE x counter\n{REJECTED} 3\n"), REJECTED),
            Some(3)
        );
        assert_eq!(counter("other 1\n", REJECTED), None);
    }
}
