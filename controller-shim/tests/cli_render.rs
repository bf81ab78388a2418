//! `controller-shim render` as a user runs it: manifests in, Envoy files and status out; the files
//! run in the real Envoy, and rendering again hot-reloads the routes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/fixtures.rs"]
mod fixtures;
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use fixtures::{fill, fixture};
use testkit::client::{HttpClient, Request};
use testkit::echo::{EchoIdentity, EchoServer};
use testkit::envoy::{Envoy, EnvoyOptions};

fn shim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_controller-shim"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A Gateway with one HTTP listener and a route for example.com; `/` goes to `service`, whose
/// EndpointSlices point at the echo servers.
fn manifests(service: &str, api_port: u16, v2_port: u16) -> String {
    let route = fill(
        fixture!("route.yaml"),
        &[
            ("name", &"web"),
            ("hostname", &"example.com"),
            ("service", &service),
        ],
    );
    let services = fill(
        fixture!("echo-services.yaml"),
        &[("api_port", &api_port), ("v2_port", &v2_port)],
    );
    format!("{}---\n{route}---\n{services}", fixture!("gateway.yaml"))
}

#[test]
fn help_explains_the_subcommands() {
    let out = shim(&["--help"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("render"));
    let out = shim(&["render", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in [
        "--manifests",
        "--out",
        "--port-offset",
        "bootstrap.yaml",
        "status.json",
    ] {
        assert!(help.contains(word), "render --help lacks {word}:\n{help}");
    }
}

#[test]
fn malformed_manifests_fail_with_the_file_document_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let manifests_dir = dir.path().join("m");
    std::fs::create_dir_all(&manifests_dir).unwrap();
    std::fs::write(
        manifests_dir.join("gw.yaml"),
        manifests("api", 1, 2).replace("port: 80\n", "port: eighty\n"),
    )
    .unwrap();
    let out = shim(&[
        "render",
        "--manifests",
        manifests_dir.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("gw.yaml document 2: Gateway spec.listeners[0].port"),
        "{stderr}"
    );

    let out = shim(&["render", "--manifests", "/nonexistent", "--out", "/tmp/x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is not a directory"));

    let out = shim(&[
        "render",
        "--manifests",
        ".",
        "--out",
        "/tmp/x",
        "--port-map",
        "80:8080",
    ]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(text(&out.stderr).contains("GATEWAY_PORT=BIND_PORT"));
}

#[test]
fn edge_settings_are_on_by_default_and_tunable_by_flags() {
    let dir = tempfile::tempdir().unwrap();
    let manifests_dir = dir.path().join("m");
    std::fs::create_dir_all(&manifests_dir).unwrap();
    std::fs::write(manifests_dir.join("gw.yaml"), manifests("api", 1, 2)).unwrap();
    let render = |out: &Path, flags: &[&str]| {
        let mut args = vec![
            "render",
            "--manifests",
            manifests_dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--wasm",
            "/gw.wasm",
        ];
        args.extend(flags);
        let output = shim(&args);
        assert!(output.status.success(), "{}", text(&output.stderr));
        std::fs::read_to_string(out.join("infra/gw/bootstrap.yaml")).unwrap()
    };
    let defaults = render(&dir.path().join("default"), &[]);
    for line in [
        "normalize_path: true",
        "merge_slashes: true",
        "path_with_escaped_slashes_action: UNESCAPE_AND_REDIRECT",
        "headers_with_underscores_action: REJECT_REQUEST",
        "request_headers_timeout: 10s",
        "stream_idle_timeout: 300s",
        "max_concurrent_streams: 100",
        "per_connection_buffer_limit_bytes: 32768",
        "max_heap_size_bytes: 2147483648",
        "max_active_downstream_connections: 50000",
    ] {
        assert!(defaults.contains(line), "default bootstrap lacks {line}");
    }
    let tuned = render(
        &dir.path().join("tuned"),
        &[
            "--escaped-slashes",
            "reject-request",
            "--request-headers-timeout",
            "2s500ms",
            "--stream-idle-timeout",
            "0s",
            "--max-heap-mib",
            "512",
            "--max-connections",
            "1000",
        ],
    );
    for line in [
        "path_with_escaped_slashes_action: REJECT_REQUEST",
        "request_headers_timeout: 2.500s",
        "stream_idle_timeout: 0s",
        "max_heap_size_bytes: 536870912",
        "max_active_downstream_connections: 1000",
    ] {
        assert!(tuned.contains(line), "tuned bootstrap lacks {line}");
    }

    for (flag, value, complaint) in [
        ("--request-headers-timeout", "10 seconds", "GEP-2257"),
        ("--max-connections", "0", "--max-connections"),
        ("--escaped-slashes", "sometimes", "unescape-and-redirect"),
    ] {
        let out = shim(&[
            "render",
            "--manifests",
            manifests_dir.to_str().unwrap(),
            "--out",
            "/tmp/x",
            flag,
            value,
        ]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: a usage error");
        assert!(
            text(&out.stderr).contains(complaint),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn rendered_files_route_in_envoy_and_rendering_again_hot_reloads() {
    let api = EchoServer::start(
        EchoIdentity::new("app", "api", "api-0"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let v2 = EchoServer::start(
        EchoIdentity::new("app", "api-v2", "api-v2-0"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifests_dir = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests_dir).unwrap();
    let out_dir = dir.path().join("out");
    let wasm = support::plugin_wasm();
    let ports = testkit::ports::free_ports(2).unwrap();
    let render = |service: &str| {
        std::fs::write(
            manifests_dir.join("gateway.yaml"),
            manifests(service, api.addr().port(), v2.addr().port()),
        )
        .unwrap();
        let out = shim(&[
            "render",
            "--manifests",
            manifests_dir.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--port-map",
            &format!("80={}", ports[0]),
            "--admin-port",
            &ports[1].to_string(),
            "--bind-address",
            "127.0.0.1",
            "--wasm",
            wasm.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "render failed:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    };

    let stdout = render("api");
    assert!(stdout.contains("Gateway infra/gw"), "{stdout}");
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("status.json")).unwrap())
            .unwrap();
    assert_eq!(status["gateways"][0]["gateway"], "infra/gw");
    assert!(out_dir.join("status.txt").is_file());
    let gateway_dir = out_dir.join("infra/gw");
    let bootstrap = gateway_dir.join("bootstrap.yaml");
    testkit::validate_config(&bootstrap).unwrap();

    let envoy = Envoy::start(EnvoyOptions::new(&bootstrap)).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], ports[0]));
    let serving = |expected: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let response =
                HttpClient::http1(addr).send(&Request::get("/hello").with_host("example.com"));
            if let Ok(r) = &response
                && r.echo().is_ok_and(|e| e.service == expected)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never served by {expected}: {response:?}\n{}",
                envoy.log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    serving("api");

    // Rendering the same manifests again changes nothing on disk.
    let ecds = gateway_dir.join("ecds/extension-config.json");
    let before = std::fs::metadata(&ecds).unwrap().modified().unwrap();
    let stdout = render("api");
    assert!(stdout.contains("0 files written"), "{stdout}");
    assert_eq!(
        std::fs::metadata(&ecds).unwrap().modified().unwrap(),
        before
    );

    // A changed route is pushed into the running Envoy: the clusters (api-v2 added, api no longer
    // referenced) and the extension config change, the bootstrap does not.
    let stdout = render("api-v2");
    assert!(
        stdout.contains("(2 files written, 1 unchanged)"),
        "{stdout}"
    );
    serving("api-v2");
    assert_path_is_inside(&bootstrap, &out_dir);
}

fn assert_path_is_inside(path: &Path, dir: &Path) {
    assert!(
        path.starts_with(dir),
        "{} is outside {}",
        path.display(),
        dir.display()
    );
}
