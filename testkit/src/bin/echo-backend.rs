//! `echo-backend`: runs one testkit echo server (HTTP, or gRPC with `--grpc`) until interrupted (used
//! by the demo and examples).

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Parser;
use testkit::echo::{EchoIdentity, EchoServer};
use testkit::grpc::GrpcEchoServer;

/// Echo backend modelled on the Gateway API conformance echo server.
///
/// Answers every request with 200 and a JSON body describing the request (path, host, method, proto,
/// headers) and this backend's identity (namespace, service, pod). Speaks HTTP/1.1 and h2c on the same
/// port and echoes WebSocket messages. Honours `X-Echo-Set-Header: Name:value,...`, `?delay=500ms`, and the
/// retry simulator `?uuid=ID&succeedAfter=N[&responseCode=CODE]`.
///
/// With `--grpc` it is the suite's gRPC echo server instead: h2c with prior knowledge, service
/// `gateway_api_conformance.echo_basic.grpcecho.GrpcEcho` whose `Echo` and `EchoTwo` answer with the
/// fully-qualified method, the request metadata, the `:authority` and this identity; `EchoThree` is
/// unimplemented, as in the original.
#[derive(Debug, Parser)]
#[command(name = "echo-backend", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Namespace reported in responses.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Service name reported in responses.
    #[arg(long, default_value = "echo")]
    service: String,
    /// Pod name reported in responses.
    #[arg(long, default_value = "echo-0")]
    pod: String,
    /// Serve the conformance suite's gRPC echo service (h2c) instead of HTTP.
    #[arg(long)]
    grpc: bool,
}

/// Either kind of server, for the shared start/report/stop sequence.
enum Running {
    Http(EchoServer),
    Grpc(GrpcEchoServer),
}

impl Running {
    fn addr(&self) -> SocketAddr {
        match self {
            Running::Http(s) => s.addr(),
            Running::Grpc(s) => s.addr(),
        }
    }

    fn request_count(&self) -> u64 {
        match self {
            Running::Http(s) => s.request_count(),
            Running::Grpc(s) => s.request_count(),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let identity = EchoIdentity::new(args.namespace, args.service, args.pod);
    let (server, kind) = if args.grpc {
        let server = GrpcEchoServer::start_async(identity.clone(), args.listen, None).await?;
        (Running::Grpc(server), "gRPC (h2c)")
    } else {
        let server = EchoServer::start_async(identity.clone(), args.listen).await?;
        (Running::Http(server), "HTTP/1.1 and h2c")
    };
    println!(
        "echo-backend listening on {} ({kind}; namespace={}, service={}, pod={})",
        server.addr(),
        identity.namespace,
        identity.service,
        identity.pod
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    eprintln!(
        "echo-backend: {} requests served, stopping",
        server.request_count()
    );
    drop(server);
    Ok(())
}
