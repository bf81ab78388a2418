//! The table of kinds: every Kubernetes object kind the shim reads, declared once.
//!
//! **To add a kind, add one row to the `kinds!` invocation below** (and re-export its type in
//! [`crate::api`] if it is new there). Everything else is derived from the rows:
//! - [`Kind`], with [`Kind::ALL`], its `kind` string, and its group, version, plural and scope taken
//!   from the Rust type's `kube_core::Resource` implementation ([`Kind::api_resource`],
//!   [`Kind::namespaced`]);
//! - [`Object`], one variant per kind, and the [`Snapshot`] the resolver reads,
//!   one list per kind;
//! - the manifest loader ([`Kind::from_manifest`]: the canonical group and kind plus the row's
//!   aliases);
//! - in the controller-shim, through [`Kind::visit`]: one Kubernetes watcher per kind (with the row's
//!   field selector), the index of watched objects, the status writer (the kinds whose
//!   [`StatusWrite`] is not `None`, and the section of the directory mode's status report);
//! - the RBAC the shim needs ([`Kind::rbac`]: `get`, `list`, `watch` on every kind, `patch` on the
//!   `/status` of the kinds whose status it writes), which a test compares with
//!   `examples/kubernetes/base/rbac.yaml`.
//!
//! A row reads: `Variant(type) { kind, snapshot field, status, manifest aliases, watch field
//! selector }`, with doc comments that become the variant's and the snapshot field's.

#[macro_use]
mod macros;

use std::fmt;

use kube_core::Resource;
use kube_core::discovery::ApiResource;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{self, GATEWAY_GROUP, GATEWAY_X_GROUP};
use crate::resolution::ObjectKey;

kinds! {
    /// GatewayClasses (only those whose `controllerName` is ours matter).
    GatewayClass(api::GatewayClass) {
        kind: "GatewayClass",
        snapshot: gateway_classes,
        status: StatusWrite::Whole { report: "gatewayClasses" },
        manifest_aliases: [(GATEWAY_X_GROUP, "GatewayClass")],
        watch_fields: None,
    },
    Gateway(api::Gateway) {
        kind: "Gateway",
        snapshot: gateways,
        status: StatusWrite::Whole { report: "gateways" },
        manifest_aliases: [],
        watch_fields: None,
    },
    /// ListenerSets (the experimental `XListenerSet` of `gateway.networking.x-k8s.io` has the same
    /// shape).
    ListenerSet(api::ListenerSet) {
        kind: "ListenerSet",
        snapshot: listener_sets,
        status: StatusWrite::Whole { report: "listenerSets" },
        manifest_aliases: [
            (GATEWAY_GROUP, "XListenerSet"),
            (GATEWAY_X_GROUP, "ListenerSet"),
            (GATEWAY_X_GROUP, "XListenerSet"),
        ],
        watch_fields: None,
    },
    HttpRoute(api::HttpRoute) {
        kind: "HTTPRoute",
        snapshot: http_routes,
        status: StatusWrite::RouteParents { report: "httpRoutes" },
        manifest_aliases: [],
        watch_fields: None,
    },
    GrpcRoute(api::GrpcRoute) {
        kind: "GRPCRoute",
        snapshot: grpc_routes,
        status: StatusWrite::RouteParents { report: "grpcRoutes" },
        manifest_aliases: [],
        watch_fields: None,
    },
    ReferenceGrant(api::ReferenceGrant) {
        kind: "ReferenceGrant",
        snapshot: reference_grants,
        status: StatusWrite::None,
        manifest_aliases: [],
        watch_fields: None,
    },
    Service(api::Service) {
        kind: "Service",
        snapshot: services,
        status: StatusWrite::None,
        manifest_aliases: [],
        watch_fields: None,
    },
    EndpointSlice(api::EndpointSlice) {
        kind: "EndpointSlice",
        snapshot: endpoint_slices,
        status: StatusWrite::None,
        manifest_aliases: [],
        watch_fields: None,
    },
    /// For `allowedRoutes.namespaces.from: Selector` (labels).
    Namespace(api::Namespace) {
        kind: "Namespace",
        snapshot: namespaces,
        status: StatusWrite::None,
        manifest_aliases: [],
        watch_fields: None,
    },
    /// TLS certificates referenced by HTTPS listeners (the watcher lists only `kubernetes.io/tls`
    /// Secrets, the only ones the resolver reads).
    Secret(api::Secret) {
        kind: "Secret",
        snapshot: secrets,
        status: StatusWrite::None,
        manifest_aliases: [],
        watch_fields: Some("type=kubernetes.io/tls"),
    },
}

/// Whether and how the shim writes a kind's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusWrite {
    /// Read only.
    None,
    /// The whole `status` is this controller's (GatewayClass, Gateway, ListenerSet). `report` names
    /// the kind's section in the directory mode's JSON status report.
    Whole { report: &'static str },
    /// A route: `status.parents[]` is shared with other controllers, and only the entries carrying
    /// our `controllerName` are ours to write.
    RouteParents { report: &'static str },
}

impl StatusWrite {
    /// The section of the JSON status report, for kinds whose status is written.
    pub fn report_section(self) -> Option<&'static str> {
        match self {
            StatusWrite::None => None,
            StatusWrite::Whole { report } | StatusWrite::RouteParents { report } => Some(report),
        }
    }
}

/// Whether a `kube_core::Resource::Scope` is namespaced.
pub trait Scope {
    const NAMESPACED: bool;
}

impl Scope for kube_core::NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl Scope for kube_core::ClusterResourceScope {
    const NAMESPACED: bool = false;
}

/// The Rust type of a kind in the table: what generic code ([`KindVisitor`]) may rely on.
pub trait KindType:
    Resource<DynamicType = (), Scope: Scope>
    + Clone
    + fmt::Debug
    + PartialEq
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// This type's row.
    const KIND: Kind;
    fn into_object(self) -> Object;
    /// This kind's list in a snapshot.
    fn list(snapshot: &Snapshot) -> &[Self];
}

/// Generic code run with the Rust type of one kind ([`Kind::visit`]): how the shim spawns a typed
/// watcher per kind, and how the manifest loader deserializes a document into its kind.
pub trait KindVisitor {
    type Output;
    fn visit<K: KindType>(self) -> Self::Output;
}

/// An API resource and the verbs the shim needs on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbacRule {
    /// API group (`""` for core).
    pub group: String,
    /// Plural resource name, with `/status` for the status subresource.
    pub resource: String,
    pub verbs: &'static [&'static str],
    /// Granted in the lease namespace only (a Role), not cluster-wide.
    pub namespaced_role: bool,
}

/// What a watcher needs: the initial list, the watch, and `get`.
pub const READ_VERBS: &[&str] = &["get", "list", "watch"];
/// Status is written with a JSON merge patch on the status subresource.
pub const STATUS_VERBS: &[&str] = &["patch"];

impl RbacRule {
    /// `verbs` on `K`'s resource (`suffix`: `""` or `"/status"`).
    pub fn of<K: Resource<DynamicType = ()>>(
        suffix: &str,
        verbs: &'static [&'static str],
        namespaced_role: bool,
    ) -> RbacRule {
        RbacRule {
            group: K::group(&()).into_owned(),
            resource: format!("{}{suffix}", K::plural(&())),
            verbs,
            namespaced_role,
        }
    }
}

struct ApiResourceOf;

impl KindVisitor for ApiResourceOf {
    type Output = ApiResource;
    fn visit<K: KindType>(self) -> ApiResource {
        ApiResource::erase::<K>(&())
    }
}

struct NamespacedOf;

impl KindVisitor for NamespacedOf {
    type Output = bool;
    fn visit<K: KindType>(self) -> bool {
        <K::Scope as Scope>::NAMESPACED
    }
}

struct RbacOf(StatusWrite);

impl KindVisitor for RbacOf {
    type Output = Vec<RbacRule>;
    fn visit<K: KindType>(self) -> Vec<RbacRule> {
        let mut rules = vec![RbacRule::of::<K>("", READ_VERBS, false)];
        if self.0 != StatusWrite::None {
            rules.push(RbacRule::of::<K>("/status", STATUS_VERBS, false));
        }
        rules
    }
}

impl Kind {
    /// Group, version, `apiVersion`, kind and plural, from the Rust type.
    pub fn api_resource(self) -> ApiResource {
        self.visit(ApiResourceOf)
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        self.visit(NamespacedOf)
    }

    /// Whether the shim writes this kind's status subresource.
    pub fn status_written(self) -> bool {
        self.status() != StatusWrite::None
    }

    /// What the shim needs on this kind: read access, and `patch` on `/status` when it writes status.
    pub fn rbac(self) -> Vec<RbacRule> {
        self.visit(RbacOf(self.status()))
    }

    /// The kind a manifest with this `apiVersion` group and `kind` holds, if the shim reads it.
    pub fn from_manifest(group: &str, kind: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| {
            (kind == k.as_str() && group == k.api_resource().group)
                || k.manifest_aliases().contains(&(group, kind))
        })
    }
}

impl Object {
    /// Every object of a snapshot, kind by kind.
    pub fn all_of(snapshot: &Snapshot) -> Vec<Object> {
        Kind::ALL
            .into_iter()
            .flat_map(|kind| snapshot.objects_of(kind))
            .collect()
    }

    /// `namespace/name` (namespace empty for cluster-scoped objects).
    pub fn key(&self) -> ObjectKey {
        ObjectKey::of(self.metadata())
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Snapshot {
    /// The objects of one kind (copies).
    pub fn objects_of(&self, kind: Kind) -> Vec<Object> {
        kind.visit(ObjectsOf(self))
    }

    /// The keys of one kind's objects, without copying the objects.
    pub fn keys_of(&self, kind: Kind) -> Vec<ObjectKey> {
        kind.visit(KeysOf(self))
    }

    /// `(route kind, route, gateway)` for every HTTPRoute and GRPCRoute parentRef naming a Gateway
    /// that is not in the snapshot. No controller writes status for such a parent (a controller only
    /// reports on parents of its own Gateways), so the shim logs these and the playground draws them.
    pub fn routes_to_missing_gateways(&self) -> Vec<(&'static str, ObjectKey, ObjectKey)> {
        /// `(namespace, name)` of every Gateway parentRef of a route of either kind (their
        /// generated parentRef types share field names).
        macro_rules! parent_gateways {
            ($route:expr) => {
                $route
                    .spec
                    .parent_refs
                    .iter()
                    .flatten()
                    .filter(|p| p.kind.as_deref().unwrap_or("Gateway") == "Gateway")
                    .map(|p| (p.namespace.clone(), p.name.clone()))
                    .collect::<Vec<_>>()
            };
        }
        let gateways: std::collections::BTreeSet<ObjectKey> =
            self.keys_of(Kind::Gateway).into_iter().collect();
        let routes = self
            .http_routes
            .iter()
            .map(|r| ("HTTPRoute", &r.metadata, parent_gateways!(r)))
            .chain(
                self.grpc_routes
                    .iter()
                    .map(|r| ("GRPCRoute", &r.metadata, parent_gateways!(r))),
            );
        let mut missing = Vec::new();
        for (kind, meta, parents) in routes {
            let key = ObjectKey::of(meta);
            for (namespace, name) in parents {
                let target = ObjectKey {
                    namespace: namespace.unwrap_or_else(|| key.namespace.clone()),
                    name,
                };
                if !gateways.contains(&target) {
                    missing.push((kind, key.clone(), target));
                }
            }
        }
        missing
    }
}

struct ObjectsOf<'a>(&'a Snapshot);

impl KindVisitor for ObjectsOf<'_> {
    type Output = Vec<Object>;
    fn visit<K: KindType>(self) -> Vec<Object> {
        K::list(self.0)
            .iter()
            .cloned()
            .map(K::into_object)
            .collect()
    }
}

struct KeysOf<'a>(&'a Snapshot);

impl KindVisitor for KeysOf<'_> {
    type Output = Vec<ObjectKey>;
    fn visit<K: KindType>(self) -> Vec<ObjectKey> {
        K::list(self.0)
            .iter()
            .map(|o| ObjectKey::of(o.meta()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table's `kind` strings are the types' own: a row cannot name one type and another kind.
    #[test]
    fn kind_strings_match_the_types() {
        for kind in Kind::ALL {
            assert_eq!(kind.as_str(), kind.api_resource().kind, "{kind:?}");
        }
    }

    #[test]
    fn every_kind_and_alias_is_found_from_a_manifest() {
        for kind in Kind::ALL {
            let group = kind.api_resource().group;
            assert_eq!(Kind::from_manifest(&group, kind.as_str()), Some(kind));
            for (group, alias) in kind.manifest_aliases() {
                assert_eq!(Kind::from_manifest(group, alias), Some(kind));
            }
        }
        assert_eq!(Kind::from_manifest("", "ConfigMap"), None);
        // The group matters: a Service of another group is not ours.
        assert_eq!(Kind::from_manifest("example.com", "Service"), None);
    }

    #[test]
    fn scopes_come_from_the_types() {
        assert!(!Kind::GatewayClass.namespaced());
        assert!(!Kind::Namespace.namespaced());
        assert!(Kind::HttpRoute.namespaced());
        assert!(Kind::Secret.namespaced());
    }

    #[test]
    fn objects_round_trip_through_a_snapshot() {
        let mut snapshot = Snapshot::default();
        let mut service = api::Service::default();
        service.metadata.name = Some("web".into());
        let mut class = api::GatewayClass::default();
        class.metadata.name = Some("ours".into());
        snapshot.push(Object::Service(service));
        snapshot.push(Object::GatewayClass(class));
        let objects = Object::all_of(&snapshot);
        assert_eq!(
            objects.iter().map(Object::kind).collect::<Vec<_>>(),
            [Kind::GatewayClass, Kind::Service]
        );
        assert_eq!(objects[1].key().to_string(), "web");
        assert_eq!(snapshot.keys_of(Kind::Service), [objects[1].key()]);
        assert!(snapshot.objects_of(Kind::Gateway).is_empty());
    }
}
