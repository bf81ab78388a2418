//! From the rendered documents ([`Node`], in Envoy's JSON form, exactly what the file mode writes)
//! to the protobuf resources the xDS stream carries.
//!
//! Only the outer message of each resource is converted field by field (Listener, FilterChain,
//! Cluster, ClusterLoadAssignment, TypedExtensionConfig), with Envoy's own generated types; a field
//! this conversion does not know is an error naming its path, never dropped. Every `typed_config`
//! (the HTTP connection manager, the TLS context, the wasm filter, protocol options) goes to Envoy
//! as an `xds.type.v3.TypedStruct`: the same JSON document the file holds, which Envoy converts into
//! the message its `type_url` names, as it converts a YAML file. So the LDS listener and the file
//! bootstrap's listener carry the very same connection manager settings, with no second rendering.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, DiscoveryType, DnsLookupFamily, EdsClusterConfig,
};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, DataSource, SocketAddress,
    TransportSocket, TypedExtensionConfig, data_source, transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    Secret, TlsCertificate, secret,
};
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration, UInt32Value};
use prost::{Message as _, Name as _};

use crate::envoy::SdsSecret;
use crate::envoy::node::Node;

/// A rendered document that does not have the shape its resource type needs.
#[derive(Debug, thiserror::Error)]
#[error("xDS resource {path}: {message}")]
pub struct ProtoError {
    pub path: String,
    pub message: String,
}

fn error(path: &str, message: impl Into<String>) -> ProtoError {
    ProtoError {
        path: path.to_owned(),
        message: message.into(),
    }
}

type Result<T> = std::result::Result<T, ProtoError>;

fn entries<'a>(node: &'a Node, path: &str) -> Result<&'a [(String, Node)]> {
    match node {
        Node::Map(entries) => Ok(entries),
        _ => Err(error(path, "expected an object")),
    }
}

fn items<'a>(node: &'a Node, path: &str) -> Result<&'a [Node]> {
    match node {
        Node::List(items) => Ok(items),
        _ => Err(error(path, "expected a list")),
    }
}

fn string(node: &Node, path: &str) -> Result<String> {
    match node {
        Node::Str(s) => Ok(s.clone()),
        _ => Err(error(path, "expected a string")),
    }
}

fn boolean(node: &Node, path: &str) -> Result<bool> {
    match node {
        Node::Bool(b) => Ok(*b),
        _ => Err(error(path, "expected true or false")),
    }
}

fn unsigned(node: &Node, path: &str) -> Result<u32> {
    match node {
        Node::Int(n) => u32::try_from(*n).map_err(|_| error(path, format!("{n} is out of range"))),
        _ => Err(error(path, "expected an integer")),
    }
}

/// `"5s"`, `"0.250s"`: the JSON form of a `google.protobuf.Duration`.
fn duration(node: &Node, path: &str) -> Result<Duration> {
    let text = string(node, path)?;
    let bad = || error(path, format!("{text:?} is not a duration like \"5s\""));
    let number = text.strip_suffix('s').ok_or_else(bad)?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let seconds: i64 = whole.parse().map_err(|_| bad())?;
    let nanos = if fraction.is_empty() {
        0
    } else if fraction.len() <= 9 && fraction.bytes().all(|b| b.is_ascii_digit()) {
        let padded = format!("{fraction:0<9}");
        padded.parse::<i32>().map_err(|_| bad())?
    } else {
        return Err(bad());
    };
    Ok(Duration { seconds, nanos })
}

fn expect_type(node: &Node, path: &str, expected: &str) -> Result<()> {
    let found = string(node, path)?;
    if found == expected {
        Ok(())
    } else {
        Err(error(
            path,
            format!("@type is {found}, expected {expected}"),
        ))
    }
}

fn unknown(path: &str, key: &str) -> ProtoError {
    error(
        &format!("{path}.{key}"),
        "this field is not converted for xDS (add it to controller-shim/src/xds/proto.rs)",
    )
}

/// `google.protobuf.Struct` and its values, with a sorted map so that one document always encodes
/// to the same bytes: Envoy decides whether a listener changed by hashing it, and a map encoded in
/// random order would make it drain and rebuild unchanged listeners. (The generated type uses a
/// hash map.) Wire-compatible with `google/protobuf/struct.proto`.
pub mod wire {
    use std::collections::BTreeMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Struct {
        #[prost(btree_map = "string, message", tag = "1")]
        pub fields: BTreeMap<String, Value>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Value {
        #[prost(oneof = "Kind", tags = "1, 2, 3, 4, 5, 6")]
        pub kind: Option<Kind>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(int32, tag = "1")]
        Null(i32),
        #[prost(double, tag = "2")]
        Number(f64),
        #[prost(string, tag = "3")]
        String(String),
        #[prost(bool, tag = "4")]
        Bool(bool),
        #[prost(message, tag = "5")]
        Struct(Struct),
        #[prost(message, tag = "6")]
        List(ListValue),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListValue {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<Value>,
    }

    /// `xds.type.v3.TypedStruct` (`xds/type/v3/typed_struct.proto`): a JSON-shaped configuration and
    /// the message type it stands for. envoy-types does not generate the `xds.type` package.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypedStruct {
        #[prost(string, tag = "1")]
        pub type_url: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<Struct>,
    }

    pub const TYPED_STRUCT_TYPE: &str = "type.googleapis.com/xds.type.v3.TypedStruct";
}

fn value(node: &Node) -> wire::Value {
    let kind = match node {
        Node::Str(s) => wire::Kind::String(s.clone()),
        // JSON numbers; every integer we render is far below 2^53.
        #[allow(clippy::cast_precision_loss)]
        Node::Int(n) => wire::Kind::Number(*n as f64),
        Node::Float(x) => wire::Kind::Number(*x),
        Node::Bool(b) => wire::Kind::Bool(*b),
        Node::List(items) => wire::Kind::List(wire::ListValue {
            values: items.iter().map(value).collect(),
        }),
        Node::Map(entries) => wire::Kind::Struct(structure(entries)),
    };
    wire::Value { kind: Some(kind) }
}

fn structure(entries: &[(String, Node)]) -> wire::Struct {
    wire::Struct {
        fields: entries
            .iter()
            .map(|(k, v)| (k.clone(), value(v)))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// A `typed_config` document (`{"@type": T, ...}`) as `Any(TypedStruct{T, the rest})`.
pub fn typed_config(node: &Node, path: &str) -> Result<Any> {
    let fields = entries(node, path)?;
    let mut type_url = None;
    let mut rest = Vec::with_capacity(fields.len());
    for (key, value) in fields {
        if key == "@type" {
            type_url = Some(string(value, &format!("{path}.@type"))?);
        } else {
            rest.push((key.clone(), value.clone()));
        }
    }
    let type_url = type_url.ok_or_else(|| error(path, "a typed config needs an @type"))?;
    let typed = wire::TypedStruct {
        type_url,
        value: Some(structure(&rest)),
    };
    Ok(Any {
        type_url: wire::TYPED_STRUCT_TYPE.to_owned(),
        value: typed.encode_to_vec(),
    })
}

/// Packs a generated message.
pub fn pack<M: prost::Message + prost::Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

fn address(node: &Node, path: &str) -> Result<Address> {
    let mut out = Address::default();
    for (key, value) in entries(node, path)? {
        match key.as_str() {
            "socket_address" => {
                let here = format!("{path}.socket_address");
                let mut socket = SocketAddress::default();
                for (key, value) in entries(value, &here)? {
                    match key.as_str() {
                        "address" => socket.address = string(value, &here)?,
                        "port_value" => {
                            socket.port_specifier =
                                Some(PortSpecifier::PortValue(unsigned(value, &here)?));
                        }
                        other => return Err(unknown(&here, other)),
                    }
                }
                out.address = Some(AddressKind::SocketAddress(socket));
            }
            other => return Err(unknown(path, other)),
        }
    }
    Ok(out)
}

/// `{ads: {}, resource_api_version: V3}`, the only config source xDS resources name.
fn ads_config_source(node: &Node, path: &str) -> Result<ConfigSource> {
    let mut out = ConfigSource::default();
    for (key, value) in entries(node, path)? {
        match key.as_str() {
            "ads" => {
                out.config_source_specifier =
                    Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {}))
            }
            "resource_api_version" if *value == Node::from("V3") => {
                out.resource_api_version = ApiVersion::V3 as i32;
            }
            other => return Err(unknown(path, other)),
        }
    }
    Ok(out)
}

fn transport_socket(node: &Node, path: &str) -> Result<TransportSocket> {
    let mut out = TransportSocket::default();
    for (key, value) in entries(node, path)? {
        match key.as_str() {
            "name" => out.name = string(value, path)?,
            "typed_config" => {
                out.config_type = Some(transport_socket::ConfigType::TypedConfig(typed_config(
                    value,
                    &format!("{path}.typed_config"),
                )?));
            }
            other => return Err(unknown(path, other)),
        }
    }
    Ok(out)
}

fn filter_chain(node: &Node, path: &str) -> Result<FilterChain> {
    let mut out = FilterChain::default();
    for (key, value) in entries(node, path)? {
        match key.as_str() {
            "name" => out.name = string(value, path)?,
            "filter_chain_match" => {
                let here = format!("{path}.filter_chain_match");
                let mut matching = FilterChainMatch::default();
                for (key, value) in entries(value, &here)? {
                    match key.as_str() {
                        "server_names" => {
                            for name in items(value, &here)? {
                                matching.server_names.push(string(name, &here)?);
                            }
                        }
                        other => return Err(unknown(&here, other)),
                    }
                }
                out.filter_chain_match = Some(matching);
            }
            "filters" => {
                for (i, item) in items(value, path)?.iter().enumerate() {
                    let here = format!("{path}.filters[{i}]");
                    let mut network = Filter::default();
                    for (key, value) in entries(item, &here)? {
                        match key.as_str() {
                            "name" => network.name = string(value, &here)?,
                            "typed_config" => {
                                network.config_type = Some(filter::ConfigType::TypedConfig(
                                    typed_config(value, &format!("{here}.typed_config"))?,
                                ));
                            }
                            other => return Err(unknown(&here, other)),
                        }
                    }
                    out.filters.push(network);
                }
            }
            "transport_socket" => {
                out.transport_socket = Some(transport_socket(
                    value,
                    &format!("{path}.transport_socket"),
                )?);
            }
            other => return Err(unknown(path, other)),
        }
    }
    Ok(out)
}

/// An LDS listener from a rendered listener.
pub fn listener(node: &Node) -> Result<Listener> {
    let path = "listener";
    let mut out = Listener::default();
    for (key, value) in entries(node, path)? {
        match key.as_str() {
            "name" => out.name = string(value, path)?,
            "address" => out.address = Some(address(value, &format!("{path}.address"))?),
            "bind_to_port" => {
                out.bind_to_port = Some(BoolValue {
                    value: boolean(value, path)?,
                });
            }
            "per_connection_buffer_limit_bytes" => {
                out.per_connection_buffer_limit_bytes = Some(UInt32Value {
                    value: unsigned(value, path)?,
                });
            }
            "listener_filters" => {
                for (i, item) in items(value, path)?.iter().enumerate() {
                    let here = format!("{path}.listener_filters[{i}]");
                    let mut listener_filter = ListenerFilter::default();
                    for (key, value) in entries(item, &here)? {
                        match key.as_str() {
                            "name" => listener_filter.name = string(value, &here)?,
                            "typed_config" => {
                                listener_filter.config_type =
                                    Some(listener_filter::ConfigType::TypedConfig(typed_config(
                                        value,
                                        &format!("{here}.typed_config"),
                                    )?));
                            }
                            other => return Err(unknown(&here, other)),
                        }
                    }
                    out.listener_filters.push(listener_filter);
                }
            }
            "filter_chains" => {
                for (i, item) in items(value, path)?.iter().enumerate() {
                    out.filter_chains
                        .push(filter_chain(item, &format!("{path}.filter_chains[{i}]"))?);
                }
            }
            other => return Err(unknown(path, other)),
        }
    }
    Ok(out)
}

/// A CDS cluster from a rendered cluster.
pub fn cluster(node: &Node) -> Result<Cluster> {
    let path = "cluster";
    let mut out = Cluster::default();
    for (key, value) in entries(node, path)? {
        match key.as_str() {
            "@type" => expect_type(value, path, &Cluster::type_url())?,
            "name" => out.name = string(value, path)?,
            "type" => {
                let name = string(value, path)?;
                let kind = DiscoveryType::from_str_name(&name)
                    .ok_or_else(|| error(&format!("{path}.type"), format!("unknown {name:?}")))?;
                out.cluster_discovery_type = Some(ClusterDiscoveryType::Type(kind as i32));
            }
            "connect_timeout" => out.connect_timeout = Some(duration(value, path)?),
            "per_connection_buffer_limit_bytes" => {
                out.per_connection_buffer_limit_bytes = Some(UInt32Value {
                    value: unsigned(value, path)?,
                });
            }
            "dns_lookup_family" => {
                let name = string(value, path)?;
                out.dns_lookup_family = DnsLookupFamily::from_str_name(&name)
                    .ok_or_else(|| error(path, format!("unknown DNS lookup family {name:?}")))?
                    as i32;
            }
            "typed_extension_protocol_options" => {
                let here = format!("{path}.typed_extension_protocol_options");
                for (name, options) in entries(value, &here)? {
                    out.typed_extension_protocol_options.insert(
                        name.clone(),
                        typed_config(options, &format!("{here}.{name}"))?,
                    );
                }
            }
            "eds_cluster_config" => {
                let here = format!("{path}.eds_cluster_config");
                let mut eds = EdsClusterConfig::default();
                for (key, value) in entries(value, &here)? {
                    match key.as_str() {
                        "eds_config" => eds.eds_config = Some(ads_config_source(value, &here)?),
                        "service_name" => eds.service_name = string(value, &here)?,
                        other => return Err(unknown(&here, other)),
                    }
                }
                out.eds_cluster_config = Some(eds);
            }
            "load_assignment" => out.load_assignment = Some(load_assignment(value)?),
            other => return Err(unknown(path, other)),
        }
    }
    Ok(out)
}

/// An EDS `ClusterLoadAssignment` (or a cluster's inline one).
pub fn load_assignment(node: &Node) -> Result<ClusterLoadAssignment> {
    let path = "load_assignment";
    let mut out = ClusterLoadAssignment::default();
    for (key, value) in entries(node, path)? {
        match key.as_str() {
            "@type" => expect_type(value, path, &ClusterLoadAssignment::type_url())?,
            "cluster_name" => out.cluster_name = string(value, path)?,
            "endpoints" => {
                for (i, locality) in items(value, path)?.iter().enumerate() {
                    let here = format!("{path}.endpoints[{i}]");
                    let mut group = LocalityLbEndpoints::default();
                    for (key, value) in entries(locality, &here)? {
                        match key.as_str() {
                            "lb_endpoints" => {
                                for (j, item) in items(value, &here)?.iter().enumerate() {
                                    group.lb_endpoints.push(lb_endpoint_of(
                                        item,
                                        &format!("{here}.lb_endpoints[{j}]"),
                                    )?);
                                }
                            }
                            other => return Err(unknown(&here, other)),
                        }
                    }
                    out.endpoints.push(group);
                }
            }
            other => return Err(unknown(path, other)),
        }
    }
    Ok(out)
}

fn lb_endpoint_of(node: &Node, path: &str) -> Result<LbEndpoint> {
    let mut out = LbEndpoint::default();
    for (key, value) in entries(node, path)? {
        match key.as_str() {
            "endpoint" => {
                let here = format!("{path}.endpoint");
                let mut endpoint = Endpoint::default();
                for (key, value) in entries(value, &here)? {
                    match key.as_str() {
                        "address" => {
                            endpoint.address = Some(address(value, &format!("{here}.address"))?);
                        }
                        other => return Err(unknown(&here, other)),
                    }
                }
                out.host_identifier = Some(lb_endpoint::HostIdentifier::Endpoint(endpoint));
            }
            other => return Err(unknown(path, other)),
        }
    }
    Ok(out)
}

/// The ECDS resource from the rendered `TypedExtensionConfig`.
pub fn extension_config(node: &Node) -> Result<TypedExtensionConfig> {
    let path = "extension_config";
    let mut out = TypedExtensionConfig::default();
    for (key, value) in entries(node, path)? {
        match key.as_str() {
            "@type" => expect_type(value, path, &TypedExtensionConfig::type_url())?,
            "name" => out.name = string(value, path)?,
            "typed_config" => {
                out.typed_config = Some(typed_config(value, &format!("{path}.typed_config"))?);
            }
            other => return Err(unknown(path, other)),
        }
    }
    Ok(out)
}

/// An SDS secret: the certificate chain and key inline.
pub fn secret(material: &SdsSecret) -> Secret {
    let inline = |text: &str| DataSource {
        specifier: Some(data_source::Specifier::InlineString(text.to_owned())),
        ..DataSource::default()
    };
    Secret {
        name: material.name.clone(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline(&material.certificate_chain_pem)),
            private_key: Some(inline(&material.private_key_pem)),
            ..TlsCertificate::default()
        })),
    }
}

#[cfg(test)]
#[path = "proto_tests.rs"]
mod tests;
