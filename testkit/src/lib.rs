//! Shared test infrastructure for gateway-wasm.
//!
//! - [`echo`]: an echo backend modelled on the Gateway API conformance suite's echo server (HTTP/1.1, h2c,
//!   WebSocket, retry simulator, request counters); also the `echo-backend` binary.
//! - [`grpc`]: the conformance suite's gRPC echo server (also `echo-backend --grpc`) and a gRPC client
//!   that reports the raw HTTP/2 answer and the status a grpc-go client reads from it.
//! - [`envoy`]: find or install the real Envoy 1.40, run it, read its admin endpoint.
//! - [`client`]: an HTTP/1.1, HTTPS, HTTP/2 (TLS and h2c) and WebSocket test client that sends requests
//!   verbatim and never follows redirects.
//! - [`certs`]: a self-signed CA and leaf certificates for TLS listeners.
//! - [`ports`]: free loopback ports and waiting for listeners.
//! - [`websocket`]: the small WebSocket frame codec the echo server and the client share.
//! - [`rt`]: running async code from the blocking API.
//! - [`wasm`]: the real filter, built once per test binary.
//! - [`debian`]: installing the Debian packages a test needs when they are missing.
//! - [`lua_cjson`]: a JSON document as Kong re-encodes a filter config through Lua tables.
//!
//! # Example
//!
//! ```
//! use testkit::{EchoIdentity, EchoServer, HttpClient, Request};
//!
//! let echo = EchoServer::start(EchoIdentity::new("ns", "svc", "svc-pod-1"), "127.0.0.1:0".parse()?)?;
//! let response = HttpClient::http1(echo.addr())
//!     .send(&Request::get("/a?b=1").with_host("example.com").with_header("X-Echo-Set-Header", "X-Out:yes"))?;
//! assert_eq!(response.status, 200);
//! assert_eq!(response.header("x-out").as_deref(), Some("yes"));
//! let seen = response.echo()?;
//! assert_eq!((seen.path.as_str(), seen.host.as_str(), seen.service.as_str()), ("/a?b=1", "example.com", "svc"));
//! assert_eq!(echo.request_count(), 1);
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod certs;
pub mod client;
pub mod debian;
pub mod echo;
pub mod envoy;
pub mod grpc;
pub mod lua_cjson;
pub mod ports;
pub mod registry;
pub mod rt;
mod serve;
pub mod wasm;
pub mod websocket;
pub mod xds_debug;

pub use client::{HttpClient, Protocol, Request, Response, TlsConfig};
pub use echo::{EchoBody, EchoIdentity, EchoServer};
pub use envoy::{Envoy, EnvoyOptions, ensure_envoy, validate_config};
pub use ports::{free_port, wait_for_tcp};
