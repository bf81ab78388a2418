//! The filter module from an OCI registry: pulled (any of the three artifact formats `packager
//! push` publishes), verified (manifest digest, layer digest, the module's sha256 annotation), kept
//! on disk by digest, and resolved again when a tag may have moved.
//!
//! Cache layout under the cache directory:
//! - `modules/<sha256 of the module>.wasm`;
//! - `manifests/<sha256 of the manifest>`: the module's sha256, so a pinned reference
//!   (`…@sha256:`) restarts with no registry at all;
//! - `tags/<hash of registry/repository:tag>`: the manifest digest the tag last resolved to, so a
//!   restart while the registry is down serves what the tag named last time (and says so).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use atomic_file::Access;
use bytes::Bytes;
use oci_artifacts::auth;
use oci_artifacts::digest::sha256_hex;
use oci_artifacts::registry::{Connect, Registry, Target, target_with_digest};

use super::XdsServer;
use crate::metrics::Metrics;

/// How the shim reaches the registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryAccess {
    pub plain_http: bool,
    pub username: Option<String>,
    /// The password's file (a mounted Secret), read at every resolution (rotations apply).
    pub password_file: Option<PathBuf>,
}

/// A module resolved from the registry or the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub module: Bytes,
    pub module_sha256: String,
    pub manifest_digest: String,
    /// `oci://registry/repo@sha256:…` (the pinned reference it came from).
    pub origin: String,
    /// Served from the disk cache because the registry could not be asked.
    pub from_cache_only: bool,
}

/// An `oci://` module source.
#[derive(Debug)]
pub struct OciModule {
    target: Target,
    access: RegistryAccess,
    cache: PathBuf,
    metrics: Arc<Metrics>,
}

/// Retry delays after a failed first pull (the last one repeats).
const FIRST_PULL_RETRY: [Duration; 4] = [
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(15),
    Duration::from_secs(30),
];

fn log_progress(line: &str) {
    tracing::info!("{line}");
}

impl OciModule {
    /// `reference`: what follows `oci://`.
    pub fn new(
        reference: &str,
        access: RegistryAccess,
        cache: PathBuf,
        metrics: Arc<Metrics>,
    ) -> Result<OciModule> {
        let target =
            Target::parse(reference).with_context(|| format!("--wasm oci://{reference}"))?;
        Ok(OciModule {
            target,
            access,
            cache,
            metrics,
        })
    }

    fn registry(&self) -> Result<Registry> {
        let (auth, auth_source) = match (&self.access.username, &self.access.password_file) {
            (Some(user), Some(file)) => {
                let password = std::fs::read_to_string(file).with_context(|| {
                    format!("reading the registry password from {}", file.display())
                })?;
                auth::with_password(user, &password)?
            }
            _ => auth::from_environment(self.target.registry())?,
        };
        Ok(Registry::new(Connect {
            plain_http: self.access.plain_http,
            auth,
            auth_source,
        })
        .with_progress(log_progress))
    }

    fn module_path(&self, sha256: &str) -> PathBuf {
        self.cache.join("modules").join(format!("{sha256}.wasm"))
    }

    fn manifest_path(&self, digest: &str) -> PathBuf {
        self.cache
            .join("manifests")
            .join(digest.trim_start_matches("sha256:"))
    }

    fn tag_path(&self) -> Option<PathBuf> {
        let tag = self.target.tag()?;
        let key = format!(
            "{}/{}:{tag}",
            self.target.registry(),
            self.target.repository()
        );
        Some(self.cache.join("tags").join(sha256_hex(key.as_bytes())))
    }

    fn origin(&self, manifest_digest: &str) -> String {
        format!(
            "oci://{}/{}@{manifest_digest}",
            self.target.registry(),
            self.target.repository()
        )
    }

    /// The cached module of a manifest, checked against its sha256.
    fn cached(&self, manifest_digest: &str) -> Option<Resolved> {
        let sha256 = std::fs::read_to_string(self.manifest_path(manifest_digest)).ok()?;
        let sha256 = sha256.trim();
        let module = std::fs::read(self.module_path(sha256)).ok()?;
        if sha256_hex(&module) != sha256 {
            tracing::warn!(path = %self.module_path(sha256).display(),
                "a cached module does not match its sha256; pulling it again");
            return None;
        }
        Some(Resolved {
            module: module.into(),
            module_sha256: sha256.to_owned(),
            manifest_digest: manifest_digest.to_owned(),
            origin: self.origin(manifest_digest),
            from_cache_only: false,
        })
    }

    fn store(&self, resolved: &Resolved) -> Result<()> {
        let write = |path: &Path, bytes: &[u8]| {
            atomic_file::write(path, bytes, Access::Public)
                .with_context(|| format!("caching the module at {}", path.display()))
        };
        write(&self.module_path(&resolved.module_sha256), &resolved.module)?;
        write(
            &self.manifest_path(&resolved.manifest_digest),
            resolved.module_sha256.as_bytes(),
        )?;
        if let Some(path) = self.tag_path() {
            write(&path, resolved.manifest_digest.as_bytes())?;
        }
        Ok(())
    }

    /// Resolves the reference: the cache for a pinned digest, else the registry (the tag's current
    /// manifest, pulled and verified unless cached). `current`: the manifest served now.
    pub async fn resolve(&self, current: Option<&str>) -> Result<Resolved> {
        if self.target.tag().is_none()
            && let Some(digest) = self.target.digest()
            && let Some(cached) = self.cached(digest)
        {
            return Ok(cached);
        }
        let registry = self.registry()?;
        let fetched = registry.fetch_manifest(&self.target).await?;
        if current == Some(fetched.digest.as_str())
            && let Some(cached) = self.cached(&fetched.digest)
        {
            return Ok(cached);
        }
        if let Some(cached) = self.cached(&fetched.digest) {
            if let Some(path) = self.tag_path() {
                let _ = atomic_file::write(&path, fetched.digest.as_bytes(), Access::Public);
            }
            return Ok(cached);
        }
        let pinned = target_with_digest(&self.target, &fetched.digest);
        let pulled = registry.pull_module(&pinned, None).await?;
        let resolved = Resolved {
            module: pulled.module.into(),
            module_sha256: pulled.module_sha256,
            manifest_digest: pulled.manifest_digest,
            origin: self.origin(&fetched.digest),
            from_cache_only: false,
        };
        if let Err(error) = self.store(&resolved) {
            tracing::warn!(%error, "the module is served but not cached");
        }
        Ok(resolved)
    }

    /// What the tag named last time, from the cache (the registry cannot be asked).
    fn last_known(&self) -> Option<Resolved> {
        let digest = std::fs::read_to_string(self.tag_path()?).ok()?;
        let mut resolved = self.cached(digest.trim())?;
        resolved.from_cache_only = true;
        Some(resolved)
    }

    /// Pulls until the first module is served, then (with `refresh`) resolves the tag again at
    /// that interval and serves a moved tag's module.
    pub async fn run(self, server: XdsServer, refresh: Option<Duration>) {
        let mut current: Option<String> = None;
        let mut failures = 0usize;
        loop {
            match self.resolve(current.as_deref()).await {
                Ok(resolved) => {
                    failures = 0;
                    if current.as_deref() == Some(resolved.manifest_digest.as_str()) {
                        self.metrics.module_pull("unchanged");
                    } else {
                        self.metrics.module_pull("ok");
                        tracing::info!(reference = %self.target.raw, manifest = %resolved.manifest_digest,
                            module_sha256 = %resolved.module_sha256, "filter module resolved and verified");
                        server.set_module(resolved.module.clone(), &resolved.origin);
                        current = Some(resolved.manifest_digest);
                    }
                }
                Err(error) => {
                    self.metrics.module_pull("error");
                    failures += 1;
                    match (&current, self.last_known()) {
                        (None, Some(cached)) => {
                            tracing::warn!(reference = %self.target.raw, error = %format!("{error:#}"),
                                manifest = %cached.manifest_digest,
                                "cannot reach the registry; serving the module this tag named last time, from the cache");
                            server.set_module(cached.module.clone(), &cached.origin);
                            current = Some(cached.manifest_digest);
                        }
                        (None, None) => tracing::error!(reference = %self.target.raw,
                            error = %format!("{error:#}"),
                            "cannot pull the filter module; Gateways are served once it is pulled"),
                        (Some(serving), _) => tracing::warn!(reference = %self.target.raw,
                            error = %format!("{error:#}"), %serving,
                            "cannot resolve the module reference again; the current module stays"),
                    }
                }
            }
            let wait = if current.is_none() {
                FIRST_PULL_RETRY
                    .get(failures.saturating_sub(1))
                    .or(FIRST_PULL_RETRY.last())
                    .copied()
                    .unwrap_or(Duration::from_secs(30))
            } else if self.target.tag().is_none() {
                // Pinned by digest: nothing can move.
                return;
            } else {
                match refresh {
                    Some(interval) => interval,
                    None => return,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}
