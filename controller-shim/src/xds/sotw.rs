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
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::catalog::{Resource, ResourceType};
use super::stream::{
    GateDecision, Identity, ModuleGate, StreamContext, identify, module_of_version, set_version,
    view,
};

#[derive(Debug, Default)]
struct Subscription {
    names: BTreeSet<String>,
    sent_version: Option<String>,
    nonce: Option<String>,
    sent: Vec<Arc<Resource>>,
    sent_revision: String,
    /// The version a reconnecting Envoy said it has (until something is sent).
    reported: Option<String>,
}

struct SotwStream {
    context: StreamContext,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    identity: Option<Identity>,
    subscriptions: BTreeMap<ResourceType, Subscription>,
    gate: ModuleGate,
    nonce: u64,
}

/// The response channel is gone.
struct Closed;

/// Serves one stream until Envoy or the server closes it.
pub async fn run(
    mut requests: Streaming<DiscoveryRequest>,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    context: StreamContext,
) {
    let mut downloads = context.modules.subscribe_downloads();
    let mut stream = SotwStream {
        context,
        tx,
        identity: None,
        subscriptions: BTreeMap::new(),
        gate: ModuleGate::default(),
        nonce: 0,
    };
    loop {
        let deadline = stream.gate.deadline();
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
            changed = stream.context.catalog.changed() => {
                if changed.is_err() || stream.push_all().await.is_err() { break; }
            }
            Ok(()) = downloads.changed(), if deadline.is_some() => {
                if stream.push(ResourceType::ExtensionConfig).await.is_err() { break; }
            }
            () = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                if stream.push(ResourceType::ExtensionConfig).await.is_err() { break; }
            }
            () = stream.tx.closed() => break,
        }
    }
}

impl SotwStream {
    async fn on_request(&mut self, request: DiscoveryRequest) -> Result<(), Closed> {
        if self.identity.is_none() {
            let identity = identify(request.node.as_ref());
            if let Some(problem) = &identity.problem {
                tracing::warn!("{problem}; it is sent nothing");
            }
            self.context.connection.identify(
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
        if !kind.is_wildcard() && request.resource_names.is_empty() {
            // Envoy dropped its last watch of this type (the last EDS cluster went away). This
            // holds even when the request's nonce is stale: Envoy ignores responses for a type
            // nobody watches, so the response it did not answer is never ACKed. Nothing is sent
            // while no name is watched, and a later subscription is answered afresh.
            *subscription = Subscription::default();
            self.context.connection.unsubscribed(kind);
            return Ok(());
        }
        let mut warmup_done = false;
        if request.response_nonce.is_empty() {
            if kind == ResourceType::ExtensionConfig && !request.version_info.is_empty() {
                // A reconnecting Envoy runs a filter config; its version names the module.
                self.gate.has(module_of_version(&request.version_info));
            }
        } else if subscription.nonce.is_none() {
            // Nothing outstanding since this type was (re)subscribed: the nonce answers a
            // response from before, and the request is a new subscription.
        } else {
            if subscription.nonce.as_deref() != Some(request.response_nonce.as_str()) {
                // Stale: answers a response that a later one replaced.
                return Ok(());
            }
            let version = subscription.sent_version.clone().unwrap_or_default();
            match &request.error_detail {
                Some(error) => self
                    .context
                    .connection
                    .nacked(kind, &version, &error.message),
                None => {
                    let revision = (kind == ResourceType::ExtensionConfig)
                        .then_some(subscription.sent_revision.as_str());
                    if kind == ResourceType::ExtensionConfig {
                        self.gate
                            .has(subscription.sent.first().and_then(|r| r.module.as_deref()));
                    }
                    self.context.connection.acked(kind, &version, revision);
                }
            }
            warmup_done = kind == ResourceType::ExtensionConfig && self.gate.answered();
        }
        subscription.names = request.resource_names.iter().cloned().collect();
        if request.response_nonce.is_empty() && !request.version_info.is_empty() {
            subscription.reported = Some(request.version_info);
        }
        self.push(kind).await?;
        if warmup_done {
            // The switch is answered: the warm-up listener goes.
            self.push(ResourceType::Listener).await?;
        }
        Ok(())
    }

    async fn push_all(&mut self) -> Result<(), Closed> {
        let kinds: Vec<ResourceType> = self.subscriptions.keys().copied().collect();
        for kind in kinds {
            self.push(kind).await?;
        }
        Ok(())
    }

    /// Sends `kind`'s current set when its version differs from the last sent (or, before anything
    /// was sent, from the version a reconnecting Envoy reported).
    async fn push(&mut self, kind: ResourceType) -> Result<(), Closed> {
        let Some(identity) = &self.identity else {
            return Ok(());
        };
        let Some(subscription) = self.subscriptions.get(&kind) else {
            return Ok(());
        };
        if !kind.is_wildcard() && subscription.names.is_empty() {
            return Ok(());
        }
        let names = (!kind.is_wildcard()).then_some(&subscription.names);
        let catalog = self.context.catalog.borrow().clone();
        let Some((mut resources, revision)) = view(&catalog, identity, kind, names) else {
            return Ok(());
        };
        if kind == ResourceType::Listener
            && let Some(warming) = self.gate.warming()
            && catalog.module.as_ref().is_some_and(|m| m.sha256 == warming)
            && let Some(gateway) = identity
                .gateway
                .as_ref()
                .and_then(|g| catalog.gateways.get(g))
        {
            resources.push(gateway.module_warmup.clone());
        }
        let version = set_version(kind, &resources);
        let subscription = self.subscriptions.entry(kind).or_default();
        if subscription.sent_version.as_deref() == Some(version.as_str()) {
            return Ok(());
        }
        if subscription.sent_version.is_none()
            && subscription.reported.as_deref() == Some(version.as_str())
        {
            // A reconnecting Envoy already runs exactly this: nothing to send.
            subscription.sent_version = Some(version.clone());
            subscription.sent = resources;
            subscription.sent_revision = revision;
            let acked_revision = (kind == ResourceType::ExtensionConfig)
                .then_some(subscription.sent_revision.as_str());
            self.context
                .connection
                .settled(kind, &version, acked_revision);
            return Ok(());
        }
        if kind == ResourceType::ExtensionConfig
            && let Some(module) = resources.first().and_then(|r| r.module.clone())
        {
            let downloaded = self
                .context
                .peer
                .and_then(|peer| self.context.modules.downloaded(peer, &module));
            match self.gate.check(&module, downloaded) {
                GateDecision::Send => {}
                GateDecision::Hold => return Ok(()),
                GateDecision::StartWarmup => {
                    tracing::info!(node = %identity.node, %module,
                        "bringing the new module into the Envoy's cache before switching to it");
                    return Box::pin(self.push(ResourceType::Listener)).await;
                }
            }
        }
        let Some(identity) = &self.identity else {
            return Ok(());
        };
        let Some(subscription) = self.subscriptions.get_mut(&kind) else {
            return Ok(());
        };
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
        self.context.connection.sent(kind, &version);
        tracing::debug!(node = %identity.node, r#type = kind.short(), %version,
            resources = response.resources.len(), "sending");
        self.tx.send(Ok(response)).await.map_err(|_| Closed)
    }
}
