//! A gRPC test client that reports what the wire carried.
//!
//! It sends unary calls the way the conformance suite's grpc-go client does (`POST`, `:path`
//! `/<service>/<method>`, `content-type: application/grpc`, `te: trailers`, `grpc-timeout` for the
//! deadline, metadata names lower-case) over h2c with prior knowledge or HTTP/2 over TLS (ALPN `h2`),
//! one connection per call. `:authority` is the request's ([`GrpcRequest::with_authority`], like
//! `grpc.WithAuthority`) or, when not set, the dial target `IP:port`, as grpc-go sends it.
//!
//! [`GrpcClient::call_raw`] returns the raw HTTP/2 answer ([`GrpcAnswer`]: `:status`, headers,
//! body, and whether the stream ended with the headers, trailers, no trailers, a reset, or the
//! deadline), so a gateway's plain `404` or `500` stays visible as such; [`GrpcClient::unary`] and
//! [`GrpcClient::echo`] add the status a grpc-go client would report and the decoded response. It
//! is built on the `h2` crate directly because hyper's client hides whether the response HEADERS
//! frame ended the stream (a trailers-only answer) and which RST_STREAM code arrived.
//!
//! The API is blocking (for sync runners and `#[test]`s; a runtime per call, as
//! [`crate::client::HttpClient`]), with `_async` forms for async code.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Method, Uri, Version};
use prost::Message;
use tokio::time::Instant;

use super::proto::{EchoMethod, EchoRequest, EchoResponse};
use super::status::{
    GrpcAnswer, GrpcCode, GrpcGoRules, GrpcReading, HttpToGrpc, StreamEnd, frame_message,
    read_unary, split_messages,
};
use crate::client::{ClientError, HttpClient, Protocol, TlsConfig};

/// The `user-agent` the client sends (grpc-go sends `grpc-go/<version>`; only its presence matters).
pub const USER_AGENT: &str = concat!("grpc-testkit/", env!("CARGO_PKG_VERSION"));

/// How the client reaches the server.
#[derive(Debug, Clone)]
pub enum GrpcTransport {
    /// HTTP/2 cleartext with prior knowledge (grpc-go's insecure credentials).
    H2c,
    /// HTTP/2 over TLS; the server must select `h2` through ALPN.
    Tls(TlsConfig),
}

/// One unary call as a test describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcRequest {
    /// `/<service>/<method>`, sent verbatim as `:path`.
    pub path: String,
    /// `:authority`; `None` sends the dial target (`IP:port`).
    pub authority: Option<String>,
    /// Metadata in order, one entry per value (names are sent lower-case).
    pub metadata: Vec<(String, String)>,
    /// The call's deadline: sent as `grpc-timeout` and enforced by the client.
    pub deadline: Option<Duration>,
    /// The encoded request message (framed by the client).
    pub message: Bytes,
}

impl GrpcRequest {
    /// A call to `path` with an empty message.
    pub fn new(path: impl Into<String>) -> GrpcRequest {
        GrpcRequest {
            path: path.into(),
            authority: None,
            metadata: Vec::new(),
            deadline: None,
            message: Bytes::new(),
        }
    }

    /// A call of the echo service's `method` with an empty `EchoRequest`, as the suite sends it.
    pub fn echo(method: EchoMethod) -> GrpcRequest {
        Self::new(method.path()).with_message(&EchoRequest {})
    }

    pub fn with_authority(mut self, authority: impl Into<String>) -> GrpcRequest {
        self.authority = Some(authority.into());
        self
    }

    pub fn with_metadata(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> GrpcRequest {
        self.metadata.push((name.into(), value.into()));
        self
    }

    pub fn with_deadline(mut self, deadline: Duration) -> GrpcRequest {
        self.deadline = Some(deadline);
        self
    }

    pub fn with_message(mut self, message: &impl Message) -> GrpcRequest {
        self.message = Bytes::from(message.encode_to_vec());
        self
    }
}

/// A unary call's outcome: the raw answer, the status a grpc-go client reports, the response.
#[derive(Debug, Clone, PartialEq)]
pub struct UnaryCall<M> {
    pub answer: GrpcAnswer,
    /// The status by grpc-go v1.77+'s rules and table (the suite's client).
    pub status: GrpcReading,
    /// The decoded response message, when the status is OK.
    pub response: Option<M>,
}

impl<M> UnaryCall<M> {
    pub fn code(&self) -> GrpcCode {
        self.status.code
    }
}

/// A client bound to one server address and transport.
#[derive(Debug, Clone)]
pub struct GrpcClient {
    http: HttpClient,
    tls: Option<TlsConfig>,
}

impl GrpcClient {
    /// A client for `addr` with the HTTP client's default connect timeout and timeout.
    pub fn new(addr: SocketAddr, transport: GrpcTransport) -> GrpcClient {
        let (protocol, tls) = match transport {
            GrpcTransport::H2c => (Protocol::H2c, None),
            GrpcTransport::Tls(tls) => (Protocol::Http2Tls(tls.clone()), Some(tls)),
        };
        GrpcClient {
            http: HttpClient::new(addr, protocol),
            tls,
        }
    }

    /// h2c with prior knowledge.
    pub fn h2c(addr: SocketAddr) -> GrpcClient {
        Self::new(addr, GrpcTransport::H2c)
    }

    /// HTTP/2 over TLS.
    pub fn tls(addr: SocketAddr, tls: TlsConfig) -> GrpcClient {
        Self::new(addr, GrpcTransport::Tls(tls))
    }

    /// The connect timeout (TCP plus TLS handshake).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> GrpcClient {
        self.http = self.http.with_connect_timeout(timeout);
        self
    }

    /// How long a call without a deadline may take before it fails with
    /// [`ClientError::Timeout`] (a call with a deadline ends with DEADLINE_EXCEEDED instead).
    pub fn with_timeout(mut self, timeout: Duration) -> GrpcClient {
        self.http = self.http.with_timeout(timeout);
        self
    }

    pub fn addr(&self) -> SocketAddr {
        self.http.addr()
    }

    /// Sends one call and returns the raw HTTP/2 answer. `Err` only when no HTTP/2 exchange took
    /// place (connect, TLS, handshake, GOAWAY, I/O) or the request cannot be sent as given.
    pub fn call_raw(&self, request: &GrpcRequest) -> Result<GrpcAnswer, ClientError> {
        crate::rt::block_on(self.call_raw_async(request)).map_err(ClientError::Runtime)?
    }

    /// Async form of [`GrpcClient::call_raw`].
    pub async fn call_raw_async(&self, request: &GrpcRequest) -> Result<GrpcAnswer, ClientError> {
        let addr = self.addr();
        let started = Instant::now();
        let head = self.request_head(request)?;
        let framed = frame_message(&request.message).map_err(ClientError::InvalidRequest)?;
        let alpn: &[&[u8]] = if self.tls.is_some() { &[b"h2"] } else { &[] };
        let connection = self.http.connect(self.tls.as_ref(), alpn).await?;
        if let Some(tls) = &self.tls
            && connection.alpn.as_deref() != Some(b"h2".as_slice())
        {
            return Err(ClientError::Protocol {
                addr,
                message: format!("server (SNI {}) did not select h2 through ALPN", tls.sni),
            });
        }
        let exchange = exchange(
            connection.stream,
            head,
            framed,
            addr,
            match request.deadline {
                Some(deadline) => Limit::Deadline(started + deadline),
                None => Limit::Timeout(started + self.http.timeout()),
            },
        );
        match exchange.await {
            Err(ExchangeError::Client(e)) => Err(e),
            Err(ExchangeError::TimedOut) => Err(ClientError::Timeout {
                addr,
                timeout: self.http.timeout(),
            }),
            Ok(answer) => Ok(answer),
        }
    }

    /// Sends a unary call and decodes the response as `M`.
    pub fn unary<M: Message + Default>(
        &self,
        request: &GrpcRequest,
    ) -> Result<UnaryCall<M>, ClientError> {
        crate::rt::block_on(self.unary_async(request)).map_err(ClientError::Runtime)?
    }

    /// Async form of [`GrpcClient::unary`].
    pub async fn unary_async<M: Message + Default>(
        &self,
        request: &GrpcRequest,
    ) -> Result<UnaryCall<M>, ClientError> {
        let answer = self.call_raw_async(request).await?;
        Ok(interpret(answer))
    }

    /// Calls the conformance echo service (`request` from [`GrpcRequest::echo`]).
    pub fn echo(&self, request: &GrpcRequest) -> Result<UnaryCall<EchoResponse>, ClientError> {
        self.unary(request)
    }

    /// The request head: pseudo-headers from the URI, then the headers grpc-go sends, then metadata.
    fn request_head(&self, request: &GrpcRequest) -> Result<http::Request<()>, ClientError> {
        let invalid = |what: String| ClientError::InvalidRequest(what);
        let authority = request
            .authority
            .clone()
            .unwrap_or_else(|| self.addr().to_string());
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let uri = Uri::builder()
            .scheme(scheme)
            .authority(authority.as_str())
            .path_and_query(request.path.as_str())
            .build()
            .map_err(|e| {
                invalid(format!(
                    "authority {authority:?} and path {:?} do not form a URI: {e}",
                    request.path
                ))
            })?;
        let mut head = http::Request::builder()
            .method(Method::POST)
            .uri(uri)
            .version(Version::HTTP_2)
            .header("content-type", "application/grpc")
            .header("user-agent", USER_AGENT)
            .header("te", "trailers");
        if let Some(deadline) = request.deadline {
            head = head.header("grpc-timeout", encode_timeout(deadline));
        }
        for (name, value) in &request.metadata {
            let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|e| invalid(format!("metadata name {name:?}: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| invalid(format!("metadata value {value:?}: {e}")))?;
            head = head.header(name, value);
        }
        head.body(())
            .map_err(|e| invalid(format!("building the request head: {e}")))
    }
}

/// grpc-go's `encodeTimeout`: the finest unit whose value fits 8 digits, rounded up.
pub fn encode_timeout(timeout: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    if nanos == 0 {
        return "0n".to_owned();
    }
    let units: [(u128, &str); 6] = [
        (1, "n"),
        (1_000, "u"),
        (1_000_000, "m"),
        (1_000_000_000, "S"),
        (60_000_000_000, "M"),
        (3_600_000_000_000, "H"),
    ];
    for (size, unit) in units {
        let value = nanos.div_ceil(size);
        if value <= MAX {
            return format!("{value}{unit}");
        }
    }
    format!("{MAX}H")
}

/// The status a grpc-go (v1.77+) client reports and the decoded message when it is OK.
fn interpret<M: Message + Default>(answer: GrpcAnswer) -> UnaryCall<M> {
    let mut status = read_unary(
        &answer,
        &HttpToGrpc::grpc_go(),
        GrpcGoRules::ContentTypeDecides,
    );
    let mut response = None;
    if status.code == GrpcCode::OK {
        let decoded = split_messages(&answer.body)
            .ok()
            .and_then(|messages| messages.into_iter().next())
            .map(|message| M::decode(message));
        match decoded {
            Some(Ok(message)) => response = Some(message),
            Some(Err(e)) => {
                status = GrpcReading {
                    code: GrpcCode::INTERNAL,
                    message: format!("grpc: failed to unmarshal the received message: {e}"),
                }
            }
            // `read_unary` already made a missing or malformed message INTERNAL.
            None => {}
        }
    }
    UnaryCall {
        answer,
        status,
        response,
    }
}

/// When a call must end: the gRPC deadline (an answer) or the client's own timeout (an error).
#[derive(Debug, Clone, Copy)]
enum Limit {
    Deadline(Instant),
    Timeout(Instant),
}

enum ExchangeError {
    Client(ClientError),
    TimedOut,
}

/// One HTTP/2 stream: send the head and the framed message, read the answer as it ends.
async fn exchange<S>(
    stream: S,
    head: http::Request<()>,
    framed: Bytes,
    addr: SocketAddr,
    limit: Limit,
) -> Result<GrpcAnswer, ExchangeError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let protocol = |what: &str, e: h2::Error| {
        ExchangeError::Client(ClientError::Protocol {
            addr,
            message: format!("{what}: {e}"),
        })
    };
    let until = match limit {
        Limit::Deadline(at) | Limit::Timeout(at) => at,
    };
    // When the limit passes, a deadline ends the call with what arrived so far (DEADLINE_EXCEEDED,
    // as grpc-go reports it); the client's own timeout is an error.
    let expired = || match limit {
        Limit::Deadline(_) => Ok(()),
        Limit::Timeout(_) => Err(ExchangeError::TimedOut),
    };
    let mut answer = GrpcAnswer {
        status: None,
        headers: Vec::new(),
        body: Bytes::new(),
        end: StreamEnd::DeadlineExceeded,
    };
    let (send, connection) =
        match tokio::time::timeout_at(until, h2::client::handshake(stream)).await {
            Err(_) => return expired().map(|()| answer),
            Ok(result) => result.map_err(|e| protocol("HTTP/2 handshake", e))?,
        };
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let result = async {
        let mut send = match tokio::time::timeout_at(until, send.ready()).await {
            Err(_) => return expired(),
            Ok(ready) => ready.map_err(|e| protocol("HTTP/2 connection", e))?,
        };
        let (response, mut body) = send
            .send_request(head, false)
            .map_err(|e| protocol("sending the request headers", e))?;
        body.send_data(framed, true)
            .map_err(|e| protocol("sending the request message", e))?;
        let response = match tokio::time::timeout_at(until, response).await {
            Err(_) => return expired(),
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                answer.end = ended_by(e, addr)?;
                return Ok(());
            }
        };
        answer.status = Some(response.status().as_u16());
        answer.headers = header_list(response.headers());
        let mut received = response.into_body();
        if received.is_end_stream() {
            answer.end = StreamEnd::TrailersOnly;
            return Ok(());
        }
        let mut data = BytesMut::new();
        let ended = loop {
            match tokio::time::timeout_at(until, received.data()).await {
                Err(_) => break None,
                Ok(None) => break Some(Ok(())),
                Ok(Some(Ok(chunk))) => {
                    let _ = received.flow_control().release_capacity(chunk.len());
                    data.extend_from_slice(&chunk);
                }
                Ok(Some(Err(e))) => break Some(Err(e)),
            }
        };
        answer.body = data.freeze();
        match ended {
            None => return expired(),
            Some(Err(e)) => {
                answer.end = ended_by(e, addr)?;
                return Ok(());
            }
            Some(Ok(())) => {}
        }
        answer.end = match tokio::time::timeout_at(until, received.trailers()).await {
            Err(_) => return expired(),
            Ok(Ok(Some(trailers))) => StreamEnd::Trailers(header_list(&trailers)),
            Ok(Ok(None)) => StreamEnd::NoTrailers,
            Ok(Err(e)) => ended_by(e, addr)?,
        };
        Ok(())
    }
    .await;
    driver.abort();
    result.map(|()| answer)
}

/// A stream reset is an answer (`StreamEnd::Reset`); any other HTTP/2 failure is the client's error.
fn ended_by(e: h2::Error, addr: SocketAddr) -> Result<StreamEnd, ExchangeError> {
    match e.reason() {
        Some(reason) if e.is_reset() => Ok(StreamEnd::Reset(reason.into())),
        _ if e.is_go_away() || e.is_io() => {
            Err(ExchangeError::Client(ClientError::ConnectionClosed {
                addr,
                detail: e.to_string(),
            }))
        }
        _ => Err(ExchangeError::Client(ClientError::Protocol {
            addr,
            message: format!("HTTP/2 stream: {e}"),
        })),
    }
}

/// Every header as `(name, value)` in order, values decoded lossily (names are lower-case in HTTP/2).
pub(super) fn header_list(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
