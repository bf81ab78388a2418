//! `controller-shim run --manifests DIR --envoy-dir OUT` as a user runs it: the real Envoy follows
//! edits, additions and deletions of manifest files within two seconds; broken and dangling
//! manifests are reported without disturbing anything else.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/fixtures.rs"]
mod fixtures;
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fixtures::{fill, fixture};
use testkit::client::{HttpClient, Request};
use testkit::echo::{EchoIdentity, EchoServer};
use testkit::envoy::{Envoy, EnvoyOptions};

/// The shim process; killed when dropped.
struct Shim {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    metrics: SocketAddr,
}

impl Drop for Shim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Shim {
    fn start(dir: &Path, manifests: &Path, out: &Path, extra: &[String]) -> Shim {
        let metrics = SocketAddr::from(([127, 0, 0, 1], testkit::ports::free_port().unwrap()));
        let stdout = dir.join("shim.stdout");
        let stderr = dir.join("shim.stderr");
        let child = Command::new(env!("CARGO_BIN_EXE_controller-shim"))
            .args(["run", "--manifests"])
            .arg(manifests)
            .arg("--envoy-dir")
            .arg(out)
            .args([
                "--metrics-addr",
                &metrics.to_string(),
                "--bind-address",
                "127.0.0.1",
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Shim {
            child,
            stdout,
            stderr,
            metrics,
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = HttpClient::http1(self.metrics)
            .with_timeout(Duration::from_secs(2))
            .send(&Request::get(path))
            .ok()?;
        Some((response.status, response.text()))
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the shim exited with {status}:\n{}", self.stderr());
            }
            if self.get("/readyz").is_some_and(|(s, _)| s == 200) {
                return;
            }
            assert!(Instant::now() < deadline, "never ready:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_output(&self, what: &str, predicate: impl Fn(&str, &str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !predicate(&self.stdout(), &self.stderr()) {
            assert!(
                Instant::now() < deadline,
                "no {what}:\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

const GATEWAY: &str = fixture!("gateway.yaml");

fn services(api: u16, v2: u16) -> String {
    fill(
        fixture!("echo-services.yaml"),
        &[("api_port", &api), ("v2_port", &v2)],
    )
}

fn route(name: &str, host: &str, service: &str) -> String {
    fill(
        fixture!("route.yaml"),
        &[("name", &name), ("hostname", &host), ("service", &service)],
    )
}

/// Who answers `host` (the echo service name), or the status code when nobody does.
fn served_by(addr: SocketAddr, host: &str) -> Result<String, u16> {
    let response = HttpClient::http1(addr)
        .with_timeout(Duration::from_secs(2))
        .send(&Request::get("/hello").with_host(host))
        .map_err(|_| 0u16)?;
    match response.echo() {
        Ok(echo) => Ok(echo.service),
        Err(_) => Err(response.status),
    }
}

/// Waits until `host` is answered as `expected` and returns how long it took.
fn follows(
    addr: SocketAddr,
    host: &str,
    expected: Result<&str, u16>,
    envoy: &Envoy,
    shim: &Shim,
) -> Duration {
    let started = Instant::now();
    loop {
        let seen = served_by(addr, host);
        if seen.as_deref().map_err(|e| *e) == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{host} never became {expected:?} (last {seen:?})\nshim:\n{}\nenvoy:\n{}",
            shim.stderr(),
            envoy.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Echo backends `api` and `api-v2`, the shim running on a manifest directory (the Gateway, the
/// Services, and `web.yaml` holding `web`), and Envoy on the files it wrote.
struct Running {
    _api: EchoServer,
    _v2: EchoServer,
    _dir: tempfile::TempDir,
    manifests: PathBuf,
    shim: Shim,
    envoy: Envoy,
    addr: SocketAddr,
}

impl Running {
    fn start(web: &str) -> Running {
        let api = EchoServer::start(
            EchoIdentity::new("app", "api", "api-0"),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let v2 = EchoServer::start(
            EchoIdentity::new("app", "api-v2", "api-v2-0"),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let manifests = dir.path().join("manifests");
        std::fs::create_dir_all(&manifests).unwrap();
        std::fs::write(manifests.join("gateway.yaml"), GATEWAY).unwrap();
        std::fs::write(
            manifests.join("services.yaml"),
            services(api.addr().port(), v2.addr().port()),
        )
        .unwrap();
        std::fs::write(manifests.join("web.yaml"), web).unwrap();
        let out = dir.path().join("out");
        let ports = testkit::ports::free_ports(2).unwrap();
        let wasm = support::plugin_wasm();
        let mut shim = Shim::start(
            dir.path(),
            &manifests,
            &out,
            &[
                "--port-map".into(),
                format!("80={}", ports[0]),
                "--admin-port".into(),
                ports[1].to_string(),
                "--wasm".into(),
                wasm.display().to_string(),
            ],
        );
        shim.wait_ready();
        let envoy = Envoy::start(EnvoyOptions::new(out.join("infra/gw/bootstrap.yaml"))).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], ports[0]));
        follows(addr, "example.com", Ok("api"), &envoy, &shim);
        Running {
            _api: api,
            _v2: v2,
            _dir: dir,
            manifests,
            shim,
            envoy,
            addr,
        }
    }
}

#[test]
fn envoy_follows_manifest_edits_additions_and_deletions() {
    // Every field bound: the backends and the directory must live to the end of the test.
    let Running {
        _api,
        _v2,
        _dir,
        manifests,
        shim,
        envoy,
        addr,
    } = Running::start(&route("web", "example.com", "api"));

    // Edit: the route now points at api-v2.
    std::fs::write(
        manifests.join("web.yaml"),
        route("web", "example.com", "api-v2"),
    )
    .unwrap();
    let took = follows(addr, "example.com", Ok("api-v2"), &envoy, &shim);
    eprintln!("edit followed in {took:?}");
    assert!(took < Duration::from_secs(2), "edit took {took:?}");

    // Add: a second route in a new file.
    std::fs::write(
        manifests.join("other.yaml"),
        route("other", "other.example.com", "api"),
    )
    .unwrap();
    let took = follows(addr, "other.example.com", Ok("api"), &envoy, &shim);
    eprintln!("addition followed in {took:?}");
    assert!(took < Duration::from_secs(2), "addition took {took:?}");

    // Delete: the file goes, so does the route (the filter answers 404).
    std::fs::remove_file(manifests.join("other.yaml")).unwrap();
    let took = follows(addr, "other.example.com", Err(404), &envoy, &shim);
    eprintln!("deletion followed in {took:?}");
    assert!(took < Duration::from_secs(2), "deletion took {took:?}");
    assert_eq!(served_by(addr, "example.com"), Ok("api-v2".to_owned()));

    // A half-written file (it does not parse) changes nothing; the finished file applies.
    std::fs::write(manifests.join("web.yaml"), "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: web, namespace: app}\nspec:\n  parentRefs: [{name: gw, namespace: in").unwrap();
    shim.wait_output("parse error log", |_, err| {
        err.contains("manifest does not parse")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(served_by(addr, "example.com"), Ok("api-v2".to_owned()));
    std::fs::write(
        manifests.join("web.yaml"),
        route("web", "example.com", "api"),
    )
    .unwrap();
    let took = follows(addr, "example.com", Ok("api"), &envoy, &shim);
    assert!(took < Duration::from_secs(2), "recovery took {took:?}");

    let (_, metrics) = shim.get("/metrics").unwrap();
    assert!(
        metrics.contains("gateway_wasm_pushes_total{target=\"envoy\",result=\"ok\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gateway_wasm_rejected_configs_total{reason=\"manifest\"} 1"),
        "{metrics}"
    );
    assert!(
        shim.stderr().contains("pushed"),
        "one line per push:\n{}",
        shim.stderr()
    );
    assert!(
        shim.stdout()
            .contains("app/web → infra/gw: Accepted=True (Accepted), ResolvedRefs=True"),
        "{}",
        shim.stdout()
    );
}

#[test]
fn broken_and_dangling_manifests_are_reported_and_disturb_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(manifests.join("gateway.yaml"), GATEWAY).unwrap();
    std::fs::write(manifests.join("services.yaml"), services(1, 2)).unwrap();
    std::fs::write(
        manifests.join("web.yaml"),
        route("web", "example.com", "api"),
    )
    .unwrap();
    // A route to a Service that does not exist, one to a Gateway that does not exist, a kind the
    // shim does not read, and a file that is not YAML.
    std::fs::write(
        manifests.join("missing-service.yaml"),
        route("nosvc", "nosvc.example.com", "nope"),
    )
    .unwrap();
    std::fs::write(
        manifests.join("missing-gateway.yaml"),
        route("nogw", "nogw.example.com", "api").replace("name: gw,", "name: ghost,"),
    )
    .unwrap();
    std::fs::write(
        manifests.join("deployment.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: app}\nspec: {}\n",
    )
    .unwrap();
    std::fs::write(manifests.join("broken.yaml"), "kind: [\n").unwrap();
    let out = dir.path().join("out");
    let mut shim = Shim::start(
        dir.path(),
        &manifests,
        &out,
        &["--port-offset".into(), "20000".into()],
    );
    shim.wait_ready();
    shim.wait_output("status lines", |out, _| out.contains("app/nosvc"));
    let stdout = shim.stdout();
    assert!(
        stdout.contains("app/web → infra/gw: Accepted=True (Accepted), ResolvedRefs=True"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "app/nosvc → infra/gw: Accepted=True (Accepted), ResolvedRefs=False (BackendNotFound:"
        ),
        "{stdout}"
    );
    assert!(
        !stdout.contains("nogw"),
        "no controller owns a missing Gateway's status: {stdout}"
    );
    let stderr = shim.stderr();
    assert!(stderr.contains("broken.yaml"), "{stderr}");
    assert!(
        stderr.contains("parentRef Gateway infra/ghost does not exist"),
        "{stderr}"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("status.json")).unwrap()).unwrap();
    assert!(
        report["problems"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.ends_with("broken.yaml")),
        "{report}"
    );
    assert_eq!(
        report["gateways"]["infra/gw"]["listeners"][0]["attachedRoutes"], 2,
        "{report}"
    );
    let ecds = std::fs::read_to_string(out.join("infra/gw/ecds/extension-config.json")).unwrap();
    assert!(
        ecds.contains("example.com") && ecds.contains("nosvc.example.com"),
        "{ecds}"
    );

    // Fixing the broken file clears the problem; the process never stopped.
    std::fs::write(manifests.join("broken.yaml"), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("status.json")).unwrap())
                .unwrap();
        if report["problems"].as_object().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "problem never cleared: {report}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(shim.child.try_wait().unwrap().is_none());
}

/// The `web` route, with a header that tells the backend which edit it is looking at.
fn edited_route(service: &str, edit: usize) -> String {
    format!(
        r#"{}    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{{name: x-edit, value: "{edit}"}}]
"#,
        route("web", "example.com", service)
    )
}

/// Which edit Envoy serves now (the `x-edit` header the backend saw), if any.
fn edit_served(addr: SocketAddr) -> Option<usize> {
    let response = HttpClient::http1(addr)
        .with_timeout(Duration::from_secs(2))
        .send(&Request::get("/hello").with_host("example.com"))
        .ok()?;
    response.echo().ok()?.header_joined("x-edit")?.parse().ok()
}

/// The issue's case: 150 edits 0.12 s apart to one file. The directory source used to wait for a
/// file to hold still for a poll, so nothing was pushed until the writes stopped. Now the shim
/// pushes while the edits go on, and the last edit is served within a second of being written.
#[test]
fn a_file_edited_every_120_ms_is_pushed_during_the_edits_and_settles_within_a_second() {
    let running = Running::start(&edited_route("api", 0));
    let (shim, envoy, addr) = (&running.shim, &running.envoy, running.addr);
    let web = running.manifests.join("web.yaml");
    const PUSHES: &str = "extension_config_discovery.http_filter.gateway-wasm.update_success";
    let pushes_before = envoy.counter(PUSHES).unwrap_or(0);

    // Watch what Envoy serves while the file is edited.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut seen: Vec<(Instant, usize)> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(edit) = edit_served(addr) {
                    seen.push((Instant::now(), edit));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            seen
        })
    };
    const EDITS: usize = 150;
    const APART: Duration = Duration::from_millis(120);
    let started = Instant::now();
    let mut last_written = started;
    for edit in 1..=EDITS {
        let due = started + APART * u32::try_from(edit).unwrap();
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let service = if edit % 2 == 0 { "api" } else { "api-v2" };
        std::fs::write(&web, edited_route(service, edit)).unwrap();
        last_written = Instant::now();
    }
    let pushes_during = envoy.counter(PUSHES).unwrap_or(0) - pushes_before;
    let deadline = last_written + Duration::from_secs(5);
    while edit_served(addr) != Some(EDITS) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = watcher.join().unwrap();

    let served_during: std::collections::BTreeSet<usize> = seen
        .iter()
        .filter(|(at, _)| *at < last_written)
        .map(|(_, edit)| *edit)
        .collect();
    eprintln!(
        "{pushes_during} pushes during {:?} of edits; {} distinct edits served meanwhile",
        last_written - started,
        served_during.len()
    );
    // At the source's bound (read by the second poll, 0.4 s) that is about 40 pushes; a push at
    // least every second would be 18.
    assert!(
        pushes_during >= 15,
        "only {pushes_during} pushes during 18 s of edits\n{}",
        shim.stderr()
    );
    assert!(
        served_during.len() >= 15,
        "Envoy served only edits {served_during:?} while the file changed"
    );
    let final_at = seen
        .iter()
        .find(|(_, edit)| *edit == EDITS)
        .map(|(at, _)| *at)
        .unwrap_or_else(|| panic!("the last edit was never served:\n{}", shim.stderr()));
    let latency = final_at.saturating_duration_since(last_written);
    eprintln!("the last edit was served {latency:?} after it was written");
    assert!(
        latency <= Duration::from_secs(1),
        "the last edit took {latency:?} to be served"
    );
    assert!(
        seen.iter()
            .filter(|(at, _)| *at >= final_at)
            .all(|(_, edit)| *edit == EDITS),
        "once served, the last edit stays"
    );
    assert_eq!(served_by(addr, "example.com"), Ok("api".to_owned()));
    let (_, metrics) = shim.get("/metrics").unwrap();
    let rejected: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gateway_wasm_rejected_configs_total{reason=\"manifest\"} "))
        .map_or(0, |v| v.trim().parse().unwrap());
    assert_eq!(
        rejected, 0,
        "a file caught mid-write was reported as broken"
    );
}
