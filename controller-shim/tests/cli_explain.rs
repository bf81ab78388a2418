//! `controller-shim explain` as a user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::fixture;

/// Gateway infra/gw, and app/web with a header-matched rule and a redirect.
fn manifests() -> String {
    format!(
        "{}---\n{}",
        fixture!("gateway.yaml"),
        fixture!("explain-route.yaml")
    )
}

fn explain(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_controller-shim"))
        .arg("explain")
        .arg("--manifests")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn explain_prints_the_decision_and_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("all.yaml"), manifests()).unwrap();

    let out = explain(
        dir.path(),
        &[
            "--request",
            "GET http://example.com/api/users",
            "-H",
            "X-Version: 2",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = text(&out);
    assert!(stdout.contains("route:    app/web rules[0]"), "{stdout}");
    assert!(
        stdout.contains("action:   forward to app/api:8080"),
        "{stdout}"
    );
    assert!(
        stdout.contains("request header:  set x-routed: v2"),
        "{stdout}"
    );
    assert!(stdout.contains("\ntrace:\n"), "{stdout}");

    // Without the header the first rule does not match; the trace says why.
    let out = explain(dir.path(), &["--request", "http://example.com/api/users"]);
    let stdout = text(&out);
    assert!(stdout.contains("action:   answer 404 locally"), "{stdout}");

    let out = explain(dir.path(), &["--request", "GET http://example.com/old"]);
    assert!(
        text(&out).contains("action:   redirect 301 to http://example.com/new"),
        "{}",
        text(&out)
    );

    // A Gateway that is not there, and a malformed request, are errors that say so.
    let out = explain(
        dir.path(),
        &[
            "--request",
            "GET http://example.com/",
            "--gateway",
            "infra/nope",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no Gateway infra/nope of ours (have: infra/gw)"),
        "{}",
        text(&out)
    );
    let out = explain(dir.path(), &["--request", "GET example.com/"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("must start with http:// or https://"),
        "{}",
        text(&out)
    );
}

#[test]
fn explain_json_prints_the_playground_document() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("all.yaml"), manifests()).unwrap();
    let args = [
        "--json",
        "--request",
        "GET http://example.com/api/users",
        "-H",
        "X-Version: 2",
    ];
    let out = explain(dir.path(), &args);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    // One pretty-printed document and a newline, with the fixed top-level keys in order.
    assert!(
        stdout.starts_with("{\n  \"gateway\": \"infra/gw\",\n  \"listener\": "),
        "{stdout}"
    );
    assert!(stdout.ends_with("]\n}\n"), "{stdout}");
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(value["decision"]["kind"], "forward");
    assert_eq!(value["decision"]["backend"], "app/api:8080");
    assert_eq!(value["decision"]["route"]["kind"], "HTTPRoute");
    assert_eq!(value["decision"]["route"]["name"], "web");
    assert_eq!(value["decision"]["grpcStatus"], serde_json::Value::Null);
    assert_eq!(value["decision"]["requestHeaders"][0]["name"], "x-routed");
    assert!(!value["trace"].as_array().unwrap().is_empty());
    // The same request twice gives the same bytes (fixed random seed).
    let again = explain(dir.path(), &args);
    assert_eq!(String::from_utf8(again.stdout).unwrap(), stdout);

    let out = explain(
        dir.path(),
        &["--json", "--request", "GET http://example.com/old"],
    );
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["decision"]["kind"], "redirect");
    assert_eq!(value["decision"]["status"], 301);
}

/// `--grpc SERVICE/METHOD`: a gRPC call to the URL's host; the GRPCRoute takes it, the trace names
/// it, and a call no route takes is answered with grpc-status 12 over HTTP 200.
#[test]
fn explain_takes_a_grpc_call() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("all.yaml"), fixture!("grpc-route.yaml")).unwrap();
    let service = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho";
    let rpc = format!("{service}/Echo");
    let out = explain(
        dir.path(),
        &["--request", "http://grpc.example.com", "--grpc", &rpc],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = text(&out);
    assert!(
        stdout.contains("route:    GRPCRoute infra/rpc rules[0]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("forward to grpc:infra/echo:8080"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "gRPC request: service {service:?}, method \"Echo\""
        )),
        "{stdout}"
    );

    let out = explain(
        dir.path(),
        &[
            "--request",
            "http://grpc.example.com",
            "--grpc",
            "other.Svc/Get",
        ],
    );
    let stdout = text(&out);
    assert!(
        stdout.contains("answer locally with HTTP 200, grpc-status 12 (Unimplemented)"),
        "{stdout}"
    );

    // --json says the same: the GRPCRoute's rule, and grpc-status 12 for the call no route takes.
    let out = explain(
        dir.path(),
        &[
            "--json",
            "--request",
            "http://grpc.example.com",
            "--grpc",
            &rpc,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["decision"]["kind"], "forward");
    assert_eq!(value["decision"]["route"]["kind"], "GRPCRoute");
    assert_eq!(value["decision"]["route"]["name"], "rpc");
    assert_eq!(value["decision"]["grpcStatus"], serde_json::Value::Null);
    let out = explain(
        dir.path(),
        &[
            "--json",
            "--request",
            "http://grpc.example.com",
            "--grpc",
            "other.Svc/Get",
        ],
    );
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["decision"]["kind"], "local");
    assert_eq!(value["decision"]["status"], 200);
    assert_eq!(value["decision"]["reason"], "no_route");
    assert_eq!(value["decision"]["grpcStatus"], 12);

    // Without --grpc the same URL is a plain GET: no GRPCRoute can take it.
    let out = explain(
        dir.path(),
        &["--request", &format!("http://grpc.example.com/{rpc}")],
    );
    assert!(
        text(&out).contains("action:   answer 404 locally"),
        "{}",
        text(&out)
    );

    let out = explain(
        dir.path(),
        &["--request", "http://grpc.example.com", "--grpc", "NoSlash"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("is not 'SERVICE/METHOD'"),
        "{}",
        text(&out)
    );
}
