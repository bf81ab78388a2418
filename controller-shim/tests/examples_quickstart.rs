//! `examples/quickstart/`: the manifests load without unknown objects, every route is accepted
//! with its backends resolved to the demo's echo ports (the table in its README), and the engine
//! makes the decisions `cargo xtask demo` checks in the real Envoy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use controller_shim::manifests;
use controller_shim::resolution::{Endpoint, GatewayResult, Resolution};
use controller_shim::{Settings, resolve};
use engine::{Action, Request, RouteTable, SplitMix64};
use serde_json::Value;

fn quickstart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart")
}

fn resolved() -> Resolution {
    let loaded = manifests::load_dir(&quickstart()).unwrap();
    assert!(
        loaded.unknown.is_empty(),
        "objects the shim does not read: {:?}",
        loaded.unknown
    );
    resolve(&loaded.snapshot, &Settings::default())
}

fn gateway(resolution: &Resolution) -> &GatewayResult {
    assert_eq!(resolution.gateways.len(), 1);
    let gateway = &resolution.gateways[0];
    assert_eq!(gateway.gateway.to_string(), "infra/quickstart");
    gateway
}

fn conditions(status: &Value) -> Vec<(String, String)> {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_gateway_class_is_ours_and_the_gateway_is_programmed() {
    let resolution = resolved();
    assert_eq!(resolution.gateway_classes.len(), 1);
    let class = serde_json::to_value(&resolution.gateway_classes[0].status).unwrap();
    assert!(
        conditions(&class).contains(&("Accepted".into(), "True".into())),
        "{class}"
    );
    let status = serde_json::to_value(&gateway(&resolution).status).unwrap();
    let gateway_conditions = conditions(&status);
    for wanted in ["Accepted", "Programmed"] {
        assert!(
            gateway_conditions.contains(&(wanted.into(), "True".into())),
            "{status}"
        );
    }
    let listeners = status["listeners"].as_array().unwrap();
    assert_eq!(listeners.len(), 1);
    assert_eq!(listeners[0]["name"], "http");
    // Three HTTPRoutes and the GRPCRoute rpc/echo.
    assert_eq!(listeners[0]["attachedRoutes"], 4);
}

#[test]
fn every_route_is_accepted_with_resolved_backends() {
    let resolution = resolved();
    let mut names: Vec<String> = resolution
        .routes
        .iter()
        .map(|r| r.route.to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["rpc/echo", "site/site", "store/store", "store/store-on-www"]
    );
    for route in &resolution.routes {
        let status = serde_json::to_value(&route.status).unwrap();
        let parents = status["parents"].as_array().unwrap();
        assert_eq!(parents.len(), 1, "{}: {status}", route.route);
        let got = conditions(&parents[0]);
        for wanted in ["Accepted", "ResolvedRefs"] {
            assert!(
                got.contains(&(wanted.into(), "True".into())),
                "{}: {status}",
                route.route
            );
        }
    }
}

#[test]
fn backends_are_the_demo_echo_ports() {
    // The table in examples/quickstart/README.md and xtask/src/demo's BACKENDS and GRPC_BACKEND
    // (the GRPCRoute's backend key is its own: an h2c upstream).
    let expected = [
        ("store/store-v1:8080", 18081),
        ("store/store-v2:8080", 18082),
        ("site/site-v1:8080", 18083),
        ("site/site-v2:8080", 18084),
        ("grpc:rpc/grpc-echo:8080", 18085),
    ];
    let resolution = resolved();
    let gateway = gateway(&resolution);
    assert_eq!(gateway.backends.len(), expected.len());
    for (key, port) in expected {
        let backend = gateway
            .backends
            .get(key)
            .unwrap_or_else(|| panic!("no backend {key}"));
        assert_eq!(
            backend.endpoints,
            [Endpoint {
                address: "127.0.0.1".into(),
                port
            }],
            "{key}"
        );
    }
    let readme = std::fs::read_to_string(quickstart().join("README.md")).unwrap();
    for (key, port) in expected {
        let service = key.trim_start_matches("grpc:").split_once(':').unwrap().0;
        assert!(
            readme.contains(&format!("`{service}`")) && readme.contains(&format!("{port}")),
            "README.md does not list {service} on {port}"
        );
    }
}

/// A GET (host, target, headers) and what the engine should decide for it.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

/// What the engine decides for one GET.
fn decide(table: &RouteTable, host: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let request = Request {
        port: 80,
        sni: None,
        method: "GET",
        authority: host,
        path,
        headers,
    };
    let decision = table.evaluate(&request, &mut SplitMix64(7));
    match decision.action {
        Action::Forward(f) => match f.path {
            Some(p) => format!("{} {p}", f.backend),
            None => f.backend.to_owned(),
        },
        Action::Redirect(r) => format!("{} {}", r.status, r.location),
        Action::Respond(r) => r.status.to_string(),
    }
}

#[test]
fn the_engine_makes_the_demo_decisions() {
    let resolution = resolved();
    let table = RouteTable::compile(&gateway(&resolution).config).unwrap();
    let cases: [Case<'_>; 9] = [
        ("store.example.com", "/cart", &[], "store/store-v1:8080"),
        ("www.example.com", "/about", &[], "site/site-v1:8080"),
        (
            "www.example.com",
            "/store/cart?item=42",
            &[],
            "store/store-v1:8080 /cart?item=42",
        ),
        (
            "store.example.com",
            "/cart",
            &[("env", "canary")],
            "store/store-v2:8080",
        ),
        (
            "store.example.com",
            "/cart",
            &[("env", "stable")],
            "store/store-v1:8080",
        ),
        (
            "www.example.com",
            "/old-blog/2024/hello?lang=en",
            &[],
            "301 http://www.example.com/blog/2024/hello?lang=en",
        ),
        ("shop.example.com", "/", &[], "404"),
        // Outside the listener's *.example.com: no listener, also 404.
        ("example.org", "/", &[], "404"),
        ("www.example.com", "/storefront", &[], "site/site-v1:8080"),
    ];
    for (host, path, headers, expected) in cases {
        assert_eq!(
            decide(&table, host, path, headers),
            expected,
            "GET http://{host}{path} {headers:?}"
        );
    }
    // The weighted split: about 80/20 over many draws.
    let mut v2 = 0;
    let mut random = SplitMix64(42);
    for _ in 0..10_000 {
        let request = Request {
            port: 80,
            sni: None,
            method: "GET",
            authority: "www.example.com",
            path: "/home",
            headers: &[] as &[(&str, &str)],
        };
        if let Action::Forward(f) = table.evaluate(&request, &mut random).action
            && f.backend == "site/site-v2:8080"
        {
            v2 += 1;
        }
    }
    assert!((1800..2200).contains(&v2), "site-v2 got {v2} of 10000");
}
