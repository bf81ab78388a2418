//! The host-independent adapter of the gateway-wasm filter: everything the filter does with a
//! configuration and a request, written against the [`host::Host`] trait. The proxy-wasm plugin
//! (`plugin/`, Envoy and Kong) and the Envoy dynamic module (`dynamic-module/`) are glue over it.
//!
//! Consumes a PluginConfig document (the plugin configuration the controller-shim pushes) and, per
//! request, produces the [`engine`] decision applied through the proxy: header edits and rewrites,
//! the upstream selector (Envoy: the `x-gateway-wasm-upstream` header read by a catch-all route's
//! `cluster_header`; Kong: Kong's `$upstream_uri`, prefixed with the backend's Kong route, see
//! [`kong`]), timeouts, retries and mirrors, or a local answer (redirects, 404/421/500, CORS
//! preflights; a gRPC request gets a trailers-only gRPC answer, `grpc-status` 12 or 14).
//!
//! - [`host`]: the operations the filter needs from its proxy, as a trait;
//! - [`configure`]: configuration bytes to the compiled table (logged, counted);
//! - [`filter`]: the request adapter over that trait (unit-tested natively with a mock host);
//! - [`kong`]: what differs in Kong 3.4–3.9 (routing through Kong's router, Host and path through
//!   Kong's variables, version-gated metrics, bodyless mirrors);
//! - [`payload`]: the configuration bytes, plain or gzip-compressed;
//! - `mock` (tests, and the `mock-host` feature): a recording [`host::Host`].

pub mod configure;
mod crc32;
pub mod filter;
pub mod host;
pub mod kong;
pub mod payload;

#[cfg(test)]
mod grpc_tests;
#[cfg(test)]
mod kong_tests;
/// The recording host of the unit tests; with the `mock-host` feature also for host-side tools
/// (the native conformance target runs every request through [`filter`] over it).
#[cfg(any(test, feature = "mock-host"))]
pub mod mock;
#[cfg(test)]
mod tests;
