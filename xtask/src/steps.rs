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
    args.extend(["--target", WASI_TARGET, "--profile", "wasm"]);
    args
}

/// The vendored copy of the shared conformance vectors (kept identical by a test in `conformance`).
pub const VECTORS: &str = "conformance/vectors/httproute-vectors.json";
/// The vendored GRPCRoute vectors.
pub const GRPC_VECTORS: &str = "conformance/vectors/grpcroute-vectors.json";

/// Debian packages the test suite needs, with a file proving each is installed: a real OCI
/// registry, skopeo to inspect what we publish, htpasswd for the authenticated-registry test,
/// musl-gcc for the controller-shim image's static build, podman and runc to run that image,
/// kubectl (with kustomize) to render examples/kubernetes, Chromium and its WebDriver for the
/// playground's browser tests.
const TEST_PACKAGES: &[(&str, &str)] = &[
    ("docker-registry", "/usr/bin/docker-registry"),
    ("skopeo", "/usr/bin/skopeo"),
    ("apache2-utils", "/usr/bin/htpasswd"),
    ("musl-tools", "/usr/bin/musl-gcc"),
    ("podman", "/usr/bin/podman"),
    ("runc", "/usr/sbin/runc"),
    ("kubernetes-client", "/usr/bin/kubectl"),
    ("chromium", "/usr/bin/chromium"),
    ("chromium-driver", "/usr/bin/chromedriver"),
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

/// The target directory (CARGO_TARGET_DIR or `target/`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| root().join(d))
        .unwrap_or_else(|| root().join("target"))
}

/// Writes `gateway_wasm.envoy.wasm` next to the built filter with `packager trim-exports --host
/// envoy` (the debug packager the test build left); returns its path.
fn envoy_trimmed_module() -> anyhow::Result<PathBuf> {
    let packager = debug_binary("packager")?;
    let dir = target_dir().join(WASI_TARGET).join("wasm");
    let built = dir.join("gateway_wasm.wasm").to_string_lossy().into_owned();
    let trimmed = dir.join("gateway_wasm.envoy.wasm");
    let out = trimmed.to_string_lossy().into_owned();
    run_binary(
        "filter with Envoy's exports only",
        &packager,
        &["trim-exports", &built, "--host", "envoy", "--out", &out],
    )?;
    Ok(trimmed)
}

/// Builds the module a release publishes (`packager build --release --optimize`: the callbacks no
/// host calls removed, then wasm-opt -Oz) and returns its path.
fn published_module() -> anyhow::Result<PathBuf> {
    let packager = debug_binary("packager")?;
    run_binary(
        "published filter (packager build --release --optimize)",
        &packager,
        &["build", "--release", "--optimize", "--install-tools"],
    )?;
    Ok(target_dir()
        .join(WASI_TARGET)
        .join("wasm")
        .join("gateway_wasm.opt.wasm"))
}

/// A binary the test build left in the target directory.
fn debug_binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = target_dir().join("debug").join(name);
    if !path.exists() {
        bail!(
            "{} is missing; `cargo test --workspace` builds it",
            path.display()
        );
    }
    Ok(path)
}

pub(crate) fn run_binary(label: &str, binary: &Path, args: &[&str]) -> anyhow::Result<()> {
    run(label, &binary.to_string_lossy(), args, &[])
}

pub(crate) fn cargo(label: &str, args: &[&str]) -> anyhow::Result<()> {
    run(label, "cargo", args, &[])
}

/// The target the filter is built for (Envoy's and Kong's Wasm runtimes).
const WASI_TARGET: &str = "wasm32-wasip1";
/// The browser's target: the resolver crate must build for it (the playground runs it there).
pub(crate) const BROWSER_TARGET: &str = "wasm32-unknown-unknown";

/// The resolver, which must stay free of tokio, the Kubernetes client, TLS, randomness and the
/// clock so that it runs in a browser.
const RESOLVER_PACKAGE: &str = "gateway-resolver";
/// The playground page's module (the resolver and the engine with wasm-bindgen).
const PLAYGROUND_PACKAGE: &str = "playground";

/// Whether rustup has the standard library of `target` installed.
fn target_installed(target: &str) -> anyhow::Result<bool> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running `rustup target list --installed` (is rustup installed?)")?;
    Ok(String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == target))
}

/// Whether rustup has the wasm32-wasip1 standard library installed.
pub(crate) fn wasm_target_installed() -> anyhow::Result<bool> {
    target_installed(WASI_TARGET)
}

/// Installs `target`'s standard library with rustup when it is missing.
pub(crate) fn ensure_target(target: &str) -> anyhow::Result<()> {
    if target_installed(target)? {
        return Ok(());
    }
    run(
        &format!("install the {target} target"),
        "rustup",
        &["target", "add", target],
        &[],
    )
}

pub(crate) fn ensure_wasm_target() -> anyhow::Result<()> {
    ensure_target(WASI_TARGET)
}

/// Crates that have no place in a browser: a runtime, the Kubernetes client, TLS, randomness
/// (`getrandom` does not build for wasm32-unknown-unknown without JavaScript glue).
const NOT_IN_THE_BROWSER: &[&str] = &[
    "tokio",
    "hyper",
    "kube-client",
    "kube-runtime",
    "rustls",
    "ring",
    "aws-lc-rs",
    "aws-lc-sys",
    "getrandom",
];

/// Fails when the resolver's dependency tree for the browser holds a crate of
/// [`NOT_IN_THE_BROWSER`] (a build could still succeed with some of them, and fail at run time).
fn check_browser_dependencies(package: &str) -> anyhow::Result<()> {
    let label = format!("{package} dependencies for the browser");
    let args = [
        "tree",
        "-p",
        package,
        "--target",
        BROWSER_TARGET,
        "-e",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ];
    eprintln!("==> {label}: cargo {}", args.join(" "));
    let output = Command::new("cargo")
        .args(args)
        .current_dir(root())
        .output()
        .context("starting cargo tree")?;
    if !output.status.success() {
        bail!(
            "cargo tree failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    let found = forbidden_crates(&tree);
    if !found.is_empty() {
        bail!(
            "{package} must build for the browser, but depends on {} (see `cargo {}`)",
            found.join(", "),
            args.join(" ")
        );
    }
    eprintln!(
        "    {label}: ok (none of {})",
        NOT_IN_THE_BROWSER.join(", ")
    );
    Ok(())
}

/// The crates of [`NOT_IN_THE_BROWSER`] named in `cargo tree --format {p}` output.
fn forbidden_crates(tree: &str) -> Vec<&'static str> {
    let names: std::collections::BTreeSet<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    NOT_IN_THE_BROWSER
        .iter()
        .copied()
        .filter(|name| names.contains(name))
        .collect()
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
    ensure_target(BROWSER_TARGET)?;
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
            WASI_TARGET,
            "--",
            "-D",
            "warnings",
        ],
    )?;
    cargo(
        "engine for wasm32",
        &["build", "-p", "engine", "--target", WASI_TARGET],
    )?;
    check_browser_dependencies(RESOLVER_PACKAGE)?;
    check_browser_dependencies(PLAYGROUND_PACKAGE)?;
    // `-p` alone: built with the rest of the workspace, its `kube` dependency would be unified
    // with the controller-shim's, client (tokio, TLS) included.
    cargo(
        "resolver for the browser",
        &["build", "-p", RESOLVER_PACKAGE, "--target", BROWSER_TARGET],
    )?;
    cargo(
        "clippy (playground, wasm32)",
        &[
            "clippy",
            "-p",
            PLAYGROUND_PACKAGE,
            "--target",
            BROWSER_TARGET,
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // The page (module, glue, wasm-opt) before the tests: its browser tests build their own copies
    // and reuse this build's optimized module.
    crate::playground::build(&crate::demo::target_dir(&root()).join("playground"))?;
    cargo("plugin .wasm (wasm profile)", &wasm_build_args(&["plugin"]))?;
    // `cargo test` does not build a cdylib-only package's library for its integration tests: the
    // dynamic-module tests load the `.so` from target/debug, so it is built explicitly (a clean
    // clone has none).
    cargo(
        "dynamic modules (debug: the module its tests load, the floor the bench harness loads)",
        &["build", "-p", "dynamic-module", "-p", "dynamic-floor"],
    )?;
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
    // Three builds of the filter: the real-Envoy file runs load the one with only Envoy's
    // callbacks (`packager trim-exports --host envoy`); the Kong emulation and the xDS runs (pulled
    // from a registry, as users deploy it) the published one (`packager build --release
    // --optimize`); the untrimmed build is what the demo, the soak, the fleet and the
    // controller-shim's tests load.
    let (envoy_wasm, published_wasm) = (envoy_trimmed_module()?, published_module()?);
    let (envoy_wasm, published_wasm) = (
        envoy_wasm.to_string_lossy(),
        published_wasm.to_string_lossy(),
    );
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
    run_binary(
        "conformance: GRPCRoute status cases",
        &conformance,
        &["--vectors", GRPC_VECTORS, "--status"],
    )?;
    run_binary(
        "conformance: GRPCRoute request cases (native, gRPC calls through the filter)",
        &conformance,
        &["--vectors", GRPC_VECTORS, "--target", "native"],
    )?;
    run_binary(
        "conformance: request cases (Kong 3.4-3.9 emulated, published wasm filter)",
        &conformance,
        &[
            &vectors[..],
            &["--target", "kong-emulated", "--wasm", &published_wasm],
        ]
        .concat(),
    )?;
    if quick {
        eprintln!(
            "--quick: skipped the real-Envoy conformance runs, the benchmark harnesses, the soak, the fleet and fuzzing"
        );
    } else {
        run_binary(
            "conformance: request cases (real Envoy + wasm filter, Envoy's exports only)",
            &conformance,
            &[&vectors[..], &["--target", "envoy", "--wasm", &envoy_wasm]].concat(),
        )?;
        run_binary(
            "conformance: GRPCRoute request cases (real Envoy + wasm filter, real gRPC calls)",
            &conformance,
            &[
                "--vectors",
                GRPC_VECTORS,
                "--target",
                "envoy",
                "--wasm",
                &envoy_wasm,
            ],
        )?;
        // The debug module built before the tests (target/debug/libgateway_wasm_dynamic.so).
        run_binary(
            "conformance: request cases (real Envoy + dynamic module)",
            &conformance,
            &[&vectors[..], &["--target", "envoy-dynamic"]].concat(),
        )?;
        run_binary(
            "conformance: GRPCRoute request cases (real Envoy + dynamic module, real gRPC calls)",
            &conformance,
            &["--vectors", GRPC_VECTORS, "--target", "envoy-dynamic"],
        )?;
        run_binary(
            "conformance: request cases (real Envoy fed over xDS by the controller-shim, published filter from a registry)",
            &conformance,
            &[
                &vectors[..],
                &["--target", "envoy-xds", "--wasm", &published_wasm],
            ]
            .concat(),
        )?;
        run_binary(
            "conformance: GRPCRoute request cases (real Envoy fed over xDS, published filter from a registry, real gRPC calls)",
            &conformance,
            &[
                "--vectors",
                GRPC_VECTORS,
                "--target",
                "envoy-xds",
                "--wasm",
                &published_wasm,
            ],
        )?;
        // The benchmarks run here only to prove their harnesses work; their numbers come from
        // `cargo xtask bench` on a quiet machine (docs/benchmarks.md). No timing is asserted.
        cargo(
            "benchmark harness: engine (each benchmark once, as a test)",
            &["test", "--workspace", "--benches"],
        )?;
        cargo(
            "benchmark harness: floor and probe filters, the V8 configuration probe",
            &wasm_build_args(&["floor-filter", "probe-filter", "v8-configure"]),
        )?;
        // The debug dynamic modules built before the tests (only the harness is checked).
        run_binary(
            "benchmark harness: Envoy side by side (--quick)",
            &debug_binary("gateway-bench")?,
            &[
                "--quick",
                "--dynamic-module",
                "target/debug/libgateway_wasm_dynamic.so",
                "--dynamic-floor",
                "target/debug/libdynamic_floor.so",
            ],
        )?;
        run_binary(
            "benchmark harness: host-call probe (--quick)",
            &debug_binary("gateway-bench")?,
            &["probe", "--quick"],
        )?;
        run_binary(
            "benchmark harness: configuration in V8 under node (--quick)",
            &debug_binary("gateway-bench")?,
            &["v8-configure", "--quick"],
        )?;
        // The long runs (1,000+ edits, 10 minutes per fuzz target) are recorded in
        // docs/reliability.md; CI runs each briefly.
        run_binary(
            "soak (short: 100 route edits under load, Envoy and shim restarts)",
            &xtask,
            &["soak", "--pushes", "100", "--prebuilt"],
        )?;
        // The 20-Envoy run is recorded in docs/benchmarks.md; CI runs a small fleet.
        run_binary(
            "fleet (short: one controller-shim, 4 Envoys over xDS, every scenario)",
            &xtask,
            &["fleet", "--envoys", "4", "--pushes", "4", "--prebuilt"],
        )?;
        run_binary(
            "fuzz (short: every target 15 s, dependencies unoptimized to build faster)",
            &xtask,
            &["fuzz", "--seconds", "15", "--fast-build"],
        )?;
    }
    eprintln!(
        "all checks passed in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn conformance(args: &[String]) -> anyhow::Result<()> {
    // The targets that run the filter need the module; build it (a no-op when it is current).
    let runs_the_filter = args
        .windows(2)
        .any(|w| matches!(w, [flag, target] if flag == "--target" && target != "native"))
        || args
            .iter()
            .any(|a| a.starts_with("--target=") && a != "--target=native");
    let dynamic = args
        .iter()
        .any(|a| a == "envoy-dynamic" || a == "--target=envoy-dynamic");
    if dynamic
        && !args
            .iter()
            .any(|a| a == "--module" || a.starts_with("--module="))
    {
        cargo("dynamic module (debug)", &["build", "-p", "dynamic-module"])?;
    }
    if runs_the_filter
        && !dynamic
        && !args
            .iter()
            .any(|a| a == "--wasm" || a.starts_with("--wasm="))
    {
        ensure_wasm_target()?;
        cargo("plugin .wasm (wasm profile)", &wasm_build_args(&["plugin"]))?;
    }
    // `--target envoy-xds` runs the controller-shim binary next to the runner's.
    if args.iter().any(|a| a.ends_with("envoy-xds")) {
        cargo(
            "controller-shim (for --target envoy-xds)",
            &["build", "-p", "controller-shim", "--bin", "controller-shim"],
        )?;
    }
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
    fn forbidden_browser_crates_are_found_by_name() {
        let tree = "gateway-resolver v0.1.0 (/src/resolver)\nkube-core v4.2.0\ntokio v1.50.0\ntokio-util v0.7.0\n";
        assert_eq!(forbidden_crates(tree), ["tokio"]);
        assert!(forbidden_crates("kube-core v4.2.0\nserde v1.0.0\n").is_empty());
    }

    #[test]
    fn wasm_builds_name_every_package_with_the_wasm_profile() {
        assert_eq!(
            wasm_build_args(&["plugin", "floor-filter"]).join(" "),
            "build -p plugin -p floor-filter --target wasm32-wasip1 --profile wasm"
        );
    }
}
