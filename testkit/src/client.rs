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
trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}

struct Connection {
    stream: Box<dyn AsyncStream>,
    alpn: Option<Vec<u8>>,
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

    async fn connect(
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

/// Writes an HTTP/1.1 request exactly as given.
async fn write_h1_request<W: AsyncWrite + Unpin>(
    writer: &mut W,
    request: &Request,
    addr: SocketAddr,
) -> Result<(), ClientError> {
    check_no_line_breaks("method", &request.method)?;
    check_no_line_breaks("target", &request.target)?;
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.target);
    match &request.host {
        Some(host) => {
            check_no_line_breaks("host", host)?;
            head.push_str(&format!("Host: {host}\r\n"));
        }
        None if !request.has_header("host") => head.push_str(&format!("Host: {addr}\r\n")),
        None => {}
    }
    for (name, value) in &request.headers {
        check_no_line_breaks("header name", name)?;
        check_no_line_breaks("header value", value)?;
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !request.body.is_empty()
        && !request.has_header("content-length")
        && !request.has_header("transfer-encoding")
    {
        head.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
    }
    head.push_str("\r\n");
    let io = |source| ClientError::Io { addr, source };
    writer.write_all(head.as_bytes()).await.map_err(io)?;
    writer.write_all(&request.body).await.map_err(io)?;
    writer.flush().await.map_err(io)?;
    Ok(())
}

fn is_closed_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}

/// Reads one line (up to and including `\n`), failing past `MAX_HEAD_LEN`.
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    out: &mut Vec<u8>,
    addr: SocketAddr,
) -> Result<usize, ClientError> {
    let n = (&mut *reader)
        .take(MAX_HEAD_LEN as u64)
        .read_until(b'\n', out)
        .await
        .map_err(|source| ClientError::Io { addr, source })?;
    if n as u64 >= MAX_HEAD_LEN as u64 {
        return Err(ClientError::Protocol {
            addr,
            message: "response line too long".into(),
        });
    }
    Ok(n)
}

/// Reads the head (status line + headers) of one response.
async fn read_h1_head<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    addr: SocketAddr,
) -> Result<(u16, HttpVersion, Vec<(String, String)>), ClientError> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = match read_line(reader, &mut head, addr).await {
            Ok(n) => n,
            Err(ClientError::Io { source, .. }) if head.is_empty() && is_closed_error(&source) => {
                return Err(ClientError::ConnectionClosed {
                    addr,
                    detail: source.to_string(),
                });
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Err(if head.is_empty() {
                ClientError::ConnectionClosed {
                    addr,
                    detail: "EOF before the status line".into(),
                }
            } else {
                ClientError::ConnectionClosed {
                    addr,
                    detail: "EOF inside the response head".into(),
                }
            });
        }
        if head.len() > MAX_HEAD_LEN {
            return Err(ClientError::Protocol {
                addr,
                message: "response head too large".into(),
            });
        }
        let line = head.get(before..).unwrap_or_default();
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    let mut header_buf = vec![httparse::EMPTY_HEADER; 256];
    let mut parsed = httparse::Response::new(&mut header_buf);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(ClientError::Protocol {
                addr,
                message: "incomplete response head".into(),
            });
        }
        Err(e) => {
            return Err(ClientError::Protocol {
                addr,
                message: format!(
                    "malformed response head ({e}): {:?}",
                    String::from_utf8_lossy(&head)
                ),
            });
        }
    }
    let status = parsed.code.unwrap_or_default();
    let version = if parsed.version == Some(0) {
        HttpVersion::Http10
    } else {
        HttpVersion::Http11
    };
    let headers = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Ok((status, version, headers))
}

/// Reads a complete HTTP/1.x response (skipping interim 1xx responses other than 101).
async fn read_h1_response<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    request: &Request,
    addr: SocketAddr,
) -> Result<Response, ClientError> {
    let (status, version, headers) = loop {
        let (status, version, headers) = read_h1_head(reader, addr).await?;
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        break (status, version, headers);
    };
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
        version,
    };
    let no_body = request.method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304;
    if no_body {
        return Ok(response);
    }
    let io = |source| ClientError::Io { addr, source };
    let chunked = response.header("transfer-encoding").is_some_and(|te| {
        te.split(',')
            .any(|c| c.trim().eq_ignore_ascii_case("chunked"))
    });
    if chunked {
        loop {
            let mut line = Vec::new();
            if read_line(reader, &mut line, addr).await? == 0 {
                return Err(ClientError::Protocol {
                    addr,
                    message: "EOF inside a chunked body".into(),
                });
            }
            let text = String::from_utf8_lossy(&line);
            let size_text = text.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16).map_err(|_| ClientError::Protocol {
                addr,
                message: format!("bad chunk size line {text:?}"),
            })?;
            if size == 0 {
                // Trailers until the empty line.
                loop {
                    let mut trailer = Vec::new();
                    let n = read_line(reader, &mut trailer, addr).await?;
                    if n == 0 || trailer == b"\r\n" || trailer == b"\n" {
                        break;
                    }
                }
                break;
            }
            let start = response.body.len();
            response.body.resize(start + size, 0);
            if let Some(chunk) = response.body.get_mut(start..) {
                reader.read_exact(chunk).await.map_err(io)?;
            }
            let mut crlf = Vec::new();
            read_line(reader, &mut crlf, addr).await?;
        }
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length.trim().parse().map_err(|_| ClientError::Protocol {
            addr,
            message: format!("bad Content-Length {length:?}"),
        })?;
        response.body.resize(length, 0);
        reader.read_exact(&mut response.body).await.map_err(io)?;
    } else if status != 101 {
        reader.read_to_end(&mut response.body).await.map_err(io)?;
    }
    Ok(response)
}

async fn h2_exchange(
    stream: Box<dyn AsyncStream>,
    request: &Request,
    scheme: &str,
    addr: SocketAddr,
) -> Result<Response, ClientError> {
    let protocol = |message: String| ClientError::Protocol { addr, message };
    let header_host = request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.clone());
    let authority = request
        .host
        .clone()
        .or(header_host)
        .unwrap_or_else(|| addr.to_string());
    let uri = hyper::Uri::builder()
        .scheme(scheme)
        .authority(authority.as_str())
        .path_and_query(request.target.as_str())
        .build()
        .map_err(|e| {
            ClientError::InvalidRequest(format!(
                "HTTP/2 needs a parsable authority {authority:?} and target {:?}: {e}",
                request.target
            ))
        })?;
    let method = hyper::Method::from_bytes(request.method.as_bytes())
        .map_err(|e| ClientError::InvalidRequest(format!("method {:?}: {e}", request.method)))?;
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(uri)
        .version(hyper::Version::HTTP_2);
    for (name, value) in &request.headers {
        if name.eq_ignore_ascii_case("host") {
            continue;
        }
        let name = hyper::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| ClientError::InvalidRequest(format!("header name {name:?}: {e}")))?;
        let value = hyper::header::HeaderValue::from_str(value)
            .map_err(|e| ClientError::InvalidRequest(format!("header value {value:?}: {e}")))?;
        builder = builder.header(name, value);
    }
    let hyper_request = builder
        .body(Full::new(Bytes::from(request.body.clone())))
        .map_err(|e| ClientError::InvalidRequest(format!("building the HTTP/2 request: {e}")))?;

    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| protocol(format!("HTTP/2 handshake: {e}")))?;
    let driver = tokio::spawn(connection);
    let result = async {
        let response = sender.send_request(hyper_request).await.map_err(|e| {
            if e.is_incomplete_message() || e.is_closed() {
                ClientError::ConnectionClosed {
                    addr,
                    detail: e.to_string(),
                }
            } else {
                protocol(format!("HTTP/2 request: {e}{}", source_chain(&e)))
            }
        })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| protocol(format!("HTTP/2 response body: {e}{}", source_chain(&e))))?
            .to_bytes()
            .to_vec();
        Ok(Response {
            status,
            headers,
            body,
            version: HttpVersion::Http2,
        })
    }
    .await;
    driver.abort();
    result
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}

/// An open WebSocket (async). Created by [`HttpClient::websocket_async`].
pub struct AsyncWebSocket {
    stream: BufReader<Box<dyn AsyncStream>>,
    addr: SocketAddr,
    timeout: Duration,
    handshake: Response,
}

impl fmt::Debug for AsyncWebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncWebSocket")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl AsyncWebSocket {
    /// The 101 response of the handshake.
    pub fn handshake_response(&self) -> &Response {
        &self.handshake
    }

    /// Sends one message (masked, as a client must).
    pub async fn send(&mut self, message: &Message) -> Result<(), ClientError> {
        let addr = self.addr;
        websocket::write_message(self.stream.get_mut(), message, true)
            .await
            .map_err(|source| ClientError::WebSocket { addr, source })
    }

    /// Receives the next message, within the client's timeout.
    pub async fn recv(&mut self) -> Result<Message, ClientError> {
        let addr = self.addr;
        tokio::time::timeout(self.timeout, websocket::read_message(&mut self.stream))
            .await
            .map_err(|_| ClientError::Timeout {
                addr,
                timeout: self.timeout,
            })?
            .map_err(|source| ClientError::WebSocket { addr, source })
    }

    /// Sends a close frame (status 1000) and waits for the peer's close.
    pub async fn close(&mut self) -> Result<(), ClientError> {
        self.send(&Message::Close(Some(1000), String::new()))
            .await?;
        loop {
            if let Message::Close(..) = self.recv().await? {
                return Ok(());
            }
        }
    }
}

/// A blocking WebSocket. Created by [`HttpClient::websocket`].
pub struct WebSocketClient {
    runtime: tokio::runtime::Runtime,
    socket: AsyncWebSocket,
}

impl fmt::Debug for WebSocketClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketClient")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl WebSocketClient {
    /// The 101 response of the handshake.
    pub fn handshake_response(&self) -> &Response {
        self.socket.handshake_response()
    }

    /// Sends one message.
    pub fn send(&mut self, message: &Message) -> Result<(), ClientError> {
        self.runtime.block_on(self.socket.send(message))
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.send(&Message::Text(text.to_owned()))
    }

    /// Receives the next message (within the client's timeout).
    pub fn recv(&mut self) -> Result<Message, ClientError> {
        self.runtime.block_on(self.socket.recv())
    }

    /// Sends `text` and returns the next text message (an echo server's answer).
    pub fn echo_text(&mut self, text: &str) -> Result<String, ClientError> {
        self.send_text(text)?;
        match self.recv()? {
            Message::Text(reply) => Ok(reply),
            other => Err(ClientError::Protocol {
                addr: self.socket.addr,
                message: format!("expected a text message, got {other:?}"),
            }),
        }
    }

    /// Closes the WebSocket cleanly.
    pub fn close(mut self) -> Result<(), ClientError> {
        self.runtime.block_on(self.socket.close())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::CertificateAuthority;
    use crate::echo::{EchoIdentity, EchoServer};
    use std::io::{Read as _, Write as _};
    use std::net::TcpListener;
    use std::thread::JoinHandle;

    /// Accepts one connection, reads the request head (and a Content-Length body), answers `response`
    /// verbatim, closes, and returns the raw request bytes.
    fn raw_server(response: &'static [u8]) -> (SocketAddr, JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") {
                if stream.read(&mut byte).unwrap() == 0 {
                    break;
                }
                request.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&request).to_lowercase();
            if let Some(len) = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
            {
                let mut body = vec![0u8; len.trim().parse().unwrap()];
                stream.read_exact(&mut body).unwrap();
                request.extend_from_slice(&body);
            }
            stream.write_all(response).unwrap();
            request
        });
        (addr, handle)
    }

    #[test]
    fn writes_the_request_verbatim() {
        let (addr, server) = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let request = Request::new("PUT", "/a/./b/../c//d?x=%2f&y")
            .with_host("Foo.Example:81")
            .with_header("X-Case", "v1")
            .with_header("x-case", "v2")
            .with_body("hi");
        assert_eq!(HttpClient::http1(addr).send(&request).unwrap().status, 200);
        let sent = String::from_utf8(server.join().unwrap()).unwrap();
        assert_eq!(
            sent,
            "PUT /a/./b/../c//d?x=%2f&y HTTP/1.1\r\nHost: Foo.Example:81\r\nX-Case: v1\r\nx-case: v2\r\n\
             Content-Length: 2\r\n\r\nhi"
        );
    }

    #[test]
    fn host_defaults_to_the_address_unless_given_as_a_header() {
        let (addr, server) = raw_server(b"HTTP/1.1 204 No Content\r\n\r\n");
        HttpClient::http1(addr).send(&Request::get("/")).unwrap();
        assert_eq!(
            String::from_utf8(server.join().unwrap()).unwrap(),
            format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n")
        );
        let (addr, server) = raw_server(b"HTTP/1.1 204 No Content\r\n\r\n");
        HttpClient::http1(addr)
            .send(&Request::get("/").with_header("host", "h.example"))
            .unwrap();
        assert_eq!(
            String::from_utf8(server.join().unwrap()).unwrap(),
            "GET / HTTP/1.1\r\nhost: h.example\r\n\r\n"
        );
    }

    #[test]
    fn parses_chunked_bodies_repeated_headers_and_interim_responses() {
        let (addr, _server) = raw_server(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nTransfer-Encoding: chunked\r\n\
              set-cookie: b=2\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n",
        );
        let response = HttpClient::http1(addr).send(&Request::get("/")).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.version, HttpVersion::Http11);
        assert_eq!(response.text(), "hello, world");
        assert_eq!(response.header("SET-COOKIE").as_deref(), Some("a=1,b=2"));
        assert_eq!(response.header_values("set-cookie"), ["a=1", "b=2"]);
        assert_eq!(response.header("missing"), None);
    }

    #[test]
    fn never_follows_redirects_and_reads_bodies_to_eof() {
        let (addr, _server) =
            raw_server(b"HTTP/1.0 302 Found\r\nLocation: http://elsewhere.example/\r\n\r\nmoved");
        let response = HttpClient::http1(addr).send(&Request::get("/old")).unwrap();
        assert_eq!(response.status, 302);
        assert_eq!(response.version, HttpVersion::Http10);
        assert_eq!(
            response.header("location").as_deref(),
            Some("http://elsewhere.example/")
        );
        assert_eq!(response.text(), "moved");
    }

    #[test]
    fn head_responses_have_no_body() {
        let (addr, _server) = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
        let response = HttpClient::http1(addr)
            .send(&Request::new("HEAD", "/"))
            .unwrap();
        assert_eq!(response.header("content-length").as_deref(), Some("10"));
        assert!(response.body.is_empty());
    }

    #[test]
    fn reports_closed_refused_and_timed_out_connections() {
        let (addr, _server) = raw_server(b"");
        let err = HttpClient::http1(addr)
            .send(&Request::get("/"))
            .unwrap_err();
        assert!(err.is_connection_closed(), "{err}");

        let port = crate::ports::free_port().unwrap();
        let err = HttpClient::http1(SocketAddr::from(([127, 0, 0, 1], port)))
            .send(&Request::get("/"))
            .unwrap_err();
        assert!(matches!(err, ClientError::Connect { .. }), "{err}");

        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = HttpClient::http1(silent.local_addr().unwrap())
            .with_timeout(Duration::from_millis(200))
            .send(&Request::get("/"))
            .unwrap_err();
        assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
        assert!(
            err.to_string()
                .contains(&silent.local_addr().unwrap().to_string())
        );
    }

    #[test]
    fn rejects_line_breaks_in_requests() {
        let client = HttpClient::http1("127.0.0.1:9".parse().unwrap());
        for request in [
            Request::get("/").with_header("x", "a\r\nInjected: 1"),
            Request::get("/ HTTP/1.1\r\n"),
            Request::get("/").with_host("a\nb"),
        ] {
            let err = crate::rt::block_on(async {
                let mut sink = Vec::new();
                write_h1_request(&mut sink, &request, client.addr()).await
            })
            .unwrap()
            .unwrap_err();
            assert!(matches!(err, ClientError::InvalidRequest(_)), "{err}");
        }
    }

    #[test]
    fn h2c_and_echo_helpers() {
        let echo = EchoServer::start(
            EchoIdentity::new("ns", "svc", "pod"),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let response = HttpClient::h2c(echo.addr())
            .send(
                &Request::new("POST", "/p?q")
                    .with_host("a.example")
                    .with_body("x"),
            )
            .unwrap();
        assert_eq!(response.version, HttpVersion::Http2);
        let body = response.echo().unwrap();
        assert_eq!(
            (body.method.as_str(), body.path.as_str(), body.host.as_str()),
            ("POST", "/p?q", "a.example")
        );
        assert_eq!(response.json().unwrap()["proto"], "HTTP/2.0");
        assert!(
            Response {
                body: b"not json".to_vec(),
                ..response
            }
            .json()
            .is_err()
        );
    }

    #[tokio::test]
    async fn blocking_send_works_inside_a_runtime() {
        // The server must not run on this (current-thread) runtime, which the blocking call stalls.
        let echo =
            EchoServer::start(EchoIdentity::default(), "127.0.0.1:0".parse().unwrap()).unwrap();
        let response = HttpClient::http1(echo.addr())
            .send(&Request::get("/x"))
            .unwrap();
        assert_eq!(response.echo().unwrap().path, "/x");
        let err = HttpClient::http1(echo.addr())
            .websocket(&Request::get("/"))
            .unwrap_err();
        assert!(matches!(err, ClientError::Runtime(_)), "{err}");
        let mut ws = HttpClient::http1(echo.addr())
            .websocket_async(&Request::get("/"))
            .await
            .unwrap();
        ws.send(&Message::Text("a".into())).await.unwrap();
        assert_eq!(ws.recv().await.unwrap(), Message::Text("a".into()));
    }

    #[test]
    fn websocket_refusal_returns_the_response() {
        let (addr, _server) =
            raw_server(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope");
        let err = HttpClient::http1(addr)
            .websocket(&Request::get("/ws"))
            .unwrap_err();
        match err {
            ClientError::UpgradeRefused { response, .. } => {
                assert_eq!(response.status, 404);
                assert_eq!(response.text(), "nope");
            }
            other => panic!("unexpected {other}"),
        }
    }

    /// A TLS server answering `sni=<SNI> alpn=<ALPN> version=<HTTP version>` over HTTP/1.1 or HTTP/2.
    struct TlsServer {
        addr: SocketAddr,
        ca_pem: String,
        runtime: tokio::runtime::Runtime,
    }

    fn tls_server(alpn: &[&[u8]]) -> TlsServer {
        use rustls::pki_types::PrivateKeyDer;
        let ca = CertificateAuthority::new("client test CA").unwrap();
        let leaf = ca.issue(&["tls.example", "*.wild.example"]).unwrap();
        let chain = CertificateDer::pem_slice_iter(leaf.chain_pem().as_bytes())
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let (_, conn) = tls.get_ref();
                    let info = format!(
                        "sni={} alpn={}",
                        conn.server_name().unwrap_or("-"),
                        conn.alpn_protocol()
                            .map(|p| String::from_utf8_lossy(p).into_owned())
                            .unwrap_or("-".into())
                    );
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let text = format!("{info} version={:?}", req.version());
                            async move {
                                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                    Bytes::from(text),
                                )))
                            }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        TlsServer {
            addr,
            ca_pem: ca.cert_pem().to_owned(),
            runtime,
        }
    }

    #[test]
    fn tls_with_sni_alpn_and_verification() {
        let server = tls_server(&[b"h2", b"http/1.1"]);
        let trusted = TlsConfig::with_ca_pem("tls.example", server.ca_pem.as_bytes()).unwrap();
        let request = Request::get("/");

        let response = HttpClient::https1(server.addr, trusted.clone())
            .send(&request)
            .unwrap();
        assert_eq!(
            response.text(),
            "sni=tls.example alpn=http/1.1 version=HTTP/1.1"
        );
        let response = HttpClient::http2_tls(server.addr, trusted)
            .send(&request)
            .unwrap();
        assert_eq!(response.version, HttpVersion::Http2);
        assert_eq!(response.text(), "sni=tls.example alpn=h2 version=HTTP/2.0");

        let wildcard = TlsConfig::with_ca_pem("a.wild.example", server.ca_pem.as_bytes()).unwrap();
        let response = HttpClient::https1(server.addr, wildcard)
            .send(&request)
            .unwrap();
        assert!(
            response.text().starts_with("sni=a.wild.example "),
            "{}",
            response.text()
        );

        let wrong_name = TlsConfig::with_ca_pem("other.example", server.ca_pem.as_bytes()).unwrap();
        let err = HttpClient::https1(server.addr, wrong_name)
            .send(&request)
            .unwrap_err();
        assert!(
            matches!(&err, ClientError::Tls { sni, .. } if sni == "other.example"),
            "{err}"
        );

        let other_ca = CertificateAuthority::new("other").unwrap();
        let untrusted =
            TlsConfig::with_ca_pem("tls.example", other_ca.cert_pem().as_bytes()).unwrap();
        let err = HttpClient::https1(server.addr, untrusted)
            .send(&request)
            .unwrap_err();
        assert!(matches!(err, ClientError::Tls { .. }), "{err}");

        let insecure = TlsConfig::insecure_accept_any_cert("anything.example");
        let response = HttpClient::http2_tls(server.addr, insecure)
            .send(&request)
            .unwrap();
        assert_eq!(
            response.text(),
            "sni=anything.example alpn=h2 version=HTTP/2.0"
        );
        drop(server.runtime);
    }

    #[test]
    fn http2_tls_requires_alpn_h2() {
        // A server without ALPN completes the handshake; the client refuses to speak h2 blindly.
        let server = tls_server(&[]);
        let tls = TlsConfig::with_ca_pem("tls.example", server.ca_pem.as_bytes()).unwrap();
        let err = HttpClient::http2_tls(server.addr, tls)
            .send(&Request::get("/"))
            .unwrap_err();
        assert!(err.to_string().contains("did not select h2"), "{err}");
        // A server with ALPN but without h2 refuses the handshake.
        let server = tls_server(&[b"http/1.1"]);
        let tls = TlsConfig::with_ca_pem("tls.example", server.ca_pem.as_bytes()).unwrap();
        let err = HttpClient::http2_tls(server.addr, tls)
            .send(&Request::get("/"))
            .unwrap_err();
        assert!(matches!(err, ClientError::Tls { .. }), "{err}");
    }

    #[test]
    fn tls_config_rejects_empty_or_bad_pem() {
        assert!(matches!(
            TlsConfig::with_ca_pem("x", b""),
            Err(ClientError::TlsConfig(_))
        ));
        assert!(TlsConfig::with_ca_file("x", Path::new("/nonexistent/ca.pem")).is_err());
    }
}
