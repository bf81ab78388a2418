//! From a vector case to the resolver's input ([`controller_shim::Snapshot`]).
//!
//! The vectors describe the objects of one conformance test as the user wrote them; this module adds
//! what the suite's base manifests provide around them:
//! - a GatewayClass ([`GATEWAY_CLASS_NAME`]) owned by the controller, and the Gateway pointing at it;
//! - Namespaces with their labels (plus the `kubernetes.io/metadata.name` label the API server adds);
//! - the shared Services plus the case's `extraServices`, each with an EndpointSlice of ready
//!   endpoints (one per replica), the way the suite's Deployments or hand-written slices provide them
//!   (`services[].grpcEcho` Services are the same objects: their ports carry
//!   `appProtocol: kubernetes.io/h2c` in the vectors, and what runs behind them is the runners'
//!   business);
//! - routes of their `routes[].kind` (HTTPRoute when absent, or GRPCRoute);
//! - for HTTPS listeners, whose TLS `certificateRefs` the vectors omit, a reference to a placeholder
//!   `kubernetes.io/tls` Secret created in the listener's namespace, so the listener resolves.

use std::collections::{BTreeMap, BTreeSet};

use controller_shim::Snapshot;
use controller_shim::api::ByteString;
use controller_shim::api::IntOrString;
use controller_shim::api::core::{Namespace, Secret, Service, ServicePort};
use controller_shim::api::discovery::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use controller_shim::api::gatewayclasses::{GatewayClass, GatewayClassSpec};
use controller_shim::api::gateways::{Gateway, GatewaySpec};
use controller_shim::api::grpcroutes::GrpcRoute;
use controller_shim::api::httproutes::HttpRoute;
use controller_shim::api::listenersets::{ListenerSet, ListenerSetSpec};
use controller_shim::api::meta::{ObjectMeta, Time};
use controller_shim::api::referencegrants::{ReferenceGrant, ReferenceGrantSpec};
use serde_json::{Value, json};

use crate::vectors::{self, Case, ListenerSpec, Scenario, ServiceSpec, VectorFile};

/// The GatewayClass every case's Gateway uses.
pub const GATEWAY_CLASS_NAME: &str = "gateway-wasm";

/// The placeholder TLS Secret referenced by HTTPS listeners (one per namespace that needs it).
pub const PLACEHOLDER_TLS_SECRET: &str = "gateway-wasm-conformance-tls";

/// Not a usable certificate: the resolver only checks that the Secret holds PEM blocks under
/// `tls.crt` and `tls.key`. A runner that terminates TLS replaces the data with real material.
pub const PLACEHOLDER_CERT_PEM: &str =
    "-----BEGIN CERTIFICATE-----\nUExBQ0VIT0xERVI=\n-----END CERTIFICATE-----\n";
pub const PLACEHOLDER_KEY_PEM: &str =
    "-----BEGIN PRIVATE KEY-----\nUExBQ0VIT0xERVI=\n-----END PRIVATE KEY-----\n";

/// How to build the snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    /// `spec.controllerName` of the GatewayClass (the resolver claims classes with its own name).
    pub controller_name: String,
    pub gateway_class_name: String,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            controller_name: controller_shim::Settings::default().controller_name,
            gateway_class_name: GATEWAY_CLASS_NAME.to_owned(),
        }
    }
}

/// The resolver's result for the case's own Gateway (a resolution may hold others).
pub fn case_gateway(
    resolution: controller_shim::resolution::Resolution,
    case: &Case,
) -> Result<controller_shim::resolution::GatewayResult, String> {
    let wanted = &case.gateway;
    resolution
        .gateways
        .into_iter()
        .find(|g| g.gateway.namespace == wanted.namespace && g.gateway.name == wanted.name)
        .ok_or_else(|| {
            format!(
                "the resolver produced no config for Gateway {}/{}",
                wanted.namespace, wanted.name
            )
        })
}

/// The snapshot for a case, with the default controller name. Objects that cannot be converted to
/// their API types (which [`try_snapshot_for`] reports) are left out.
pub fn snapshot_for(case: &impl Scenario, file: &VectorFile) -> Snapshot {
    let mut errors = Vec::new();
    build(case, file, &SnapshotOptions::default(), &mut errors)
}

/// The snapshot for a case, or every object that could not be converted.
pub fn try_snapshot_for(
    case: &impl Scenario,
    file: &VectorFile,
    options: &SnapshotOptions,
) -> Result<Snapshot, String> {
    let mut errors = Vec::new();
    let snapshot = build(case, file, options, &mut errors);
    if errors.is_empty() {
        Ok(snapshot)
    } else {
        Err(format!("{}: {}", case.id(), errors.join("; ")))
    }
}

fn build(
    case: &impl Scenario,
    file: &VectorFile,
    options: &SnapshotOptions,
    errors: &mut Vec<String>,
) -> Snapshot {
    let mut snapshot = Snapshot {
        gateway_classes: vec![gateway_class(options)],
        ..Snapshot::default()
    };
    let gw = case.gateway();
    let mut tls_namespaces = BTreeSet::new();

    match gateway(gw, options, &mut tls_namespaces) {
        Ok(g) => snapshot.gateways.push(g),
        Err(e) => errors.push(e),
    }
    for set in &gw.listener_sets {
        match listener_set(set, &mut tls_namespaces) {
            Ok(s) => snapshot.listener_sets.push(s),
            Err(e) => errors.push(e),
        }
    }
    for route in case.routes() {
        let converted = match route.kind() {
            vectors::GRPC_ROUTE_KIND => grpc_route(route).map(|r| snapshot.grpc_routes.push(r)),
            _ => http_route(route).map(|r| snapshot.http_routes.push(r)),
        };
        if let Err(e) = converted {
            errors.push(e);
        }
    }
    for grant in case.reference_grants() {
        match reference_grant(grant) {
            Ok(g) => snapshot.reference_grants.push(g),
            Err(e) => errors.push(e),
        }
    }

    // Shared Services first, then the case's own (a case's definition wins on a name clash).
    let mut services: BTreeMap<(String, String), &ServiceSpec> = BTreeMap::new();
    for s in file.services.iter().chain(case.extra_services()) {
        services.insert((s.namespace.clone(), s.name.clone()), s);
    }
    for (index, spec) in services.values().enumerate() {
        snapshot.services.push(service(spec));
        snapshot.endpoint_slices.push(endpoint_slice(spec, index));
    }

    for namespace in &tls_namespaces {
        snapshot.secrets.push(placeholder_secret(namespace));
    }

    let mut namespaces: BTreeMap<String, BTreeMap<String, String>> = file.namespaces.clone();
    let mut mentioned: Vec<&str> = vec![gw.namespace.as_str()];
    mentioned.extend(gw.listener_sets.iter().map(|s| s.namespace.as_str()));
    mentioned.extend(case.routes().iter().map(|r| r.namespace.as_str()));
    mentioned.extend(case.reference_grants().iter().map(|g| g.namespace.as_str()));
    mentioned.extend(services.keys().map(|(ns, _)| ns.as_str()));
    for ns in mentioned {
        namespaces.entry(ns.to_owned()).or_default();
    }
    for (name, labels) in namespaces {
        snapshot.namespaces.push(namespace(&name, labels));
    }
    snapshot
}

fn meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        generation: Some(1),
        ..ObjectMeta::default()
    }
}

fn gateway_class(options: &SnapshotOptions) -> GatewayClass {
    GatewayClass {
        metadata: meta(None, &options.gateway_class_name),
        spec: GatewayClassSpec {
            controller_name: options.controller_name.clone(),
            ..GatewayClassSpec::default()
        },
        status: None,
    }
}

/// A listener as JSON, with a certificateRef to the placeholder Secret when it terminates TLS and
/// names none (the vectors omit certificateRefs).
fn listener_json(
    listener: &ListenerSpec,
    namespace: &str,
    tls_namespaces: &mut BTreeSet<String>,
) -> Result<Value, String> {
    let mut value = serde_json::to_value(listener).map_err(|e| e.to_string())?;
    let terminates = listener.protocol == "HTTPS"
        || (listener.protocol == "TLS"
            && listener
                .tls
                .as_ref()
                .and_then(|t| t.get("mode"))
                .and_then(Value::as_str)
                .is_some_and(|m| m == "Terminate"));
    if terminates && let Some(obj) = value.as_object_mut() {
        let tls = obj.entry("tls").or_insert_with(|| json!({}));
        if let Some(tls) = tls.as_object_mut()
            && !tls.contains_key("certificateRefs")
        {
            tls.insert(
                "certificateRefs".to_owned(),
                json!([{"kind": "Secret", "group": "", "name": PLACEHOLDER_TLS_SECRET}]),
            );
            tls_namespaces.insert(namespace.to_owned());
        }
    }
    Ok(value)
}

fn gateway(
    gw: &vectors::GatewaySpec,
    options: &SnapshotOptions,
    tls_namespaces: &mut BTreeSet<String>,
) -> Result<Gateway, String> {
    let mut listeners = Vec::new();
    for l in &gw.listeners {
        listeners.push(listener_json(l, &gw.namespace, tls_namespaces)?);
    }
    let mut spec = serde_json::Map::new();
    for (k, v) in &gw.extra {
        spec.insert(k.clone(), v.clone());
    }
    spec.insert(
        "gatewayClassName".to_owned(),
        Value::String(options.gateway_class_name.clone()),
    );
    spec.insert("listeners".to_owned(), Value::Array(listeners));
    if let Some(allowed) = &gw.allowed_listeners {
        spec.insert("allowedListeners".to_owned(), allowed.clone());
    }
    let spec: GatewaySpec = serde_json::from_value(Value::Object(spec))
        .map_err(|e| format!("gateway {}/{}: {e}", gw.namespace, gw.name))?;
    Ok(Gateway {
        metadata: meta(Some(&gw.namespace), &gw.name),
        spec,
        status: None,
    })
}

fn listener_set(
    set: &vectors::ListenerSetSpec,
    tls_namespaces: &mut BTreeSet<String>,
) -> Result<ListenerSet, String> {
    let mut listeners = Vec::new();
    for l in &set.listeners {
        listeners.push(listener_json(l, &set.namespace, tls_namespaces)?);
    }
    let mut spec = set.extra.clone();
    spec.insert("parentRef".to_owned(), set.parent_ref.clone());
    spec.insert("listeners".to_owned(), Value::Array(listeners));
    let spec: ListenerSetSpec = serde_json::from_value(Value::Object(spec))
        .map_err(|e| format!("listenerSet {}/{}: {e}", set.namespace, set.name))?;
    Ok(ListenerSet {
        metadata: meta(Some(&set.namespace), &set.name),
        spec,
        status: None,
    })
}

fn http_route(route: &vectors::RouteSpec) -> Result<HttpRoute, String> {
    Ok(HttpRoute {
        metadata: route_meta(route)?,
        spec: route.http_route_spec()?,
        status: None,
    })
}

fn grpc_route(route: &vectors::RouteSpec) -> Result<GrpcRoute, String> {
    Ok(GrpcRoute {
        metadata: route_meta(route)?,
        spec: route.grpc_route_spec()?,
        status: None,
    })
}

/// A route's metadata: generation (1 when absent), labels, creationTimestamp.
fn route_meta(route: &vectors::RouteSpec) -> Result<ObjectMeta, String> {
    let mut metadata = meta(Some(&route.namespace), &route.name);
    metadata.generation = Some(route.generation.unwrap_or(1));
    metadata.labels = route.labels.clone();
    if let Some(ts) = &route.creation_timestamp {
        let parsed: controller_shim::api::jiff::Timestamp = ts.parse().map_err(|e| {
            format!(
                "route {}: creationTimestamp {ts:?} is not RFC 3339: {e}",
                route.key()
            )
        })?;
        metadata.creation_timestamp = Some(Time(parsed));
    }
    Ok(metadata)
}

fn reference_grant(grant: &vectors::ReferenceGrantSpec) -> Result<ReferenceGrant, String> {
    let mut spec = grant.extra.clone();
    spec.insert("from".to_owned(), Value::Array(grant.from.clone()));
    spec.insert("to".to_owned(), Value::Array(grant.to.clone()));
    let spec: ReferenceGrantSpec = serde_json::from_value(Value::Object(spec))
        .map_err(|e| format!("referenceGrant {}/{}: {e}", grant.namespace, grant.name))?;
    Ok(ReferenceGrant {
        metadata: meta(Some(&grant.namespace), &grant.name),
        spec,
    })
}

fn service(spec: &ServiceSpec) -> Service {
    let ports = spec
        .ports
        .iter()
        .map(|p| ServicePort {
            name: p.name.clone(),
            port: p.port,
            app_protocol: p.app_protocol.clone(),
            protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".to_owned())),
            target_port: Some(IntOrString::Int(p.port)),
            ..ServicePort::default()
        })
        .collect();
    let selector = if spec.selector_less() {
        None
    } else {
        match &spec.selector {
            Some(Value::Object(map)) => Some(
                map.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect(),
            ),
            _ => Some(BTreeMap::from([("app".to_owned(), spec.name.clone())])),
        }
    };
    Service {
        metadata: meta(Some(&spec.namespace), &spec.name),
        spec: Some(controller_shim::api::core::ServiceSpec {
            ports: Some(ports),
            selector,
            cluster_ip: spec.headless.then(|| "None".to_owned()),
            type_: Some("ClusterIP".to_owned()),
            ..controller_shim::api::core::ServiceSpec::default()
        }),
        status: None,
    }
}

/// One slice per Service with one ready endpoint per replica (at least one). Addresses are
/// deterministic (`10.244.<service>.<replica>`), so resolutions compare across runs.
fn endpoint_slice(spec: &ServiceSpec, index: usize) -> EndpointSlice {
    let replicas = spec.replicas.unwrap_or(1).clamp(1, 250);
    let third = index % 256;
    let endpoints = (1..=replicas)
        .map(|r| Endpoint {
            addresses: vec![format!("10.244.{third}.{r}")],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            ..Endpoint::default()
        })
        .collect();
    let ports = spec
        .ports
        .iter()
        .map(|p| EndpointPort {
            name: Some(p.name.clone().unwrap_or_default()),
            port: Some(p.port),
            protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".to_owned())),
            app_protocol: p.app_protocol.clone(),
        })
        .collect();
    let mut metadata = meta(Some(&spec.namespace), &format!("{}-conformance", spec.name));
    metadata.labels = Some(BTreeMap::from([(
        "kubernetes.io/service-name".to_owned(),
        spec.name.clone(),
    )]));
    EndpointSlice {
        address_type: "IPv4".to_owned(),
        endpoints: Some(endpoints),
        metadata,
        ports: Some(ports),
    }
}

fn placeholder_secret(namespace: &str) -> Secret {
    Secret {
        metadata: meta(Some(namespace), PLACEHOLDER_TLS_SECRET),
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(BTreeMap::from([
            (
                "tls.crt".to_owned(),
                ByteString(PLACEHOLDER_CERT_PEM.as_bytes().to_vec()),
            ),
            (
                "tls.key".to_owned(),
                ByteString(PLACEHOLDER_KEY_PEM.as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    }
}

fn namespace(name: &str, mut labels: BTreeMap<String, String>) -> Namespace {
    // The API server labels every namespace with its own name.
    labels.insert("kubernetes.io/metadata.name".to_owned(), name.to_owned());
    let mut metadata = meta(None, name);
    metadata.labels = Some(labels);
    Namespace {
        metadata,
        ..Namespace::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> VectorFile {
        crate::vectors::parse(
            br#"{
              "namespaces": {"infra": {"team": "infra"}},
              "services": [{"namespace": "infra", "name": "echo", "replicas": 2,
                            "ports": [{"name": "http", "port": 8080, "appProtocol": "kubernetes.io/h2c"}]}],
              "statusCases": [{
                "id": "S/0",
                "gateway": {"namespace": "infra", "name": "gw", "listeners": [
                   {"name": "https", "port": 443, "protocol": "HTTPS", "tls": {"mode": "Terminate"}}]},
                "routes": [{"namespace": "apps", "name": "r", "parentRefs": [{"name": "gw", "namespace": "infra"}],
                            "creationTimestamp": "2020-09-08T01:02:03Z", "generation": 3,
                            "rules": [{"backendRefs": [{"name": "echo", "namespace": "infra", "port": 8080}]}]}],
                "extraServices": [{"namespace": "infra", "name": "manual", "selector": null, "headless": true,
                                   "ports": [{"name": "first-port", "port": 8080}]}],
                "expect": {}
              }]
            }"#,
        )
        .unwrap()
    }

    #[test]
    fn builds_every_object_kind() {
        let file = file();
        let case = &file.status_cases[0];
        let snap = try_snapshot_for(case, &file, &SnapshotOptions::default()).unwrap();
        assert_eq!(snap.gateway_classes.len(), 1);
        let gw = &snap.gateways[0];
        assert_eq!(gw.spec.gateway_class_name, GATEWAY_CLASS_NAME);
        let tls = gw.spec.listeners[0].tls.as_ref().unwrap();
        assert_eq!(
            tls.certificate_refs.as_ref().unwrap()[0].name,
            PLACEHOLDER_TLS_SECRET
        );
        assert_eq!(snap.secrets.len(), 1);
        let route = &snap.http_routes[0];
        assert_eq!(route.metadata.generation, Some(3));
        assert!(route.metadata.creation_timestamp.is_some());
        assert_eq!(snap.services.len(), 2);
        let manual = snap
            .services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some("manual"))
            .unwrap();
        let spec = manual.spec.as_ref().unwrap();
        assert_eq!(spec.selector, None);
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(snap.endpoint_slices.len(), 2);
        let names: Vec<_> = snap
            .namespaces
            .iter()
            .map(|n| n.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["apps", "infra"]);
        let infra_labels = snap.namespaces[1].metadata.labels.as_ref().unwrap();
        assert_eq!(infra_labels["team"], "infra");
        assert_eq!(infra_labels["kubernetes.io/metadata.name"], "infra");
    }

    /// `routes[].kind` decides the object's type; a GRPCRoute keeps its metadata like an HTTPRoute.
    #[test]
    fn grpc_routes_become_grpc_route_objects() {
        let mut file = file();
        let mut grpc = file.status_cases[0].routes[0].clone();
        grpc.kind = Some("GRPCRoute".into());
        grpc.name = "g".into();
        grpc.spec.insert(
            "rules".to_owned(),
            json!([{"matches": [{"method": {"service": "pkg.Svc"}}],
                    "backendRefs": [{"name": "echo", "namespace": "infra", "port": 8080}]}]),
        );
        file.status_cases[0].routes.push(grpc);
        let case = &file.status_cases[0];
        let snap = try_snapshot_for(case, &file, &SnapshotOptions::default()).unwrap();
        assert_eq!(snap.http_routes.len(), 1);
        let route = &snap.grpc_routes[0];
        assert_eq!(route.metadata.name.as_deref(), Some("g"));
        assert_eq!(route.metadata.generation, Some(3));
        assert!(route.metadata.creation_timestamp.is_some());
        let method = route.spec.rules.as_ref().unwrap()[0]
            .matches
            .as_ref()
            .unwrap()[0]
            .method
            .as_ref()
            .unwrap();
        assert_eq!(method.service.as_deref(), Some("pkg.Svc"));

        // The kind decides how the spec reads: as an HTTPRoute, a gRPC method match is no HTTP
        // method, and the route is reported instead of read into something else.
        let mut wrong = file.status_cases[0].clone();
        wrong.routes[1].kind = Some("HTTPRoute".into());
        let error = try_snapshot_for(&wrong, &file, &SnapshotOptions::default()).unwrap_err();
        assert!(error.contains("route apps/g"), "{error}");
    }

    #[test]
    fn unconvertible_objects_are_reported() {
        let mut file = file();
        file.status_cases[0].routes[0]
            .spec
            .insert("rules".to_owned(), json!("not a list"));
        let case = &file.status_cases[0];
        let err = try_snapshot_for(case, &file, &SnapshotOptions::default()).unwrap_err();
        assert!(err.contains("route apps/r"), "{err}");
        assert!(snapshot_for(case, &file).http_routes.is_empty());
    }
}
