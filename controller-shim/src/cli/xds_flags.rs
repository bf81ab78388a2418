//! `run`'s xDS flags, and starting the xDS server with its module.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use controller_shim::metrics::Metrics;
use controller_shim::xds::XdsServer;

use super::envoy_flags::EnvoyFlags;

#[derive(Debug, Args)]
pub struct XdsFlags {
    /// Serve xDS (and the filter module) to Envoys started from `controller-shim bootstrap`, on
    /// this address (e.g. 0.0.0.0:18000).
    #[arg(long, value_name = "ADDR")]
    pub xds_listen: Option<SocketAddr>,
    /// With --wasm oci://…: where pulled modules are kept, by digest (a restart finds them there
    /// even when the registry is down) [default: $XDG_CACHE_HOME/gateway-wasm, else
    /// ~/.cache/gateway-wasm, else a directory under the system's temporary directory].
    #[arg(long, value_name = "DIR", requires = "xds_listen")]
    pub wasm_cache: Option<PathBuf>,
    /// With --wasm oci://REPO:TAG: resolve the tag again every N seconds; when it moved, pull,
    /// verify and serve the new module (0: never).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 300,
        requires = "xds_listen"
    )]
    pub wasm_refresh: u64,
    /// With --wasm oci://…: talk to the registry over plain HTTP (a local registry).
    #[arg(long, requires = "xds_listen")]
    pub registry_plain_http: bool,
    /// With --wasm oci://…: the registry user (else credentials come from the Docker config file,
    /// $DOCKER_CONFIG/config.json or ~/.docker/config.json, or none).
    #[arg(long, value_name = "USER", requires = "registry_password_file")]
    pub registry_username: Option<String>,
    /// The file holding --registry-username's password (a mounted Secret).
    #[arg(long, value_name = "FILE", requires = "registry_username")]
    pub registry_password_file: Option<PathBuf>,
}

/// A started xDS server.
pub struct RunningXds {
    pub server: XdsServer,
    _serve: tokio::task::JoinHandle<()>,
    _module: Option<tokio::task::JoinHandle<()>>,
}

impl XdsFlags {
    fn cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.wasm_cache {
            return dir.clone();
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return PathBuf::from(dir).join("gateway-wasm");
        }
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(".cache").join("gateway-wasm");
        }
        std::env::temp_dir().join("gateway-wasm-cache")
    }
}

/// Binds the xDS address and loads the module (a file now; an OCI reference in the background,
/// Gateways being served as soon as it is there).
pub async fn start(
    flags: &XdsFlags,
    envoy: &EnvoyFlags,
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<RunningXds> {
    let Some(wasm) = &envoy.wasm else {
        bail!("--xds-listen needs --wasm: the module file, or oci://REGISTRY/REPO:TAG");
    };
    // Rendering options; the directory and module path are not used in xDS mode.
    let options = envoy.options(&PathBuf::new(), wasm, envoy.admin_port);
    let server = XdsServer::new(options, metrics.clone());
    let (bound, serve) = server
        .serve(addr)
        .await
        .with_context(|| format!("serving xDS on {addr}"))?;
    tracing::info!(%bound, "serving xDS (ADS, state of the world and delta) and the filter module");
    let module = match envoy.wasm_reference() {
        None => {
            let bytes = std::fs::read(wasm)
                .with_context(|| format!("reading the filter module {}", wasm.display()))?;
            server.set_module(bytes.into(), &format!("file {}", wasm.display()));
            None
        }
        Some(reference) => {
            let puller = controller_shim::xds::module::OciModule::new(
                reference,
                controller_shim::xds::module::RegistryAccess {
                    plain_http: flags.registry_plain_http,
                    username: flags.registry_username.clone(),
                    password_file: flags.registry_password_file.clone(),
                },
                flags.cache_dir(),
                metrics,
            )?;
            let refresh = (flags.wasm_refresh > 0).then(|| Duration::from_secs(flags.wasm_refresh));
            Some(tokio::spawn(puller.run(server.clone(), refresh)))
        }
    };
    Ok(RunningXds {
        server,
        _serve: serve,
        _module: module,
    })
}
