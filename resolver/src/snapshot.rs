//! The resolver's input: every object it may look at, as one consistent snapshot.
//!
//! Gateway API kinds use the `gateway-api` crate's experimental-channel types: they are a superset of
//! the standard channel (HTTPRoute `retry`, for one), so objects from either channel deserialize.

use gateway_api::experimental::gatewayclasses::GatewayClass;
use gateway_api::experimental::gateways::Gateway;
use gateway_api::experimental::httproutes::HttpRoute;
use gateway_api::experimental::listenersets::ListenerSet;
use gateway_api::experimental::referencegrants::ReferenceGrant;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// Everything the resolver reads. Order inside each list does not matter.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub gateway_classes: Vec<GatewayClass>,
    pub gateways: Vec<Gateway>,
    pub listener_sets: Vec<ListenerSet>,
    pub http_routes: Vec<HttpRoute>,
    pub reference_grants: Vec<ReferenceGrant>,
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    /// For `allowedRoutes.namespaces.from: Selector` (labels).
    pub namespaces: Vec<Namespace>,
    /// TLS certificates referenced by HTTPS listeners.
    pub secrets: Vec<Secret>,
}
