//! Shared by the `examples_*` tests: the quickstart's resolution, YAML reading, and generated
//! ("golden") blocks inside example files.
//!
//! A generated block sits between a line `# >>> generated…` and a line `# <<< generated`; the
//! first line after the begin marker is `<key>:` at the marker's indentation, followed by the value
//! as YAML indented two more spaces. With `BLESS` set, [`check_block`] rewrites the block.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code
)]

use std::path::{Path, PathBuf};

use controller_shim::manifests;
use controller_shim::resolution::GatewayResult;
use controller_shim::{Settings, resolve};
use serde::Deserialize as _;
use serde_json::Value;

pub fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The quickstart Gateway as the shim resolves it.
pub fn quickstart() -> GatewayResult {
    let loaded = manifests::load_dir(&examples().join("quickstart")).unwrap();
    let resolution = resolve(&loaded.snapshot, &Settings::default());
    let gateway = resolution.gateways.into_iter().next().unwrap();
    assert_eq!(gateway.gateway.to_string(), "infra/quickstart");
    gateway
}

/// Every non-empty YAML document of a file, as JSON.
pub fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .enumerate()
        .map(|(i, document)| {
            Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{} document {}: {e}", path.display(), i + 1))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The overlays of `examples/kubernetes/overlays/`, one directory each.
pub fn kustomize_overlays() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(examples().join("kubernetes/overlays"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("kustomization.yaml").is_file())
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "no overlays in examples/kubernetes/overlays"
    );
    dirs
}

/// What `kubectl kustomize DIR` renders, as JSON objects. kubectl comes from Debian's
/// `kubernetes-client` when it is missing (its kustomize is v2.0.3; the kustomizations are written
/// for it and for current kubectl alike).
pub fn kustomize(dir: &Path) -> Vec<Value> {
    testkit::debian::ensure_package("kubectl", "kubernetes-client").unwrap();
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("running kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .enumerate()
        .map(|(i, document)| {
            Value::deserialize(document).unwrap_or_else(|e| {
                panic!(
                    "kubectl kustomize {} document {}: {e}",
                    dir.display(),
                    i + 1
                )
            })
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn replace_block(text: &str, key: &str, value: &impl serde::Serialize) -> String {
    let begin = text
        .find("# >>> generated")
        .expect("no `# >>> generated` marker");
    let line_start = text[..begin].rfind('\n').map_or(0, |i| i + 1);
    let indent = &text[line_start..begin];
    assert!(
        indent.trim().is_empty(),
        "the begin marker must start its line"
    );
    let body_start = begin + text[begin..].find('\n').unwrap() + 1;
    let end_marker = format!("{indent}# <<< generated");
    let end = body_start + text[body_start..].find(&end_marker).expect("no end marker");
    let mut block = format!("{indent}{key}:\n");
    for line in serde_norway::to_string(value).unwrap().lines() {
        block.push_str(indent);
        block.push_str("  ");
        block.push_str(line);
        block.push('\n');
    }
    format!("{}{block}{}", &text[..body_start], &text[end..])
}

/// Rewrites the generated block of `path` when `BLESS` is set; then fails unless the block holds
/// `expected` (compared as JSON values, so formatting does not matter).
pub fn check_block(path: &Path, key: &str, expected: &impl serde::Serialize, found: &Value) {
    if std::env::var_os("BLESS").is_some() {
        let text = std::fs::read_to_string(path).unwrap();
        std::fs::write(path, replace_block(&text, key, expected)).unwrap();
        return;
    }
    assert_eq!(
        found,
        &serde_json::to_value(expected).unwrap(),
        "the generated `{key}` block of {} is stale; regenerate it with `cargo xtask bless`",
        path.display()
    );
}
