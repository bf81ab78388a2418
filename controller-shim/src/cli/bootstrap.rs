//! `controller-shim bootstrap`: the Envoy bootstrap for xDS mode.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use atomic_file::Access;
use clap::{Args, ValueEnum};

use controller_shim::envoy::{AdsBootstrap, AdsProtocol, Binding, EdgeOptions, ads_bootstrap};

use super::envoy_flags::parse_port_mapping;
use super::explain::parse_key;

/// Print the bootstrap an Envoy needs to be fed by `controller-shim run --xds-listen`.
///
/// The bootstrap holds only what never changes: the admin endpoint (on 127.0.0.1), the node (its
/// id, and in node.metadata.gateway_wasm the Gateway it serves and how it binds its listeners), a
/// cluster that reaches the shim over HTTP/2, and ADS as the source of everything else. Listeners,
/// clusters, endpoints, certificates and the filter (with its module, downloaded from the shim)
/// all arrive on that one stream, so listener, port and certificate changes need no restart.
/// The overload manager (heap and connection limits) is the bootstrap's; the listeners' edge
/// settings (path normalization, timeouts, limits) come with LDS from `run`'s flags.
///
///   controller-shim bootstrap --xds gateway-wasm-xds.gateway-system.svc:18000 \
///       --gateway gateway-system/gw --node-id envoy-0 --out bootstrap.yaml
///   envoy -c bootstrap.yaml [--service-node "$POD_NAME"]
///
/// Envoy's --service-node overrides the node id, so many Envoys can share one bootstrap.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct BootstrapArgs {
    /// The shim's xDS address as Envoy reaches it: HOST:PORT (a DNS name, an IPv4 address or
    /// [IPv6]).
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_host_port)]
    xds: (String, u16),
    /// The Gateway this Envoy serves, NAMESPACE/NAME.
    #[arg(long, value_name = "NS/NAME")]
    gateway: String,
    /// The node id (the status report and the shim's logs name the Envoy by it).
    #[arg(long, value_name = "ID")]
    node_id: String,
    /// Write the bootstrap to this file (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Envoy's admin port on 127.0.0.1.
    #[arg(long, value_name = "PORT", default_value_t = 19000)]
    admin_port: u16,
    /// The ADS variant: state of the world (every response carries the whole set) or delta
    /// (responses carry what changed).
    #[arg(long, value_enum, default_value_t = Protocol::Sotw)]
    protocol: Protocol,
    /// Address the listeners bind to.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0")]
    bind_address: String,
    /// Bind every listener at Gateway port + N (to run without privileges, or several side by side).
    #[arg(long, value_name = "N", default_value_t = 0)]
    port_offset: u16,
    /// Bind Gateway port G at port B instead (repeatable; wins over --port-offset; ports 1-65535).
    #[arg(long, value_name = "G=B", value_parser = parse_port_mapping)]
    port_map: Vec<(u16, u16)>,
    /// The overload manager's heap limit in MiB: Envoy shrinks its heap at 95% of it and answers new
    /// requests 503 at 98%.
    #[arg(long, value_name = "MIB", default_value_t = 2048,
          value_parser = clap::value_parser!(u64).range(1..=1 << 40))]
    max_heap_mib: u64,
    /// Active downstream connections across all listeners; Envoy refuses more at accept (keep it
    /// under half the process's file-descriptor limit). The admin endpoint is exempt.
    #[arg(long, value_name = "N", default_value_t = 50_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    /// State of the world (`GRPC`).
    Sotw,
    /// Incremental (`DELTA_GRPC`).
    Delta,
}

/// `host:port`, `1.2.3.4:port` or `[::1]:port`.
fn parse_host_port(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not HOST:PORT"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{text:?} has no host"));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{port:?} in {text:?} is not a port (1-65535)"))?;
    Ok((host.to_owned(), port))
}

pub fn run(args: &BootstrapArgs) -> Result<ExitCode> {
    let gateway = parse_key(&args.gateway)?;
    if args.node_id.trim().is_empty() {
        bail!("--node-id must not be empty");
    }
    let config = AdsBootstrap {
        xds_host: args.xds.0.clone(),
        xds_port: args.xds.1,
        gateway,
        node_id: args.node_id.clone(),
        admin_port: args.admin_port,
        protocol: match args.protocol {
            Protocol::Sotw => AdsProtocol::StateOfTheWorld,
            Protocol::Delta => AdsProtocol::Delta,
        },
        binding: Binding {
            bind_address: args.bind_address.clone(),
            port_offset: args.port_offset,
            port_map: args.port_map.iter().copied().collect(),
        },
        edge: EdgeOptions {
            max_heap_bytes: args.max_heap_mib.saturating_mul(1024 * 1024),
            max_connections: args.max_connections,
            ..EdgeOptions::default()
        },
    };
    let text = ads_bootstrap(&config)?;
    match &args.out {
        Some(path) => {
            atomic_file::write(path, text.as_bytes(), Access::Public)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_host_port;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            parse_host_port("xds.example:18000"),
            Ok(("xds.example".into(), 18000))
        );
        assert_eq!(parse_host_port("[::1]:80"), Ok(("::1".into(), 80)));
        assert!(parse_host_port("nohost").is_err());
        assert!(parse_host_port(":80").is_err());
        assert!(parse_host_port("h:0").is_err());
    }
}
