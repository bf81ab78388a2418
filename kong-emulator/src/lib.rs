//! An **emulation** of what Kong 3.4–3.9 and its ngx_wasm_module do around a proxy-wasm filter,
//! derived from their source, that runs the real `gateway_wasm.wasm` in the wasmi interpreter.
//! It is not Kong and does not prove that Kong behaves this way; it encodes what Kong's source says
//! (file references on every rule, and in `docs/kong.md`) so that the filter and the shim are
//! tested under Kong's semantics rather than Envoy's. A live Kong must still confirm it.
//!
//! Consumes the filter module and a declarative configuration (what the controller-shim posts to a
//! DB-less Kong); produces, for each client request, what the client and the backend see.
//!
//! Modelled, per Kong release ([`KongVersion`]):
//! - filter configs: strings only on 3.4; objects re-encoded by lua-cjson from 3.5 (an empty array
//!   arrives as `{}`); a filter rejecting its configuration fails the workers' reload, which is
//!   only logged, and the previous configuration keeps serving;
//! - phase order: the filter's `on_request_headers` runs before `access.after` on 3.4–3.7 and
//!   after it from 3.8; `on_request_headers` never sees end-of-stream; `on_request_body` runs once,
//!   with the whole body, only when there is a body;
//! - properties: `ngx.*` nginx variables (Kong's `$upstream_*` are settable), the proxy-wasm names
//!   mapped onto them (`destination.port` is the PROXY protocol port), `kong.*` through Kong's Lua
//!   handlers from 3.6 (`kong.version`, `kong.service.target`, …) and a plain per-request tree
//!   before; no `xds.*`;
//! - headers: `:authority` and `:scheme` are read-only, `:path` edits change nginx's URI but not
//!   Kong's `$upstream_uri`; Kong sends `Host: $upstream_host` and `$upstream_uri`;
//! - Kong's router (path prefixes), `balancer_data` and the peer of every connection attempt
//!   (`balancer_data.ip` is resolved in `access.after`; a retry resolves again), retries,
//!   `strip_path`, `preserve_host`, proxying to Kong's own listener (another pass);
//! - metric host calls trap before 3.8; dispatches need `:method` and `:path`, go to `host:port`,
//!   and pause the request until answered.
//!
//! Not modelled: TLS, HTTP/2, WebSocket, timeouts, Kong's plugins, Upstream entities and health
//! checks, regex routes, hosts/headers/methods route matching, `Via` and `X-Kong-*` headers, more
//! than one worker or filter chain.

mod abi;
mod emulator;
mod http;
pub mod kong;
pub mod stream;
pub mod version;
mod vm;
mod wasi;
mod wire;

pub use emulator::{Filter, KongEmulator};
pub use http::{Answer, ClientRequest, Response, Upstream, echo};
pub use version::KongVersion;
