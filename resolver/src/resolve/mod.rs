//! The resolver: a pure function from a [`Snapshot`] of cluster objects to a [`Resolution`] — one
//! PluginConfig per Gateway of ours, the backends and TLS material it needs, and the status every
//! object should carry.
//!
//! The pipeline, one submodule per step:
//! 1. [`classes`]: GatewayClasses whose `controllerName` is ours, and their Accepted condition;
//! 2. [`listeners`]: each Gateway's listeners merged with those of the ListenerSets it allows,
//!    validated (protocol, port, hostname, TLS certificateRefs via [`grants`]) and checked for
//!    conflicts;
//! 3. [`attach`]: each route's parentRefs (HTTPRoute and GRPCRoute alike, read through
//!    [`routes`]) matched to listeners (group/kind/namespace defaults, sectionName, port,
//!    `allowedRoutes` namespaces via [`selectors`] and kinds, hostname intersection via
//!    [`hostnames`]), then [`conflicts`]: an HTTPRoute and a GRPCRoute sharing a hostname on a
//!    listener, only one kept;
//! 4. [`rules`] / [`grpc_rules`] + [`filters`] + [`backends`]: the route's rules converted to the
//!    engine's shape, backendRefs resolved to Service ports and EndpointSlices (ReferenceGrants
//!    again; h2c for GRPCRoutes), rules the engine would reject dropped;
//! 5. [`desired_status`]: the status routes, listeners, Gateways and ListenerSets should carry
//!    ([`conditions`]), and the assembly of the [`Resolution`] (writing it is the controller-shim's
//!    `status` module);
//! 6. [`config`]: the PluginConfig of each Gateway.
//!
//! `resolve` never panics and is deterministic: every output list is sorted, maps are ordered.

mod attach;
mod backends;
mod classes;
mod conditions;
mod config;
mod conflicts;
mod desired_status;
mod filters;
mod grants;
mod grpc_rules;
mod hostnames;
mod listeners;
mod routes;
mod rules;
mod selectors;
#[cfg(test)]
mod tests;
mod tls;

use std::collections::BTreeMap;

use crate::api::{
    EndpointSlice, GrpcRoute, HttpRoute, NAMESPACE_NAME_LABEL, ObjectMeta, ReferenceGrant,
    SERVICE_NAME_LABEL, Secret, Service,
};
use crate::kinds::Snapshot;
use crate::resolution::{ObjectKey, Resolution, Settings};
use routes::RouteObject;

/// Resolves a snapshot into per-Gateway configs and statuses.
pub fn resolve(snapshot: &Snapshot, settings: &Settings) -> Resolution {
    let lookup = Lookup::new(snapshot, settings);
    let classes = classes::ours(&lookup);
    let mut gateways = listeners::gateways(&lookup, &classes);
    let routes = attach::routes(&lookup, &mut gateways);
    let mut resolution = Resolution {
        gateway_classes: classes::status(&lookup, &classes),
        ..Resolution::default()
    };
    desired_status::finish(&lookup, &mut gateways, &routes, &mut resolution);
    resolution
        .gateways
        .sort_by(|a, b| a.gateway.cmp(&b.gateway));
    resolution
        .routes
        .sort_by(|a, b| (&a.route, a.kind).cmp(&(&b.route, b.kind)));
    resolution
        .gateway_classes
        .sort_by(|a, b| a.class.cmp(&b.class));
    resolution
        .listener_sets
        .sort_by(|a, b| a.listener_set.cmp(&b.listener_set));
    resolution
}

/// Lookups over the snapshot, built once.
pub(crate) struct Lookup<'a> {
    pub snapshot: &'a Snapshot,
    pub settings: &'a Settings,
    services: BTreeMap<(&'a str, &'a str), &'a Service>,
    secrets: BTreeMap<(&'a str, &'a str), &'a Secret>,
    namespace_labels: BTreeMap<&'a str, &'a BTreeMap<String, String>>,
    /// EndpointSlices by (namespace, `kubernetes.io/service-name`).
    slices: BTreeMap<(String, String), Vec<&'a EndpointSlice>>,
}

impl<'a> Lookup<'a> {
    fn new(snapshot: &'a Snapshot, settings: &'a Settings) -> Lookup<'a> {
        let mut slices: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
        for slice in &snapshot.endpoint_slices {
            if let Some(service) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            {
                slices
                    .entry((namespace(&slice.metadata).to_owned(), service.clone()))
                    .or_default()
                    .push(slice);
            }
        }
        for list in slices.values_mut() {
            list.sort_by(|a, b| name(&a.metadata).cmp(name(&b.metadata)));
        }
        Lookup {
            snapshot,
            settings,
            services: snapshot
                .services
                .iter()
                .map(|s| ((namespace(&s.metadata), name(&s.metadata)), s))
                .collect(),
            secrets: snapshot
                .secrets
                .iter()
                .map(|s| ((namespace(&s.metadata), name(&s.metadata)), s))
                .collect(),
            namespace_labels: snapshot
                .namespaces
                .iter()
                .filter_map(|n| Some((name(&n.metadata), n.metadata.labels.as_ref()?)))
                .collect(),
            slices,
        }
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&'a Service> {
        self.services.get(&(namespace, name)).copied()
    }

    pub fn secret(&self, namespace: &str, name: &str) -> Option<&'a Secret> {
        self.secrets.get(&(namespace, name)).copied()
    }

    pub fn endpoint_slices(&self, namespace: &str, service: &str) -> &[&'a EndpointSlice] {
        self.slices
            .get(&(namespace.to_owned(), service.to_owned()))
            .map_or(&[], Vec::as_slice)
    }

    pub fn grants(&self) -> &'a [ReferenceGrant] {
        &self.snapshot.reference_grants
    }

    /// A namespace's labels, including `kubernetes.io/metadata.name`, which the API server sets on
    /// every namespace (so selectors on it work even when the snapshot's copy lacks it).
    pub fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        let mut labels = self
            .namespace_labels
            .get(namespace)
            .map(|l| (*l).clone())
            .unwrap_or_default();
        labels.insert(NAMESPACE_NAME_LABEL.to_owned(), namespace.to_owned());
        labels
    }

    /// Routes of every kind: HTTPRoutes, then GRPCRoutes, each sorted by `namespace/name`.
    /// Objects without a name or namespace, and repeats of a name within a kind (possible in a
    /// directory of manifests, not in a cluster), are left out: the data plane identifies routes
    /// by kind and `namespace/name`.
    pub fn routes(&self) -> Vec<RouteObject<'a>> {
        let mut http: Vec<&HttpRoute> = self.snapshot.http_routes.iter().collect();
        let mut grpc: Vec<&GrpcRoute> = self.snapshot.grpc_routes.iter().collect();
        sorted_named(&mut http, |r| &r.metadata);
        sorted_named(&mut grpc, |r| &r.metadata);
        http.into_iter()
            .map(RouteObject::Http)
            .chain(grpc.into_iter().map(RouteObject::Grpc))
            .collect()
    }
}

/// Keeps the objects with a name and a namespace, sorted by `namespace/name`, the first of each.
fn sorted_named<T>(objects: &mut Vec<&T>, meta: impl Fn(&T) -> &ObjectMeta) {
    objects.retain(|o| !name(meta(o)).is_empty() && !namespace(meta(o)).is_empty());
    objects.sort_by_key(|o| key(meta(o)));
    objects.dedup_by_key(|o| key(meta(o)));
}

pub(crate) fn name(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

pub(crate) fn namespace(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or_default()
}

pub(crate) fn key(meta: &ObjectMeta) -> ObjectKey {
    ObjectKey::of(meta)
}

/// RFC 3339 form of `metadata.creationTimestamp` (left out if the engine could not read it back,
/// which only years outside 0000–9999 would cause).
pub(crate) fn creation_timestamp(meta: &ObjectMeta) -> Option<String> {
    meta.creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .filter(|t| engine::time::parse_rfc3339(t).is_ok())
}
