//! What a gRPC call's HTTP/2 answer means to a grpc-go client.
//!
//! A gateway in front of gRPC services answers in HTTP/2, and a client turns that answer into a gRPC
//! status code. The Gateway API conformance suite asserts the code its grpc-go client ends up with
//! (`expect.grpcStatus`), so this module reads a raw answer ([`GrpcAnswer`]) the way grpc-go does,
//! from its source (`internal/transport/http2_client.go`, `operateHeaders`, `handleData`,
//! `handleRSTStream`; `internal/transport/http_util.go`, `HTTPStatusConvTab` and `http2ErrConvTab`;
//! `stream.go`, `recvMsg`):
//!
//! - response headers whose `content-type` is not `application/grpc` (or `application/grpc+…` /
//!   `application/grpc;…`) are a non-gRPC answer: the code comes from the HTTP status through
//!   `HTTPStatusConvTab` (any status not in it, 200 included, is UNKNOWN) and nothing else counts;
//! - otherwise `grpc-status` decides, read from the headers when they end the stream (a
//!   "trailers-only" answer) or from the trailers; a missing `grpc-status` is UNKNOWN, an unparsable
//!   one UNKNOWN too; a stream that ends with DATA and no trailers is INTERNAL ("server closed the
//!   stream without sending trailers"); RST_STREAM maps its HTTP/2 error code through
//!   `http2ErrConvTab`;
//! - an OK unary call must carry exactly one response message ("cardinality violation" is INTERNAL).
//!
//! grpc-go changed one rule in v1.77.0 (grpc-go#8548, "client: ignore http status header for gRPC
//! streams"): before it a gRPC `content-type` counted only with `:status` 200, and any other status
//! was read through `HTTPStatusConvTab` regardless of `grpc-status`. The conformance vectors' schema
//! states the older rule; the suite v1.6.1 itself builds with grpc-go v1.81.1. [`GrpcGoRules`]
//! names both so a checker can demand an answer every grpc-go reads the same way.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;

/// A gRPC status code, kept as the number on the wire (grpc-go keeps codes it does not know, too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrpcCode(pub u32);

impl GrpcCode {
    pub const OK: GrpcCode = GrpcCode(0);
    pub const CANCELLED: GrpcCode = GrpcCode(1);
    pub const UNKNOWN: GrpcCode = GrpcCode(2);
    pub const INVALID_ARGUMENT: GrpcCode = GrpcCode(3);
    pub const DEADLINE_EXCEEDED: GrpcCode = GrpcCode(4);
    pub const NOT_FOUND: GrpcCode = GrpcCode(5);
    pub const ALREADY_EXISTS: GrpcCode = GrpcCode(6);
    pub const PERMISSION_DENIED: GrpcCode = GrpcCode(7);
    pub const RESOURCE_EXHAUSTED: GrpcCode = GrpcCode(8);
    pub const FAILED_PRECONDITION: GrpcCode = GrpcCode(9);
    pub const ABORTED: GrpcCode = GrpcCode(10);
    pub const OUT_OF_RANGE: GrpcCode = GrpcCode(11);
    pub const UNIMPLEMENTED: GrpcCode = GrpcCode(12);
    pub const INTERNAL: GrpcCode = GrpcCode(13);
    pub const UNAVAILABLE: GrpcCode = GrpcCode(14);
    pub const DATA_LOSS: GrpcCode = GrpcCode(15);
    pub const UNAUTHENTICATED: GrpcCode = GrpcCode(16);

    const NAMES: [&'static str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];

    /// The canonical name (`UNIMPLEMENTED`), or `None` for a number outside the 17 codes.
    pub fn name(self) -> Option<&'static str> {
        usize::try_from(self.0)
            .ok()
            .and_then(|i| Self::NAMES.get(i).copied())
    }

    /// The code a canonical name stands for (`"UNAVAILABLE"` → 14), case-sensitive as in the spec.
    pub fn from_name(name: &str) -> Option<GrpcCode> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .and_then(|i| u32::try_from(i).ok())
            .map(GrpcCode)
    }
}

impl fmt::Display for GrpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "Code({})", self.0),
        }
    }
}

/// How the stream of a gRPC call ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The response HEADERS frame carried END_STREAM: a "trailers-only" answer whose headers are
    /// also its trailers.
    TrailersOnly,
    /// A trailing HEADERS frame ended the stream.
    Trailers(Vec<(String, String)>),
    /// The last DATA frame carried END_STREAM; no trailers came.
    NoTrailers,
    /// The server reset the stream (RST_STREAM) with this HTTP/2 error code.
    Reset(u32),
    /// The client's deadline passed before the stream ended (the client cancelled it).
    DeadlineExceeded,
}

/// The raw HTTP/2 answer to one gRPC call: everything a client reads a status from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcAnswer {
    /// `:status` of the response headers; `None` when the stream ended before any response headers.
    pub status: Option<u16>,
    /// Response headers (initial metadata, `content-type` included), names lower-case, in order.
    pub headers: Vec<(String, String)>,
    /// The DATA payload, concatenated (length-prefixed gRPC messages).
    pub body: Bytes,
    pub end: StreamEnd,
}

impl GrpcAnswer {
    /// Values of a response header joined with `,` (names compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<String> {
        joined(&self.headers, name)
    }

    /// The trailers: the trailing HEADERS frame, or the headers of a trailers-only answer.
    pub fn trailers(&self) -> Option<&[(String, String)]> {
        match &self.end {
            StreamEnd::Trailers(trailers) => Some(trailers),
            StreamEnd::TrailersOnly => Some(&self.headers),
            _ => None,
        }
    }

    /// `grpc-status` as sent, from the trailers (or the headers of a trailers-only answer).
    pub fn grpc_status(&self) -> Option<String> {
        self.trailers().and_then(|t| joined(t, "grpc-status"))
    }

    /// `grpc-message` as sent (percent-encoded on the wire, see [`decode_grpc_message`]), from the
    /// trailers.
    pub fn grpc_message(&self) -> Option<String> {
        self.trailers().and_then(|t| joined(t, "grpc-message"))
    }

    /// True when `content-type` is one grpc-go accepts as gRPC (`grpcutil.ContentSubtype`):
    /// exactly `application/grpc`, or that followed by `+` or `;`.
    pub fn has_grpc_content_type(&self) -> bool {
        self.header("content-type")
            .is_some_and(|value| is_grpc_content_type(&value))
    }

    /// One line for failure messages: `HTTP 200 application/grpc, trailers-only grpc-status 12`.
    pub fn summary(&self) -> String {
        let status = match self.status {
            Some(status) => format!("HTTP {status}"),
            None => "no response headers".to_owned(),
        };
        let content_type = self
            .header("content-type")
            .unwrap_or_else(|| "no content-type".to_owned());
        let grpc_status = |headers: &[(String, String)]| {
            joined(headers, "grpc-status")
                .map_or("no grpc-status".to_owned(), |s| format!("grpc-status {s}"))
        };
        let end = match &self.end {
            StreamEnd::TrailersOnly => format!("trailers-only, {}", grpc_status(&self.headers)),
            StreamEnd::Trailers(trailers) => format!("trailers with {}", grpc_status(trailers)),
            StreamEnd::NoTrailers => "ended without trailers".to_owned(),
            StreamEnd::Reset(code) => format!("stream reset with HTTP/2 error {code:#x}"),
            StreamEnd::DeadlineExceeded => "deadline passed".to_owned(),
        };
        format!(
            "{status} {content_type}, {} body bytes, {end}",
            self.body.len()
        )
    }
}

/// True for the content types grpc-go's `grpcutil.ContentSubtype` accepts (case-sensitive).
pub fn is_grpc_content_type(value: &str) -> bool {
    const BASE: &str = "application/grpc";
    match value.strip_prefix(BASE) {
        Some("") => true,
        Some(rest) => rest.starts_with('+') || rest.starts_with(';'),
        None => false,
    }
}

fn joined(headers: &[(String, String)], name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// Which HTTP statuses a client maps to which code when an answer is not gRPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpToGrpc(BTreeMap<u16, GrpcCode>);

impl HttpToGrpc {
    /// grpc-go's `HTTPStatusConvTab` (the same as gRPC's `http-grpc-status-mapping.md`).
    pub fn grpc_go() -> HttpToGrpc {
        HttpToGrpc(BTreeMap::from([
            (400, GrpcCode::INTERNAL),
            (401, GrpcCode::UNAUTHENTICATED),
            (403, GrpcCode::PERMISSION_DENIED),
            (404, GrpcCode::UNIMPLEMENTED),
            (429, GrpcCode::UNAVAILABLE),
            (502, GrpcCode::UNAVAILABLE),
            (503, GrpcCode::UNAVAILABLE),
            (504, GrpcCode::UNAVAILABLE),
        ]))
    }

    /// A table from explicit pairs (e.g. a vector file's `grpcStatusFromHttp`).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (u16, GrpcCode)>) -> HttpToGrpc {
        HttpToGrpc(pairs.into_iter().collect())
    }

    /// The code for a non-gRPC answer with this status: UNKNOWN when the table has none.
    pub fn code(&self, status: u16) -> GrpcCode {
        self.0.get(&status).copied().unwrap_or(GrpcCode::UNKNOWN)
    }

    pub fn entries(&self) -> impl Iterator<Item = (u16, GrpcCode)> + '_ {
        self.0.iter().map(|(s, c)| (*s, *c))
    }
}

/// grpc-go's HTTP/2 error code → gRPC code table for RST_STREAM (`http2ErrConvTab`).
pub fn code_for_reset(http2_error: u32) -> GrpcCode {
    match http2_error {
        0x3 | 0xb => GrpcCode::RESOURCE_EXHAUSTED, // FLOW_CONTROL_ERROR, ENHANCE_YOUR_CALM
        0x7 => GrpcCode::UNAVAILABLE,              // REFUSED_STREAM
        0x8 => GrpcCode::CANCELLED,                // CANCEL
        0xc => GrpcCode::PERMISSION_DENIED,        // INADEQUATE_SECURITY
        0x0..=0xd => GrpcCode::INTERNAL,
        _ => GrpcCode::UNKNOWN, // "found no mapped gRPC status for the received http2 error"
    }
}

/// The two generations of grpc-go's header handling (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcGoRules {
    /// grpc-go v1.77.0 and later (the suite's v1.81.1): a gRPC `content-type` makes the answer
    /// gRPC whatever its `:status`.
    ContentTypeDecides,
    /// grpc-go up to v1.76 and the vectors' schema: an answer is gRPC only with `:status` 200 and a
    /// gRPC `content-type`.
    Status200Required,
}

/// A client's reading of an answer: the code and a message saying where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcReading {
    pub code: GrpcCode,
    pub message: String,
}

/// The status a unary grpc-go call ends with, given the raw answer.
pub fn read_unary(answer: &GrpcAnswer, table: &HttpToGrpc, rules: GrpcGoRules) -> GrpcReading {
    let reading = |code: GrpcCode, message: String| GrpcReading { code, message };
    let Some(status) = answer.status else {
        return match answer.end {
            StreamEnd::Reset(error) => reading(
                code_for_reset(error),
                format!("stream reset with HTTP/2 error {error:#x} before response headers"),
            ),
            StreamEnd::DeadlineExceeded => reading(
                GrpcCode::DEADLINE_EXCEEDED,
                "deadline passed before response headers".to_owned(),
            ),
            _ => reading(
                GrpcCode::INTERNAL,
                "malformed header: missing HTTP status".to_owned(),
            ),
        };
    };
    let grpc = answer.has_grpc_content_type()
        && (rules == GrpcGoRules::ContentTypeDecides || status == 200);
    if !grpc {
        return reading(
            table.code(status),
            format!(
                "not a gRPC answer: HTTP {status} with content-type {:?}",
                answer.header("content-type").unwrap_or_default()
            ),
        );
    }
    let from_trailers =
        |trailers: &[(String, String)], what: &str| match joined(trailers, "grpc-status") {
            None => reading(GrpcCode::UNKNOWN, format!("{what} without grpc-status")),
            Some(value) => match value.parse::<i32>() {
                // grpc-go parses a signed 32-bit number and keeps its bits as the code.
                Ok(code) => reading(
                    GrpcCode(u32::from_ne_bytes(code.to_ne_bytes())),
                    format!(
                        "grpc-status {value} in the {what}{}",
                        joined(trailers, "grpc-message")
                            .map(|m| format!(", grpc-message {:?}", decode_grpc_message(&m)))
                            .unwrap_or_default()
                    ),
                ),
                Err(_) => reading(
                    GrpcCode::UNKNOWN,
                    format!("malformed grpc-status {value:?} in the {what}"),
                ),
            },
        };
    let status = match &answer.end {
        StreamEnd::TrailersOnly => from_trailers(&answer.headers, "trailers-only headers"),
        StreamEnd::Trailers(trailers) => from_trailers(trailers, "trailers"),
        StreamEnd::NoTrailers => reading(
            GrpcCode::INTERNAL,
            "server closed the stream without sending trailers".to_owned(),
        ),
        StreamEnd::Reset(error) => reading(
            code_for_reset(*error),
            format!("stream reset with HTTP/2 error {error:#x}"),
        ),
        StreamEnd::DeadlineExceeded => {
            reading(GrpcCode::DEADLINE_EXCEEDED, "deadline passed".to_owned())
        }
    };
    if status.code != GrpcCode::OK {
        return status;
    }
    match split_messages(&answer.body) {
        Err(e) => reading(GrpcCode::INTERNAL, e),
        Ok(messages) if messages.is_empty() => reading(
            GrpcCode::INTERNAL,
            "cardinality violation: received no response message from non-server-streaming RPC"
                .to_owned(),
        ),
        Ok(messages) if messages.len() > 1 => reading(
            GrpcCode::INTERNAL,
            "cardinality violation: expected <EOF> for non server-streaming RPCs, but received another message"
                .to_owned(),
        ),
        Ok(_) => status,
    }
}

/// grpc-go's `decodeGrpcMessage`: `%XX` escapes decoded, anything else kept.
pub fn decode_grpc_message(message: &str) -> String {
    let bytes = message.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let escaped = (byte == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                i += 3;
            }
            None => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Frames one message: a zero compressed-flag byte, a 4-byte big-endian length, the bytes.
pub fn frame_message(message: &[u8]) -> Result<Bytes, String> {
    let len = u32::try_from(message.len())
        .map_err(|_| format!("a {}-byte message does not fit a frame", message.len()))?;
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    Ok(Bytes::from(framed))
}

/// Splits a body into its length-prefixed messages. Compressed messages are refused: the client
/// never advertises an encoding, so a compressed one is a server error (grpc-go: INTERNAL).
pub fn split_messages(body: &[u8]) -> Result<Vec<Bytes>, String> {
    let mut messages = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let header: Option<(u8, [u8; 4])> = rest
            .first()
            .zip(rest.get(1..5).and_then(|b| <[u8; 4]>::try_from(b).ok()))
            .map(|(flag, len)| (*flag, len));
        let Some((flag, len)) = header else {
            return Err(format!(
                "truncated gRPC frame header ({} bytes left)",
                rest.len()
            ));
        };
        let len = u32::from_be_bytes(len) as usize;
        let Some(message) = rest.get(5..5 + len) else {
            return Err(format!(
                "truncated gRPC message: {len} bytes announced, {} present",
                rest.len() - 5
            ));
        };
        if flag != 0 {
            return Err(format!(
                "compressed flag {flag} set on a message without grpc-encoding"
            ));
        }
        messages.push(Bytes::copy_from_slice(message));
        rest = rest.get(5 + len..).unwrap_or_default();
    }
    Ok(messages)
}

#[cfg(test)]
mod tests;
