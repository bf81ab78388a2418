//! `packager kong-bundle`: the files Kong 3.4–3.9 (WasmX) loads from its `wasm_filters_path`:
//! `gateway_wasm.wasm` and `gateway_wasm.meta.json`, whose `config_schema` lets Kong accept the
//! filter configuration as JSON instead of an opaque string (Kong 3.5+), and whose
//! `x-gateway-wasm` member states the Kong versions the filter works with (`docs/kong.md`,
//! *Support window*). Kong validates meta.json against a schema listing `config_schema` and
//! `metrics` without forbidding other members (`FILTER_META_SCHEMA` in Kong's
//! `kong/runloop/wasm.lua`), so the extra member is accepted and ignored.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::util::write_dir_atomic;

/// The filter name Kong derives from the file name.
pub const FILTER_NAME: &str = "gateway_wasm";

pub fn module_file() -> String {
    format!("{FILTER_NAME}.wasm")
}

pub fn meta_file() -> String {
    format!("{FILTER_NAME}.meta.json")
}

/// The Kong versions the filter works with, and what each lacks.
pub fn kong_support() -> Value {
    json!({
        "supported": ">=3.4.0 <3.10.0",
        "full_features": ">=3.8.0 <3.10.0",
        "versions": {
            "3.4": "routing, filters, rewrites and mirrors; config as a string only (--kong-config-string); no filter metrics",
            "3.5-3.7": "routing, filters, rewrites and mirrors; no filter metrics (ngx_wasm_module traps on them before 3.8)",
            "3.8-3.9": "everything, with the filter's metrics (pw.gateway_wasm.*)",
        },
        "everywhere": "HTTPRoute timeouts and retries are not applied; request mirrors delay the request until the mirror answers",
        "docs": "docs/kong.md",
    })
}

/// The `<filter>.meta.json` document.
pub fn meta_json(schema: Value) -> Value {
    json!({ "config_schema": schema, "x-gateway-wasm": kong_support() })
}

/// A directory holding only bundle files may be replaced.
fn is_bundle(dir: &Path) -> bool {
    let ours = [module_file(), meta_file()];
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().all(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            ours.contains(&name)
        })
    })
}

/// Writes the bundle into `dir` atomically.
pub fn write_bundle(dir: &Path, module: &[u8], schema: Value) -> Result<()> {
    let mut meta = serde_json::to_vec_pretty(&meta_json(schema))?;
    meta.push(b'\n');
    write_dir_atomic(dir, is_bundle, |tmp| {
        fs::write(tmp.join(module_file()), module).context("writing the module")?;
        fs::write(tmp.join(meta_file()), &meta).context("writing the meta.json")?;
        Ok(())
    })
    .with_context(|| format!("writing the Kong bundle {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_has_module_and_schema() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("kong");
        write_bundle(&dir, b"\0asm\x01\0\0\0", json!({"type": "object"})).unwrap();
        assert_eq!(
            fs::read(dir.join("gateway_wasm.wasm")).unwrap(),
            b"\0asm\x01\0\0\0"
        );
        let meta: Value =
            serde_json::from_slice(&fs::read(dir.join("gateway_wasm.meta.json")).unwrap()).unwrap();
        assert_eq!(meta["config_schema"]["type"], "object");
        assert_eq!(
            meta["x-gateway-wasm"]["supported"], ">=3.4.0 <3.10.0",
            "the support window travels with the bundle"
        );
        assert_eq!(meta["x-gateway-wasm"]["full_features"], ">=3.8.0 <3.10.0");
        // Rewriting an existing bundle is allowed; a directory with other files is not replaced.
        write_bundle(&dir, b"\0asm\x01\0\0\0", json!({})).unwrap();
        fs::write(dir.join("other"), b"x").unwrap();
        assert!(write_bundle(&dir, b"x", json!({})).is_err());
    }
}
