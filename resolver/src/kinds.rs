//! The kinds the shim reads and writes, in one table.
//!
//! The Kubernetes source spawns one watcher per [`Kind::ALL`] entry (an exhaustive `match`, so a new
//! kind cannot be forgotten), the status writer patches the kinds with [`Kind::status_written`], and a
//! test checks that `examples/kubernetes/rbac.yaml` grants exactly the verbs [`Kind::rbac`] lists.

use std::borrow::Cow;

use gateway_api::experimental::gatewayclasses::GatewayClass;
use gateway_api::experimental::gateways::Gateway;
use gateway_api::experimental::httproutes::HttpRoute;
use gateway_api::experimental::listenersets::ListenerSet;
use gateway_api::experimental::referencegrants::ReferenceGrant;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Resource;

/// One kind of object the shim watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    GatewayClass,
    Gateway,
    ListenerSet,
    HttpRoute,
    ReferenceGrant,
    Service,
    EndpointSlice,
    Namespace,
    Secret,
}

/// An API resource and the verbs the shim needs on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbacRule {
    /// API group (`""` for core).
    pub group: Cow<'static, str>,
    /// Plural resource name, with `/status` for the status subresource.
    pub resource: String,
    pub verbs: &'static [&'static str],
    /// Granted in the lease namespace only (a Role), not cluster-wide.
    pub namespaced_role: bool,
}

const READ: &[&str] = &["get", "list", "watch"];
const STATUS: &[&str] = &["patch"];
/// The Lease loop reads, creates and renews (PUT with resourceVersion) one Lease.
pub const LEASE_VERBS: &[&str] = &["get", "create", "update"];

fn rule<K: Resource<DynamicType = ()>>(
    suffix: &str,
    verbs: &'static [&'static str],
    namespaced_role: bool,
) -> RbacRule {
    RbacRule {
        group: Cow::Owned(K::group(&()).into_owned()),
        resource: format!("{}{suffix}", K::plural(&())),
        verbs,
        namespaced_role,
    }
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::GatewayClass,
        Kind::Gateway,
        Kind::ListenerSet,
        Kind::HttpRoute,
        Kind::ReferenceGrant,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Namespace,
        Kind::Secret,
    ];

    /// The `kind` field of the object.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::GatewayClass => "GatewayClass",
            Kind::Gateway => "Gateway",
            Kind::ListenerSet => "ListenerSet",
            Kind::HttpRoute => "HTTPRoute",
            Kind::ReferenceGrant => "ReferenceGrant",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Namespace => "Namespace",
            Kind::Secret => "Secret",
        }
    }

    /// Whether the shim writes this kind's status subresource.
    pub fn status_written(self) -> bool {
        matches!(
            self,
            Kind::GatewayClass | Kind::Gateway | Kind::ListenerSet | Kind::HttpRoute
        )
    }

    fn read_rule(self) -> RbacRule {
        match self {
            Kind::GatewayClass => rule::<GatewayClass>("", READ, false),
            Kind::Gateway => rule::<Gateway>("", READ, false),
            Kind::ListenerSet => rule::<ListenerSet>("", READ, false),
            Kind::HttpRoute => rule::<HttpRoute>("", READ, false),
            Kind::ReferenceGrant => rule::<ReferenceGrant>("", READ, false),
            Kind::Service => rule::<Service>("", READ, false),
            Kind::EndpointSlice => rule::<EndpointSlice>("", READ, false),
            Kind::Namespace => rule::<Namespace>("", READ, false),
            Kind::Secret => rule::<Secret>("", READ, false),
        }
    }

    fn status_rule(self) -> Option<RbacRule> {
        Some(match self {
            Kind::GatewayClass => rule::<GatewayClass>("/status", STATUS, false),
            Kind::Gateway => rule::<Gateway>("/status", STATUS, false),
            Kind::ListenerSet => rule::<ListenerSet>("/status", STATUS, false),
            Kind::HttpRoute => rule::<HttpRoute>("/status", STATUS, false),
            _ => return None,
        })
    }

    /// What the shim needs on this kind: read access, and `patch` on `/status` when it writes status.
    pub fn rbac(self) -> Vec<RbacRule> {
        let mut rules = vec![self.read_rule()];
        rules.extend(self.status_rule());
        rules
    }
}

/// Every permission the shim needs: all kinds' rules plus the Lease (in the lease namespace).
pub fn required_rbac() -> Vec<RbacRule> {
    let mut rules: Vec<RbacRule> = Kind::ALL.into_iter().flat_map(Kind::rbac).collect();
    rules.push(rule::<Lease>("", LEASE_VERBS, true));
    rules
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
