//! The Envoy dynamic module (`libgateway_wasm_dynamic.so`) as an OCI artifact and as a plain tarball.
//!
//! Media types: there is no registered type for Envoy dynamic modules, and the Wasm ones must not
//! be reused: Istio's and Envoy Gateway's fetchers pick a layer by the Wasm media types and would
//! hand a native library to V8. So the artifact uses its own types in the vendor tree, which no
//! Wasm fetcher matches and which `packager pull` recognises:
//! - `artifactType` [`ARTIFACT_TYPE`], config [`CONFIG_TYPE`] (JSON: OS, architecture, the ABI
//!   version and the Envoy versions it loads into), one layer [`LAYER_TYPE`] (the library as is,
//!   titled `libgateway_wasm_dynamic.so`);
//! - annotations: provenance as for the Wasm artifacts, the library's sha256, and the Envoy window
//!   ([`ANN_ENVOY_MIN`], [`ANN_ENVOY_MAX`], [`ANN_ABI`]).
//!
//! The tarball holds `libgateway_wasm_dynamic.so` (mode 0755) and `gateway_wasm.dynamic-module.json` (the
//! same facts as the config). Both are deterministic: same library and metadata, same bytes.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::formats::{
    ANN_CREATED, ANN_MODULE_SHA256, ANN_REF_NAME, ANN_REVISION, ANN_SOURCE, ANN_TITLE, ANN_VERSION,
    Descriptor, Manifest, Metadata, OCI_MANIFEST, gzip_fixed, to_json,
};
use crate::layout::Content;
use crate::util::{sha256_digest, sha256_hex};

pub const ARTIFACT_TYPE: &str = "application/vnd.gateway-wasm.envoy.dynamic-module.v1";
pub const CONFIG_TYPE: &str = "application/vnd.gateway-wasm.envoy.dynamic-module.config.v1+json";
pub const LAYER_TYPE: &str = "application/vnd.gateway-wasm.envoy.dynamic-module.layer.v1";
pub const ANN_ENVOY_MIN: &str = "dev.gateway-wasm.envoy.min-version";
pub const ANN_ENVOY_MAX: &str = "dev.gateway-wasm.envoy.max-version";
pub const ANN_ABI: &str = "dev.gateway-wasm.envoy.dynamic-module-abi";

/// The file Envoy loads.
pub const LIBRARY_FILE: &str = "libgateway_wasm_dynamic.so";
/// The metadata file in the tarball.
pub const METADATA_FILE: &str = "gateway_wasm.dynamic-module.json";
/// The Envoy releases the module is written for (docs/dynamic-module.md).
pub const ENVOY_MIN: &str = "1.40";
pub const ENVOY_MAX: &str = "1.41";
/// Envoy 1.40's dynamic-module ABI version.
pub const ABI_VERSION: &str = "v0.2.0";

/// The artifact's config, and the tarball's metadata file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleConfig {
    pub os: String,
    pub architecture: String,
    pub abi_version: String,
    pub envoy_min_version: String,
    pub envoy_max_version: String,
    pub library: String,
    pub sha256: String,
}

/// OCI's name for the architecture of an ELF file, from its header (`e_machine`).
pub fn elf_architecture(library: &[u8]) -> Result<&'static str> {
    let Some(header) = library.get(..20) else {
        bail!(
            "{} bytes is too short for an ELF shared library",
            library.len()
        );
    };
    if header.get(..4) != Some(b"\x7fELF".as_slice()) {
        bail!("not an ELF file (the dynamic module is a Linux shared library)");
    }
    match header.get(18..20) {
        Some([0x3e, 0x00]) => Ok("amd64"),
        Some([0xb7, 0x00]) => Ok("arm64"),
        other => bail!("unsupported ELF machine {other:?} (expected x86-64 or AArch64)"),
    }
}

fn module_config(library: &[u8]) -> Result<ModuleConfig> {
    Ok(ModuleConfig {
        os: "linux".into(),
        architecture: elf_architecture(library)?.into(),
        abi_version: ABI_VERSION.into(),
        envoy_min_version: ENVOY_MIN.into(),
        envoy_max_version: ENVOY_MAX.into(),
        library: LIBRARY_FILE.into(),
        sha256: sha256_hex(library),
    })
}

/// The OCI layout content for `library`, tagged `tag`; returns it with the manifest's digest.
pub fn artifact(library: &[u8], meta: &Metadata, tag: &str) -> Result<(Content, String)> {
    let config = module_config(library)?;
    let mut content = Content::default();
    let config_desc = content.add(CONFIG_TYPE, to_json(&config, "the module config")?);
    let mut layer = content.add(LAYER_TYPE, library.to_vec());
    layer
        .annotations
        .insert(ANN_TITLE.into(), LIBRARY_FILE.into());
    let mut annotations = BTreeMap::new();
    annotations.insert(ANN_VERSION.into(), meta.version.clone());
    annotations.insert(ANN_CREATED.into(), meta.created.clone());
    if let Some(source) = &meta.source {
        annotations.insert(ANN_SOURCE.into(), source.clone());
    }
    if let Some(revision) = &meta.revision {
        annotations.insert(ANN_REVISION.into(), revision.clone());
    }
    annotations.insert(ANN_TITLE.into(), "gateway-wasm Envoy dynamic module".into());
    annotations.insert(ANN_MODULE_SHA256.into(), config.sha256.clone());
    annotations.insert(ANN_ENVOY_MIN.into(), ENVOY_MIN.into());
    annotations.insert(ANN_ENVOY_MAX.into(), ENVOY_MAX.into());
    annotations.insert(ANN_ABI.into(), ABI_VERSION.into());
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        artifact_type: Some(ARTIFACT_TYPE.into()),
        config: config_desc,
        layers: vec![layer],
        subject: None,
        annotations,
    };
    let bytes = to_json(&manifest, "the manifest")?;
    let digest = sha256_digest(&bytes);
    let mut entry = content.add(OCI_MANIFEST, bytes);
    entry.annotations.insert(ANN_REF_NAME.into(), tag.into());
    content.entries.push(entry);
    Ok((content, digest))
}

/// Whether a manifest is a dynamic-module artifact.
pub fn is_dynamic_module(manifest: &Manifest) -> bool {
    manifest.artifact_type.as_deref() == Some(ARTIFACT_TYPE)
}

/// The library's layer in a dynamic-module manifest.
pub fn library_layer<'m>(manifest: &'m Manifest, what: &str) -> Result<&'m Descriptor> {
    manifest
        .layers
        .iter()
        .find(|l| l.media_type == LAYER_TYPE)
        .with_context(|| {
            format!("{what} is a dynamic-module artifact without a `{LAYER_TYPE}` layer")
        })
}

/// The deterministic `.tar.gz`: the library and its metadata.
pub fn tarball(library: &[u8]) -> Result<Vec<u8>> {
    let config = module_config(library)?;
    let metadata = serde_json::to_vec_pretty(&config).context("serializing the metadata")?;
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes, mode) in [
        (LIBRARY_FILE, library, 0o755),
        (METADATA_FILE, metadata.as_slice(), 0o644),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_path(name)?;
        header.set_size(bytes.len() as u64);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_username("")?;
        header.set_groupname("")?;
        header.set_cksum();
        builder.append(&header, bytes)?;
    }
    let tar = builder.into_inner()?;
    Ok(gzip_fixed(&tar)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    /// The first 20 bytes of an x86-64 ELF shared object, then filler.
    fn fake_library() -> Vec<u8> {
        let mut bytes =
            b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x3e\x00".to_vec();
        bytes.extend_from_slice(&[7; 100]);
        bytes
    }

    fn meta() -> Metadata {
        Metadata {
            version: "0.1.0".into(),
            source: None,
            revision: Some("abc".into()),
            created: "2026-12-06T00:00:00Z".into(),
        }
    }

    #[test]
    fn the_artifact_carries_its_own_types_and_the_envoy_window() {
        let (content, digest) = artifact(&fake_library(), &meta(), "0.1.0").unwrap();
        let manifest: Manifest = serde_json::from_slice(&content.blobs[&digest]).unwrap();
        assert!(is_dynamic_module(&manifest));
        assert_eq!(manifest.config.media_type, CONFIG_TYPE);
        assert_eq!(manifest.annotations[ANN_ENVOY_MIN], "1.40");
        assert_eq!(manifest.annotations[ANN_ENVOY_MAX], "1.41");
        assert_eq!(manifest.annotations[ANN_ABI], "v0.2.0");
        let layer = library_layer(&manifest, "test").unwrap();
        assert_eq!(content.blobs[&layer.digest], fake_library());
        let config: ModuleConfig =
            serde_json::from_slice(&content.blobs[&manifest.config.digest]).unwrap();
        assert_eq!(config.architecture, "amd64");
        // Deterministic.
        assert_eq!(
            artifact(&fake_library(), &meta(), "0.1.0").unwrap().1,
            digest
        );
    }

    #[test]
    fn a_wasm_module_is_not_a_dynamic_module() {
        let error = artifact(b"\0asm\x01\0\0\0 and more bytes here", &meta(), "t")
            .unwrap_err()
            .to_string();
        assert!(error.contains("not an ELF file"), "{error}");
    }

    #[test]
    fn the_tarball_holds_the_library_and_its_metadata() {
        let tarball_bytes = tarball(&fake_library()).unwrap();
        assert_eq!(tarball(&fake_library()).unwrap(), tarball_bytes);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tarball_bytes.as_slice()));
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            let name = entry.path().unwrap().display().to_string();
            if name == LIBRARY_FILE {
                assert_eq!(bytes, fake_library());
                assert_eq!(entry.header().mode().unwrap(), 0o755);
            } else {
                let config: ModuleConfig = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(config.envoy_max_version, "1.41");
            }
            names.push(name);
        }
        assert_eq!(names, [LIBRARY_FILE, METADATA_FILE]);
    }
}
