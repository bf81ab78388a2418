//! Medians, ratios and the Markdown report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::load::LoadResult;

/// One measured run: one setup, one table size, one round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub routes: usize,
    pub variant: String,
    pub round: usize,
    pub load: LoadResult,
    pub requests_per_second: f64,
    /// Envoy's RSS after the configuration was loaded and the mix verified (before the load).
    pub rss_kib: u64,
    /// Envoy's RSS after the load run.
    pub rss_after_load_kib: u64,
    /// Envoy's CPU time during the load run, as a fraction of one CPU.
    pub envoy_cpu: f64,
    /// Envoy's CPU time (all threads) per request completed during the load run, in µs.
    #[serde(default)]
    pub envoy_cpu_us_per_request: f64,
    /// Busy fraction of each CPU during the load run.
    pub cpu_busy: Vec<f64>,
    /// Steal fraction of each CPU during the load run (the hypervisor ran someone else).
    #[serde(default)]
    pub cpu_steal: Vec<f64>,
    /// From start to the first request routed.
    pub startup_ms: f64,
    /// From the rename of the pushed file to the first response that shows the change, per push.
    pub push_ms: Vec<f64>,
    /// The filter's own compile times (`compiled in N µs`), per VM, for the initial configuration.
    pub on_configure_us: Vec<u64>,
    /// The same for the pushed configurations.
    pub push_on_configure_us: Vec<u64>,
}

/// Everything the report states besides the runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Context {
    pub command: String,
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
    pub envoy_version: String,
    pub wrk_version: String,
    pub pinning: String,
    pub connections: u32,
    pub duration_s: u64,
    pub warmup_s: u64,
    pub rounds: usize,
    pub load_before: f64,
    pub load_after: f64,
    /// Runs repeated because other processes took Envoy's CPU.
    #[serde(default)]
    pub repeated_runs: u32,
    pub plugin_wasm_bytes: u64,
    pub floor_wasm_bytes: u64,
    /// `libgateway_wasm_dynamic.so` and `libdynamic_floor.so` (release builds); 0 when not measured.
    #[serde(default)]
    pub dynamic_module_bytes: u64,
    #[serde(default)]
    pub dynamic_floor_bytes: u64,
    pub mix: Vec<String>,
}

pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v.get(mid).copied()
    } else {
        Some((v.get(mid - 1)? + v.get(mid)?) / 2.0)
    }
}

/// Medians of one setup at one size.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub rps: Option<f64>,
    pub cpu_us: Option<f64>,
    pub rps_min: Option<f64>,
    pub rps_max: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub rss_mib: Option<f64>,
    pub push_ms: Option<f64>,
    pub push_max_ms: Option<f64>,
    pub envoy_cpu: Option<f64>,
    pub envoy_steal: Option<f64>,
    pub other_cpu: Option<f64>,
    pub startup_ms: Option<f64>,
    pub on_configure_ms: Option<f64>,
    pub push_on_configure_ms: Option<f64>,
}

pub fn summarize(runs: &[&RunResult], envoy_cpu_index: usize) -> Summary {
    let pick = |f: &dyn Fn(&RunResult) -> f64| -> Vec<f64> { runs.iter().map(|r| f(r)).collect() };
    let rps = pick(&|r| r.requests_per_second);
    let pushes: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.push_ms.iter().copied())
        .collect();
    let compile: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.on_configure_us.iter().map(|us| *us as f64 / 1000.0))
        .collect();
    let push_compile: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.push_on_configure_us.iter().map(|us| *us as f64 / 1000.0))
        .collect();
    let other: Vec<f64> = runs
        .iter()
        .filter_map(|r| {
            r.cpu_busy
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != envoy_cpu_index)
                .map(|(_, b)| *b)
                .reduce(f64::max)
        })
        .collect();
    Summary {
        rps: median(&rps),
        cpu_us: median(&pick(&|r| r.envoy_cpu_us_per_request)),
        rps_min: rps.iter().copied().reduce(f64::min),
        rps_max: rps.iter().copied().reduce(f64::max),
        p50_ms: median(&pick(&|r| r.load.p50_us / 1000.0)),
        p99_ms: median(&pick(&|r| r.load.p99_us / 1000.0)),
        rss_mib: median(&pick(&|r| r.rss_kib as f64 / 1024.0)),
        push_ms: median(&pushes),
        push_max_ms: pushes.iter().copied().reduce(f64::max),
        envoy_cpu: median(&pick(&|r| r.envoy_cpu)),
        envoy_steal: median(&pick(&|r| {
            r.cpu_steal.get(envoy_cpu_index).copied().unwrap_or(0.0)
        })),
        other_cpu: median(&other),
        startup_ms: median(&pick(&|r| r.startup_ms)),
        on_configure_ms: median(&compile),
        push_on_configure_ms: median(&push_compile),
    }
}

pub(crate) fn num(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}

pub(crate) fn thousands(value: Option<f64>) -> String {
    let Some(v) = value else {
        return "–".to_owned();
    };
    let digits = format!("{:.0}", v.round());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

pub(crate) fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{:.0} %", v * 100.0))
}

/// The Markdown section: setup, results, ratios.
pub fn markdown(context: &Context, runs: &[RunResult], envoy_cpu_index: usize) -> String {
    let mut by: BTreeMap<(usize, &str), Vec<&RunResult>> = BTreeMap::new();
    for run in runs {
        by.entry((run.routes, run.variant.as_str()))
            .or_default()
            .push(run);
    }
    let sizes: Vec<usize> = {
        let mut s: Vec<usize> = runs.iter().map(|r| r.routes).collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let summary = |size: usize, variant: &str| {
        by.get(&(size, variant))
            .map(|runs| summarize(runs, envoy_cpu_index))
    };
    let mut out = String::new();
    let _ = writeln!(out, "Command: `{}`\n", context.command);
    let _ = writeln!(
        out,
        "Machine: {} ({} cores), Linux {}, {}, {}. {}. Load: {} connections, {} s measured after {} s of \
         warm-up, {} round(s), setups alternating native → plugin → floor → dynamic → dynamic-floor in every round. Load average \
         (1 min) {:.2} before, {:.2} after; {} run(s) repeated because other processes took Envoy's CPU.\n",
        context.cpu_model,
        context.cores,
        context.kernel,
        context.envoy_version,
        context.wrk_version,
        context.pinning,
        context.connections,
        context.duration_s,
        context.warmup_s,
        context.rounds,
        context.load_before,
        context.load_after,
        context.repeated_runs,
    );
    let _ = writeln!(
        out,
        "Request mix (cycled in order): {}.\n",
        context.mix.join(", ")
    );
    let _ = writeln!(
        out,
        "| routes | setup | req/s (median) | req/s (min–max) | Envoy CPU µs/request | p50 ms | p99 ms | RSS MiB | push → effect ms (median / max) | start → routed ms | Envoy CPU (steal) | load-gen CPU |"
    );
    let _ = writeln!(
        out,
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for &size in &sizes {
        for variant in ["native", "plugin", "floor", "dynamic", "dynamic-floor"] {
            let Some(s) = summary(size, variant) else {
                continue;
            };
            let push = if s.push_ms.is_some() {
                format!("{} / {}", num(s.push_ms, 0), num(s.push_max_ms, 0))
            } else {
                "–".to_owned()
            };
            let _ = writeln!(
                out,
                "| {} | {variant} | {} | {}–{} | {} | {} | {} | {} | {push} | {} | {} ({}) | {} |",
                thousands(Some(size as f64)),
                thousands(s.rps),
                thousands(s.rps_min),
                thousands(s.rps_max),
                num(s.cpu_us, 1),
                num(s.p50_ms, 2),
                num(s.p99_ms, 2),
                num(s.rss_mib, 1),
                num(s.startup_ms, 0),
                percent(s.envoy_cpu),
                percent(s.envoy_steal),
                percent(s.other_cpu),
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| routes | plugin/native req/s | plugin/floor req/s | floor/native req/s | native/plugin CPU per request | floor/plugin CPU per request | plugin/native p50 | plugin/native p99 | plugin − native RSS MiB | plugin on_configure ms per VM (initial / push) |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &size in &sizes {
        let native = summary(size, "native").unwrap_or_default();
        let plugin = summary(size, "plugin").unwrap_or_default();
        let floor = summary(size, "floor").unwrap_or_default();
        let rss = match (plugin.rss_mib, native.rss_mib) {
            (Some(p), Some(n)) => Some(p - n),
            _ => None,
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
            thousands(Some(size as f64)),
            num(ratio(plugin.rps, native.rps), 2),
            num(ratio(plugin.rps, floor.rps), 2),
            num(ratio(floor.rps, native.rps), 2),
            num(ratio(native.cpu_us, plugin.cpu_us), 2),
            num(ratio(floor.cpu_us, plugin.cpu_us), 2),
            num(ratio(plugin.p50_ms, native.p50_ms), 2),
            num(ratio(plugin.p99_ms, native.p99_ms), 2),
            num(rss, 1),
            num(plugin.on_configure_ms, 1),
            num(plugin.push_on_configure_ms, 1),
        );
    }
    dynamic_ratios(&mut out, &sizes, &summary);
    let _ = writeln!(
        out,
        "\nWasm files (`wasm` profile): gateway_wasm.wasm {} bytes, floor_filter.wasm {} bytes. \
         Dynamic modules: libgateway_wasm_dynamic.so {} bytes, libdynamic_floor.so {} bytes.",
        thousands(Some(context.plugin_wasm_bytes as f64)),
        thousands(Some(context.floor_wasm_bytes as f64)),
        thousands(Some(context.dynamic_module_bytes as f64)),
        thousands(Some(context.dynamic_floor_bytes as f64)),
    );
    out
}

/// The dynamic module against native routing, the Wasm filter and its own floor (issue 16's
/// targets are dynamic/native req/s).
fn dynamic_ratios(
    out: &mut String,
    sizes: &[usize],
    summary: &dyn Fn(usize, &str) -> Option<Summary>,
) {
    if !sizes.iter().any(|&size| summary(size, "dynamic").is_some()) {
        return;
    }
    let _ = writeln!(
        out,
        "\n| routes | dynamic/native req/s | dynamic/plugin req/s | dynamic/dynamic-floor req/s | dynamic-floor/native req/s | native/dynamic CPU per request | dynamic/native p99 | dynamic on_configure ms (initial / push) | dynamic push → effect ms (median / max) | dynamic start → routed ms |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &size in sizes {
        let native = summary(size, "native").unwrap_or_default();
        let plugin = summary(size, "plugin").unwrap_or_default();
        let dynamic = summary(size, "dynamic").unwrap_or_default();
        let floor = summary(size, "dynamic-floor").unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} / {} | {} / {} | {} |",
            thousands(Some(size as f64)),
            num(ratio(dynamic.rps, native.rps), 2),
            num(ratio(dynamic.rps, plugin.rps), 2),
            num(ratio(dynamic.rps, floor.rps), 2),
            num(ratio(floor.rps, native.rps), 2),
            num(ratio(native.cpu_us, dynamic.cpu_us), 2),
            num(ratio(dynamic.p99_ms, native.p99_ms), 2),
            num(dynamic.on_configure_ms, 1),
            num(dynamic.push_on_configure_ms, 1),
            num(dynamic.push_ms, 0),
            num(dynamic.push_max_ms, 0),
            num(dynamic.startup_ms, 0),
        );
    }
}

/// Replaces the text between the markers in `doc` (or appends the marked section).
pub fn splice(doc: &str, begin: &str, end: &str, body: &str) -> String {
    let section = format!("{begin}\n{body}{end}");
    if let (Some(b), Some(e)) = (doc.find(begin), doc.find(end))
        && b < e
    {
        let mut out = String::with_capacity(doc.len() + body.len());
        out.push_str(doc.get(..b).unwrap_or_default());
        out.push_str(&section);
        out.push_str(doc.get(e + end.len()..).unwrap_or_default());
        return out;
    }
    let mut out = doc.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&section);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(Some(1234567.4)), "1,234,567");
        assert_eq!(thousands(Some(999.0)), "999");
        assert_eq!(thousands(None), "–");
    }

    #[test]
    fn splices_sections() {
        let doc = "# T\n\nA\n<!-- b -->\nold\n<!-- e -->\nB\n";
        assert_eq!(
            splice(doc, "<!-- b -->", "<!-- e -->", "new\n"),
            "# T\n\nA\n<!-- b -->\nnew\n<!-- e -->\nB\n"
        );
        assert_eq!(
            splice("# T", "<!-- b -->", "<!-- e -->", "x\n"),
            "# T\n<!-- b -->\nx\n<!-- e -->\n"
        );
    }

    #[test]
    fn renders_a_table_with_ratios() {
        let load = LoadResult {
            requests: 100,
            duration_us: 1_000_000,
            status_errors: 0,
            socket_errors: 0,
            p50_us: 1000.0,
            p90_us: 1500.0,
            p99_us: 2000.0,
            mean_us: 1100.0,
        };
        let run = |variant: &str, rps: f64| RunResult {
            routes: 10,
            variant: variant.into(),
            round: 0,
            load,
            requests_per_second: rps,
            rss_kib: 40 * 1024,
            rss_after_load_kib: 41 * 1024,
            envoy_cpu: 0.99,
            envoy_cpu_us_per_request: 100.0,
            cpu_busy: vec![1.0, 0.5],
            cpu_steal: vec![0.0, 0.0],
            startup_ms: 300.0,
            push_ms: vec![50.0],
            on_configure_us: vec![1500],
            push_on_configure_us: vec![1600],
        };
        let context = Context {
            command: "cargo xtask bench".into(),
            cpu_model: "cpu".into(),
            cores: 2,
            kernel: "6".into(),
            envoy_version: "envoy 1.40.0".into(),
            wrk_version: "wrk 4".into(),
            pinning: "pinned".into(),
            connections: 16,
            duration_s: 10,
            warmup_s: 2,
            rounds: 1,
            load_before: 0.1,
            load_after: 0.2,
            repeated_runs: 0,
            plugin_wasm_bytes: 600_000,
            floor_wasm_bytes: 30_000,
            dynamic_module_bytes: 900_000,
            dynamic_floor_bytes: 10_000,
            mix: vec!["early".into()],
        };
        let text = markdown(
            &context,
            &[
                run("native", 10_000.0),
                run("plugin", 9_000.0),
                run("floor", 9_500.0),
                run("dynamic", 10_500.0),
                run("dynamic-floor", 11_000.0),
            ],
            0,
        );
        assert!(text.contains("| 10 | native | 10,000 |"), "{text}");
        assert!(text.contains("| 10 | dynamic-floor | 11,000 |"), "{text}");
        // dynamic/native, dynamic/plugin, dynamic/dynamic-floor, dynamic-floor/native.
        assert!(
            text.contains("| 10 | 1.05 | 1.17 | 0.95 | 1.10 |"),
            "{text}"
        );
        assert!(
            text.contains("libgateway_wasm_dynamic.so 900,000 bytes"),
            "{text}"
        );
        assert!(
            text.contains("| 10 | 0.90 | 0.95 | 0.95 | 1.00 | 1.00 |"),
            "{text}"
        );
        assert!(text.contains("600,000 bytes"), "{text}");
    }
}
