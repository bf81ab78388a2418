//! The conformance suite's gRPC echo server (`conformance/echo-basic/grpc/grpc.go` in
//! kubernetes-sigs/gateway-api, v1.6.1), for loopback tests.
//!
//! It serves `gateway_api_conformance.echo_basic.grpcecho.GrpcEcho` over HTTP/2 (h2c with prior
//! knowledge, or TLS with ALPN `h2`) and answers `Echo` and `EchoTwo` with
//! `EchoResponse.assertions`: the fully-qualified method, the request metadata it received, the
//! `:authority`, its identity (`context`: namespace, service, pod) and, over TLS, the connection's
//! TLS facts. Like the original:
//! - `EchoThree` exists but is unimplemented: UNIMPLEMENTED, "method EchoThree not implemented";
//! - another method or service is UNIMPLEMENTED, "unknown method M for service S" / "unknown
//!   service S" (grpc-go's `Server.handleStream`);
//! - metadata is what grpc-go's server puts in the incoming context: every header except the
//!   reserved ones (`te`, `grpc-timeout`, `grpc-encoding`, `grpc-message`, `grpc-status`,
//!   `grpc-message-type`) and `host`, plus `:authority`, `user-agent` and `content-type`;
//!   `-bin` values are base64-decoded;
//! - a request whose `content-type` is not gRPC gets HTTP 415 with INVALID_ARGUMENT, a method other
//!   than POST HTTP 405 with INTERNAL (grpc-go's `http2Server.operateHeaders` early aborts).
//!
//! The gRPC framing and status trailers come from tonic's server machinery (`tonic::server::Grpc`
//! with the prost codec); hyper serves the connections. Every request is counted and the recent ones
//! are kept with all their headers ([`GrpcEchoServer::recent_requests`]), for mirror and metadata
//! checks.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use base64::Engine as _;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::task::JoinHandle;
use tonic::body::Body;
use tonic::{Code, Status};

use super::client::header_list;
use super::proto::{self, Assertions, EchoMethod, EchoRequest, EchoResponse, TlsAssertions};
use super::status::is_grpc_content_type;
use crate::certs::IssuedCert;
use crate::echo::{EchoIdentity, RecordedRequest};
use crate::serve::{self, RequestLog};

/// Headers grpc-go's server keeps out of the metadata (`isReservedHeader` minus the whitelisted
/// `user-agent`; `content-type` is kept when valid, `host` is folded into `:authority`).
const NOT_METADATA: [&str; 7] = [
    "te",
    "grpc-timeout",
    "grpc-encoding",
    "grpc-message",
    "grpc-status",
    "grpc-message-type",
    "host",
];

struct Shared {
    identity: EchoIdentity,
    log: RequestLog,
}

/// A running gRPC echo server. Stops when dropped.
pub struct GrpcEchoServer {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for GrpcEchoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcEchoServer")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .field("identity", &self.shared.identity)
            .finish_non_exhaustive()
    }
}

impl GrpcEchoServer {
    /// Binds `bind` (port 0 picks a free port) and serves h2c on a background runtime owned by the
    /// server. For synchronous code; inside a tokio runtime use [`GrpcEchoServer::start_async`].
    pub fn start(identity: EchoIdentity, bind: SocketAddr) -> Result<GrpcEchoServer> {
        Self::start_on_own_runtime(identity, bind, None)
    }

    /// Like [`GrpcEchoServer::start`], but TLS with ALPN `h2` and the certificate `cert`.
    pub fn start_tls(
        identity: EchoIdentity,
        bind: SocketAddr,
        cert: &IssuedCert,
    ) -> Result<GrpcEchoServer> {
        Self::start_on_own_runtime(identity, bind, Some(cert))
    }

    /// Binds `bind` and serves on the current tokio runtime (TLS when `cert` is given).
    pub async fn start_async(
        identity: EchoIdentity,
        bind: SocketAddr,
        cert: Option<&IssuedCert>,
    ) -> Result<GrpcEchoServer> {
        Self::spawn(identity, bind, cert)
    }

    fn start_on_own_runtime(
        identity: EchoIdentity,
        bind: SocketAddr,
        cert: Option<&IssuedCert>,
    ) -> Result<GrpcEchoServer> {
        let runtime = serve::own_runtime("grpc-echo-server")?;
        let mut server = {
            let _entered = runtime.enter();
            Self::spawn(identity, bind, cert)?
        };
        server.runtime = Some(runtime);
        Ok(server)
    }

    /// Must run inside a runtime context.
    fn spawn(
        identity: EchoIdentity,
        bind: SocketAddr,
        cert: Option<&IssuedCert>,
    ) -> Result<GrpcEchoServer> {
        let acceptor = cert.map(tls_acceptor).transpose()?;
        let (listener, addr) = serve::bind(bind, "gRPC echo server")?;
        let shared = Arc::new(Shared {
            identity,
            log: RequestLog::new(),
        });
        let tls = acceptor.is_some();
        let connections = shared.clone();
        let accept_task = tokio::spawn(serve::accept_loop(listener, move |stream| {
            serve_connection(stream, acceptor.clone(), connections.clone())
        }));
        Ok(GrpcEchoServer {
            addr,
            tls,
            shared,
            accept_task,
            runtime: None,
        })
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// True when the server speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The identity this server reports in `assertions.context`.
    pub fn identity(&self) -> &EchoIdentity {
        &self.shared.identity
    }

    /// HTTP/2 requests received so far (answered or refused).
    pub fn request_count(&self) -> u64 {
        self.shared.log.count()
    }

    /// The last `n` requests received (at most [`crate::echo::HISTORY_CAPACITY`]), oldest first, with every
    /// header as it arrived (`grpc-timeout` and `te` included).
    pub fn recent_requests(&self, n: usize) -> Vec<RecordedRequest> {
        self.shared.log.recent(n)
    }

    /// Stops the server: closes the listener and every connection.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for GrpcEchoServer {
    fn drop(&mut self) {
        serve::stop(&self.accept_task, self.runtime.take());
    }
}

fn tls_acceptor(cert: &IssuedCert) -> Result<tokio_rustls::TlsAcceptor> {
    let chain = CertificateDer::pem_slice_iter(cert.chain_pem().as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .context("gRPC echo server: parsing the certificate chain")?;
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())
        .context("gRPC echo server: parsing the private key")?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("gRPC echo server: TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("gRPC echo server: certificate and key do not fit")?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
) {
    let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    match acceptor {
        None => {
            let service = hyper::service::service_fn(move |req| {
                handle(req, shared.clone(), None::<Arc<TlsAssertions>>)
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
        Some(acceptor) => {
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            let facts = Arc::new(tls_assertions(stream.get_ref().1));
            let service = hyper::service::service_fn(move |req| {
                handle(req, shared.clone(), Some(facts.clone()))
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    }
}

/// What the original reports of a TLS connection (Go's names for versions and cipher suites).
fn tls_assertions(connection: &rustls::ServerConnection) -> TlsAssertions {
    let version = match connection.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "",
    };
    let cipher_suite = connection
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str())
        .map(|name| match name.strip_prefix("TLS13_") {
            Some(rest) => format!("TLS_{rest}"),
            None => name.to_owned(),
        })
        .unwrap_or_default();
    TlsAssertions {
        version: version.to_owned(),
        negotiated_protocol: connection
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default(),
        server_name: connection.server_name().unwrap_or_default().to_owned(),
        cipher_suite,
        peer_certificates: Vec::new(),
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    tls: Option<Arc<TlsAssertions>>,
) -> std::result::Result<Response<Body>, Infallible> {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| header_text(&req, "host"))
        .unwrap_or_default();
    record(&shared, &req, &authority);

    // grpc-go's early aborts, in its order: method, then content-type.
    if req.method() != Method::POST {
        let message = format!(
            "Received a HEADERS frame with :method {:?} which should be POST",
            req.method().as_str()
        );
        return Ok(early_abort(
            StatusCode::METHOD_NOT_ALLOWED,
            Status::new(Code::Internal, message),
        ));
    }
    let content_type = header_text(&req, "content-type").unwrap_or_default();
    if !is_grpc_content_type(&content_type) {
        let message = format!("invalid gRPC request content-type {content_type:?}");
        return Ok(early_abort(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Status::new(Code::InvalidArgument, message),
        ));
    }

    let path = req.uri().path().to_owned();
    let Some((service, method)) = path
        .strip_prefix('/')
        .and_then(|rest| rest.rsplit_once('/'))
    else {
        return Ok(Status::unimplemented(format!("malformed method name: {path:?}")).into_http());
    };
    if service != proto::SERVICE {
        return Ok(Status::unimplemented(format!("unknown service {service}")).into_http());
    }
    let method = match EchoMethod::from_name(method) {
        Some(EchoMethod::EchoThree) => {
            return Ok(Status::unimplemented("method EchoThree not implemented").into_http());
        }
        Some(method) => method,
        None => {
            return Ok(Status::unimplemented(format!(
                "unknown method {method} for service {service}"
            ))
            .into_http());
        }
    };
    let assertions = Assertions {
        fully_qualified_method: method.path(),
        headers: metadata(&req, &authority),
        authority,
        context: Some(proto::Context {
            namespace: shared.identity.namespace.clone(),
            ingress: String::new(),
            service_name: shared.identity.service.clone(),
            pod: shared.identity.pod.clone(),
        }),
        tls_assertions: tls.map(|t| (*t).clone()),
    };
    let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
    Ok(grpc.unary(Echo { assertions }, req).await)
}

/// One unary call of `Echo`/`EchoTwo`: the answer is fixed by the time tonic decodes the request.
struct Echo {
    assertions: Assertions,
}

impl tonic::server::UnaryService<EchoRequest> for Echo {
    type Response = EchoResponse;
    type Future = std::future::Ready<std::result::Result<tonic::Response<EchoResponse>, Status>>;

    fn call(&mut self, request: tonic::Request<EchoRequest>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(EchoResponse {
            assertions: Some(std::mem::take(&mut self.assertions)),
            request: Some(request.into_inner()),
        })))
    }
}

fn header_text(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

fn record(shared: &Shared, req: &Request<Incoming>, authority: &str) {
    let headers = header_list(req.headers());
    shared.log.record(|seq| RecordedRequest {
        seq,
        method: req.method().as_str().to_owned(),
        path: req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        host: authority.to_owned(),
        proto: "HTTP/2.0".to_owned(),
        headers,
    });
}

/// The request metadata as grpc-go's server hands it to the handler.
fn metadata(req: &Request<Incoming>, authority: &str) -> Vec<proto::Header> {
    let mut headers = vec![proto::Header {
        key: ":authority".to_owned(),
        value: authority.to_owned(),
    }];
    for (name, value) in req.headers() {
        let key = name.as_str();
        if NOT_METADATA.contains(&key) {
            continue;
        }
        let value = if key.ends_with("-bin") {
            decode_binary(value)
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        headers.push(proto::Header {
            key: key.to_owned(),
            value,
        });
    }
    headers
}

/// grpc-go's `decodeBinHeader`: padded or unpadded standard base64 (kept as sent when invalid).
fn decode_binary(value: &HeaderValue) -> String {
    let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
    let decoded = if text.len().is_multiple_of(4) {
        base64::engine::general_purpose::STANDARD.decode(&text)
    } else {
        base64::engine::general_purpose::STANDARD_NO_PAD.decode(&text)
    };
    match decoded {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => text,
    }
}

/// A trailers-only refusal with a non-200 status, as grpc-go's `writeEarlyAbort` sends it.
fn early_abort(status: StatusCode, grpc: Status) -> Response<Body> {
    let mut response: Response<Body> = grpc.into_http();
    *response.status_mut() = status;
    response
}
