//! `cargo xtask bench`, second half: the side-by-side Envoy benchmark (native routes, the
//! gateway-wasm filter, an empty wasm filter, the dynamic module, an empty dynamic module; then the
//! gRPC unary rows: GRPCRoutes natively, in the filter and in the dynamic module). Builds
//! the two wasm files with the `wasm` profile and the two dynamic modules in release mode,
//! then runs the `bench` crate's `gateway-bench` binary in release mode, which does the rest
//! (installing wrk when missing, Envoy, the upstream, the runs, the report in `target/bench/`).
//!
//! `cargo xtask bench --probe`: the price of single host calls in Envoy, with `bench/probe-filter`
//! (`gateway-bench probe`).
//!
//! `cargo xtask bench --v8-configure`: the filter's configuration (parse, validate, compile) timed
//! in V8 under node, as Envoy runs it, with `bench/v8-configure` (`gateway-bench v8-configure`).

use crate::steps::{cargo, ensure_wasm_target, wasm_build_args};

/// Builds the filter and the floor filter, then runs the Envoy benchmark (`--quick`: one size,
/// short runs, to prove the harness works).
pub fn envoy(quick: bool) -> anyhow::Result<()> {
    ensure_wasm_target()?;
    cargo(
        "wasm filters (plugin, floor-filter; wasm profile)",
        &wasm_build_args(&["plugin", "floor-filter"]),
    )?;
    cargo(
        "dynamic modules (dynamic-module, dynamic-floor; release)",
        &[
            "build",
            "--release",
            "-p",
            "dynamic-module",
            "-p",
            "dynamic-floor",
        ],
    )?;
    gateway_bench(
        "Envoy benchmark: native vs plugin vs floor vs dynamic vs dynamic-floor, then gRPC unary",
        &[],
        quick,
    )
}

/// Builds the probe filter, then prices single host calls in Envoy (`--quick`: one short round, to
/// prove the harness works).
pub fn probe(quick: bool) -> anyhow::Result<()> {
    ensure_wasm_target()?;
    cargo(
        "wasm filter (probe-filter; wasm profile)",
        &wasm_build_args(&["probe-filter"]),
    )?;
    gateway_bench("Envoy host-call probe", &["probe"], quick)
}

/// Builds the configuration probe, then times parse, validate and compile in V8 under node
/// (`--quick`: one run over 1,000 routes, to prove the harness works).
pub fn v8_configure(quick: bool) -> anyhow::Result<()> {
    ensure_wasm_target()?;
    cargo(
        "configuration probe (v8-configure; wasm profile)",
        &wasm_build_args(&["v8-configure"]),
    )?;
    gateway_bench(
        "the filter's configuration in V8 under node",
        &["v8-configure"],
        quick,
    )
}

/// Runs the `gateway-bench` binary (release build) with `args`, and `--quick` when asked.
fn gateway_bench(label: &str, args: &[&str], quick: bool) -> anyhow::Result<()> {
    let mut full = vec![
        "run",
        "--release",
        "-q",
        "-p",
        "bench",
        "--bin",
        "gateway-bench",
        "--",
    ];
    full.extend(args);
    if quick {
        full.push("--quick");
    }
    cargo(label, &full)
}
