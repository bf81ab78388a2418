//! OCI image-layout directories (`oci-layout`, `index.json`, `blobs/sha256/<hex>`): writing one
//! atomically from an [`Artifact`], and reading one back with every blob verified.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::formats::{ANN_REF_NAME, Artifact, Descriptor, Manifest, OCI_INDEX, OCI_MANIFEST};
use crate::util::{sha256_digest, write_dir_atomic};

const OCI_LAYOUT_FILE: &str = "oci-layout";
const INDEX_FILE: &str = "index.json";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LayoutMarker {
    image_layout_version: &'static str,
}

/// `index.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// Whether `dir` looks like an OCI layout (so that it may be replaced by a new one).
pub fn is_layout(dir: &Path) -> bool {
    dir.join(OCI_LAYOUT_FILE).is_file() && dir.join(INDEX_FILE).is_file()
}

fn blob_path(root: &Path, digest: &str) -> Result<PathBuf> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            anyhow!("unsupported or malformed digest `{digest}` (expected sha256:<64 hex>)")
        })?;
    Ok(root.join("blobs").join("sha256").join(hex))
}

/// Writes `artifact` as an OCI layout at `dir`, tagged `ref_name` in `index.json`. The layout
/// is built in a temporary directory next to `dir` and renamed into place; an existing layout at
/// `dir` is replaced, anything else there is left alone and reported.
pub fn write_layout(dir: &Path, artifact: &Artifact, ref_name: &str) -> Result<()> {
    write_dir_atomic(dir, is_layout, |tmp| {
        let marker = serde_json::to_vec(&LayoutMarker {
            image_layout_version: "1.0.0",
        })?;
        fs::write(tmp.join(OCI_LAYOUT_FILE), marker).context("writing oci-layout")?;
        fs::create_dir_all(tmp.join("blobs").join("sha256")).context("creating blobs/sha256")?;
        let mut all = artifact.blobs.clone();
        all.insert(
            artifact.manifest_digest.clone(),
            artifact.manifest_bytes.clone(),
        );
        for (digest, bytes) in &all {
            let path = blob_path(tmp, digest)?;
            fs::write(&path, bytes).with_context(|| format!("writing blob {digest}"))?;
        }
        let mut annotations = BTreeMap::new();
        annotations.insert(ANN_REF_NAME.to_string(), ref_name.to_string());
        let index = Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_string()),
            manifests: vec![Descriptor {
                media_type: OCI_MANIFEST.to_string(),
                digest: artifact.manifest_digest.clone(),
                size: artifact.manifest_bytes.len() as u64,
                annotations,
            }],
        };
        fs::write(tmp.join(INDEX_FILE), serde_json::to_vec_pretty(&index)?)
            .context("writing index.json")?;
        Ok(())
    })
    .with_context(|| format!("writing the OCI layout {}", dir.display()))
}

/// An OCI layout read from disk.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
    /// The manifest's descriptor in `index.json`.
    pub manifest_desc: Descriptor,
    pub manifest_bytes: Vec<u8>,
    pub manifest: Manifest,
}

impl Layout {
    /// The tag recorded in `index.json`, if any.
    pub fn ref_name(&self) -> Option<&str> {
        self.manifest_desc
            .annotations
            .get(ANN_REF_NAME)
            .map(String::as_str)
    }

    /// Reads blob `digest`, checking its size and digest against the descriptor.
    pub fn blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        read_verified(&self.dir, desc)
    }
}

fn read_verified(dir: &Path, desc: &Descriptor) -> Result<Vec<u8>> {
    let path = blob_path(dir, &desc.digest)?;
    let bytes = fs::read(&path).with_context(|| {
        format!(
            "reading blob {} ({}) of the OCI layout {}",
            desc.digest,
            desc.media_type,
            dir.display()
        )
    })?;
    let got = sha256_digest(&bytes);
    if got != desc.digest {
        bail!(
            "blob {} is corrupt: expected {}, got {got}",
            path.display(),
            desc.digest
        );
    }
    if bytes.len() as u64 != desc.size {
        bail!(
            "blob {} has {} bytes, its descriptor says {}",
            path.display(),
            bytes.len(),
            desc.size
        );
    }
    Ok(bytes)
}

/// Reads the layout at `dir`. With several manifests, `tag` selects one by its
/// `org.opencontainers.image.ref.name`.
pub fn read_layout(dir: &Path, tag: Option<&str>) -> Result<Layout> {
    let marker = dir.join(OCI_LAYOUT_FILE);
    if !marker.is_file() {
        bail!(
            "{} is not an OCI image layout (no {OCI_LAYOUT_FILE} file); create one with `packager package --out {}`",
            dir.display(),
            dir.display()
        );
    }
    let index_path = dir.join(INDEX_FILE);
    let index: Index = serde_json::from_slice(
        &fs::read(&index_path).with_context(|| format!("reading {}", index_path.display()))?,
    )
    .with_context(|| format!("parsing {}", index_path.display()))?;
    let names = || {
        index
            .manifests
            .iter()
            .map(|m| {
                m.annotations
                    .get(ANN_REF_NAME)
                    .cloned()
                    .unwrap_or_else(|| m.digest.clone())
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let manifest_desc = match (tag, index.manifests.as_slice()) {
        (_, []) => bail!("{} lists no manifests", index_path.display()),
        (None, [only]) => only.clone(),
        (None, _) => bail!(
            "{} lists several manifests ({}); choose one by tag",
            index_path.display(),
            names()
        ),
        (Some(tag), all) => all
            .iter()
            .find(|m| m.annotations.get(ANN_REF_NAME).map(String::as_str) == Some(tag))
            .cloned()
            .ok_or_else(|| {
                anyhow!(
                    "{} has no manifest tagged `{tag}` (it has: {})",
                    index_path.display(),
                    names()
                )
            })?,
    };
    let manifest_bytes = read_verified(dir, &manifest_desc)?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .with_context(|| format!("parsing manifest {}", manifest_desc.digest))?;
    Ok(Layout {
        dir: dir.to_path_buf(),
        manifest_desc,
        manifest_bytes,
        manifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{Format, Metadata, build_artifact};

    fn artifact(format: Format) -> Artifact {
        let meta = Metadata {
            version: "0.1.0".into(),
            source: None,
            revision: None,
            created: "1970-01-01T00:00:00Z".into(),
        };
        build_artifact(format, b"\0asm\x01\0\0\0", &meta).unwrap()
    }

    #[test]
    fn layout_round_trip() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("oci");
        let a = artifact(Format::Oci);
        write_layout(&dir, &a, "0.1.0").unwrap();
        let layout = read_layout(&dir, None).unwrap();
        assert_eq!(layout.manifest_desc.digest, a.manifest_digest);
        assert_eq!(layout.ref_name(), Some("0.1.0"));
        assert_eq!(layout.manifest, a.manifest);
        for layer in &layout.manifest.layers {
            assert_eq!(
                &layout.blob(layer).unwrap(),
                a.blobs.get(&layer.digest).unwrap()
            );
        }
        // Replacing an existing layout works and leaves no temporary directories.
        write_layout(&dir, &artifact(Format::Cncf), "0.1.0").unwrap();
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn corrupt_blob_is_detected() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("oci");
        let a = artifact(Format::Cncf);
        write_layout(&dir, &a, "t").unwrap();
        let layer = &a.manifest.layers[0];
        fs::write(blob_path(&dir, &layer.digest).unwrap(), b"evil").unwrap();
        let err = read_layout(&dir, None).unwrap().blob(layer).unwrap_err();
        assert!(format!("{err:#}").contains("is corrupt"), "{err:#}");
    }

    #[test]
    fn not_a_layout_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let err = read_layout(root.path(), None).unwrap_err().to_string();
        assert!(err.contains("is not an OCI image layout"), "{err}");
        fs::write(root.path().join("notes.txt"), b"mine").unwrap();
        let err = write_layout(root.path(), &artifact(Format::Compat), "t").unwrap_err();
        assert!(
            format!("{err:#}").contains("refusing to replace"),
            "{err:#}"
        );
        assert!(root.path().join("notes.txt").exists());
    }
}
