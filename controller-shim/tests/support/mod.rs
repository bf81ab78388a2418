//! Helpers shared by the test binaries that run the real Envoy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Builds the filter once per test process and returns the `.wasm` path.
pub fn plugin_wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let root = testkit::envoy::workspace_root().unwrap();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&root)
            .args([
                "build",
                "-p",
                "plugin",
                "--target",
                "wasm32-wasip1",
                "--profile",
                "wasm",
            ])
            .status()
            .expect("running cargo build for the plugin");
        assert!(status.success(), "building the wasm filter failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let wasm = target.join("wasm32-wasip1/wasm/gateway_wasm.wasm");
        assert!(wasm.is_file(), "{} was not built", wasm.display());
        wasm
    })
    .clone()
}
