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
