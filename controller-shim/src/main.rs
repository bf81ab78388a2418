//! `controller-shim`: Gateway API objects in, data-plane configuration out.
//!
//! A subcommand dispatcher; each subcommand lives in its own module under `cli/`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
