//! The route kinds the resolver attaches, behind one view.
//!
//! HTTPRoute and GRPCRoute share everything attachment and status need — Gateway API
//! `CommonRouteSpec` (parentRefs), `hostnames` and `RouteStatus` — and differ in their rules. The
//! generated Rust types repeat the shared parts under different names, so this module reads
//! both into the same shapes ([`RouteObject`], [`ParentRef`]); the rules are converted per kind
//! ([`super::rules`], [`super::grpc_rules`]).

use crate::api::grpcroutes::GrpcRoute;
use crate::api::httproutes::HttpRoute;
use crate::api::meta::{Condition, ObjectMeta};
use crate::api::{GATEWAY_GROUP, RouteStatusParentRef};
use crate::kinds::Kind;

/// A route kind the resolver attaches. The order (HTTPRoute first) breaks the one tie the
/// HTTPRoute/GRPCRoute conflict rule leaves open ([`super::conflicts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum RouteKind {
    #[default]
    Http,
    Grpc,
}

impl RouteKind {
    /// Every route kind, in the order `supportedKinds` lists them.
    pub const ALL: [RouteKind; 2] = [RouteKind::Http, RouteKind::Grpc];

    /// The object's `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
        }
    }

    /// The kind's row in the table of kinds.
    pub fn kind(self) -> Kind {
        match self {
            RouteKind::Http => Kind::HttpRoute,
            RouteKind::Grpc => Kind::GrpcRoute,
        }
    }

    /// `(group, kind)`, as `allowedRoutes.kinds` and `supportedKinds` name it.
    pub fn group_kind(self) -> (&'static str, &'static str) {
        (GATEWAY_GROUP, self.as_str())
    }
}

/// One route object of either kind.
#[derive(Debug, Clone, Copy)]
pub enum RouteObject<'a> {
    Http(&'a HttpRoute),
    Grpc(&'a GrpcRoute),
}

/// A parentRef as written (defaults not applied), from either kind.
#[derive(Debug, Clone, Copy)]
pub struct ParentRef<'a> {
    pub group: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    pub port: Option<i32>,
    pub section_name: Option<&'a str>,
}

/// One entry of the route's current `status.parents`.
#[derive(Debug, Clone)]
pub struct CurrentParent<'a> {
    pub controller_name: &'a str,
    pub parent_ref: RouteStatusParentRef,
    pub conditions: &'a [Condition],
}

/// The same code over both generated types, whose field names are the same.
macro_rules! parent_ref {
    ($p:expr) => {{
        let p = $p;
        ParentRef {
            group: p.group.as_deref(),
            kind: p.kind.as_deref(),
            name: &p.name,
            namespace: p.namespace.as_deref(),
            port: p.port,
            section_name: p.section_name.as_deref(),
        }
    }};
}

macro_rules! current_parent {
    ($p:expr) => {{
        let p = $p;
        let r = &p.parent_ref;
        CurrentParent {
            controller_name: &p.controller_name,
            parent_ref: RouteStatusParentRef {
                group: r.group.clone(),
                kind: r.kind.clone(),
                name: r.name.clone(),
                namespace: r.namespace.clone(),
                port: r.port,
                section_name: r.section_name.clone(),
            },
            conditions: &p.conditions,
        }
    }};
}

impl<'a> RouteObject<'a> {
    pub fn kind(self) -> RouteKind {
        match self {
            RouteObject::Http(_) => RouteKind::Http,
            RouteObject::Grpc(_) => RouteKind::Grpc,
        }
    }

    pub fn meta(self) -> &'a ObjectMeta {
        match self {
            RouteObject::Http(r) => &r.metadata,
            RouteObject::Grpc(r) => &r.metadata,
        }
    }

    /// `spec.hostnames` (empty when absent).
    pub fn hostnames(self) -> &'a [String] {
        match self {
            RouteObject::Http(r) => r.spec.hostnames.as_deref().unwrap_or_default(),
            RouteObject::Grpc(r) => r.spec.hostnames.as_deref().unwrap_or_default(),
        }
    }

    pub fn parent_refs(self) -> Vec<ParentRef<'a>> {
        match self {
            RouteObject::Http(r) => r
                .spec
                .parent_refs
                .iter()
                .flatten()
                .map(|p| parent_ref!(p))
                .collect(),
            RouteObject::Grpc(r) => r
                .spec
                .parent_refs
                .iter()
                .flatten()
                .map(|p| parent_ref!(p))
                .collect(),
        }
    }

    /// The route's current `status.parents` (every controller's).
    pub fn current_parents(self) -> Vec<CurrentParent<'a>> {
        match self {
            RouteObject::Http(r) => r
                .status
                .iter()
                .flat_map(|s| &s.parents)
                .map(|p| current_parent!(p))
                .collect(),
            RouteObject::Grpc(r) => r
                .status
                .iter()
                .flat_map(|s| &s.parents)
                .map(|p| current_parent!(p))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{GrpcRouteStatus, RouteStatus};

    /// `api::RouteStatus` (the generated HTTPRoute type) stands for every kind's status: a
    /// GRPCRouteStatus reads into it and writes back the same JSON.
    #[test]
    fn grpc_route_status_has_the_route_status_shape() {
        let json = serde_json::json!({"parents": [{
            "controllerName": "example.com/c",
            "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw",
                          "namespace": "infra", "port": 80, "sectionName": "http"},
            "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                            "message": "", "observedGeneration": 3,
                            "lastTransitionTime": "2026-01-02T03:04:05Z"}]
        }]});
        let grpc: GrpcRouteStatus = serde_json::from_value(json.clone()).unwrap();
        let shared: RouteStatus = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&grpc).unwrap(), json);
        assert_eq!(serde_json::to_value(&shared).unwrap(), json);
    }

    #[test]
    fn kinds_map_to_their_rows() {
        for kind in RouteKind::ALL {
            assert_eq!(kind.kind().as_str(), kind.as_str());
        }
    }
}
