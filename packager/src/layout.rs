//! OCI image-layout directories (`oci-layout`, `index.json`, `blobs/sha256/<hex>`): writing one
//! atomically (a Wasm [`Artifact`], or any [`Content`] such as the controller-shim image with its
//! SBOM), and reading one back with every blob verified.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

use crate::formats::{
    ANN_REF_NAME, Artifact, Descriptor, Index, Manifest, OCI_INDEX, OCI_MANIFEST,
};
use crate::util::{sha256_digest, write_dir_atomic};

const OCI_LAYOUT_FILE: &str = "oci-layout";
const INDEX_FILE: &str = "index.json";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LayoutMarker {
    image_layout_version: &'static str,
}

/// What a layout holds: every blob (manifests and indexes included), and the `index.json` entries.
#[derive(Debug, Clone, Default)]
pub struct Content {
    pub blobs: BTreeMap<String, Vec<u8>>,
    /// Tagged entries carry `org.opencontainers.image.ref.name`; referrers (an SBOM) carry none.
    pub entries: Vec<Descriptor>,
}

impl Content {
    /// Adds a blob and returns its descriptor.
    pub fn add(&mut self, media_type: &str, bytes: Vec<u8>) -> Descriptor {
        let desc = Descriptor::of(media_type, &bytes, None);
        self.blobs.insert(desc.digest.clone(), bytes);
        desc
    }
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

/// Writes `content` as an OCI layout at `dir`. The layout is built in a temporary directory next
/// to `dir` and renamed into place; an existing layout at `dir` is replaced, anything else there
/// is left alone and reported.
pub fn write_content(dir: &Path, content: &Content) -> Result<()> {
    write_dir_atomic(dir, is_layout, |tmp| {
        let marker = serde_json::to_vec(&LayoutMarker {
            image_layout_version: "1.0.0",
        })?;
        fs::write(tmp.join(OCI_LAYOUT_FILE), marker).context("writing oci-layout")?;
        fs::create_dir_all(tmp.join("blobs").join("sha256")).context("creating blobs/sha256")?;
        for (digest, bytes) in &content.blobs {
            let path = blob_path(tmp, digest)?;
            fs::write(&path, bytes).with_context(|| format!("writing blob {digest}"))?;
        }
        let index = Index::new(content.entries.clone());
        fs::write(tmp.join(INDEX_FILE), serde_json::to_vec_pretty(&index)?)
            .context("writing index.json")?;
        Ok(())
    })
    .with_context(|| format!("writing the OCI layout {}", dir.display()))
}

/// Writes `artifact` as an OCI layout at `dir`, tagged `ref_name` in `index.json`.
pub fn write_layout(dir: &Path, artifact: &Artifact, ref_name: &str) -> Result<()> {
    let mut blobs = artifact.blobs.clone();
    blobs.insert(
        artifact.manifest_digest.clone(),
        artifact.manifest_bytes.clone(),
    );
    let mut entry = Descriptor::of(OCI_MANIFEST, &artifact.manifest_bytes, None);
    entry
        .annotations
        .insert(ANN_REF_NAME.to_string(), ref_name.to_string());
    write_content(
        dir,
        &Content {
            blobs,
            entries: vec![entry],
        },
    )
}

/// An OCI layout read from disk, with one tagged entry chosen.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
    /// Every entry of `index.json`.
    pub entries: Vec<Descriptor>,
    /// The chosen entry: a manifest, or an image index (a multi-platform image).
    pub manifest_desc: Descriptor,
    pub manifest_bytes: Vec<u8>,
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

    /// The chosen entry as a manifest (an error for an image index).
    pub fn manifest(&self) -> Result<Manifest> {
        parse_manifest(&self.manifest_desc, &self.manifest_bytes)
    }

    /// Reads and parses the manifest `desc` names.
    pub fn read_manifest(&self, desc: &Descriptor) -> Result<Manifest> {
        parse_manifest(desc, &self.blob(desc)?)
    }

    /// Reads and parses the image index `desc` names.
    pub fn read_index(&self, desc: &Descriptor) -> Result<Index> {
        serde_json::from_slice(&self.blob(desc)?)
            .with_context(|| format!("parsing image index {}", desc.digest))
    }

    /// The untagged manifests of `index.json` whose `subject` is the chosen entry (its SBOM).
    pub fn referrers(&self) -> Result<Vec<Descriptor>> {
        let mut out = Vec::new();
        for entry in &self.entries {
            if entry.digest == self.manifest_desc.digest
                || entry.annotations.contains_key(ANN_REF_NAME)
                || entry.media_type != OCI_MANIFEST
            {
                continue;
            }
            let manifest = self.read_manifest(entry)?;
            if manifest
                .subject
                .is_some_and(|s| s.digest == self.manifest_desc.digest)
            {
                out.push(entry.clone());
            }
        }
        Ok(out)
    }
}

fn parse_manifest(desc: &Descriptor, bytes: &[u8]) -> Result<Manifest> {
    if desc.media_type == OCI_INDEX {
        bail!(
            "{} is an image index (a multi-platform image), not a single manifest",
            desc.digest
        );
    }
    serde_json::from_slice(bytes).with_context(|| format!("parsing manifest {}", desc.digest))
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

/// Reads the layout at `dir` and chooses an entry: the one tagged `tag`, else the only tagged
/// entry (untagged entries are referrers, such as an SBOM), else the only entry.
pub fn read_layout(dir: &Path, tag: Option<&str>) -> Result<Layout> {
    let marker = dir.join(OCI_LAYOUT_FILE);
    if !marker.is_file() {
        bail!(
            "{} is not an OCI image layout (no {OCI_LAYOUT_FILE} file); create one with `packager package --out {}` or `packager image --out {}`",
            dir.display(),
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
    let tagged: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|m| m.annotations.contains_key(ANN_REF_NAME))
        .collect();
    let manifest_desc = match (tag, index.manifests.as_slice(), tagged.as_slice()) {
        (_, [], _) => bail!("{} lists no manifests", index_path.display()),
        (None, _, [only]) => (*only).clone(),
        (None, [only], []) => only.clone(),
        (None, _, _) => bail!(
            "{} lists several manifests ({}); choose one by tag",
            index_path.display(),
            names()
        ),
        (Some(tag), all, _) => all
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
    Ok(Layout {
        dir: dir.to_path_buf(),
        entries: index.manifests,
        manifest_desc,
        manifest_bytes,
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
        let manifest = layout.manifest().unwrap();
        assert_eq!(manifest, a.manifest);
        for layer in &manifest.layers {
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
