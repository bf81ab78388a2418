//! The incremental ADS stream (`DeltaAggregatedResources`).
//!
//! Per type the server tracks what the Envoy has (`initial_resource_versions` on reconnect, then
//! every response it ACKed) and its subscription (wildcard for LDS and CDS unless it names
//! resources; `*` subscribes to everything, xDS protocol "How the client specifies what resources to
//! return"). A response carries only resources whose version differs from what the Envoy has, and
//! the names it has that no longer exist (`removed_resources`). On a NACK the Envoy keeps what it had,
//! so the server forgets the rejected versions as "had", and does not send them again until the
//! content changes (a NACKed extension config naming a module being downloaded is sent again).
//! When the last name of a non-wildcard type is unsubscribed, the type is forgotten, as on the
//! state-of-the-world stream: nothing of it is outstanding, and a later subscription starts afresh.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as DeltaResource,
};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::catalog::ResourceType;
use super::stream::{
    GateDecision, Identity, ModuleGate, StreamContext, identify, module_of_version, set_version,
    view,
};

#[derive(Debug)]
struct InFlight {
    nonce: String,
    /// What the Envoy had before this response (restored on a NACK).
    before: BTreeMap<String, String>,
    /// `(name, version)` sent.
    sent: Vec<(String, String)>,
    system_version: String,
    revision: String,
    module: Option<String>,
}

#[derive(Debug, Default)]
struct Subscription {
    wildcard: bool,
    names: BTreeSet<String>,
    /// Name → version the Envoy has (or is being sent).
    known: BTreeMap<String, String>,
    in_flight: Option<InFlight>,
    /// Versions the Envoy refused; not sent again.
    rejected: BTreeMap<String, String>,
}

struct DeltaStream {
    context: StreamContext,
    tx: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
    identity: Option<Identity>,
    subscriptions: BTreeMap<ResourceType, Subscription>,
    gate: ModuleGate,
    nonce: u64,
}

struct Closed;

/// Serves one stream until Envoy or the server closes it.
pub async fn run(
    mut requests: Streaming<DeltaDiscoveryRequest>,
    tx: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
    context: StreamContext,
) {
    let mut downloads = context.modules.subscribe_downloads();
    let mut stream = DeltaStream {
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

impl DeltaStream {
    async fn on_request(&mut self, request: DeltaDiscoveryRequest) -> Result<(), Closed> {
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
                protocol = "delta", "Envoy connected");
            self.identity = Some(identity);
        }
        let Some(kind) = ResourceType::from_type_url(&request.type_url) else {
            tracing::debug!(type_url = %request.type_url, "a type this server does not serve");
            return Ok(());
        };
        let first = !self.subscriptions.contains_key(&kind);
        let subscription = self.subscriptions.entry(kind).or_default();
        if first {
            subscription.known = request.initial_resource_versions.into_iter().collect();
            subscription.wildcard =
                kind.is_wildcard() && request.resource_names_subscribe.is_empty();
            if kind == ResourceType::ExtensionConfig && !subscription.known.is_empty() {
                // A reconnecting Envoy runs a filter config; its version names the module.
                let module = subscription
                    .known
                    .values()
                    .find_map(|version| module_of_version(version));
                self.gate.has(module);
            }
        }
        for name in request.resource_names_subscribe {
            if name == "*" {
                subscription.wildcard = true;
            } else {
                subscription.names.insert(name);
            }
        }
        for name in request.resource_names_unsubscribe {
            if name == "*" {
                subscription.wildcard = false;
            } else {
                subscription.names.remove(&name);
                subscription.known.remove(&name);
            }
        }
        if !subscription.wildcard && subscription.names.is_empty() {
            // Envoy dropped its last watch of this type (the last EDS cluster went away). As on
            // the state-of-the-world stream, nothing of the type is outstanding any more: a
            // response for names nobody watches may go unanswered (Envoy 1.40 happens to ACK
            // it), and a later subscription starts from nothing.
            *subscription = Subscription::default();
            self.context.connection.unsubscribed(kind);
            return Ok(());
        }
        let answered = subscription.in_flight.as_ref().is_some_and(|f| {
            !request.response_nonce.is_empty() && f.nonce == request.response_nonce
        });
        let mut warmup_done = false;
        if answered && let Some(flight) = subscription.in_flight.take() {
            match &request.error_detail {
                Some(error) => {
                    subscription.known = flight.before;
                    subscription.rejected.extend(flight.sent);
                    self.context
                        .connection
                        .nacked(kind, &flight.system_version, &error.message);
                }
                None => {
                    if kind == ResourceType::ExtensionConfig {
                        self.gate.has(flight.module.as_deref());
                    }
                    let revision =
                        (kind == ResourceType::ExtensionConfig).then_some(flight.revision.as_str());
                    self.context
                        .connection
                        .acked(kind, &flight.system_version, revision);
                }
            }
            warmup_done = kind == ResourceType::ExtensionConfig && self.gate.answered();
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

    /// Sends what differs from what the Envoy has, and what it has that is gone.
    async fn push(&mut self, kind: ResourceType) -> Result<(), Closed> {
        let Some(identity) = &self.identity else {
            return Ok(());
        };
        let Some(subscription) = self.subscriptions.get_mut(&kind) else {
            return Ok(());
        };
        let names = (!subscription.wildcard).then_some(&subscription.names);
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
        if kind == ResourceType::ExtensionConfig
            && let Some(module) = resources.first().and_then(|r| r.module.clone())
            && subscription.known.get(
                &resources
                    .first()
                    .map(|r| r.name.clone())
                    .unwrap_or_default(),
            ) != resources.first().map(|r| &r.version)
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
        // A new version of a rejected resource may be sent again.
        subscription.rejected.retain(|name, version| {
            resources
                .iter()
                .any(|r| &r.name == name && &r.version == version)
        });
        let changed: Vec<_> = resources
            .iter()
            .filter(|r| subscription.known.get(&r.name) != Some(&r.version))
            .filter(|r| subscription.rejected.get(&r.name) != Some(&r.version))
            .cloned()
            .collect();
        let present: BTreeSet<&str> = resources.iter().map(|r| r.name.as_str()).collect();
        let removed: Vec<String> = subscription
            .known
            .keys()
            .filter(|name| !present.contains(name.as_str()))
            .cloned()
            .collect();
        let system_version = set_version(kind, &resources);
        if changed.is_empty() && removed.is_empty() {
            if subscription.in_flight.is_none() && subscription.rejected.is_empty() {
                // Nothing to send and nothing pending: the Envoy has this set (every response was
                // ACKed, or it reported these versions when it reconnected).
                let acked_revision =
                    (kind == ResourceType::ExtensionConfig).then_some(revision.as_str());
                self.context
                    .connection
                    .settled(kind, &system_version, acked_revision);
            }
            return Ok(());
        }
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        let before = subscription.known.clone();
        for resource in &changed {
            subscription
                .known
                .insert(resource.name.clone(), resource.version.clone());
        }
        for name in &removed {
            subscription.known.remove(name);
        }
        let module = changed.iter().find_map(|r| r.module.clone());
        subscription.in_flight = Some(InFlight {
            nonce: nonce.clone(),
            before,
            sent: changed
                .iter()
                .map(|r| (r.name.clone(), r.version.clone()))
                .collect(),
            system_version: system_version.clone(),
            revision,
            module,
        });
        let response = DeltaDiscoveryResponse {
            system_version_info: system_version.clone(),
            resources: changed
                .iter()
                .map(|r| DeltaResource {
                    name: r.name.clone(),
                    version: r.version.clone(),
                    resource: Some(r.body.clone()),
                    ..DeltaResource::default()
                })
                .collect(),
            type_url: kind.type_url().to_owned(),
            removed_resources: removed,
            nonce,
            ..DeltaDiscoveryResponse::default()
        };
        self.context.connection.sent(kind, &system_version);
        tracing::debug!(node = %identity.node, r#type = kind.short(), version = %system_version,
            changed = response.resources.len(), removed = response.removed_resources.len(), "sending");
        self.tx.send(Ok(response)).await.map_err(|_| Closed)
    }
}
