//! The Envoy rendering flags `render` and `run` share.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};

use controller_shim::envoy::{
    ConfigCompression, EdgeOptions, EnvoyFilter, EnvoyOptions, EscapedSlashes, FailurePolicy,
};

#[derive(Debug, Args)]
pub struct EnvoyFlags {
    /// The filter Envoy loads [default: gateway_wasm.wasm in the output directory]. With
    /// `run --xds-listen` also an OCI reference, oci://REGISTRY/REPO:TAG or …@sha256:DIGEST, of
    /// an artifact `packager push` published (compat, oci or cncf format).
    #[arg(long, value_name = "FILE|oci://REF")]
    pub wasm: Option<PathBuf>,
    /// Which build of the filter Envoy runs: the proxy-wasm filter (sandboxed, any Envoy with Wasm)
    /// or the Envoy dynamic module (native, fastest; Envoy 1.40-1.41 only; needs --module). Both
    /// get the same configuration. docs/dynamic-module.md compares them.
    #[arg(long, value_enum, value_name = "KIND", default_value_t = FilterKind::Wasm)]
    pub envoy_filter: FilterKind,
    /// The dynamic module Envoy loads (`libgateway_wasm_dynamic.so`, as Envoy will see it) with
    /// `--envoy-filter dynamic-module`.
    #[arg(
        long,
        value_name = "FILE",
        required_if_eq("envoy_filter", "dynamic-module")
    )]
    pub module: Option<PathBuf>,
    /// Bind every listener at Gateway port + N (to run without privileges, or several side by side).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub port_offset: u16,
    /// Bind Gateway port G at port B instead (repeatable; wins over --port-offset; ports 1-65535).
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
    /// What Envoy does with a path holding %2F or %5C (an encoded / or \). The default makes every
    /// party see the same path; docs/envoy.md explains the others.
    #[arg(long, value_enum, value_name = "ACTION", default_value_t = Slashes::UnescapeAndRedirect)]
    pub escaped_slashes: Slashes,
    /// How long a client may take to send a request's headers (a GEP-2257 duration: 10s, 500ms,
    /// 1m; 0s: no limit).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub request_headers_timeout: Duration,
    /// A stream (request, WebSocket, gRPC stream) idle for this long is reset (0s: never).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub stream_idle_timeout: Duration,
    /// The overload manager's heap limit in MiB: Envoy shrinks its heap at 95% of it and answers new
    /// requests 503 at 98%.
    #[arg(long, value_name = "MIB", default_value_t = 2048,
          value_parser = clap::value_parser!(u64).range(1..=1 << 40))]
    pub max_heap_mib: u64,
    /// Active downstream connections across all listeners; Envoy refuses more at accept (keep it
    /// under half the process's file-descriptor limit). The admin endpoint is exempt.
    #[arg(long, value_name = "N", default_value_t = 50_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
}

/// `path_with_escaped_slashes_action`, by Envoy's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Slashes {
    /// Redirect the client to the unescaped path (gRPC requests are refused).
    UnescapeAndRedirect,
    /// Answer 400.
    RejectRequest,
    /// Unescape and forward; only safe when nothing in front of Envoy routes by path.
    UnescapeAndForward,
    /// Forward as sent; a backend that decodes %2F then sees path segments routing did not.
    KeepUnchanged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FilterKind {
    /// `gateway_wasm.wasm` in Envoy's Wasm runtime.
    Wasm,
    /// `libgateway_wasm_dynamic.so` through Envoy's dynamic-modules HTTP filter.
    DynamicModule,
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
        options.filter = match (self.envoy_filter, &self.module) {
            (FilterKind::DynamicModule, Some(module)) => EnvoyFilter::DynamicModule(module.clone()),
            // clap requires --module with dynamic-module; without one, the Wasm filter.
            _ => EnvoyFilter::Wasm,
        };
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
        options.edge = EdgeOptions {
            escaped_slashes: match self.escaped_slashes {
                Slashes::UnescapeAndRedirect => EscapedSlashes::UnescapeAndRedirect,
                Slashes::RejectRequest => EscapedSlashes::RejectRequest,
                Slashes::UnescapeAndForward => EscapedSlashes::UnescapeAndForward,
                Slashes::KeepUnchanged => EscapedSlashes::KeepUnchanged,
            },
            request_headers_timeout: self.request_headers_timeout,
            stream_idle_timeout: self.stream_idle_timeout,
            max_heap_bytes: self.max_heap_mib.saturating_mul(1024 * 1024),
            max_connections: self.max_connections,
            ..EdgeOptions::default()
        };
        options
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    engine::time::parse_duration_ms(text.trim()).map(Duration::from_millis)
}

/// `--port-map G=B`.
pub fn parse_port_mapping(text: &str) -> Result<(u16, u16), String> {
    super::parse_port_pair(text, "BIND_PORT")
}
