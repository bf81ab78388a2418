//! The resolver's output: what to push to each proxy and what status to write on each object.

use std::collections::BTreeMap;

use engine::PluginConfig;

use crate::api::{
    GatewayClassStatus, GatewayStatus, ListenerSetStatus, ObjectMeta, RouteStatus, Time,
};
use crate::kinds::Kind;

/// How this controller identifies itself, and the clock the resolver stamps conditions with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// GatewayClasses with this `spec.controllerName` are ours; written into route status parents.
    pub controller_name: String,
    /// `lastTransitionTime` for conditions whose status changes (or that are new). Passed in, not
    /// read from the system clock, so `resolve` stays pure (and runs in a browser, where
    /// `jiff::Timestamp::now()` would panic: the page passes JavaScript's time); conditions whose
    /// status did not change keep the time already recorded on the object. Defaults to the Unix
    /// epoch.
    pub now: Time,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            controller_name: "gateway-wasm.dev/controller-shim".to_owned(),
            now: Time(crate::api::jiff::Timestamp::UNIX_EPOCH),
        }
    }
}

/// `namespace/name` (namespace empty for cluster-scoped objects).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    /// The key of an object (missing namespace or name read as empty).
    pub fn of(meta: &ObjectMeta) -> ObjectKey {
        ObjectKey {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// Everything the resolver decided for one snapshot.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// One entry per Gateway whose class is ours (accepted or not).
    pub gateways: Vec<GatewayResult>,
    /// Status for every route (HTTPRoute, GRPCRoute) that references at least one of our
    /// Gateways (only the `parents[]` entries this controller owns), sorted by `namespace/name`
    /// then kind.
    pub routes: Vec<RouteStatusUpdate>,
    pub gateway_classes: Vec<ClassStatusUpdate>,
    pub listener_sets: Vec<ListenerSetStatusUpdate>,
}

/// The data plane configuration and status of one Gateway.
#[derive(Debug, Clone)]
pub struct GatewayResult {
    pub gateway: ObjectKey,
    pub generation: Option<i64>,
    /// The document pushed to the filter. Backend keys and upstream names are `namespace/service:port`;
    /// host-specific delivery (Envoy clusters, Kong targets) maps them to its own names.
    pub config: PluginConfig,
    /// Every valid backend the config references, keyed like `config.backends`.
    pub backends: BTreeMap<String, BackendTarget>,
    /// TLS material per HTTPS listener name (certificateRefs that resolved).
    pub tls: BTreeMap<String, Vec<TlsCertificate>>,
    pub status: GatewayStatus,
}

/// Where a backend key leads: the Service port and the endpoints behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendTarget {
    pub namespace: String,
    pub service: String,
    /// The Service port the backendRef named.
    pub port: u16,
    /// The protocol to speak to the backend, as a KEP-3726 `appProtocol` name
    /// (`kubernetes.io/h2c`, `kubernetes.io/ws`, …): the Service port's `appProtocol`, or
    /// `kubernetes.io/h2c` for the backends of GRPCRoutes (keys starting with `grpc:`), which
    /// need HTTP/2 whatever the port says ("Implementations MAY infer the protocol from the Route
    /// type referring to the backend Service").
    pub app_protocol: Option<String>,
    /// Ready endpoint addresses and target ports from EndpointSlices; empty when none are known
    /// (the proxy then uses the Service's cluster DNS name, `service.namespace.svc:port`).
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
}

/// A certificate chain and key in PEM, from a `kubernetes.io/tls` Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsCertificate {
    pub secret: ObjectKey,
    pub certificate_pem: String,
    pub private_key_pem: String,
}

#[derive(Debug, Clone)]
pub struct RouteStatusUpdate {
    /// [`Kind::HttpRoute`] or [`Kind::GrpcRoute`].
    pub kind: Kind,
    pub route: ObjectKey,
    pub generation: Option<i64>,
    /// Gateway API `RouteStatus`, the same for every route kind.
    pub status: RouteStatus,
}

#[derive(Debug, Clone)]
pub struct ClassStatusUpdate {
    pub class: String,
    pub generation: Option<i64>,
    pub status: GatewayClassStatus,
}

#[derive(Debug, Clone)]
pub struct ListenerSetStatusUpdate {
    pub listener_set: ObjectKey,
    pub generation: Option<i64>,
    pub status: ListenerSetStatus,
}
