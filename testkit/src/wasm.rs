//! The real filter for tests: builds `plugin/` for wasm32-wasip1 with the `wasm` profile (what
//! Envoy, Kong and the OCI artifacts load) once per test binary and returns the module's path.
//!
//! Test binaries of different packages (controller-shim, packager, …) each call it; cargo's own
//! lock serialises concurrent builds, and a build that is up to date takes a moment.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

use crate::envoy::workspace_root;

/// Builds the plugin (adding the wasm32-wasip1 target when rustup lacks it) and returns
/// `<target dir>/wasm32-wasip1/wasm/gateway_wasm.wasm`. The first call of a process builds;
/// later ones return the same answer, error included.
pub fn plugin_wasm() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build() -> Result<PathBuf> {
    let root = workspace_root()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let added = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip1"])
        .output();
    if let Ok(output) = &added
        && !output.status.success()
    {
        eprintln!(
            "test setup: `rustup target add wasm32-wasip1` failed ({}); building anyway",
            output.status
        );
    }
    let status = Command::new(&cargo)
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
        .context("running cargo build for the plugin")?;
    if !status.success() {
        bail!("building the wasm filter failed ({status})");
    }
    // The target directory as cargo resolves it (CARGO_TARGET_DIR, config files or the default).
    let metadata = Command::new(&cargo)
        .current_dir(&root)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("running cargo metadata")?;
    let metadata: serde_json::Value =
        serde_json::from_slice(&metadata.stdout).context("reading cargo metadata's output")?;
    let target = metadata
        .get("target_directory")
        .and_then(serde_json::Value::as_str)
        .context("cargo metadata reports no target_directory")?;
    let wasm = PathBuf::from(target).join("wasm32-wasip1/wasm/gateway_wasm.wasm");
    if !wasm.is_file() {
        bail!("{} is missing after the build", wasm.display());
    }
    Ok(wasm)
}
