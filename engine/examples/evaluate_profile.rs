//! Instructions per evaluation, for a machine too busy for criterion's wall-clock numbers: evaluates
//! requests of the benchmark mix (`benches/tables.rs`) `ITERATIONS` times each, inside one function,
//! so that callgrind counts exactly those instructions:
//!
//! ```sh
//! cargo build --release -p engine --example evaluate_profile
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured*' \
//!     --callgrind-out-file=/dev/null target/release/examples/evaluate_profile 1000 late
//! ```
//!
//! Arguments: the number of routes (default 1,000) and optionally one request label (early, late,
//! exact, header, query, missing-path, missing-host; default all). Callgrind's `Collected` count
//! divided by `ITERATIONS` (and by the number of labels) is instructions per evaluation, the same
//! on a busy machine as on an idle one. Without valgrind it prints wall-clock ns per evaluation.

#[path = "../benches/tables.rs"]
mod tables;

use std::hint::black_box;
use std::time::Instant;

use engine::{Request, RouteTable, SplitMix64};

const ITERATIONS: u32 = 1_000;

/// Evaluates `request` `ITERATIONS` times (the function callgrind's `--toggle-collect` names).
#[inline(never)]
fn measured(table: &RouteTable, request: &Request<'_, String>, random: &mut SplitMix64) {
    for _ in 0..ITERATIONS {
        drop(black_box(table.evaluate(black_box(request), random)));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let routes: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 1_000,
    };
    let table = RouteTable::from_json(tables::config(routes).to_string().as_bytes())?;
    let only = std::env::args().nth(2);
    let mut random = SplitMix64(7);
    for (label, host, path, headers) in tables::requests(routes) {
        if only.as_deref().is_some_and(|only| only != label) {
            continue;
        }
        let request = Request {
            port: 80,
            sni: None,
            method: "GET",
            authority: &host,
            path: &path,
            headers: &headers,
        };
        let started = Instant::now();
        measured(&table, &request, &mut random);
        let ns = started.elapsed().as_nanos() / u128::from(ITERATIONS);
        println!("{routes} routes, {label}: {ns} ns per evaluation");
    }
    Ok(())
}
