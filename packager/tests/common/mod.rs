//! Shared helpers for the packager integration tests: a real OCI registry (Debian's
//! `docker-registry`, distribution 2.8) run as a child process, skopeo, the packager binary,
//! fixture modules, and the real plugin build.
#![allow(dead_code)]
// Test support code: failing loudly (unwrap, panic) is the point here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The workspace root (packager/..).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Installs a Debian package when `binary` is missing; fails the test with the reason otherwise.
pub fn ensure_debian_package(binary: &str, package: &str) {
    testkit::debian::ensure_package(binary, package).unwrap_or_else(|e| panic!("{e:#}"));
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// The registry process and the raw GET the tests read it with live in testkit (the
// controller-shim's OCI tests use them too).
#[allow(unused_imports)]
pub use testkit::registry::{TestRegistry, http_get};

/// Runs the packager binary with an isolated Docker config (anonymous registry access).
pub fn packager(args: &[&str]) -> Output {
    packager_with_stdin(args, None)
}

pub fn packager_with_stdin(args: &[&str], stdin: Option<&str>) -> Output {
    static DOCKER_CONFIG: OnceLock<tempfile::TempDir> = OnceLock::new();
    let docker_config = DOCKER_CONFIG.get_or_init(|| tempfile::tempdir().unwrap());
    packager_full(args, stdin, docker_config.path())
}

/// Runs the packager binary with `DOCKER_CONFIG` pointing at `docker_config`.
pub fn packager_full(args: &[&str], stdin: Option<&str>, docker_config: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_packager"));
    cmd.args(args)
        .env("DOCKER_CONFIG", docker_config)
        .env_remove("SOURCE_DATE_EPOCH")
        .current_dir(workspace_root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("starting packager");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Runs the packager binary with extra environment variables (`SOURCE_DATE_EPOCH`), stdin closed.
pub fn packager_with_env(args: &[&str], envs: &[(&str, &str)]) -> Output {
    static DOCKER_CONFIG: OnceLock<tempfile::TempDir> = OnceLock::new();
    let docker_config = DOCKER_CONFIG.get_or_init(|| tempfile::tempdir().unwrap());
    Command::new(env!("CARGO_BIN_EXE_packager"))
        .args(args)
        .env("DOCKER_CONFIG", docker_config.path())
        .env_remove("SOURCE_DATE_EPOCH")
        .envs(envs.iter().copied())
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .output()
        .expect("starting packager")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "packager failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// Asserts failure and returns stderr.
#[track_caller]
pub fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "packager unexpectedly succeeded:\nstdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
    stderr(out)
}

/// Runs skopeo (installed on demand); returns stdout.
#[track_caller]
pub fn skopeo(args: &[&str]) -> Vec<u8> {
    ensure_debian_package("skopeo", "skopeo");
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("running skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `packager push LAYOUT REFERENCE --plain-http`, asserting success; returns stdout (its last
/// line is the pinned reference).
#[track_caller]
pub fn push(layout: &Path, reference: &str) -> String {
    ok(&packager(&[
        "push",
        layout.to_str().unwrap(),
        reference,
        "--plain-http",
    ]))
}

/// `packager pull REFERENCE --out OUT --plain-http [--sha256 HEX]`; the caller checks the outcome.
pub fn pull(reference: &str, out: &Path, sha256: Option<&str>) -> Output {
    let mut args = vec![
        "pull",
        reference,
        "--out",
        out.to_str().unwrap(),
        "--plain-http",
    ];
    if let Some(hex) = sha256 {
        args.extend(["--sha256", hex]);
    }
    packager(&args)
}

/// Pulls `reference` with the payload's sha256 as the expected one and asserts that `out` then
/// holds exactly `payload`; returns the pull's stdout.
#[track_caller]
pub fn pull_identical(reference: &str, out: &Path, payload: &[u8]) -> String {
    let pulled = ok(&pull(reference, out, Some(&sha256_hex(payload))));
    assert_eq!(std::fs::read(out).unwrap(), payload, "pulled {reference}");
    pulled
}

/// The manifest bytes skopeo reads from a plain-HTTP registry.
#[track_caller]
pub fn registry_manifest(reference: &str) -> Vec<u8> {
    skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ])
}

/// The publishing round trip every artifact kind makes, with skopeo as the independent reader:
/// the layout's manifest (as skopeo reads it) has the `digest` that `packager package` printed;
/// `packager push` to `repo:tag` prints the pinned `repo@digest`; the registry then serves the
/// same manifest bytes. Returns those bytes.
#[track_caller]
pub fn push_and_inspect(layout: &Path, repo: &str, tag: &str, digest: &str) -> Vec<u8> {
    let raw = skopeo(&["inspect", "--raw", &format!("oci:{}", layout.display())]);
    assert_eq!(
        format!("sha256:{}", sha256_hex(&raw)),
        digest,
        "skopeo saw a different manifest in {}",
        layout.display()
    );
    let pushed = push(layout, &format!("{repo}:{tag}"));
    assert!(pushed.contains(&format!("{repo}@{digest}")), "{pushed}");
    assert_eq!(
        registry_manifest(&format!("{repo}:{tag}")),
        raw,
        "the registry copy of {repo}:{tag} differs from the layout's manifest"
    );
    raw
}

/// A module with every export the check requires (the text the unit tests use too).
pub const GOOD_WAT: &str = include_str!("../fixtures/good.wat");

/// Writes the fixture module to `dir/name` and returns its path and bytes.
pub fn fixture(dir: &Path, name: &str, wat_text: &str) -> (PathBuf, Vec<u8>) {
    let bytes = wat::parse_str(wat_text).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

/// Builds the real plugin (`cargo build -p plugin --target wasm32-wasip1 --profile wasm`) once
/// per test binary and returns the module path.
pub fn real_plugin() -> PathBuf {
    testkit::wasm::plugin_wasm().expect("building the real plugin")
}

/// Extracts `manifest: sha256:…` from `packager package` output.
pub fn manifest_digest(package_stdout: &str) -> String {
    package_stdout
        .lines()
        .find_map(|l| l.strip_prefix("manifest: "))
        .unwrap_or_else(|| panic!("no manifest line in:\n{package_stdout}"))
        .trim()
        .to_string()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    packager::util::sha256_hex(bytes)
}

/// The names a module exports.
pub fn export_names(module: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let wasmparser::Payload::ExportSection(reader) = payload.unwrap() {
            for export in reader {
                names.push(export.unwrap().name.to_owned());
            }
        }
    }
    names
}
