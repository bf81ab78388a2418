//! `echo-backend`: runs one testkit echo server until interrupted (used by the demo and examples).

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Parser;
use testkit::echo::{EchoIdentity, EchoServer};

/// Echo backend modelled on the Gateway API conformance echo server.
///
/// Answers every request with 200 and a JSON body describing the request (path, host, method, proto,
/// headers) and this backend's identity (namespace, service, pod). Speaks HTTP/1.1 and h2c on the same
/// port and echoes WebSocket messages. Honours `X-Echo-Set-Header: Name:value,...`, `?delay=500ms`, and the
/// retry simulator `?uuid=ID&succeedAfter=N[&responseCode=CODE]`.
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
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let identity = EchoIdentity::new(args.namespace, args.service, args.pod);
    let server = EchoServer::start_async(identity.clone(), args.listen).await?;
    println!(
        "echo-backend listening on {} (namespace={}, service={}, pod={})",
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
    server.shutdown();
    Ok(())
}
