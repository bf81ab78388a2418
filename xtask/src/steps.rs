//! The steps behind each xtask command, run as child processes with progress lines.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

/// `cargo` arguments that build `packages` as Envoy and Kong load them: for wasm32-wasip1 with the
/// size-tuned `wasm` profile (the filter lands in `target/wasm32-wasip1/wasm/gateway_wasm.wasm`).
pub fn wasm_build_args<'a>(packages: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["build"];
    for package in packages {
        args.extend(["-p", package]);
    }
    args.extend(["--target", "wasm32-wasip1", "--profile", "wasm"]);
    args
}

/// The vendored copy of the shared conformance vectors (kept identical by a test in `conformance`).
pub const VECTORS: &str = "conformance/vectors/httproute-vectors.json";

/// Debian packages the test suite needs, with a file proving each is installed: a real OCI
/// registry, skopeo to inspect what we publish, htpasswd for the authenticated-registry test.
const TEST_PACKAGES: &[(&str, &str)] = &[
    ("docker-registry", "/usr/bin/docker-registry"),
    ("skopeo", "/usr/bin/skopeo"),
    ("apache2-utils", "/usr/bin/htpasswd"),
];

/// The workspace root (xtask lives one level below it).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs a command in the workspace root, echoing it and its duration; fails on a non-zero exit.
fn run(label: &str, program: &str, args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<()> {
    eprintln!("==> {label}: {program} {}", args.join(" "));
    let started = Instant::now();
    let status = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(root())
        .status()
        .with_context(|| format!("starting {program}"))?;
    let took = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{label} failed ({status}) after {took:.0}s");
    }
    eprintln!("    {label}: ok ({took:.0}s)");
    Ok(())
}

/// A binary the test build left in the target directory.
fn debug_binary(name: &str) -> anyhow::Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| root().join(d))
        .unwrap_or_else(|| root().join("target"));
    let path = target.join("debug").join(name);
    if !path.exists() {
        bail!(
            "{} is missing; `cargo test --workspace` builds it",
            path.display()
        );
    }
    Ok(path)
}

fn run_binary(label: &str, binary: &Path, args: &[&str]) -> anyhow::Result<()> {
    run(label, &binary.to_string_lossy(), args, &[])
}

pub(crate) fn cargo(label: &str, args: &[&str]) -> anyhow::Result<()> {
    run(label, "cargo", args, &[])
}

/// Whether rustup has the wasm32-wasip1 standard library installed.
pub(crate) fn wasm_target_installed() -> anyhow::Result<bool> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running `rustup target list --installed` (is rustup installed?)")?;
    Ok(String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == "wasm32-wasip1"))
}

pub(crate) fn ensure_wasm_target() -> anyhow::Result<()> {
    if wasm_target_installed()? {
        return Ok(());
    }
    run(
        "install the wasm32-wasip1 target",
        "rustup",
        &["target", "add", "wasm32-wasip1"],
        &[],
    )
}

fn ensure_test_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = TEST_PACKAGES
        .iter()
        .filter(|(_, binary)| !Path::new(binary).exists())
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    run("apt-get update", "apt-get", &["update", "-qq"], &[])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(&missing);
    run(
        &format!("install Debian packages {}", missing.join(", ")),
        "apt-get",
        &args,
        &[("DEBIAN_FRONTEND", "noninteractive")],
    )
}

pub fn test(quick: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    ensure_wasm_target()?;
    ensure_test_packages()?;
    cargo("format check", &["fmt", "--all", "--", "--check"])?;
    cargo(
        "clippy (host)",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    cargo(
        "clippy (plugin, wasm32)",
        &[
            "clippy",
            "-p",
            "plugin",
            "--target",
            "wasm32-wasip1",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    cargo(
        "engine for wasm32",
        &["build", "-p", "engine", "--target", "wasm32-wasip1"],
    )?;
    cargo("plugin .wasm (wasm profile)", &wasm_build_args(&["plugin"]))?;
    // One feature resolution for everything below: `cargo test --workspace` also builds the binaries
    // of packages with integration tests (controller-shim, echo-backend, conformance), and the
    // steps after it run those binaries directly. A `cargo run -p X` would resolve features for X
    // alone and rebuild half the dependency tree.
    cargo("tests", &["test", "--workspace"])?;
    let xtask = std::env::current_exe().context("locating the running xtask")?;
    run_binary(
        "demo (examples/quickstart in a real Envoy, every check)",
        &xtask,
        &["demo", "--no-color", "--prebuilt"],
    )?;
    let conformance = debug_binary("conformance")?;
    let vectors = ["--vectors", VECTORS];
    run_binary(
        "conformance: request cases (native)",
        &conformance,
        &[&vectors[..], &["--target", "native"]].concat(),
    )?;
    run_binary(
        "conformance: status cases",
        &conformance,
        &[&vectors[..], &["--status"]].concat(),
    )?;
    if quick {
        eprintln!("--quick: skipped the real-Envoy conformance run and the benchmark harnesses");
    } else {
        run_binary(
            "conformance: request cases (real Envoy + wasm filter)",
            &conformance,
            &[&vectors[..], &["--target", "envoy"]].concat(),
        )?;
        // The benchmarks run here only to prove their harnesses work; their numbers come from
        // `cargo xtask bench` on a quiet machine (docs/benchmarks.md). No timing is asserted.
        cargo(
            "benchmark harness: engine (each benchmark once, as a test)",
            &["test", "--workspace", "--benches"],
        )?;
        cargo(
            "benchmark harness: floor and probe filters",
            &wasm_build_args(&["floor-filter", "probe-filter"]),
        )?;
        run_binary(
            "benchmark harness: Envoy side by side (--quick)",
            &debug_binary("gateway-bench")?,
            &["--quick"],
        )?;
        run_binary(
            "benchmark harness: host-call probe (--quick)",
            &debug_binary("gateway-bench")?,
            &["probe", "--quick"],
        )?;
    }
    eprintln!(
        "all checks passed in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn conformance(args: &[String]) -> anyhow::Result<()> {
    let mut full: Vec<&str> = vec!["run", "-q", "-p", "conformance", "--"];
    if !args
        .iter()
        .any(|a| a == "--vectors" || a.starts_with("--vectors="))
    {
        full.extend(["--vectors", VECTORS]);
    }
    full.extend(args.iter().map(String::as_str));
    cargo("conformance", &full)
}

pub fn bench(quick: bool) -> anyhow::Result<()> {
    let mut args = vec!["bench", "-p", "engine", "--bench", "evaluate", "--"];
    if quick {
        args.extend([
            "--warm-up-time",
            "0.2",
            "--measurement-time",
            "0.5",
            "--sample-size",
            "10",
        ]);
    }
    cargo("engine evaluation benchmark", &args).and_then(|()| crate::bench::envoy(quick))
}

pub fn bless() -> anyhow::Result<()> {
    run(
        "regenerate golden files",
        "cargo",
        &["test", "--workspace", "golden"],
        &[("BLESS", "1")],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_builds_name_every_package_with_the_wasm_profile() {
        assert_eq!(
            wasm_build_args(&["plugin", "floor-filter"]).join(" "),
            "build -p plugin -p floor-filter --target wasm32-wasip1 --profile wasm"
        );
    }
}
