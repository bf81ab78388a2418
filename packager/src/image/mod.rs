//! `packager image`: the controller-shim as an OCI container image.
//!
//! One layer per architecture ([`rootfs`]): the static musl binary at
//! `/usr/local/bin/controller-shim`, Mozilla's CA certificates and `/etc/passwd` / `/etc/group`
//! with the unprivileged user 65532. The image config sets `Entrypoint` to the binary, `User` to
//! 65532 and the OCI labels (`source`, `version`, `revision`, `licenses`, `created`). With more
//! than one architecture the tagged entry is an image index with one manifest per platform.
//! The SBOM of each binary ([`sbom`]) is stored next to it as an OCI 1.1 referrer: a manifest
//! whose `subject` is the image manifest.
//!
//! Everything is reproducible: JSON from structs and sorted maps, the layer from
//! [`rootfs::layer_tar`], gzip with a fixed header, timestamps from `SOURCE_DATE_EPOCH` (or the
//! last commit). The same source and the same `Cargo.lock` give the same digest.

pub mod build;
pub mod rootfs;
pub mod sbom;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::formats::{
    ANN_CREATED, ANN_DESCRIPTION, ANN_LICENSES, ANN_REF_NAME, ANN_REVISION, ANN_SOURCE, ANN_TITLE,
    ANN_VERSION, Descriptor, FormatError, Index, Manifest, OCI_IMAGE_CONFIG, OCI_INDEX,
    OCI_LAYER_TAR_GZIP, OCI_MANIFEST, RootFs, gzip_fixed, to_json,
};
use crate::layout::Content;
use crate::util::sha256_digest;

pub use build::Arch;

/// The media type OCI 1.1 gives an artifact manifest's empty config (`{}`).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// CycloneDX JSON (IANA-registered), the SBOM's `artifactType` and layer media type.
pub const CYCLONEDX_JSON: &str = "application/vnd.cyclonedx+json";
pub const IMAGE_TITLE: &str = "gateway-wasm controller-shim";
pub const IMAGE_DESCRIPTION: &str = "Gateway API routing inside Envoy through the gateway-wasm filter: watches the cluster and pushes the route table.";

/// Provenance of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMeta {
    pub version: String,
    pub source: Option<String>,
    pub revision: Option<String>,
    /// RFC 3339 UTC timestamp (`created`), and the same instant as the files' mtime.
    pub created: String,
    pub epoch: u64,
    /// SPDX expression (`org.opencontainers.image.licenses`).
    pub licenses: String,
}

impl ImageMeta {
    /// The OCI labels of the image config, also the image manifest's annotations.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        labels.insert(ANN_TITLE.to_string(), IMAGE_TITLE.to_string());
        labels.insert(ANN_DESCRIPTION.to_string(), IMAGE_DESCRIPTION.to_string());
        labels.insert(ANN_VERSION.to_string(), self.version.clone());
        labels.insert(ANN_CREATED.to_string(), self.created.clone());
        labels.insert(ANN_LICENSES.to_string(), self.licenses.clone());
        if let Some(source) = &self.source {
            labels.insert(ANN_SOURCE.to_string(), source.clone());
        }
        if let Some(revision) = &self.revision {
            labels.insert(ANN_REVISION.to_string(), revision.clone());
        }
        labels
    }
}

/// One architecture's input: the binary and (optionally) its SBOM.
pub struct PlatformInput {
    pub arch: Arch,
    pub binary: Vec<u8>,
    pub sbom: Option<Vec<u8>>,
}

/// What [`assemble`] built.
#[derive(Debug, Clone)]
pub struct Image {
    pub content: Content,
    /// The tagged entry: the manifest (one architecture) or the image index.
    pub top: Descriptor,
    /// Per architecture: the image manifest and, when attached, the SBOM manifest.
    pub platforms: Vec<(Arch, Descriptor, Option<Descriptor>)>,
}

#[derive(Serialize)]
struct ImageConfig<'a> {
    created: &'a str,
    architecture: &'a str,
    os: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
    config: RunConfig,
    rootfs: RootFs,
    history: Vec<History<'a>>,
}

/// The runtime part of the image config (Go field names, as the spec spells them).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    user: String,
    entrypoint: Vec<String>,
    env: Vec<String>,
    working_dir: String,
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct History<'a> {
    created: &'a str,
    created_by: String,
}

/// Builds the image (and SBOM referrers) for `inputs` into an OCI layout's content, with the
/// tagged entry named `tag`.
pub fn assemble(
    inputs: &[PlatformInput],
    ca_bundle: &[u8],
    meta: &ImageMeta,
    tag: &str,
) -> Result<Image, FormatError> {
    let mut content = Content::default();
    let mut platforms = Vec::new();
    let mut manifests = Vec::new();
    for input in inputs {
        let platform = input.arch.platform();
        let tar =
            rootfs::layer_tar(&input.binary, ca_bundle, meta.epoch).map_err(FormatError::Layer)?;
        let layer = content.add(OCI_LAYER_TAR_GZIP, gzip_fixed(&tar)?);
        let config = to_json(
            &ImageConfig {
                created: &meta.created,
                architecture: &platform.architecture,
                os: &platform.os,
                variant: platform.variant.as_deref(),
                config: RunConfig {
                    user: format!("{}:{}", rootfs::USER_ID, rootfs::USER_ID),
                    entrypoint: vec![rootfs::BINARY_PATH.to_string()],
                    env: vec![
                        "PATH=/usr/local/bin".to_string(),
                        format!("SSL_CERT_FILE={}", rootfs::CA_BUNDLE_PATH),
                    ],
                    working_dir: "/".to_string(),
                    labels: meta.labels(),
                },
                rootfs: RootFs {
                    kind: "layers",
                    diff_ids: vec![sha256_digest(&tar)],
                },
                history: vec![History {
                    created: &meta.created,
                    created_by: format!(
                        "packager image {} ({})",
                        meta.version,
                        input.arch.rust_target()
                    ),
                }],
            },
            "the image config",
        )?;
        let config = content.add(OCI_IMAGE_CONFIG, config);
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_string()),
            artifact_type: None,
            config,
            layers: vec![layer],
            subject: None,
            annotations: meta.labels(),
        };
        let mut manifest_desc =
            content.add(OCI_MANIFEST, to_json(&manifest, "the image manifest")?);
        manifest_desc.platform = Some(platform);
        let sbom_desc = match &input.sbom {
            Some(sbom) => Some(attach_sbom(&mut content, &manifest_desc, sbom, meta)?),
            None => None,
        };
        manifests.push(manifest_desc.clone());
        platforms.push((input.arch, manifest_desc, sbom_desc));
    }
    let mut top = match manifests.as_slice() {
        [only] => only.clone(),
        _ => {
            let mut index = Index::new(manifests);
            index.annotations = meta.labels();
            content.add(OCI_INDEX, to_json(&index, "the image index")?)
        }
    };
    top.annotations
        .insert(ANN_REF_NAME.to_string(), tag.to_string());
    content.entries.insert(0, top.clone());
    Ok(Image {
        content,
        top,
        platforms,
    })
}

/// Stores `sbom` as an OCI 1.1 artifact whose `subject` is `image` (its descriptor without the
/// layout's annotations) and lists it, untagged, in the layout.
fn attach_sbom(
    content: &mut Content,
    image: &Descriptor,
    sbom: &[u8],
    meta: &ImageMeta,
) -> Result<Descriptor, FormatError> {
    let config = content.add(OCI_EMPTY, b"{}".to_vec());
    let mut layer = content.add(CYCLONEDX_JSON, sbom.to_vec());
    layer.annotations.insert(
        ANN_TITLE.to_string(),
        "controller-shim.cdx.json".to_string(),
    );
    let mut annotations = BTreeMap::new();
    annotations.insert(ANN_CREATED.to_string(), meta.created.clone());
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_string()),
        artifact_type: Some(CYCLONEDX_JSON.to_string()),
        config,
        layers: vec![layer],
        subject: Some(Descriptor {
            media_type: image.media_type.clone(),
            digest: image.digest.clone(),
            size: image.size,
            platform: None,
            artifact_type: None,
            annotations: BTreeMap::new(),
        }),
        annotations,
    };
    let mut desc = content.add(OCI_MANIFEST, to_json(&manifest, "the SBOM manifest")?);
    desc.artifact_type = Some(CYCLONEDX_JSON.to_string());
    content.entries.push(desc.clone());
    Ok(desc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ImageMeta {
        ImageMeta {
            version: "0.1.0".into(),
            source: Some("https://example.invalid/gateway-wasm".into()),
            revision: Some("0123456789abcdef".into()),
            created: "2024-05-06T07:08:09Z".into(),
            epoch: 1_714_979_289,
            licenses: "Apache-2.0".into(),
        }
    }

    fn input(arch: Arch, sbom: bool) -> PlatformInput {
        PlatformInput {
            arch,
            binary: format!("binary for {arch}").into_bytes(),
            sbom: sbom.then(|| br#"{"bomFormat":"CycloneDX"}"#.to_vec()),
        }
    }

    #[test]
    fn one_architecture_is_a_tagged_manifest_with_its_sbom_as_referrer() {
        let image = assemble(&[input(Arch::X86_64, true)], b"certs", &meta(), "0.1.0").unwrap();
        assert_eq!(image.top.media_type, OCI_MANIFEST);
        assert_eq!(image.top.annotations[ANN_REF_NAME], "0.1.0");
        assert_eq!(image.top.platform.as_ref().unwrap().architecture, "amd64");
        assert_eq!(image.content.entries.len(), 2);
        let sbom = &image.content.entries[1];
        assert!(!sbom.annotations.contains_key(ANN_REF_NAME));
        let manifest: Manifest =
            serde_json::from_slice(&image.content.blobs[&sbom.digest]).unwrap();
        assert_eq!(manifest.subject.unwrap().digest, image.top.digest);
        assert_eq!(manifest.artifact_type.as_deref(), Some(CYCLONEDX_JSON));
        assert_eq!(manifest.config.media_type, OCI_EMPTY);

        let config_desc = {
            let m: Manifest =
                serde_json::from_slice(&image.content.blobs[&image.top.digest]).unwrap();
            m.config
        };
        let config: serde_json::Value =
            serde_json::from_slice(&image.content.blobs[&config_desc.digest]).unwrap();
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(
            config["config"]["Entrypoint"][0],
            "/usr/local/bin/controller-shim"
        );
        assert_eq!(
            config["config"]["Labels"]["org.opencontainers.image.licenses"],
            "Apache-2.0"
        );
        assert_eq!(config["architecture"], "amd64");
        assert_eq!(config["os"], "linux");
    }

    #[test]
    fn several_architectures_are_an_index_and_the_digest_is_stable() {
        let inputs = [input(Arch::X86_64, false), input(Arch::Aarch64, false)];
        let a = assemble(&inputs, b"certs", &meta(), "0.1.0").unwrap();
        let b = assemble(&inputs, b"certs", &meta(), "0.1.0").unwrap();
        assert_eq!(a.top, b.top);
        assert_eq!(a.top.media_type, OCI_INDEX);
        let index: Index = serde_json::from_slice(&a.content.blobs[&a.top.digest]).unwrap();
        let platforms: Vec<_> = index
            .manifests
            .iter()
            .map(|m| m.platform.clone().unwrap().architecture)
            .collect();
        assert_eq!(platforms, ["amd64", "arm64"]);

        let mut later = meta();
        later.epoch += 1;
        let c = assemble(&inputs, b"certs", &later, "0.1.0").unwrap();
        assert_ne!(
            a.top.digest, c.top.digest,
            "file times are part of the image"
        );
    }
}
