//! Attacks on the edge, through the real Envoy 1.40 running the files the shim renders (with their
//! edge-safe defaults) in front of real backends:
//! - path traversal and path confusion (`..`, `%2e%2e` in any letter case, `%2F`, `%5C`, `\`, `//`)
//!   never reach a backend, and a `ReplacePrefixMatch` rule never forwards a path outside the prefix
//!   it rewrites to;
//! - the filter matches exactly the path Envoy forwards: every request's backend and upstream path
//!   equal what the engine decides for the path Envoy normalized (no second normalization);
//! - a client cannot steer routing, retries or timeouts with our internal header or Envoy's router
//!   control headers, nor feed a backend `x-envoy-*` headers;
//! - a Host that names another HTTPS listener than the TLS server name still gets 421;
//! - oversized headers get Envoy's 431, slow headers its 408, bodies larger than every buffer
//!   stream through; Envoy and the filter keep serving.
//!
//! The tests share one lock so that only one Envoy runs at a time on a small machine.

// Test helpers outside #[test] functions may panic too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod support;
#[path = "support/tls.rs"]
mod tls;

use controller_shim::envoy::{self, EnvoyOptions, EscapedSlashes};
use controller_shim::resolution::{BackendTarget, Endpoint, GatewayResult, ObjectKey};
use testkit::certs::CertificateAuthority;
use testkit::client::{HttpClient, Request, Response, TlsConfig};
use testkit::echo::{EchoIdentity, EchoServer};
use testkit::envoy::{Envoy, EnvoyOptions as RunOptions};

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `www.example.com` carries the quickstart's shape: the store team's `PathPrefix /store` rewritten to
/// `/`, a team whose `/team-a` is rewritten to `/internal/team-a`, and the site's catch-all.
/// `plain.example.com` forwards every path unchanged, so its backend shows the path Envoy forwards.
const CONFIG: &str = r#"{
  "schemaVersion": 1,
  "revision": "security",
  "gateway": {"namespace": "infra", "name": "gw"},
  "listeners": [
    {"name": "http", "port": 80, "protocol": "HTTP"},
    {"name": "https-a", "port": 443, "protocol": "HTTPS", "hostname": "a.example.com"},
    {"name": "https-b", "port": 443, "protocol": "HTTPS", "hostname": "b.example.com"}
  ],
  "routes": [
    {"namespace": "app", "name": "store", "parents": [{"listener": "http", "hostnames": ["www.example.com"]}],
     "rules": [
       {"matches": [{"path": {"type": "PathPrefix", "value": "/store"}}],
        "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}],
        "backendRefs": [{"backend": "app/store:8080"}]}]},
    {"namespace": "app", "name": "team", "parents": [{"listener": "http", "hostnames": ["www.example.com"]}],
     "rules": [
       {"matches": [{"path": {"type": "PathPrefix", "value": "/team-a"}}],
        "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/internal/team-a"}}}],
        "backendRefs": [{"backend": "app/team:8080"}]}]},
    {"namespace": "app", "name": "controls", "parents": [{"listener": "http", "hostnames": ["www.example.com"]}],
     "rules": [
       {"matches": [{"path": {"type": "PathPrefix", "value": "/retry"}}],
        "retry": {"attempts": 2, "codes": [503]},
        "backendRefs": [{"backend": "app/store:8080"}]},
       {"matches": [{"path": {"type": "PathPrefix", "value": "/upload-retry"}}],
        "retry": {"attempts": 2, "codes": [503]},
        "backendRefs": [{"backend": "app/sink:8080"}]},
       {"matches": [{"path": {"type": "PathPrefix", "value": "/upload-mirror"}}],
        "filters": [{"type": "RequestMirror", "requestMirror": {"backend": "app/plain:8080"}}],
        "backendRefs": [{"backend": "app/sink:8080"}]},
       {"matches": [{"path": {"type": "PathPrefix", "value": "/upload"}}],
        "backendRefs": [{"backend": "app/sink:8080"}]}]},
    {"namespace": "app", "name": "site", "parents": [{"listener": "http", "hostnames": ["www.example.com"]}, {"listener": "https-a"}, {"listener": "https-b"}],
     "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": [{"backend": "app/site:8080"}]}]},
    {"namespace": "app", "name": "plain", "parents": [{"listener": "http", "hostnames": ["plain.example.com"]}],
     "rules": [{"backendRefs": [{"backend": "app/plain:8080"}]}]}
  ],
  "backends": {
    "app/store:8080": {"upstream": "app/store:8080"},
    "app/team:8080": {"upstream": "app/team:8080"},
    "app/site:8080": {"upstream": "app/site:8080"},
    "app/plain:8080": {"upstream": "app/plain:8080"},
    "app/sink:8080": {"upstream": "app/sink:8080"}
  }
}"#;

const ECHO_SERVICES: [&str; 4] = ["store", "team", "site", "plain"];

struct Fixture {
    envoy: Envoy,
    echoes: BTreeMap<&'static str, EchoServer>,
    _sink: BodySink,
    ca: CertificateAuthority,
    http: SocketAddr,
    https: SocketAddr,
    _dir: tempfile::TempDir,
    _serial: MutexGuard<'static, ()>,
}

fn target(service: &str, addr: SocketAddr) -> BackendTarget {
    BackendTarget {
        namespace: "app".into(),
        service: service.into(),
        port: 8080,
        app_protocol: None,
        endpoints: vec![Endpoint {
            address: "127.0.0.1".into(),
            port: addr.port(),
        }],
    }
}

impl Fixture {
    /// Envoy with the rendered files; `edit` adjusts the rendering options first.
    fn start(edit: impl FnOnce(&mut EnvoyOptions)) -> Fixture {
        let guard = serial();
        let wasm = support::plugin_wasm();
        let echoes: BTreeMap<&'static str, EchoServer> = ECHO_SERVICES
            .into_iter()
            .map(|service| {
                let server = EchoServer::start(
                    EchoIdentity::new("app", service, format!("{service}-0")),
                    "127.0.0.1:0".parse().unwrap(),
                )
                .unwrap();
                (service, server)
            })
            .collect();
        let sink = BodySink::start();
        let dir = tempfile::tempdir().unwrap();
        let ports = testkit::ports::free_ports(2).unwrap();
        let mut options = EnvoyOptions::new(dir.path(), wasm);
        options.bind_address = "127.0.0.1".into();
        options.admin_port = 0;
        options.port_map = BTreeMap::from([(80, ports[0]), (443, ports[1])]);
        // Short enough to see in a test; the default is 10 s.
        options.edge.request_headers_timeout = Duration::from_secs(1);
        edit(&mut options);

        let ca = CertificateAuthority::new("gateway-wasm security CA").unwrap();
        let tls = tls::certificates(&ca);
        let mut backends: BTreeMap<String, BackendTarget> = echoes
            .iter()
            .map(|(service, server)| {
                (
                    format!("app/{service}:8080"),
                    target(service, server.addr()),
                )
            })
            .collect();
        backends.insert("app/sink:8080".into(), target("sink", sink.addr()));
        let result = GatewayResult {
            gateway: ObjectKey {
                namespace: "infra".into(),
                name: "gw".into(),
            },
            generation: Some(1),
            config: engine::parse(CONFIG.as_bytes()).unwrap(),
            backends,
            tls,
            status: Default::default(),
        };
        let files = envoy::render(&result, &options).unwrap();
        assert!(files.warnings.is_empty(), "{:?}", files.warnings);
        envoy::write_files(dir.path(), &files).unwrap();
        let mut run = RunOptions::new(dir.path().join(envoy::BOOTSTRAP_FILE));
        run.concurrency = 2;
        let envoy = Envoy::start(run).unwrap();
        let localhost = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let fixture = Fixture {
            envoy,
            echoes,
            _sink: sink,
            ca,
            http: localhost(ports[0]),
            https: localhost(ports[1]),
            _dir: dir,
            _serial: guard,
        };
        fixture.wait_routed();
        fixture
    }

    fn wait_routed(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.send(&Request::get("/").with_host("www.example.com")) {
                Ok(r) if r.status == 200 => return,
                other if Instant::now() > deadline => {
                    panic!("Envoy never routed: {other:?}\n{}", self.envoy.log_tail(40))
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn client(&self) -> HttpClient {
        HttpClient::http1(self.http).with_timeout(Duration::from_secs(20))
    }

    fn send(&self, request: &Request) -> Result<Response, testkit::client::ClientError> {
        self.client().send(request)
    }

    /// `GET target` on `host`, the target sent byte for byte.
    fn get(&self, host: &str, target: &str) -> Response {
        self.send(&Request::get(target).with_host(host))
            .unwrap_or_else(|e| panic!("GET {host}{target}: {e}"))
    }

    fn echo(&self, service: &str) -> &EchoServer {
        &self.echoes[service]
    }

    fn counter(&self, name: &str) -> u64 {
        self.envoy.counter(name).unwrap_or(0)
    }

    /// Envoy still runs, answers its admin endpoint and routes an ordinary request.
    fn assert_still_serving(&mut self) {
        assert!(self.envoy.is_running(), "{}", self.envoy.log_tail(40));
        assert_eq!(self.envoy.admin_get("/ready").unwrap().trim(), "LIVE");
        let r = self.get("www.example.com", "/still-here");
        assert_eq!(service(&r), "site", "{}", r.text());
    }
}

fn service(response: &Response) -> String {
    response.echo().map(|e| e.service).unwrap_or_else(|e| {
        format!(
            "<{} not an echo: {e}: {}>",
            response.status,
            response.text()
        )
    })
}

/// What a request came to: a backend and the path it received, or Envoy's/the filter's own answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Backend { service: String, path: String },
    Redirect { status: u16, location: String },
    Status(u16),
}

fn outcome(response: &Response) -> Outcome {
    match response.status {
        200 => match response.echo() {
            Ok(echo) => Outcome::Backend {
                service: echo.service,
                path: echo.path,
            },
            Err(_) => Outcome::Status(200),
        },
        status @ 300..=399 => Outcome::Redirect {
            status,
            location: response.header("location").unwrap_or_default(),
        },
        status => Outcome::Status(status),
    }
}

/// Traversal and path-confusion attempts: every prefix a route matches (and spellings of it)
/// followed by every way of climbing out of it we know.
fn attack_paths() -> Vec<String> {
    let prefixes = [
        "/store",
        "/team-a",
        "//store",
        "/store/",
        "/./team-a",
        "/x/../team-a",
        "/STORE",
        "/team-a/sub",
    ];
    let climbs = [
        "/../admin",
        "/../../admin",
        "/%2e%2e/admin",
        "/%2E%2e/admin",
        "/%2e%2E/admin",
        "/.%2e/admin",
        "/%2e./admin",
        "/..%2fadmin",
        "/..%2Fadmin",
        "/%2e%2e%2fadmin",
        "/%2E%2E%2Fadmin",
        "/..%5cadmin",
        "/..%5Cadmin",
        "%2f..%2fadmin",
        "%2F..%2Fadmin",
        "\\..\\admin",
        "/..\\admin",
        "//..//admin",
        "/./../admin",
        "/sub/../../admin",
        "/sub/%2e%2e/%2e%2e/admin",
        "/..",
        "/%2e%2e",
        "/admin/..",
        "/..?q=/../x",
        "/%252e%252e/admin",
    ];
    let mut paths: Vec<String> = prefixes
        .iter()
        .flat_map(|p| climbs.iter().map(move |c| format!("{p}{c}")))
        .collect();
    paths.extend(
        [
            "/store/../about",
            "/store/%2e%2e/about",
            "//store//cart",
            "/store/./cart",
            "/store/cart/..",
            "/a/b/../../store/x",
            "/../../etc/passwd",
            "/team-a/%2e%2e%2f%2e%2e%2fadmin",
        ]
        .map(str::to_owned),
    );
    paths
}

/// True when `path` (as a backend received it) holds a segment that climbs: `..` or `.` in any
/// spelling, a backslash, or an empty segment. The one exception is the path `//`, which Envoy's
/// `merge_slashes` leaves alone (it keeps a leading and a trailing slash) and which only a `/`
/// prefix matches: `//store/..` reaches the catch-all as `//`.
fn climbs(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    if path == "//" {
        return false;
    }
    let lower = path.to_ascii_lowercase();
    lower.contains('\\')
        || lower.contains("%5c")
        || lower.contains("%2f")
        || lower.contains("//")
        || lower
            .split('/')
            .any(|s| matches!(s.replace("%2e", ".").as_str(), "." | ".."))
}

/// Sends one path to `www.example.com`, following one redirect (Envoy's unescape redirect) the way a
/// client would, and returns both outcomes.
fn send_following(fx: &Fixture, host: &str, path: &str) -> (Outcome, Option<Outcome>) {
    let first = outcome(&fx.get(host, path));
    let followed = match &first {
        Outcome::Redirect { location, .. } if location.starts_with('/') => {
            Some(outcome(&fx.get(host, location)))
        }
        _ => None,
    };
    (first, followed)
}

#[test]
fn traversal_never_reaches_a_backend_nor_leaves_a_rewritten_prefix() {
    let fx = Fixture::start(|_| {});
    // The issue's own example: the store team's rule must not forward /../about to store.
    let r = fx.get("www.example.com", "/store/../about");
    assert_eq!(
        outcome(&r),
        Outcome::Backend {
            service: "site".into(),
            path: "/about".into()
        }
    );
    let r = fx.get("www.example.com", "/store/%2e%2e/about");
    assert_eq!(service(&r), "site");
    let r = fx.get("www.example.com", "//store//cart");
    assert_eq!(
        outcome(&r),
        Outcome::Backend {
            service: "store".into(),
            path: "/cart".into()
        }
    );
    // Encoded slashes and backslashes: redirected to the unescaped path, never forwarded escaped.
    let r = fx.get("www.example.com", "/store%2F..%2Fabout");
    assert_eq!(r.status, 307, "{}", r.text());
    assert_eq!(r.header("location").as_deref(), Some("/about"));
    assert_eq!(fx.echo("store").request_count(), 1, "only //store//cart");

    let mut seen = 0;
    for path in attack_paths() {
        for host in ["www.example.com", "plain.example.com"] {
            let (first, followed) = send_following(&fx, host, &path);
            for outcome in std::iter::once(&first).chain(followed.as_ref()) {
                match outcome {
                    Outcome::Backend { service, path: got } => {
                        seen += 1;
                        assert!(!climbs(got), "{host}{path} reached {service} as {got}");
                    }
                    // 400: a path Envoy cannot normalize. 404: no route for the normalized path.
                    Outcome::Status(400 | 404) => {}
                    Outcome::Redirect {
                        status: 307,
                        location,
                    } => {
                        assert!(!climbs(location), "{host}{path} redirected to {location}");
                    }
                    other => panic!("{host}{path}: unexpected {other:?}"),
                }
            }
        }
    }
    assert!(seen > 300, "only {seen} attack requests reached a backend");

    // Everything every backend received, whichever way it got there.
    for service in ECHO_SERVICES {
        let received = fx
            .echo(service)
            .recent_requests(testkit::echo::HISTORY_CAPACITY);
        assert!(!received.is_empty(), "{service} received nothing");
        for request in received {
            assert!(
                !climbs(&request.path),
                "{service} received {}",
                request.path
            );
        }
    }
    // The rewritten prefix holds: team-a's backend only ever sees /internal/team-a and below.
    for request in fx
        .echo("team")
        .recent_requests(testkit::echo::HISTORY_CAPACITY)
    {
        let path = request.path.split('?').next().unwrap_or_default();
        assert!(
            path == "/internal/team-a" || path.starts_with("/internal/team-a/"),
            "team backend received {}",
            request.path
        );
    }
    assert!(fx.counter("http.gateway_80.downstream_rq_redirected_with_normalized_path") > 0);
}

#[test]
fn the_filter_matches_the_path_envoy_forwards() {
    let fx = Fixture::start(|_| {});
    let table = engine::RouteTable::from_json(CONFIG.as_bytes()).unwrap();
    let mut compared = 0;
    for path in attack_paths() {
        // plain.example.com forwards unchanged: its backend shows the path Envoy forwards.
        let (plain, plain_followed) = send_following(&fx, "plain.example.com", &path);
        let (www, www_followed) = send_following(&fx, "www.example.com", &path);
        let mut pairs = vec![(plain, www)];
        if let (Some(plain), Some(www)) = (plain_followed, www_followed) {
            pairs.push((plain, www));
        }
        for (plain, www) in pairs {
            let Outcome::Backend {
                service,
                path: normalized,
            } = plain
            else {
                // Envoy answered itself (its unescape redirect, a 400) before any filter ran.
                assert_eq!(plain, www, "{path}");
                continue;
            };
            assert_eq!(service, "plain");
            let request = engine::Request {
                port: 80,
                sni: None,
                method: "GET",
                authority: "www.example.com",
                path: &normalized,
                headers: &[] as &[(&str, &str)],
            };
            let expected = match table.evaluate(&request, &mut engine::SplitMix64(1)).action {
                engine::Action::Forward(forward) => Outcome::Backend {
                    service: forward
                        .backend
                        .trim_start_matches("app/")
                        .trim_end_matches(":8080")
                        .to_owned(),
                    path: forward.path.unwrap_or_else(|| normalized.clone()),
                },
                engine::Action::Redirect(redirect) => Outcome::Redirect {
                    status: redirect.status,
                    location: redirect.location,
                },
                engine::Action::Respond(local) => Outcome::Status(local.status),
            };
            assert_eq!(www, expected, "{path} (Envoy forwards {normalized})");
            compared += 1;
        }
    }
    assert!(compared > 150, "only {compared} paths compared");

    // The same over HTTP/2 (h2c): the normalization does not depend on the codec.
    for (path, service, forwarded) in [
        ("/store/../about", "site", "/about"),
        ("/store/%2E%2e/about", "site", "/about"),
        ("/team-a/x/../y", "team", "/internal/team-a/y"),
    ] {
        let r = HttpClient::h2c(fx.http)
            .send(&Request::get(path).with_host("www.example.com"))
            .unwrap();
        assert_eq!(
            outcome(&r),
            Outcome::Backend {
                service: service.into(),
                path: forwarded.into()
            },
            "h2c {path}"
        );
    }
}

#[test]
fn escaped_slashes_can_be_rejected_instead() {
    let fx = Fixture::start(|options| {
        options.edge.escaped_slashes = EscapedSlashes::RejectRequest;
    });
    for path in ["/store%2F..%2Fabout", "/store/..%5cabout", "/team-a%2fx"] {
        let r = fx.get("www.example.com", path);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
    }
    assert!(fx.counter("http.gateway_80.downstream_rq_failed_path_normalization") >= 3);
    let r = fx.get("www.example.com", "/store/../about");
    assert_eq!(service(&r), "site");
    assert_eq!(fx.echo("store").request_count(), 0);
}

#[test]
fn clients_cannot_steer_routing_retries_or_timeouts() {
    let fx = Fixture::start(|_| {});
    // Every router control Envoy reads from a request, and ours, with values that would be felt.
    let controls: &[(&str, &str)] = &[
        ("x-gateway-wasm-upstream", "app/plain:8080"),
        ("X-Gateway-Wasm-Upstream", "app/team:8080"),
        ("x-envoy-upstream-rq-timeout-ms", "1"),
        ("x-envoy-upstream-rq-per-try-timeout-ms", "1"),
        (
            "x-envoy-retry-on",
            "5xx,retriable-status-codes,reset,connect-failure",
        ),
        ("x-envoy-retriable-status-codes", "503"),
        ("x-envoy-max-retries", "10"),
        ("x-envoy-retry-grpc-on", "unavailable"),
        ("x-envoy-retriable-header-names", "x-retry"),
        ("x-envoy-hedge-on-per-try-timeout", "true"),
        ("x-envoy-upstream-rq-timeout-alt-response", "204"),
        ("x-envoy-upstream-alt-stat-name", "stolen"),
        ("x-envoy-expected-rq-timeout-ms", "1"),
        ("x-envoy-original-path", "/admin"),
        ("x-envoy-original-url", "http://admin.internal/"),
        ("x-envoy-internal", "true"),
        ("x-envoy-external-address", "10.0.0.1"),
        ("x-envoy-force-trace", "true"),
        ("x-envoy-decorator-operation", "stolen"),
        ("x-envoy-ip-tags", "internal"),
        ("x-envoy-downstream-service-cluster", "stolen"),
    ];
    let with_controls = |request: Request| {
        controls
            .iter()
            .fold(request, |r, (name, value)| r.with_header(*name, *value))
    };
    for (label, client) in [("http1", fx.client()), ("h2c", HttpClient::h2c(fx.http))] {
        // Timeouts: a 300 ms backend is waited for, whatever the client asks.
        let r = client
            .send(&with_controls(
                Request::get("/store/slow?delay=300ms").with_host("www.example.com"),
            ))
            .unwrap();
        assert_eq!(
            outcome(&r),
            Outcome::Backend {
                service: "store".into(),
                path: "/slow?delay=300ms".into()
            }
        );
        let echo = r.echo().unwrap();
        let leaked: Vec<&String> = echo
            .headers
            .keys()
            .filter(|k| {
                let k = k.to_ascii_lowercase();
                (k.starts_with("x-envoy-") && k != "x-envoy-external-address")
                    || k.starts_with("x-gateway-wasm-")
            })
            .collect();
        assert!(leaked.is_empty(), "the backend received {leaked:?}");
        assert_eq!(
            echo.header_joined("x-envoy-external-address").as_deref(),
            Some("127.0.0.1"),
            "Envoy's own value, not the client's"
        );

        // Retries: a rule without a retry policy gets none.
        let id = format!("noretry-{label}");
        let r = client
            .send(&with_controls(
                Request::get(format!(
                    "/store/x?uuid={id}&succeedAfter=1&responseCode=503"
                ))
                .with_host("www.example.com"),
            ))
            .unwrap();
        assert_eq!(r.status, 503, "{}", r.text());
        // A rule with `retry.attempts: 2` gets two retries, not the ten asked for.
        let id = format!("capped-{label}");
        let r = client
            .send(&with_controls(
                Request::get(format!("/retry?uuid={id}&succeedAfter=5&responseCode=503"))
                    .with_host("www.example.com"),
            ))
            .unwrap();
        assert_eq!(r.status, 503, "{}", r.text());
        let attempts = fx
            .echo("store")
            .recent_requests(testkit::echo::HISTORY_CAPACITY)
            .iter()
            .filter(|q| q.path.contains(&id))
            .count();
        assert_eq!(attempts, 3, "one try and the rule's two retries");

        // An unrouted request reaches no backend, whatever it names.
        let r = client
            .send(&with_controls(
                Request::get("/x").with_host("nowhere.example.com"),
            ))
            .unwrap();
        assert_eq!(r.status, 404, "{}", r.text());
    }
    assert_eq!(fx.echo("plain").request_count(), 0);
    assert_eq!(fx.echo("team").request_count(), 0);
    let stats = fx.envoy.stats().unwrap();
    assert!(
        stats.keys().all(|k| !k.contains("stolen")),
        "a client chose a stat name"
    );
}

#[test]
fn a_host_for_another_https_listener_is_misdirected() {
    let fx = Fixture::start(|_| {});
    let tls = |sni: &str| TlsConfig::with_ca_pem(sni, fx.ca.cert_pem().as_bytes()).unwrap();
    let r = HttpClient::https1(fx.https, tls("a.example.com"))
        .send(&Request::get("/x").with_host("a.example.com"))
        .unwrap();
    assert_eq!(service(&r), "site");
    let before = fx.echo("site").request_count();
    for client in [
        HttpClient::https1(fx.https, tls("a.example.com")),
        HttpClient::http2_tls(fx.https, tls("a.example.com")),
    ] {
        let r = client
            .send(&Request::get("/x").with_host("b.example.com"))
            .unwrap();
        assert_eq!(r.status, 421, "{}", r.text());
    }
    assert_eq!(fx.echo("site").request_count(), before);
}

/// Sends raw bytes and returns the status line Envoy answers with (or how the connection ended).
fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e) => return format!("<{e}>"),
        }
    }
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("<closed>")
        .to_owned()
}

#[test]
fn oversized_and_slow_requests_get_envoys_answer_and_envoy_keeps_serving() {
    let mut fx = Fixture::start(|_| {});
    let host = "www.example.com";
    let big = "a".repeat(70 * 1024);
    // Header block over max_request_headers_kb (60 KiB), too many headers, a 70 KiB URL.
    let r = fx
        .send(
            &Request::get("/store/x")
                .with_host(host)
                .with_header("x-big", &big),
        )
        .unwrap();
    assert_eq!(r.status, 431, "{}", r.text());
    let many = (0..120).fold(Request::get("/store/x").with_host(host), |r, i| {
        r.with_header(format!("x-h{i}"), "v")
    });
    assert_eq!(fx.send(&many).unwrap().status, 431);
    let r = fx.get(host, &format!("/store/{big}"));
    assert_eq!(r.status, 431, "{}", r.text());
    // A header with an underscore: refused, not forwarded for a backend to read as x-team.
    let r = fx
        .send(
            &Request::get("/store/x")
                .with_host(host)
                .with_header("x_team", "admin"),
        )
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(fx.echo("store").request_count(), 0);
    // Over HTTP/2 an oversized header block ends the stream; the next connection is served.
    let h2 = HttpClient::h2c(fx.http).send(
        &Request::get("/store/x")
            .with_host(host)
            .with_header("x-big", &big),
    );
    if let Ok(r) = &h2 {
        assert_eq!(r.status, 431, "{}", r.text());
    }
    // Headers that never finish: 408 after request_headers_timeout (1 s here).
    let line = raw_exchange(
        fx.http,
        b"GET /store/x HTTP/1.1\r\nHost: www.example.com\r\nx-slow: ",
    );
    assert!(line.contains(" 408 "), "{line}");

    // Bodies far larger than the 32 KiB buffers stream through to the backend, also on a rule with
    // retries (Envoy stops buffering for a retry past the limit) and with a mirror (the filter drops
    // the mirror past 64 KiB); nothing is cut and nothing crashes.
    let body = vec![b'x'; 8 * 1024 * 1024];
    let dropped = fx.counter("wasmcustom.gateway_wasm.mirrors.dropped");
    for path in ["/upload", "/upload-retry", "/upload-mirror"] {
        let r = fx
            .send(
                &Request::new("POST", path)
                    .with_host(host)
                    .with_body(body.clone()),
            )
            .unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(
            r.text(),
            body.len().to_string(),
            "{path}: bytes the backend received"
        );
    }
    assert_eq!(
        fx.counter("wasmcustom.gateway_wasm.mirrors.dropped"),
        dropped + 1
    );
    assert_eq!(
        fx.echo("plain").request_count(),
        0,
        "the oversized mirror was dropped"
    );
    assert!(fx.counter("cluster.app/sink_8080.retry_or_shadow_abandoned") >= 1);
    // Unrouted with a large body: the filter answers 404 as soon as the headers are in, without
    // waiting for (or buffering) the body; Envoy then closes the connection.
    let mut head = format!(
        "POST /x HTTP/1.1\r\nHost: nowhere.example.com\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    head.extend_from_slice(&body[..64 * 1024]);
    let line = raw_exchange(fx.http, &head);
    assert!(line.starts_with("HTTP/1.1 404 "), "{line}");

    fx.assert_still_serving();
}

/// A backend that reads the whole request body and answers with the number of bytes it received
/// (the echo backend answers without reading bodies).
struct BodySink {
    addr: SocketAddr,
    _thread: std::thread::JoinHandle<()>,
}

impl BodySink {
    fn start() -> BodySink {
        use http_body_util::BodyExt as _;

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(
                            |request: hyper::Request<hyper::body::Incoming>| async move {
                                let mut body = request.into_body();
                                let mut received: usize = 0;
                                while let Some(frame) = body.frame().await {
                                    if let Ok(data) = frame?.into_data() {
                                        received += data.len();
                                    }
                                }
                                Ok::<_, hyper::Error>(hyper::Response::new(
                                    http_body_util::Full::new(bytes::Bytes::from(
                                        received.to_string(),
                                    )),
                                ))
                            },
                        );
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        BodySink {
            addr,
            _thread: thread,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }
}
