//! The Kubernetes and Gateway API types the project uses, chosen in this one place.
//!
//! - Gateway API: the `gateway-api` crate's **experimental channel**. It is a superset of the standard
//!   channel (HTTPRoute `retry`, ListenerSet, for two), so objects written for either channel
//!   deserialize.
//! - Kubernetes: `k8s-openapi` with its `latest` feature (set in the workspace `Cargo.toml`).
//!
//! Every crate of the workspace imports these types from here (`gateway_resolver::api`, re-exported
//! as `controller_shim::api`), never from `gateway_api` or `k8s_openapi` directly, so moving to
//! another channel or API version is an edit of this file. The object kinds are re-exported at the
//! top level (`api::HttpRoute`); their nested types through the module of their kind
//! (`api::httproutes::HttpRouteRules`, `api::core::ServicePort`).

pub use gateway_api::experimental::{
    gatewayclasses, gateways, grpcroutes, httproutes, listenersets, referencegrants,
};

pub use gatewayclasses::{GatewayClass, GatewayClassSpec, GatewayClassStatus};
pub use gateways::{Gateway, GatewaySpec, GatewayStatus};
pub use grpcroutes::{GrpcRoute, GrpcRouteSpec, GrpcRouteStatus};
pub use httproutes::{HttpRoute, HttpRouteSpec, HttpRouteStatus};
pub use listenersets::{ListenerSet, ListenerSetSpec, ListenerSetStatus};
pub use referencegrants::{ReferenceGrant, ReferenceGrantSpec};

/// Gateway API `RouteStatus`, which every route kind inlines (`HTTPRouteStatus` and
/// `GRPCRouteStatus` are both `struct { RouteStatus }`). The generated HTTPRoute types stand for
/// it, for every kind: the JSON is the same, and a test in `resolve` pins that.
pub type RouteStatus = httproutes::HttpRouteStatus;
/// Gateway API `RouteParentStatus` (one `status.parents[]` entry), for every route kind.
pub type RouteParentStatus = httproutes::HttpRouteStatusParents;
/// Gateway API `ParentReference` as echoed in `status.parents[].parentRef`, for every route kind.
pub type RouteStatusParentRef = httproutes::HttpRouteStatusParentsParentRef;

/// `apps/v1`.
pub use k8s_openapi::api::apps::v1 as apps;
/// `coordination.k8s.io/v1` (the leader-election Lease).
pub use k8s_openapi::api::coordination::v1 as coordination;
/// The core group, `v1`.
pub use k8s_openapi::api::core::v1 as core;
/// `discovery.k8s.io/v1`.
pub use k8s_openapi::api::discovery::v1 as discovery;
/// `rbac.authorization.k8s.io/v1`.
pub use k8s_openapi::api::rbac::v1 as rbac;
/// `meta/v1`: ObjectMeta, Condition, Time.
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

pub use self::coordination::Lease;
pub use self::core::{Namespace, Secret, Service};
pub use self::discovery::EndpointSlice;
pub use self::meta::{Condition, ObjectMeta, Time};
pub use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
pub use k8s_openapi::{ByteString, jiff};

/// The Gateway API group. Spec (ParentReference, BackendObjectReference, ...): "When unspecified,
/// "gateway.networking.k8s.io" is inferred."
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
/// The group of the Gateway API's experimental-only resources (`XListenerSet`, ...).
pub const GATEWAY_X_GROUP: &str = "gateway.networking.x-k8s.io";

/// "EndpointSlices ... are associated with a Service by the `kubernetes.io/service-name` label."
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label the API server sets on every Namespace, holding its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
