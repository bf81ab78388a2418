//! The bootstrap of an xDS-mode Envoy: admin, the node (naming the Gateway it serves and how it
//! binds), one static cluster that reaches the controller-shim, and ADS for everything else.
//! Listeners, clusters, certificates and the filter (with its module) all arrive on that one
//! stream, so this file never changes while the Gateway does.

use std::collections::BTreeMap;

use super::bootstrap::{ads_source, socket_address};
use super::edge::{self, EdgeOptions};
use super::node::Node;
use super::{EnvoyOptions, RenderError};
use crate::resolution::{BackendTarget, Endpoint, ObjectKey};

/// The bootstrap cluster that reaches the controller-shim: the ADS stream and the module download.
pub const XDS_CLUSTER: &str = "gateway-wasm-xds";
/// The node metadata key holding what the xDS server needs to know about an Envoy.
pub const NODE_METADATA_KEY: &str = "gateway_wasm";
/// Where the shim serves modules: `<prefix><sha256 hex>.wasm`.
pub const MODULE_PATH_PREFIX: &str = "/modules/sha256/";

/// Which ADS variant Envoy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdsProtocol {
    /// State of the world (`GRPC`): every response carries the whole set of its type.
    #[default]
    StateOfTheWorld,
    /// Incremental (`DELTA_GRPC`): responses carry what changed and what was removed.
    Delta,
}

/// How one Envoy binds its listeners. It travels in the node metadata, so one xDS server can feed
/// Envoys that bind differently (several on one host in tests, or `--port-offset` to run
/// unprivileged).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Binding {
    pub bind_address: String,
    pub port_offset: u16,
    pub port_map: BTreeMap<u16, u16>,
}

impl Default for Binding {
    fn default() -> Binding {
        Binding {
            bind_address: "0.0.0.0".to_owned(),
            port_offset: 0,
            port_map: BTreeMap::new(),
        }
    }
}

impl Binding {
    /// Rendering options with this binding.
    pub fn apply(&self, options: &EnvoyOptions) -> EnvoyOptions {
        let mut options = options.clone();
        options.bind_address.clone_from(&self.bind_address);
        options.port_offset = self.port_offset;
        options.port_map.clone_from(&self.port_map);
        options
    }
}

/// What `controller-shim bootstrap` needs.
#[derive(Debug, Clone)]
pub struct AdsBootstrap {
    /// The shim's xDS address as the Envoy reaches it (a DNS name or an IP address).
    pub xds_host: String,
    pub xds_port: u16,
    pub gateway: ObjectKey,
    /// `node.id` (Envoy's `--service-node` overrides it, e.g. with the pod name).
    pub node_id: String,
    pub admin_port: u16,
    pub protocol: AdsProtocol,
    pub binding: Binding,
    /// Only the bootstrap-level part counts here (the overload manager's heap and connection
    /// limits); the listeners' edge settings come from the shim's flags, with LDS.
    pub edge: EdgeOptions,
}

/// The minimal xDS-mode bootstrap, as YAML.
pub fn ads_bootstrap(config: &AdsBootstrap) -> Result<String, RenderError> {
    super::to_yaml("xDS bootstrap", &bootstrap_node(config))
}

fn bootstrap_node(config: &AdsBootstrap) -> Node {
    let mut port_map = Vec::new();
    for (gateway_port, bind_port) in &config.binding.port_map {
        port_map.push((gateway_port.to_string(), Node::from(*bind_port)));
    }
    let metadata = Node::map([(
        NODE_METADATA_KEY,
        Node::map([
            ("gateway", Node::from(config.gateway.to_string())),
            ("bind_address", Node::from(&config.binding.bind_address)),
            ("port_offset", Node::from(config.binding.port_offset)),
            ("port_map", Node::Map(port_map)),
        ]),
    )]);
    // The shim's address rendered as any other backend: an IP address is a STATIC endpoint, a
    // name is resolved by DNS (a Kubernetes Service name), and h2c because gRPC needs HTTP/2.
    let shim = BackendTarget {
        namespace: String::new(),
        service: String::new(),
        port: config.xds_port,
        app_protocol: Some(super::clusters::H2C.to_owned()),
        endpoints: vec![Endpoint {
            address: config.xds_host.clone(),
            port: config.xds_port,
        }],
    };
    let api_type = match config.protocol {
        AdsProtocol::StateOfTheWorld => "GRPC",
        AdsProtocol::Delta => "DELTA_GRPC",
    };
    Node::map([
        (
            "node",
            Node::map([
                ("id", Node::from(&config.node_id)),
                ("cluster", Node::from("gateway-wasm")),
                ("metadata", metadata),
            ]),
        ),
        (
            "admin",
            Node::map([
                ("address", socket_address("127.0.0.1", config.admin_port)),
                // Stats and /ready stay readable when the connection limit is reached.
                ("ignore_global_conn_limit", Node::from(true)),
            ]),
        ),
        (
            "dynamic_resources",
            Node::map([
                (
                    "ads_config",
                    Node::map([
                        ("api_type", Node::from(api_type)),
                        ("transport_api_version", Node::from("V3")),
                        (
                            "grpc_services",
                            Node::list([Node::map([(
                                "envoy_grpc",
                                Node::map([
                                    ("cluster_name", Node::from(XDS_CLUSTER)),
                                    // Reconnect within seconds after a shim restart (Envoy's
                                    // default backoff grows to 30 s).
                                    (
                                        "retry_policy",
                                        Node::map([(
                                            "retry_back_off",
                                            Node::map([
                                                ("base_interval", Node::from("0.250s")),
                                                ("max_interval", Node::from("5s")),
                                            ]),
                                        )]),
                                    ),
                                ]),
                            )])]),
                        ),
                        ("set_node_on_first_message_only", Node::from(true)),
                    ]),
                ),
                ("cds_config", ads_source()),
                ("lds_config", ads_source()),
            ]),
        ),
        (
            "static_resources",
            Node::map([(
                "clusters",
                // A bootstrap cluster is the message itself, not an `Any`.
                Node::list([super::clusters::cluster(XDS_CLUSTER, &shim).without("@type")]),
            )]),
        ),
        // The same heap and connection limits as the file bootstrap's (edge-safe by default).
        ("overload_manager", edge::overload_manager(&config.edge)),
    ])
}

/// The listener that brings a new module into an Envoy's code cache before any extension config
/// names it: it binds no port, and its only filter is the wasm filter configured inline with the
/// new module (and the current route table), so creating it downloads the module through the
/// listener's own initialization, the one path on which Envoy 1.40 fetches remote code for a
/// running server. The xDS server removes it once the module was downloaded.
pub const MODULE_WARMUP_LISTENER: &str = "gateway-wasm-module-warmup";

/// [`MODULE_WARMUP_LISTENER`] for the filter config `extension_config` (a `TypedExtensionConfig`).
pub fn module_warmup_listener(extension_config: &Node) -> Node {
    let wasm = match extension_config {
        Node::Map(entries) => entries
            .iter()
            .find(|(k, _)| k == "typed_config")
            .map(|(_, v)| v.clone()),
        _ => None,
    }
    .unwrap_or_else(|| Node::Map(Vec::new()));
    let connection_manager = Node::typed(
        super::bootstrap::HCM_TYPE,
        [
            ("stat_prefix", Node::from("gateway_wasm_module_warmup")),
            (
                "route_config",
                Node::map([("name", Node::from(MODULE_WARMUP_LISTENER))]),
            ),
            (
                "http_filters",
                Node::list([
                    Node::map([
                        ("name", Node::from(super::FILTER_NAME)),
                        ("typed_config", wasm),
                    ]),
                    Node::map([
                        ("name", Node::from("envoy.filters.http.router")),
                        (
                            "typed_config",
                            Node::typed(super::bootstrap::ROUTER_TYPE, []),
                        ),
                    ]),
                ]),
            ),
        ],
    );
    Node::map([
        ("name", Node::from(MODULE_WARMUP_LISTENER)),
        ("address", socket_address("127.0.0.1", 0)),
        ("bind_to_port", Node::from(false)),
        (
            "filter_chains",
            Node::list([Node::map([(
                "filters",
                Node::list([Node::map([
                    (
                        "name",
                        Node::from("envoy.filters.network.http_connection_manager"),
                    ),
                    ("typed_config", connection_manager),
                ])]),
            )])]),
        ),
    ])
}
