//! The filter in the real Envoy 1.40, configured by the files the shim renders, in front of real echo
//! backends: routing, the internal-header guarantee, timeouts/retries/mirrors, and the hot-reload
//! proofs (a push changes routing with no failed request; an invalid push is rejected and routing
//! keeps the previous configuration).
//!
//! Builds the filter first (`cargo build -p plugin --target wasm32-wasip1 --profile wasm`). The tests
//! share one lock so that only one Envoy runs at a time on a small machine.

// Test helpers outside #[test] functions may panic too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[path = "support/fixtures.rs"]
mod fixtures;
mod support;
#[path = "support/tls.rs"]
mod tls;

use controller_shim::envoy::{self, ConfigCompression, EnvoyOptions};
use controller_shim::resolution::{
    BackendTarget, Endpoint, GatewayResult, ObjectKey, TlsCertificate,
};
use fixtures::{fill, fixture};
use testkit::certs::CertificateAuthority;
use testkit::client::{HttpClient, Request, Response, TlsConfig};
use testkit::echo::{EchoIdentity, EchoServer};
use testkit::envoy::{Envoy, EnvoyOptions as RunOptions};

const REJECTED: &str = "extension_config_discovery.http_filter.gateway-wasm.update_rejected";
const CONFIG_FAIL: &str = "extension_config_discovery.http_filter.gateway-wasm.config_fail";
const UPDATED: &str = "extension_config_discovery.http_filter.gateway-wasm.update_success";
const WASM_REJECTED: &str = "wasmcustom.gateway_wasm.config.rejected";

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The route table every test starts from; `switch` is the backend of `/switch`.
fn config(switch: &str) -> String {
    fill(
        fixture!("plugin-config-e2e.json"),
        &[
            ("switch", &switch),
            ("revision", &format!("switch-to-{switch}")),
        ],
    )
}

struct Fixture {
    envoy: Envoy,
    api: EchoServer,
    v2: EchoServer,
    shadow: EchoServer,
    dir: tempfile::TempDir,
    options: EnvoyOptions,
    ca: CertificateAuthority,
    tls: BTreeMap<String, Vec<TlsCertificate>>,
    http: SocketAddr,
    unused: SocketAddr,
    https: SocketAddr,
    _serial: MutexGuard<'static, ()>,
}

fn echo(service: &str) -> EchoServer {
    EchoServer::start(
        EchoIdentity::new("app", service, format!("{service}-0")),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap()
}

fn target(service: &str, server: &EchoServer) -> BackendTarget {
    BackendTarget {
        namespace: "app".into(),
        service: service.into(),
        port: 8080,
        app_protocol: None,
        endpoints: vec![Endpoint {
            address: "127.0.0.1".into(),
            port: server.addr().port(),
        }],
    }
}

fn result(
    config: &str,
    fixture_backends: &[(&str, &EchoServer)],
    tls: &BTreeMap<String, Vec<TlsCertificate>>,
) -> GatewayResult {
    GatewayResult {
        gateway: ObjectKey {
            namespace: "infra".into(),
            name: "gw".into(),
        },
        generation: Some(1),
        config: engine::parse(config.as_bytes()).unwrap(),
        backends: fixture_backends
            .iter()
            .map(|(service, server)| (format!("app/{service}:8080"), target(service, server)))
            .collect(),
        tls: tls.clone(),
        status: Default::default(),
    }
}

impl Fixture {
    fn start() -> Fixture {
        let guard = serial();
        let wasm = support::plugin_wasm();
        let (api, v2, shadow) = (echo("api"), echo("api-v2"), echo("shadow"));
        let dir = tempfile::tempdir().unwrap();
        let ports = testkit::ports::free_ports(3).unwrap();
        let mut options = EnvoyOptions::new(dir.path(), wasm);
        options.bind_address = "127.0.0.1".into();
        options.admin_port = 0;
        options.port_map = BTreeMap::from([(80, ports[0]), (8080, ports[1]), (443, ports[2])]);
        let ca = CertificateAuthority::new("gateway-wasm e2e CA").unwrap();
        let tls = tls::certificates(&ca);
        let first = result(
            &config("app/api:8080"),
            &[("api", &api), ("api-v2", &v2), ("shadow", &shadow)],
            &tls,
        );
        let files = envoy::render(&first, &options).unwrap();
        assert!(files.warnings.is_empty(), "{:?}", files.warnings);
        envoy::write_files(dir.path(), &files).unwrap();
        let mut run = RunOptions::new(dir.path().join(envoy::BOOTSTRAP_FILE));
        run.concurrency = 2;
        let envoy = Envoy::start(run).unwrap();
        let localhost = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let fixture = Fixture {
            envoy,
            api,
            v2,
            shadow,
            dir,
            options,
            ca,
            tls,
            http: localhost(ports[0]),
            unused: localhost(ports[1]),
            https: localhost(ports[2]),
            _serial: guard,
        };
        fixture.wait_routed();
        fixture
    }

    /// Waits until the listeners answer through the filter (the first configuration is loaded).
    fn wait_routed(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.get("/api/ready") {
                Ok(r) if r.status == 200 => return,
                other if Instant::now() > deadline => panic!(
                    "Envoy never routed /api: {other:?}\n{}",
                    self.envoy.log_tail(40)
                ),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Renders and writes a new configuration (clusters first, then the extension config).
    fn push(&self, config: &str) -> envoy::WriteReport {
        self.push_with(config, &self.options)
    }

    fn push_with(&self, config: &str, options: &EnvoyOptions) -> envoy::WriteReport {
        let next = result(
            config,
            &[
                ("api", &self.api),
                ("api-v2", &self.v2),
                ("shadow", &self.shadow),
            ],
            &self.tls,
        );
        let files = envoy::render(&next, options).unwrap();
        envoy::write_files(self.dir.path(), &files).unwrap()
    }

    fn client(&self) -> HttpClient {
        HttpClient::http1(self.http).with_timeout(Duration::from_secs(10))
    }

    fn get(&self, path: &str) -> Result<Response, testkit::client::ClientError> {
        self.client()
            .send(&Request::get(path).with_host("example.com"))
    }

    fn tls_client(&self, sni: &str) -> HttpClient {
        HttpClient::https1(
            self.https,
            TlsConfig::with_ca_pem(sni, self.ca.cert_pem().as_bytes()).unwrap(),
        )
    }

    fn counter(&self, name: &str) -> u64 {
        self.envoy.counter(name).unwrap_or(0)
    }
}

fn service(response: &Response) -> String {
    response
        .echo()
        .map(|e| e.service)
        .unwrap_or_else(|e| format!("<not an echo: {e}: {}>", response.text()))
}

#[test]
fn requests_are_routed_by_the_filter_through_envoy() {
    let fx = Fixture::start();

    let r = fx.get("/api/users?page=2").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let echo = r.echo().unwrap();
    assert_eq!(echo.service, "api");
    assert_eq!(echo.path, "/api/users?page=2");
    assert_eq!(echo.header_joined("x-from-gateway").as_deref(), Some("yes"));
    assert_eq!(r.header("x-resp").as_deref(), Some("edited"));
    assert!(
        echo.headers
            .keys()
            .all(|k| !k.to_ascii_lowercase().starts_with("x-gateway-wasm-")),
        "{:?}",
        echo.headers
    );

    let r = fx.get("/rewrite/x?q=1").unwrap();
    let echo = r.echo().unwrap();
    assert_eq!(echo.path, "/v2/x?q=1");
    assert_eq!(echo.host, "internal.example.com");

    let r = fx.get("/old/page").unwrap();
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://example.com/new/page")
    );

    let r = fx.get("/nowhere").unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "no route for GET example.com/nowhere\n");

    let r = fx
        .client()
        .send(&Request::get("/api").with_host("unknown.test"))
        .unwrap();
    assert_eq!(
        r.status, 404,
        "the http listener's route only takes example.com"
    );

    // Envoy binds another port for Gateway port 8080: the filter must still see 8080, whose listener
    // has no routes (had it used the bound port it would say "no listener").
    let r = HttpClient::http1(fx.unused)
        .send(&Request::get("/api").with_host("example.com"))
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "no route for GET example.com/api\n");

    // HTTPS: SNI selects the filter chain and the listener; a Host for another listener is 421.
    let r = fx
        .tls_client("a.example.com")
        .send(&Request::get("/api").with_host("a.example.com"))
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(service(&r), "api");
    let r = fx
        .tls_client("a.example.com")
        .send(&Request::get("/api").with_host("b.example.com"))
        .unwrap();
    assert_eq!(r.status, 421, "{}", r.text());
    let r = HttpClient::http2_tls(
        fx.https,
        TlsConfig::with_ca_pem("b.example.com", fx.ca.cert_pem().as_bytes()).unwrap(),
    )
    .send(&Request::get("/api").with_host("b.example.com"))
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.echo().unwrap().proto,
        "HTTP/1.1",
        "upstream stays HTTP/1.1"
    );

    // WebSocket upgrades pass through.
    let mut ws = fx
        .client()
        .websocket(&Request::get("/ws").with_host("example.com"))
        .unwrap();
    assert_eq!(ws.echo_text("hello").unwrap(), "hello");

    assert!(fx.counter("wasmcustom.gateway_wasm.requests.forwarded") >= 5);
    assert!(fx.counter("wasmcustom.gateway_wasm.requests.no_route") >= 2);
    assert!(fx.counter("wasmcustom.gateway_wasm.requests.misdirected") >= 1);
    assert!(fx.counter("wasmcustom.gateway_wasm.requests.redirected") >= 1);
}

#[test]
fn timeouts_retries_and_mirrors_take_effect() {
    let fx = Fixture::start();

    // The echo server fails the first two tries of this id with 503; two retries make it succeed.
    let r = fx
        .get("/retry?uuid=e2e-retry&succeedAfter=2&responseCode=503")
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(fx.counter("cluster.app/api_8080.upstream_rq_retry") >= 2);
    // A rule without a retry policy gets no retries.
    let r = fx
        .get("/api?uuid=e2e-noretry&succeedAfter=1&responseCode=503")
        .unwrap();
    assert_eq!(r.status, 503);

    // timeouts.request: 300ms against a backend that takes 3 s.
    let started = Instant::now();
    let r = fx.get("/slow?delay=3s").unwrap();
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(3));
    // timeouts.backendRequest: each try may take 200ms.
    let r = fx.get("/pertry?delay=3s").unwrap();
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(fx.counter("cluster.app/api_8080.upstream_rq_per_try_timeout") >= 1);
    // Without a timeout the same delay is waited out.
    let r = fx.get("/api?delay=500ms").unwrap();
    assert_eq!(r.status, 200);

    let before = fx.shadow.request_count();
    let r = fx.get("/mirror/a").unwrap();
    assert_eq!(service(&r), "api");
    fx.shadow
        .wait_for_request_count(before + 1, Duration::from_secs(10))
        .unwrap();
    let mirrored = fx.shadow.recent_requests(1);
    assert_eq!(mirrored[0].path, "/mirror/a");
    assert!(mirrored[0].header("x-gateway-wasm-upstream").is_none());
    let r = fx
        .client()
        .send(
            &Request::new("POST", "/mirror/b")
                .with_host("example.com")
                .with_body("payload"),
        )
        .unwrap();
    assert_eq!(r.status, 200);
    fx.shadow
        .wait_for_request_count(before + 2, Duration::from_secs(10))
        .unwrap();
    assert_eq!(fx.shadow.recent_requests(1)[0].method, "POST");
}

#[test]
fn clients_cannot_pick_a_backend_with_internal_headers() {
    let fx = Fixture::start();
    let sneaky = |req: Request| {
        req.with_header("x-gateway-wasm-upstream", "app/shadow:8080")
            .with_header("X-Gateway-Wasm-Upstream", "app/api-v2:8080")
            .with_header("x-gateway-wasm-debug", "1")
    };
    // A routed request goes where the route says.
    let r = fx
        .client()
        .send(&sneaky(Request::get("/api").with_host("example.com")))
        .unwrap();
    assert_eq!(service(&r), "api");
    let echo = r.echo().unwrap();
    assert!(
        echo.headers
            .keys()
            .all(|k| !k.to_ascii_lowercase().starts_with("x-gateway-wasm-")),
        "{:?}",
        echo.headers
    );
    // Unrouted requests (no route, unknown host, other port, HTTP/2) reach no backend at all.
    for (client, host, path) in [
        (fx.client(), "example.com", "/nowhere"),
        (fx.client(), "unknown.test", "/api"),
        (HttpClient::http1(fx.unused), "example.com", "/api"),
        (HttpClient::h2c(fx.http), "example.com", "/nowhere"),
    ] {
        let r = client
            .send(&sneaky(Request::get(path).with_host(host)))
            .unwrap();
        assert_eq!(r.status, 404, "{host}{path}: {}", r.text());
    }
    assert_eq!(fx.shadow.request_count(), 0);
    assert_eq!(fx.v2.request_count(), 0);
}

/// When a request started and which backend answered it (or how it failed).
type Outcome = (Instant, Result<String, String>);

/// Sends requests one after another until stopped; records (start, outcome).
fn load(fx: &Fixture, path: &'static str) -> (Arc<AtomicBool>, JoinHandle<Vec<Outcome>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let client = fx.client();
    let flag = Arc::clone(&stop);
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !flag.load(Ordering::Relaxed) {
            let started = Instant::now();
            let outcome = match client.send(&Request::get(path).with_host("example.com")) {
                Ok(r) if r.status == 200 => Ok(service(&r)),
                Ok(r) => Err(format!("{} {}", r.status, r.text())),
                Err(e) => Err(e.to_string()),
            };
            seen.push((started, outcome));
            std::thread::sleep(Duration::from_millis(5));
        }
        seen
    });
    (stop, handle)
}

#[test]
fn a_config_push_changes_routing_without_failed_requests() {
    let fx = Fixture::start();
    let updates = fx.counter(UPDATED);
    let (stop, handle) = load(&fx, "/switch");
    std::thread::sleep(Duration::from_millis(500));

    let report = fx.push(&config("app/api-v2:8080"));
    let pushed = Instant::now();
    assert_eq!(
        report.written,
        [fx.dir.path().join(envoy::EXTENSION_CONFIG_FILE)],
        "only the extension config changes"
    );
    // Watch the live traffic for the switch.
    let deadline = pushed + Duration::from_secs(10);
    let mut switched = None;
    while Instant::now() < deadline {
        let r = fx.get("/switch").unwrap();
        if service(&r) == "api-v2" {
            switched = Some(pushed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let seen = handle.join().unwrap();

    let switched = switched.expect("routing never switched to api-v2");
    eprintln!(
        "routing switched {switched:?} after the push; {} requests sent",
        seen.len()
    );
    assert!(
        switched <= Duration::from_secs(2),
        "switched only after {switched:?}"
    );
    let failures: Vec<_> = seen.iter().filter(|(_, o)| o.is_err()).collect();
    assert!(
        failures.is_empty(),
        "failed requests during the push: {failures:?}"
    );
    assert!(
        seen.iter()
            .any(|(t, o)| *t < pushed && o.as_deref() == Ok("api"))
    );
    // Every request started a second after the switch went to the new backend.
    let settled = pushed + switched + Duration::from_secs(1);
    let late: Vec<_> = seen.iter().filter(|(t, _)| *t > settled).collect();
    assert!(!late.is_empty());
    assert!(
        late.iter().all(|(_, o)| o.as_deref() == Ok("api-v2")),
        "{late:?}"
    );
    assert!(fx.counter(UPDATED) > updates);
}

#[test]
fn an_invalid_push_is_rejected_and_routing_keeps_the_previous_config() {
    let fx = Fixture::start();
    let updates = fx.counter(UPDATED);
    let (stop, handle) = load(&fx, "/switch");

    // Well-formed, fine for Envoy, but the filter's validation rejects it: the rule names a backend
    // the document does not define.
    let invalid = config("app/nonexistent:1");
    fx.push(&invalid);
    fx.envoy
        .wait_for_counter(REJECTED, |v| v >= 1, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", fx.envoy.log_tail(30)));
    assert!(fx.counter(CONFIG_FAIL) >= 1);
    assert!(fx.counter(WASM_REJECTED) >= 1);
    assert_eq!(fx.counter(UPDATED), updates);
    let log = std::fs::read_to_string(fx.envoy.log_path()).unwrap();
    assert!(
        log.contains("rejected config")
            && log.contains("routes[0].rules[3].backendRefs[0].backend"),
        "the filter logs the JSON path:\n{}",
        fx.envoy.log_tail(20)
    );

    // Routing keeps the previous configuration, for a while.
    std::thread::sleep(Duration::from_secs(1));
    for _ in 0..20 {
        assert_eq!(service(&fx.get("/switch").unwrap()), "api");
    }
    stop.store(true, Ordering::Relaxed);
    let seen = handle.join().unwrap();
    assert!(
        seen.iter().all(|(_, o)| o.as_deref() == Ok("api")),
        "{:?}",
        seen.iter()
            .filter(|(_, o)| o.as_deref() != Ok("api"))
            .collect::<Vec<_>>()
    );

    // The next valid push is accepted.
    fx.push(&config("app/api-v2:8080"));
    fx.envoy
        .wait_for_counter(UPDATED, |v| v > updates, Duration::from_secs(10))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while service(&fx.get("/switch").unwrap()) != "api-v2" {
        assert!(
            Instant::now() < deadline,
            "the valid push never took effect"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_gzip_compressed_push_is_inflated_by_the_filter_and_routes() {
    let fx = Fixture::start();
    let updates = fx.counter(UPDATED);
    let mut options = fx.options.clone();
    options.config_compression = ConfigCompression::Always;
    fx.push_with(&config("app/api-v2:8080"), &options);
    let ecds = std::fs::read_to_string(fx.dir.path().join(envoy::EXTENSION_CONFIG_FILE)).unwrap();
    assert!(
        ecds.contains("type.googleapis.com/google.protobuf.BytesValue"),
        "{ecds}"
    );
    assert!(
        !ecds.contains("api-v2"),
        "the routes are compressed: {ecds}"
    );

    fx.envoy
        .wait_for_counter(UPDATED, |v| v > updates, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", fx.envoy.log_tail(30)));
    let deadline = Instant::now() + Duration::from_secs(10);
    while service(&fx.get("/switch").unwrap()) != "api-v2" {
        assert!(
            Instant::now() < deadline,
            "the compressed push never took effect:\n{}",
            fx.envoy.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fx.counter(WASM_REJECTED), 0);
}
