//! `controller-shim explain`: which route a request would take, and why.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use controller_shim::explain;
use controller_shim::manifests;
use controller_shim::request_text::{grpc_call, parse_header, parse_request};
use controller_shim::resolution::ObjectKey;
use controller_shim::{Settings, resolve};
use engine::{Action, Decision, HeaderEdit, RouteTable, SplitMix64};

/// Explain how a Gateway routes one request, from a directory of manifests.
///
/// Loads the manifests like `render`, resolves them, compiles the chosen Gateway's PluginConfig
/// with the same engine the filter runs, evaluates the request and prints the decision followed
/// by the engine's trace (every candidate route considered and why it matched or not).
///
/// The request's port selects the Gateway listener (80 for http:// and 443 for https:// when the
/// URL has none); for https:// the host is also the TLS server name.
///
/// With --grpc SERVICE/METHOD the request is a gRPC call to the URL's host and port (POST
/// /SERVICE/METHOD with content-type application/grpc): GRPCRoutes are tried first, then
/// HTTPRoutes; the engine's own answers are gRPC ones (grpc-status 12 or 14 with HTTP 200).
///
/// Example:
///   controller-shim explain --manifests ./manifests \
///     --request 'GET http://example.com/api/users?page=2' -H 'x-version: 2'
///   controller-shim explain --manifests ./manifests \
///     --request http://grpc.example.com --grpc pkg.v1.Cart/AddItem
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ExplainArgs {
    /// Directory of Kubernetes manifests (read recursively).
    #[arg(long, value_name = "DIR")]
    manifests: PathBuf,
    /// The request: 'METHOD URL' (or just the URL for GET), e.g. 'POST http://example.com/api'.
    #[arg(long, value_name = "REQUEST")]
    request: String,
    /// Make the request a gRPC call of this RPC, 'SERVICE/METHOD' (e.g. 'pkg.v1.Cart/AddItem'), to
    /// the host and port of --request.
    #[arg(long, value_name = "SERVICE/METHOD")]
    grpc: Option<String>,
    /// A request header 'name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// The Gateway 'namespace/name' (needed when the manifests hold more than one of ours).
    #[arg(long, value_name = "NS/NAME")]
    gateway: Option<String>,
    /// The `spec.controllerName` of the GatewayClasses this controller serves.
    #[arg(long, value_name = "NAME")]
    controller_name: Option<String>,
    /// Print the decision and trace as JSON (the playground's format) instead of text.
    #[arg(long)]
    json: bool,
}

/// `namespace/name` (also `run --gateway`).
pub(crate) fn parse_key(text: &str) -> Result<ObjectKey> {
    Ok(explain::parse_key(text)?)
}

fn edit_text(edit: &HeaderEdit<'_>) -> String {
    match edit {
        HeaderEdit::Set(name, value) => format!("set {name}: {value}"),
        HeaderEdit::Add(name, value) => format!("add {name}: {value}"),
        HeaderEdit::Remove(name) => format!("remove {name}"),
    }
}

fn describe(decision: &Decision<'_>) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "listener: {}\nroute:    {}\n",
        decision.listener.unwrap_or("(none)"),
        decision
            .route
            .map_or_else(|| "(none)".to_owned(), |r| r.to_string())
    ));
    match &decision.action {
        Action::Forward(forward) => {
            out.push_str(&format!(
                "action:   forward to {} (upstream {})\n",
                forward.backend, forward.upstream
            ));
            if let Some(path) = &forward.path {
                out.push_str(&format!("path:     rewritten to {path}\n"));
            }
            if let Some(authority) = forward.authority {
                out.push_str(&format!("host:     rewritten to {authority}\n"));
            }
            for edit in &forward.request_headers {
                out.push_str(&format!("request header:  {}\n", edit_text(edit)));
            }
            for edit in &forward.response_headers {
                out.push_str(&format!("response header: {}\n", edit_text(edit)));
            }
        }
        Action::Redirect(redirect) => out.push_str(&format!(
            "action:   redirect {} to {}\n",
            redirect.status, redirect.location
        )),
        Action::Respond(local) => match local.grpc {
            Some(code) => out.push_str(&format!(
                "action:   answer locally with HTTP {}, grpc-status {} ({}) ({:?})\n",
                local.status,
                code.code(),
                code.name(),
                local.reason
            )),
            None => out.push_str(&format!(
                "action:   answer {} locally ({:?})\n",
                local.status, local.reason
            )),
        },
    }
    out
}

pub fn run(args: &ExplainArgs) -> Result<ExitCode> {
    let mut target = parse_request(&args.request)?;
    let mut headers: Vec<(String, String)> = args
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<_, _>>()?;
    if let Some(rpc) = &args.grpc {
        grpc_call(rpc, &mut target, &mut headers)?;
    }
    let loaded = manifests::load_dir(&args.manifests)
        .with_context(|| format!("loading {}", args.manifests.display()))?;
    let mut settings = Settings::default();
    if let Some(name) = &args.controller_name {
        settings.controller_name = name.clone();
    }
    let resolution = resolve(&loaded.snapshot, &settings);
    if args.json {
        let explanation =
            explain::explain(&resolution, args.gateway.as_deref(), &target, &headers)?;
        println!("{}", explanation.to_json());
        return Ok(ExitCode::SUCCESS);
    }
    let gateway = explain::pick_gateway(&resolution.gateways, args.gateway.as_deref())?;
    let table = RouteTable::compile(&gateway.config)
        .with_context(|| format!("the engine rejects the config of {}", gateway.gateway))?;
    let request = target.to_engine(&headers);
    let (decision, trace) = table.explain(&request, &mut SplitMix64(explain::RANDOM_SEED));
    println!(
        "gateway:  {} (revision {}, {} routes)\nrequest:  {} {}://{}{} (listener port {})",
        gateway.gateway,
        gateway.config.revision,
        gateway.config.routes.len(),
        target.method,
        if target.https { "https" } else { "http" },
        target.authority,
        target.path,
        target.port
    );
    print!("{}", describe(&decision));
    println!("\ntrace:");
    for line in &trace.lines {
        println!("  {line}");
    }
    Ok(ExitCode::SUCCESS)
}
