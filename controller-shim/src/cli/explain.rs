//! `controller-shim explain`: which route a request would take, and why.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

use controller_shim::manifests;
use controller_shim::request_text::{parse_header, parse_request};
use controller_shim::resolution::{GatewayResult, ObjectKey};
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
/// Example:
///   controller-shim explain --manifests ./manifests \
///     --request 'GET http://example.com/api/users?page=2' -H 'x-version: 2'
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ExplainArgs {
    /// Directory of Kubernetes manifests (read recursively).
    #[arg(long, value_name = "DIR")]
    manifests: PathBuf,
    /// The request: 'METHOD URL' (or just the URL for GET), e.g. 'POST http://example.com/api'.
    #[arg(long, value_name = "REQUEST")]
    request: String,
    /// A request header 'name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// The Gateway 'namespace/name' (needed when the manifests hold more than one of ours).
    #[arg(long, value_name = "NS/NAME")]
    gateway: Option<String>,
    /// The `spec.controllerName` of the GatewayClasses this controller serves.
    #[arg(long, value_name = "NAME")]
    controller_name: Option<String>,
}

pub(crate) fn parse_key(text: &str) -> Result<ObjectKey> {
    let (namespace, name) = text
        .split_once('/')
        .with_context(|| format!("{text:?} is not 'namespace/name'"))?;
    Ok(ObjectKey {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

fn pick<'r>(gateways: &'r [GatewayResult], wanted: Option<&str>) -> Result<&'r GatewayResult> {
    let names = || {
        gateways
            .iter()
            .map(|g| g.gateway.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match wanted {
        Some(text) => {
            let key = parse_key(text)?;
            gateways
                .iter()
                .find(|g| g.gateway == key)
                .with_context(|| format!("no Gateway {key} of ours (have: {})", names()))
        }
        None => match gateways {
            [only] => Ok(only),
            [] => bail!("the manifests hold no Gateway whose GatewayClass is ours"),
            _ => bail!("several Gateways ({}); pick one with --gateway", names()),
        },
    }
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
        Action::Respond(local) => out.push_str(&format!(
            "action:   answer {} locally ({:?})\n",
            local.status, local.reason
        )),
    }
    out
}

pub fn run(args: &ExplainArgs) -> Result<ExitCode> {
    let target = parse_request(&args.request)?;
    let headers: Vec<(String, String)> = args
        .headers
        .iter()
        .map(|h| parse_header(h))
        .collect::<Result<_, _>>()?;
    let loaded = manifests::load_dir(&args.manifests)
        .with_context(|| format!("loading {}", args.manifests.display()))?;
    let mut settings = Settings::default();
    if let Some(name) = &args.controller_name {
        settings.controller_name = name.clone();
    }
    let resolution = resolve(&loaded.snapshot, &settings);
    let gateway = pick(&resolution.gateways, args.gateway.as_deref())?;
    let table = RouteTable::compile(&gateway.config)
        .with_context(|| format!("the engine rejects the config of {}", gateway.gateway))?;
    let request = target.to_engine(&headers);
    let (decision, trace) = table.explain(&request, &mut SplitMix64(1));
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
