//! Status patches through the Kubernetes API: `PATCH …/<name>/status` with a JSON merge patch.
//!
//! Only the Lease holder calls this (see [`super::lease`]); every replica still delivers configs to
//! its own proxy.

use std::collections::BTreeMap;

use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::Value;

use super::{StatusError, StatusPatch};
use crate::kinds::Kind;
use crate::metrics::Metrics;
use crate::resolution::ObjectKey;

/// The field manager recorded on our writes.
pub const FIELD_MANAGER: &str = "gateway-wasm-controller-shim";

/// Writes status patches, remembering what it wrote so that a round planned before the watch
/// delivered our own write does not write the same status again.
pub struct KubeStatus {
    client: Client,
    /// (kind, key) → (the resourceVersion the patch was based on, the status written).
    written: BTreeMap<(Kind, ObjectKey), (Option<String>, Value)>,
}

impl KubeStatus {
    pub fn new(client: Client) -> KubeStatus {
        KubeStatus {
            client,
            written: BTreeMap::new(),
        }
    }

    /// Applies the patches in order; returns the errors (each also counted and logged).
    pub async fn apply(
        &mut self,
        patches: Vec<StatusPatch>,
        metrics: &Metrics,
    ) -> Vec<StatusError> {
        let mut errors = Vec::new();
        for patch in patches {
            let id = (patch.kind, patch.key.clone());
            if self.written.get(&id)
                == Some(&(patch.resource_version.clone(), patch.status.clone()))
            {
                continue;
            }
            match self.patch(&patch).await {
                Ok(()) => {
                    metrics.status_patch(patch.kind.as_str(), "ok");
                    tracing::info!(kind = %patch.kind, object = %patch.key, "status written");
                    self.written
                        .insert(id, (patch.resource_version.clone(), patch.status.clone()));
                }
                Err(error) => {
                    metrics.status_patch(patch.kind.as_str(), error.metric_label());
                    match &error {
                        StatusError::Conflict { .. } | StatusError::NotFound { .. } => {
                            tracing::debug!(%error, "status not written")
                        }
                        _ => tracing::warn!(%error, "status not written"),
                    }
                    errors.push(error);
                }
            }
        }
        errors
    }

    async fn patch(&self, patch: &StatusPatch) -> Result<(), StatusError> {
        if !patch.kind.status_written() {
            return Ok(());
        }
        let resource = patch.kind.api_resource();
        let api: Api<DynamicObject> = if patch.key.namespace.is_empty() {
            Api::all_with(self.client.clone(), &resource)
        } else {
            Api::namespaced_with(self.client.clone(), &patch.key.namespace, &resource)
        };
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        match api
            .patch_status(&patch.key.name, &params, &Patch::Merge(patch.body()))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Err(StatusError::Conflict {
                kind: patch.kind,
                key: patch.key.clone(),
            }),
            Err(kube::Error::Api(status)) if status.code == 404 => Err(StatusError::NotFound {
                kind: patch.kind,
                key: patch.key.clone(),
            }),
            Err(source) => Err(StatusError::Api {
                kind: patch.kind,
                key: patch.key.clone(),
                source: Box::new(source),
            }),
        }
    }
}
