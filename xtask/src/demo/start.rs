//! Starting the tour's processes, each waited for until it answers: the echo backends, the
//! controller-shim on the copied manifests, and Envoy on the bootstrap the shim wrote.

use super::*;

/// One echo backend per quickstart Service (the gRPC one for `rpc/grpc-echo`), on the port its
/// EndpointSlice names.
pub(crate) fn start_echo_backends(
    processes: &mut Processes,
    echo: &Path,
    logs: &Path,
) -> anyhow::Result<()> {
    let every = BACKENDS
        .into_iter()
        .map(|backend| (backend, false))
        .chain([(GRPC_BACKEND, true)]);
    for ((namespace, service, port), grpc) in every {
        let mut command = Command::new(echo);
        if grpc {
            command.arg("--grpc");
        }
        command
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--namespace", namespace, "--service", service])
            .arg("--pod")
            .arg(format!("{service}-0"));
        let kind = if grpc { " --grpc" } else { "" };
        processes.spawn(
            &format!("echo-backend{kind} {namespace}/{service}"),
            command,
            &logs.join(format!("echo-{service}.log")),
        )?;
    }
    for (namespace, service, port) in BACKENDS.into_iter().chain([GRPC_BACKEND]) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_for(
            &format!("echo backend {namespace}/{service}"),
            Duration::from_secs(10),
            processes,
            || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
        )?;
    }
    step_line("echo backends (echo-backend)");
    println!(
        "{}",
        BACKENDS
            .iter()
            .map(|(ns, svc, port)| format!("{ns}/{svc} :{port}"))
            .chain([format!(
                "{}/{} :{} (gRPC)",
                GRPC_BACKEND.0, GRPC_BACKEND.1, GRPC_BACKEND.2
            )])
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// `controller-shim run --manifests` on the copy, waited for until it wrote the Envoy bootstrap
/// and answers `/readyz`; returns the bootstrap's path.
pub(crate) fn start_shim(
    processes: &mut Processes,
    root: &Path,
    binaries: &Binaries,
    work: &WorkDir,
) -> anyhow::Result<PathBuf> {
    let mut command = Command::new(&binaries.shim);
    command
        .arg("run")
        .arg("--manifests")
        .arg(&work.manifests)
        .arg("--envoy-dir")
        .arg(&work.envoy_dir)
        .arg("--wasm")
        .arg(&binaries.wasm)
        .arg("--port-map")
        .arg(format!("{GATEWAY_PORT}={LISTEN_PORT}"))
        .args(["--bind-address", "127.0.0.1"])
        .arg("--admin-port")
        .arg(ADMIN_PORT.to_string())
        .arg("--metrics-addr")
        .arg(format!("127.0.0.1:{METRICS_PORT}"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    processes.spawn("controller-shim", command, &work.shim_log())?;
    let metrics = SocketAddr::from(([127, 0, 0, 1], METRICS_PORT));
    let bootstrap = work.envoy_dir.join("infra/quickstart/bootstrap.yaml");
    let took = wait_for(
        "controller-shim",
        Duration::from_secs(20),
        processes,
        || {
            bootstrap.is_file()
                && http_get(metrics, "localhost", "/readyz", &[]).is_ok_and(|r| r.status == 200)
        },
    )?;
    step_line("controller-shim run --manifests");
    println!(
        "ready in {} ms; wrote {}",
        took.as_millis(),
        shown(root, &bootstrap.with_file_name(""))
    );
    Ok(bootstrap)
}

/// The route status lines the shim printed after its first round (it prints them right after;
/// they get up to 3 s to appear).
pub(crate) fn shim_status_lines(log: &Path) -> Vec<String> {
    let mut statuses = status_lines(log);
    let deadline = Instant::now() + Duration::from_secs(3);
    while statuses.len() < ROUTE_PARENTS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
        statuses = status_lines(log);
    }
    statuses
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

/// Envoy on the shim's bootstrap, waited for until its admin says LIVE and the Gateway port routes
/// a request; returns its process id (the hot-reload step checks it never restarts).
pub(crate) fn start_envoy(
    processes: &mut Processes,
    envoy_bin: &Path,
    bootstrap: &Path,
    work: &WorkDir,
) -> anyhow::Result<u32> {
    let mut command = Command::new(envoy_bin);
    command
        .arg("-c")
        .arg(bootstrap)
        .args(["--use-dynamic-base-id", "--concurrency", "2"])
        .args([
            "--log-level",
            "info",
            "--file-flush-interval-msec",
            "100",
            "--log-path",
        ])
        .arg(work.envoy_log());
    let envoy_pid = processes.spawn("envoy", command, &work.logs.join("envoy.stdout.log"))?;
    let admin = SocketAddr::from(([127, 0, 0, 1], ADMIN_PORT));
    let envoy = SocketAddr::from(([127, 0, 0, 1], LISTEN_PORT));
    let took = wait_for("Envoy", Duration::from_secs(60), processes, || {
        http_get(admin, "localhost", "/ready", &[]).is_ok_and(|r| r.text() == "LIVE")
            && http_get(envoy, "www.example.com", "/about", &[]).is_ok_and(|r| r.status == 200)
    })?;
    step_line(&format!("envoy {ENVOY_VERSION} with the filter"));
    println!(
        "ready in {} ms; Gateway port {GATEWAY_PORT} → 127.0.0.1:{LISTEN_PORT}, admin http://127.0.0.1:{ADMIN_PORT}/",
        took.as_millis()
    );
    Ok(envoy_pid)
}
