//! Delivery to a file-configured Envoy: each Gateway's files, rendered by [`crate::envoy`], written
//! into a directory Envoy watches.
//!
//! Layout: `<dir>/<namespace>/<gateway>/{bootstrap.yaml, ecds/…, cds/…, tls/…}`. Envoy must be
//! started with that bootstrap; later pushes change only `ecds/` and `cds/` (and certificates),
//! which Envoy reloads when a file is renamed into the watched directory. The bootstrap holds the
//! listeners: when a Gateway's listeners change it is rewritten, and a warning says that Envoy
//! needs a restart to pick the new listeners up.

use std::path::{Path, PathBuf};

use super::{DeliverError, Delivered};
use crate::envoy::{self, BOOTSTRAP_FILE, EnvoyOptions};
use crate::resolution::{GatewayResult, ObjectKey};

#[derive(Debug, Clone)]
pub struct EnvoyFilesTarget {
    /// Rendering options; `config_dir` is the base directory (a per-Gateway directory is appended).
    pub options: EnvoyOptions,
}

impl EnvoyFilesTarget {
    pub fn new(options: EnvoyOptions) -> EnvoyFilesTarget {
        EnvoyFilesTarget { options }
    }

    /// The directory a Gateway's files go to.
    pub fn gateway_dir(base: &Path, gateway: &ObjectKey) -> PathBuf {
        base.join(&gateway.namespace).join(&gateway.name)
    }

    pub async fn deliver(&mut self, gateway: &GatewayResult) -> Result<Delivered, DeliverError> {
        let mut options = self.options.clone();
        options.config_dir = Self::gateway_dir(&self.options.config_dir, &gateway.gateway);
        let gateway = gateway.clone();
        tokio::task::spawn_blocking(move || {
            let files = envoy::render(&gateway, &options)?;
            let bootstrap_path = options.config_dir.join(BOOTSTRAP_FILE);
            let had_bootstrap = bootstrap_path.exists();
            let report = envoy::write_files(&options.config_dir, &files)?;
            let mut warnings = files.warnings;
            if had_bootstrap && report.written.contains(&bootstrap_path) {
                warnings.push(format!(
                    "{} changed (listeners, certificates or file layout); Envoy reads it only at start: restart Envoy to apply it",
                    bootstrap_path.display()
                ));
            }
            Ok(Delivered {
                changed: !report.written.is_empty(),
                warnings,
            })
        })
        .await
        .map_err(|e| DeliverError::Task(e.to_string()))?
    }
}
