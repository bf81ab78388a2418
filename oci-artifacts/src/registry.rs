//! Pushing an OCI layout to a registry and pulling a module back, through the OCI distribution
//! API (oci-client). Blobs are uploaded as POST (open an upload session) then PUT (the whole
//! blob, `?digest=`), the only upload shape every registry accepts; oci-client does exactly that
//! with `use_monolithic_push`. Manifests are pushed and fetched as raw bytes so their digests are
//! the digests we computed.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use crate::auth::AuthSource;
use crate::digest::sha256_digest;
use crate::formats::{
    self, DOCKER_MANIFEST, Descriptor, Format, Index, Manifest, OCI_INDEX, OCI_MANIFEST,
};

/// A reference as the user wrote it, parsed.
#[derive(Debug, Clone)]
pub struct Target {
    pub raw: String,
    pub reference: Reference,
    /// Whether the user wrote a tag (the parser adds `latest` otherwise).
    pub explicit_tag: bool,
}

impl Target {
    pub fn parse(raw: &str) -> Result<Self> {
        let raw = raw.trim().trim_start_matches("oci://").to_string();
        let reference: Reference = raw.parse().with_context(|| {
            format!(
                "`{raw}` is not a valid image reference (registry/repository[:tag][@sha256:digest])"
            )
        })?;
        let before_digest = raw.split('@').next().unwrap_or_default();
        let last = before_digest.rsplit('/').next().unwrap_or_default();
        let explicit_tag = before_digest.contains('/') && last.contains(':');
        Ok(Target {
            raw,
            reference,
            explicit_tag,
        })
    }

    pub fn registry(&self) -> &str {
        self.reference.registry()
    }

    pub fn repository(&self) -> &str {
        self.reference.repository()
    }

    pub fn tag(&self) -> Option<&str> {
        if self.explicit_tag || self.reference.digest().is_none() {
            self.reference.tag()
        } else {
            None
        }
    }

    pub fn digest(&self) -> Option<&str> {
        self.reference.digest()
    }

    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference::with_tag(
            self.reference.registry().to_string(),
            self.reference.repository().to_string(),
            tag.to_string(),
        )
    }
}

/// `base` with `tag` instead of its own tag or digest.
pub fn target_with_tag(base: &Target, tag: &str) -> Target {
    Target {
        raw: format!("{}/{}:{tag}", base.registry(), base.repository()),
        reference: base.with_tag(tag),
        explicit_tag: true,
    }
}

/// `base` pinned to `digest`.
pub fn target_with_digest(base: &Target, digest: &str) -> Target {
    Target {
        raw: format!("{}/{}@{digest}", base.registry(), base.repository()),
        reference: Reference::with_digest(
            base.registry().to_string(),
            base.repository().to_string(),
            digest.to_string(),
        ),
        explicit_tag: false,
    }
}

/// The OCI referrers tag schema: `sha256:<hex>` becomes the tag `sha256-<hex>`.
pub fn referrers_tag(subject_digest: &str) -> String {
    subject_digest.replacen(':', "-", 1)
}

/// Connection settings shared by push, pull and snippets.
#[derive(Debug, Clone)]
pub struct Connect {
    pub plain_http: bool,
    pub auth: RegistryAuth,
    pub auth_source: AuthSource,
}

/// A manifest fetched from a registry, with its verified digest.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub manifest: Manifest,
    pub bytes: Vec<u8>,
    pub digest: String,
}

/// A module pulled from a registry.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub module: Vec<u8>,
    pub module_sha256: String,
    pub manifest_digest: String,
    pub format: Format,
    /// The layer the module came from.
    pub layer: Descriptor,
}

pub struct Registry {
    client: Client,
    connect: Connect,
    progress: fn(&str),
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

impl Registry {
    pub fn new(connect: Connect) -> Self {
        let config = ClientConfig {
            protocol: if connect.plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            use_monolithic_push: true,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(120)),
            platform_resolver: None,
            ..ClientConfig::default()
        };
        Registry {
            client: Client::new(config),
            connect,
            progress,
        }
    }

    /// Reports progress through `report` instead of lines on standard error (a daemon logs them).
    pub fn with_progress(mut self, report: fn(&str)) -> Self {
        self.progress = report;
        self
    }

    fn progress(&self, line: &str) {
        (self.progress)(line);
    }

    /// The oci-client underneath (pushing a layout, in the packager).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn connect(&self) -> &Connect {
        &self.connect
    }

    /// `http://host:port` or `https://host:port`.
    pub fn base_url(&self, target: &Target) -> String {
        let scheme = if self.connect.plain_http {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}", target.reference.resolve_registry())
    }

    /// Turns a client error into a message that names the registry address and the step.
    pub fn explain(
        &self,
        err: OciDistributionError,
        target: &Target,
        doing: &str,
    ) -> anyhow::Error {
        let url = self.base_url(target);
        let hint = if self.connect.plain_http {
            String::new()
        } else {
            "\n  hint: if this registry serves plain HTTP (a local registry), pass --plain-http"
                .to_string()
        };
        match &err {
            OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => anyhow!(
                "cannot reach the registry at {url} while {doing}: {}{hint}",
                root_cause(e)
            ),
            OciDistributionError::RequestError(e)
                if matches!(e.status().map(|s| s.as_u16()), Some(401 | 403)) =>
            {
                anyhow!(
                    "the registry at {url} refused access ({}) while {doing}; credentials used: {}. \
                     Pass --username with --password-stdin, or add the registry to the Docker config file",
                    e.status().map(|s| s.to_string()).unwrap_or_default(),
                    self.connect.auth_source
                )
            }
            OciDistributionError::RequestError(e) => anyhow!(
                "request to the registry at {url} failed while {doing}: {}{hint}",
                root_cause(e)
            ),
            OciDistributionError::AuthenticationFailure(_)
            | OciDistributionError::UnauthorizedError { .. } => anyhow!(
                "the registry at {url} refused the credentials ({}) while {doing}: {err}",
                self.connect.auth_source
            ),
            _ => anyhow!("{doing} at {url}: {err}"),
        }
    }

    /// Authenticates for `op` on `target`'s repository (a token, when the registry uses them).
    pub async fn login(&self, target: &Target, op: RegistryOperation) -> Result<()> {
        self.client
            .store_auth_if_needed(target.reference.resolve_registry(), &self.connect.auth)
            .await;
        self.client
            .auth(&target.reference, &self.connect.auth, op)
            .await
            .map_err(|e| self.explain(e, target, "contacting the registry"))?;
        Ok(())
    }

    /// Pushes an artifact built in memory ([`formats::build_artifact`]): its blobs, then its
    /// manifest under `dest`'s tag. Returns the manifest digest. (The packager pushes layouts on
    /// disk; this is for programs and tests that publish a module directly.)
    pub async fn push_artifact(
        &self,
        artifact: &formats::Artifact,
        dest: &Target,
    ) -> Result<String> {
        self.login(dest, RegistryOperation::Push).await?;
        for (digest, bytes) in &artifact.blobs {
            self.push_blob(dest, bytes.clone(), digest).await?;
        }
        self.put_manifest(dest, artifact.manifest_bytes.clone(), OCI_MANIFEST)
            .await?;
        Ok(artifact.manifest_digest.clone())
    }

    /// Uploads `bytes` as blob `digest`, unless the registry has it. Returns whether it uploaded.
    pub async fn push_blob(&self, dest: &Target, bytes: Vec<u8>, digest: &str) -> Result<bool> {
        let exists = self
            .client
            .blob_exists(&dest.reference, digest)
            .await
            .map_err(|e| self.explain(e, dest, "checking for an existing blob"))?;
        if exists {
            return Ok(false);
        }
        self.client
            .push_blob(&dest.reference, bytes, digest)
            .await
            .map_err(|e| self.explain(e, dest, &format!("uploading blob {digest}")))?;
        Ok(true)
    }

    /// Uploads a manifest or image index as these exact bytes under `dest` (tag or digest).
    pub async fn put_manifest(
        &self,
        dest: &Target,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> Result<()> {
        self.client
            .push_manifest_raw(
                &dest.reference,
                bytes,
                media_type
                    .parse()
                    .with_context(|| format!("manifest media type `{media_type}`"))?,
            )
            .await
            .map_err(|e| self.explain(e, dest, &format!("uploading {}", dest.raw)))?;
        Ok(())
    }

    /// The image index under `tagged` (a referrers list), or an empty one when there is none.
    pub async fn read_index_or_empty(&self, tagged: &Target) -> Result<Index> {
        match self
            .client
            .pull_manifest_raw(&tagged.reference, &self.connect.auth, &[OCI_INDEX])
            .await
        {
            Ok((bytes, _)) => serde_json::from_slice::<Index>(&bytes)
                .with_context(|| format!("parsing the image index {}", tagged.raw)),
            Err(OciDistributionError::ImageManifestNotFoundError(_))
            | Err(OciDistributionError::RegistryError { .. }) => Ok(Index::new(Vec::new())),
            Err(e) => Err(self.explain(e, tagged, "reading the image index")),
        }
    }

    /// Fetches and verifies the manifest `target` names. A reference with both a tag and a
    /// digest is resolved through the tag and must land on the digest.
    pub async fn fetch_manifest(&self, target: &Target) -> Result<Fetched> {
        self.login(target, RegistryOperation::Pull).await?;
        let by_tag = match (target.tag(), target.digest()) {
            (Some(tag), _) => Some(target.with_tag(tag)),
            (None, _) => None,
        };
        let fetch_ref = by_tag.as_ref().unwrap_or(&target.reference);
        let accepted = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX];
        let (bytes, _) = match self
            .client
            .pull_manifest_raw(fetch_ref, &self.connect.auth, &accepted)
            .await
        {
            Ok(found) => found,
            Err(OciDistributionError::ImageManifestNotFoundError(_))
            | Err(OciDistributionError::RegistryError { .. })
                if target.digest().is_some() && by_tag.is_none() =>
            {
                bail!(
                    "no manifest {} in {}/{} at {}: expected that digest, but the registry does not have it",
                    target.digest().unwrap_or_default(),
                    target.registry(),
                    target.repository(),
                    self.base_url(target)
                );
            }
            Err(OciDistributionError::DigestError(e)) => {
                bail!("manifest digest mismatch for {}: {e}", target.raw)
            }
            Err(e) => {
                return Err(self.explain(
                    e,
                    target,
                    &format!("fetching the manifest of {}", target.raw),
                ));
            }
        };
        let digest = sha256_digest(&bytes);
        if let Some(expected) = target.digest()
            && expected != digest
        {
            bail!(
                "manifest digest mismatch for {}: expected {expected}, got {digest}{}",
                target.raw,
                target
                    .tag()
                    .map(|t| format!(" (what tag `{t}` resolves to)"))
                    .unwrap_or_default()
            );
        }
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("the manifest of {} is not JSON", target.raw))?;
        if value.get("manifests").is_some() {
            bail!(
                "{} is an image index, not a single manifest; reference the Wasm artifact's manifest by digest",
                target.raw
            );
        }
        let manifest: Manifest = serde_json::from_value(value)
            .with_context(|| format!("parsing the manifest of {}", target.raw))?;
        Ok(Fetched {
            manifest,
            bytes: bytes.to_vec(),
            digest,
        })
    }

    /// Downloads blob `desc` (oci-client verifies its digest).
    pub async fn fetch_blob(&self, target: &Target, desc: &Descriptor) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.client
            .pull_blob(&target.reference, desc.digest.as_str(), &mut out)
            .await
            .map_err(|e| self.explain(e, target, &format!("downloading blob {}", desc.digest)))?;
        if out.len() as u64 != desc.size {
            bail!(
                "blob {} from {} has {} bytes, the manifest says {}",
                desc.digest,
                target.raw,
                out.len(),
                desc.size
            );
        }
        Ok(out)
    }

    /// Pulls the module from any of the three formats and verifies it.
    pub async fn pull_module(
        &self,
        target: &Target,
        expected_sha256: Option<&str>,
    ) -> Result<Pulled> {
        self.progress(&format!(
            "fetching manifest of {} from {} ({})",
            target.raw,
            self.base_url(target),
            self.connect.auth_source
        ));
        let fetched = self.fetch_manifest(target).await?;
        let (format, layer) = formats::detect(&fetched.manifest, &target.raw)?;
        let layer = layer.clone();
        self.progress(&format!(
            "manifest {} ({format} format); downloading layer {} ({} bytes)",
            fetched.digest,
            crate::digest::short_digest(&layer.digest),
            layer.size
        ));
        let bytes = self.fetch_blob(target, &layer).await?;
        let module = formats::module_from_layer(format, &layer, bytes)?;
        let module_sha256 =
            formats::verify_module(&fetched.manifest, &module, expected_sha256, &target.raw)?;
        Ok(Pulled {
            module,
            module_sha256,
            manifest_digest: fetched.digest,
            format,
            layer,
        })
    }
}

/// A progress line on standard error.
pub fn progress(line: &str) {
    eprintln!("==> {line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let t = Target::parse("127.0.0.1:5000/gw/filter:0.1.0").unwrap();
        assert_eq!(t.registry(), "127.0.0.1:5000");
        assert_eq!(t.repository(), "gw/filter");
        assert_eq!(t.tag(), Some("0.1.0"));
        assert!(t.explicit_tag);

        let t = Target::parse("oci://127.0.0.1:5000/gw").unwrap();
        assert!(!t.explicit_tag);
        assert_eq!(t.tag(), Some("latest"));

        let digest = format!("sha256:{}", "a".repeat(64));
        let t = Target::parse(&format!("127.0.0.1:5000/gw@{digest}")).unwrap();
        assert_eq!(t.tag(), None);
        assert_eq!(t.digest(), Some(digest.as_str()));

        let t = Target::parse(&format!("127.0.0.1:5000/gw:1@{digest}")).unwrap();
        assert_eq!(t.tag(), Some("1"));
        assert_eq!(t.digest(), Some(digest.as_str()));

        let err = Target::parse("UPPER/Case::bad").unwrap_err().to_string();
        assert!(
            err.contains("`UPPER/Case::bad` is not a valid image reference"),
            "{err}"
        );
    }
}
