//! Evaluation cost against route tables of 10, 1,000 and 10,000 routes, compared with a naive
//! linear scan over every match (the cost model of a route list checked in order), and of gRPC
//! calls against 10 and 10,000 GRPCRoutes (`evaluate-grpc`).
//!
//! Run: `cargo bench -p engine --bench evaluate` (or `cargo xtask bench --engine`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod tables;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use engine::config::{PathMatchType, PluginConfig};
use engine::{Action, Request, RouteTable, SplitMix64};

const SIZES: [usize; 3] = [10, 1_000, 10_000];

fn evaluate(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate");
    for n in SIZES {
        let json = tables::config(n).to_string();
        let table = RouteTable::from_json(json.as_bytes()).unwrap();
        let config: PluginConfig = engine::parse(json.as_bytes()).unwrap();
        let naive = Naive::new(&config);
        for (label, host, path, headers) in tables::requests(n) {
            let request = Request {
                port: 80,
                sni: None,
                method: "GET",
                authority: &host,
                path: &path,
                headers: &headers,
            };
            // Both implementations must agree before we compare their speed.
            let expected = naive.find(&host, &path, &headers);
            let got = match table.evaluate(&request, &mut SplitMix64(1)).action {
                Action::Forward(_) | Action::Redirect(_) => table
                    .evaluate(&request, &mut SplitMix64(1))
                    .route
                    .map(|r| (r.name.to_owned(), r.rule_index)),
                Action::Respond(_) => None,
            };
            assert_eq!(got, expected, "{label} with {n} routes");
            let mut rng = SplitMix64(7);
            group.bench_with_input(
                BenchmarkId::new(format!("index/{label}"), n),
                &request,
                |b, request| b.iter(|| black_box(table.evaluate(black_box(request), &mut rng))),
            );
            if n <= 1_000 || label == "late" {
                group.bench_with_input(
                    BenchmarkId::new(format!("naive/{label}"), n),
                    &(),
                    |b, _| {
                        b.iter(|| {
                            black_box(naive.find(black_box(&host), black_box(&path), &headers))
                        })
                    },
                );
            }
        }
    }
    group.finish();
}

/// gRPC calls against GRPCRoute tables: the per-call cost must stay flat from 10 to 10,000
/// routes (hostname bucket, then a hash probe on service/method or service).
fn evaluate_grpc(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate-grpc");
    for n in [10, 10_000] {
        let json = tables::grpc::config(n).to_string();
        let table = RouteTable::from_json(json.as_bytes()).unwrap();
        for (label, host, path, headers, expected) in tables::grpc::requests(n) {
            let request = Request {
                port: 80,
                sni: None,
                method: "POST",
                authority: &host,
                path: &path,
                headers: &headers,
            };
            let decision = table.evaluate(&request, &mut SplitMix64(1));
            let got = match decision.action {
                Action::Forward(_) => decision.route.map(|r| (r.name.to_owned(), r.rule_index)),
                _ => None,
            };
            assert_eq!(got, expected, "{label} with {n} GRPCRoutes");
            let mut rng = SplitMix64(7);
            group.bench_with_input(BenchmarkId::new(label, n), &request, |b, request| {
                b.iter(|| black_box(table.evaluate(black_box(request), &mut rng)))
            });
        }
    }
    group.finish();
}

fn compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for n in SIZES {
        let json = tables::config(n).to_string();
        group.bench_with_input(BenchmarkId::from_parameter(n), &json, |b, json| {
            b.iter(|| RouteTable::from_json(black_box(json.as_bytes())).unwrap())
        });
    }
    group.finish();
}

/// The baseline: every match of every route checked in order, best by the spec's precedence.
struct Naive {
    entries: Vec<Entry>,
}

struct Entry {
    route: String,
    rule: usize,
    hostname: String,
    kind: PathMatchType,
    path: String,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    key: (u8, usize, usize, usize, usize),
}

impl Naive {
    fn new(config: &PluginConfig) -> Naive {
        let mut entries = Vec::new();
        for route in &config.routes {
            let hostname = route.parents[0].hostnames[0].clone();
            for (rule_index, rule) in route.rules.iter().enumerate() {
                for m in &rule.matches {
                    let path = m.path.clone().unwrap_or_default();
                    let host_rank = if hostname.starts_with('*') { 1 } else { 2 };
                    let path_rank = match path.kind {
                        PathMatchType::Exact => 1_000_000,
                        _ => path.value.len(),
                    };
                    entries.push(Entry {
                        route: route.name.clone(),
                        rule: rule_index,
                        hostname: hostname.clone(),
                        kind: path.kind,
                        path: path.value.clone(),
                        headers: m
                            .headers
                            .iter()
                            .map(|h| (h.name.clone(), h.value.clone()))
                            .collect(),
                        query: m
                            .query_params
                            .iter()
                            .map(|q| (q.name.clone(), q.value.clone()))
                            .collect(),
                        key: (
                            host_rank,
                            path_rank,
                            m.headers.len(),
                            m.query_params.len(),
                            usize::MAX - rule_index,
                        ),
                    });
                }
            }
        }
        Naive { entries }
    }

    fn find(
        &self,
        host: &str,
        target: &str,
        headers: &[(String, String)],
    ) -> Option<(String, usize)> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut best: Option<&Entry> = None;
        for e in &self.entries {
            let host_ok = match e.hostname.strip_prefix('*') {
                Some(suffix) => host.ends_with(suffix) && host.len() > suffix.len(),
                None => e.hostname == host,
            };
            let path_ok = match e.kind {
                PathMatchType::Exact => e.path == path,
                _ => {
                    path.starts_with(&e.path)
                        && matches!(path.as_bytes().get(e.path.len()), None | Some(b'/'))
                }
            };
            let headers_ok = e.headers.iter().all(|(n, v)| {
                headers
                    .iter()
                    .any(|(hn, hv)| hn.eq_ignore_ascii_case(n) && hv == v)
            });
            let query_ok = e.query.iter().all(|(n, v)| {
                query
                    .split('&')
                    .any(|p| p.split_once('=') == Some((n.as_str(), v.as_str())))
            });
            if host_ok && path_ok && headers_ok && query_ok && best.is_none_or(|b| e.key > b.key) {
                best = Some(e);
            }
        }
        best.map(|e| (e.route.clone(), e.rule))
    }
}

criterion_group!(benches, evaluate, evaluate_grpc, compile);
criterion_main!(benches);
