//! The Kong adapter against a mock host presenting a request the way ngx_wasm_module does:
//! `:path` is nginx's normalized URI, the raw target is the `request.path` property,
//! `end_of_stream` is always false, and Kong's version comes from `kong.version` (3.6+).

use std::rc::Rc;

use crate::filter::*;
use crate::host::Metric;
use crate::kong::{self, KongVersion};
use crate::mock::MockHost;

const PREFIX_API: &str = "/.gateway-wasm/k3y/api";
const PREFIX_SHADOW: &str = "/.gateway-wasm/k3y/shadow";

fn config(ports: &str) -> String {
    format!(
        r#"{{
  "schemaVersion": 1,
  "gateway": {{"namespace": "infra", "name": "gw"}},
  "listeners": [
    {{"name": "http", "port": 80, "protocol": "HTTP"}}{ports}
  ],
  "routes": [{{
    "namespace": "app", "name": "web",
    "parents": [{{"listener": "http"}}],
    "rules": [
      {{"matches": [{{"path": {{"type": "PathPrefix", "value": "/store"}}}}],
       "filters": [{{"type": "URLRewrite", "urlRewrite": {{"hostname": "internal.example.com",
          "path": {{"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}}}}],
       "backendRefs": [{{"backend": "app/api:8080"}}],
       "timeouts": {{"request": "1s"}}, "retry": {{"attempts": 2}}}},
      {{"matches": [{{"path": {{"type": "PathPrefix", "value": "/mirror"}}}}],
       "filters": [{{"type": "RequestMirror", "requestMirror": {{"backend": "app/shadow:8080"}}}}],
       "backendRefs": [{{"backend": "app/api:8080"}}]}},
      {{"backendRefs": [{{"backend": "app/api:8080"}}]}}
    ]
  }}],
  "backends": {{
    "app/api:8080": {{"upstream": "{PREFIX_API}"}},
    "app/shadow:8080": {{"upstream": "{PREFIX_SHADOW}"}}
  }},
  "upstreamSelector": "kongRoute",
  "kong": {{"proxy": "127.0.0.1:8000"{map}}}
}}"#,
        map = if ports.is_empty() {
            ""
        } else {
            r#", "ports": {"8000": 80, "8080": 8080}"#
        }
    )
}

fn compiled(json: &str) -> Rc<Compiled> {
    let mut host = MockHost::default();
    configure(&mut host, json.as_bytes()).expect("the Kong test config compiles")
}

/// A request as ngx_wasm_module presents it inside Kong `version` (None: 3.4/3.5, no getter).
fn kong_request(version: Option<&str>, raw_target: &str, extra: &[(&str, &str)]) -> MockHost {
    let normalized = raw_target.replace("%7E", "~");
    let mut host = MockHost::request("GET", "shop.example.com", &normalized, extra)
        .with_property(&kong::REQUEST_TARGET_PROPERTY, raw_target.as_bytes());
    host.request_headers
        .push(("host".to_owned(), "shop.example.com".to_owned()));
    if let Some(version) = version {
        host = host.with_property(&kong::VERSION_PROPERTY, version.as_bytes());
    }
    host
}

fn run(host: &mut MockHost, compiled: &Compiled, shared: &Shared) -> (Verdict, Stream) {
    let mut stream = Stream::default();
    // ngx_wasm_module calls on_request_headers with end_of_stream false, always.
    let verdict = on_request_headers(host, Some(compiled), shared, false, &mut stream);
    (verdict, stream)
}

fn property(host: &MockHost, path: &[&str]) -> Option<String> {
    let key: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
    host.properties
        .get(&key)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

#[test]
fn routes_through_kongs_router_with_the_raw_target_and_keeps_the_host() {
    let table = compiled(&config(""));
    let shared = Shared::new(1);
    let mut host = kong_request(Some("3.9.3"), "/plain/%7Euser?q=1", &[]);
    let (verdict, _) = run(&mut host, &table, &shared);
    assert_eq!(verdict, Verdict::Continue);
    // 3.8+: access.after already appended the query, the filter writes the whole target.
    assert_eq!(
        property(&host, &kong::UPSTREAM_URI_PROPERTY).as_deref(),
        Some("/.gateway-wasm/k3y/api/plain/%7Euser?q=1")
    );
    // No rewrite: Kong's $upstream_host (the client's Host, preserve_host) is left alone, and
    // neither the read-only :authority nor the ignored :path is touched.
    assert_eq!(property(&host, &kong::UPSTREAM_HOST_PROPERTY), None);
    assert_eq!(host.header(":path"), Some("/plain/~user?q=1"));
    assert_eq!(host.header(UPSTREAM_HEADER), None);
    assert!(
        host.properties
            .keys()
            .all(|k| k.first().map(String::as_str) != Some("kong")
                || k == &["kong".to_owned(), "version".to_owned()]),
        "no kong.* property is set: {:?}",
        host.properties.keys()
    );
}

#[test]
fn before_3_8_the_query_is_left_for_kong_to_append() {
    for version in [None, Some("3.6.1"), Some("3.7.1")] {
        let table = compiled(&config(""));
        let mut host = kong_request(version, "/plain?q=1", &[]);
        run(&mut host, &table, &Shared::new(1));
        assert_eq!(
            property(&host, &kong::UPSTREAM_URI_PROPERTY).as_deref(),
            Some("/.gateway-wasm/k3y/api/plain"),
            "Kong {version:?}"
        );
    }
}

#[test]
fn url_rewrite_goes_through_kongs_variables() {
    let table = compiled(&config(""));
    let mut host = kong_request(Some("3.8.0"), "/store/cart?x=1", &[]);
    run(&mut host, &table, &Shared::new(1));
    assert_eq!(
        property(&host, &kong::UPSTREAM_URI_PROPERTY).as_deref(),
        Some("/.gateway-wasm/k3y/api/cart?x=1")
    );
    assert_eq!(
        property(&host, &kong::UPSTREAM_HOST_PROPERTY).as_deref(),
        Some("internal.example.com")
    );
    assert_eq!(host.header(":authority"), Some("shop.example.com"));
    // Envoy router controls mean nothing in Kong: none are set, and client copies are not ours.
    assert_eq!(host.header(ENVOY_TIMEOUT_HEADER), None);
    assert_eq!(host.header(ENVOY_MAX_RETRIES_HEADER), None);
}

#[test]
fn metrics_are_defined_only_from_kong_3_8_and_once() {
    let table = compiled(&config(""));
    for (version, enabled) in [
        (None, 0),
        (Some("3.6.0"), 0),
        (Some("3.7.1"), 0),
        (Some("3.8.0"), 1),
        (Some("3.9.3"), 1),
    ] {
        let shared = Shared::new(1);
        let mut host = kong_request(version, "/plain", &[]);
        run(&mut host, &table, &shared);
        run(&mut host, &table, &shared);
        assert_eq!(host.metrics_enabled, enabled, "Kong {version:?}");
        let reads = host
            .property_reads
            .borrow()
            .iter()
            .filter(|p| *p == "kong.version")
            .count();
        assert_eq!(reads, 1, "kong.version is read once per VM ({version:?})");
    }
}

#[test]
fn versions_parse_like_kong_reports_them() {
    assert_eq!(
        KongVersion::parse("3.9.3"),
        Some(KongVersion { major: 3, minor: 9 })
    );
    assert_eq!(
        KongVersion::parse("3.8.0.0-enterprise-edition"),
        Some(KongVersion { major: 3, minor: 8 })
    );
    assert_eq!(KongVersion::parse("garbage"), None);
    assert!(!KongVersion::BEFORE_3_6.filter_runs_after_access());
}

#[test]
fn a_bodyless_request_sends_its_mirror_at_once() {
    let table = compiled(&config(""));
    let mut host = kong_request(Some("3.9.0"), "/mirror/a?b=c", &[]);
    let (_, stream) = run(&mut host, &table, &Shared::new(1));
    assert!(!stream.awaiting_body());
    assert_eq!(host.dispatches.len(), 1, "{:?}", host.dispatches);
    let mirror = &host.dispatches[0];
    assert_eq!(mirror.upstream, "127.0.0.1:8000");
    let header = |name: &str| {
        mirror
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        header(":path"),
        Some("/.gateway-wasm/k3y/shadow/mirror/a?b=c")
    );
    assert_eq!(header(":scheme"), None);
    assert_eq!(
        header("host"),
        None,
        "the dispatcher writes Host from :authority"
    );
    assert_eq!(header(":authority"), Some("shop.example.com"));
    assert_eq!(header(":method"), Some("GET"));
    assert_eq!(host.metric(Metric::MirrorsSent), 1);
}

#[test]
fn a_request_with_a_body_waits_for_it_before_mirroring() {
    let table = compiled(&config(""));
    for body_header in [("content-length", "5"), ("transfer-encoding", "chunked")] {
        let mut host = kong_request(Some("3.9.0"), "/mirror/a", &[body_header]);
        let shared = Shared::new(1);
        let (_, mut stream) = run(&mut host, &table, &shared);
        assert!(stream.awaiting_body(), "{body_header:?}");
        assert!(host.dispatches.is_empty());
        // ngx_wasm_module calls on_request_body once, in the content phase, with the whole body.
        host.body_chunk = b"hello".to_vec();
        on_request_body(&mut host, &shared, 5, true, &mut stream);
        assert_eq!(host.dispatches.len(), 1);
        assert_eq!(host.dispatches[0].body.as_deref(), Some(&b"hello"[..]));
    }
    assert!(kong::has_no_body(&[(
        "content-length".to_owned(),
        "0".to_owned()
    )]));
}

#[test]
fn several_gateway_ports_map_from_kongs_listen_ports() {
    let table = compiled(&config(
        r#", {"name": "alt", "port": 8080, "protocol": "HTTP"}"#,
    ));
    // Kong port 8000 serves Gateway port 80: the route attached to `http` matches.
    let mut host = kong_request(Some("3.9.0"), "/plain", &[])
        .with_property(&kong::SERVER_PORT_PROPERTY, b"8000");
    run(&mut host, &table, &Shared::new(1));
    assert_eq!(host.local_reply, None);
    assert!(property(&host, &kong::UPSTREAM_URI_PROPERTY).is_some());
    // Kong port 8080 serves Gateway port 8080, where no route is attached.
    let mut host = kong_request(Some("3.9.0"), "/plain", &[])
        .with_property(&kong::SERVER_PORT_PROPERTY, b"8080");
    run(&mut host, &table, &Shared::new(1));
    assert_eq!(host.local_reply.as_ref().map(|r| r.status), Some(404));
    // An unmapped port is no Gateway port: no listener.
    let mut host = kong_request(Some("3.9.0"), "/plain", &[])
        .with_property(&kong::SERVER_PORT_PROPERTY, b"9999");
    run(&mut host, &table, &Shared::new(1));
    let reply = host
        .local_reply
        .as_ref()
        .map(|r| (r.status, r.body.clone()));
    assert_eq!(
        reply,
        Some((
            404,
            "no listener for host shop.example.com on port 0\n".to_owned()
        ))
    );
}

#[test]
fn gateway_ports_are_kept_sorted_and_distinct_whatever_the_listener_order() {
    let table = compiled(&config(
        r#", {"name": "alt", "port": 8080, "protocol": "HTTP"},
            {"name": "low", "port": 81, "protocol": "HTTP"},
            {"name": "alt2", "hostname": "b.example.com", "port": 8080, "protocol": "HTTP"}"#,
    ));
    assert_eq!(table.ports, [80, 81, 8080]);
}

#[test]
fn kong_configs_are_recognized_even_when_they_do_not_parse() {
    assert!(kong::is_kong_config(config("").as_bytes()));
    assert!(kong::is_kong_config(br#"{"upstreamSelector":"kongRoute","#));
    assert!(!kong::is_kong_config(
        br#"{"upstreamSelector":"envoyClusterHeader"}"#
    ));
    assert!(!kong::is_kong_config(b"\x1f\x8b gzip"));
}
