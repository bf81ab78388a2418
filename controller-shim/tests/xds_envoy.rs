//! The xDS server feeding real Envoy 1.40 processes started from the bootstrap
//! `controller-shim bootstrap` prints, both ADS variants: routing, listeners and certificates that
//! change without a restart, a config the filter rejects (NACKed, reported, traffic keeps the last
//! ACKed version), a new module switched to without a failed request, and a server that goes away
//! and comes back.
//!
//! The server runs in the test process (the library's `XdsServer`), so a test can hand it a
//! configuration the shim's own engine check would never let through: that is how a config the
//! filter rejects reaches Envoy here. The fleet run (`cargo xtask fleet`) drives the shim binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/fixtures.rs"]
mod fixtures;
mod support;
#[path = "support/tls.rs"]
mod tls;
#[path = "support/xds_envoys.rs"]
mod xds_envoys;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use controller_shim::envoy::{AdsProtocol, EnvoyOptions};
use controller_shim::metrics::Metrics;
use controller_shim::resolution::{BackendTarget, Endpoint, GatewayResult, TlsCertificate};
use controller_shim::xds::{XdsServer, XdsTarget};
use fixtures::{fill, fixture};
use serde_json::Value;
use testkit::certs::CertificateAuthority;
use testkit::client::{HttpClient, Request, TlsConfig};
use testkit::echo::EchoServer;
use testkit::envoy::Envoy;
use xds_envoys::{
    Ports, echo, eventually, gateway_key, get, localhost, routes_to, service, start_envoy,
};

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The e2e route table, with `switch` as the backend of `/switch`; `listeners` keeps only those
/// listener names (all four when empty).
fn config(switch: &str, listeners: &[&str]) -> String {
    let text = fill(
        fixture!("plugin-config-e2e.json"),
        &[
            ("switch", &switch),
            (
                "revision",
                &format!("switch-to-{switch}-{}", listeners.join("+")),
            ),
        ],
    );
    if listeners.is_empty() {
        return text;
    }
    let mut value: Value = serde_json::from_str(&text).unwrap();
    value["listeners"]
        .as_array_mut()
        .unwrap()
        .retain(|l| listeners.contains(&l["name"].as_str().unwrap()));
    for route in value["routes"].as_array_mut().unwrap() {
        route["parents"]
            .as_array_mut()
            .unwrap()
            .retain(|p| listeners.contains(&p["listener"].as_str().unwrap()));
    }
    value.to_string()
}

struct Backends {
    api: EchoServer,
    v2: EchoServer,
    shadow: EchoServer,
}

impl Backends {
    fn start() -> Backends {
        Backends {
            api: echo("api"),
            v2: echo("api-v2"),
            shadow: echo("shadow"),
        }
    }

    fn result(&self, config: &str, tls: &BTreeMap<String, Vec<TlsCertificate>>) -> GatewayResult {
        let target = |service: &str, server: &EchoServer| BackendTarget {
            namespace: "app".into(),
            service: service.into(),
            port: 8080,
            app_protocol: None,
            endpoints: vec![Endpoint {
                address: "127.0.0.1".into(),
                port: server.addr().port(),
            }],
        };
        GatewayResult {
            gateway: gateway_key(),
            generation: Some(1),
            config: engine::parse(config.as_bytes()).unwrap(),
            backends: [
                ("api", &self.api),
                ("api-v2", &self.v2),
                ("shadow", &self.shadow),
            ]
            .into_iter()
            .map(|(s, server)| (format!("app/{s}:8080"), target(s, server)))
            .collect(),
            tls: tls.clone(),
            status: Default::default(),
        }
    }
}

/// The xDS server in this process, on its own runtime.
struct Server {
    /// `None` once stopped.
    runtime: Option<tokio::runtime::Runtime>,
    server: XdsServer,
    metrics: Arc<Metrics>,
    addr: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    fn start(wasm: &Path, addr: SocketAddr) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let metrics = Arc::new(Metrics::default());
        let server = XdsServer::new(EnvoyOptions::new("", wasm), metrics.clone());
        let (addr, task) = runtime.block_on(server.serve(addr)).unwrap();
        server.set_module(std::fs::read(wasm).unwrap().into(), "test");
        Server {
            runtime: Some(runtime),
            server,
            metrics,
            addr,
            task: Some(task),
        }
    }

    fn deliver(&self, result: &GatewayResult) {
        let mut target = XdsTarget::new(self.server.clone());
        let runtime = self.runtime.as_ref().expect("the server is running");
        runtime.block_on(target.deliver(result)).unwrap();
    }

    /// Stops listening and drops every stream (as a killed shim would).
    fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What every test here starts from: the filter, a work directory, the three echo backends and
/// the xDS server, and the lock that runs these tests one at a time (released last).
struct Setup {
    wasm: PathBuf,
    dir: tempfile::TempDir,
    backends: Backends,
    server: Server,
    _serial: MutexGuard<'static, ()>,
}

impl Setup {
    fn start() -> Setup {
        let serial = serial();
        let wasm = support::plugin_wasm();
        let server = Server::start(&wasm, "127.0.0.1:0".parse().unwrap());
        Setup {
            wasm,
            dir: tempfile::tempdir().unwrap(),
            backends: Backends::start(),
            server,
            _serial: serial,
        }
    }

    /// Delivers the e2e table without TLS: `/switch` to `switch`, only `listeners` (see
    /// [`config`]).
    fn deliver(&self, switch: &str, listeners: &[&str]) {
        self.deliver_with_tls(switch, listeners, &BTreeMap::new());
    }

    fn deliver_with_tls(
        &self,
        switch: &str,
        listeners: &[&str],
        tls: &BTreeMap<String, Vec<TlsCertificate>>,
    ) {
        self.server
            .deliver(&self.backends.result(&config(switch, listeners), tls));
    }

    /// Starts an Envoy for `node` and waits until `path` on its port 80 reaches `expected`.
    fn envoy_routing(
        &self,
        protocol: AdsProtocol,
        node: &str,
        path: &str,
        expected: &str,
    ) -> (Envoy, Ports) {
        let (envoy, ports) = start_envoy(self.server.addr, protocol, node, self.dir.path());
        eventually(
            &envoy,
            &format!("{path} routed to {expected}"),
            Duration::from_secs(30),
            || routes_to(ports.http, path, expected),
        );
        (envoy, ports)
    }
}

/// What a [`Load`] saw: (time, backend or error) per request.
type Answers = Vec<(Instant, Result<String, String>)>;

/// `GET path` in a loop on another thread, until [`Load::finish`].
struct Load {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Answers>,
}

impl Load {
    fn start(port: u16, path: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let outcome = match get(port, path) {
                    Ok(r) if r.status == 200 => Ok(service(&r)),
                    Ok(r) => Err(format!("{} {}", r.status, r.text())),
                    Err(e) => Err(e.to_string()),
                };
                seen.push((Instant::now(), outcome));
                std::thread::sleep(Duration::from_millis(5));
            }
            seen
        });
        Load { stop, handle }
    }

    /// Stops the loop; what it saw.
    fn finish(self) -> Answers {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

fn failures(seen: &[(Instant, Result<String, String>)]) -> Vec<&String> {
    seen.iter().filter_map(|(_, o)| o.as_ref().err()).collect()
}

fn tls_client(port: u16, sni: &str, ca: &CertificateAuthority) -> HttpClient {
    HttpClient::https1(
        localhost(port),
        TlsConfig::with_ca_pem(sni, ca.cert_pem().as_bytes()).unwrap(),
    )
    .with_timeout(Duration::from_secs(5))
}

fn uptime(envoy: &Envoy) -> u64 {
    envoy.counter("server.uptime").unwrap_or(0)
}

#[test]
fn both_ads_variants_feed_listeners_clusters_certificates_and_the_filter() {
    let setup = Setup::start();
    let ca = CertificateAuthority::new("xds CA").unwrap();
    setup.deliver_with_tls("app/api:8080", &[], &tls::certificates(&ca));

    for (protocol, node) in [
        (AdsProtocol::StateOfTheWorld, "sotw-0"),
        (AdsProtocol::Delta, "delta-0"),
    ] {
        let (envoy, ports) = setup.envoy_routing(protocol, node, "/api/x", "api");
        let r = get(ports.http, "/api/users?page=2").unwrap();
        assert_eq!(
            r.echo().unwrap().header_joined("x-from-gateway").as_deref(),
            Some("yes")
        );
        assert_eq!(r.header("x-resp").as_deref(), Some("edited"));
        assert_eq!(get(ports.http, "/old/page").unwrap().status, 301);
        // Gateway port 8080 is bound elsewhere; the filter still sees 8080, which has no routes.
        let r = get(ports.unused, "/api").unwrap();
        assert_eq!(
            (r.status, r.text().as_str()),
            (404, "no route for GET example.com/api\n")
        );
        // HTTPS, with certificates from SDS: SNI picks the chain, a Host for the other is 421.
        let r = tls_client(ports.https, "a.example.com", &ca)
            .send(&Request::get("/api").with_host("a.example.com"))
            .unwrap();
        assert_eq!((r.status, service(&r)), (200, "api".to_owned()));
        let r = tls_client(ports.https, "a.example.com", &ca)
            .send(&Request::get("/api").with_host("b.example.com"))
            .unwrap();
        assert_eq!(r.status, 421);

        // Clusters with EndpointSlice endpoints come as EDS clusters.
        let dump = envoy
            .admin_get("/config_dump?resource=dynamic_active_clusters")
            .unwrap();
        assert!(dump.contains("\"type\": \"EDS\""), "{dump}");
        let endpoints = envoy.admin_get("/config_dump?include_eds").unwrap();
        assert!(endpoints.contains(&setup.backends.api.addr().port().to_string()));

        // The server knows the node and what it ACKed.
        eventually(&envoy, "the node in sync", Duration::from_secs(10), || {
            setup.server.server.registry.nodes().iter().any(|n| {
                n.node == node
                    && n.in_sync()
                    && n.revision.as_deref() == Some("switch-to-app/api:8080-")
                    && n.resources.len() == 5
            })
        });
        let document = setup.server.server.registry.document();
        let listed = document["nodes"].as_array().unwrap();
        assert!(
            listed
                .iter()
                .any(|n| n["node"] == node && n["gateway"] == "infra/gw"),
            "{document}"
        );
        drop(envoy);
    }
    let metrics = setup.server.metrics.encode();
    assert!(
        metrics.contains("gateway_wasm_xds_acks_total{type=\"ECDS\"}"),
        "{metrics}"
    );
}

#[test]
fn pushes_take_effect_without_failed_requests_and_an_unchanged_push_sends_nothing() {
    let setup = Setup::start();
    setup.deliver("app/api:8080", &["http"]);
    let (envoy, ports) = setup.envoy_routing(AdsProtocol::Delta, "push-0", "/switch", "api");
    let load = Load::start(ports.http, "/switch");
    std::thread::sleep(Duration::from_millis(300));
    setup.deliver("app/api-v2:8080", &["http"]);
    eventually(&envoy, "the push", Duration::from_secs(10), || {
        routes_to(ports.http, "/switch", "api-v2")
    });
    std::thread::sleep(Duration::from_millis(300));
    let seen = load.finish();
    assert!(failures(&seen).is_empty(), "{:?}", failures(&seen));

    // Delivering the same result again sends nothing to the Envoy.
    let responses = |metrics: &str| -> String {
        metrics
            .lines()
            .filter(|l| l.starts_with("gateway_wasm_xds_responses_total"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let before = responses(&setup.server.metrics.encode());
    setup.deliver("app/api-v2:8080", &["http"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(responses(&setup.server.metrics.encode()), before);
    drop(envoy);
}

#[test]
fn a_listener_added_to_the_gateway_serves_without_a_restart() {
    let setup = Setup::start();
    setup.deliver("app/api:8080", &["http"]);
    let (envoy, ports) =
        setup.envoy_routing(AdsProtocol::StateOfTheWorld, "listener-0", "/api", "api");
    assert!(
        get(ports.unused, "/api").is_err(),
        "port 8080 is not a Gateway port yet"
    );
    let pid = envoy.pid();
    let load = Load::start(ports.http, "/api");

    setup.deliver("app/api:8080", &["http", "unused"]);
    eventually(&envoy, "the new listener", Duration::from_secs(20), || {
        get(ports.unused, "/api")
            .is_ok_and(|r| r.status == 404 && r.text() == "no route for GET example.com/api\n")
    });
    let seen = load.finish();
    assert!(
        failures(&seen).is_empty(),
        "the existing listener kept serving: {:?}",
        failures(&seen)
    );
    assert_eq!(envoy.pid(), pid);
    assert!(
        envoy
            .counter("listener_manager.lds.update_success")
            .unwrap_or(0)
            >= 2
    );
    assert!(uptime(&envoy) < 600, "the same Envoy process");

    // And removed again.
    setup.deliver("app/api:8080", &["http"]);
    eventually(
        &envoy,
        "the listener removed",
        Duration::from_secs(20),
        || get(ports.unused, "/api").is_err(),
    );
    assert!(routes_to(ports.http, "/api", "api"));
}

#[test]
fn a_rotated_certificate_is_served_without_a_restart() {
    let setup = Setup::start();
    let old_ca = CertificateAuthority::new("old CA").unwrap();
    let new_ca = CertificateAuthority::new("new CA").unwrap();
    setup.deliver_with_tls("app/api:8080", &[], &tls::certificates(&old_ca));
    let (envoy, ports) = start_envoy(
        setup.server.addr,
        AdsProtocol::Delta,
        "rotate-0",
        setup.dir.path(),
    );
    let served_by = |ca: &CertificateAuthority| {
        tls_client(ports.https, "a.example.com", ca)
            .send(&Request::get("/api").with_host("a.example.com"))
            .is_ok_and(|r| r.status == 200)
    };
    eventually(
        &envoy,
        "HTTPS with the old certificate",
        Duration::from_secs(30),
        || served_by(&old_ca),
    );
    assert!(!served_by(&new_ca));
    let pid = envoy.pid();
    let listener_updates = envoy
        .counter("listener_manager.lds.update_success")
        .unwrap_or(0);

    setup.deliver_with_tls("app/api:8080", &[], &tls::certificates(&new_ca));
    eventually(
        &envoy,
        "HTTPS with the new certificate",
        Duration::from_secs(20),
        || served_by(&new_ca),
    );
    assert!(!served_by(&old_ca));
    assert_eq!(envoy.pid(), pid);
    assert_eq!(
        envoy
            .counter("listener_manager.lds.update_success")
            .unwrap_or(0),
        listener_updates,
        "a certificate is an SDS update: the listeners are not touched"
    );
    assert!(routes_to(ports.http, "/api", "api"));
}

#[test]
fn a_config_the_filter_rejects_is_nacked_reported_and_traffic_keeps_the_last_version() {
    let setup = Setup::start();
    let server = &setup.server;
    setup.deliver("app/api:8080", &["http"]);
    let (envoy, ports) =
        setup.envoy_routing(AdsProtocol::StateOfTheWorld, "nack-0", "/switch", "api");
    let load = Load::start(ports.http, "/switch");

    // Well-formed and fine for Envoy, but the filter refuses it: the rule names a backend the
    // document does not define.
    setup.deliver("app/nonexistent:1", &["http"]);
    eventually(&envoy, "the NACK", Duration::from_secs(20), || {
        server.metrics.xds_nacks("ECDS") >= 1
    });
    let nacks = server.server.registry.nacks();
    let nack = nacks.iter().find(|n| n.kind == "ECDS").unwrap();
    assert_eq!(nack.node, "nack-0");
    assert!(nack.acked.is_some(), "{nack:?}");
    assert!(
        nack.message.contains("gateway-wasm"),
        "Envoy's message: {}",
        nack.message
    );
    let document = server.server.registry.document();
    assert_eq!(document["nacks"][0]["type"], "ECDS", "{document}");
    let node = &document["nodes"][0];
    assert_eq!(
        node["resources"]["ECDS"]["nack"]["version"],
        nack.version.as_str()
    );
    assert_ne!(node["resources"]["ECDS"]["acked"], nack.version.as_str());
    assert!(
        server
            .metrics
            .encode()
            .contains("gateway_wasm_xds_nacks_total{type=\"ECDS\"} 1")
    );
    let log = std::fs::read_to_string(envoy.log_path()).unwrap();
    assert!(
        log.contains("routes[0].rules[3].backendRefs[0].backend"),
        "the filter names the field:\n{}",
        envoy.log_tail(20)
    );

    std::thread::sleep(Duration::from_secs(1));
    let seen = load.finish();
    assert!(
        seen.iter().all(|(_, o)| o.as_deref() == Ok("api")),
        "traffic keeps the last ACKed version: {:?}",
        seen.iter()
            .filter(|(_, o)| o.as_deref() != Ok("api"))
            .collect::<Vec<_>>()
    );

    // The next valid push is accepted and clears the node's NACK.
    setup.deliver("app/api-v2:8080", &["http"]);
    eventually(&envoy, "recovery", Duration::from_secs(20), || {
        routes_to(ports.http, "/switch", "api-v2")
    });
    eventually(&envoy, "the NACK cleared", Duration::from_secs(10), || {
        server
            .server
            .registry
            .nodes()
            .iter()
            .all(|n| n.in_sync() && n.resources.values().all(|t| t.nack.is_none()))
    });
}

#[test]
fn a_new_module_is_switched_to_without_a_failed_request() {
    let setup = Setup::start();
    setup.deliver("app/api:8080", &["http"]);
    let envoys: Vec<_> = [
        (AdsProtocol::StateOfTheWorld, "module-sotw"),
        (AdsProtocol::Delta, "module-delta"),
    ]
    .into_iter()
    .map(|(protocol, node)| setup.envoy_routing(protocol, node, "/api", "api"))
    .collect();
    let loads: Vec<_> = envoys
        .iter()
        .map(|(_, p)| Load::start(p.http, "/api"))
        .collect();

    // The same filter with a custom section: another sha256, as a new release would have.
    let mut module = std::fs::read(&setup.wasm).unwrap();
    let name = b"gateway-wasm-test";
    let mut section = vec![u8::try_from(name.len()).unwrap()];
    section.extend_from_slice(name);
    section.extend_from_slice(b"release 2");
    module.push(0);
    module.push(u8::try_from(section.len()).unwrap());
    module.extend_from_slice(&section);
    let sha256 = setup
        .server
        .server
        .set_module(module.into(), "test release 2");

    for (envoy, _) in &envoys {
        eventually(envoy, "the new module", Duration::from_secs(60), || {
            envoy
                .admin_get("/config_dump?resource=ecds_filters")
                .is_ok_and(|d| d.contains(&sha256))
        });
        eventually(
            envoy,
            "the warm-up listener removed",
            Duration::from_secs(20),
            || {
                envoy
                    .admin_get("/listeners")
                    .is_ok_and(|l| !l.contains("gateway-wasm-module-warmup"))
            },
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    for (load, (envoy, _)) in loads.into_iter().zip(&envoys) {
        let seen = load.finish();
        assert!(seen.len() > 10);
        let failed = failures(&seen);
        assert!(
            failed.is_empty(),
            "{} of {} requests failed: first {:?}\n{}",
            failed.len(),
            seen.len(),
            failed.first(),
            envoy.log_tail(60)
        );
    }
    for (envoy, ports) in &envoys {
        assert!(routes_to(ports.http, "/api", "api"));
        assert_eq!(
            envoy.counter("extension_config_discovery.http_filter.gateway-wasm.update_rejected"),
            Some(0)
        );
    }
}

#[test]
fn envoys_keep_serving_when_the_server_goes_away_and_converge_when_it_returns() {
    let mut setup = Setup::start();
    let addr = setup.server.addr;
    setup.deliver("app/api:8080", &["http"]);
    let (envoy, ports) = setup.envoy_routing(AdsProtocol::Delta, "restart-0", "/switch", "api");
    setup.server.stop();

    // No control plane: the Envoy serves its last config.
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..20 {
        assert!(routes_to(ports.http, "/switch", "api"));
    }

    // A new server on the same address with a newer config: the Envoy reconnects and converges.
    setup.server = Server::start(&setup.wasm, addr);
    setup.deliver("app/api-v2:8080", &["http"]);
    eventually(
        &envoy,
        "convergence after the restart",
        Duration::from_secs(60),
        || routes_to(ports.http, "/switch", "api-v2"),
    );
    eventually(
        &envoy,
        "the node back in sync",
        Duration::from_secs(10),
        || {
            setup
                .server
                .server
                .registry
                .nodes()
                .iter()
                .any(|n| n.node == "restart-0" && n.in_sync())
        },
    );
}

/// When the last backend goes, Envoy drops its last EDS watch (state of the world: a request with
/// no names, often with a stale nonce). The server must take that as an unsubscription: an EDS
/// response then is ignored by Envoy, never ACKed, and the node would never be in sync. While no
/// name is watched the status report lists no EDS for the node, and when backends return, the new
/// subscription must be answered.
#[test]
fn the_last_backend_going_and_coming_back_keeps_the_node_in_sync() {
    last_backend_going_and_coming_back(AdsProtocol::StateOfTheWorld, "unsubscribe-sotw");
}

/// The same on the incremental stream, where Envoy names the dropped clusters in
/// `resource_names_unsubscribe`. Envoy 1.40's delta client keeps the type's subscription and
/// ACKs the removal the server sent just before, so here the node stays in sync either way; what
/// must match the state-of-the-world stream is the state reported once nothing is watched.
#[test]
fn the_last_backend_going_and_coming_back_keeps_a_delta_node_in_sync() {
    last_backend_going_and_coming_back(AdsProtocol::Delta, "unsubscribe-delta");
}

fn last_backend_going_and_coming_back(protocol: AdsProtocol, node: &str) {
    let setup = Setup::start();
    let server = &setup.server;
    setup.deliver("app/api:8080", &["http"]);
    let (envoy, ports) = setup.envoy_routing(protocol, node, "/switch", "api");
    let in_sync = || {
        let nodes = server.server.registry.nodes();
        nodes.len() == 1 && nodes.iter().all(|n| n.in_sync())
    };
    eventually(
        &envoy,
        "in sync with backends",
        Duration::from_secs(10),
        in_sync,
    );

    let mut without = setup
        .backends
        .result(&config("app/api-v2:8080", &["http"]), &BTreeMap::new());
    without.backends.clear();
    server.deliver(&without);
    eventually(
        &envoy,
        "in sync without any backend",
        Duration::from_secs(10),
        || {
            in_sync()
                && server.server.registry.nodes()[0]
                    .resources
                    .get("CDS")
                    .is_some_and(|t| t.acked.is_some())
                && !server.server.registry.nodes()[0]
                    .resources
                    .contains_key("EDS")
                && !routes_to(ports.http, "/switch", "api")
        },
    );

    setup.deliver("app/api:8080", &["http"]);
    eventually(&envoy, "the backends back", Duration::from_secs(10), || {
        routes_to(ports.http, "/switch", "api")
    });
    eventually(&envoy, "in sync again", Duration::from_secs(10), in_sync);
    drop(envoy);
}
