//! Reading each PluginConfig type from JSON with [`Reader`]: which members a type has, which are
//! required, and the defaults of the absent ones, as `docs/plugin-config.md` and the JSON Schema
//! state them. Every type refuses unknown members; every list also accepts `{}` (Kong).

use std::collections::BTreeMap;

use super::json::{Read, Reader};
use super::tagged::{filter, path_modifier};
use super::*;

pub(crate) fn plugin_config(r: &mut Reader<'_>) -> Read<PluginConfig> {
    let mut schema_version = None;
    let mut revision = String::new();
    let mut gateway = None;
    let mut listeners = None;
    let mut routes = Vec::new();
    let mut grpc_routes = Vec::new();
    let mut backends = BTreeMap::new();
    let mut upstream_selector = UpstreamSelector::default();
    let mut kong = None;
    const FIELDS: &[&str] = &[
        "schemaVersion",
        "revision",
        "gateway",
        "listeners",
        "routes",
        "grpcRoutes",
        "backends",
        "upstreamSelector",
        "kong",
    ];
    let open = r.object("struct PluginConfig", FIELDS, |r, field| {
        match field {
            "schemaVersion" => schema_version = Some(r.u32()?),
            "revision" => revision = r.string()?,
            "gateway" => gateway = Some(object_ref(r)?),
            "listeners" => listeners = Some(r.list(listener)?),
            "routes" => routes = r.list(route)?,
            "grpcRoutes" => grpc_routes = r.list(grpc_route)?,
            "backends" => backends = backend_map(r)?,
            "upstreamSelector" => {
                upstream_selector = match r.variant(&["envoyClusterHeader", "kongRoute"])? {
                    0 => UpstreamSelector::EnvoyClusterHeader,
                    _ => UpstreamSelector::KongRoute,
                }
            }
            _ => kong = r.nullable(kong_data_plane)?,
        }
        Ok(())
    })?;
    Ok(PluginConfig {
        schema_version: r.required(schema_version, open, "schemaVersion")?,
        revision,
        gateway: r.required(gateway, open, "gateway")?,
        listeners: r.required(listeners, open, "listeners")?,
        routes,
        grpc_routes,
        backends,
        upstream_selector,
        kong,
    })
}

/// `backends` is read into a list first and the map built from it at once: inserting 20,000 keys
/// one by one searched the tree for each, while the shim writes them sorted, which `BTreeMap`'s
/// `FromIterator` detects in one pass. A key written twice keeps its last value, as inserting did.
fn backend_map(r: &mut Reader<'_>) -> Read<BTreeMap<String, Backend>> {
    let entries = r.entries("a map", |r, key, _| Ok((key.into_owned(), backend(r)?)))?;
    Ok(entries.into_iter().collect())
}

fn kong_data_plane(r: &mut Reader<'_>) -> Read<KongDataPlane> {
    let mut proxy = None;
    let mut ports = BTreeMap::new();
    let open = r.object("struct KongDataPlane", &["proxy", "ports"], |r, field| {
        match field {
            "proxy" => proxy = Some(r.string()?),
            _ => {
                let entries = r.entries("a map", |r, key, at| {
                    let listen = key.parse::<u16>().map_err(|_| {
                        r.error(
                            at,
                            format!("invalid value: string {key:?}, expected a port (0-65535)"),
                        )
                    })?;
                    Ok((listen, r.u16()?))
                })?;
                // Inserted one by one: a handful of ports, and collecting would add another copy
                // of the sort that building a map from a list runs.
                for (listen, port) in entries {
                    ports.insert(listen, port);
                }
            }
        }
        Ok(())
    })?;
    Ok(KongDataPlane {
        proxy: r.required(proxy, open, "proxy")?,
        ports,
    })
}

fn object_ref(r: &mut Reader<'_>) -> Read<ObjectRef> {
    let (mut namespace, mut name) = (None, None);
    let open = r.object("struct ObjectRef", &["namespace", "name"], |r, field| {
        match field {
            "namespace" => namespace = Some(r.string()?),
            _ => name = Some(r.string()?),
        }
        Ok(())
    })?;
    Ok(ObjectRef {
        namespace: r.required(namespace, open, "namespace")?,
        name: r.required(name, open, "name")?,
    })
}

fn listener(r: &mut Reader<'_>) -> Read<Listener> {
    let (mut name, mut port, mut protocol, mut hostname) = (None, None, None, None);
    const FIELDS: &[&str] = &["name", "port", "protocol", "hostname"];
    let open = r.object("struct Listener", FIELDS, |r, field| {
        match field {
            "name" => name = Some(r.string()?),
            "port" => port = Some(r.u16()?),
            "protocol" => {
                protocol = Some(match r.variant(&["HTTP", "HTTPS"])? {
                    0 => Protocol::Http,
                    _ => Protocol::Https,
                })
            }
            _ => hostname = r.nullable(Reader::string)?,
        }
        Ok(())
    })?;
    Ok(Listener {
        name: r.required(name, open, "name")?,
        port: r.required(port, open, "port")?,
        protocol: r.required(protocol, open, "protocol")?,
        hostname,
    })
}

/// What HTTPRoutes and GRPCRoutes have alike; only their rules differ.
struct RouteMembers<T> {
    identity: ObjectRef,
    creation_timestamp: Option<String>,
    parents: Vec<Attachment>,
    rules: Vec<T>,
}

fn route_members<T>(
    r: &mut Reader<'_>,
    what: &str,
    rule: fn(&mut Reader<'_>) -> Read<T>,
) -> Read<RouteMembers<T>> {
    let (mut namespace, mut name, mut creation_timestamp) = (None, None, None);
    let (mut parents, mut rules) = (None, Vec::new());
    const FIELDS: &[&str] = &["namespace", "name", "creationTimestamp", "parents", "rules"];
    let open = r.object(what, FIELDS, |r, field| {
        match field {
            "namespace" => namespace = Some(r.string()?),
            "name" => name = Some(r.string()?),
            "creationTimestamp" => creation_timestamp = r.nullable(Reader::string)?,
            "parents" => parents = Some(r.list(attachment)?),
            _ => rules = r.list(rule)?,
        }
        Ok(())
    })?;
    Ok(RouteMembers {
        identity: ObjectRef {
            namespace: r.required(namespace, open, "namespace")?,
            name: r.required(name, open, "name")?,
        },
        creation_timestamp,
        parents: r.required(parents, open, "parents")?,
        rules,
    })
}

fn route(r: &mut Reader<'_>) -> Read<Route> {
    let route = route_members(r, "struct Route", rule)?;
    Ok(Route {
        namespace: route.identity.namespace,
        name: route.identity.name,
        creation_timestamp: route.creation_timestamp,
        parents: route.parents,
        rules: route.rules,
    })
}

fn grpc_route(r: &mut Reader<'_>) -> Read<GrpcRoute> {
    let route = route_members(r, "struct GrpcRoute", grpc_rule)?;
    Ok(GrpcRoute {
        namespace: route.identity.namespace,
        name: route.identity.name,
        creation_timestamp: route.creation_timestamp,
        parents: route.parents,
        rules: route.rules,
    })
}

fn attachment(r: &mut Reader<'_>) -> Read<Attachment> {
    let (mut listener, mut hostnames) = (None, Vec::new());
    let open = r.object(
        "struct Attachment",
        &["listener", "hostnames"],
        |r, field| {
            match field {
                "listener" => listener = Some(r.string()?),
                _ => hostnames = r.list(Reader::string)?,
            }
            Ok(())
        },
    )?;
    Ok(Attachment {
        listener: r.required(listener, open, "listener")?,
        hostnames,
    })
}

fn rule(r: &mut Reader<'_>) -> Read<Rule> {
    let mut rule = Rule::default();
    const FIELDS: &[&str] = &[
        "name",
        "matches",
        "filters",
        "backendRefs",
        "timeouts",
        "retry",
    ];
    r.object("struct Rule", FIELDS, |r, field| {
        match field {
            "name" => rule.name = r.nullable(Reader::string)?,
            "matches" => rule.matches = r.list(http_match)?,
            "filters" => rule.filters = r.list(filter)?,
            "backendRefs" => rule.backend_refs = r.list(backend_ref)?,
            "timeouts" => rule.timeouts = r.nullable(|r| timeouts(r).map(Box::new))?,
            _ => rule.retry = r.nullable(|r| retry(r).map(Box::new))?,
        }
        Ok(())
    })?;
    Ok(rule)
}

fn grpc_rule(r: &mut Reader<'_>) -> Read<GrpcRule> {
    let mut rule = GrpcRule::default();
    const FIELDS: &[&str] = &["name", "matches", "filters", "backendRefs"];
    r.object("struct GrpcRule", FIELDS, |r, field| {
        match field {
            "name" => rule.name = r.nullable(Reader::string)?,
            "matches" => rule.matches = r.list(grpc_match)?,
            "filters" => rule.filters = r.list(filter)?,
            _ => rule.backend_refs = r.list(backend_ref)?,
        }
        Ok(())
    })?;
    Ok(rule)
}

fn grpc_match(r: &mut Reader<'_>) -> Read<GrpcMatch> {
    let mut found = GrpcMatch::default();
    r.object("struct GrpcMatch", &["method", "headers"], |r, field| {
        match field {
            "method" => found.method = r.nullable(grpc_method_match)?,
            _ => found.headers = r.list(header_match)?,
        }
        Ok(())
    })?;
    Ok(found)
}

fn grpc_method_match(r: &mut Reader<'_>) -> Read<GrpcMethodMatch> {
    let mut found = GrpcMethodMatch::default();
    const FIELDS: &[&str] = &["type", "service", "method"];
    r.object("struct GrpcMethodMatch", FIELDS, |r, field| {
        match field {
            "type" => found.kind = value_match_type(r)?,
            "service" => found.service = r.nullable(Reader::string)?,
            _ => found.method = r.nullable(Reader::string)?,
        }
        Ok(())
    })?;
    Ok(found)
}

fn http_match(r: &mut Reader<'_>) -> Read<Match> {
    let mut found = Match::default();
    const FIELDS: &[&str] = &["path", "headers", "queryParams", "method"];
    r.object("struct Match", FIELDS, |r, field| {
        match field {
            "path" => found.path = r.nullable(path_match)?,
            "headers" => found.headers = r.list(header_match)?,
            "queryParams" => {
                found.query_params = r.list(|r| {
                    let (kind, name, value) = typed_name_value(r, "struct QueryParamMatch")?;
                    Ok(QueryParamMatch { kind, name, value })
                })?
            }
            _ => found.method = r.nullable(Reader::string)?,
        }
        Ok(())
    })?;
    Ok(found)
}

fn path_match(r: &mut Reader<'_>) -> Read<PathMatch> {
    let mut found = PathMatch::default();
    r.object("struct PathMatch", &["type", "value"], |r, field| {
        match field {
            "type" => {
                found.kind = match r.variant(&["Exact", "PathPrefix", "RegularExpression"])? {
                    0 => PathMatchType::Exact,
                    1 => PathMatchType::PathPrefix,
                    _ => PathMatchType::RegularExpression,
                }
            }
            _ => found.value = r.string()?,
        }
        Ok(())
    })?;
    Ok(found)
}

fn value_match_type(r: &mut Reader<'_>) -> Read<ValueMatchType> {
    Ok(match r.variant(&["Exact", "RegularExpression"])? {
        0 => ValueMatchType::Exact,
        _ => ValueMatchType::RegularExpression,
    })
}

fn header_match(r: &mut Reader<'_>) -> Read<HeaderMatch> {
    let (kind, name, value) = typed_name_value(r, "struct HeaderMatch")?;
    Ok(HeaderMatch { kind, name, value })
}

/// Header and query parameter matches: `type` (default `Exact`), `name` and `value`.
fn typed_name_value(r: &mut Reader<'_>, what: &str) -> Read<(ValueMatchType, String, String)> {
    let (mut kind, mut name, mut value) = (ValueMatchType::default(), None, None);
    let open = r.object(what, &["type", "name", "value"], |r, field| {
        match field {
            "type" => kind = value_match_type(r)?,
            "name" => name = Some(r.string()?),
            _ => value = Some(r.string()?),
        }
        Ok(())
    })?;
    Ok((
        kind,
        r.required(name, open, "name")?,
        r.required(value, open, "value")?,
    ))
}

pub(super) fn header_modifier(r: &mut Reader<'_>) -> Read<HeaderModifier> {
    let mut modifier = HeaderModifier::default();
    r.object(
        "struct HeaderModifier",
        &["set", "add", "remove"],
        |r, field| {
            match field {
                "set" => modifier.set = r.list(header_value)?,
                "add" => modifier.add = r.list(header_value)?,
                _ => modifier.remove = r.list(Reader::string)?,
            }
            Ok(())
        },
    )?;
    Ok(modifier)
}

fn header_value(r: &mut Reader<'_>) -> Read<HeaderValue> {
    let (mut name, mut value) = (None, None);
    let open = r.object("struct HeaderValue", &["name", "value"], |r, field| {
        match field {
            "name" => name = Some(r.string()?),
            _ => value = Some(r.string()?),
        }
        Ok(())
    })?;
    Ok(HeaderValue {
        name: r.required(name, open, "name")?,
        value: r.required(value, open, "value")?,
    })
}

pub(super) fn request_redirect(r: &mut Reader<'_>) -> Read<RequestRedirect> {
    let mut redirect = RequestRedirect::default();
    const FIELDS: &[&str] = &["scheme", "hostname", "path", "port", "statusCode"];
    r.object("struct RequestRedirect", FIELDS, |r, field| {
        match field {
            "scheme" => redirect.scheme = r.nullable(Reader::string)?,
            "hostname" => redirect.hostname = r.nullable(Reader::string)?,
            "path" => redirect.path = r.nullable(path_modifier)?,
            "port" => redirect.port = r.nullable(Reader::u16)?,
            _ => redirect.status_code = r.nullable(Reader::u16)?,
        }
        Ok(())
    })?;
    Ok(redirect)
}

pub(super) fn url_rewrite(r: &mut Reader<'_>) -> Read<UrlRewrite> {
    let mut rewrite = UrlRewrite::default();
    r.object("struct UrlRewrite", &["hostname", "path"], |r, field| {
        match field {
            "hostname" => rewrite.hostname = r.nullable(Reader::string)?,
            _ => rewrite.path = r.nullable(path_modifier)?,
        }
        Ok(())
    })?;
    Ok(rewrite)
}

pub(super) fn request_mirror(r: &mut Reader<'_>) -> Read<RequestMirror> {
    let (mut backend, mut percent, mut fraction) = (None, None, None);
    const FIELDS: &[&str] = &["backend", "percent", "fraction"];
    let open = r.object("struct RequestMirror", FIELDS, |r, field| {
        match field {
            "backend" => backend = Some(r.string()?),
            "percent" => percent = r.nullable(Reader::u32)?,
            _ => fraction = r.nullable(read_fraction)?,
        }
        Ok(())
    })?;
    Ok(RequestMirror {
        backend: r.required(backend, open, "backend")?,
        percent,
        fraction,
    })
}

fn read_fraction(r: &mut Reader<'_>) -> Read<Fraction> {
    let (mut numerator, mut denominator) = (None, default_denominator());
    let open = r.object(
        "struct Fraction",
        &["numerator", "denominator"],
        |r, field| {
            match field {
                "numerator" => numerator = Some(r.u32()?),
                _ => denominator = r.u32()?,
            }
            Ok(())
        },
    )?;
    Ok(Fraction {
        numerator: r.required(numerator, open, "numerator")?,
        denominator,
    })
}

pub(super) fn cors(r: &mut Reader<'_>) -> Read<Cors> {
    let mut cors = Cors::default();
    const FIELDS: &[&str] = &[
        "allowOrigins",
        "allowCredentials",
        "allowMethods",
        "allowHeaders",
        "exposeHeaders",
        "maxAge",
    ];
    r.object("struct Cors", FIELDS, |r, field| {
        match field {
            "allowOrigins" => cors.allow_origins = r.list(Reader::string)?,
            "allowCredentials" => cors.allow_credentials = r.boolean()?,
            "allowMethods" => cors.allow_methods = r.list(Reader::string)?,
            "allowHeaders" => cors.allow_headers = r.list(Reader::string)?,
            "exposeHeaders" => cors.expose_headers = r.list(Reader::string)?,
            _ => cors.max_age = r.nullable(Reader::u32)?,
        }
        Ok(())
    })?;
    Ok(cors)
}

fn backend_ref(r: &mut Reader<'_>) -> Read<BackendRef> {
    let (mut backend, mut weight, mut filters) = (None, default_weight(), Vec::new());
    const FIELDS: &[&str] = &["backend", "weight", "filters"];
    let open = r.object("struct BackendRef", FIELDS, |r, field| {
        match field {
            "backend" => backend = Some(r.string()?),
            "weight" => weight = r.u32()?,
            _ => filters = r.list(filter)?,
        }
        Ok(())
    })?;
    Ok(BackendRef {
        backend: r.required(backend, open, "backend")?,
        weight,
        filters,
    })
}

fn timeouts(r: &mut Reader<'_>) -> Read<Timeouts> {
    let mut found = Timeouts::default();
    r.object(
        "struct Timeouts",
        &["request", "backendRequest"],
        |r, field| {
            match field {
                "request" => found.request = r.nullable(Reader::string)?,
                _ => found.backend_request = r.nullable(Reader::string)?,
            }
            Ok(())
        },
    )?;
    Ok(found)
}

fn retry(r: &mut Reader<'_>) -> Read<Retry> {
    let mut found = Retry::default();
    r.object(
        "struct Retry",
        &["attempts", "codes", "backoff"],
        |r, field| {
            match field {
                "attempts" => found.attempts = r.nullable(Reader::u32)?,
                "codes" => found.codes = r.list(Reader::u16)?,
                _ => found.backoff = r.nullable(Reader::string)?,
            }
            Ok(())
        },
    )?;
    Ok(found)
}

fn backend(r: &mut Reader<'_>) -> Read<Backend> {
    let mut found = Backend::default();
    r.object("struct Backend", &["upstream", "invalid"], |r, field| {
        match field {
            "upstream" => found.upstream = r.nullable(Reader::string)?,
            _ => found.invalid = r.nullable(invalid_backend)?,
        }
        Ok(())
    })?;
    Ok(found)
}

fn invalid_backend(r: &mut Reader<'_>) -> Read<InvalidBackend> {
    let (mut reason, mut message) = (None, String::new());
    let open = r.object(
        "struct InvalidBackend",
        &["reason", "message"],
        |r, field| {
            match field {
                "reason" => reason = Some(r.string()?),
                _ => message = r.string()?,
            }
            Ok(())
        },
    )?;
    Ok(InvalidBackend {
        reason: r.required(reason, open, "reason")?,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(json: &str) -> Result<Vec<(String, Option<String>)>, String> {
        let map = crate::config::read_value(json, backend_map)?;
        Ok(map.into_iter().map(|(k, b)| (k, b.upstream)).collect())
    }

    fn entry(key: &str, upstream: &str) -> (String, Option<String>) {
        (key.to_owned(), Some(upstream.to_owned()))
    }

    #[test]
    fn backends_in_any_order_read_as_the_sorted_map() {
        let map =
            backends(r#"{"b": {"upstream": "2"}, "c": {"upstream": "3"}, "a": {"upstream": "1"}}"#);
        assert_eq!(
            map,
            Ok(vec![entry("a", "1"), entry("b", "2"), entry("c", "3")])
        );
    }

    #[test]
    fn a_backend_written_twice_keeps_its_last_value_as_inserting_did() {
        let map =
            backends(r#"{"b": {"upstream": "1"}, "a": {"upstream": "7"}, "b": {"upstream": "2"}}"#);
        assert_eq!(map, Ok(vec![entry("a", "7"), entry("b", "2")]));
    }

    #[test]
    fn backends_of_the_wrong_shape_are_refused() {
        let error = backends(r#"{"a": "x"}"#).err().unwrap_or_default();
        assert_eq!(
            error,
            r#"invalid type: string "x", expected struct Backend"#
        );
        let error = backends(r#"["a"]"#).err().unwrap_or_default();
        assert_eq!(error, "invalid type: sequence, expected a map");
    }
}
