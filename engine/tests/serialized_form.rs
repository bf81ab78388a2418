//! The PluginConfig as producers write it: empty lists and the default weight are left out, because
//! every VM inflates and parses the document on every push and at 10,000 routes those members were
//! a fifth of its bytes (`docs/benchmarks.md`, *The lean Wasm path*). What is left out must read
//! back as the same config.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // tests fail loudly

mod support;

use serde_json::json;
use support::every_list_spelled_out;

/// The shared document with a GRPCRoute, whose lists are written out too.
fn written() -> (engine::PluginConfig, String) {
    let mut doc = every_list_spelled_out();
    doc["grpcRoutes"] = json!([{
        "namespace": "app", "name": "rpc",
        "parents": [{"listener": "http", "hostnames": []}],
        "rules": [{"matches": [{"headers": []}], "filters": [],
                   "backendRefs": [{"backend": "app/web:80", "weight": 1, "filters": []}]}]
    }]);
    let config = engine::parse(doc.to_string().as_bytes()).unwrap();
    let text = serde_json::to_string(&config).unwrap();
    (config, text)
}

#[test]
fn empty_lists_and_the_default_weight_are_not_written() {
    let (_, text) = written();
    assert!(!text.contains("[]"), "an empty list was written: {text}");
    assert!(
        !text.contains("\"weight\":1"),
        "the default weight was written: {text}"
    );
    assert!(
        text.contains("\"weight\":3"),
        "weight 3 went missing: {text}"
    );
    assert!(
        text.contains("\"weight\":0"),
        "weight 0 went missing: {text}"
    );
    // Required lists stay, even when a producer has nothing for them.
    assert!(
        text.contains("\"listeners\":"),
        "listeners went missing: {text}"
    );
    assert!(
        text.contains("\"parents\":"),
        "parents went missing: {text}"
    );
}

#[test]
fn what_is_left_out_reads_back_as_the_same_config() {
    let (config, text) = written();
    let reread = engine::parse(text.as_bytes()).unwrap();
    assert_eq!(reread, config);
}

/// Every member of every PluginConfig type set to something other than its default, so a member
/// the reader (`engine/src/config/read.rs`) misspelled, skipped or sent to the wrong field makes
/// the round trip differ. Written compact and pretty-printed.
fn every_member_set() -> engine::PluginConfig {
    use engine::config::*;
    let headers = |prefix: &str| HeaderModifier {
        set: vec![HeaderValue {
            name: format!("{prefix}-set"),
            value: "1".to_owned(),
        }],
        add: vec![HeaderValue {
            name: format!("{prefix}-add"),
            value: "2".to_owned(),
        }],
        remove: vec![format!("{prefix}-remove")],
    };
    let mirror = RequestMirror {
        backend: "app/shadow:80".to_owned(),
        percent: Some(25),
        fraction: Some(Fraction {
            numerator: 1,
            denominator: 3,
        }),
    };
    let filters = vec![
        Filter::RequestHeaderModifier {
            request_header_modifier: headers("req"),
        },
        Filter::ResponseHeaderModifier {
            response_header_modifier: headers("resp"),
        },
        Filter::RequestRedirect {
            request_redirect: RequestRedirect {
                scheme: Some("https".to_owned()),
                hostname: Some("redirect.example".to_owned()),
                path: Some(PathModifier::ReplaceFullPath {
                    replace_full_path: "/full".to_owned(),
                }),
                port: Some(8443),
                status_code: Some(301),
            },
        },
        Filter::UrlRewrite {
            url_rewrite: UrlRewrite {
                hostname: Some("rewrite.example".to_owned()),
                path: Some(PathModifier::ReplacePrefixMatch {
                    replace_prefix_match: "/v2".to_owned(),
                }),
            },
        },
        Filter::RequestMirror {
            request_mirror: mirror.clone(),
        },
        Filter::Cors {
            cors: Cors {
                allow_origins: vec!["https://a.example".to_owned()],
                allow_credentials: true,
                allow_methods: vec!["GET".to_owned()],
                allow_headers: vec!["x-a".to_owned()],
                expose_headers: vec!["x-b".to_owned()],
                max_age: Some(60),
            },
        },
        Filter::Unresolved {
            reason: "ExtensionRef example.com/Thing x not found".to_owned(),
        },
    ];
    let parents = vec![Attachment {
        listener: "https".to_owned(),
        hostnames: vec!["a.example".to_owned(), "*.b.example".to_owned()],
    }];
    let backend_ref = BackendRef {
        backend: "app/web:80".to_owned(),
        weight: 7,
        filters: vec![Filter::RequestMirror {
            request_mirror: mirror,
        }],
    };
    PluginConfig {
        schema_version: 1,
        revision: "rev-\"quoted\"-\u{e9}".to_owned(),
        gateway: ObjectRef {
            namespace: "infra".to_owned(),
            name: "gw".to_owned(),
        },
        listeners: vec![Listener {
            name: "https".to_owned(),
            port: 443,
            protocol: Protocol::Https,
            hostname: Some("*.example".to_owned()),
        }],
        routes: vec![Route {
            namespace: "app".to_owned(),
            name: "web".to_owned(),
            creation_timestamp: Some("2026-01-02T03:04:05Z".to_owned()),
            parents: parents.clone(),
            rules: vec![Rule {
                name: Some("first".to_owned()),
                matches: vec![Match {
                    path: Some(PathMatch {
                        kind: PathMatchType::RegularExpression,
                        value: "/a.*".to_owned(),
                    }),
                    headers: vec![HeaderMatch {
                        kind: ValueMatchType::RegularExpression,
                        name: "x-h".to_owned(),
                        value: "v.*".to_owned(),
                    }],
                    query_params: vec![QueryParamMatch {
                        kind: ValueMatchType::RegularExpression,
                        name: "q".to_owned(),
                        value: "1+".to_owned(),
                    }],
                    method: Some("POST".to_owned()),
                }],
                filters,
                backend_refs: vec![backend_ref.clone()],
                timeouts: Some(Box::new(Timeouts {
                    request: Some("10s".to_owned()),
                    backend_request: Some("2s".to_owned()),
                })),
                retry: Some(Box::new(Retry {
                    attempts: Some(3),
                    codes: vec![502, 503],
                    backoff: Some("100ms".to_owned()),
                })),
            }],
        }],
        grpc_routes: vec![GrpcRoute {
            namespace: "app".to_owned(),
            name: "rpc".to_owned(),
            creation_timestamp: Some("2026-01-02T03:04:06Z".to_owned()),
            parents,
            rules: vec![GrpcRule {
                name: Some("grpc-first".to_owned()),
                matches: vec![GrpcMatch {
                    method: Some(GrpcMethodMatch {
                        kind: ValueMatchType::RegularExpression,
                        service: Some("pkg\\..*".to_owned()),
                        method: Some("Get.*".to_owned()),
                    }),
                    headers: vec![HeaderMatch {
                        kind: ValueMatchType::Exact,
                        name: "x-g".to_owned(),
                        value: "g".to_owned(),
                    }],
                }],
                filters: vec![Filter::ResponseHeaderModifier {
                    response_header_modifier: headers("grpc"),
                }],
                backend_refs: vec![backend_ref],
            }],
        }],
        backends: [
            (
                "app/web:80".to_owned(),
                Backend {
                    upstream: Some("web".to_owned()),
                    invalid: None,
                },
            ),
            (
                "app/gone:80".to_owned(),
                Backend {
                    upstream: None,
                    invalid: Some(InvalidBackend {
                        reason: "BackendNotFound".to_owned(),
                        message: "service app/gone not found".to_owned(),
                    }),
                },
            ),
        ]
        .into(),
        upstream_selector: UpstreamSelector::KongRoute,
        kong: Some(KongDataPlane {
            proxy: "127.0.0.1:8000".to_owned(),
            ports: [(8000, 80), (8443, 443)].into(),
        }),
    }
}

#[test]
fn every_member_reads_back_as_written() {
    let config = every_member_set();
    for text in [
        serde_json::to_string(&config).unwrap(),
        serde_json::to_string_pretty(&config).unwrap(),
    ] {
        assert_eq!(engine::parse(text.as_bytes()), Ok(config.clone()), "{text}");
    }
}

/// Members may come in any order (Kong re-encodes objects in an order of its own): the document
/// with every object's members sorted by name, and again in the reverse order, reads as the same
/// config.
#[test]
fn member_order_does_not_matter() {
    fn write(value: &serde_json::Value, reverse: bool, out: &mut String) {
        match value {
            serde_json::Value::Object(members) => {
                // serde_json's map (without `preserve_order`) iterates sorted by key.
                let mut members: Vec<_> = members.iter().collect();
                if reverse {
                    members.reverse();
                }
                out.push('{');
                for (i, (key, value)) in members.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&json!(key).to_string());
                    out.push(':');
                    write(value, reverse, out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, reverse, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let config = every_member_set();
    let value = serde_json::to_value(&config).unwrap();
    for reverse in [false, true] {
        let mut text = String::new();
        write(&value, reverse, &mut text);
        assert_eq!(engine::parse(text.as_bytes()), Ok(config.clone()), "{text}");
    }
}
