//! gateway-wasm: the proxy-wasm filter that evaluates Gateway API routes inside Envoy (and Kong).
//!
//! The adapter (configure, per-request evaluation, the `Host` trait, Kong specifics, payload
//! decoding) lives in [`filter_core`], shared with the Envoy dynamic module; this crate is the
//! proxy-wasm glue over it (`glue`, wasm32 only: root and HTTP contexts over
//! `proxy_wasm::hostcalls`). The adapter's modules are re-exported under their old paths.
//!
//! Build: `cargo build -p plugin --target wasm32-wasip1 --profile wasm` → `gateway_wasm.wasm`.
//! Behaviour in Envoy (bootstrap, port discovery, failure policy, stats): `docs/envoy.md`.

pub use filter_core::{configure, filter, host, kong, payload};

#[cfg(target_arch = "wasm32")]
mod glue;
