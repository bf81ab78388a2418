//! `cargo xtask …`: the project's own commands (tests, conformance, benchmarks, golden files, the
//! playground page).
//!
//! Each command prints what it runs and how long it took, installs what is missing (the wasm
//! target, Debian packages the tests need) and stops at the first failing step with its exit status.

mod bench;
mod demo;
mod fleet;
mod fuzz;
mod playground;
mod soak;
mod steps;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "gateway-wasm project commands", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything CI checks: formatting, clippy, unit and integration tests, the wasm builds, the
    /// conformance runs, and short soak, fleet (4 Envoys over xDS) and fuzz runs. Installs the wasm target and the Debian
    /// packages the tests need.
    Test {
        /// Skip the slow end-to-end steps (real Envoy conformance); for quick local iterations.
        #[arg(long)]
        quick: bool,
    },
    /// Run Gateway API conformance vectors (see `cargo run -p conformance -- --help`): `--target
    /// native` (default), `envoy`, `envoy-dynamic` (the Envoy dynamic module), `envoy-xds` or
    /// `kong-emulated` (builds the wasm filter, or the dynamic module, first; `envoy-xds` also the
    /// controller-shim).
    Conformance {
        /// Arguments passed to the runner, e.g. `--target native --status --case 'CORS'`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Benchmarks. `--quick` runs a short pass that only proves the harness works.
    Bench {
        #[arg(long)]
        quick: bool,
        /// Instead of the engine and Envoy benchmarks, price single proxy-wasm host calls in Envoy
        /// with bench/probe-filter (docs/benchmarks.md, "Probing host-call costs").
        #[arg(long, conflicts_with = "v8_configure")]
        probe: bool,
        /// Instead of the engine and Envoy benchmarks, time the filter's configuration (parse,
        /// validate, compile of the 10,000-route table) in V8 under node, as Envoy runs it, with
        /// bench/v8-configure (needs node; docs/benchmarks.md, "The lean Wasm path").
        #[arg(long)]
        v8_configure: bool,
    },
    Demo(demo::DemoArgs),
    Playground(playground::PlaygroundArgs),
    Fleet(fleet::FleetArgs),
    Fuzz(fuzz::FuzzArgs),
    Soak(soak::SoakArgs),
    /// Regenerate golden files (JSON Schema, rendered Envoy configs, the resolver corpus under
    /// controller-shim/tests/golden/resolve/) from the current code. Review the diff before committing.
    Bless,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Test { quick } => steps::test(quick),
        Command::Conformance { args } => steps::conformance(&args),
        Command::Bench {
            quick, probe: true, ..
        } => bench::probe(quick),
        Command::Bench {
            quick,
            v8_configure: true,
            ..
        } => bench::v8_configure(quick),
        Command::Bench { quick, .. } => steps::bench(quick),
        Command::Demo(args) => demo::run(&args),
        Command::Playground(args) => playground::run(&args),
        Command::Fleet(args) => fleet::run(&args),
        Command::Fuzz(args) => fuzz::run(&args),
        Command::Soak(args) => soak::run(&args),
        Command::Bless => steps::bless(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
