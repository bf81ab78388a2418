//! gRPC through the listeners the shim renders, in the real Envoy 1.40 with the filter: a client
//! speaking HTTP/2 with prior knowledge (h2c) and one speaking HTTP/2 over TLS (ALPN `h2`) reach a
//! gRPC echo backend over an h2c cluster, `grpc-timeout` and the other gRPC request headers arrive
//! untouched, and the backend's trailers (`grpc-status`, `grpc-message`) come back as trailers.
//!
//! The route is an HTTPRoute on the service's path prefix (users route gRPC with HTTPRoutes too), so
//! this pins the listener and cluster side independently of GRPCRoute matching.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod support;

use controller_shim::envoy::{self, EnvoyOptions};
use controller_shim::resolution::{
    BackendTarget, Endpoint, GatewayResult, ObjectKey, TlsCertificate,
};
use testkit::certs::CertificateAuthority;
use testkit::client::TlsConfig;
use testkit::echo::EchoIdentity;
use testkit::envoy::{Envoy, EnvoyOptions as RunOptions};
use testkit::grpc::client::encode_timeout;
use testkit::grpc::status::{StreamEnd, decode_grpc_message};
use testkit::grpc::{EchoMethod, GrpcClient, GrpcCode, GrpcEchoServer, GrpcRequest};

const HOST: &str = "grpc.example.com";

const CONFIG: &str = r#"{
  "schemaVersion": 1,
  "revision": "grpc-listeners",
  "gateway": {"namespace": "infra", "name": "gw"},
  "listeners": [
    {"name": "http", "port": 80, "protocol": "HTTP"},
    {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "grpc.example.com"}
  ],
  "routes": [{
    "namespace": "app", "name": "grpc-over-httproute",
    "parents": [{"listener": "http", "hostnames": ["grpc.example.com"]}, {"listener": "https"}],
    "rules": [
      {"matches": [{"path": {"type": "PathPrefix",
                             "value": "/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/"}}],
       "backendRefs": [{"backend": "app/grpc:8080"}]}
    ]
  }],
  "backends": {"app/grpc:8080": {"upstream": "app/grpc:8080"}}
}"#;

struct Fixture {
    envoy: Envoy,
    backend: GrpcEchoServer,
    ca: CertificateAuthority,
    http: SocketAddr,
    https: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Fixture {
        let backend = GrpcEchoServer::start(
            EchoIdentity::new("app", "grpc", "grpc-0"),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let ca = CertificateAuthority::new("gateway-wasm gRPC e2e CA").unwrap();
        let issued = ca.issue(&[HOST]).unwrap();
        let result = GatewayResult {
            gateway: ObjectKey {
                namespace: "infra".into(),
                name: "gw".into(),
            },
            generation: Some(1),
            config: engine::parse(CONFIG.as_bytes()).unwrap(),
            backends: BTreeMap::from([(
                "app/grpc:8080".to_owned(),
                BackendTarget {
                    namespace: "app".into(),
                    service: "grpc".into(),
                    port: 8080,
                    app_protocol: Some("kubernetes.io/h2c".into()),
                    endpoints: vec![Endpoint {
                        address: "127.0.0.1".into(),
                        port: backend.addr().port(),
                    }],
                },
            )]),
            tls: BTreeMap::from([(
                "https".to_owned(),
                vec![TlsCertificate {
                    secret: ObjectKey {
                        namespace: "infra".into(),
                        name: "grpc-cert".into(),
                    },
                    certificate_pem: issued.chain_pem(),
                    private_key_pem: issued.key_pem.clone(),
                }],
            )]),
            status: Default::default(),
        };
        let dir = tempfile::tempdir().unwrap();
        let ports = testkit::ports::free_ports(2).unwrap();
        let mut options = EnvoyOptions::new(dir.path(), support::plugin_wasm());
        options.bind_address = "127.0.0.1".into();
        options.admin_port = 0;
        options.port_map = BTreeMap::from([(80, ports[0]), (443, ports[1])]);
        let files = envoy::render(&result, &options).unwrap();
        assert!(files.warnings.is_empty(), "{:?}", files.warnings);
        envoy::write_files(dir.path(), &files).unwrap();
        let mut run = RunOptions::new(dir.path().join(envoy::BOOTSTRAP_FILE));
        run.concurrency = 1;
        let envoy = Envoy::start(run).unwrap();
        let localhost = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let fixture = Fixture {
            envoy,
            backend,
            ca,
            http: localhost(ports[0]),
            https: localhost(ports[1]),
            _dir: dir,
        };
        fixture.wait_routed();
        fixture
    }

    fn h2c(&self) -> GrpcClient {
        GrpcClient::h2c(self.http).with_timeout(Duration::from_secs(10))
    }

    fn tls(&self) -> GrpcClient {
        let tls = TlsConfig::with_ca_pem(HOST, self.ca.cert_pem().as_bytes()).unwrap();
        GrpcClient::tls(self.https, tls).with_timeout(Duration::from_secs(10))
    }

    /// Waits until the filter has its first configuration and routes the echo service.
    fn wait_routed(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let call = self
                .h2c()
                .echo(&GrpcRequest::echo(EchoMethod::Echo).with_authority(HOST));
            match call {
                Ok(call) if call.code() == GrpcCode::OK => return,
                other if Instant::now() > deadline => panic!(
                    "Envoy never routed the gRPC echo service: {other:?}\n{}",
                    self.envoy.log_tail(40)
                ),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

#[test]
fn grpc_over_h2c_and_over_tls_alpn_h2_passes_timeouts_and_trailers_through() {
    let fx = Fixture::start();
    let deadline = Duration::from_millis(4_321);
    let call = GrpcRequest::echo(EchoMethod::Echo)
        .with_authority(HOST)
        .with_deadline(deadline)
        .with_metadata("x-request-tag", "h2c");

    // h2c with prior knowledge: the listener's codec must take the HTTP/2 preface.
    let before = fx.backend.request_count();
    let answer = fx.h2c().echo(&call).unwrap();
    assert_eq!(answer.code(), GrpcCode::OK, "{}", answer.answer.summary());
    // The backend's status arrives in a trailing HEADERS frame, as the backend sent it.
    assert_eq!(
        answer.answer.end,
        StreamEnd::Trailers(vec![("grpc-status".to_owned(), "0".to_owned())]),
        "{}",
        answer.answer.summary()
    );
    let seen = answer.response.unwrap().assertions.unwrap();
    assert_eq!(seen.context.as_ref().unwrap().service_name, "grpc");
    assert_eq!(seen.authority, HOST);
    assert_eq!(seen.header("x-request-tag").as_deref(), Some("h2c"));
    assert_eq!(fx.backend.request_count(), before + 1);
    // grpc-timeout is the client's deadline, byte for byte: Envoy neither drops nor rewrites it
    // (no max_grpc_timeout on the route) and te: trailers reaches the backend.
    let wire = fx.backend.recent_requests(1).pop().unwrap();
    let header = |name: &str| {
        wire.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("grpc-timeout"), Some(encode_timeout(deadline)));
    assert_eq!(header("te").as_deref(), Some("trailers"));
    assert_eq!(header("content-type").as_deref(), Some("application/grpc"));
    assert_eq!(wire.proto, "HTTP/2.0");

    // HTTP/2 over TLS: the client insists on ALPN h2 (GrpcClient fails otherwise).
    let answer = fx
        .tls()
        .echo(&call.clone().with_metadata("x-request-tag", "tls"))
        .unwrap();
    assert_eq!(answer.code(), GrpcCode::OK, "{}", answer.answer.summary());
    let seen = answer.response.unwrap().assertions.unwrap();
    assert_eq!(seen.header("x-request-tag").as_deref(), Some("h2c,tls"));

    // A backend's error status and message come back untouched (a trailers-only answer).
    let unimplemented = fx
        .h2c()
        .echo(&GrpcRequest::echo(EchoMethod::EchoThree).with_authority(HOST))
        .unwrap();
    assert_eq!(unimplemented.code(), GrpcCode::UNIMPLEMENTED);
    assert_eq!(
        unimplemented
            .answer
            .grpc_message()
            .map(|m| decode_grpc_message(&m)),
        Some("method EchoThree not implemented".to_owned())
    );
}
