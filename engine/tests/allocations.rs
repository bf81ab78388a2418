//! Evaluation without a trace allocates nothing but the decision's own vectors and strings.
//!
//! This test binary installs a counting global allocator (its own binary, so no other test pays for
//! it) that counts, per thread, every allocation and reallocation. Each case evaluates a request
//! once to warm up, then counts the allocations of one more evaluation. Matching must not format
//! a "why not" message for candidates that do not match, must not lowercase the Host or the TLS
//! server name into a new string, and must not decode a query into one; a forward allocates only
//! the edit vectors it returns.

// The one `unsafe` of this test: `GlobalAlloc` is an unsafe trait. Every method forwards to the
// system allocator with the caller's arguments unchanged.
#![allow(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // tests fail loudly by design

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use engine::{Action, Decision, Request, RouteTable, SplitMix64};
use serde_json::json;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards to `System` with the same layout and pointer; the counter is a
// const-initialised thread-local `Cell` without a destructor, so touching it never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `System`, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// Listeners on 80 (any host) and 443 (one hostname, HTTPS); candidates that share the request's
/// bucket and fail on method, header and query before the one that matches.
fn table() -> RouteTable {
    let config = json!({
        "schemaVersion": 1,
        "gateway": {"namespace": "infra", "name": "gw"},
        "listeners": [
            {"name": "http", "port": 80, "protocol": "HTTP"},
            {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "secure.example.com"}
        ],
        "routes": [{
            "namespace": "app", "name": "web",
            "parents": [{"listener": "http", "hostnames": ["example.com", "*.example.org"]},
                        {"listener": "https"}],
            "rules": [
                {"matches": [
                    {"path": {"type": "PathPrefix", "value": "/api"}, "method": "POST"},
                    {"path": {"type": "PathPrefix", "value": "/api"},
                     "headers": [{"name": "x-canary", "value": "yes"}]},
                    {"path": {"type": "PathPrefix", "value": "/api"},
                     "headers": [{"name": "x-version", "type": "RegularExpression", "value": "v[0-9]+"}]},
                    {"path": {"type": "PathPrefix", "value": "/api"},
                     "queryParams": [{"name": "mode", "value": "fast lane"}]},
                    {"path": {"type": "PathPrefix", "value": "/api"},
                     "queryParams": [{"name": "re", "type": "RegularExpression", "value": "[a-z]+"}]}
                 ],
                 "backendRefs": [{"backend": "app/special:80"}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                 "backendRefs": [{"backend": "app/api:80", "weight": 3},
                                 {"backend": "app/api-b:80", "weight": 1}]},
                {"matches": [{"path": {"type": "Exact", "value": "/edit"}}],
                 "filters": [
                    {"type": "RequestHeaderModifier", "requestHeaderModifier": {
                        "set": [{"name": "x-set", "value": "1"}],
                        "add": [{"name": "x-add", "value": "2"}],
                        "remove": ["x-remove"]}},
                    {"type": "ResponseHeaderModifier", "responseHeaderModifier": {
                        "set": [{"name": "x-resp", "value": "yes"}]}}],
                 "backendRefs": [{"backend": "app/api:80"}],
                 "timeouts": {"request": "10s"},
                 "retry": {"attempts": 2, "codes": [503]}}
            ]
        }, {
            "namespace": "app", "name": "strict",
            "parents": [{"listener": "http", "hostnames": ["strict.example.com"]}],
            "rules": [{"matches": [
                {"path": {"type": "PathPrefix", "value": "/"}, "method": "POST"},
                {"path": {"type": "PathPrefix", "value": "/"},
                 "headers": [{"name": "x-canary", "value": "yes"}]},
                {"path": {"type": "PathPrefix", "value": "/"},
                 "queryParams": [{"name": "mode", "value": "fast"}]}
             ],
             "backendRefs": [{"backend": "app/special:80"}]}]
        }],
        "backends": {
            "app/special:80": {"upstream": "special"},
            "app/api:80": {"upstream": "api"},
            "app/api-b:80": {"upstream": "api-b"}
        }
    });
    RouteTable::from_json(config.to_string().as_bytes()).unwrap()
}

/// Allocations of one evaluation (after one to warm up), and the decision.
fn measure<'t>(
    table: &'t RouteTable,
    request: &Request<'t>,
    random: &mut SplitMix64,
) -> (usize, Decision<'t>) {
    drop(black_box(table.evaluate(request, random)));
    let before = allocations();
    let decision = black_box(table.evaluate(black_box(request), random));
    (allocations() - before, decision)
}

fn request<'a>(
    port: u16,
    authority: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
) -> Request<'a> {
    Request {
        port,
        sni: None,
        method: "GET",
        authority,
        path,
        headers,
    }
}

fn upstream<'t>(decision: &Decision<'t>) -> &'t str {
    match &decision.action {
        Action::Forward(forward) => forward.upstream,
        other => panic!("expected a forward, got {other:?}"),
    }
}

#[test]
fn a_plain_forward_allocates_nothing() {
    let table = table();
    let mut random = SplitMix64(7);
    let headers = [("accept", "*/*"), ("x-canary", "no"), ("x-version", "beta")];
    // Every higher-precedence match of the first rule fails (method, header exact, header regex,
    // query exact, query regex) before the plain /api rule matches.
    for (authority, path) in [
        ("example.com", "/api/users?page=2&mode=slow+lane&re=123"),
        ("Example.COM:80", "/api/users"),
        ("www.example.org", "/api/users?mode=fast%20lanes"),
    ] {
        let req = request(80, authority, path, &headers);
        let (count, decision) = measure(&table, &req, &mut random);
        assert!(
            matches!(upstream(&decision), "api" | "api-b"),
            "{authority}{path}: {decision:?}"
        );
        assert_eq!(count, 0, "{authority}{path} allocated {count} times");
    }
}

#[test]
fn a_forward_over_tls_allocates_nothing() {
    let table = table();
    let mut random = SplitMix64(7);
    let req = Request {
        sni: Some("SECURE.example.com"),
        ..request(443, "secure.EXAMPLE.com", "/api", &[])
    };
    let (count, decision) = measure(&table, &req, &mut random);
    assert!(matches!(upstream(&decision), "api" | "api-b"));
    assert_eq!(count, 0);
}

#[test]
fn matches_that_hold_allocate_nothing_either() {
    let table = table();
    let mut random = SplitMix64(7);
    for (path, headers) in [
        ("/api?mode=fast+lane", &[][..]),
        ("/api?mode=fast%20lane", &[][..]),
        ("/api?re=abc", &[][..]),
        ("/api", &[("X-Version", "v12")][..]),
    ] {
        let req = request(80, "example.com", path, headers);
        let (count, decision) = measure(&table, &req, &mut random);
        assert_eq!(upstream(&decision), "special", "{path}");
        assert_eq!(count, 0, "{path} {headers:?} allocated {count} times");
    }
}

#[test]
fn a_forward_with_edits_allocates_only_its_edit_vectors() {
    let table = table();
    let mut random = SplitMix64(7);
    let req = request(80, "example.com", "/edit", &[]);
    let (count, decision) = measure(&table, &req, &mut random);
    let Action::Forward(forward) = &decision.action else {
        panic!("expected a forward, got {decision:?}");
    };
    assert_eq!(forward.request_headers.len(), 3);
    assert_eq!(forward.response_headers.len(), 1);
    assert!(forward.path.is_none() && forward.mirrors.is_empty());
    // One allocation for each of the two edit vectors, nothing else.
    assert_eq!(count, 2, "allocated {count} times");
}

#[test]
fn a_404_allocates_nothing() {
    let table = table();
    let mut random = SplitMix64(7);
    for (port, authority, path) in [
        // Every candidate of the bucket is checked and fails (method, header, query).
        (80, "strict.example.com", "/api?mode=slow"),
        (80, "example.com", "/nothing/here"),
        (80, "unknown.example.net", "/api"),
        (8080, "example.com", "/api"),
    ] {
        let headers = [("x-canary", "no")];
        let req = request(port, authority, path, &headers);
        let (count, decision) = measure(&table, &req, &mut random);
        assert_eq!(decision.action.local_status(), Some(404), "{decision:?}");
        assert_eq!(count, 0, "{port} {authority}{path} allocated {count} times");
    }
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the guard: a counter that never counts would pass every test above.
    let before = allocations();
    drop(black_box(vec![1u8; 16]));
    drop(black_box(String::from("x")));
    assert_eq!(allocations() - before, 2);
}

/// GRPCRoutes on the port-80 listener: exact service and method, exact service, a method-only
/// match with a header, a regular-expression service, and one with a backend that is invalid.
fn grpc_table() -> RouteTable {
    let config = json!({
        "schemaVersion": 1,
        "gateway": {"namespace": "infra", "name": "gw"},
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
        "grpcRoutes": [{
            "namespace": "app", "name": "grpc",
            "parents": [{"listener": "http", "hostnames": ["grpc.example.com"]}],
            "rules": [
                {"matches": [{"method": {"service": "pkg.Svc", "method": "Get"},
                              "headers": [{"name": "x-canary", "value": "yes"}]}],
                 "backendRefs": [{"backend": "app/special:80"}]},
                {"matches": [{"method": {"method": "Get"},
                              "headers": [{"name": "x-version", "type": "RegularExpression", "value": "v[0-9]+"}]}],
                 "backendRefs": [{"backend": "app/special:80"}]},
                {"matches": [{"method": {"type": "RegularExpression", "service": "pkg\\.S.*", "method": "G.t"}},
                             {"method": {"service": "pkg.Svc"}}],
                 "backendRefs": [{"backend": "app/api:80", "weight": 3},
                                 {"backend": "app/api-b:80", "weight": 1}]},
                {"matches": [{"method": {"service": "pkg.Broken"}}],
                 "backendRefs": [{"backend": "app/gone:80"}]}
            ]
        }],
        "backends": {
            "app/special:80": {"upstream": "special"},
            "app/api:80": {"upstream": "api"},
            "app/api-b:80": {"upstream": "api-b"},
            "app/gone:80": {"invalid": {"reason": "Service app/gone not found"}}
        }
    });
    RouteTable::from_json(config.to_string().as_bytes()).unwrap()
}

fn grpc_request<'a>(
    authority: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
) -> Request<'a> {
    Request {
        method: "POST",
        ..request(80, authority, path, headers)
    }
}

#[test]
fn a_grpc_forward_and_grpc_answers_allocate_nothing() {
    let table = grpc_table();
    let mut random = SplitMix64(7);
    let headers = [
        ("content-type", "application/grpc+proto"),
        ("x-canary", "no"),
        ("x-version", "beta"),
    ];
    // The exact match fails on its header, the method-only one on its regex header; the regex
    // service match then takes the call.
    let req = grpc_request("GRPC.example.com", "/pkg.Svc/Get", &headers);
    let (count, decision) = measure(&table, &req, &mut random);
    assert!(
        matches!(upstream(&decision), "api" | "api-b"),
        "{decision:?}"
    );
    assert_eq!(count, 0, "a gRPC forward allocated {count} times");
    for (authority, path, code) in [
        ("grpc.example.com", "/other.Svc/Put", 12),
        ("nowhere.example.com", "/pkg.Svc/Get", 12),
        ("grpc.example.com", "/pkg.Broken/Get", 14),
    ] {
        let req = grpc_request(authority, path, &headers);
        let (count, decision) = measure(&table, &req, &mut random);
        let Action::Respond(answer) = &decision.action else {
            panic!("{path}: expected a local answer, got {decision:?}");
        };
        assert_eq!(
            (answer.status, answer.grpc.map(|c| c.code())),
            (200, Some(code)),
            "{authority}{path}"
        );
        assert_eq!(count, 0, "{authority}{path} allocated {count} times");
    }
}
