//! `cargo xtask bench`, second half: the side-by-side Envoy benchmark (native routes, the
//! gateway-wasm filter, an empty wasm filter). Builds the two wasm files with the `wasm` profile,
//! then runs the `bench` crate's `gateway-bench` binary in release mode, which does the rest
//! (installing wrk when missing, Envoy, the upstream, the runs, the report in `target/bench/`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo(label: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("==> {label}: cargo {}", args.join(" "));
    let started = Instant::now();
    let status = Command::new("cargo")
        .args(args)
        .current_dir(root())
        .status()
        .context("starting cargo")?;
    let took = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{label} failed ({status}) after {took:.0}s");
    }
    eprintln!("    {label}: ok ({took:.0}s)");
    Ok(())
}

fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running rustup")?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == "wasm32-wasip1")
    {
        return Ok(());
    }
    eprintln!("==> install the wasm32-wasip1 target: rustup target add wasm32-wasip1");
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip1"])
        .status()
        .context("running rustup")?;
    if !status.success() {
        bail!("rustup target add wasm32-wasip1 failed ({status})");
    }
    Ok(())
}

/// Builds the filter and the floor filter, then runs the Envoy benchmark (`--quick`: one size,
/// short runs, to prove the harness works).
pub fn envoy(quick: bool) -> anyhow::Result<()> {
    ensure_wasm_target()?;
    cargo(
        "wasm filters (plugin, floor-filter; wasm profile)",
        &[
            "build",
            "-p",
            "plugin",
            "-p",
            "floor-filter",
            "--target",
            "wasm32-wasip1",
            "--profile",
            "wasm",
        ],
    )?;
    let mut args = vec![
        "run",
        "--release",
        "-q",
        "-p",
        "bench",
        "--bin",
        "gateway-bench",
        "--",
    ];
    if quick {
        args.push("--quick");
    }
    cargo("Envoy benchmark: native vs plugin vs floor", &args)
}
