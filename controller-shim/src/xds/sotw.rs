//! The state-of-the-world ADS stream (`StreamAggregatedResources`).
//!
//! Per type: a response carries the whole set the node should have (LDS and CDS: everything; EDS,
//! SDS, ECDS: the names the node asked for), under a version that is a hash of that set. A request
//! whose `response_nonce` is the last one sent ACKs (no `error_detail`) or NACKs it; a request with
//! an older nonce is stale and ignored (xDS protocol, "ACK and NACK semantics"). A set is sent only
//! when its version differs from the one last sent, so a NACKed version is not sent again until
//! something changes, and a reconnecting Envoy that reports the current version is sent nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::{Status, Streaming};

use super::catalog::{Catalog, Resource, ResourceType};
use super::nodes::{Connection, NackReason};
use super::stream::{Identity, MODULE_RETRY_DELAYS, identify, set_version, view};

#[derive(Debug, Default)]
struct Subscription {
    names: BTreeSet<String>,
    sent_version: Option<String>,
    nonce: Option<String>,
    sent: Vec<Arc<Resource>>,
    sent_revision: String,
    /// A NACKed extension config is sent again at this time (module download).
    retry_at: Option<Instant>,
    retries: usize,
}

struct SotwStream {
    catalog: watch::Receiver<Arc<Catalog>>,
    connection: Connection,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    identity: Option<Identity>,
    subscriptions: BTreeMap<ResourceType, Subscription>,
    /// Modules this Envoy ACKed a config for (it has them in its code cache).
    loaded_modules: BTreeSet<String>,
    nonce: u64,
}

/// Serves one stream until Envoy or the server closes it.
pub async fn run(
    mut requests: Streaming<DiscoveryRequest>,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    catalog: watch::Receiver<Arc<Catalog>>,
    connection: Connection,
) {
    let mut stream = SotwStream {
        catalog,
        connection,
        tx,
        identity: None,
        subscriptions: BTreeMap::new(),
        loaded_modules: BTreeSet::new(),
        nonce: 0,
    };
    loop {
        let retry_at = stream
            .subscriptions
            .values()
            .filter_map(|s| s.retry_at)
            .min();
        tokio::select! {
            request = requests.message() => match request {
                Ok(Some(request)) => {
                    if stream.on_request(request).await.is_err() { break; }
                }
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(%status, "xDS stream ended");
                    break;
                }
            },
            changed = stream.catalog.changed() => {
                if changed.is_err() || stream.push_all().await.is_err() { break; }
            }
            () = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                if stream.retry_due().await.is_err() { break; }
            }
            () = stream.tx.closed() => break,
        }
    }
}

/// The response channel is gone.
struct Closed;

impl SotwStream {
    async fn on_request(&mut self, request: DiscoveryRequest) -> Result<(), Closed> {
        if self.identity.is_none() {
            let identity = identify(request.node.as_ref());
            if let Some(problem) = &identity.problem {
                tracing::warn!("{problem}; it is sent nothing");
            }
            self.connection.identify(
                &identity.node,
                identity.gateway.as_ref().map(ToString::to_string),
            );
            tracing::info!(node = %identity.node, gateway = ?identity.gateway.as_ref().map(ToString::to_string),
                protocol = "state of the world", "Envoy connected");
            self.identity = Some(identity);
        }
        let Some(kind) = ResourceType::from_type_url(&request.type_url) else {
            tracing::debug!(type_url = %request.type_url, "a type this server does not serve");
            return Ok(());
        };
        let subscription = self.subscriptions.entry(kind).or_default();
        if !request.response_nonce.is_empty() {
            if subscription.nonce.as_deref() != Some(request.response_nonce.as_str()) {
                // Stale: answers a response that a later one replaced.
                return Ok(());
            }
            let version = subscription.sent_version.clone().unwrap_or_default();
            match &request.error_detail {
                Some(error) => {
                    let module = subscription.sent.first().and_then(|r| r.module.clone());
                    let fetching = kind == ResourceType::ExtensionConfig
                        && module.is_some_and(|m| !self.loaded_modules.contains(&m))
                        && subscription.retries < MODULE_RETRY_DELAYS.len();
                    let reason = if fetching {
                        let delay = MODULE_RETRY_DELAYS
                            .get(subscription.retries)
                            .copied()
                            .unwrap_or_default();
                        subscription.retries += 1;
                        subscription.retry_at = Some(Instant::now() + delay);
                        NackReason::ModuleFetch
                    } else {
                        NackReason::Rejected
                    };
                    self.connection
                        .nacked(kind, &version, reason, &error.message);
                }
                None => {
                    subscription.retry_at = None;
                    subscription.retries = 0;
                    let revision = (kind == ResourceType::ExtensionConfig)
                        .then_some(subscription.sent_revision.as_str());
                    if let Some(module) = subscription.sent.first().and_then(|r| r.module.clone())
                    {
                        self.loaded_modules.insert(module);
                    }
                    self.connection.acked(kind, &version, revision);
                }
            }
        }
        subscription.names = request.resource_names.iter().cloned().collect();
        let reported = (request.response_nonce.is_empty() && !request.version_info.is_empty())
            .then_some(request.version_info);
        self.push(kind, reported, false).await
    }

    async fn push_all(&mut self) -> Result<(), Closed> {
        let kinds: Vec<ResourceType> = self.subscriptions.keys().copied().collect();
        for kind in kinds {
            self.push(kind, None, false).await?;
        }
        Ok(())
    }

    async fn retry_due(&mut self) -> Result<(), Closed> {
        let now = Instant::now();
        let due: Vec<ResourceType> = self
            .subscriptions
            .iter()
            .filter(|(_, s)| s.retry_at.is_some_and(|at| at <= now))
            .map(|(k, _)| *k)
            .collect();
        for kind in due {
            if let Some(s) = self.subscriptions.get_mut(&kind) {
                s.retry_at = None;
            }
            self.push(kind, None, true).await?;
        }
        Ok(())
    }

    /// Sends `kind`'s current set when its version differs from the last sent (or `again`).
    /// `reported`: the version a reconnecting Envoy says it has.
    async fn push(
        &mut self,
        kind: ResourceType,
        reported: Option<String>,
        again: bool,
    ) -> Result<(), Closed> {
        let Some(identity) = &self.identity else {
            return Ok(());
        };
        let Some(subscription) = self.subscriptions.get_mut(&kind) else {
            return Ok(());
        };
        let names = (!kind.is_wildcard()).then_some(&subscription.names);
        let catalog = self.catalog.borrow().clone();
        let Some((resources, revision)) = view(&catalog, identity, kind, names) else {
            return Ok(());
        };
        let version = set_version(&resources);
        if !again && subscription.sent_version.as_deref() == Some(version.as_str()) {
            return Ok(());
        }
        if subscription.sent_version.is_none() && reported.as_deref() == Some(version.as_str()) {
            // A reconnecting Envoy already runs exactly this: nothing to send.
            subscription.sent_version = Some(version.clone());
            subscription.sent = resources;
            subscription.sent_revision = revision;
            let acked_revision = (kind == ResourceType::ExtensionConfig)
                .then_some(subscription.sent_revision.as_str());
            self.connection.settled(kind, &version, acked_revision);
            if let Some(module) = subscription.sent.first().and_then(|r| r.module.clone()) {
                self.loaded_modules.insert(module);
            }
            return Ok(());
        }
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let response = DiscoveryResponse {
            version_info: version.clone(),
            resources: resources.iter().map(|r| r.body.clone()).collect(),
            type_url: kind.type_url().to_owned(),
            nonce: nonce.clone(),
            ..DiscoveryResponse::default()
        };
        subscription.sent_version = Some(version.clone());
        subscription.nonce = Some(nonce);
        subscription.sent = resources;
        subscription.sent_revision = revision;
        self.connection.sent(kind, &version);
        tracing::debug!(node = %identity.node, r#type = kind.short(), %version,
            resources = response.resources.len(), "sending");
        self.tx.send(Ok(response)).await.map_err(|_| Closed)
    }
}
