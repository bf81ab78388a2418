//! The bootstrap: admin, node, listeners with their filter chains, and where CDS and ECDS come from.

use std::collections::BTreeMap;
use std::path::Path;

use engine::config::{Listener, Protocol};

use super::edge;
use super::extension::filter_type;
use super::node::Node;
use super::{
    CLUSTERS_FILE, Delivery, EXTENSION_CONFIG_FILE, EnvoyFilter, EnvoyOptions, FILTER_CHAIN_PREFIX,
    FILTER_NAME, ListenerExtras, ROUTE_METADATA_FILTER_CHAIN, ROUTE_METADATA_NAMESPACE,
    RenderError, RenderedFile, SdsSecret, UPSTREAM_HEADER,
};
use crate::resolution::GatewayResult;

pub(super) const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
pub(super) const ROUTER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const TLS_CONTEXT_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
const TLS_INSPECTOR_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector";

fn path_text(options: &EnvoyOptions, relative: &str) -> String {
    options.config_dir.join(relative).display().to_string()
}

fn dir_text(options: &EnvoyOptions, relative: &str) -> String {
    let path = options.config_dir.join(relative);
    path.parent()
        .unwrap_or(Path::new("/"))
        .display()
        .to_string()
}

/// A `path_config_source` that reloads when a file is renamed into the watched directory.
fn file_source(options: &EnvoyOptions, relative: &str) -> Node {
    Node::map([
        ("resource_api_version", Node::from("V3")),
        (
            "path_config_source",
            Node::map([
                ("path", Node::from(path_text(options, relative))),
                (
                    "watched_directory",
                    Node::map([("path", Node::from(dir_text(options, relative)))]),
                ),
            ]),
        ),
    ])
}

/// Where a resource comes from: a watched file in file mode, the ADS stream in xDS mode.
fn config_source(options: &EnvoyOptions, relative: &str) -> Node {
    match options.delivery {
        Delivery::Files => file_source(options, relative),
        Delivery::Ads(_) => ads_source(),
    }
}

/// `{ads: {}, resource_api_version: V3}`: the resource arrives on the aggregated stream.
pub(super) fn ads_source() -> Node {
    Node::map([
        ("ads", Node::Map(Vec::new())),
        ("resource_api_version", Node::from("V3")),
    ])
}

pub(super) fn bootstrap(
    result: &GatewayResult,
    options: &EnvoyOptions,
    listeners: Vec<Node>,
) -> Node {
    Node::map([
        (
            "node",
            Node::map([
                ("id", Node::from(format!("gateway-wasm/{}", result.gateway))),
                ("cluster", Node::from("gateway-wasm")),
            ]),
        ),
        (
            "admin",
            Node::map([
                ("address", socket_address("127.0.0.1", options.admin_port)),
                // Stats and /ready stay readable when the connection limit is reached.
                ("ignore_global_conn_limit", Node::from(true)),
            ]),
        ),
        (
            "dynamic_resources",
            Node::map([("cds_config", file_source(options, CLUSTERS_FILE))]),
        ),
        (
            "static_resources",
            Node::map([("listeners", Node::List(listeners))]),
        ),
        ("overload_manager", edge::overload_manager(&options.edge)),
    ])
}

pub(super) fn socket_address(address: &str, port: u16) -> Node {
    Node::map([(
        "socket_address",
        Node::map([
            ("address", Node::from(address)),
            ("port_value", Node::from(port)),
        ]),
    )])
}

/// The HTTP connection manager every filter chain shares: the wasm filter from ECDS, then the
/// router, and a single catch-all route that forwards to the cluster the filter named.
fn connection_manager(options: &EnvoyOptions, gateway_port: u16) -> Node {
    let route = Node::map([
        ("name", Node::from("gateway-wasm")),
        ("match", Node::map([("prefix", Node::from("/"))])),
        (
            "route",
            Node::map([
                ("cluster_header", Node::from(UPSTREAM_HEADER)),
                // The filter names a cluster CDS has not delivered yet: a transient 503.
                (
                    "cluster_not_found_response_code",
                    Node::from("SERVICE_UNAVAILABLE"),
                ),
                // No route-wide timeout: the filter sets x-envoy-upstream-rq-timeout-ms when a rule
                // has `timeouts.request` (Gateway API leaves the default to the implementation).
                ("timeout", Node::from("0s")),
            ]),
        ),
        // The upstream selector never reaches a backend. Envoy writes `x-envoy-original-path` only
        // when its own route rewrites the path, which this route never does: a copy here came from
        // the client, and a backend must not take it for the path the gateway was asked for.
        (
            "request_headers_to_remove",
            Node::list([
                Node::from(UPSTREAM_HEADER),
                Node::from("x-envoy-original-path"),
            ]),
        ),
    ]);
    // The dynamic module has no `xds.filter_chain_name` property: it reads the Gateway port from
    // the route's metadata (one route per filter chain, so per Gateway port).
    let route = match options.filter {
        EnvoyFilter::Wasm => route,
        EnvoyFilter::DynamicModule(_) => route.with(
            "metadata",
            Node::map([(
                "filter_metadata",
                Node::map([(
                    ROUTE_METADATA_NAMESPACE,
                    Node::map([(
                        ROUTE_METADATA_FILTER_CHAIN,
                        Node::from(format!("{FILTER_CHAIN_PREFIX}{gateway_port}")),
                    )]),
                )]),
            )]),
        ),
    };
    let wasm = Node::map([
        ("name", Node::from(FILTER_NAME)),
        (
            "config_discovery",
            Node::map([
                (
                    "config_source",
                    config_source(options, EXTENSION_CONFIG_FILE),
                ),
                // Listeners wait for the first configuration rather than run without the filter.
                ("apply_default_config_without_warming", Node::from(false)),
                ("type_urls", Node::list([Node::from(filter_type(options))])),
            ]),
        ),
    ]);
    let router = Node::map([
        ("name", Node::from("envoy.filters.http.router")),
        ("typed_config", Node::typed(ROUTER_TYPE, [])),
    ]);
    // `use_remote_address`: the client is the peer, not whatever `x-forwarded-for` claims; with no
    // `internal_address_config`, Envoy 1.40 treats no peer as internal and strips its router
    // controls (`x-envoy-retry-on`, …) from every request before the filter runs.
    let mut hcm = Node::typed(
        HCM_TYPE,
        [
            ("stat_prefix", Node::from(format!("gateway_{gateway_port}"))),
            ("codec_type", Node::from("AUTO")),
            ("use_remote_address", Node::from(true)),
        ],
    );
    for (key, value) in edge::connection_manager_fields(&options.edge) {
        hcm = hcm.with(key, value);
    }
    let hcm = hcm
        .with(
            "upgrade_configs",
            Node::list([Node::map([("upgrade_type", Node::from("websocket"))])]),
        )
        .with(
            "route_config",
            Node::map([
                ("name", Node::from("gateway-wasm")),
                (
                    "virtual_hosts",
                    Node::list([Node::map([
                        ("name", Node::from("gateway-wasm")),
                        ("domains", Node::list([Node::from("*")])),
                        ("routes", Node::list([route])),
                    ])]),
                ),
            ]),
        )
        .with("http_filters", Node::list([wasm, router]));
    Node::map([
        (
            "name",
            Node::from("envoy.filters.network.http_connection_manager"),
        ),
        ("typed_config", hcm),
    ])
}

fn file_name_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One Envoy listener per Gateway port; TLS files are added to `out`.
pub(super) fn listeners(
    result: &GatewayResult,
    options: &EnvoyOptions,
    out: &mut ListenerExtras,
) -> Result<Vec<Node>, RenderError> {
    let mut by_port: BTreeMap<u16, Vec<&Listener>> = BTreeMap::new();
    for listener in &result.config.listeners {
        by_port.entry(listener.port).or_default().push(listener);
    }
    let mut nodes = Vec::new();
    for (port, listeners) in by_port {
        let Some(first) = listeners.first() else {
            continue;
        };
        let protocol = first.protocol;
        for other in listeners.iter().filter(|l| l.protocol != protocol) {
            out.warnings.push(format!(
                "listener {} ({:?}) shares port {port} with {} ({:?}): not served",
                other.name, other.protocol, first.name, protocol
            ));
        }
        let same: Vec<&Listener> = listeners
            .iter()
            .copied()
            .filter(|l| l.protocol == protocol)
            .collect();
        let chains = match protocol {
            Protocol::Http => vec![http_chain(options, port, &same)],
            Protocol::Https => https_chains(result, options, port, &same, out),
        };
        if chains.is_empty() {
            out.warnings.push(format!(
                "no listener on port {port} can be served: no Envoy listener for it"
            ));
            continue;
        }
        let bind_port = options.bind_port(port)?;
        let mut node = Node::map([
            ("name", Node::from(format!("gateway-{port}"))),
            ("address", socket_address(&options.bind_address, bind_port)),
            (
                "per_connection_buffer_limit_bytes",
                Node::Int(edge::BUFFER_LIMIT_BYTES),
            ),
        ]);
        if protocol == Protocol::Https {
            node = node.with(
                "listener_filters",
                Node::list([Node::map([
                    ("name", Node::from("envoy.filters.listener.tls_inspector")),
                    ("typed_config", Node::typed(TLS_INSPECTOR_TYPE, [])),
                ])]),
            );
        }
        nodes.push(node.with("filter_chains", Node::List(chains)));
    }
    Ok(nodes)
}

fn http_chain(options: &EnvoyOptions, port: u16, listeners: &[&Listener]) -> Node {
    let names: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
    Node::map([
        (
            "name",
            Node::from(format!("{FILTER_CHAIN_PREFIX}{port}:{}", names.join(","))),
        ),
        ("filters", Node::list([connection_manager(options, port)])),
    ])
}

fn https_chains(
    result: &GatewayResult,
    options: &EnvoyOptions,
    port: u16,
    listeners: &[&Listener],
    out: &mut ListenerExtras,
) -> Vec<Node> {
    let mut chains = Vec::new();
    let mut server_names: Vec<Option<&str>> = Vec::new();
    for listener in listeners {
        let hostname = listener.hostname.as_deref();
        if server_names.contains(&hostname) {
            out.warnings.push(format!(
                "listener {} repeats hostname {} on port {port}: not served",
                listener.name,
                hostname.unwrap_or("<any>")
            ));
            continue;
        }
        let certificates = result
            .tls
            .get(&listener.name)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if certificates.is_empty() {
            out.warnings.push(format!(
                "HTTPS listener {} has no usable certificate: not served",
                listener.name
            ));
            continue;
        }
        server_names.push(hostname);
        let certificates_key = match options.delivery {
            Delivery::Files => "tls_certificates",
            Delivery::Ads(_) => "tls_certificate_sds_secret_configs",
        };
        let mut tls_certificates = Vec::new();
        for (i, certificate) in certificates.iter().enumerate() {
            tls_certificates.push(match options.delivery {
                Delivery::Files => certificate_files(options, &listener.name, i, certificate, out),
                Delivery::Ads(_) => certificate_secret(&listener.name, i, certificate, out),
            });
        }
        let mut chain = Node::map([(
            "name",
            Node::from(format!("{FILTER_CHAIN_PREFIX}{port}:{}", listener.name)),
        )]);
        if let Some(hostname) = hostname {
            chain = chain.with(
                "filter_chain_match",
                Node::map([("server_names", Node::list([Node::from(hostname)]))]),
            );
        }
        chain = chain.with(
            "transport_socket",
            Node::map([
                ("name", Node::from("envoy.transport_sockets.tls")),
                (
                    "typed_config",
                    Node::typed(
                        TLS_CONTEXT_TYPE,
                        [(
                            "common_tls_context",
                            Node::map([
                                (
                                    "alpn_protocols",
                                    Node::list([Node::from("h2"), Node::from("http/1.1")]),
                                ),
                                (certificates_key, Node::List(tls_certificates)),
                            ]),
                        )],
                    ),
                ),
            ]),
        );
        chains.push(chain.with("filters", Node::list([connection_manager(options, port)])));
    }
    chains
}

/// File mode: the certificate and key written next to the bootstrap, referenced by file name.
fn certificate_files(
    options: &EnvoyOptions,
    listener: &str,
    index: usize,
    certificate: &crate::resolution::TlsCertificate,
    out: &mut ListenerExtras,
) -> Node {
    let stem = format!("tls/{}-{index}", file_name_part(listener));
    let cert_path = format!("{stem}.crt");
    let key_path = format!("{stem}.key");
    out.files.push(RenderedFile {
        path: cert_path.clone().into(),
        content: certificate.certificate_pem.clone(),
        private: false,
    });
    out.files.push(RenderedFile {
        path: key_path.clone().into(),
        content: certificate.private_key_pem.clone(),
        private: true,
    });
    Node::map([
        (
            "certificate_chain",
            Node::map([("filename", Node::from(path_text(options, &cert_path)))]),
        ),
        (
            "private_key",
            Node::map([("filename", Node::from(path_text(options, &key_path)))]),
        ),
    ])
}

/// xDS mode: an SDS secret named after the listener, fetched on the ADS stream. A rotated
/// certificate is a new version of the same secret, which Envoy applies to new connections
/// without touching the listener.
fn certificate_secret(
    listener: &str,
    index: usize,
    certificate: &crate::resolution::TlsCertificate,
    out: &mut ListenerExtras,
) -> Node {
    let name = format!("{FILTER_CHAIN_PREFIX}{listener}:{index}");
    out.secrets.push(SdsSecret {
        name: name.clone(),
        certificate_chain_pem: certificate.certificate_pem.clone(),
        private_key_pem: certificate.private_key_pem.clone(),
    });
    Node::map([("name", Node::from(name)), ("sds_config", ads_source())])
}
