//! Command-line interface: one module per subcommand, dispatched here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bootstrap;
mod envoy_flags;
mod explain;
mod render;
mod run;
mod xds_flags;

/// Kubernetes Gateway API routing inside Envoy, through the gateway-wasm filter.
///
/// Reads Gateway API objects, decides attachment and status, and produces what the proxy needs:
/// the filter's route table (PluginConfig) and, for Envoy, the bootstrap, extension-config and
/// cluster files (one Envoy) or an xDS stream (a fleet of Envoys started from `bootstrap`).
#[derive(Debug, Parser)]
#[command(name = "controller-shim", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Render(render::RenderArgs),
    Run(Box<run::RunArgs>),
    Explain(explain::ExplainArgs),
    Bootstrap(bootstrap::BootstrapArgs),
}

/// Parses the command line, runs the subcommand, and maps errors to a message and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Render(args) => render::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Bootstrap(args) => bootstrap::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("controller-shim: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `GATEWAY_PORT=OTHER_PORT` (`80=8000`) → `(80, 8000)`, for the flags that map a Gateway port to
/// the port a proxy listens on; `other` names the right-hand side in the error. Port 0 is refused on
/// both sides: no Gateway listener has it, and a proxy bound there would get a port nobody knows.
fn parse_port_pair(text: &str, other: &str) -> Result<(u16, u16), String> {
    let (gateway, proxy) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not GATEWAY_PORT={other}"))?;
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{p:?} in {text:?} is not a port (1-65535)"))
    };
    Ok((port(gateway)?, port(proxy)?))
}

#[cfg(test)]
mod tests {
    use super::parse_port_pair;

    #[test]
    fn port_pairs_name_the_bad_part() {
        assert_eq!(parse_port_pair(" 80 = 8000 ", "BIND_PORT"), Ok((80, 8000)));
        assert_eq!(
            parse_port_pair("80:8000", "KONG_PORT"),
            Err(r#""80:8000" is not GATEWAY_PORT=KONG_PORT"#.to_owned())
        );
        assert_eq!(
            parse_port_pair("80=70000", "BIND_PORT"),
            Err(r#""70000" in "80=70000" is not a port (1-65535)"#.to_owned())
        );
        assert_eq!(
            parse_port_pair("0=8000", "BIND_PORT"),
            Err(r#""0" in "0=8000" is not a port (1-65535)"#.to_owned())
        );
    }
}
