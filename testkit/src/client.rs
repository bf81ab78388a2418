//! An HTTP test client that sends exactly what a test case says.
//!
//! A [`Request`] carries a method, a request target used verbatim (path plus query, never normalised),
//! an optional `Host`/`:authority` (verbatim; when absent the target address is used), arbitrary headers in
//! order, and a body. An [`HttpClient`] sends it to one address over one [`Protocol`]:
//! plain HTTP/1.1, HTTP/1.1 over TLS, HTTP/2 over TLS (ALPN `h2`), or h2c with prior knowledge.
//! Every request uses a fresh connection, redirects are never followed, and the whole [`Response`]
//! (status, every header value in order, body, version) comes back.
//!
//! HTTP/1.1 is written and parsed by hand (so the request line and headers are byte-for-byte what the case
//! says); HTTP/2 goes through hyper's client connection. TLS uses rustls with either a trusted CA
//! ([`TlsConfig::with_ca_pem`]) or, explicitly, no verification at all
//! ([`TlsConfig::insecure_accept_any_cert`]).
//!
//! Both a blocking API ([`HttpClient::send`], for plain `#[test]`s and sync runners; it builds a small
//! runtime per call) and an async one ([`HttpClient::send_async`]) are offered. [`HttpClient::websocket`] opens a WebSocket through the same address (e.g. through Envoy).

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader,
};
use tokio::net::TcpStream;

use crate::echo::EchoBody;
use crate::websocket::{self, Message, WsError};

/// Default connect timeout (TCP connect plus TLS handshake).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default timeout for the exchange after connecting (writing the request, reading the whole response).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest response head accepted.
const MAX_HEAD_LEN: usize = 1024 * 1024;

/// Errors of the test client. Each names the address it was talking to.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request cannot be sent as given (e.g. CR/LF inside a header, an unparsable HTTP/2 target).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Building the TLS configuration failed (bad CA PEM, bad SNI).
    #[error("TLS configuration: {0}")]
    TlsConfig(String),
    /// The TCP connection could not be made.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// Target address.
        addr: SocketAddr,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Connecting (TCP plus TLS) took longer than the connect timeout.
    #[error("connecting to {addr}: no connection within {timeout:?}")]
    ConnectTimeout {
        /// Target address.
        addr: SocketAddr,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The TLS handshake failed (certificate rejected, no common ALPN, …).
    #[error("TLS handshake with {addr} (SNI {sni}): {source}")]
    Tls {
        /// Target address.
        addr: SocketAddr,
        /// The SNI sent.
        sni: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The server closed or reset the connection before a complete response head arrived.
    #[error("{addr} closed the connection without a response ({detail})")]
    ConnectionClosed {
        /// Target address.
        addr: SocketAddr,
        /// What was observed (EOF, reset, …).
        detail: String,
    },
    /// Reading or writing failed after the connection was established.
    #[error("I/O with {addr}: {source}")]
    Io {
        /// Target address.
        addr: SocketAddr,
        /// Underlying error.
        source: std::io::Error,
    },
    /// No complete response within the timeout.
    #[error("no complete response from {addr} within {timeout:?}")]
    Timeout {
        /// Target address.
        addr: SocketAddr,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The server's answer violates HTTP (or HTTP/2 failed, e.g. a stream reset).
    #[error("protocol error with {addr}: {message}")]
    Protocol {
        /// Target address.
        addr: SocketAddr,
        /// What went wrong.
        message: String,
    },
    /// A WebSocket upgrade was answered with something other than 101.
    #[error("WebSocket upgrade to {addr} refused with status {}", response.status)]
    UpgradeRefused {
        /// Target address.
        addr: SocketAddr,
        /// The full response the server sent instead.
        response: Box<Response>,
    },
    /// WebSocket framing failed after the upgrade.
    #[error("WebSocket with {addr}: {source}")]
    WebSocket {
        /// Target address.
        addr: SocketAddr,
        /// Underlying error.
        source: WsError,
    },
    /// A blocking call was made inside a tokio runtime, or no runtime could be built.
    #[error("blocking client: {0}")]
    Runtime(String),
    /// The response body is not the JSON expected.
    #[error("response body is not the expected JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl ClientError {
    /// True when the server closed/reset the connection instead of answering (the retry simulator's
    /// "fail without a response", or a backend that went away).
    pub fn is_connection_closed(&self) -> bool {
        matches!(self, ClientError::ConnectionClosed { .. })
    }
}

/// The HTTP version a response came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpVersion {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    Http11,
    /// HTTP/2.
    Http2,
}

impl HttpVersion {
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpVersion::Http10 => "HTTP/1.0",
            HttpVersion::Http11 => "HTTP/1.1",
            HttpVersion::Http2 => "HTTP/2.0",
        }
    }
}

impl fmt::Display for HttpVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which certificates a TLS client accepts.
#[derive(Clone)]
pub enum Trust {
    /// Certificates chaining to these roots (and valid for the SNI name).
    Roots(Arc<rustls::RootCertStore>),
    /// Any certificate at all, unverified. Tests only.
    InsecureAcceptAnyCert,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trust::Roots(r) => write!(f, "Roots({} certificates)", r.len()),
            Trust::InsecureAcceptAnyCert => f.write_str("InsecureAcceptAnyCert"),
        }
    }
}

/// TLS settings: the SNI to send and what to trust.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Server name sent as SNI and checked against the certificate (an IP literal sends no SNI).
    pub sni: String,
    /// Certificate verification policy.
    pub trust: Trust,
}

impl TlsConfig {
    /// Trust the CA certificate(s) in `pem`.
    pub fn with_ca_pem(sni: impl Into<String>, pem: &[u8]) -> Result<TlsConfig, ClientError> {
        let mut store = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| ClientError::TlsConfig(format!("parsing CA PEM: {e}")))?;
            store
                .add(cert)
                .map_err(|e| ClientError::TlsConfig(format!("adding a CA certificate: {e}")))?;
        }
        if store.is_empty() {
            return Err(ClientError::TlsConfig(
                "the CA PEM holds no certificate".into(),
            ));
        }
        Ok(TlsConfig {
            sni: sni.into(),
            trust: Trust::Roots(Arc::new(store)),
        })
    }

    /// Trust the CA certificate(s) in the PEM file at `path`.
    pub fn with_ca_file(sni: impl Into<String>, path: &Path) -> Result<TlsConfig, ClientError> {
        let pem = std::fs::read(path).map_err(|e| {
            ClientError::TlsConfig(format!("reading CA file {}: {e}", path.display()))
        })?;
        Self::with_ca_pem(sni, &pem)
    }

    /// Accept any server certificate without verification. Only for tests that do not check TLS itself.
    pub fn insecure_accept_any_cert(sni: impl Into<String>) -> TlsConfig {
        TlsConfig {
            sni: sni.into(),
            trust: Trust::InsecureAcceptAnyCert,
        }
    }

    fn client_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ClientConfig>, ClientError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::TlsConfig(format!("protocol versions: {e}")))?;
        let mut config = match &self.trust {
            Trust::Roots(roots) => builder
                .with_root_certificates(roots.clone())
                .with_no_client_auth(),
            Trust::InsecureAcceptAnyCert => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
                .with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// The certificate verifier behind [`TlsConfig::insecure_accept_any_cert`].
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// How to talk to the server.
#[derive(Debug, Clone)]
pub enum Protocol {
    /// Plain HTTP/1.1.
    Http1,
    /// HTTP/1.1 over TLS (ALPN `http/1.1`).
    Http1Tls(TlsConfig),
    /// HTTP/2 over TLS (ALPN `h2`; fails if the server does not select it).
    Http2Tls(TlsConfig),
    /// HTTP/2 over cleartext with prior knowledge.
    H2c,
}

/// A request exactly as a test case describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// Method, sent verbatim (`GET`, `POST`, or anything else).
    pub method: String,
    /// Request target sent verbatim: path plus query (`/a/../b?x=%2F`).
    pub target: String,
    /// `Host` (HTTP/1.1) / `:authority` (HTTP/2) value. `None`: a `host` entry in `headers` if there is one,
    /// else the server address (`127.0.0.1:PORT`).
    pub host: Option<String>,
    /// Headers in order; repeated names are sent as repeated header lines.
    pub headers: Vec<(String, String)>,
    /// Body (a `Content-Length` is added when non-empty and the headers carry no length or encoding).
    pub body: Vec<u8>,
}

impl Request {
    /// A request with `method` and `target`, no headers, no body.
    pub fn new(method: impl Into<String>, target: impl Into<String>) -> Request {
        Request {
            method: method.into(),
            target: target.into(),
            ..Request::default()
        }
    }

    /// `GET target`.
    pub fn get(target: impl Into<String>) -> Request {
        Request::new("GET", target)
    }

    /// Sets the `Host` / `:authority`.
    pub fn with_host(mut self, host: impl Into<String>) -> Request {
        self.host = Some(host.into());
        self
    }

    /// Appends a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    }
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Every header line in arrival order (names as received; HTTP/2 names are lowercase).
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
    /// Protocol version of the response.
    pub version: HttpVersion,
}

impl Response {
    /// All values of header `name` (case-insensitive) joined with `,`; `None` when absent.
    pub fn header(&self, name: &str) -> Option<String> {
        let values = self.header_values(name);
        (!values.is_empty()).then(|| values.join(","))
    }

    /// All values of header `name` (case-insensitive), in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, ClientError> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The body parsed as JSON into `T`.
    pub fn json_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, ClientError> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The body parsed as an echo backend's answer.
    pub fn echo(&self) -> Result<EchoBody, ClientError> {
        self.json_as()
    }
}

/// Any stream the client can speak over (TCP or TLS over TCP).
pub(crate) trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}

pub(crate) struct Connection {
    pub(crate) stream: Box<dyn AsyncStream>,
    pub(crate) alpn: Option<Vec<u8>>,
}

/// A client bound to one server address and protocol.
#[derive(Debug, Clone)]
pub struct HttpClient {
    addr: SocketAddr,
    protocol: Protocol,
    connect_timeout: Duration,
    timeout: Duration,
}

impl HttpClient {
    /// A client for `addr` speaking `protocol`, with default timeouts.
    pub fn new(addr: SocketAddr, protocol: Protocol) -> HttpClient {
        HttpClient {
            addr,
            protocol,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Plain HTTP/1.1.
    pub fn http1(addr: SocketAddr) -> HttpClient {
        Self::new(addr, Protocol::Http1)
    }

    /// HTTP/1.1 over TLS.
    pub fn https1(addr: SocketAddr, tls: TlsConfig) -> HttpClient {
        Self::new(addr, Protocol::Http1Tls(tls))
    }

    /// HTTP/2 over TLS (ALPN h2).
    pub fn http2_tls(addr: SocketAddr, tls: TlsConfig) -> HttpClient {
        Self::new(addr, Protocol::Http2Tls(tls))
    }

    /// HTTP/2 cleartext with prior knowledge.
    pub fn h2c(addr: SocketAddr) -> HttpClient {
        Self::new(addr, Protocol::H2c)
    }

    /// Sets the connect timeout (TCP plus TLS handshake).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> HttpClient {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the timeout for the exchange after connecting (request written, whole response read).
    pub fn with_timeout(mut self, timeout: Duration) -> HttpClient {
        self.timeout = timeout;
        self
    }

    /// The server address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The timeout for one exchange after connecting.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The protocol.
    pub fn protocol(&self) -> &Protocol {
        &self.protocol
    }

    /// Sends `request` on a new connection and reads the whole response. Blocking (inside a tokio runtime
    /// it runs on a helper thread, but it still stalls the calling runtime thread, so a server running on
    /// the same current-thread runtime cannot answer; prefer [`HttpClient::send_async`] there).
    pub fn send(&self, request: &Request) -> Result<Response, ClientError> {
        crate::rt::block_on(self.send_async(request)).map_err(ClientError::Runtime)?
    }

    /// Async form of [`HttpClient::send`].
    pub async fn send_async(&self, request: &Request) -> Result<Response, ClientError> {
        let (tls, alpn): (Option<&TlsConfig>, &[&[u8]]) = match &self.protocol {
            Protocol::Http1 | Protocol::H2c => (None, &[]),
            Protocol::Http1Tls(tls) => (Some(tls), &[b"http/1.1"]),
            Protocol::Http2Tls(tls) => (Some(tls), &[b"h2"]),
        };
        let connection = self.connect(tls, alpn).await?;
        let exchange = async {
            match &self.protocol {
                Protocol::Http1 | Protocol::Http1Tls(_) => {
                    let mut reader = BufReader::new(connection.stream);
                    write_h1_request(&mut reader, request, self.addr).await?;
                    read_h1_response(&mut reader, request, self.addr).await
                }
                Protocol::Http2Tls(tls) => {
                    if connection.alpn.as_deref() != Some(b"h2".as_slice()) {
                        return Err(ClientError::Protocol {
                            addr: self.addr,
                            message: format!(
                                "server (SNI {}) did not select h2 through ALPN",
                                tls.sni
                            ),
                        });
                    }
                    h2_exchange(connection.stream, request, "https", self.addr).await
                }
                Protocol::H2c => h2_exchange(connection.stream, request, "http", self.addr).await,
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                addr: self.addr,
                timeout: self.timeout,
            })?
    }

    /// Opens a WebSocket: sends `request` (usually `GET /path` with a Host) with the upgrade headers it lacks
    /// added (`Upgrade`, `Connection`, `Sec-WebSocket-Version`; `Sec-WebSocket-Key` is always the client's),
    /// expects 101 with the right `Sec-WebSocket-Accept`. HTTP/1.1 protocols only. Blocking: the returned
    /// client owns a runtime, so this refuses to run inside a tokio runtime (use
    /// [`HttpClient::websocket_async`] there).
    pub fn websocket(&self, request: &Request) -> Result<WebSocketClient, ClientError> {
        let runtime = blocking_runtime()?;
        let socket = runtime.block_on(self.websocket_async(request))?;
        Ok(WebSocketClient { runtime, socket })
    }

    /// Async form of [`HttpClient::websocket`].
    pub async fn websocket_async(&self, request: &Request) -> Result<AsyncWebSocket, ClientError> {
        let tls = match &self.protocol {
            Protocol::Http1 => None,
            Protocol::Http1Tls(tls) => Some(tls),
            Protocol::Http2Tls(_) | Protocol::H2c => {
                return Err(ClientError::InvalidRequest(
                    "WebSocket upgrades need an HTTP/1.1 protocol (Http1 or Http1Tls)".into(),
                ));
            }
        };
        let connection = self.connect(tls, &[b"http/1.1"]).await?;
        let key = websocket::new_client_key();
        let mut upgrade = request.clone();
        // The key is always ours (the accept check depends on it); the others only when the case lacks them.
        upgrade
            .headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("sec-websocket-key"));
        for (name, value) in [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key.as_str()),
            ("Sec-WebSocket-Version", "13"),
        ] {
            if !upgrade.has_header(name) {
                upgrade.headers.push((name.to_owned(), value.to_owned()));
            }
        }
        let addr = self.addr;
        let handshake = async {
            let mut reader = BufReader::new(connection.stream);
            write_h1_request(&mut reader, &upgrade, addr).await?;
            let response = read_h1_response(&mut reader, &upgrade, addr).await?;
            Ok::<_, ClientError>((reader, response))
        };
        let (stream, response) = tokio::time::timeout(self.timeout, handshake)
            .await
            .map_err(|_| ClientError::Timeout {
                addr,
                timeout: self.timeout,
            })??;
        if response.status != 101 {
            return Err(ClientError::UpgradeRefused {
                addr,
                response: Box::new(response),
            });
        }
        let expected = websocket::accept_key(&key);
        if response.header("sec-websocket-accept").as_deref() != Some(expected.as_str()) {
            return Err(ClientError::Protocol {
                addr,
                message: format!(
                    "Sec-WebSocket-Accept is {:?}, expected {expected:?}",
                    response.header("sec-websocket-accept")
                ),
            });
        }
        Ok(AsyncWebSocket {
            stream,
            addr,
            timeout: self.timeout,
            handshake: response,
        })
    }

    /// TCP (plus TLS with `alpn` when `tls` is given) within the connect timeout; the gRPC client
    /// shares it.
    pub(crate) async fn connect(
        &self,
        tls: Option<&TlsConfig>,
        alpn: &[&[u8]],
    ) -> Result<Connection, ClientError> {
        let addr = self.addr;
        let connect = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|source| ClientError::Connect { addr, source })?;
            let _ = tcp.set_nodelay(true);
            let Some(tls) = tls else {
                return Ok(Connection {
                    stream: Box::new(tcp),
                    alpn: None,
                });
            };
            let config = tls.client_config(alpn)?;
            let server_name = ServerName::try_from(tls.sni.clone())
                .map_err(|e| ClientError::TlsConfig(format!("SNI {:?}: {e}", tls.sni)))?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(server_name, tcp)
                .await
                .map_err(|source| ClientError::Tls {
                    addr,
                    sni: tls.sni.clone(),
                    source,
                })?;
            let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            Ok(Connection {
                stream: Box::new(stream),
                alpn,
            })
        };
        tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| ClientError::ConnectTimeout {
                addr,
                timeout: self.connect_timeout,
            })?
    }
}

fn blocking_runtime() -> Result<tokio::runtime::Runtime, ClientError> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(ClientError::Runtime(
            "called a blocking method inside a tokio runtime; use the *_async method".into(),
        ));
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Runtime(format!("building a tokio runtime: {e}")))
}

fn check_no_line_breaks(what: &str, value: &str) -> Result<(), ClientError> {
    if value.contains(['\r', '\n']) {
        return Err(ClientError::InvalidRequest(format!(
            "{what} contains CR or LF: {value:?}"
        )));
    }
    Ok(())
}

mod wire;
mod ws;

use wire::*;
pub use ws::{AsyncWebSocket, WebSocketClient};

#[cfg(test)]
mod tests;
