//! `controller-shim render`: manifests in, Envoy files and a status report out, once.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use atomic_file::Access;
use clap::Args;
use serde_json::{Value, json};

use controller_shim::envoy::{self, EnvoyOptions};

use super::envoy_flags::EnvoyFlags;
use controller_shim::manifests;
use controller_shim::resolution::{GatewayResult, Resolution};
use controller_shim::{Kind, Settings, resolve};

/// Render Envoy configuration for every Gateway in a directory of manifests, once.
///
/// Loads every *.yaml/*.yml/*.json file under --manifests (multi-document files and `kind: List`
/// are fine), resolves the Gateways whose GatewayClass names this controller, and writes for each
/// Gateway, under OUTDIR/<namespace>/<name>/:
///
///   bootstrap.yaml               run it with `envoy -c bootstrap.yaml`
///   ecds/extension-config.json   the wasm filter and its route table (hot-reloaded by Envoy)
///   cds/clusters.yaml            one cluster per backend (hot-reloaded by Envoy)
///   tls/<listener>-<n>.crt|key   HTTPS listener certificates
///
/// plus OUTDIR/status.txt and OUTDIR/status.json: the status every Gateway, listener and route would get.
/// Files are replaced atomically and only when their content changed, so running render again
/// against a running Envoy pushes the new routes without a restart (listener changes need one).
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct RenderArgs {
    /// Directory of Kubernetes manifests (read recursively).
    #[arg(long, value_name = "DIR")]
    manifests: PathBuf,
    /// Output directory (created if missing).
    #[arg(long, value_name = "OUTDIR")]
    out: PathBuf,
    #[command(flatten)]
    envoy: EnvoyFlags,
    /// The `spec.controllerName` of the GatewayClasses this controller serves.
    #[arg(long, value_name = "NAME")]
    controller_name: Option<String>,
}

/// What was written for one Gateway.
struct Written {
    dir: PathBuf,
    files_written: usize,
    files_unchanged: usize,
    warnings: Vec<String>,
}

pub fn run(args: &RenderArgs) -> Result<ExitCode> {
    let loaded = manifests::load_dir(&args.manifests)
        .with_context(|| format!("loading manifests from {}", args.manifests.display()))?;
    for unknown in &loaded.unknown {
        eprintln!("controller-shim: note: {unknown}");
    }
    let mut settings = Settings {
        // Conditions that change are stamped with the time of this run.
        now: controller_shim::api::Time(controller_shim::api::jiff::Timestamp::now()),
        ..Settings::default()
    };
    if let Some(name) = &args.controller_name {
        settings.controller_name.clone_from(name);
    }
    let resolution = resolve(&loaded.snapshot, &settings);

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating the output directory {}", args.out.display()))?;
    let out = args
        .out
        .canonicalize()
        .with_context(|| format!("resolving {}", args.out.display()))?;
    let wasm = match &args.envoy.wasm {
        Some(path) => {
            std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))?
        }
        None => out.join("gateway_wasm.wasm"),
    };
    if !wasm.is_file() {
        eprintln!(
            "controller-shim: note: {} does not exist yet; Envoy needs the filter there \
             (build it with `cargo build -p plugin --target wasm32-wasip1 --profile wasm`)",
            wasm.display()
        );
    }

    let mut written = Vec::new();
    for (index, gateway) in resolution.gateways.iter().enumerate() {
        let dir = out
            .join(&gateway.gateway.namespace)
            .join(&gateway.gateway.name);
        let options = args
            .envoy
            .options(&dir, &wasm, admin_port(args.envoy.admin_port, index)?);
        written.push(write_gateway(gateway, &options, &dir)?);
    }

    let report = status_json(&resolution, &written, &loaded);
    let text = status_text(&resolution, &written, &loaded);
    atomic_file::write_if_changed(
        &out.join("status.json"),
        format!("{}\n", serde_json::to_string_pretty(&report)?).as_bytes(),
        Access::Public,
    )?;
    atomic_file::write_if_changed(&out.join("status.txt"), text.as_bytes(), Access::Public)?;
    print!("{text}");
    if resolution.gateways.is_empty() {
        eprintln!(
            "controller-shim: note: no Gateway uses a GatewayClass with controllerName {:?}; nothing to render",
            settings.controller_name
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn admin_port(base: u16, index: usize) -> Result<u16> {
    let offset = u16::try_from(index).ok();
    match offset.and_then(|o| base.checked_add(o)) {
        Some(port) => Ok(port),
        None => bail!("--admin-port {base} leaves no port for Gateway number {index}"),
    }
}

fn write_gateway(gateway: &GatewayResult, options: &EnvoyOptions, dir: &Path) -> Result<Written> {
    let files = envoy::render(gateway, options)
        .with_context(|| format!("rendering Envoy files for Gateway {}", gateway.gateway))?;
    let report = envoy::write_files(dir, &files)
        .with_context(|| format!("writing Envoy files for Gateway {}", gateway.gateway))?;
    Ok(Written {
        dir: dir.to_path_buf(),
        files_written: report.written.len(),
        files_unchanged: report.unchanged.len(),
        warnings: files.warnings,
    })
}

fn status_json(resolution: &Resolution, written: &[Written], loaded: &manifests::Loaded) -> Value {
    let gateways: Vec<Value> = resolution
        .gateways
        .iter()
        .zip(written)
        .map(|(g, w)| {
            json!({
                "gateway": g.gateway.to_string(),
                "generation": g.generation,
                "revision": g.config.revision,
                "listeners": g.config.listeners.len(),
                "routes": g.config.routes.len(),
                "grpcRoutes": g.config.grpc_routes.len(),
                "backends": g.backends.len(),
                "directory": w.dir.display().to_string(),
                "filesWritten": w.files_written,
                "filesUnchanged": w.files_unchanged,
                "warnings": w.warnings,
                "status": g.status,
            })
        })
        .collect();
    let routes: Vec<Value> = resolution
        .routes
        .iter()
        .map(|r| json!({"kind": r.kind.as_str(), "route": r.route.to_string(), "generation": r.generation, "status": r.status}))
        .collect();
    let classes: Vec<Value> = resolution
        .gateway_classes
        .iter()
        .map(|c| json!({"gatewayClass": c.class, "generation": c.generation, "status": c.status}))
        .collect();
    let sets: Vec<Value> = resolution
        .listener_sets
        .iter()
        .map(|s| json!({"listenerSet": s.listener_set.to_string(), "generation": s.generation, "status": s.status}))
        .collect();
    let unknown: Vec<String> = loaded.unknown.iter().map(ToString::to_string).collect();
    json!({
        "manifests": {"files": loaded.files, "objects": loaded.objects, "unused": unknown},
        "gatewayClasses": classes,
        "gateways": gateways,
        "listenerSets": sets,
        "httpRoutes": routes,
    })
}

/// `Type=Status (Reason): message` for every condition in a status document.
fn conditions(status: &Value, indent: &str, out: &mut String) {
    let Some(list) = status.get("conditions").and_then(Value::as_array) else {
        return;
    };
    for c in list {
        let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
        let _ = write!(
            out,
            "{indent}{}={} ({})",
            field("type"),
            field("status"),
            field("reason")
        );
        if !field("message").is_empty() {
            let _ = write!(out, ": {}", field("message"));
        }
        out.push('\n');
    }
}

fn status_text(resolution: &Resolution, written: &[Written], loaded: &manifests::Loaded) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "manifests: {} files, {} objects used, {} not used",
        loaded.files,
        loaded.objects,
        loaded.unknown.len()
    );
    for class in &resolution.gateway_classes {
        let _ = writeln!(out, "GatewayClass {}", class.class);
        conditions(
            &serde_json::to_value(&class.status).unwrap_or_default(),
            "  ",
            &mut out,
        );
    }
    for (gateway, w) in resolution.gateways.iter().zip(written) {
        let _ = writeln!(
            out,
            "Gateway {} (revision {}): {} listeners, {} routes, {} backends -> {} ({} files written, {} unchanged)",
            gateway.gateway,
            gateway.config.revision,
            gateway.config.listeners.len(),
            gateway.config.routes.len(),
            gateway.backends.len(),
            w.dir.display(),
            w.files_written,
            w.files_unchanged
        );
        let status = serde_json::to_value(&gateway.status).unwrap_or_default();
        conditions(&status, "  ", &mut out);
        if let Some(listeners) = status.get("listeners").and_then(Value::as_array) {
            for l in listeners {
                let _ = writeln!(
                    out,
                    "  listener {}: {} attached routes",
                    l.get("name").and_then(Value::as_str).unwrap_or_default(),
                    l.get("attachedRoutes").and_then(Value::as_i64).unwrap_or(0)
                );
                conditions(l, "    ", &mut out);
            }
        }
        for warning in &w.warnings {
            let _ = writeln!(out, "  warning: {warning}");
        }
    }
    for set in &resolution.listener_sets {
        let _ = writeln!(out, "ListenerSet {}", set.listener_set);
        conditions(
            &serde_json::to_value(&set.status).unwrap_or_default(),
            "  ",
            &mut out,
        );
    }
    let mut by_route: BTreeMap<(String, Kind), Vec<Value>> = BTreeMap::new();
    for route in &resolution.routes {
        let status = serde_json::to_value(&route.status).unwrap_or_default();
        let parents = status
            .get("parents")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        by_route
            .entry((route.route.to_string(), route.kind))
            .or_default()
            .extend(parents);
    }
    for ((route, kind), parents) in by_route {
        let _ = writeln!(out, "{kind} {route}");
        for parent in parents {
            let reference = parent.get("parentRef").cloned().unwrap_or_default();
            let field = |k: &str| {
                reference
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let section = field("sectionName");
            let _ = writeln!(
                out,
                "  parent {}/{}{}",
                field("namespace"),
                field("name"),
                if section.is_empty() {
                    String::new()
                } else {
                    format!(" section {section}")
                }
            );
            conditions(&parent, "    ", &mut out);
        }
    }
    out
}
