//! `packager build`: compiles `plugin/` for wasm32-wasip1, optionally runs binaryen's `wasm-opt`,
//! and finds the built module for the other commands.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;

use crate::registry::progress;

pub const WASM_TARGET: &str = "wasm32-wasip1";
/// The size-tuned release profile (see the workspace Cargo.toml).
pub const RELEASE_PROFILE: &str = "wasm";
pub const PLUGIN_PACKAGE: &str = "plugin";
pub const ARTIFACT: &str = "gateway_wasm.wasm";
pub const OPTIMIZED_ARTIFACT: &str = "gateway_wasm.opt.wasm";
/// The binaryen release we install and whose flags we pass.
pub const BINARYEN_NPM: &str = "binaryen@132";
/// Features the Rust toolchain emits for wasm32-wasip1; wasm-opt rejects the module without them.
pub const WASM_OPT_FLAGS: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-nontrapping-float-to-int",
    "--enable-mutable-globals",
    "-Oz",
];

/// The Cargo workspace we build in.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    /// The workspace version (from the plugin package).
    pub version: String,
    /// The directory of every workspace member.
    pub member_dirs: Vec<PathBuf>,
}

#[derive(Deserialize)]
struct Metadata {
    workspace_root: PathBuf,
    target_directory: PathBuf,
    packages: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
    manifest_path: PathBuf,
}

impl Workspace {
    /// Locates the workspace with `cargo metadata`, from `dir` (or the current directory).
    pub fn locate(dir: Option<&Path>) -> Result<Self> {
        let mut cmd = Command::new(cargo());
        cmd.args(["metadata", "--no-deps", "--format-version", "1"]);
        if let Some(dir) = dir {
            cmd.arg("--manifest-path").arg(dir.join("Cargo.toml"));
        }
        let out = cmd
            .output()
            .context("running `cargo metadata` to find the workspace (is cargo on PATH?)")?;
        if !out.status.success() {
            bail!(
                "`cargo metadata` failed{}: {}\n  run this from the gateway-wasm checkout or pass --workspace DIR",
                dir.map(|d| format!(" for {}", d.display()))
                    .unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let meta: Metadata =
            serde_json::from_slice(&out.stdout).context("parsing `cargo metadata` output")?;
        let plugin = meta
            .packages
            .iter()
            .find(|p| p.name == PLUGIN_PACKAGE)
            .ok_or_else(|| {
                anyhow!(
                    "the workspace at {} has no `{PLUGIN_PACKAGE}` package; run this from the gateway-wasm checkout or pass --workspace DIR",
                    meta.workspace_root.display()
                )
            })?;
        let member_dirs = meta
            .packages
            .iter()
            .filter_map(|p| p.manifest_path.parent().map(Path::to_path_buf))
            .collect();
        Ok(Workspace {
            member_dirs,
            version: plugin.version.clone(),
            root: meta.workspace_root,
            target_dir: meta.target_directory,
        })
    }

    fn profile_dir(&self, release: bool) -> PathBuf {
        self.target_dir
            .join(WASM_TARGET)
            .join(if release { RELEASE_PROFILE } else { "debug" })
    }

    /// `target/wasm32-wasip1/<profile>/gateway_wasm.wasm`.
    pub fn artifact(&self, release: bool) -> PathBuf {
        self.profile_dir(release).join(ARTIFACT)
    }

    /// Where `build --optimize` writes the optimized module.
    pub fn optimized_artifact(&self, release: bool) -> PathBuf {
        self.profile_dir(release).join(OPTIMIZED_ARTIFACT)
    }

    /// The project-local binaryen install.
    pub fn local_wasm_opt(&self) -> PathBuf {
        self.root
            .join(".tools")
            .join("node_modules")
            .join(".bin")
            .join("wasm-opt")
    }

    /// The module `package` and `kong-bundle` use by default: the optimized release build when
    /// it is at least as new as the plain one, else the plain release build.
    pub fn default_module(&self) -> Result<PathBuf> {
        let plain = self.artifact(true);
        let optimized = self.optimized_artifact(true);
        let mtime = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
        match (mtime(&plain), mtime(&optimized)) {
            (Some(p), Some(o)) if o >= p => Ok(optimized),
            (Some(_), _) => Ok(plain),
            (None, Some(_)) => Ok(optimized),
            (None, None) => Err(anyhow!(
                "no release build of the plugin at {}; build it with `packager build --release` \
                 (or `cargo build -p {PLUGIN_PACKAGE} --target {WASM_TARGET} --profile {RELEASE_PROFILE}`), or pass --wasm FILE",
                plain.display()
            )),
        }
    }
}

pub(crate) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("starting {what} ({cmd:?})"))?;
    if !status.success() {
        bail!("{what} failed ({status}): {cmd:?}");
    }
    Ok(())
}

/// Adds the Rust `target` (wasm32-wasip1, a musl target) with rustup when it is not installed.
pub fn ensure_target(target: &str) -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let installed = String::from_utf8_lossy(&out.stdout);
            if installed.lines().any(|l| l.trim() == target) {
                return Ok(());
            }
            progress(&format!(
                "adding the {target} target (rustup target add {target})"
            ));
            run(
                Command::new("rustup").args(["target", "add", target]),
                "rustup target add",
            )
        }
        // No rustup: let cargo report a missing target itself.
        _ => Ok(()),
    }
}

/// Builds the plugin and returns the path of the module.
pub fn build_plugin(ws: &Workspace, release: bool) -> Result<PathBuf> {
    ensure_target(WASM_TARGET)?;
    let profile = if release { RELEASE_PROFILE } else { "dev" };
    progress(&format!(
        "building {PLUGIN_PACKAGE} for {WASM_TARGET} (profile {profile})"
    ));
    let mut cmd = Command::new(cargo());
    cmd.current_dir(&ws.root)
        .args(["build", "-p", PLUGIN_PACKAGE, "--target", WASM_TARGET]);
    if release {
        cmd.args(["--profile", RELEASE_PROFILE]);
    }
    run(&mut cmd, "cargo build")?;
    let artifact = ws.artifact(release);
    if !artifact.is_file() {
        bail!(
            "cargo build succeeded but {} is missing; does plugin/Cargo.toml still name its lib `gateway_wasm` with crate-type cdylib?",
            artifact.display()
        );
    }
    Ok(artifact)
}

/// Builds the Envoy dynamic module (`cargo build --release -p dynamic-module`) and returns
/// `target/release/libgateway_wasm_dynamic.so`.
pub fn build_dynamic_module(ws: &Workspace) -> Result<PathBuf> {
    progress("building dynamic-module (profile release)");
    let mut cmd = Command::new(cargo());
    cmd.current_dir(&ws.root)
        .args(["build", "--release", "-p", "dynamic-module"]);
    run(&mut cmd, "cargo build")?;
    let artifact = ws
        .root
        .join("target/release")
        .join(crate::dynamic::LIBRARY_FILE);
    if !artifact.is_file() {
        bail!(
            "cargo build succeeded but {} is missing; does dynamic-module/Cargo.toml still name its lib `gateway_wasm` with crate-type cdylib?",
            artifact.display()
        );
    }
    Ok(artifact)
}

/// Finds `wasm-opt` on PATH or in the project-local `.tools`.
pub fn find_wasm_opt(ws: &Workspace) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("wasm-opt"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| Some(ws.local_wasm_opt()).filter(|p| p.is_file()))
}

/// Installs binaryen into `<workspace>/.tools` with npm.
pub fn install_tools(ws: &Workspace) -> Result<PathBuf> {
    let prefix = ws.root.join(".tools");
    progress(&format!(
        "installing {BINARYEN_NPM} into {} (npm install --prefix {} {BINARYEN_NPM})",
        prefix.display(),
        prefix.display()
    ));
    std::fs::create_dir_all(&prefix).with_context(|| format!("creating {}", prefix.display()))?;
    let status = Command::new("npm")
        .arg("install")
        .arg("--prefix")
        .arg(&prefix)
        .args(["--no-audit", "--no-fund", BINARYEN_NPM])
        .status()
        .context("running npm (install Node.js and npm to install binaryen's wasm-opt)")?;
    if !status.success() {
        bail!(
            "npm install --prefix {} {BINARYEN_NPM} failed ({status})",
            prefix.display()
        );
    }
    let bin = ws.local_wasm_opt();
    if !bin.is_file() {
        bail!("npm finished but {} is missing", bin.display());
    }
    Ok(bin)
}

/// Runs `wasm-opt -Oz` on `input`, writing `output`.
pub fn optimize(wasm_opt: &Path, input: &Path, output: &Path) -> Result<()> {
    progress(&format!(
        "optimizing with {} {}",
        wasm_opt.display(),
        WASM_OPT_FLAGS.join(" ")
    ));
    let mut cmd = Command::new(wasm_opt);
    cmd.args(WASM_OPT_FLAGS).arg(input).arg("-o").arg(output);
    run(&mut cmd, "wasm-opt")
}

/// The message shown when `--optimize` finds no wasm-opt.
pub fn missing_wasm_opt_message(ws: &Workspace) -> String {
    format!(
        "wasm-opt (binaryen) was not found on PATH nor at {}.\n  install it with `packager install-tools` (runs `npm install --prefix {} {BINARYEN_NPM}`), \
         or pass --install-tools to this command, or put binaryen's wasm-opt on PATH",
        ws.local_wasm_opt().display(),
        ws.root.join(".tools").display()
    )
}
