//! Clusters for the backends, delivered through a CDS file, and the PluginConfig's upstream names.

use std::net::IpAddr;

use engine::PluginConfig;

use super::Delivery;
use super::node::Node;
use crate::resolution::{BackendTarget, GatewayResult};

const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const HTTP_OPTIONS_TYPE: &str =
    "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
/// The Service port `appProtocol` that asks for HTTP/2 over cleartext (Gateway API GEP-1911).
pub(super) const H2C: &str = "kubernetes.io/h2c";

/// The Envoy cluster name for a backend key. Keys are already unique and readable
/// (`namespace/service:port`); Envoy accepts them as cluster names and shows them in stats with `:`
/// turned into `_` (`cluster.app/api_8080.upstream_rq_total`).
pub fn cluster_name(key: &str) -> String {
    key.to_owned()
}

/// The PluginConfig with every usable backend's upstream set to its cluster name, and the clusters.
pub(super) fn clusters(
    result: &GatewayResult,
    warnings: &mut Vec<String>,
) -> (PluginConfig, Vec<Node>) {
    let mut config = result.config.clone();
    let mut nodes = Vec::new();
    for (key, backend) in &mut config.backends {
        if backend.invalid.is_some() {
            continue;
        }
        match result.backends.get(key) {
            Some(target) => {
                let name = cluster_name(key);
                nodes.push(cluster(&name, target));
                backend.upstream = Some(name);
            }
            None => warnings.push(format!(
                "backend {key} has no resolved target: requests to it get 503 (no such cluster)"
            )),
        }
    }
    (config, nodes)
}

pub(super) fn cluster(name: &str, target: &BackendTarget) -> Node {
    let dns = target.endpoints.is_empty()
        || target
            .endpoints
            .iter()
            .any(|e| e.address.parse::<IpAddr>().is_err());
    let addresses: Vec<(String, u16)> = if target.endpoints.is_empty() {
        // No EndpointSlice known: the Service's cluster DNS name.
        vec![(
            format!("{}.{}.svc", target.service, target.namespace),
            target.port,
        )]
    } else {
        target
            .endpoints
            .iter()
            .map(|e| (e.address.clone(), e.port))
            .collect()
    };
    let endpoints = Node::list(addresses.into_iter().map(|(address, port)| {
        Node::map([(
            "endpoint",
            Node::map([(
                "address",
                Node::map([(
                    "socket_address",
                    Node::map([
                        ("address", Node::from(address)),
                        ("port_value", Node::from(port)),
                    ]),
                )]),
            )]),
        )])
    }));
    let mut node = Node::typed(
        CLUSTER_TYPE,
        [
            ("name", Node::from(name)),
            (
                "type",
                Node::from(if dns { "STRICT_DNS" } else { "STATIC" }),
            ),
            ("connect_timeout", Node::from("5s")),
            (
                "per_connection_buffer_limit_bytes",
                Node::Int(super::edge::BUFFER_LIMIT_BYTES),
            ),
        ],
    );
    if dns {
        node = node.with("dns_lookup_family", "V4_PREFERRED");
    }
    if target.app_protocol.as_deref() == Some(H2C) {
        node = node.with(
            "typed_extension_protocol_options",
            Node::map([(
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                Node::typed(
                    HTTP_OPTIONS_TYPE,
                    [(
                        "explicit_http_config",
                        Node::map([(
                            "http2_protocol_options",
                            super::edge::upstream_http2_options(),
                        )]),
                    )],
                ),
            )]),
        );
    }
    node.with(
        "load_assignment",
        Node::map([
            ("cluster_name", Node::from(name)),
            (
                "endpoints",
                Node::list([Node::map([("lb_endpoints", endpoints)])]),
            ),
        ]),
    )
}

/// The CDS file: a DiscoveryResponse-shaped document with the clusters as resources.
pub(super) fn discovery_file(clusters: Vec<Node>) -> Node {
    Node::map([("resources", Node::List(clusters))])
}

/// The clusters as a delivery serves them. Files: unchanged, endpoints inline. ADS: a cluster with
/// IP endpoints (from EndpointSlices) becomes an EDS cluster whose `ClusterLoadAssignment` is a
/// resource of its own, so an endpoint change updates the endpoints without re-creating (and
/// re-warming) the cluster; a cluster resolved through DNS keeps its inline endpoints.
pub(super) fn for_delivery(clusters: Vec<Node>, delivery: &Delivery) -> (Vec<Node>, Vec<Node>) {
    if *delivery == Delivery::Files {
        return (clusters, Vec::new());
    }
    let mut load_assignments = Vec::new();
    let clusters = clusters
        .into_iter()
        .map(|cluster| match to_eds(cluster) {
            Ok((cluster, assignment)) => {
                load_assignments.push(assignment);
                cluster
            }
            Err(cluster) => cluster,
        })
        .collect();
    (clusters, load_assignments)
}

/// A `STATIC` cluster → (the same cluster as `EDS` from ADS, its load assignment with `@type`);
/// any other cluster is handed back unchanged.
fn to_eds(cluster: Node) -> Result<(Node, Node), Node> {
    let Node::Map(entries) = &cluster else {
        return Err(cluster);
    };
    let is_static = entries
        .iter()
        .any(|(k, v)| k == "type" && *v == Node::from("STATIC"));
    let assignment = entries
        .iter()
        .find(|(k, _)| k == "load_assignment")
        .map(|(_, v)| v.clone());
    let (true, Some(Node::Map(assignment))) = (is_static, assignment) else {
        return Err(cluster);
    };
    let mut out = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        match key.as_str() {
            "type" => {
                out.push((key.clone(), Node::from("EDS")));
                out.push((
                    "eds_cluster_config".to_owned(),
                    Node::map([("eds_config", super::bootstrap::ads_source())]),
                ));
            }
            "load_assignment" => {}
            _ => out.push((key.clone(), value.clone())),
        }
    }
    let mut typed = vec![("@type".to_owned(), Node::from(LOAD_ASSIGNMENT_TYPE))];
    typed.extend(assignment);
    Ok((Node::Map(out), Node::Map(typed)))
}

const LOAD_ASSIGNMENT_TYPE: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
