//! The published artifact works in the real Envoy 1.40: the compat artifact of the real plugin,
//! pushed to a registry and pulled back, loads from a local file; the oci artifact's raw module
//! layer loads straight from the registry through the Envoy snippet `packager snippets` prints
//! (`vm_config.code.remote` with the module sha256, and its cluster), used verbatim. Both serve a
//! request to an echo backend.
//!
//! The plugin configuration is a valid PluginConfig sending every path to the `echo` backend, and
//! the Envoy routes work for a pass-through filter (fallback route to `echo`) as well as for the
//! routing filter (it sets `x-gateway-wasm-upstream`, read by the `cluster_header` route).
// Integration tests: failing loudly (unwrap, panic) is the point here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use testkit::client::{HttpClient, Request};
use testkit::echo::{EchoIdentity, EchoServer};
use testkit::envoy::{Envoy, EnvoyOptions};

/// The header the filter sets to the chosen cluster (`upstreamSelector: envoyClusterHeader`).
const UPSTREAM_HEADER: &str = "x-gateway-wasm-upstream";

/// A PluginConfig routing `/` on both listeners to the backend whose Envoy cluster is `echo`;
/// checked against the engine's model so a schema change fails here, not inside Envoy.
fn plugin_configuration(ports: [u16; 2]) -> String {
    let config = format!(
        r#"{{"schemaVersion": 1, "revision": "packager-test",
            "gateway": {{"namespace": "default", "name": "gw"}},
            "listeners": [{{"name": "file", "port": {}, "protocol": "HTTP"}},
                          {{"name": "remote", "port": {}, "protocol": "HTTP"}}],
            "routes": [{{"namespace": "default", "name": "echo",
                         "parents": [{{"listener": "file"}}, {{"listener": "remote"}}],
                         "rules": [{{"matches": [{{"path": {{"type": "PathPrefix", "value": "/"}}}}],
                                     "backendRefs": [{{"backend": "default/echo:80"}}]}}]}}],
            "backends": {{"default/echo:80": {{"upstream": "echo"}}}},
            "upstreamSelector": "envoyClusterHeader"}}"#,
        ports[0], ports[1]
    );
    let parsed = engine::parse(config.as_bytes())
        .unwrap_or_else(|e| panic!("the test's PluginConfig no longer parses: {e}\n{config}"));
    serde_json::to_string(&parsed).unwrap()
}

fn wasm_filter(vm_id: &str, code: &str, configuration: &str) -> String {
    format!(
        r#"
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: gateway-wasm
                root_id: gateway_wasm
                failure_policy: FAIL_CLOSED
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{configuration}'
                vm_config:
                  vm_id: {vm_id}
                  runtime: envoy.wasm.runtime.v8
                  code: {code}"#
    )
}

fn listener(name: &str, port: u16, filter: &str) -> String {
    format!(
        r#"
  - name: {name}
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/", headers: [{{ name: {UPSTREAM_HEADER}, present_match: true }}] }}
                route: {{ cluster_header: {UPSTREAM_HEADER} }}
              - match: {{ prefix: "/" }}
                route: {{ cluster: echo }}
          http_filters:{filter}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"#
    )
}

fn cluster(name: &str, port: u16) -> String {
    format!(
        r#"
  - name: {name}
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}"#
    )
}

/// Splits the Envoy part of `packager snippets` output into the wasm filter (re-indented for a
/// listener's `http_filters`) and the cluster entries, and fills in the plugin configuration.
fn envoy_snippet(snippets: &str, configuration: &str) -> (String, String) {
    let envoy = snippets.rsplit("\n---\n").next().unwrap();
    let (filters, clusters) = envoy
        .split_once("\nhttp_filters:\n")
        .unwrap()
        .1
        .split_once("\nclusters:\n")
        .unwrap();
    let placeholder = "value: \"{}\"";
    assert!(filters.contains(placeholder), "{filters}");
    let filters = filters.replace(placeholder, &format!("value: '{configuration}'"));
    let filter = filters
        .lines()
        .map(|l| format!("\n        {l}"))
        .collect::<String>();
    let cluster = clusters
        .lines()
        .map(|l| format!("\n{l}"))
        .collect::<String>();
    (filter, cluster)
}

fn get_until_ok(port: u16, path: &str) -> testkit::client::Response {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let client = HttpClient::http1(addr).with_timeout(Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.send(&Request::get(path).with_host("example.test")) {
            Ok(resp) if resp.status == 200 => return resp,
            other if Instant::now() > deadline => {
                panic!("no 200 from the listener on port {port} within 30s: last {other:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[test]
fn published_artifacts_load_in_envoy_and_serve_requests() {
    let registry = TestRegistry::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let plugin = real_plugin();
    let module = std::fs::read(&plugin).unwrap();
    let module_sha = sha256_hex(&module);

    // compat: package, push, pull back to a file.
    let compat_dir = tmp.path().join("compat");
    ok(&packager(&[
        "package",
        "--format",
        "compat",
        "--out",
        compat_dir.to_str().unwrap(),
        "--wasm",
        plugin.to_str().unwrap(),
    ]));
    let compat_ref = format!("{}/gateway-wasm:compat", registry.host());
    let pushed = push(&compat_dir, &compat_ref);
    let pinned = pushed.lines().last().unwrap().trim().to_string();
    let pulled = tmp.path().join("pulled.wasm");
    pull_identical(&pinned, &pulled, &module);

    // oci: package and push; Envoy fetches the raw module layer from the registry itself.
    let oci_dir = tmp.path().join("oci");
    ok(&packager(&[
        "package",
        "--format",
        "oci",
        "--out",
        oci_dir.to_str().unwrap(),
        "--wasm",
        plugin.to_str().unwrap(),
    ]));
    let oci_ref = format!("{}/gateway-wasm:oci", registry.host());
    push(&oci_dir, &oci_ref);
    let snippets = ok(&packager(&["snippets", &oci_ref, "--plain-http"]));
    assert!(
        snippets.contains(&format!("sha256: {module_sha}")),
        "{snippets}"
    );
    let echo = EchoServer::start(
        EchoIdentity::new("default", "echo", "echo-0"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let local_port = free_port();
    let remote_port = free_port();
    let local_code = format!("{{ local: {{ filename: {} }} }}", pulled.display());
    let configuration = plugin_configuration([local_port, remote_port]);
    // The registry-backed listener uses the Envoy snippet exactly as `packager snippets` printed
    // it (filter and cluster), with only the plugin configuration filled in.
    let (snippet_filter, snippet_cluster) = envoy_snippet(&snippets, &configuration);
    let bootstrap = format!(
        "node: {{ id: packager-test, cluster: packager-test }}\n\
         admin:\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}\n\
         static_resources:\n  listeners:{}{}\n  clusters:{}{}\n",
        listener(
            "from_file",
            local_port,
            &wasm_filter("gateway-wasm-file", &local_code, &configuration)
        ),
        listener("from_registry", remote_port, &snippet_filter),
        cluster("echo", echo.addr().port()),
        snippet_cluster,
    );
    let bootstrap_path = tmp.path().join("envoy.yaml");
    std::fs::write(&bootstrap_path, &bootstrap).unwrap();
    let envoy = Envoy::start(EnvoyOptions::new(&bootstrap_path)).unwrap_or_else(|e| {
        panic!("Envoy did not start with the pulled module: {e:#}\nbootstrap:\n{bootstrap}")
    });

    for (port, what) in [
        (local_port, "pulled compat module"),
        (remote_port, "remote oci layer"),
    ] {
        let resp = get_until_ok(port, "/hello");
        let body = resp.echo().unwrap();
        assert_eq!(body.path, "/hello", "{what}");
        assert_eq!(body.service, "echo", "{what}");
    }
    let stats = envoy.stats().unwrap();
    let active = stats
        .iter()
        .filter(|(k, _)| k.starts_with("wasm.envoy.wasm.runtime.v8.") && k.ends_with("active"))
        .map(|(_, v)| *v)
        .sum::<u64>();
    assert!(
        active >= 2,
        "expected V8 wasm VMs for both listeners, stats: {:?}\n{}",
        stats
            .iter()
            .filter(|(k, _)| k.contains("wasm"))
            .collect::<Vec<_>>(),
        envoy.log_tail(40)
    );
    assert!(echo.request_count() >= 2);
}
