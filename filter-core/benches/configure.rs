//! Where `on_configure` spends its time, phase by phase, natively: inflating the gzip payload the
//! controller-shim ships for large tables, parsing the PluginConfig JSON into the owned config (and,
//! for comparison, serde_json scanning it without building anything), validating and compiling it into the
//! route table, and freeing the parsed config afterwards.
//! The same phases in Envoy's V8 are what issue 16 splits (`docs/benchmarks.md`).
//!
//! `cargo bench -p filter-core --bench configure`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::io::Write as _;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use engine::RouteTable;

#[path = "../../engine/benches/tables.rs"]
#[allow(dead_code)] // the request mix is for the evaluation benchmark
mod tables;

/// 1,000 and 10,000 routes; `cargo test --benches` (criterion's one-pass test mode, in CI) runs
/// 1,000 only: an unoptimized build takes seconds per pass over 10,000 routes.
fn sizes() -> &'static [usize] {
    if std::env::args().any(|a| a == "--bench") {
        &[1_000, 10_000]
    } else {
        &[1_000]
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn phases(c: &mut Criterion) {
    let mut group = c.benchmark_group("configure");
    group.sample_size(10);
    for &n in sizes() {
        let json = tables::config(n).to_string();
        let compressed = gzip(json.as_bytes());
        let config = engine::parse(json.as_bytes()).unwrap();
        group.bench_with_input(BenchmarkId::new("inflate", n), &compressed, |b, gz| {
            b.iter(|| filter_core::payload::decode(black_box(gz)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("parse", n), &json, |b, json| {
            b.iter(|| engine::parse(black_box(json.as_bytes())).unwrap())
        });
        // For reference, serde_json reading the same document without building anything (the
        // engine's reader is its own, `engine/src/config/json.rs`): what `parse` costs above a
        // mature scanner is mostly allocating and filling the owned config.
        group.bench_with_input(BenchmarkId::new("scan", n), &json, |b, json| {
            b.iter(|| {
                serde_json::from_str::<serde::de::IgnoredAny>(black_box(json.as_str())).unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("validate+compile", n), &config, |b, c| {
            b.iter(|| RouteTable::compile(black_box(c)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("free-parsed", n), &json, |b, json| {
            b.iter_batched(
                || engine::parse(json.as_bytes()).unwrap(),
                drop,
                BatchSize::PerIteration,
            )
        });
        group.bench_with_input(BenchmarkId::new("all", n), &compressed, |b, gz| {
            b.iter(|| {
                let json = filter_core::payload::decode(black_box(gz)).unwrap();
                let config = engine::parse(&json).unwrap();
                RouteTable::compile(&config).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, phases);
criterion_main!(benches);
