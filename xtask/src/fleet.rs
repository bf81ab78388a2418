//! `cargo xtask fleet`: one controller-shim feeding N Envoys over xDS on loopback (and a second
//! replica with Envoys of its own), every fleet scenario checked on every Envoy and timed. Builds the shim and the `bench` crate's
//! `gateway-fleet` binary (debug, as `cargo xtask test` leaves them), then runs it; the report
//! (Markdown) goes to standard output and `target/fleet/report.md`.

use crate::demo::target_dir;
use crate::steps::{cargo, root, run_binary};

/// One controller-shim, N Envoys over xDS: every fleet scenario, checked and timed
///
/// Starts a real OCI registry holding the filter, two echo backends, the controller-shim
/// (`run --manifests DIR --xds-listen … --wasm oci://…`) and N Envoys (`--concurrency 1`, half on
/// state-of-the-world ADS, half on delta) from `controller-shim bootstrap`. Then, on every Envoy:
/// routing; route pushes timed (p50/p99 across the fleet); a listener added to the Gateway; a
/// certificate rotated; the shim killed (Envoys keep serving) and restarted (they reconnect and
/// converge); a filter release that refuses every configuration NACKed and reported while traffic
/// keeps flowing; the shim's memory per connected Envoy; last, a second shim replica on the same
/// manifests with 2 Envoys of its own (both halves serve the same routes, a push reaches all
/// through both replicas, the replica killed leaves its Envoys serving, restarted they converge).
/// No Envoy may restart.
/// Fails when any Envoy does not get there.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct FleetArgs {
    /// How many Envoys.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub envoys: u32,
    /// Route pushes to time.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub pushes: u32,
    /// Use the binaries already in target/debug (as `cargo xtask test` leaves them) instead of
    /// building them.
    #[arg(long)]
    pub prebuilt: bool,
    /// Keep the work directory (the shim's and every Envoy's log and bootstrap).
    #[arg(long)]
    pub keep: bool,
}

pub fn run(args: &FleetArgs) -> anyhow::Result<()> {
    if !args.prebuilt {
        cargo(
            "build the controller-shim and gateway-fleet",
            &[
                "build",
                "-p",
                "controller-shim",
                "--bin",
                "controller-shim",
                "-p",
                "bench",
                "--bin",
                "gateway-fleet",
            ],
        )?;
    }
    let target = target_dir(&root());
    let out_dir = target.join("fleet");
    std::fs::create_dir_all(&out_dir)?;
    let out = out_dir.join("report.md");
    let envoys = args.envoys.to_string();
    let pushes = args.pushes.to_string();
    let out_text = out.to_string_lossy();
    let mut fleet_args = vec!["--envoys", &envoys, "--pushes", &pushes, "--out", &out_text];
    if args.keep {
        fleet_args.push("--keep");
    }
    run_binary(
        &format!(
            "fleet: one controller-shim, {} Envoys over xDS",
            args.envoys
        ),
        &target.join("debug").join("gateway-fleet"),
        &fleet_args,
    )
}
