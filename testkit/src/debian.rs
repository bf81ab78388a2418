//! Debian packages a test needs (a registry, skopeo, podman, kubectl): installed with apt-get when
//! the binary is missing, so a clean machine runs the same tests as a prepared one.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Result, bail};

/// Whether `binary` (a name, or a path when it has a `/`) is on PATH.
pub fn on_path(binary: &str) -> bool {
    if binary.contains('/') {
        return Path::new(binary).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file()))
}

/// Installs Debian package `package` when `binary` is missing (`apt-get install -y`, after an
/// `apt-get update` when the first attempt fails). One install at a time per test binary.
pub fn ensure_package(binary: &str, package: &str) -> Result<()> {
    static APT: Mutex<()> = Mutex::new(());
    let _guard = APT.lock().unwrap_or_else(|e| e.into_inner());
    if on_path(binary) {
        return Ok(());
    }
    eprintln!(
        "test setup: {binary} is missing; installing Debian package `{package}` (apt-get install -y {package})"
    );
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
    };
    let mut out = install();
    if !matches!(&out, Ok(o) if o.status.success()) {
        eprintln!("test setup: apt-get install failed; running apt-get update and retrying");
        let _ = Command::new("apt-get").args(["update"]).status();
        out = install();
    }
    match out {
        Ok(o) if o.status.success() && on_path(binary) => Ok(()),
        Ok(o) => bail!(
            "cannot install Debian package `{package}` (needed for {binary}): apt-get exited {}: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => bail!("cannot run apt-get to install `{package}` (needed for {binary}): {e}"),
    }
}
