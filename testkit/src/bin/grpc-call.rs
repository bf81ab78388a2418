//! `grpc-call`: one unary call of the conformance echo service through a gateway, printed as a JSON
//! line (used by the demo, and by hand against a running demo).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::json;
use testkit::grpc::status::decode_grpc_message;
use testkit::grpc::{EchoMethod, GrpcClient, GrpcRequest, StreamEnd};

/// Calls `gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/<METHOD>` over h2c with prior
/// knowledge (as a grpc-go client with insecure credentials does) and prints one JSON line:
/// `httpStatus`, `grpcStatus` and `grpcStatusName` as a grpc-go client reads them, `grpcMessage`,
/// `trailersOnly` (the status came in the response headers: a gateway's own answer or an error),
/// and, when the echo service answered, `backend` {namespace, service, pod}, the `authority` and
/// the `metadata` it received. Exits 0 whenever an HTTP/2 exchange took place, whatever its status.
///
/// Example (with `cargo xtask demo --keep` running):
///   grpc-call --addr 127.0.0.1:18080 --authority grpc.example.com --method Echo -H 'x-a: 1'
#[derive(Debug, Parser)]
#[command(name = "grpc-call", version)]
struct Args {
    /// Where the gateway (or a gRPC echo backend) listens.
    #[arg(long)]
    addr: SocketAddr,
    /// `:authority`, what the gateway routes on (default: the address, as grpc-go sends it).
    #[arg(long)]
    authority: Option<String>,
    /// The echo service's method: Echo, EchoTwo or EchoThree (unimplemented by the service).
    #[arg(long, default_value = "Echo")]
    method: String,
    /// Request metadata 'name: value' (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// The call's deadline in milliseconds (sent as grpc-timeout).
    #[arg(long, default_value_t = 5000)]
    deadline_ms: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let Some(method) = EchoMethod::from_name(&args.method) else {
        bail!(
            "--method {:?}: the echo service has Echo, EchoTwo and EchoThree",
            args.method
        );
    };
    let mut request =
        GrpcRequest::echo(method).with_deadline(Duration::from_millis(args.deadline_ms));
    if let Some(authority) = &args.authority {
        request = request.with_authority(authority.clone());
    }
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("-H {header:?}: expected 'name: value'"))?;
        request = request.with_metadata(name.trim(), value.trim());
    }
    let call = GrpcClient::h2c(args.addr)
        .echo(&request)
        .with_context(|| format!("calling {} at {}", request.path, args.addr))?;
    let seen = call.response.as_ref().and_then(|r| r.assertions.clone());
    let backend = seen
        .as_ref()
        .and_then(|a| a.context.as_ref())
        .map(|c| json!({"namespace": c.namespace, "service": c.service_name, "pod": c.pod}));
    let metadata: serde_json::Map<String, serde_json::Value> = seen
        .as_ref()
        .map(|a| {
            a.headers
                .iter()
                .map(|h| (h.key.clone(), json!(a.header(&h.key))))
                .collect()
        })
        .unwrap_or_default();
    let line = json!({
        "path": request.path,
        "httpStatus": call.answer.status,
        "grpcStatus": call.code().0,
        "grpcStatusName": call.code().name(),
        "grpcMessage": call.answer.grpc_message().map(|m| decode_grpc_message(&m)),
        "trailersOnly": call.answer.end == StreamEnd::TrailersOnly,
        "backend": backend,
        "authority": seen.as_ref().map(|a| a.authority.clone()),
        "metadata": seen.as_ref().map(|_| metadata),
    });
    println!("{line}");
    Ok(())
}
