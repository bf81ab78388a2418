//! backendRefs (and RequestMirror backendRefs) → Service ports → EndpointSlices.
//!
//! Spec (HTTPBackendRef and BackendObjectReference): Kind "Defaults to "Service" when not
//! specified"; Group: "When unspecified or empty string, core API group is inferred"; Namespace:
//! "When unspecified, the local namespace is inferred. Note that when a namespace different than the
//! local namespace is specified, a ReferenceGrant object is required in the referent namespace";
//! Port: "Port is required when the referent is a Kubernetes Service. In this case, the port number
//! is the service port number, not the target port."

use std::collections::BTreeMap;

use crate::api::core::ServicePort;
use engine::config::{Backend, InvalidBackend};

use super::conditions::{Problem, route as reason};
use super::routes::RouteKind;
use super::{Lookup, grants};
use crate::api::GATEWAY_GROUP;
use crate::resolution::{BackendTarget, Endpoint};

/// A backend reference as written, defaults not applied.
#[derive(Debug, Clone, Copy)]
pub struct Ref<'a> {
    pub group: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    pub port: Option<i32>,
}

/// Service port `appProtocol` values an HTTPRoute's backend may have (KEP-3726 standard names,
/// plus plain `http`). "If a Route is not able to send traffic to the backend using the specified
/// protocol then the backend is considered invalid. Implementations MUST set the "ResolvedRefs"
/// condition to "False" with the "UnsupportedProtocol" reason."
const SUPPORTED_APP_PROTOCOLS: &[&str] = &["http", H2C, "kubernetes.io/ws"];

/// HTTP/2 over cleartext (KEP-3726).
pub const H2C: &str = "kubernetes.io/h2c";

/// Prefix of the `backends` keys GRPCRoutes use: their upstreams speak HTTP/2, so an HTTPRoute and
/// a GRPCRoute to the same Service port get two keys (two Envoy clusters).
pub const GRPC_KEY_PREFIX: &str = "grpc:";

/// The backends one route references: `config.backends` entries, their targets, and the first
/// problem for the route's ResolvedRefs condition.
#[derive(Debug, Default)]
pub struct Backends {
    /// The kind of the route: it decides the ReferenceGrant `from` kind, the protocol spoken to
    /// the backend and the key.
    pub kind: RouteKind,
    pub entries: BTreeMap<String, Backend>,
    pub targets: BTreeMap<String, BackendTarget>,
    pub problem: Option<Problem>,
}

impl Backends {
    /// No backends yet, for a route of `kind`.
    pub fn of(kind: RouteKind) -> Backends {
        Backends {
            kind,
            ..Backends::default()
        }
    }

    /// Resolves a reference from a route in `route_namespace`; returns the `backends` key.
    pub fn add(&mut self, lookup: &Lookup<'_>, route_namespace: &str, r: Ref<'_>) -> String {
        let mut base = base_key(route_namespace, r);
        if self.kind == RouteKind::Grpc {
            base.insert_str(0, GRPC_KEY_PREFIX);
        }
        match target(lookup, self.kind, route_namespace, r) {
            Ok(target) => {
                self.entries.insert(
                    base.clone(),
                    Backend {
                        upstream: Some(base.clone()),
                        invalid: None,
                    },
                );
                self.targets.insert(base.clone(), target);
                base
            }
            Err(problem) => {
                // The reason is part of the key: the same Service may be permitted for one route
                // namespace and not for another, and both can land in one Gateway's config.
                let key = format!("invalid:{}:{base}", problem.reason);
                self.entries.insert(
                    key.clone(),
                    Backend {
                        upstream: None,
                        invalid: Some(InvalidBackend {
                            reason: problem.reason.to_owned(),
                            message: problem.message.clone(),
                        }),
                    },
                );
                self.problem.get_or_insert(problem);
                key
            }
        }
    }
}

/// `namespace/name:port` for Services; other kinds are prefixed with `group/kind/`.
fn base_key(route_namespace: &str, r: Ref<'_>) -> String {
    let group = r.group.unwrap_or_default();
    let kind = r.kind.unwrap_or("Service");
    let namespace = r.namespace.unwrap_or(route_namespace);
    let mut key = if group.is_empty() && kind == "Service" {
        format!("{namespace}/{}", r.name)
    } else {
        format!("{group}/{kind}/{namespace}/{}", r.name)
    };
    if let Some(port) = r.port {
        key.push_str(&format!(":{port}"));
    }
    key
}

fn target(
    lookup: &Lookup<'_>,
    route_kind: RouteKind,
    route_namespace: &str,
    r: Ref<'_>,
) -> Result<BackendTarget, Problem> {
    let group = r.group.unwrap_or_default();
    let kind = r.kind.unwrap_or("Service");
    if !group.is_empty() || kind != "Service" {
        return Err(Problem::new(
            reason::INVALID_KIND,
            format!(
                "backendRef {}/{kind} {}: only core Services are supported",
                if group.is_empty() { "core" } else { group },
                r.name
            ),
        ));
    }
    let namespace = r.namespace.unwrap_or(route_namespace);
    // Names become upstream names in the config; anything an API server would not store is simply
    // not found (and cannot make the engine reject the config).
    if !is_object_name(r.name) || !is_object_name(namespace) {
        return Err(Problem::new(
            reason::BACKEND_NOT_FOUND,
            format!("{:?} is not a valid Service reference", r.name),
        ));
    }
    // The grant is checked before the Service is looked up, so a route cannot probe which
    // Services exist in namespaces that did not grant it access.
    // ReferenceGrant: "From describes the trusted namespaces and kinds that can reference the
    // resources described in "To"": a grant from HTTPRoutes does not admit GRPCRoutes.
    let from = grants::From {
        group: GATEWAY_GROUP,
        kind: route_kind.as_str(),
        namespace: route_namespace,
    };
    let to = grants::To {
        group: "",
        kind: "Service",
        namespace,
        name: r.name,
    };
    if !grants::permitted(lookup.grants(), from, to) {
        return Err(Problem::new(
            reason::REF_NOT_PERMITTED,
            format!(
                "no ReferenceGrant in namespace {namespace} allows {}s from {route_namespace} to use Service {}",
                route_kind.as_str(),
                r.name
            ),
        ));
    }
    let service = lookup.service(namespace, r.name).ok_or_else(|| {
        Problem::new(
            reason::BACKEND_NOT_FOUND,
            format!("Service {namespace}/{} does not exist", r.name),
        )
    })?;
    let Some(port_number) = r.port else {
        return Err(Problem::new(
            reason::BACKEND_NOT_FOUND,
            format!("backendRef to Service {namespace}/{} has no port", r.name),
        ));
    };
    let spec = service.spec.as_ref();
    // "ExternalName services can refer to CNAME DNS records that may live outside of the cluster
    // ... Implementations SHOULD NOT support ExternalName Services."
    if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        return Err(Problem::new(
            reason::INVALID_KIND,
            format!(
                "Service {namespace}/{} is of type ExternalName, which is not supported",
                r.name
            ),
        ));
    }
    let port = spec
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.port == port_number))
        .ok_or_else(|| {
            Problem::new(
                reason::BACKEND_NOT_FOUND,
                format!("Service {namespace}/{} has no port {port_number}", r.name),
            )
        })?;
    if let Some(protocol) = port.protocol.as_deref().filter(|p| *p != "TCP") {
        return Err(Problem::new(
            reason::UNSUPPORTED_PROTOCOL,
            format!(
                "Service {namespace}/{} port {port_number} is {protocol}; HTTP needs TCP",
                r.name
            ),
        ));
    }
    let app_protocol = match (route_kind, port.app_protocol.as_deref()) {
        (RouteKind::Http, Some(app)) if !SUPPORTED_APP_PROTOCOLS.contains(&app) => {
            return Err(Problem::new(
                reason::UNSUPPORTED_PROTOCOL,
                format!(
                    "Service {namespace}/{} port {port_number} has appProtocol {app}, which this data plane cannot speak",
                    r.name
                ),
            ));
        }
        (RouteKind::Http, app) => app.map(str::to_owned),
        // gRPC needs HTTP/2 to the backend. GRPCBackendRef: "If a Service appProtocol isn't
        // specified, an implementation MAY infer the backend protocol through its own means.
        // Implementations MAY infer the protocol from the Route type referring to the backend
        // Service." We infer h2c; a port that says it speaks something else cannot carry gRPC.
        (RouteKind::Grpc, None | Some(H2C)) => Some(H2C.to_owned()),
        (RouteKind::Grpc, Some(app)) => {
            return Err(Problem::new(
                reason::UNSUPPORTED_PROTOCOL,
                format!(
                    "Service {namespace}/{} port {port_number} has appProtocol {app}; a GRPCRoute needs HTTP/2 to its backends ({H2C}, or no appProtocol)",
                    r.name
                ),
            ));
        }
    };
    let port_u16 = u16::try_from(port_number)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| {
            Problem::new(
                reason::BACKEND_NOT_FOUND,
                format!("{port_number} is not a port number"),
            )
        })?;
    Ok(BackendTarget {
        namespace: namespace.to_owned(),
        service: r.name.to_owned(),
        port: port_u16,
        app_protocol,
        endpoints: endpoints(lookup, namespace, r.name, port),
    })
}

fn is_object_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.bytes().all(|b| b.is_ascii_graphic())
}

/// Ready endpoints of a Service port, from every EndpointSlice labelled with the Service's name.
/// This covers Services with a selector (slices maintained by Kubernetes), headless Services (same
/// slices, no cluster IP) and Services without a selector (slices written by hand) alike. A slice
/// port belongs to the Service port with the same name (both unnamed for single-port Services).
/// "ready ... nil should be interpreted as "true"" (EndpointConditions).
fn endpoints(
    lookup: &Lookup<'_>,
    namespace: &str,
    service: &str,
    port: &ServicePort,
) -> Vec<Endpoint> {
    let wanted = port.name.as_deref().unwrap_or_default();
    let mut out = Vec::new();
    for slice in lookup.endpoint_slices(namespace, service) {
        let Some(target_port) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref().unwrap_or_default() == wanted)
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
        else {
            continue;
        };
        for endpoint in slice.endpoints.iter().flatten() {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready {
                continue;
            }
            for address in &endpoint.addresses {
                out.push(Endpoint {
                    address: address.clone(),
                    port: target_port,
                });
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
