//! Sending a case's request to Envoy exactly as the suite would, and turning the answer into an
//! [`Exchange`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use testkit::client::{HttpClient, Protocol, Request, Response, TlsConfig};
use testkit::grpc::status::HttpToGrpc;
use testkit::grpc::{GrpcClient, GrpcRequest};

use crate::exchange::{EchoView, Exchange, check, request_authority, request_headers};
use crate::native::GATEWAY_IP;
use crate::vectors::Case;

/// Placeholder the vectors use where the suite puts a fresh UUID per probe (retry simulator).
const FRESH_UUID: &str = "<fresh-uuid-per-probe>";

static PROBES: AtomicU64 = AtomicU64::new(0);

pub struct Sender<'c> {
    case: &'c Case,
    client: HttpClient,
    /// Set for a gRPC case: real gRPC calls, read with the file's HTTP-to-gRPC table.
    grpc: Option<(GrpcClient, HttpToGrpc)>,
}

/// What one send produced: the exchange, or (a gRPC case) the verdict of
/// [`crate::grpc_exchange::check`] on the call, which needs the raw answer.
pub enum Sent {
    Http(Exchange),
    Grpc(Result<Exchange, String>),
}

impl Sent {
    /// Checks the case's expectations (for a gRPC call: its outcome first).
    pub fn check(self, case: &Case) -> Result<Exchange, String> {
        match self {
            Sent::Http(exchange) => check(case, &exchange).map(|()| exchange),
            Sent::Grpc(verdict) => verdict,
        }
    }

    /// The exchange for checks made on top of [`Sent::check`]'s (an HTTP exchange unchecked; a
    /// gRPC call only when its own check passed).
    pub fn into_exchange(self) -> Result<Exchange, String> {
        match self {
            Sent::Http(exchange) => Ok(exchange),
            Sent::Grpc(verdict) => verdict,
        }
    }
}

impl<'c> Sender<'c> {
    pub fn new(case: &'c Case, port: u16) -> Sender<'c> {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let request = &case.request;
        let sni = request
            .sni
            .clone()
            .or_else(|| request.host.clone())
            .unwrap_or_else(|| "localhost".to_owned());
        let protocol = match (request.scheme.as_str(), request.protocol.as_deref()) {
            ("https", Some("h2")) => Protocol::Http2Tls(TlsConfig::insecure_accept_any_cert(sni)),
            ("https", _) => Protocol::Http1Tls(TlsConfig::insecure_accept_any_cert(sni)),
            (_, Some("h2c-prior-knowledge")) => Protocol::H2c,
            _ => Protocol::Http1,
        };
        let client = HttpClient::new(addr, protocol)
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(20));
        Sender {
            case,
            client,
            grpc: None,
        }
    }

    /// A sender of real gRPC calls: h2c with prior knowledge, or HTTP/2 over TLS (ALPN `h2`) for
    /// `https`, as the suite's grpc-go client dials the gateway.
    pub fn grpc(case: &'c Case, port: u16, table: HttpToGrpc) -> Sender<'c> {
        let mut sender = Sender::new(case, port);
        let addr = sender.client.addr();
        let client = match sender.client.protocol() {
            Protocol::Http2Tls(tls) | Protocol::Http1Tls(tls) => GrpcClient::tls(addr, tls.clone()),
            _ => GrpcClient::h2c(addr),
        }
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(20));
        sender.grpc = Some((client, table));
        sender
    }

    /// One call as the suite makes it: the case's `:path`, `:authority` and metadata, an empty
    /// `EchoRequest`.
    fn grpc_request(&self) -> GrpcRequest {
        let r = &self.case.request;
        let mut request = GrpcRequest::new(r.path.clone())
            .with_message(&testkit::grpc::proto::EchoRequest {})
            .with_authority(crate::grpc_exchange::authority(self.case, GATEWAY_IP));
        for (name, value) in &r.headers {
            request = request.with_metadata(name.clone(), value.clone());
        }
        request
    }

    fn request(&self) -> Request {
        let r = &self.case.request;
        let target = if r.path.contains(FRESH_UUID) {
            let probe = PROBES.fetch_add(1, Ordering::Relaxed);
            r.path
                .replace(FRESH_UUID, &format!("{:016x}-{probe}", std::process::id()))
        } else {
            r.path.clone()
        };
        let mut request = Request::new(r.method.clone(), target)
            .with_host(request_authority(self.case, GATEWAY_IP));
        for (name, value) in request_headers(self.case) {
            request = request.with_header(name, value);
        }
        request
    }

    /// Sends the request (or the gRPC call) once.
    pub fn send_any(&self) -> anyhow::Result<Sent> {
        let Some((client, table)) = &self.grpc else {
            return self.send().map(Sent::Http);
        };
        let request = self.grpc_request();
        let answer = client.call_raw(&request).with_context(|| {
            format!(
                "gRPC call {} (:authority {}) through Envoy at {}",
                request.path,
                request.authority.as_deref().unwrap_or_default(),
                client.addr()
            )
        })?;
        Ok(Sent::Grpc(crate::grpc_exchange::check(
            self.case, table, &answer,
        )))
    }

    /// Sends the request once.
    pub fn send(&self) -> anyhow::Result<Exchange> {
        let request = self.request();
        let response = self.client.send(&request).with_context(|| {
            format!(
                "{} {} through Envoy at {}",
                request.method,
                request.target,
                self.client.addr()
            )
        })?;
        Ok(exchange(request.target, response))
    }

    /// Upgrades to a WebSocket and checks each frame comes back.
    pub fn websocket(&self, frames: &[String]) -> Result<(), String> {
        let mut socket = self
            .client
            .websocket(&self.request())
            .map_err(|e| format!("WebSocket upgrade failed: {e}"))?;
        for frame in frames {
            let echoed = socket
                .echo_text(frame)
                .map_err(|e| format!("WebSocket frame {frame:?}: {e}"))?;
            if echoed != *frame {
                return Err(format!("WebSocket echo: sent {frame:?}, got {echoed:?}"));
            }
        }
        let _ = socket.close();
        Ok(())
    }
}

fn exchange(request_target: String, response: Response) -> Exchange {
    let echo = response
        .echo()
        .ok()
        .filter(|e| !e.namespace.is_empty())
        .map(|e| EchoView {
            backend: format!("{}/{}", e.namespace, e.service),
            method: e.method,
            path: e.path,
            host: e.host,
            proto: e.proto,
            headers: e
                .headers
                .into_iter()
                .flat_map(|(name, values)| values.into_iter().map(move |v| (name.clone(), v)))
                .collect(),
        });
    Exchange {
        request_target,
        status: response.status,
        response_headers: response.headers,
        echo,
    }
}

/// The protocol Envoy used towards the backend, as the echo backend reports it.
pub fn check_upstream_protocol(expected: &str, exchange: &Exchange) -> Result<(), String> {
    let Some(echo) = &exchange.echo else {
        return Err(format!(
            "expected {expected} towards the backend, but no backend answered"
        ));
    };
    let wanted = match expected {
        "h2c" => "HTTP/2.0",
        other => {
            return Err(format!(
                "upstream protocol {other} is not checked by this runner"
            ));
        }
    };
    if echo.proto == wanted {
        Ok(())
    } else {
        Err(format!(
            "upstream protocol: expected {wanted}, got {}",
            echo.proto
        ))
    }
}
