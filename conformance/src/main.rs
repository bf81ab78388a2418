//! `conformance`: runs Gateway API conformance vectors against this project.
//!
//! Usually started through `cargo xtask conformance`. Prints one line per failed or skipped case and
//! last `N passed, N failed, N skipped`; exits non-zero when anything failed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use conformance::outcome::{Outcome, Summary};
use conformance::vectors::{self, Case, VectorFile};

#[derive(Parser, Debug)]
#[command(
    about = "Run Gateway API conformance vectors through the resolver and the filter's own code (native), a real Envoy, or an emulation of Kong",
    long_about = "Runs every case of a vector file in the shared schema.\n\n\
        native: the resolver, then the filter's configure and request adapter over its mock host \
        (the same code as in Envoy, without the proxy); GRPCRoute cases are sent as gRPC calls and \
        judged as a grpc-go client reads the answer; cases that need a live proxy (timeouts, \
        retries, upstream protocols) are skipped with the reason.\n\
        envoy: a real Envoy 1.40 with the wasm filter and real echo backends.\n\
        envoy-dynamic: the same, with the Envoy dynamic module (--module) instead of the wasm filter.\n\
        envoy-xds: the same, with a controller-shim process (--manifests, --xds-listen, the filter \
        pulled from a local OCI registry process) feeding an Envoy started from `controller-shim \
        bootstrap`; each case's objects are written as manifests.\n\
        kong-emulated: the controller-shim's Kong configuration loaded into kong-emulator, an \
        emulation of Kong 3.4-3.9 and ngx_wasm_module derived from their source (not Kong) running \
        the real wasm filter; once per Kong release (--kong-version). Cases Kong cannot support are \
        skipped with the reason.\n\n\
        Output: one line per failure (case id, expected, got) and per skip (reason); last line \
        `N passed, N failed, N skipped`. Exit status 1 when anything failed."
)]
struct Args {
    /// Vector file in the shared schema (HTTPRoute or GRPCRoute cases; each case says which)
    /// [default: the vendored file of --kind].
    #[arg(long)]
    vectors: Option<PathBuf>,
    /// Which vendored vector file to run when --vectors is not given.
    #[arg(long, value_enum, default_value_t = Kind::Http)]
    kind: Kind,
    /// Where to run the request cases.
    #[arg(long, value_enum, default_value_t = Target::Native)]
    target: Target,
    /// Run `statusCases` (the controller's status conditions) instead of request cases.
    #[arg(long)]
    status: bool,
    /// Only cases whose id matches this regular expression.
    #[arg(long = "case", value_name = "REGEX")]
    case_filter: Option<String>,
    /// Leave out `unreleasedCases` (tests only on the suite's main branch).
    #[arg(long)]
    released_only: bool,
    /// Kong releases for `--target kong-emulated` (repeatable: 3.4 … 3.9) [default: all six].
    #[arg(long = "kong-version", value_name = "3.N", value_parser = parse_kong_version)]
    kong_versions: Vec<kong_emulator::KongVersion>,
    /// The filter module for `--target envoy`, `envoy-xds` and `kong-emulated`.
    #[arg(long, default_value = "target/wasm32-wasip1/wasm/gateway_wasm.wasm")]
    wasm: PathBuf,
    /// The dynamic module for `--target envoy-dynamic` (`cargo build -p dynamic-module`).
    #[arg(long, default_value = "target/debug/libgateway_wasm_dynamic.so")]
    module: PathBuf,
    /// Also print a line for every passed case.
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// HTTPRoute (`conformance/vectors/httproute-vectors.json`).
    Http,
    /// GRPCRoute (`conformance/vectors/grpcroute-vectors.json`).
    Grpc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Native,
    Envoy,
    EnvoyDynamic,
    EnvoyXds,
    KongEmulated,
}

fn parse_kong_version(text: &str) -> Result<kong_emulator::KongVersion, String> {
    kong_emulator::KongVersion::parse(text)
        .ok_or_else(|| format!("{text:?} is not a Kong release with Wasm (3.4 … 3.9)"))
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(summary) if summary.failed == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<Summary> {
    let path = args.vectors.clone().unwrap_or_else(|| match args.kind {
        Kind::Http => vectors::httproute_vectors_path(),
        Kind::Grpc => vectors::grpcroute_vectors_path(),
    });
    let file = vectors::load(&path)?;
    let filter = args
        .case_filter
        .as_deref()
        .map(regex_lite::Regex::new)
        .transpose()
        .context("--case is not a valid regular expression")?;
    let selected = |id: &str| filter.as_ref().is_none_or(|re| re.is_match(id));

    let summary = if args.status {
        let mut status = Summary::default();
        for case in file.status_cases.iter().filter(|c| selected(&c.id)) {
            let outcome = conformance::status::check(case, &file);
            report(&case.id, &outcome, args.verbose);
            status.record(&outcome);
        }
        status
    } else {
        let cases: Vec<&Case> = file
            .cases
            .iter()
            .chain(if args.released_only {
                [].iter()
            } else {
                file.unreleased_cases.iter()
            })
            .filter(|c| selected(&c.id))
            .collect();
        match args.target {
            Target::Native => run_native(&cases, &file, args.verbose),
            Target::Envoy => run_envoy(
                conformance::envoy::EnvoyTarget::new(&args.wasm)?,
                &cases,
                &file,
                args.verbose,
            )?,
            Target::EnvoyDynamic => run_envoy(
                conformance::envoy::EnvoyTarget::dynamic_module(&args.module)?,
                &cases,
                &file,
                args.verbose,
            )?,
            Target::EnvoyXds => run_envoy(
                conformance::envoy::EnvoyTarget::new_xds(&args.wasm, &cases)?,
                &cases,
                &file,
                args.verbose,
            )?,
            Target::KongEmulated => {
                let versions = if args.kong_versions.is_empty() {
                    kong_emulator::KongVersion::ALL.to_vec()
                } else {
                    args.kong_versions.clone()
                };
                run_kong(&cases, &file, &args.wasm, &versions, args.verbose)?
            }
        }
    };
    println!("{summary}");
    Ok(summary)
}

fn run_native(cases: &[&Case], file: &VectorFile, verbose: bool) -> Summary {
    let mut summary = Summary::default();
    for case in cases {
        let outcome = conformance::native::run(case, file);
        report(&case.id, &outcome, verbose);
        summary.record(&outcome);
    }
    summary
}

fn run_envoy(
    mut target: conformance::envoy::EnvoyTarget,
    cases: &[&Case],
    file: &VectorFile,
    verbose: bool,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let started = std::time::Instant::now();
    for (i, case) in cases.iter().enumerate() {
        let outcome = target.run(case, file);
        report(&case.id, &outcome, verbose);
        summary.record(&outcome);
        if (i + 1) % 50 == 0 {
            eprintln!(
                "[envoy] {}/{} cases, {:.0}s",
                i + 1,
                cases.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!("{}", target.summary());
    Ok(summary)
}

fn run_kong(
    cases: &[&Case],
    file: &VectorFile,
    wasm: &std::path::Path,
    versions: &[kong_emulator::KongVersion],
    verbose: bool,
) -> anyhow::Result<Summary> {
    let mut total = Summary::default();
    for version in versions {
        let target = conformance::kong::KongEmulatedTarget::new(wasm, *version)?;
        let started = std::time::Instant::now();
        let mut summary = Summary::default();
        for case in cases {
            let outcome = target.run(case, file);
            report(
                &format!("{} [Kong {version} emulated]", case.id),
                &outcome,
                verbose,
            );
            summary.record(&outcome);
        }
        eprintln!(
            "[kong-emulated {version}] {summary} in {:.0}s",
            started.elapsed().as_secs_f64()
        );
        total.add(summary);
    }
    Ok(total)
}

fn report(id: &str, outcome: &Outcome, verbose: bool) {
    match outcome {
        Outcome::Pass if verbose => println!("PASS {id}"),
        Outcome::Pass => {}
        Outcome::Fail(why) => println!("FAIL {id}: {why}"),
        Outcome::Skip(why) => println!("SKIP {id}: {why}"),
    }
}
