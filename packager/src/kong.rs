//! `packager kong-bundle`: the files Kong 3.4–3.9 (WasmX) loads from its `wasm_filters_path`:
//! `gateway_wasm.wasm` and `gateway_wasm.meta.json`, whose `config_schema` lets Kong accept the
//! filter configuration as JSON instead of an opaque string.

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

/// The `<filter>.meta.json` document.
pub fn meta_json(schema: Value) -> Value {
    json!({ "config_schema": schema })
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
        // Rewriting an existing bundle is allowed; a directory with other files is not replaced.
        write_bundle(&dir, b"\0asm\x01\0\0\0", json!({})).unwrap();
        fs::write(dir.join("other"), b"x").unwrap();
        assert!(write_bundle(&dir, b"x", json!({})).is_err());
    }
}
