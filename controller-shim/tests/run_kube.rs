//! `controller-shim run --kube` as a process against the fake API server: Envoy files written,
//! status patched by the Lease holder, `/readyz` and `/metrics`, and SIGTERM releasing the Lease.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/fixtures.rs"]
mod fixtures;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use fake_apiserver::FakeApiServer;
use fixtures::fixture;
use testkit::client::{HttpClient, Request};

const OURS: &str = "gateway-wasm.dev/controller-shim";

fn seed(server: &FakeApiServer) {
    server.apply_manifests(fixture!("kube-run.yaml"));
}

async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let response = HttpClient::http1(addr)
        .with_timeout(Duration::from_secs(2))
        .send_async(&Request::get(path))
        .await
        .ok()?;
    Some((response.status, response.text()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_kube_writes_files_and_status_and_releases_the_lease_on_sigterm() {
    let server = FakeApiServer::start().await;
    seed(&server);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let metrics = SocketAddr::from(([127, 0, 0, 1], testkit::ports::free_port().unwrap()));
    let stderr = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_controller-shim"))
        .args(["run", "--kube", "--kube-url", &server.url(), "--envoy-dir"])
        .arg(&out)
        .args([
            "--lease-namespace",
            "gateway-system",
            "--identity",
            "replica-a",
            "--metrics-addr",
            &metrics.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&stderr).unwrap_or_default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ready = get(metrics, "/readyz").await.is_some_and(|(s, _)| s == 200);
        let patched = server.patches().iter().filter(|p| p.status == 200).count() >= 3;
        if ready && patched {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "exited:\n{}", log());
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready or no status:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(out.join("infra/gw/bootstrap.yaml").is_file());
    let route = server.object("httproutes", "infra", "web").unwrap();
    assert_eq!(route["status"]["parents"][0]["controllerName"], OURS);
    let lease = server
        .object("leases", "gateway-system", "gateway-wasm-controller-shim")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "replica-a");
    let (_, text) = get(metrics, "/metrics").await.unwrap();
    assert!(text.contains("gateway_wasm_leader 1"), "{text}");
    assert!(
        text.contains("gateway_wasm_status_patches_total{kind=\"HTTPRoute\",result=\"ok\"} 1"),
        "{text}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit}:\n{}", log());
    let lease = server
        .object("leases", "gateway-system", "gateway-wasm-controller-shim")
        .unwrap();
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "released: {lease}"
    );
}
