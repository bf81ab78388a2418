//! The three OCI artifact formats for a Wasm module, built byte-for-byte deterministically, and
//! the reverse: finding the module in a manifest of any of them.
//!
//! - `compat` (solo-io wasm image spec, "compat" variant; what Istio and Envoy Gateway fetch):
//!   one `application/vnd.oci.image.layer.v1.tar+gzip` layer holding `plugin.wasm`, an OCI image
//!   config, and the manifest annotation `module.wasm.image/variant=compat`.
//! - `oci` (solo-io wasm image spec, "oci" variant, as `wasme` pushed it): the runtime config
//!   `application/vnd.module.wasm.config.v1+json` is both the manifest config and the first
//!   layer, the module is the second layer `application/vnd.module.wasm.content.layer.v1+wasm`.
//!   Istio's fetcher insists on exactly two layers for this variant, hence the repeated config.
//! - `cncf` (CNCF TAG Runtime Wasm OCI artifact, what wkg/oras use): config
//!   `application/vnd.wasm.config.v0+json`, one `application/wasm` layer.
//!
//! Determinism: JSON comes from structs (fixed field order) and `BTreeMap`s (sorted keys), the
//! tar entry has mtime 0, uid/gid 0, mode 0644 and no user names, and the gzip header has mtime 0,
//! no file name and OS byte 255.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::digest::{sha256_digest, sha256_hex};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const SOLO_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";
pub const SOLO_CONTENT: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
pub const CNCF_CONFIG: &str = "application/vnd.wasm.config.v0+json";
pub const CNCF_LAYER: &str = "application/wasm";

pub const ANN_VARIANT: &str = "module.wasm.image/variant";
pub const ANN_RUNTIME_TYPE: &str = "module.wasm.runtime/type";
pub const ANN_RUNTIME_ABI: &str = "module.wasm.runtime/abi_version";
pub const ANN_MODULE_SHA256: &str = "dev.gateway-wasm.module.sha256";
pub const ANN_FORMAT: &str = "dev.gateway-wasm.format";
pub const ANN_VERSION: &str = "org.opencontainers.image.version";
pub const ANN_SOURCE: &str = "org.opencontainers.image.source";
pub const ANN_REVISION: &str = "org.opencontainers.image.revision";
pub const ANN_CREATED: &str = "org.opencontainers.image.created";
pub const ANN_TITLE: &str = "org.opencontainers.image.title";
pub const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANN_LICENSES: &str = "org.opencontainers.image.licenses";
pub const ANN_DESCRIPTION: &str = "org.opencontainers.image.description";

/// The file name of the module inside a compat layer (fixed by the spec).
pub const COMPAT_FILE: &str = "plugin.wasm";
/// The root id our filter answers to (the Rust SDK ignores it, but configs name one).
pub const ROOT_ID: &str = "gateway_wasm";
/// The proxy-wasm ABI marker export the module carries (ABI 0.2.1), named in the `oci` format's
/// runtime config.
pub const ABI_MARKER: &str = "proxy_abi_version_0_2_1";

/// Which artifact layout to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Format {
    /// Istio/solo "compat": one tar+gzip layer with plugin.wasm (Istio, Envoy Gateway).
    Compat,
    /// Istio/solo "oci": wasm runtime config + raw module layer (Istio, Envoy Gateway).
    Oci,
    /// CNCF Wasm OCI artifact: application/wasm layer (wkg, oras; not Istio).
    Cncf,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Compat => "compat",
            Format::Oci => "oci",
            Format::Cncf => "cncf",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    /// Set on the entries of an image index (and of a layout's `index.json`) for images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Set on the referrers listed in a referrers index (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn of(media_type: &str, bytes: &[u8], title: Option<&str>) -> Self {
        let mut annotations = BTreeMap::new();
        if let Some(title) = title {
            annotations.insert(ANN_TITLE.to_string(), title.to_string());
        }
        Descriptor {
            media_type: media_type.to_string(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            platform: None,
            artifact_type: None,
            annotations,
        }
    }
}

/// The platform an image runs on (`architecture` and `os` as Go spells them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An OCI image index: a multi-platform image, a layout's `index.json`, or a referrers list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    pub fn new(manifests: Vec<Descriptor>) -> Self {
        Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_string()),
            manifests,
            annotations: BTreeMap::new(),
        }
    }
}

/// An OCI image manifest (also reads Docker schema 2 manifests, which have the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers: an SBOM names its image here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Provenance written into the annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub version: String,
    pub source: Option<String>,
    pub revision: Option<String>,
    /// RFC 3339 UTC timestamp.
    pub created: String,
}

/// A complete artifact: manifest bytes and every blob it references.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub format: Format,
    pub manifest: Manifest,
    pub manifest_bytes: Vec<u8>,
    pub manifest_digest: String,
    /// Distinct blobs (config and layers), keyed by digest.
    pub blobs: BTreeMap<String, Vec<u8>>,
    pub module_sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("building the compat layer: {0}")]
    Layer(#[source] std::io::Error),
    #[error("serializing {what}: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error(
        "no Wasm module layer in manifest {manifest}: layers are [{layers}] with config {config}; expected a compat tar+gzip layer, `{SOLO_CONTENT}` or `{CNCF_LAYER}`"
    )]
    NoModuleLayer {
        manifest: String,
        layers: String,
        config: String,
    },
    #[error("the compat layer {digest} is not a readable tar+gzip archive: {source}")]
    BadArchive {
        digest: String,
        source: std::io::Error,
    },
    #[error("the compat layer {digest} has no `{COMPAT_FILE}` (entries: {entries})")]
    NoPluginFile { digest: String, entries: String },
    #[error(
        "module sha256 mismatch for {what}: expected {expected} (from {source_of_expected}), got {got}"
    )]
    ModuleDigest {
        what: String,
        expected: String,
        got: String,
        source_of_expected: String,
    },
}

pub fn to_json<T: Serialize>(value: &T, what: &'static str) -> Result<Vec<u8>, FormatError> {
    serde_json::to_vec(value).map_err(|source| FormatError::Json { what, source })
}

#[derive(Serialize)]
struct ImageConfig<'a> {
    created: &'a str,
    architecture: &'static str,
    os: &'static str,
    config: BTreeMap<String, String>,
    rootfs: RootFs,
}

/// The `rootfs` of an image config: the digests of the uncompressed layers.
#[derive(Serialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub diff_ids: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeConfig {
    #[serde(rename = "type")]
    kind: &'static str,
    abi_versions: Vec<&'static str>,
    config: RuntimeConfigInner,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeConfigInner {
    root_ids: Vec<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CncfConfig<'a> {
    created: &'a str,
    architecture: &'static str,
    os: &'static str,
    layer_digests: Vec<String>,
}

/// The uncompressed compat tar: a single `plugin.wasm` entry.
pub fn compat_tar(module: &[u8]) -> Result<Vec<u8>, FormatError> {
    let mut header = tar::Header::new_ustar();
    header.set_path(COMPAT_FILE).map_err(FormatError::Layer)?;
    header.set_size(module.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_username("").map_err(FormatError::Layer)?;
    header.set_groupname("").map_err(FormatError::Layer)?;
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append(&header, module)
        .map_err(FormatError::Layer)?;
    builder.into_inner().map_err(FormatError::Layer)
}

/// gzip with a fixed header, so equal input gives equal bytes.
pub fn gzip_fixed(data: &[u8]) -> Result<Vec<u8>, FormatError> {
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(data).map_err(FormatError::Layer)?;
    gz.finish().map_err(FormatError::Layer)
}

fn manifest_annotations(
    format: Format,
    meta: &Metadata,
    module_sha256: &str,
) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    a.insert(ANN_VERSION.into(), meta.version.clone());
    a.insert(ANN_CREATED.into(), meta.created.clone());
    if let Some(source) = &meta.source {
        a.insert(ANN_SOURCE.into(), source.clone());
    }
    if let Some(revision) = &meta.revision {
        a.insert(ANN_REVISION.into(), revision.clone());
    }
    a.insert(ANN_TITLE.into(), "gateway-wasm".into());
    a.insert(ANN_MODULE_SHA256.into(), module_sha256.into());
    a.insert(ANN_FORMAT.into(), format.name().into());
    match format {
        Format::Compat => {
            a.insert(ANN_VARIANT.into(), "compat".into());
        }
        Format::Oci => {
            a.insert(ANN_RUNTIME_TYPE.into(), "envoy_proxy".into());
            a.insert(ANN_RUNTIME_ABI.into(), ABI_MARKER.into());
        }
        Format::Cncf => {}
    }
    a
}

/// Builds the artifact for `module` in `format`.
pub fn build_artifact(
    format: Format,
    module: &[u8],
    meta: &Metadata,
) -> Result<Artifact, FormatError> {
    let module_sha256 = sha256_hex(module);
    let mut blobs = BTreeMap::new();
    let (config, layers) = match format {
        Format::Compat => {
            let tar = compat_tar(module)?;
            let layer = gzip_fixed(&tar)?;
            let config = to_json(
                &ImageConfig {
                    created: &meta.created,
                    architecture: "wasm",
                    os: "wasip1",
                    config: BTreeMap::new(),
                    rootfs: RootFs {
                        kind: "layers",
                        diff_ids: vec![sha256_digest(&tar)],
                    },
                },
                "the compat image config",
            )?;
            let config_desc = Descriptor::of(OCI_IMAGE_CONFIG, &config, None);
            let layer_desc = Descriptor::of(OCI_LAYER_TAR_GZIP, &layer, None);
            blobs.insert(config_desc.digest.clone(), config);
            blobs.insert(layer_desc.digest.clone(), layer);
            (config_desc, vec![layer_desc])
        }
        Format::Oci => {
            let config = to_json(
                &RuntimeConfig {
                    kind: "envoy_proxy",
                    abi_versions: vec![ABI_MARKER],
                    config: RuntimeConfigInner {
                        root_ids: vec![ROOT_ID],
                    },
                },
                "the wasm runtime config",
            )?;
            let config_desc = Descriptor::of(SOLO_CONFIG, &config, None);
            let config_layer = Descriptor::of(SOLO_CONFIG, &config, Some("runtime-config.json"));
            let module_layer = Descriptor::of(SOLO_CONTENT, module, Some(COMPAT_FILE));
            blobs.insert(config_desc.digest.clone(), config);
            blobs.insert(module_layer.digest.clone(), module.to_vec());
            (config_desc, vec![config_layer, module_layer])
        }
        Format::Cncf => {
            let module_layer = Descriptor::of(CNCF_LAYER, module, Some("gateway_wasm.wasm"));
            let config = to_json(
                &CncfConfig {
                    created: &meta.created,
                    architecture: "wasm",
                    os: "wasip1",
                    layer_digests: vec![module_layer.digest.clone()],
                },
                "the CNCF wasm config",
            )?;
            let config_desc = Descriptor::of(CNCF_CONFIG, &config, None);
            blobs.insert(config_desc.digest.clone(), config);
            blobs.insert(module_layer.digest.clone(), module.to_vec());
            (config_desc, vec![module_layer])
        }
    };
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        artifact_type: None,
        config,
        layers,
        subject: None,
        annotations: manifest_annotations(format, meta, &module_sha256),
    };
    let manifest_bytes = to_json(&manifest, "the manifest")?;
    Ok(Artifact {
        format,
        manifest_digest: sha256_digest(&manifest_bytes),
        manifest,
        manifest_bytes,
        blobs,
        module_sha256,
    })
}

/// Finds the layer holding the module and which format the manifest is in. `what` names the
/// manifest (reference or directory) in errors.
pub fn detect<'m>(
    manifest: &'m Manifest,
    what: &str,
) -> Result<(Format, &'m Descriptor), FormatError> {
    let find = |mt: &str| manifest.layers.iter().find(|l| l.media_type == mt);
    if let Some(layer) = find(CNCF_LAYER) {
        return Ok((Format::Cncf, layer));
    }
    if let Some(layer) = find(SOLO_CONTENT) {
        return Ok((Format::Oci, layer));
    }
    // Like Istio: the compat module is in the last layer.
    if let Some(layer) = manifest.layers.last()
        && (layer.media_type == OCI_LAYER_TAR_GZIP || layer.media_type == DOCKER_LAYER_TAR_GZIP)
    {
        return Ok((Format::Compat, layer));
    }
    Err(FormatError::NoModuleLayer {
        manifest: what.to_string(),
        layers: manifest
            .layers
            .iter()
            .map(|l| l.media_type.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        config: manifest.config.media_type.clone(),
    })
}

/// Extracts the module from the bytes of the layer [`detect`] chose.
pub fn module_from_layer(
    format: Format,
    layer: &Descriptor,
    bytes: Vec<u8>,
) -> Result<Vec<u8>, FormatError> {
    match format {
        Format::Oci | Format::Cncf => Ok(bytes),
        Format::Compat => {
            let bad = |source| FormatError::BadArchive {
                digest: layer.digest.clone(),
                source,
            };
            let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
            let mut names = Vec::new();
            for entry in archive.entries().map_err(bad)? {
                let mut entry = entry.map_err(bad)?;
                let path = entry.path().map_err(bad)?.into_owned();
                let is_plugin = path
                    .file_name()
                    .is_some_and(|n| n == std::ffi::OsStr::new(COMPAT_FILE));
                if is_plugin && entry.header().entry_type().is_file() {
                    let mut module = Vec::new();
                    entry.read_to_end(&mut module).map_err(bad)?;
                    return Ok(module);
                }
                names.push(path.display().to_string());
            }
            Err(FormatError::NoPluginFile {
                digest: layer.digest.clone(),
                entries: if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                },
            })
        }
    }
}

/// Checks the module against the sha256 the manifest annotation records (when present) and an
/// explicitly expected one (when given). Returns the module's sha256.
pub fn verify_module(
    manifest: &Manifest,
    module: &[u8],
    expected: Option<&str>,
    what: &str,
) -> Result<String, FormatError> {
    let got = sha256_hex(module);
    let mut wanted: Vec<(String, String)> = Vec::new();
    if let Some(annotated) = manifest.annotations.get(ANN_MODULE_SHA256) {
        wanted.push((annotated.clone(), format!("annotation {ANN_MODULE_SHA256}")));
    }
    if let Some(expected) = expected {
        wanted.push((
            expected.trim_start_matches("sha256:").to_ascii_lowercase(),
            "--sha256".into(),
        ));
    }
    for (expected, source_of_expected) in wanted {
        if expected != got {
            return Err(FormatError::ModuleDigest {
                what: what.to_string(),
                expected,
                got,
                source_of_expected,
            });
        }
    }
    Ok(got)
}

#[cfg(test)]
#[path = "formats_tests.rs"]
mod tests;
