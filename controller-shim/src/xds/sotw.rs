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

use envoy_types::pb::envoy::config::core::v3::Node as EnvoyNode;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::ads::{Closed, Next, Pushed, Shared, Variant};
use super::catalog::{Resource, ResourceType};
use super::stream::{GateDecision, module_of_version, set_version};

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

/// The state-of-the-world variant of the ADS loop ([`super::ads::run`]).
#[derive(Debug, Default)]
pub struct Sotw {
    subscriptions: BTreeMap<ResourceType, Subscription>,
}

impl Variant for Sotw {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    const PROTOCOL: &'static str = "state of the world";

    fn node(request: &DiscoveryRequest) -> Option<&EnvoyNode> {
        request.node.as_ref()
    }

    fn type_url(request: &DiscoveryRequest) -> &str {
        &request.type_url
    }

    fn subscribed(&self) -> Vec<ResourceType> {
        self.subscriptions.keys().copied().collect()
    }

    fn on_request(
        &mut self,
        shared: &mut Shared<DiscoveryResponse>,
        kind: ResourceType,
        request: DiscoveryRequest,
    ) -> Next {
        let subscription = self.subscriptions.entry(kind).or_default();
        if !kind.is_wildcard() && request.resource_names.is_empty() {
            // Envoy dropped its last watch of this type (the last EDS cluster went away). This
            // holds even when the request's nonce is stale: Envoy ignores responses for a type
            // nobody watches, so the response it did not answer is never ACKed. Nothing is sent
            // while no name is watched, and a later subscription is answered afresh.
            *subscription = Subscription::default();
            shared.context.connection.unsubscribed(kind);
            return Next::Nothing;
        }
        let mut warmup_done = false;
        if request.response_nonce.is_empty() {
            if kind == ResourceType::ExtensionConfig && !request.version_info.is_empty() {
                // A reconnecting Envoy runs a filter config; its version names the module.
                shared.gate.has(module_of_version(&request.version_info));
            }
        } else if subscription.nonce.is_none() {
            // Nothing outstanding since this type was (re)subscribed: the nonce answers a
            // response from before, and the request is a new subscription.
        } else {
            if subscription.nonce.as_deref() != Some(request.response_nonce.as_str()) {
                // Stale: answers a response that a later one replaced.
                return Next::Nothing;
            }
            let version = subscription.sent_version.clone().unwrap_or_default();
            match &request.error_detail {
                Some(error) => shared
                    .context
                    .connection
                    .nacked(kind, &version, &error.message),
                None => {
                    let revision = (kind == ResourceType::ExtensionConfig)
                        .then_some(subscription.sent_revision.as_str());
                    if kind == ResourceType::ExtensionConfig {
                        shared
                            .gate
                            .has(subscription.sent.first().and_then(|r| r.module.as_deref()));
                    }
                    shared.context.connection.acked(kind, &version, revision);
                }
            }
            warmup_done = kind == ResourceType::ExtensionConfig && shared.gate.answered();
        }
        subscription.names = request.resource_names.iter().cloned().collect();
        if request.response_nonce.is_empty() && !request.version_info.is_empty() {
            subscription.reported = Some(request.version_info);
        }
        Next::Push { warmup_done }
    }

    /// Sends `kind`'s current set when its version differs from the last sent (or, before anything
    /// was sent, from the version a reconnecting Envoy reported).
    async fn push(
        &mut self,
        shared: &mut Shared<DiscoveryResponse>,
        kind: ResourceType,
    ) -> Result<Pushed, Closed> {
        let Some(subscription) = self.subscriptions.get_mut(&kind) else {
            return Ok(Pushed::Done);
        };
        if !kind.is_wildcard() && subscription.names.is_empty() {
            return Ok(Pushed::Done);
        }
        let names = (!kind.is_wildcard()).then_some(&subscription.names);
        let Some((resources, revision)) = shared.current(kind, names) else {
            return Ok(Pushed::Done);
        };
        let version = set_version(kind, &resources);
        if subscription.sent_version.as_deref() == Some(version.as_str()) {
            return Ok(Pushed::Done);
        }
        if subscription.sent_version.is_none()
            && subscription.reported.as_deref() == Some(version.as_str())
        {
            // A reconnecting Envoy already runs exactly this: nothing to send.
            let acked_revision =
                (kind == ResourceType::ExtensionConfig).then_some(revision.as_str());
            shared
                .context
                .connection
                .settled(kind, &version, acked_revision);
            subscription.sent_version = Some(version);
            subscription.sent = resources;
            subscription.sent_revision = revision;
            return Ok(Pushed::Done);
        }
        match shared.module_gate(kind, &resources) {
            GateDecision::Send => {}
            GateDecision::Hold => return Ok(Pushed::Done),
            GateDecision::StartWarmup => return Ok(Pushed::WarmupFirst),
        }
        let nonce = shared.next_nonce();
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
        shared.context.connection.sent(kind, &version);
        tracing::debug!(node = %shared.node(), r#type = kind.short(), %version,
            resources = response.resources.len(), "sending");
        shared.send(response).await?;
        Ok(Pushed::Done)
    }
}
