//! Tests of the Envoy handle; most run the real Envoy binary.

use super::*;
use crate::certs::CertificateAuthority;
use crate::client::{ClientError, HttpClient, HttpVersion, TlsConfig};
use crate::echo::{EchoIdentity, EchoServer};
use crate::ports::free_ports;

fn echo(service: &str) -> EchoServer {
    EchoServer::start(
        EchoIdentity::new("gateway-conformance-infra", service, format!("{service}-0")),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap()
}

fn cluster(name: &str, addr: SocketAddr, h2c: bool) -> String {
    let protocol = if h2c {
        r#"
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}"#
    } else {
        ""
    };
    format!(
        r#"
  - name: {name}
    type: STATIC
    connect_timeout: 2s{protocol}
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}"#,
        port = addr.port()
    )
}

const HCM: &str = r#"
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: STAT
          codec_type: AUTO
          upgrade_configs: [{upgrade_type: websocket}]
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/h2c"}
                route: {cluster: echo_h2c}
              - match: {prefix: "/retry"}
                route:
                  cluster: echo
                  retry_policy: {retry_on: "reset,5xx", num_retries: 3}
              - match: {prefix: "/mirror"}
                route:
                  cluster: echo
                  request_mirror_policies: [{cluster: mirror}]
              - match: {prefix: "/"}
                route: {cluster: echo}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}"#;

struct Setup {
    _dir: tempfile::TempDir,
    envoy: Envoy,
    http: SocketAddr,
    https: SocketAddr,
    ca: CertificateAuthority,
    echo: EchoServer,
    echo_h2c: EchoServer,
    mirror: EchoServer,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (echo, echo_h2c, mirror) = (
        echo("infra-backend-v1"),
        echo("infra-backend-v2"),
        echo("mirror"),
    );
    let ca = CertificateAuthority::new("testkit CA").unwrap();
    let files = ca
        .issue(&["secure.example.com"])
        .unwrap()
        .write(dir.path(), "secure")
        .unwrap();
    let ports = free_ports(2).unwrap();
    let (http_port, https_port) = (ports[0], ports[1]);
    let bootstrap = format!(
        r#"node: {{id: testkit, cluster: testkit}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
static_resources:
  listeners:
  - name: http
    address: {{socket_address: {{address: 127.0.0.1, port_value: {http_port}}}}}
    filter_chains:
    - filters:{http_hcm}
  - name: https
    address: {{socket_address: {{address: 127.0.0.1, port_value: {https_port}}}}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            tls_certificates:
            - certificate_chain: {{filename: {chain}}}
              private_key: {{filename: {key}}}
      filters:{https_hcm}
  clusters:{c1}{c2}{c3}
"#,
        http_hcm = HCM.replace("STAT", "ingress_http"),
        https_hcm = HCM.replace("STAT", "ingress_https"),
        chain = files.chain.display(),
        key = files.key.display(),
        c1 = cluster("echo", echo.addr(), false),
        c2 = cluster("echo_h2c", echo_h2c.addr(), true),
        c3 = cluster("mirror", mirror.addr(), false),
    );
    let path = dir.path().join("bootstrap.yaml");
    std::fs::write(&path, bootstrap).unwrap();
    validate_config(&path).unwrap();
    let envoy = Envoy::start(EnvoyOptions::new(&path)).unwrap();
    Setup {
        _dir: dir,
        envoy,
        http: SocketAddr::from(([127, 0, 0, 1], http_port)),
        https: SocketAddr::from(([127, 0, 0, 1], https_port)),
        ca,
        echo,
        echo_h2c,
        mirror,
    }
}

#[test]
fn envoy_proxies_to_echo_backends() {
    let s = setup();
    let client = HttpClient::http1(s.http);

    // Plain HTTP/1.1 through Envoy to an HTTP/1.1 upstream.
    let response = client
        .send(
            &Request::get("/some/path?q=1")
                .with_host("example.com")
                .with_header("x-custom", "abc"),
        )
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.echo().unwrap();
    assert_eq!(body.path, "/some/path?q=1");
    assert_eq!(body.host, "example.com");
    assert_eq!(body.proto, "HTTP/1.1");
    assert_eq!(body.service, "infra-backend-v1");
    assert_eq!(body.header("x-custom").unwrap(), ["abc".to_owned()]);
    assert!(
        body.header("x-request-id").is_some(),
        "Envoy adds x-request-id: {body:?}"
    );
    assert_eq!(
        s.envoy
            .wait_for_counter(
                "cluster.echo.upstream_rq_total",
                |v| v >= 1,
                Duration::from_secs(10)
            )
            .unwrap(),
        1
    );

    // h2c upstream.
    let body = client
        .send(&Request::get("/h2c/x").with_host("example.com"))
        .unwrap()
        .echo()
        .unwrap();
    assert_eq!(
        (body.proto.as_str(), body.service.as_str()),
        ("HTTP/2.0", "infra-backend-v2")
    );
    assert_eq!(s.echo_h2c.request_count(), 1);

    // Downstream h2c.
    let response = HttpClient::h2c(s.http)
        .send(&Request::get("/").with_host("h2.example"))
        .unwrap();
    assert_eq!(response.version, HttpVersion::Http2);
    assert_eq!(response.echo().unwrap().host, "h2.example");

    // Retries: the backend resets the first two attempts; Envoy retries and the third succeeds.
    let response = client
        .send(&Request::get("/retry?uuid=u1&succeedAfter=2").with_host("example.com"))
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let retries = s
        .envoy
        .wait_for_counter(
            "cluster.echo.upstream_rq_retry",
            |v| v >= 2,
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(retries, 2);

    // Mirroring: the mirror backend sees a copy.
    let response = client
        .send(&Request::get("/mirror/m").with_host("mirror.example"))
        .unwrap();
    assert_eq!(response.echo().unwrap().service, "infra-backend-v1");
    s.mirror
        .wait_for_request_count(1, Duration::from_secs(10))
        .unwrap();
    let copy = s.mirror.recent_requests(1).pop().unwrap();
    assert_eq!(copy.path, "/mirror/m");
    assert!(copy.host.starts_with("mirror.example"), "{copy:?}");

    // Response headers set by the backend pass through.
    let response = client
        .send(
            &Request::get("/")
                .with_host("example.com")
                .with_header("X-Echo-Set-Header", "X-Out:1"),
        )
        .unwrap();
    assert_eq!(response.header("x-out").as_deref(), Some("1"));

    // WebSocket through Envoy.
    let mut ws = client
        .websocket(&Request::get("/ws").with_host("ws.example"))
        .unwrap();
    assert_eq!(ws.echo_text("through envoy").unwrap(), "through envoy");
    ws.close().unwrap();

    // Stats and logs.
    let stats = s.envoy.stats().unwrap();
    assert!(
        stats
            .get("http.ingress_http.downstream_rq_total")
            .copied()
            .unwrap_or(0)
            >= 7,
        "{stats:?}"
    );
    assert!(s.envoy.counter("no.such.stat").is_none());
    assert!(
        s.envoy
            .wait_for_counter("no.such.stat", |_| true, Duration::from_millis(100))
            .is_err()
    );
    assert!(
        s.envoy
            .admin_get("/server_info")
            .unwrap()
            .contains(ENVOY_VERSION)
    );
    assert!(!s.envoy.log_tail(20).is_empty());
    assert!(s.echo.request_count() >= 6);
}

#[test]
fn envoy_terminates_tls_with_testkit_certificates() {
    let s = setup();
    let trusted = TlsConfig::with_ca_pem("secure.example.com", s.ca.cert_pem().as_bytes()).unwrap();
    let request = Request::get("/tls").with_host("secure.example.com");

    let response = HttpClient::https1(s.https, trusted.clone())
        .send(&request)
        .unwrap();
    assert_eq!(response.version, HttpVersion::Http11);
    assert_eq!(response.echo().unwrap().path, "/tls");

    let response = HttpClient::http2_tls(s.https, trusted)
        .send(&request)
        .unwrap();
    assert_eq!(response.version, HttpVersion::Http2);
    assert_eq!(response.echo().unwrap().host, "secure.example.com");

    let any = TlsConfig::insecure_accept_any_cert("whatever.example");
    assert_eq!(
        HttpClient::https1(s.https, any)
            .send(&request)
            .unwrap()
            .status,
        200
    );

    let other_ca = CertificateAuthority::new("other").unwrap();
    let untrusted =
        TlsConfig::with_ca_pem("secure.example.com", other_ca.cert_pem().as_bytes()).unwrap();
    let err = HttpClient::https1(s.https, untrusted)
        .send(&request)
        .unwrap_err();
    assert!(matches!(err, ClientError::Tls { .. }), "{err}");
    let wrong_name =
        TlsConfig::with_ca_pem("other.example.com", s.ca.cert_pem().as_bytes()).unwrap();
    let err = HttpClient::https1(s.https, wrong_name)
        .send(&request)
        .unwrap_err();
    assert!(matches!(err, ClientError::Tls { .. }), "{err}");
}

#[test]
fn drop_stops_envoy_and_bad_configs_are_reported() {
    let Setup { envoy, http, .. } = setup();
    let pid = envoy.pid();
    drop(envoy);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "Envoy {pid} still exists"
    );
    assert!(
        crate::ports::wait_for_tcp(http, Duration::from_millis(200)).is_err(),
        "listener still open"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "static_resources: {clusters: [{name: x, type: NOT_A_TYPE}]}\n",
    )
    .unwrap();
    let err = validate_config(&bad).unwrap_err();
    assert!(err.to_string().contains("NOT_A_TYPE"), "{err:#}");
    let err = Envoy::start(EnvoyOptions {
        ready_timeout: Duration::from_secs(30),
        ..EnvoyOptions::new(&bad)
    })
    .unwrap_err();
    assert!(err.to_string().contains("exited"), "{err:#}");
    assert!(
        err.to_string().contains("NOT_A_TYPE"),
        "the log tail explains why: {err:#}"
    );
}

#[test]
fn finds_the_workspace_root() {
    let root = workspace_root().unwrap();
    assert!(
        root.join("testkit/Cargo.toml").is_file(),
        "{}",
        root.display()
    );
}

#[test]
fn parses_admin_stats_json() {
    let text = r#"{"stats":[{"name":"a.b","value":3},{"name":"g","value":0},{"name":"t","value":"text"},
            {"histograms":{"supported_quantiles":[0,25]}}]}"#;
    let stats = parse_stats_json(text).unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!(stats.get("a.b"), Some(&3));
    assert!(parse_stats_json("{}").is_err());
}
