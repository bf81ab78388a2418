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
