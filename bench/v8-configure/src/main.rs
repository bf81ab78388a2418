//! Times the three phases of a filter's configuration, `engine::parse`, `engine::validate` and
//! `RouteTable::compile`, on one PluginConfig document.
//!
//! `cargo xtask bench --v8-configure` builds this for wasm32-wasip1 with the filter's `wasm`
//! profile and `gateway-bench v8-configure` runs it in V8 under node the way Envoy runs the filter
//! (TurboFan only, fresh instances of one compiled module): Envoy's own runs vary by a third
//! between runs, which hides changes of a few milliseconds (`docs/benchmarks.md`).
//!
//! Usage: `v8-configure FILE ROUNDS`. Prints one line per round: parse, validate and compile in
//! microseconds, then the linear memory's size in 64 KiB pages after parsing and after compiling.
//! Compiling validates again, as the filter does; `validate` is timed on its own to show what
//! validation costs. Memory never shrinks, so in a fresh instance the pages are what the
//! configuration has touched (and a fresh Envoy VM has had to fault in); that count does not vary
//! between runs as the times do.

use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("v8-configure: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (Some(file), Some(rounds)) = (args.next(), args.next()) else {
        return Err("usage: v8-configure FILE ROUNDS".to_owned());
    };
    let rounds: u32 = rounds
        .parse()
        .map_err(|_| format!("ROUNDS must be a number, not {rounds:?}"))?;
    let json = std::fs::read(&file).map_err(|e| format!("reading {file}: {e}"))?;
    // The previous round's table stays alive while the next is compiled, as in a push.
    let mut previous = None;
    for _ in 0..rounds {
        let started = Instant::now();
        let config = engine::parse(&json).map_err(|e| e.to_string())?;
        let parsed = Instant::now();
        let pages_parsed = memory_pages();
        engine::validate(&config).map_err(|e| e.to_string())?;
        let validated = Instant::now();
        let table = engine::RouteTable::compile(&config).map_err(|e| e.to_string())?;
        let compiled = Instant::now();
        let pages_compiled = memory_pages();
        drop(config);
        previous = Some(table);
        println!(
            "{} {} {} {pages_parsed} {pages_compiled}",
            (parsed - started).as_micros(),
            (validated - parsed).as_micros(),
            (compiled - validated).as_micros()
        );
    }
    drop(previous);
    Ok(())
}

/// The linear memory's size in 64 KiB pages (0 when not built for wasm32, where there is none).
fn memory_pages() -> usize {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::memory_size::<0>()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}
