//! Two `controller-shim run --kube --xds-listen` processes, as `examples/kubernetes-fleet` runs
//! them (two replicas, every one serving xDS, the Lease holder alone writing status), with real
//! Envoys split between them. The Kubernetes API is the fake API server (`support/
//! fake_apiserver.rs`, the only fixture here); the shims, the Envoys and the backends are real.
//!
//! The manifests-mode twin (two replicas on one directory, no Lease) is a scenario of
//! `cargo xtask fleet`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
mod support;
#[path = "support/xds_envoys.rs"]
mod xds_envoys;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use controller_shim::envoy::AdsProtocol;
use fake_apiserver::FakeApiServer;
use serde_json::Value;
use testkit::client::{HttpClient, Request};
use testkit::echo::EchoServer;
use xds_envoys::{echo, eventually, routes_to, start_envoy};

const OURS: &str = "gateway-wasm.dev/controller-shim";

/// Our class, Gateway infra/gw (HTTP on 80), and Services `api` and `api-v2` with EndpointSlices
/// on the echo servers.
fn objects(api: &EchoServer, v2: &EchoServer) -> String {
    let mut text = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: wasm}\n\
         spec: {controllerName: gateway-wasm.dev/controller-shim}\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: infra}\n\
         spec:\n  gatewayClassName: wasm\n  listeners:\n  - {name: http, port: 80, protocol: HTTP}\n",
    );
    for (service, server) in [("api", api), ("api-v2", v2)] {
        text.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {service}, namespace: infra}}\n\
             spec:\n  ports:\n  - {{name: http, port: 8080, targetPort: {port}}}\n\
             ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
             metadata:\n  name: {service}-1\n  namespace: infra\n  labels: {{kubernetes.io/service-name: {service}}}\n\
             addressType: IPv4\nendpoints:\n- addresses: [\"127.0.0.1\"]\n  conditions: {{ready: true}}\n\
             ports:\n- {{name: http, port: {port}, protocol: TCP}}\n",
            port = server.addr().port()
        ));
    }
    text
}

/// HTTPRoute infra/web at `generation`, sending everything to `backend`.
fn route(backend: &str, generation: u64) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
         metadata: {{name: web, namespace: infra, generation: {generation}}}\n\
         spec:\n  parentRefs: [{{name: gw}}]\n  rules:\n  - backendRefs: [{{name: {backend}, port: 8080}}]\n"
    )
}

/// One `controller-shim run --kube` process.
struct Replica {
    child: Child,
    xds: SocketAddr,
    metrics: SocketAddr,
    args: Vec<String>,
    log: PathBuf,
}

impl Replica {
    fn start(identity: &str, api_url: &str, wasm: &Path, dir: &Path) -> Replica {
        let [xds, metrics] = [0, 1]
            .map(|_| SocketAddr::from(([127, 0, 0, 1], testkit::ports::free_port().unwrap())));
        let args: Vec<String> = [
            "run",
            "--kube",
            "--kube-url",
            api_url,
            "--xds-listen",
            &xds.to_string(),
            "--wasm",
            &wasm.display().to_string(),
            "--lease-namespace",
            "gateway-system",
            "--identity",
            identity,
            "--metrics-addr",
            &metrics.to_string(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let log = dir.join(format!("{identity}.log"));
        let mut replica = Replica {
            child: spawn(&args, &log),
            xds,
            metrics,
            args,
            log,
        };
        replica.wait_ready();
        replica
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.get("/readyz").is_none_or(|(status, _)| status != 200) {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "exited:\n{}",
                self.log_text()
            );
            assert!(Instant::now() < deadline, "not ready:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = HttpClient::http1(self.metrics)
            .with_timeout(Duration::from_secs(2))
            .send(&Request::get(path))
            .ok()?;
        Some((response.status, response.text()))
    }

    /// `gateway_wasm_leader` from `/metrics`.
    fn leader(&self) -> Option<bool> {
        let (_, text) = self.get("/metrics")?;
        text.lines()
            .find_map(|l| l.strip_prefix("gateway_wasm_leader "))
            .map(|v| v.trim() == "1")
    }

    /// SIGKILL: no Lease release, no goodbye to the Envoys.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the process again with the same arguments (same xDS address).
    fn restart(&mut self) {
        self.kill();
        self.child = spawn(&self.args, &self.log);
        self.wait_ready();
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(args: &[String], log: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_controller-shim"))
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap()
}

fn lease_holder(server: &FakeApiServer) -> Value {
    server
        .object("leases", "gateway-system", "gateway-wasm-controller-shim")
        .map(|lease| lease["spec"]["holderIdentity"].clone())
        .unwrap_or(Value::Null)
}

/// The generation the route's status says it observed, with our controller name.
fn status_generation(server: &FakeApiServer) -> Option<u64> {
    let route = server.object("httproutes", "infra", "web")?;
    let parent = &route["status"]["parents"][0];
    if parent["controllerName"] != OURS {
        return None;
    }
    parent["conditions"][0]["observedGeneration"].as_u64()
}

fn wait_for(what: &str, timeout: Duration, replicas: &[&Replica], mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {timeout:?}; logs:\n{}",
            replicas
                .iter()
                .map(|r| r.log_text())
                .collect::<Vec<_>>()
                .join("\n----\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serve_their_envoys_and_only_the_lease_holder_writes_status() {
    let wasm = support::plugin_wasm();
    let dir = tempfile::tempdir().unwrap();
    let (api, v2) = (echo("api"), echo("api-v2"));
    let server = FakeApiServer::start().await;
    server.apply_manifests(&objects(&api, &v2));
    server.apply_manifests(&route("api", 1));

    // Replica a first, so that it is the one holding the Lease.
    let mut a = Replica::start("replica-a", &server.url(), &wasm, dir.path());
    wait_for("replica-a leading", Duration::from_secs(20), &[&a], || {
        a.leader() == Some(true)
    });
    let b = Replica::start("replica-b", &server.url(), &wasm, dir.path());
    let (envoy_a, ports_a) = start_envoy(a.xds, AdsProtocol::StateOfTheWorld, "a-0", dir.path());
    let (envoy_b, ports_b) = start_envoy(b.xds, AdsProtocol::Delta, "b-0", dir.path());
    for (envoy, port) in [(&envoy_a, ports_a.http), (&envoy_b, ports_b.http)] {
        eventually(envoy, "routing", Duration::from_secs(60), || {
            routes_to(port, "/switch", "api")
        });
    }
    assert_eq!(lease_holder(&server), "replica-a");
    assert_eq!(b.leader(), Some(false), "replica-b follows");
    wait_for(
        "status from the leader",
        Duration::from_secs(20),
        &[&a, &b],
        || status_generation(&server) == Some(1),
    );

    // A change reaches the Envoys of both replicas; the leader records it.
    server.apply_manifests(&route("api-v2", 2));
    for (envoy, port) in [(&envoy_a, ports_a.http), (&envoy_b, ports_b.http)] {
        eventually(envoy, "the push", Duration::from_secs(20), || {
            routes_to(port, "/switch", "api-v2")
        });
    }
    wait_for(
        "status of generation 2",
        Duration::from_secs(20),
        &[&a, &b],
        || status_generation(&server) == Some(2),
    );
    assert_eq!(b.leader(), Some(false), "replica-b still follows");

    // The leader dies without releasing the Lease. Its Envoy keeps serving its last config; the
    // other replica's Envoy takes the next change, and replica-b takes the Lease over once it has
    // not changed for its duration (15 s) and writes the status nobody else can.
    a.kill();
    std::thread::sleep(Duration::from_secs(1));
    for _ in 0..20 {
        assert!(routes_to(ports_a.http, "/switch", "api-v2"));
    }
    server.apply_manifests(&route("api", 3));
    eventually(
        &envoy_b,
        "the push through replica-b",
        Duration::from_secs(20),
        || routes_to(ports_b.http, "/switch", "api"),
    );
    assert!(
        routes_to(ports_a.http, "/switch", "api-v2"),
        "replica-a's Envoy has no control plane and keeps its last config"
    );
    wait_for(
        "replica-b taking over",
        Duration::from_secs(45),
        &[&b],
        || b.leader() == Some(true) && lease_holder(&server) == "replica-b",
    );
    wait_for(
        "status of generation 3 from replica-b",
        Duration::from_secs(20),
        &[&b],
        || status_generation(&server) == Some(3),
    );

    // Replica-a back: its Envoy reconnects and converges; replica-b keeps the Lease.
    a.restart();
    eventually(
        &envoy_a,
        "convergence after replica-a's restart",
        Duration::from_secs(60),
        || routes_to(ports_a.http, "/switch", "api"),
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(a.leader(), Some(false), "the restarted replica follows");
    assert_eq!(lease_holder(&server), "replica-b");
    assert!(routes_to(ports_b.http, "/switch", "api"));
}
