//! The Envoy rendering flags `render` and `run` share.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use controller_shim::envoy::{ConfigCompression, EnvoyOptions, FailurePolicy};

#[derive(Debug, Args)]
pub struct EnvoyFlags {
    /// The filter Envoy loads [default: gateway_wasm.wasm in the output directory]. With
    /// `run --xds-listen` also an OCI reference, oci://REGISTRY/REPO:TAG or …@sha256:DIGEST, of
    /// an artifact `packager push` published (compat, oci or cncf format).
    #[arg(long, value_name = "FILE|oci://REF")]
    pub wasm: Option<PathBuf>,
    /// Bind every listener at Gateway port + N (to run without privileges, or several side by side).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub port_offset: u16,
    /// Bind Gateway port G at port B instead (repeatable; wins over --port-offset).
    #[arg(long, value_name = "G=B", value_parser = parse_port_mapping)]
    pub port_map: Vec<(u16, u16)>,
    /// Address the listeners bind to.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0")]
    pub bind_address: String,
    /// Envoy's admin port on 127.0.0.1 (`render` gives the Nth Gateway PORT+N).
    #[arg(long, value_name = "PORT", default_value_t = 19000)]
    pub admin_port: u16,
    /// What Envoy does when the filter's VM fails. Either way no request reaches a backend unrouted.
    #[arg(long, value_enum, default_value_t = Policy::FailClosed)]
    pub failure_policy: Policy,
    /// gzip the route configuration inside Envoy's extension-config file. Envoy parses that file
    /// slowly (~1 s per 6 MB); `auto` compresses above 64 KiB (about 100 routes) and leaves small
    /// configurations readable. To read a compressed one, base64-decode its `value` and gunzip it
    /// (docs/envoy.md shows the command).
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = Compress::Auto)]
    pub compress_config: Compress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Compress {
    /// Above 64 KiB of JSON.
    Auto,
    /// Every configuration, however small.
    Always,
    /// No configuration, however large (readable files, slower pushes).
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Policy {
    /// Requests fail with 503 until the next configuration push creates a new VM.
    FailClosed,
    /// Requests fail with 503 and Envoy reloads the VM (with backoff).
    FailReload,
}

impl EnvoyFlags {
    /// `--wasm oci://…`: the reference after the scheme.
    pub fn wasm_reference(&self) -> Option<&str> {
        self.wasm
            .as_ref()
            .and_then(|w| w.to_str())
            .and_then(|w| w.strip_prefix("oci://"))
    }

    /// Rendering options for one Gateway's directory.
    pub fn options(&self, dir: &Path, wasm: &Path, admin_port: u16) -> EnvoyOptions {
        let mut options = EnvoyOptions::new(dir, wasm);
        options.port_offset = self.port_offset;
        options.port_map = self.port_map.iter().copied().collect();
        options.bind_address.clone_from(&self.bind_address);
        options.admin_port = admin_port;
        options.failure_policy = match self.failure_policy {
            Policy::FailClosed => FailurePolicy::FailClosed,
            Policy::FailReload => FailurePolicy::FailReload,
        };
        options.config_compression = match self.compress_config {
            Compress::Auto => ConfigCompression::Auto,
            Compress::Always => ConfigCompression::Always,
            Compress::Never => ConfigCompression::Never,
        };
        options
    }
}

pub fn parse_port_mapping(text: &str) -> Result<(u16, u16), String> {
    let (gateway, bind) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not GATEWAY_PORT=BIND_PORT"))?;
    let port = |s: &str| {
        s.trim()
            .parse::<u16>()
            .map_err(|e| format!("{s:?} in {text:?} is not a port: {e}"))
    };
    Ok((port(gateway)?, port(bind)?))
}
