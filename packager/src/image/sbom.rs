//! The image's SBOM: a CycloneDX JSON document of the crates compiled into the controller-shim
//! for one target, generated from `Cargo.lock` by `cargo-cyclonedx` (the CycloneDX project's own
//! Cargo plugin), pinned to one version and installed with `cargo install` when missing.
//!
//! Why a tool and not our own writer: the SBOM must be what a standard generator says, so a
//! reader can trust it was not hand-assembled; and why not the `cyclonedx-bom` library inside the
//! packager: it would add its dependency tree to every workspace build, while the tool is built
//! once per machine (into Cargo's own bin directory, so fresh clones reuse it).
//!
//! The tool stamps a random `serialNumber`, the current time and the checkout's absolute path
//! (in the `bom-ref` of workspace crates) on each run; we drop the first, set the second to the
//! image's `created` and rewrite the third to `/build` (as the binary's `--remap-path-prefix`
//! does), so the SBOM is reproducible too.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use super::build::{Arch, SHIM_PACKAGE};
use crate::builder::{Workspace, cargo, run};
use crate::registry::progress;

pub const CYCLONEDX_CRATE: &str = "cargo-cyclonedx";
pub const CYCLONEDX_VERSION: &str = "0.5.9";
/// The CycloneDX specification version we ask for.
pub const SPEC_VERSION: &str = "1.5";

fn tool_version(binary: &Path) -> Option<String> {
    let out = Command::new(binary)
        .args(["cyclonedx", "--version"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Cargo's bin directory (`$CARGO_HOME/bin`, else `~/.cargo/bin`), where `cargo install` puts tools.
fn cargo_bin_dir() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin"))
}

/// The pinned cargo-cyclonedx, from PATH or Cargo's bin directory, else installed now
/// (`cargo install --locked`: several minutes, once per machine).
pub fn find_or_install() -> Result<PathBuf> {
    let pinned = |path: &Path| {
        path.is_file()
            && tool_version(path).is_some_and(|v| v.ends_with(&format!(" {CYCLONEDX_VERSION}")))
    };
    let candidates = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(cargo_bin_dir())
        .map(|dir| dir.join(CYCLONEDX_CRATE));
    for candidate in candidates {
        if pinned(&candidate) {
            return Ok(candidate);
        }
    }
    progress(&format!(
        "installing {CYCLONEDX_CRATE} {CYCLONEDX_VERSION} (cargo install --locked {CYCLONEDX_CRATE}@{CYCLONEDX_VERSION}; once per machine, several minutes)"
    ));
    let mut cmd = Command::new(cargo());
    cmd.args(["install", "--locked", "--quiet"])
        .arg(format!("{CYCLONEDX_CRATE}@{CYCLONEDX_VERSION}"));
    run(&mut cmd, "cargo install cargo-cyclonedx")?;
    let installed = cargo_bin_dir()
        .map(|dir| dir.join(CYCLONEDX_CRATE))
        .filter(|p| pinned(p))
        .ok_or_else(|| {
            anyhow!(
                "cargo install finished but no {CYCLONEDX_CRATE} {CYCLONEDX_VERSION} is in Cargo's bin directory"
            )
        })?;
    Ok(installed)
}

/// Generates the SBOM of the controller-shim binary for `arch`, with `created` as its timestamp.
pub fn generate(ws: &Workspace, arch: Arch, created: &str) -> Result<Vec<u8>> {
    let tool = find_or_install()?;
    let manifest = ws.root.join(SHIM_PACKAGE).join("Cargo.toml");
    // cargo-cyclonedx writes `<name>.json` next to every workspace member's Cargo.toml; a name of
    // our own, all removed after (`.gitignore` has the pattern, should a run be killed midway).
    let stem = format!(".packager-sbom-{}-{}", arch.name(), std::process::id());
    let file_name = format!("{stem}.json");
    progress(&format!(
        "generating the SBOM for {} with {CYCLONEDX_CRATE} {CYCLONEDX_VERSION}",
        arch.rust_target()
    ));
    let out = Command::new(&tool)
        .arg("cyclonedx")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--format", "json", "--spec-version", SPEC_VERSION])
        .args(["--target", arch.rust_target()])
        // Build scripts' dependencies are not in the binary.
        .arg("--no-build-deps")
        .args(["--override-filename", &stem])
        .arg("--quiet")
        .output()
        .with_context(|| format!("running {}", tool.display()))?;
    let text = std::fs::read(ws.root.join(SHIM_PACKAGE).join(&file_name));
    for dir in &ws.member_dirs {
        let _ = std::fs::remove_file(dir.join(&file_name));
    }
    if !out.status.success() {
        bail!(
            "{CYCLONEDX_CRATE} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = text.with_context(|| {
        format!("{CYCLONEDX_CRATE} succeeded but wrote no {SHIM_PACKAGE}/{file_name}")
    })?;
    let text = String::from_utf8(text).context("the SBOM is not UTF-8")?;
    let portable = text.replace(&format!("file://{}", ws.root.display()), "file:///build");
    normalize(portable.as_bytes(), created)
}

/// Drops the random `serialNumber`, sets `metadata.timestamp`, and checks the document is a
/// CycloneDX BOM that names the controller-shim and lists components.
pub fn normalize(text: &[u8], created: &str) -> Result<Vec<u8>> {
    let mut bom: Value =
        serde_json::from_slice(text).context("the SBOM cargo-cyclonedx wrote is not JSON")?;
    let format = bom.get("bomFormat").cloned().unwrap_or_default();
    if format != "CycloneDX" {
        bail!("the SBOM has bomFormat {format}, not CycloneDX");
    }
    let object = bom
        .as_object_mut()
        .ok_or_else(|| anyhow!("the SBOM is not a JSON object"))?;
    object.remove("serialNumber");
    let metadata = object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| anyhow!("the SBOM has no metadata object"))?;
    metadata.insert("timestamp".into(), Value::String(created.to_string()));
    let named = metadata
        .get("component")
        .and_then(|c| c.get("name"))
        .and_then(Value::as_str);
    if named != Some(SHIM_PACKAGE) {
        bail!("the SBOM describes {named:?}, not {SHIM_PACKAGE}");
    }
    let components = object
        .get("components")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if components == 0 {
        bail!("the SBOM lists no components");
    }
    serde_json::to_vec_pretty(&bom).context("serializing the SBOM")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_drops_the_serial_and_fixes_the_time() {
        let raw = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","serialNumber":"urn:uuid:1",
            "metadata":{"timestamp":"2030-01-01T00:00:00Z","component":{"name":"controller-shim"}},
            "components":[{"name":"serde","version":"1.0.0","purl":"pkg:cargo/serde@1.0.0"}]}"#;
        let out: Value =
            serde_json::from_slice(&normalize(raw, "2024-05-06T07:08:09Z").unwrap()).unwrap();
        assert!(out.get("serialNumber").is_none());
        assert_eq!(out["metadata"]["timestamp"], "2024-05-06T07:08:09Z");
        assert_eq!(out["components"][0]["purl"], "pkg:cargo/serde@1.0.0");

        let err = normalize(br#"{"bomFormat":"SPDX"}"#, "x").unwrap_err();
        assert!(err.to_string().contains("not CycloneDX"), "{err}");
        let empty = br#"{"bomFormat":"CycloneDX","metadata":{"component":{"name":"controller-shim"}},"components":[]}"#;
        assert!(normalize(empty, "x").is_err());
    }
}
