//! Building the controller-shim as a static Linux binary for each image architecture.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

use crate::builder::{Workspace, cargo, ensure_target, run};
use crate::formats::Platform;
use crate::registry::progress;

pub const SHIM_PACKAGE: &str = "controller-shim";
/// The Cargo profile of the image binary (the workspace Cargo.toml: release, stripped).
pub const IMAGE_PROFILE: &str = "image";

/// An architecture the image can be built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Arch {
    /// linux/amd64, built with Debian's musl-tools (`musl-gcc`).
    #[value(name = "x86_64", alias = "amd64")]
    X86_64,
    /// linux/arm64, cross-built with `cargo zigbuild` (zig as the C compiler and linker).
    #[value(name = "aarch64", alias = "arm64")]
    Aarch64,
}

impl Arch {
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Aarch64 => "aarch64-unknown-linux-musl",
        }
    }

    /// The OCI platform (`GOARCH` spelling).
    pub fn platform(self) -> Platform {
        let (architecture, variant) = match self {
            Arch::X86_64 => ("amd64", None),
            Arch::Aarch64 => ("arm64", Some("v8".to_string())),
        };
        Platform {
            architecture: architecture.to_string(),
            os: "linux".to_string(),
            variant,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file()))
}

/// `target/<triple>/image/controller-shim`.
pub fn binary_path(ws: &Workspace, arch: Arch) -> PathBuf {
    ws.target_dir
        .join(arch.rust_target())
        .join(IMAGE_PROFILE)
        .join(SHIM_PACKAGE)
}

/// Rust flags that keep build-machine paths out of the binary (panic locations name source
/// files), so two checkouts in different directories build the same bytes.
fn remap_flags(ws: &Path) -> Vec<String> {
    let mut flags = vec![format!("--remap-path-prefix={}=/build", ws.display())];
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(home) = cargo_home {
        flags.push(format!("--remap-path-prefix={}=/cargo", home.display()));
    }
    flags
}

/// Builds the controller-shim for `arch` with the `image` profile and returns the binary.
pub fn build_shim(ws: &Workspace, arch: Arch) -> Result<PathBuf> {
    let triple = arch.rust_target();
    ensure_target(triple)?;
    let mut cmd = Command::new(cargo());
    cmd.current_dir(&ws.root);
    match arch {
        Arch::X86_64 => {
            // aws-lc-sys (kube's TLS) compiles C: for musl that takes musl-gcc.
            if !on_path("musl-gcc") {
                bail!(
                    "musl-gcc is missing: building the static x86_64 controller-shim needs Debian's musl-tools \
                     (apt-get install musl-tools)"
                );
            }
            cmd.arg("build")
                .env("CC_x86_64_unknown_linux_musl", "musl-gcc");
        }
        Arch::Aarch64 => {
            if !on_path("cargo-zigbuild") {
                bail!(
                    "cargo-zigbuild is missing: the aarch64 image is cross-built with zig \
                     (pip install ziglang cargo-zigbuild, then put their bin directory on PATH)"
                );
            }
            cmd.arg("zigbuild");
        }
    }
    let rustflags = remap_flags(&ws.root)
        .iter()
        .map(|f| format!("\"{f}\""))
        .collect::<Vec<_>>()
        .join(", ");
    cmd.args(["-p", SHIM_PACKAGE, "--bin", SHIM_PACKAGE, "--locked"])
        .args(["--target", triple, "--profile", IMAGE_PROFILE])
        .arg("--config")
        .arg(format!("target.{triple}.rustflags=[{rustflags}]"));
    progress(&format!(
        "building {SHIM_PACKAGE} for {triple} (profile {IMAGE_PROFILE}; the first build compiles every dependency, minutes)"
    ));
    run(&mut cmd, "cargo build of the controller-shim")?;
    let binary = binary_path(ws, arch);
    if !binary.is_file() {
        bail!("cargo build succeeded but {} is missing", binary.display());
    }
    Ok(binary)
}
