//! The real filter with `examples/kong/kong.yaml` (exactly what the controller-shim posts for the
//! quickstart) under the emulation of every Kong release from 3.4 to 3.9: the requests the
//! quickstart demonstrates reach the right backend with the right Host, path and headers, and
//! nothing in Kong's error log says a reload failed.
//!
//! `KONG_EMULATOR_WASM` and `KONG_EMULATOR_DECLARATIVE` point the test at another filter module
//! and declarative file, and `KONG_EMULATOR_VERSION` (`3.N`) runs one release only (how the
//! defects of an older filter and shim were shown; docs/kong.md).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use kong_emulator::{ClientRequest, KongEmulator, KongVersion, Response};
use serde_json::Value;

/// The releases to run: all, or `KONG_EMULATOR_VERSION`.
fn versions() -> Vec<KongVersion> {
    match std::env::var("KONG_EMULATOR_VERSION") {
        Ok(text) => vec![KongVersion::parse(&text).expect("KONG_EMULATOR_VERSION is 3.4 … 3.9")],
        Err(_) => KongVersion::ALL.to_vec(),
    }
}

fn wasm() -> Vec<u8> {
    let path = match std::env::var_os("KONG_EMULATOR_WASM") {
        Some(path) => PathBuf::from(path),
        None => testkit::wasm::plugin_wasm().expect("building the filter"),
    };
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn declarative() -> Value {
    let path = match std::env::var_os("KONG_EMULATOR_DECLARATIVE") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/kong/kong.yaml"),
    };
    let text = std::fs::read_to_string(&path).unwrap();
    serde_norway::from_str(&text).unwrap()
}

/// Kong 3.4 takes filter configs only as strings (`--kong-config-string`).
fn as_string_configs(mut doc: Value) -> Value {
    for service in doc["services"].as_array_mut().into_iter().flatten() {
        for route in service["routes"].as_array_mut().into_iter().flatten() {
            for chain in route["filter_chains"].as_array_mut().into_iter().flatten() {
                for filter in chain["filters"].as_array_mut().into_iter().flatten() {
                    if !filter["config"].is_string() {
                        filter["config"] = Value::String(filter["config"].to_string());
                    }
                }
            }
        }
    }
    doc
}

/// An emulated Kong of `version` running the quickstart, with its four echo backends.
fn kong(version: KongVersion, wasm: &[u8]) -> KongEmulator {
    let mut kong = KongEmulator::new(version, wasm).unwrap();
    for (port, backend) in [
        (18081, "store/store-v1"),
        (18082, "store/store-v2"),
        (18083, "site/site-v1"),
        (18084, "site/site-v2"),
    ] {
        kong.listen(&format!("127.0.0.1:{port}"), backend);
    }
    let doc = if version.json_filter_config() {
        declarative()
    } else {
        as_string_configs(declarative())
    };
    let loaded = kong.load(&doc).unwrap();
    assert!(
        loaded && kong.error_log().is_empty(),
        "Kong {version}: the workers did not load the filter: {:?}",
        kong.error_log()
    );
    kong
}

fn send(kong: &mut KongEmulator, host: &str, target: &str, extra: &[(&str, &str)]) -> Response {
    let mut request = ClientRequest::get(8000, host, target);
    request.headers.extend(
        extra
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
    );
    kong.send(request)
}

/// The backend, the Host and the target it saw.
fn seen(response: &Response) -> (String, String, String) {
    let upstream = response
        .upstream
        .as_ref()
        .unwrap_or_else(|| panic!("no backend answered: {response:?}"));
    (
        upstream.backend.clone(),
        upstream.host.clone(),
        upstream.target.clone(),
    )
}

fn header<'u>(response: &'u Response, name: &str) -> Option<&'u str> {
    response
        .upstream
        .as_ref()?
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_quickstart_routes_under_every_kong_release() {
    let wasm = wasm();
    for version in versions() {
        let mut kong = kong(version, &wasm);

        let store = send(
            &mut kong,
            "store.example.com",
            "/cart?item=1",
            &[("x-debug", "1")],
        );
        assert_eq!(store.status, 200, "Kong {version}: {store:?}");
        assert_eq!(
            seen(&store),
            (
                "store/store-v1".to_owned(),
                "store.example.com".to_owned(),
                "/cart?item=1".to_owned()
            ),
            "Kong {version}: the client's Host and target reach the backend"
        );
        assert_eq!(header(&store, "x-team"), Some("store"), "Kong {version}");
        assert_eq!(header(&store, "x-gateway"), Some("gateway-wasm"));
        assert_eq!(header(&store, "x-debug"), None);
        assert_eq!(store.header("cache-control"), Some("public, max-age=60"));
        assert!(
            !seen(&store).2.contains(".gateway-wasm"),
            "the route prefix never reaches a backend"
        );

        let canary = send(
            &mut kong,
            "store.example.com",
            "/cart",
            &[("env", "canary")],
        );
        assert_eq!(seen(&canary).0, "store/store-v2", "Kong {version}");

        let rewritten = send(&mut kong, "www.example.com", "/store/cart?x=1", &[]);
        assert_eq!(
            seen(&rewritten),
            (
                "store/store-v1".to_owned(),
                "www.example.com".to_owned(),
                "/cart?x=1".to_owned()
            ),
            "Kong {version}: URLRewrite through $upstream_uri"
        );

        let redirect = send(&mut kong, "www.example.com", "/old-blog/post", &[]);
        assert_eq!(redirect.status, 301, "Kong {version}");
        assert_eq!(
            redirect.header("location"),
            Some("http://www.example.com/blog/post")
        );

        let missing = send(&mut kong, "www.example.com", "/nothing-here", &[]);
        assert_eq!(seen(&missing).0, "site/site-v1");
        let unknown = send(&mut kong, "nobody.example.org", "/", &[]);
        assert_eq!(unknown.status, 404, "Kong {version}");
        assert!(unknown.upstream.is_none());

        let mut v2 = 0;
        for _ in 0..200 {
            if seen(&send(&mut kong, "www.example.com", "/home", &[])).0 == "site/site-v2" {
                v2 += 1;
            }
        }
        assert!(
            (20..=60).contains(&v2),
            "Kong {version}: 20% of 200 to site-v2, got {v2}"
        );
        assert!(
            kong.error_log().is_empty(),
            "Kong {version}: {:?}",
            kong.error_log()
        );
    }
}

#[test]
fn a_client_cannot_address_a_backend_route_without_the_secret() {
    let wasm = wasm();
    let mut kong = kong(KongVersion::V3_9, &wasm);
    // A guessed prefix falls to the entry route: the filter routes it like any path (site's `/`).
    let guessed = send(
        &mut kong,
        "store.example.com",
        "/.gateway-wasm/guess/abcdef012345/x",
        &[],
    );
    assert_eq!(seen(&guessed).0, "store/store-v1");
    assert_eq!(
        seen(&guessed).2,
        "/.gateway-wasm/guess/abcdef012345/x",
        "the guessed prefix is just a path to the backend the Gateway API rules chose"
    );
}

#[test]
fn metrics_exist_from_kong_3_8_and_never_trap_before() {
    let wasm = wasm();
    for version in versions() {
        let mut kong = kong(version, &wasm);
        let response = send(&mut kong, "store.example.com", "/cart", &[]);
        assert_eq!(response.status, 200, "Kong {version}");
        let forwarded = kong.metric("gateway_wasm.requests.forwarded");
        let accepted = kong.metric("gateway_wasm.config.accepted");
        if version.metrics() {
            assert_eq!(forwarded, Some(1), "Kong {version}");
            assert_eq!(
                accepted,
                Some(1),
                "Kong {version}: counted before the first request"
            );
        } else {
            assert_eq!(forwarded, None, "Kong {version}: never defined");
        }
    }
}
