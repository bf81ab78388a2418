//! `examples/envoy/`: the bootstrap validates with `envoy --mode validate` as committed (run from
//! its directory, as the README says), its PluginConfig compiles, and a copy runs in the real
//! Envoy 1.40 with the real filter: routing as the README describes, a hot reload by renaming a
//! new extension config onto the watched file, and a rejected config that leaves the previous one
//! serving.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Deserialize as _;
use serde_json::Value;
use testkit::client::{HttpClient, Request};
use testkit::echo::{EchoIdentity, EchoServer};
use testkit::envoy::{Envoy, EnvoyOptions, ensure_envoy};

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/envoy")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    Value::deserialize(serde_norway::Deserializer::from_str(&text))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The PluginConfig inside an extension-config file.
fn plugin_config(ecds: &Value) -> String {
    let resources = ecds["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 1);
    assert_eq!(resources[0]["name"], "gateway-wasm");
    resources[0]["typed_config"]["config"]["configuration"]["value"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Copies the example (and the filter) into `dir`.
fn copy_example(dir: &Path) {
    std::fs::create_dir_all(dir.join("ecds")).unwrap();
    for file in ["envoy.yaml", "ecds/extension-config.yaml"] {
        std::fs::copy(example().join(file), dir.join(file)).unwrap();
    }
    std::fs::copy(support::plugin_wasm(), dir.join("gateway_wasm.wasm")).unwrap();
}

#[test]
fn the_committed_bootstrap_validates_from_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path());
    let output = Command::new(ensure_envoy().unwrap())
        .args([
            "--mode",
            "validate",
            "--log-level",
            "warning",
            "-c",
            "envoy.yaml",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_committed_plugin_config_compiles_and_matches_the_bootstrap() {
    let ecds = yaml(&example().join("ecds/extension-config.yaml"));
    let config = plugin_config(&ecds);
    let table = engine::RouteTable::from_json(config.as_bytes())
        .unwrap_or_else(|e| panic!("the example's PluginConfig is rejected: {e}"));
    let wasm = &ecds["resources"][0]["typed_config"]["config"];
    assert_eq!(wasm["failure_policy"], "FAIL_CLOSED");
    assert_eq!(wasm["vm_config"]["runtime"], "envoy.wasm.runtime.v8");

    // Every upstream the filter can name is a cluster of the bootstrap.
    let bootstrap = yaml(&example().join("envoy.yaml"));
    let clusters: Vec<&str> = bootstrap["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let mut upstreams: Vec<&str> = table.upstreams().collect();
    upstreams.sort_unstable();
    assert_eq!(upstreams, clusters);
    // The filter chain names the Gateway port of the PluginConfig's listener.
    let listener = &bootstrap["static_resources"]["listeners"][0];
    assert_eq!(listener["filter_chains"][0]["name"], "gateway-wasm:80:http");
    let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(hcm["http_filters"][0]["name"], "gateway-wasm");
    assert_eq!(
        hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]["cluster_header"],
        "x-gateway-wasm-upstream"
    );
}

/// The example carries every edge-safe setting `render` writes, with the same values: users copy
/// this file, so it must not be the weaker of the two.
#[test]
fn the_committed_bootstrap_has_the_rendered_edge_settings() {
    let example = yaml(&example().join("envoy.yaml"));
    let rendered = rendered_bootstrap();
    assert_eq!(example["overload_manager"], rendered["overload_manager"]);
    assert_eq!(
        example["admin"]["ignore_global_conn_limit"],
        rendered["admin"]["ignore_global_conn_limit"]
    );
    let listener = |b: &Value| b["static_resources"]["listeners"][0].clone();
    assert_eq!(
        listener(&example)["per_connection_buffer_limit_bytes"],
        listener(&rendered)["per_connection_buffer_limit_bytes"]
    );
    let hcm = |b: &Value| listener(b)["filter_chains"][0]["filters"][0]["typed_config"].clone();
    let (example_hcm, rendered_hcm) = (hcm(&example), hcm(&rendered));
    let mut compared = 0;
    for (key, value) in rendered_hcm.as_object().unwrap() {
        if ["@type", "stat_prefix", "route_config", "http_filters"].contains(&key.as_str()) {
            continue;
        }
        assert_eq!(&example_hcm[key], value, "http_connection_manager.{key}");
        compared += 1;
    }
    assert!(compared >= 10, "{compared}");
    let route = |h: &Value| h["route_config"]["virtual_hosts"][0]["routes"][0].clone();
    assert_eq!(
        route(&example_hcm)["request_headers_to_remove"],
        route(&rendered_hcm)["request_headers_to_remove"]
    );
    for cluster in example["static_resources"]["clusters"].as_array().unwrap() {
        assert_eq!(cluster["per_connection_buffer_limit_bytes"], 32768);
    }
}

/// What `render` writes for a one-listener Gateway, as JSON.
fn rendered_bootstrap() -> Value {
    use controller_shim::envoy::{self, EnvoyOptions as RenderOptions};
    use controller_shim::resolution::{GatewayResult, ObjectKey};
    let config = r#"{"schemaVersion": 1, "gateway": {"namespace": "infra", "name": "gw"},
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}], "routes": [], "backends": {}}"#;
    let result = GatewayResult {
        gateway: ObjectKey {
            namespace: "infra".into(),
            name: "gw".into(),
        },
        generation: Some(1),
        config: engine::parse(config.as_bytes()).unwrap(),
        backends: Default::default(),
        tls: Default::default(),
        status: Default::default(),
    };
    let files =
        envoy::render(&result, &RenderOptions::new("/gw", "/gw/gateway_wasm.wasm")).unwrap();
    let text = files.get(envoy::BOOTSTRAP_FILE).unwrap();
    Value::deserialize(serde_norway::Deserializer::from_str(text)).unwrap()
}

struct Running {
    _dir: tempfile::TempDir,
    ecds: PathBuf,
    envoy: Envoy,
    addr: SocketAddr,
    _v1: EchoServer,
    _v2: EchoServer,
}

/// The example with absolute paths and this test's ports, running.
fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path());
    let echo = |service: &str| {
        EchoServer::start(
            EchoIdentity::new("example", service, format!("{service}-0")),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap()
    };
    let (v1, v2) = (echo("echo-v1"), echo("echo-v2"));
    let port = testkit::ports::free_port().unwrap();
    let root = dir.path().display().to_string();
    let replace = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "the example no longer has {from:?}");
        text.replace(from, to)
    };
    let mut bootstrap = std::fs::read_to_string(dir.path().join("envoy.yaml")).unwrap();
    bootstrap = replace(
        bootstrap,
        "port_value: 8080}",
        &format!("port_value: {port}}}"),
    );
    bootstrap = replace(bootstrap, "port_value: 9901}", "port_value: 0}");
    bootstrap = replace(
        bootstrap,
        "port_value: 18081}",
        &format!("port_value: {}}}", v1.addr().port()),
    );
    bootstrap = replace(
        bootstrap,
        "port_value: 18082}",
        &format!("port_value: {}}}", v2.addr().port()),
    );
    bootstrap = replace(
        bootstrap,
        "path: ecds/extension-config.yaml",
        &format!("path: {root}/ecds/extension-config.yaml"),
    );
    bootstrap = replace(
        bootstrap,
        "watched_directory: {path: ecds}",
        &format!("watched_directory: {{path: {root}/ecds}}"),
    );
    std::fs::write(dir.path().join("envoy.yaml"), bootstrap).unwrap();
    let ecds = dir.path().join("ecds/extension-config.yaml");
    let text = replace(
        std::fs::read_to_string(&ecds).unwrap(),
        "filename: gateway_wasm.wasm",
        &format!("filename: {root}/gateway_wasm.wasm"),
    );
    std::fs::write(&ecds, text).unwrap();
    let envoy = Envoy::start(EnvoyOptions {
        concurrency: 2,
        ..EnvoyOptions::new(dir.path().join("envoy.yaml"))
    })
    .unwrap();
    Running {
        _dir: dir,
        ecds,
        envoy,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        _v1: v1,
        _v2: v2,
    }
}

impl Running {
    fn get(&self, host: &str, path: &str, headers: &[(&str, &str)]) -> testkit::client::Response {
        let mut request = Request::get(path).with_host(host);
        for (name, value) in headers {
            request = request.with_header(*name, *value);
        }
        HttpClient::http1(self.addr)
            .with_timeout(Duration::from_secs(5))
            .send(&request)
            .unwrap()
    }

    /// `service path-seen`, or the status when no backend answered.
    fn who(&self, host: &str, path: &str) -> String {
        let response = self.get(host, path, &[]);
        match response.echo() {
            Ok(echo) if response.status == 200 => format!("{} {}", echo.service, echo.path),
            _ => response.status.to_string(),
        }
    }

    /// Replaces the extension config the way the README says: a new file renamed onto it.
    fn push(&self, edit: impl Fn(String) -> String) {
        let text = edit(std::fs::read_to_string(&self.ecds).unwrap());
        let next = self.ecds.with_file_name(".next.yaml");
        std::fs::write(&next, text).unwrap();
        std::fs::rename(&next, &self.ecds).unwrap();
    }
}

#[test]
fn the_example_routes_and_hot_reloads_in_envoy() {
    let envoy = start();
    // Routing as the README describes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while envoy.who("echo.example.com", "/hello") != "echo-v1 /hello" {
        assert!(
            Instant::now() < deadline,
            "never routed:\n{}",
            envoy.envoy.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(envoy.who("echo.example.com", "/v2/hello"), "echo-v2 /hello");
    let response = envoy.get("echo.example.com", "/v2/hello", &[]);
    assert_eq!(response.header("x-version").as_deref(), Some("v2"));
    assert_eq!(envoy.who("other.example.com", "/"), "404");
    let response = envoy.get(
        "other.example.com",
        "/",
        &[("x-gateway-wasm-upstream", "echo-v2")],
    );
    assert_eq!(response.status, 404, "a client cannot pick a cluster");

    // Hot reload: the default rule now goes to echo-v2.
    let before = envoy
        .envoy
        .counter("extension_config_discovery.http_filter.gateway-wasm.update_success")
        .unwrap();
    envoy.push(|text| {
        text.replace(
            r#""backendRefs": [{"backend": "echo-v1"}]"#,
            r#""backendRefs": [{"backend": "echo-v2"}]"#,
        )
        .replace(r#""revision": "example-1""#, r#""revision": "example-2""#)
    });
    let saved = Instant::now();
    while envoy.who("echo.example.com", "/hello") != "echo-v2 /hello" {
        assert!(
            saved.elapsed() < Duration::from_secs(5),
            "the new config never applied:\n{}",
            envoy.envoy.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("hot reload visible after {:?}", saved.elapsed());
    envoy
        .envoy
        .wait_for_counter(
            "extension_config_discovery.http_filter.gateway-wasm.update_success",
            |v| v == before + 1,
            Duration::from_secs(5),
        )
        .unwrap();

    // A PluginConfig the filter rejects: Envoy keeps serving the previous one.
    envoy.push(|text| text.replace(r#""schemaVersion": 1"#, r#""schemaVersion": 2"#));
    envoy
        .envoy
        .wait_for_counter(
            "extension_config_discovery.http_filter.gateway-wasm.update_rejected",
            |v| v >= 1,
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(envoy.who("echo.example.com", "/hello"), "echo-v2 /hello");
    assert_eq!(envoy.who("echo.example.com", "/v2/x"), "echo-v2 /x");
}
