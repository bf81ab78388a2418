//! Shared test infrastructure for gateway-wasm.
//!
//! - [`echo`]: an echo backend modelled on the Gateway API conformance suite's echo server (HTTP/1.1, h2c,
//!   WebSocket, retry simulator, request counters); also the `echo-backend` binary.
//! - [`envoy`]: find or install the real Envoy 1.40, run it, read its admin endpoint.
//! - [`client`]: an HTTP/1.1, HTTPS, HTTP/2 (TLS and h2c) and WebSocket test client that sends requests
//!   verbatim and never follows redirects.
//! - [`certs`]: a self-signed CA and leaf certificates for TLS listeners.
//! - [`ports`]: free loopback ports and waiting for listeners.
//! - [`websocket`]: the small WebSocket frame codec the echo server and the client share.
//! - [`rt`]: running async code from the blocking API.

pub mod certs;
pub mod client;
pub mod echo;
pub mod envoy;
pub mod ports;
pub mod rt;
pub mod websocket;

pub use client::{HttpClient, Protocol, Request, Response, TlsConfig};
pub use echo::{EchoBody, EchoIdentity, EchoServer};
pub use envoy::{Envoy, EnvoyOptions, ensure_envoy, validate_config};
pub use ports::{free_port, wait_for_tcp};
