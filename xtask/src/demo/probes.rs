//! Every request the demo sends, and the edit its hot-reload step makes, in one place.
//!
//! The playground's browser test (`playground/tests/browser.rs`) includes this file with
//! `#[path]` and checks that the page's `gatewayWasm.explain` and `controller-shim explain --json`
//! agree on each of these requests, before and after the edit: keep every request of the demo
//! here, and this file free of imports.

// Parts of this file are read only by the browser test.
#![allow(dead_code)]

/// One request of the scenario: a GET with this Host, target and headers.
pub struct Probe<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
}

impl<'a> Probe<'a> {
    pub const fn new(host: &'a str, path: &'a str, headers: &'a [(&'a str, &'a str)]) -> Probe<'a> {
        Probe {
            host,
            path,
            headers,
        }
    }

    /// The request as `controller-shim explain --request` takes it.
    pub fn request_line(&self) -> String {
        format!("GET http://{}{}", self.host, self.path)
    }
}

pub const STORE_CART: Probe<'static> = Probe::new("store.example.com", "/cart", &[]);
pub const SITE_ABOUT: Probe<'static> = Probe::new("www.example.com", "/about", &[]);
pub const STORE_ON_WWW: Probe<'static> = Probe::new("www.example.com", "/store/cart", &[]);
pub const CANARY: Probe<'static> = Probe::new("store.example.com", "/cart", &[("env", "canary")]);
pub const NOT_CANARY: Probe<'static> =
    Probe::new("store.example.com", "/cart", &[("env", "stable")]);
pub const SPLIT: Probe<'static> = Probe::new("www.example.com", "/home", &[]);
pub const REDIRECT: Probe<'static> =
    Probe::new("www.example.com", "/old-blog/2024/hello?lang=en", &[]);
pub const REWRITE: Probe<'static> = Probe::new("www.example.com", "/store/cart?item=42", &[]);
pub const HEADER_EDITS: Probe<'static> = Probe::new(
    "store.example.com",
    "/cart",
    &[("x-team", "spoofed"), ("x-debug", "1")],
);
pub const NOT_FOUND: Probe<'static> = Probe::new("shop.example.com", "/", &[]);
pub const SPOOFED_UPSTREAM: Probe<'static> = Probe::new(
    "shop.example.com",
    "/",
    &[("x-gateway-wasm-upstream", "store/store-v1:8080")],
);
/// Sent before and after the hot-reload edit.
pub const RELOADED: Probe<'static> = SITE_ABOUT;

/// Every request of the demo, in the order it sends them.
pub const ALL: &[Probe<'static>] = &[
    STORE_CART,
    SITE_ABOUT,
    STORE_ON_WWW,
    CANARY,
    NOT_CANARY,
    SPLIT,
    REDIRECT,
    REWRITE,
    HEADER_EDITS,
    NOT_FOUND,
    SPOOFED_UPSTREAM,
    RELOADED,
];

/// The gRPC calls of the demo (`demo/grpc.rs`): to this host, methods of this service.
pub const GRPC_HOST: &str = "grpc.example.com";
pub const GRPC_SERVICE: &str = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho";
/// The method the quickstart's GRPCRoute routes to its backend.
pub const GRPC_ROUTED: &str = "Echo";
/// A method no rule matches: the gateway answers UNIMPLEMENTED itself.
pub const GRPC_UNROUTED: &str = "EchoTwo";
/// Every gRPC call of the demo, in the order it sends them.
pub const GRPC_CALLS: &[&str] = &[GRPC_ROUTED, GRPC_UNROUTED];

/// The file the hot-reload step edits (in the copy of examples/quickstart), and the edit.
pub const EDITED_FILE: &str = "site/route.yaml";
pub const EDIT_FROM: &str = "- {name: site-v1, port: 8080}\n";
pub const EDIT_TO: &str = "- {name: site-v2, port: 8080}\n";
