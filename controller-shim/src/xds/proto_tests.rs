//! Unit tests for [`super`]: documents to protobuf, strictly.

use prost::Message as _;

use super::*;

fn listener_node() -> Node {
    Node::map([
        ("name", Node::from("gateway-80")),
        (
            "address",
            Node::map([(
                "socket_address",
                Node::map([
                    ("address", Node::from("0.0.0.0")),
                    ("port_value", Node::from(8080_u16)),
                ]),
            )]),
        ),
        (
            "filter_chains",
            Node::list([Node::map([
                ("name", Node::from("gateway-wasm:80:http")),
                (
                    "filters",
                    Node::list([Node::map([
                        (
                            "name",
                            Node::from("envoy.filters.network.http_connection_manager"),
                        ),
                        (
                            "typed_config",
                            Node::typed(
                                "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                [
                                    ("stat_prefix", Node::from("gateway_80")),
                                    ("use_remote_address", Node::from(true)),
                                    ("zeta", Node::from("last")),
                                    ("alpha", Node::from("first")),
                                ],
                            ),
                        ),
                    ])]),
                ),
            ])]),
        ),
    ])
}

#[test]
fn a_listener_keeps_its_shell_fields_and_its_typed_config_as_a_typed_struct() {
    let listener = listener(&listener_node()).unwrap();
    assert_eq!(listener.name, "gateway-80");
    let Some(AddressKind::SocketAddress(socket)) = listener.address.and_then(|a| a.address) else {
        panic!("no socket address");
    };
    assert_eq!(socket.address, "0.0.0.0");
    assert_eq!(socket.port_specifier, Some(PortSpecifier::PortValue(8080)));
    let chain = &listener.filter_chains[0];
    assert_eq!(chain.name, "gateway-wasm:80:http");
    let Some(filter::ConfigType::TypedConfig(any)) = &chain.filters[0].config_type else {
        panic!("no typed config");
    };
    assert_eq!(any.type_url, wire::TYPED_STRUCT_TYPE);
    let typed = wire::TypedStruct::decode(any.value.as_slice()).unwrap();
    assert!(typed.type_url.ends_with("HttpConnectionManager"));
    let fields = typed.value.unwrap().fields;
    assert_eq!(
        fields["stat_prefix"].kind,
        Some(wire::Kind::String("gateway_80".into()))
    );
    assert_eq!(
        fields["use_remote_address"].kind,
        Some(wire::Kind::Bool(true))
    );
    assert!(!fields.contains_key("@type"));
}

#[test]
fn equal_documents_encode_to_equal_bytes() {
    // Envoy hashes a listener to decide whether it changed; a map encoded in another order
    // would drain and rebuild a listener that did not change.
    let a = pack(&listener(&listener_node()).unwrap());
    for _ in 0..20 {
        assert_eq!(pack(&listener(&listener_node()).unwrap()), a);
    }
}

#[test]
fn an_unknown_field_is_an_error_naming_its_path() {
    let node = listener_node().with("drain_type", "MODIFY_ONLY");
    let error = listener(&node).unwrap_err().to_string();
    assert!(error.contains("listener.drain_type"), "{error}");
    assert!(error.contains("not converted"), "{error}");

    let cluster_node = Node::typed(
        "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        [
            ("name", Node::from("a")),
            ("lb_policy", Node::from("RING_HASH")),
        ],
    );
    let error = cluster(&cluster_node).unwrap_err().to_string();
    assert!(error.contains("cluster.lb_policy"), "{error}");
}

#[test]
fn a_cluster_with_eds_and_protocol_options() {
    let node = Node::typed(
        "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        [
            ("name", Node::from("app/api:8080")),
            ("type", Node::from("EDS")),
            (
                "eds_cluster_config",
                Node::map([(
                    "eds_config",
                    Node::map([
                        ("ads", Node::Map(Vec::new())),
                        ("resource_api_version", Node::from("V3")),
                    ]),
                )]),
            ),
            ("connect_timeout", Node::from("0.250s")),
            ("dns_lookup_family", Node::from("V4_PREFERRED")),
            (
                "typed_extension_protocol_options",
                Node::map([(
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    Node::typed(
                        "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        [],
                    ),
                )]),
            ),
        ],
    );
    let cluster = cluster(&node).unwrap();
    assert_eq!(cluster.name, "app/api:8080");
    assert_eq!(
        cluster.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
    );
    assert_eq!(
        cluster.connect_timeout,
        Some(Duration {
            seconds: 0,
            nanos: 250_000_000
        })
    );
    assert_eq!(
        cluster.dns_lookup_family,
        DnsLookupFamily::V4Preferred as i32
    );
    let eds = cluster.eds_cluster_config.unwrap().eds_config.unwrap();
    assert_eq!(
        eds.config_source_specifier,
        Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {}))
    );
    assert_eq!(eds.resource_api_version, ApiVersion::V3 as i32);
    assert_eq!(cluster.typed_extension_protocol_options.len(), 1);
}

#[test]
fn a_wrong_type_or_duration_is_named() {
    let node = Node::typed(
        "type.googleapis.com/envoy.config.listener.v3.Listener",
        [("name", Node::from("a"))],
    );
    let error = cluster(&node).unwrap_err().to_string();
    assert!(
        error.contains("expected type.googleapis.com/envoy.config.cluster.v3.Cluster"),
        "{error}"
    );
    for bad in ["5", "s", "1.2.3s", "-x s", "1.0000000001s"] {
        assert!(duration(&Node::from(bad), "t").is_err(), "{bad}");
    }
    assert_eq!(duration(&Node::from("5s"), "t").unwrap().seconds, 5);
}

#[test]
fn a_secret_carries_the_pem_inline() {
    let secret = secret(&SdsSecret {
        name: "gateway-wasm:https:0".into(),
        certificate_chain_pem: "CERT".into(),
        private_key_pem: "KEY".into(),
    });
    assert_eq!(secret.name, "gateway-wasm:https:0");
    let Some(secret::Type::TlsCertificate(certificate)) = secret.r#type else {
        panic!("not a TLS certificate");
    };
    assert_eq!(
        certificate.certificate_chain.unwrap().specifier,
        Some(data_source::Specifier::InlineString("CERT".into()))
    );
}
