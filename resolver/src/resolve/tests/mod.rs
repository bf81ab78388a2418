//! Cluster-free scenario tests: objects in, Resolution out, one rule of the spec per test.
//!
//! Objects are written as JSON in the shape users write YAML (defaults omitted), so the tests also
//! cover that routes as written resolve like defaulted ones.

mod attachment;
mod backends;
mod grpc;
mod grpc_conflicts;
mod listeners;
mod rules;

use crate::api::RouteParentStatus;
use crate::api::core::{Namespace, Secret, Service};
use crate::api::discovery::EndpointSlice;
use crate::api::gatewayclasses::GatewayClass;
use crate::api::gateways::{Gateway, GatewayStatusListeners};
use crate::api::grpcroutes::GrpcRoute;
use crate::api::httproutes::HttpRoute;
use crate::api::listenersets::ListenerSet;
use crate::api::meta::Condition;
use crate::api::referencegrants::ReferenceGrant;
use engine::config::PluginConfig;
use serde_json::{Value, json};

use crate::kinds::{Kind, Snapshot};
use crate::resolution::{Resolution, Settings};

pub const CONTROLLER: &str = "example.com/gateway-wasm-test";
pub const CLASS: &str = "ours";

pub fn settings() -> Settings {
    Settings {
        controller_name: CONTROLLER.to_owned(),
        ..Settings::default()
    }
}

fn object<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

pub fn class(name: &str, controller: &str) -> GatewayClass {
    object(
        json!({"metadata": {"name": name, "generation": 1}, "spec": {"controllerName": controller}}),
    )
}

/// A Gateway of our class with these listeners.
pub fn gateway(ns: &str, name: &str, listeners: Value) -> Gateway {
    gateway_spec(
        ns,
        name,
        json!({"gatewayClassName": CLASS, "listeners": listeners}),
    )
}

pub fn gateway_spec(ns: &str, name: &str, spec: Value) -> Gateway {
    object(json!({"metadata": {"namespace": ns, "name": name, "generation": 2}, "spec": spec}))
}

pub fn http(name: &str, port: u16) -> Value {
    json!({"name": name, "port": port, "protocol": "HTTP"})
}

pub fn http_host(name: &str, port: u16, hostname: &str) -> Value {
    json!({"name": name, "port": port, "protocol": "HTTP", "hostname": hostname})
}

pub fn route(ns: &str, name: &str, spec: Value) -> HttpRoute {
    object(json!({"metadata": {"namespace": ns, "name": name, "generation": 7}, "spec": spec}))
}

/// A route to Gateway `gw` (same namespace) forwarding everything to `svc:8080`.
pub fn simple_route(ns: &str, name: &str, gw: &str) -> HttpRoute {
    route(
        ns,
        name,
        json!({"parentRefs": [{"name": gw}], "rules": [{"backendRefs": [{"name": "svc", "port": 8080}]}]}),
    )
}

pub fn grpc_route(ns: &str, name: &str, spec: Value) -> GrpcRoute {
    object(json!({"metadata": {"namespace": ns, "name": name, "generation": 5}, "spec": spec}))
}

/// A GRPCRoute to Gateway `gw` (same namespace) sending every call to `svc:8080`.
pub fn simple_grpc_route(ns: &str, name: &str, gw: &str) -> GrpcRoute {
    grpc_route(
        ns,
        name,
        json!({"parentRefs": [{"name": gw}], "rules": [{"backendRefs": [{"name": "svc", "port": 8080}]}]}),
    )
}

/// Sets `metadata.creationTimestamp` (RFC 3339).
pub fn created<T: kube_core::Resource>(mut object: T, at: &str) -> T {
    object.meta_mut().creation_timestamp = Some(crate::api::Time(at.parse().unwrap()));
    object
}

pub fn service(ns: &str, name: &str, ports: Value) -> Service {
    object(
        json!({"metadata": {"namespace": ns, "name": name}, "spec": {"ports": ports, "selector": {"app": name}}}),
    )
}

pub fn service_8080(ns: &str, name: &str) -> Service {
    service(ns, name, json!([{"port": 8080}]))
}

pub fn endpoint_slice(
    ns: &str,
    service: &str,
    name: &str,
    ports: Value,
    endpoints: Value,
) -> EndpointSlice {
    object(json!({
        "metadata": {"namespace": ns, "name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "ports": ports, "endpoints": endpoints
    }))
}

pub fn namespace(name: &str, labels: Value) -> Namespace {
    object(json!({"metadata": {"name": name, "labels": labels}}))
}

pub fn grant(ns: &str, from: Value, to: Value) -> ReferenceGrant {
    object(
        json!({"metadata": {"namespace": ns, "name": "grant"}, "spec": {"from": from, "to": to}}),
    )
}

pub fn tls_secret(ns: &str, name: &str) -> Secret {
    use crate::api::ByteString;
    Secret {
        metadata: object(json!({"namespace": ns, "name": name})),
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(
            [
                (
                    "tls.crt",
                    "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
                ),
                (
                    "tls.key",
                    "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n",
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
            .collect(),
        ),
        ..Secret::default()
    }
}

pub fn listener_set(ns: &str, name: &str, spec: Value) -> ListenerSet {
    object(json!({"metadata": {"namespace": ns, "name": name, "generation": 3}, "spec": spec}))
}

/// A snapshot with our GatewayClass and one `svc` Service (port 8080) in `ns`.
pub fn base(ns: &str) -> Snapshot {
    Snapshot {
        gateway_classes: vec![class(CLASS, CONTROLLER)],
        services: vec![service_8080(ns, "svc")],
        ..Snapshot::default()
    }
}

pub fn run(snapshot: &Snapshot) -> Resolution {
    let resolution = super::resolve(snapshot, &settings());
    for g in &resolution.gateways {
        if let Err(e) = engine::RouteTable::compile(&g.config) {
            panic!("the engine rejects the config of {}: {e}", g.gateway);
        }
    }
    resolution
}

/// Our status entries of an HTTPRoute (`ns/name`); panics when the route has no status update.
pub fn parents<'r>(r: &'r Resolution, route: &str) -> &'r [RouteParentStatus] {
    parents_of(r, Kind::HttpRoute, route)
}

/// Our status entries of a GRPCRoute (`ns/name`).
pub fn grpc_parents<'r>(r: &'r Resolution, route: &str) -> &'r [RouteParentStatus] {
    parents_of(r, Kind::GrpcRoute, route)
}

fn parents_of<'r>(r: &'r Resolution, kind: Kind, route: &str) -> &'r [RouteParentStatus] {
    &r.routes
        .iter()
        .find(|x| x.kind == kind && x.route.to_string() == route)
        .unwrap_or_else(|| panic!("no {kind} status for {route}"))
        .status
        .parents
}

pub fn has_status(r: &Resolution, route: &str) -> bool {
    r.routes
        .iter()
        .any(|x| x.kind == Kind::HttpRoute && x.route.to_string() == route)
}

pub fn condition<'c>(conditions: &'c [Condition], kind: &str) -> &'c Condition {
    conditions
        .iter()
        .find(|c| c.type_ == kind)
        .unwrap_or_else(|| panic!("no {kind} condition in {conditions:?}"))
}

/// Asserts `kind` has this status and reason.
#[track_caller]
pub fn assert_condition(conditions: &[Condition], kind: &str, status: &str, reason: &str) {
    let c = condition(conditions, kind);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        (status, reason),
        "{kind}: {}",
        c.message
    );
}

pub fn config<'r>(r: &'r Resolution, gw: &str) -> &'r PluginConfig {
    &r.gateways
        .iter()
        .find(|g| g.gateway.to_string() == gw)
        .unwrap_or_else(|| panic!("no result for {gw}"))
        .config
}

pub fn listener<'r>(r: &'r Resolution, gw: &str, name: &str) -> &'r GatewayStatusListeners {
    r.gateways
        .iter()
        .find(|g| g.gateway.to_string() == gw)
        .and_then(|g| g.status.listeners.as_ref())
        .and_then(|ls| ls.iter().find(|l| l.name == name))
        .unwrap_or_else(|| panic!("no listener status {gw} {name}"))
}

/// The listeners a GRPCRoute is attached to in a Gateway's config, with their effective hostnames.
pub fn grpc_attached(r: &Resolution, gw: &str, route: &str) -> Vec<(String, Vec<String>)> {
    config(r, gw)
        .grpc_routes
        .iter()
        .filter(|x| format!("{}/{}", x.namespace, x.name) == route)
        .flat_map(|x| {
            x.parents
                .iter()
                .map(|p| (p.listener.clone(), p.hostnames.clone()))
        })
        .collect()
}

/// The listeners a route is attached to in a Gateway's config, with their effective hostnames.
pub fn attached(r: &Resolution, gw: &str, route: &str) -> Vec<(String, Vec<String>)> {
    config(r, gw)
        .routes
        .iter()
        .filter(|x| format!("{}/{}", x.namespace, x.name) == route)
        .flat_map(|x| {
            x.parents
                .iter()
                .map(|p| (p.listener.clone(), p.hostnames.clone()))
        })
        .collect()
}

/// Our class, the `svc` Service and Gateway `infra/gw` with these listeners: the setup most
/// scenarios start from.
pub fn infra_gateway(listeners: Value) -> Snapshot {
    let mut s = base("infra");
    s.gateways.push(gateway("infra", "gw", listeners));
    s
}

/// Like [`infra_gateway`], with `allowedListeners.namespaces.from` set to `from`, so ListenerSets
/// can join the Gateway.
pub fn gateway_taking_listener_sets(listeners: Value, from: &str) -> Snapshot {
    let mut s = base("infra");
    s.gateways.push(gateway_spec(
        "infra",
        "gw",
        json!({"gatewayClassName": CLASS, "listeners": listeners,
               "allowedListeners": {"namespaces": {"from": from}}}),
    ));
    s
}

/// `(status, reason, message)` of condition `kind`.
pub fn condition_parts(conditions: &[Condition], kind: &str) -> (String, String, String) {
    let c = condition(conditions, kind);
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

/// Asserts condition `kind` of an HTTPRoute's first status entry; returns its message.
#[track_caller]
pub fn assert_route_condition(
    r: &Resolution,
    route: &str,
    kind: &str,
    status: &str,
    reason: &str,
) -> String {
    let conditions = &parents(r, route)[0].conditions;
    assert_condition(conditions, kind, status, reason);
    condition(conditions, kind).message.clone()
}

/// The Gateway's own conditions (Accepted, Programmed).
pub fn gateway_conditions<'r>(r: &'r Resolution, gw: &str) -> &'r [Condition] {
    r.gateways
        .iter()
        .find(|g| g.gateway.to_string() == gw)
        .and_then(|g| g.status.conditions.as_deref())
        .unwrap_or_else(|| panic!("no conditions for {gw}"))
}

/// The names of the listeners in a Gateway's config, in order.
pub fn config_listener_names<'r>(r: &'r Resolution, gw: &str) -> Vec<&'r str> {
    config(r, gw)
        .listeners
        .iter()
        .map(|l| l.name.as_str())
        .collect()
}

/// The listeners an HTTPRoute is attached to in a Gateway's config.
pub fn attached_listeners(r: &Resolution, gw: &str, route: &str) -> Vec<String> {
    attached(r, gw, route).into_iter().map(|(l, _)| l).collect()
}
