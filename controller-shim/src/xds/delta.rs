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

use envoy_types::pb::envoy::config::core::v3::Node as EnvoyNode;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as DeltaResource,
};

use super::ads::{Closed, Next, Pushed, Shared, Variant};
use super::catalog::ResourceType;
use super::stream::{GateDecision, module_of_version, set_version};

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

/// The incremental variant of the ADS loop ([`super::ads::run`]).
#[derive(Debug, Default)]
pub struct Delta {
    subscriptions: BTreeMap<ResourceType, Subscription>,
}

impl Variant for Delta {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
    const PROTOCOL: &'static str = "delta";

    fn node(request: &DeltaDiscoveryRequest) -> Option<&EnvoyNode> {
        request.node.as_ref()
    }

    fn type_url(request: &DeltaDiscoveryRequest) -> &str {
        &request.type_url
    }

    fn subscribed(&self) -> Vec<ResourceType> {
        self.subscriptions.keys().copied().collect()
    }

    fn on_request(
        &mut self,
        shared: &mut Shared<DeltaDiscoveryResponse>,
        kind: ResourceType,
        request: DeltaDiscoveryRequest,
    ) -> Next {
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
                shared.gate.has(module);
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
            shared.context.connection.unsubscribed(kind);
            return Next::Nothing;
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
                    shared
                        .context
                        .connection
                        .nacked(kind, &flight.system_version, &error.message);
                }
                None => {
                    if kind == ResourceType::ExtensionConfig {
                        shared.gate.has(flight.module.as_deref());
                    }
                    let revision =
                        (kind == ResourceType::ExtensionConfig).then_some(flight.revision.as_str());
                    shared
                        .context
                        .connection
                        .acked(kind, &flight.system_version, revision);
                }
            }
            warmup_done = kind == ResourceType::ExtensionConfig && shared.gate.answered();
        }
        Next::Push { warmup_done }
    }

    /// Sends what differs from what the Envoy has, and what it has that is gone.
    async fn push(
        &mut self,
        shared: &mut Shared<DeltaDiscoveryResponse>,
        kind: ResourceType,
    ) -> Result<Pushed, Closed> {
        let Some(subscription) = self.subscriptions.get_mut(&kind) else {
            return Ok(Pushed::Done);
        };
        let names = (!subscription.wildcard).then_some(&subscription.names);
        let Some((resources, revision)) = shared.current(kind, names) else {
            return Ok(Pushed::Done);
        };
        let config_changed = resources
            .first()
            .is_some_and(|r| subscription.known.get(&r.name) != Some(&r.version));
        if config_changed {
            match shared.module_gate(kind, &resources) {
                GateDecision::Send => {}
                GateDecision::Hold => return Ok(Pushed::Done),
                GateDecision::StartWarmup => return Ok(Pushed::WarmupFirst),
            }
        }
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
                shared
                    .context
                    .connection
                    .settled(kind, &system_version, acked_revision);
            }
            return Ok(Pushed::Done);
        }
        let nonce = shared.next_nonce();
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
        shared.context.connection.sent(kind, &system_version);
        tracing::debug!(node = %shared.node(), r#type = kind.short(), version = %system_version,
            changed = response.resources.len(), removed = response.removed_resources.len(), "sending");
        shared.send(response).await?;
        Ok(Pushed::Done)
    }
}
