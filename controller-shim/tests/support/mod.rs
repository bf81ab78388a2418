//! Helpers shared by the test binaries that run the real Envoy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

/// Builds the filter once per test process and returns the `.wasm` path.
pub fn plugin_wasm() -> PathBuf {
    testkit::wasm::plugin_wasm().expect("building the wasm filter")
}
