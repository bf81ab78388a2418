//! The `gateway-bench` binary as a user (or CI) starts it. Also makes `cargo test --workspace` build
//! the binary, so CI can run `target/debug/gateway-bench --quick` without another build.

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gateway-bench"))
}

#[test]
fn help_explains_the_setups_and_pinning() {
    let output = bench().arg("--help").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    for needle in [
        "native",
        "floor",
        "--quick",
        "taskset",
        "--write-doc",
        "wrk",
    ] {
        assert!(
            text.contains(needle),
            "--help does not mention {needle}:\n{text}"
        );
    }
}

#[test]
fn rejects_an_unknown_setup_before_doing_anything() {
    let output = bench().args(["--variants", "nginx"]).output().unwrap();
    assert!(!output.status.success());
    let text = String::from_utf8(output.stderr).unwrap();
    assert!(text.contains("unknown setup"), "{text}");
}

#[test]
fn probe_explains_itself_and_rejects_an_unknown_call_before_doing_anything() {
    let output = bench().args(["probe", "--help"]).output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    for needle in ["--calls", "--ops", "--write-doc", "--quick"] {
        assert!(
            text.contains(needle),
            "probe --help lacks {needle}:\n{text}"
        );
    }
    let output = bench()
        .args(["probe", "--ops", "dispatch"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = String::from_utf8(output.stderr).unwrap();
    assert!(text.contains("unknown call kind \"dispatch\""), "{text}");
}
