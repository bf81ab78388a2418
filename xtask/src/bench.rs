//! `cargo xtask bench`, second half: the side-by-side Envoy benchmark (native routes, the
//! gateway-wasm filter, an empty wasm filter). Builds the two wasm files with the `wasm` profile,
//! then runs the `bench` crate's `gateway-bench` binary in release mode, which does the rest
//! (installing wrk when missing, Envoy, the upstream, the runs, the report in `target/bench/`).

use crate::steps::{cargo, ensure_wasm_target, wasm_build_args};

/// Builds the filter and the floor filter, then runs the Envoy benchmark (`--quick`: one size,
/// short runs, to prove the harness works).
pub fn envoy(quick: bool) -> anyhow::Result<()> {
    ensure_wasm_target()?;
    cargo(
        "wasm filters (plugin, floor-filter; wasm profile)",
        &wasm_build_args(&["plugin", "floor-filter"]),
    )?;
    let mut args = vec![
        "run",
        "--release",
        "-q",
        "-p",
        "bench",
        "--bin",
        "gateway-bench",
        "--",
    ];
    if quick {
        args.push("--quick");
    }
    cargo("Envoy benchmark: native vs plugin vs floor", &args)
}
