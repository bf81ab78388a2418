//! Pushing an OCI layout (the packager's output directory) to a registry: every blob, every
//! manifest of an image index, the manifest under its tag, then the referrers (the image's SBOM)
//! listed under the OCI referrers tag. Blobs are uploaded as POST (open an upload session) then PUT
//! (the whole blob, `?digest=`), the only upload shape every registry accepts; manifests as the
//! exact bytes of the layout, so their digests are the digests we computed.

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail};
use oci_client::RegistryOperation;

use crate::formats::{Descriptor, Manifest, OCI_INDEX};
use crate::layout::Layout;
use crate::registry::{
    Registry, Target, progress, referrers_tag, target_with_digest, target_with_tag,
};
use crate::util::short_digest;

/// Pushes the chosen entry of `layout` to `target`: every blob, every manifest of an image
/// index, then the manifest (or index) itself under the tag. Without a tag in the reference,
/// the layout's own tag is used. Then the layout's referrers of that entry (the SBOM of an
/// image) are pushed and listed under the OCI referrers tag `sha256-<hex>`. Returns the digest.
pub async fn push_layout(registry: &Registry, layout: &Layout, target: &Target) -> Result<String> {
    if let Some(digest) = target.digest()
        && digest != layout.manifest_desc.digest
    {
        bail!(
            "{} pins {digest}, but the layout {} holds manifest {}",
            target.raw,
            layout.dir.display(),
            layout.manifest_desc.digest
        );
    }
    let tag = match (target.explicit_tag, layout.ref_name()) {
        (true, _) => target.reference.tag().unwrap_or("latest").to_string(),
        (false, Some(name)) => name.to_string(),
        (false, None) => "latest".to_string(),
    };
    let dest = Target {
        raw: format!("{}/{}:{tag}", target.registry(), target.repository()),
        reference: target.with_tag(&tag),
        explicit_tag: true,
    };
    progress(&format!(
        "pushing {} to {} ({})",
        layout.dir.display(),
        dest.raw,
        registry.connect().auth_source
    ));
    registry.login(&dest, RegistryOperation::Push).await?;
    let mut pushed_blobs = BTreeSet::new();
    push_tree(
        registry,
        layout,
        &layout.manifest_desc,
        &dest,
        Some(&tag),
        &mut pushed_blobs,
    )
    .await?;
    let referrers = layout.referrers()?;
    for referrer in &referrers {
        push_tree(registry, layout, referrer, &dest, None, &mut pushed_blobs).await?;
        let manifest = layout.read_manifest(referrer)?;
        list_referrer(
            registry,
            &dest,
            &layout.manifest_desc.digest,
            referrer,
            &manifest,
        )
        .await?;
    }
    Ok(layout.manifest_desc.digest.clone())
}

/// Pushes the manifest or image index `desc` and everything under it; under `tag`, or by
/// digest without one.
async fn push_tree(
    registry: &Registry,
    layout: &Layout,
    desc: &Descriptor,
    dest: &Target,
    tag: Option<&str>,
    pushed_blobs: &mut BTreeSet<String>,
) -> Result<()> {
    let bytes = layout.blob(desc)?;
    if desc.media_type == OCI_INDEX {
        let index = layout.read_index(desc)?;
        for child in &index.manifests {
            Box::pin(push_tree(registry, layout, child, dest, None, pushed_blobs)).await?;
        }
    } else {
        let manifest = layout.read_manifest(desc)?;
        for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
            if pushed_blobs.insert(blob.digest.clone()) {
                push_blob(registry, layout, blob, dest).await?;
            }
        }
    }
    let reference = match tag {
        Some(tag) => target_with_tag(dest, tag),
        None => target_with_digest(dest, &desc.digest),
    };
    progress(&format!(
        "uploading {} {} as {}",
        if desc.media_type == OCI_INDEX {
            "image index"
        } else {
            "manifest"
        },
        short_digest(&desc.digest),
        reference.raw
    ));
    registry
        .put_manifest(&reference, bytes, &desc.media_type)
        .await
}

async fn push_blob(
    registry: &Registry,
    layout: &Layout,
    desc: &Descriptor,
    dest: &Target,
) -> Result<()> {
    let exists = registry
        .client()
        .blob_exists(&dest.reference, &desc.digest)
        .await
        .map_err(|e| registry.explain(e, dest, "checking for an existing blob"))?;
    if exists {
        progress(&format!(
            "blob {} ({}) already in the registry",
            short_digest(&desc.digest),
            desc.media_type
        ));
        return Ok(());
    }
    let bytes = layout.blob(desc)?;
    progress(&format!(
        "uploading blob {} ({}, {} bytes)",
        short_digest(&desc.digest),
        desc.media_type,
        bytes.len()
    ));
    registry
        .client()
        .push_blob(&dest.reference, bytes, &desc.digest)
        .await
        .map_err(|e| registry.explain(e, dest, &format!("uploading blob {}", desc.digest)))?;
    Ok(())
}

/// Adds `referrer` to the referrers index of `subject` under the OCI 1.1 referrers tag
/// schema: "the tag is the digest of the subject with `:` replaced by `-`", holding an image
/// index of the referrers' descriptors (with `artifactType` and annotations). Registries
/// without the referrers API (distribution 2.8) serve referrers only this way; tools that
/// query the API fall back to this tag. An existing list is kept and extended.
async fn list_referrer(
    registry: &Registry,
    dest: &Target,
    subject: &str,
    referrer: &Descriptor,
    manifest: &Manifest,
) -> Result<()> {
    let tag = referrers_tag(subject);
    let tagged = target_with_tag(dest, &tag);
    let mut index = registry.read_index_or_empty(&tagged).await?;
    if index.manifests.iter().any(|m| m.digest == referrer.digest) {
        progress(&format!(
            "referrer {} already listed under {}",
            short_digest(&referrer.digest),
            tagged.raw
        ));
        return Ok(());
    }
    let mut entry = referrer.clone();
    entry.annotations = manifest.annotations.clone();
    entry.artifact_type = manifest.artifact_type.clone();
    index.manifests.push(entry);
    let bytes = serde_json::to_vec(&index).context("serializing the referrers index")?;
    progress(&format!(
        "listing referrer {} ({}) under {}",
        short_digest(&referrer.digest),
        manifest
            .artifact_type
            .as_deref()
            .unwrap_or("no artifactType"),
        tagged.raw
    ));
    registry.put_manifest(&tagged, bytes, OCI_INDEX).await
}
