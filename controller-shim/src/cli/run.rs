//! `controller-shim run`: watch Gateway API objects and keep proxies and status up to date.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::envoy_flags::EnvoyFlags;
use super::xds_flags::XdsFlags;
use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Args, ValueEnum};

use controller_shim::Settings;
use controller_shim::deliver::Target;
use controller_shim::deliver::envoy_files::EnvoyFilesTarget;
use controller_shim::deliver::kong::{KongMode, KongOptions, KongTarget};
use controller_shim::metrics::Metrics;
use controller_shim::runtime::ui::{Assets, Ui};
use controller_shim::runtime::{LiveView, Runtime, RuntimeConfig, StatusSink, serve_health_with};
use controller_shim::source::dir::DirSource;
use controller_shim::source::{Index, IndexFilter, Kind, Shared};
use controller_shim::status::kube::KubeStatus;
use controller_shim::status::lease::{self, Elector, LeaseConfig};
use controller_shim::status::report::Report;
use controller_shim::xds::{XdsServer, XdsTarget};

use super::explain::parse_key;

/// Watch Gateway API objects and keep the proxies' route tables and the objects' status current.
///
/// Sources (exactly one):
///   --manifests DIR   a directory of manifests, polled every 200 ms; status goes to a JSON report
///                     and one line per route parent on stdout
///   --kube            the Kubernetes API (in-cluster config, else KUBECONFIG / ~/.kube/config);
///                     status is patched on the objects by the replica holding the Lease
///
/// Targets (at least one):
///   --envoy-dir OUT   Envoy files under OUT/<namespace>/<gateway>/ (start Envoy with its
///                     bootstrap.yaml; routes and clusters then reload without a restart)
///   --xds-listen ADDR an xDS server (gRPC ADS, state of the world and delta) for any number of
///                     Envoys started from `controller-shim bootstrap`; it streams listeners,
///                     clusters, endpoints, certificates and the filter, and serves the module
///                     (--wasm FILE or oci://REGISTRY/REPO:TAG) over HTTP on the same port
///   --kong-admin URL  Kong 3.4–3.9's Admin API (one Gateway per Kong). With a database the
///                     shim upserts its own services, routes and filter chain (an entry route
///                     running the filter, one route per backend that Kong's router picks);
///                     DB-less Kong (database = off) gets the whole declarative configuration
///                     with POST /config, so there the shim owns everything that Kong runs
///
/// A change reaches the proxies within about a second: 200 ms directory poll (or the watch
/// event), 100 ms debounce, then the push. Every --resync seconds everything is delivered again
/// (idempotent: unchanged files are not rewritten, Kong's filter chain or DB-less configuration
/// hash is read back first), which repairs proxies that restarted or were edited by hand.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
#[command(group(ArgGroup::new("source").required(true).args(["manifests", "kube"])))]
#[command(group(ArgGroup::new("target").required(true).multiple(true).args(["envoy_dir", "kong_admin", "xds_listen"])))]
pub struct RunArgs {
    /// Read objects from this directory of manifests (recursively; *.yaml, *.yml, *.json).
    #[arg(long, value_name = "DIR")]
    manifests: Option<PathBuf>,
    /// Read objects from the Kubernetes API and write status there.
    #[arg(long)]
    kube: bool,
    /// With --kube: talk to this API server URL without credentials (e.g. `kubectl proxy`'s
    /// http://127.0.0.1:8001) instead of the in-cluster or kubeconfig configuration.
    #[arg(long, value_name = "URL", requires = "kube")]
    kube_url: Option<String>,
    /// Write Envoy files under OUT/<namespace>/<gateway>/.
    #[arg(long, value_name = "OUT")]
    envoy_dir: Option<PathBuf>,
    #[command(flatten)]
    envoy: EnvoyFlags,
    #[command(flatten)]
    xds: XdsFlags,
    /// Kong's Admin API base URL (plain http, e.g. http://127.0.0.1:8001).
    #[arg(long, value_name = "URL")]
    kong_admin: Option<String>,
    /// Send the filter config to Kong as a JSON string (Kong 3.4, or the filter installed without
    /// its gateway_wasm.meta.json) instead of a JSON object validated against meta.json's schema.
    #[arg(long)]
    kong_config_string: bool,
    /// How to write to Kong: ask it (GET / reports configuration.database), upsert entities (Kong
    /// with a database), or post the whole declarative configuration (DB-less Kong).
    #[arg(long, value_enum, default_value_t = Mode::Auto, requires = "kong_admin")]
    kong_mode: Mode,
    /// Kong's own proxy listener as Kong itself reaches it (HOST:PORT): where the entry service
    /// forwards so that Kong's router picks the backend [default: the first plain-HTTP listener
    /// in Kong's configuration.proxy_listeners, on 127.0.0.1].
    #[arg(long, value_name = "HOST:PORT", requires = "kong_admin")]
    kong_proxy: Option<String>,
    /// The secret in the backend routes' path prefixes (/.gateway-wasm/<secret>/<id>), so clients
    /// cannot address a backend route directly. Pin it to keep the configuration unchanged
    /// across shim restarts [default: random per process].
    #[arg(
        long,
        value_name = "SECRET",
        env = "GATEWAY_WASM_KONG_ROUTE_SECRET",
        hide_env_values = true,
        requires = "kong_admin"
    )]
    kong_route_secret: Option<String>,
    /// For a Gateway with several ports: which Kong listen port serves a Gateway port, as
    /// GATEWAY_PORT=KONG_PORT (repeatable; every port must be mapped).
    #[arg(long, value_name = "GATEWAY_PORT=KONG_PORT", value_parser = parse_kong_port, requires = "kong_admin")]
    kong_port: Vec<(u16, u16)>,
    /// The `spec.controllerName` of the GatewayClasses this controller serves.
    #[arg(long, value_name = "NAME", env = "GATEWAY_WASM_CONTROLLER_NAME")]
    controller_name: Option<String>,
    /// Serve only this Gateway 'namespace/name' (repeatable; default: every Gateway of ours).
    #[arg(long, value_name = "NS/NAME")]
    gateway: Vec<String>,
    /// With --kube: the namespace of the leader-election Lease.
    #[arg(
        long,
        value_name = "NS",
        env = "POD_NAMESPACE",
        default_value = "default"
    )]
    lease_namespace: String,
    /// With --kube: the Lease's name.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "gateway-wasm-controller-shim"
    )]
    lease_name: String,
    /// With --kube: this replica's identity in the Lease [default: $POD_NAME, else $HOSTNAME].
    #[arg(long, value_name = "ID")]
    identity: Option<String>,
    /// Where /healthz, /readyz, /metrics, /ui and (with --xds-listen) /debug/xds are served.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9090")]
    metrics_addr: SocketAddr,
    /// The playground page served at /ui, built by `cargo xtask playground` [default:
    /// ../playground next to this binary, i.e. target/playground/ in the workspace]. /ui shows
    /// the objects the shim watches (Secret values redacted) and the configuration the proxies
    /// run now, read-only.
    #[arg(long, value_name = "DIR", env = "GATEWAY_WASM_UI_DIR")]
    ui_dir: Option<PathBuf>,
    /// Do not serve /ui (nor keep the live view it reads).
    #[arg(long, conflicts_with = "ui_dir")]
    no_ui: bool,
    /// With --manifests: the JSON status report [default: OUT/status.json with --envoy-dir, else
    /// none].
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Deliver everything again every N seconds (repairs restarted proxies).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    resync: u64,
    /// Log format on stderr (level from RUST_LOG, default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Ask Kong on the first delivery (and again after a failed one).
    Auto,
    /// Kong with a database: PUT the shim's entities by name.
    Db,
    /// DB-less Kong: POST /config with the whole declarative configuration.
    Dbless,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

pub fn run(args: &RunArgs) -> Result<ExitCode> {
    init_logs(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

fn targets(args: &RunArgs, xds: Option<&XdsServer>) -> Result<Vec<Target>> {
    let mut targets = Vec::new();
    if let Some(dir) = &args.envoy_dir {
        if args.envoy.wasm_reference().is_some() {
            bail!(
                "--wasm oci://… needs --xds-listen (the shim serves the pulled module to xDS-mode Envoys); with --envoy-dir, pass the module's file"
            );
        }
        let wasm = args
            .envoy
            .wasm
            .clone()
            .unwrap_or_else(|| dir.join("gateway_wasm.wasm"));
        let options = args.envoy.options(dir, &wasm, args.envoy.admin_port);
        targets.push(Target::Envoy(Box::new(EnvoyFilesTarget::new(options))));
    }
    if let Some(url) = &args.kong_admin {
        let mut options = KongOptions::new(url);
        options.config_as_string = args.kong_config_string;
        options.mode = match args.kong_mode {
            Mode::Auto => KongMode::Auto,
            Mode::Db => KongMode::Db,
            Mode::Dbless => KongMode::Dbless,
        };
        options.proxy = args.kong_proxy.clone();
        if let Some(secret) = &args.kong_route_secret {
            options.route_secret = secret.clone();
        }
        options.ports = args.kong_port.iter().copied().collect();
        targets.push(Target::Kong(Box::new(KongTarget::new(options))));
    }
    if let Some(server) = xds {
        targets.push(Target::Xds(XdsTarget::new(server.clone())));
    }
    Ok(targets)
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is *called*, not when the
/// future is first polled: `run` reports ready before its loop first polls the shutdown future, and a
/// SIGTERM arriving in between would otherwise take the default action and kill the process.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::terminate())
            .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)))
            .map_err(|e| tracing::warn!(error = %e, "cannot install SIGTERM/SIGINT handlers"))
            .ok()
    };
    async move {
        #[cfg(unix)]
        if let Some((mut term, mut interrupt)) = handlers {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run_async(args: &RunArgs) -> Result<ExitCode> {
    let shutdown = shutdown_signal();
    let controller_name = args
        .controller_name
        .clone()
        .unwrap_or_else(|| Settings::default().controller_name);
    let mut config = RuntimeConfig::new(&controller_name);
    config.gateways = args
        .gateway
        .iter()
        .map(|g| parse_key(g))
        .collect::<Result<_>>()?;
    config.resync = Duration::from_secs(args.resync.max(1));
    if args.kong_admin.is_some() && config.gateways.len() > 1 {
        bail!("a Kong target serves one Gateway; pass at most one --gateway with --kong-admin");
    }
    let metrics = Arc::new(Metrics::default());
    let xds = match args.xds.xds_listen {
        Some(addr) => {
            Some(super::xds_flags::start(&args.xds, &args.envoy, addr, metrics.clone()).await?)
        }
        None => None,
    };
    let (live, ui) = live_ui(args, &controller_name)?;
    let (health_addr, _health) = serve_health_with(
        args.metrics_addr,
        metrics.clone(),
        xds.as_ref().map(|x| x.server.registry.clone()),
        ui,
    )
    .await
    .with_context(|| format!("serving metrics on {}", args.metrics_addr))?;
    tracing::info!(
        %health_addr,
        "serving /healthz, /readyz, /metrics{}{}",
        if xds.is_some() { ", /debug/xds" } else { "" },
        if live.is_some() { ", /ui/" } else { "" }
    );
    let filter = IndexFilter {
        controller_name: Some(controller_name.clone()),
    };
    let shared = Arc::new(Shared::new(Index::new(filter, Kind::ALL)));
    let targets = targets(args, xds.as_ref().map(|x| &x.server))?;

    if let Some(dir) = &args.manifests {
        if !dir.is_dir() {
            bail!("--manifests {}: not a directory", dir.display());
        }
        metrics.set_leader(true);
        let report_path = args
            .report
            .clone()
            .or_else(|| args.envoy_dir.as_ref().map(|d| d.join("status.json")));
        let mut report = Report::new(report_path, &controller_name, true);
        if let Some(xds) = &xds {
            report = report.with_xds(xds.server.registry.clone());
        }
        let status = StatusSink::Report(report);
        let source = tokio::spawn(controller_shim::source::dir::run(
            DirSource::new(dir),
            shared.clone(),
            metrics.clone(),
        ));
        tracing::info!(manifests = %dir.display(), controller = %controller_name, "watching the manifest directory");
        let mut runtime = Runtime::new(shared, targets, status, metrics, config).with_live(live);
        if let Some(xds) = &xds {
            runtime = runtime.with_report_refresh(xds.server.registry.subscribe());
        }
        runtime.run(shutdown).await;
        source.abort();
        return Ok(ExitCode::SUCCESS);
    }

    let client = kube_client(args.kube_url.as_deref()).await?;
    let watchers =
        controller_shim::source::kube::spawn(client.clone(), shared.clone(), metrics.clone());
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("controller-shim-{}", std::process::id()));
    let mut lease_config = LeaseConfig::new(&args.lease_namespace, &identity);
    lease_config.name = args.lease_name.clone();
    let (leader_tx, leader_rx) = tokio::sync::watch::channel(false);
    let elector = Elector::new(
        kube::Api::namespaced(client.clone(), &args.lease_namespace),
        lease_config,
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let lease_task = tokio::spawn(lease::run(elector, leader_tx, metrics.clone(), stop_rx));
    let status = StatusSink::Kube {
        writer: KubeStatus::new(client.clone()),
        leader: leader_rx,
    };
    tracing::info!(controller = %controller_name, %identity, lease = %format!("{}/{}", args.lease_namespace, args.lease_name), "watching the Kubernetes API");
    Runtime::new(shared, targets, status, metrics, config)
        .with_live(live)
        .run(shutdown)
        .await;
    for watcher in watchers {
        watcher.abort();
    }
    // Hand the Lease over at once instead of letting it expire.
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), lease_task).await;
    Ok(ExitCode::SUCCESS)
}

/// The live view and the /ui site, unless --no-ui.
fn live_ui(args: &RunArgs, controller: &str) -> Result<(Option<Arc<LiveView>>, Option<Ui>)> {
    if args.no_ui {
        return Ok((None, None));
    }
    let source = match &args.manifests {
        Some(dir) => format!("manifests {}", dir.display()),
        None => "kubernetes".to_owned(),
    };
    let live = Arc::new(LiveView::new(&source, controller));
    let assets = Assets::find(args.ui_dir.as_deref()).map_err(anyhow::Error::msg)?;
    if let Assets::Missing(message) = &assets {
        tracing::warn!("/ui: {message}");
    }
    Ok((Some(live.clone()), Some(Ui::new(assets, live))))
}

async fn kube_client(url: Option<&str>) -> Result<kube::Client> {
    let config = match url {
        Some(url) => kube::Config::new(url.parse().with_context(|| format!("--kube-url {url:?}"))?),
        None => kube::Config::infer()
            .await
            .context("no Kubernetes configuration (in-cluster, KUBECONFIG or ~/.kube/config)")?,
    };
    kube::Client::try_from(config).context("building the Kubernetes client")
}

/// `--kong-port GATEWAY_PORT=KONG_PORT`.
fn parse_kong_port(text: &str) -> Result<(u16, u16), String> {
    super::parse_port_pair(text, "KONG_PORT")
}

#[cfg(all(test, unix))]
mod tests {
    use super::shutdown_signal;

    /// A SIGTERM that arrives after `shutdown_signal()` was called but before its future is polled
    /// completes the future instead of killing the process (it did kill it, and a Kubernetes pod
    /// stopped right after readiness exited 143 instead of shutting down cleanly).
    #[tokio::test]
    async fn sigterm_before_the_first_poll_is_caught() {
        let shutdown = shutdown_signal();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status();
        assert!(
            sent.as_ref().is_ok_and(|s| s.success()),
            "kill -TERM failed: {sent:?}"
        );
        let caught = tokio::time::timeout(std::time::Duration::from_secs(10), shutdown).await;
        assert!(
            caught.is_ok(),
            "the SIGTERM did not complete the shutdown future"
        );
    }
}
