//! The `echo-backend` binary: starts, reports its address, answers, explains itself, stops on SIGTERM.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use testkit::client::{HttpClient, Request};
use testkit::grpc::{EchoMethod, GrpcClient, GrpcCode, GrpcRequest};

#[test]
fn echo_backend_binary_serves_until_sigterm() {
    let (child, addr, _) = spawn(&["--namespace", "ns1", "--service", "svc1", "--pod", "pod1"]);
    let body = HttpClient::http1(addr)
        .send(&Request::get("/hello?x=1"))
        .unwrap()
        .echo()
        .unwrap();
    assert_eq!(
        (
            body.namespace.as_str(),
            body.service.as_str(),
            body.pod.as_str(),
            body.path.as_str()
        ),
        ("ns1", "svc1", "pod1", "/hello?x=1")
    );
    let stderr = terminate(child);
    assert!(stderr.contains("1 requests served"), "{stderr}");
}

#[test]
fn echo_backend_help_explains_the_options() {
    let output = Command::new(env!("CARGO_BIN_EXE_echo-backend"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for word in [
        "--listen",
        "--namespace",
        "--service",
        "--pod",
        "X-Echo-Set-Header",
        "succeedAfter",
        "--grpc",
        "EchoThree",
    ] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
}

#[test]
fn echo_backend_grpc_serves_the_echo_service() {
    let (child, addr, line) = spawn(&[
        "--grpc",
        "--namespace",
        "ns2",
        "--service",
        "grpc-svc",
        "--pod",
        "grpc-pod",
    ]);
    assert!(line.contains("gRPC"), "{line:?}");
    let client = GrpcClient::h2c(addr);
    let call = client
        .echo(&GrpcRequest::echo(EchoMethod::EchoTwo).with_metadata("x-probe", "1"))
        .unwrap();
    assert_eq!(call.code(), GrpcCode::OK, "{:?}", call.status);
    let seen = call.response.unwrap().assertions.unwrap();
    let context = seen.context.clone().unwrap();
    assert_eq!(
        (
            context.namespace.as_str(),
            context.service_name.as_str(),
            context.pod.as_str()
        ),
        ("ns2", "grpc-svc", "grpc-pod")
    );
    assert_eq!(seen.fully_qualified_method, EchoMethod::EchoTwo.path());
    assert_eq!(seen.header("x-probe").as_deref(), Some("1"));
    let three = client
        .echo(&GrpcRequest::echo(EchoMethod::EchoThree))
        .unwrap();
    assert_eq!(three.code(), GrpcCode::UNIMPLEMENTED);
    let stderr = terminate(child);
    assert!(stderr.contains("2 requests served"), "{stderr}");
}

/// Starts the binary on a free port; returns it, the address it printed, and that first line.
fn spawn(args: &[&str]) -> (Child, SocketAddr, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_echo-backend"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, addr, line)
}

/// SIGTERM, then the exit must be clean; returns what it printed on stderr.
fn terminate(child: Child) -> String {
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}
