//! `gateway-bench v8-configure`: a filter's configuration (parse, validate, compile) timed in V8
//! under node, the way Envoy runs it, without Envoy.
//!
//! In Envoy, a VM's configuration time varies by up to a third between runs of the same module
//! (the whole run is slow or fast), which hides changes of a few milliseconds; node runs the same
//! engine code in the same V8 settings (TurboFan only) with nothing else in the process. The
//! program (`bench/v8-configure`, built for wasm32-wasip1 with the filter's `wasm` profile) reads
//! the Envoy benchmark's PluginConfig document for `--routes` routes; each run is one node process
//! that compiles the module once and instantiates it twice (`v8_configure.mjs`). Reported, in
//! milliseconds (medians, and the fastest):
//! - **fresh instance**: the second instance's one configuration, in fresh linear memory with the
//!   code already compiled, which is what every Envoy VM (canary, main thread, worker) runs;
//! - **reused instance**: the first instance's later rounds (memory already touched, allocator
//!   warm), the setting of a native benchmark;
//! - **first call**: the first instance's first round, which also has V8 compile the functions.
//!
//! Each row also gives the linear memory after parsing and after compiling (MiB; the largest seen,
//! as memory only grows): in a fresh instance, what the configuration touched, the document
//! included. Unlike the times it is the same in every run, so it shows a change in what a fresh VM
//! must fault in even when the machine's speed varies.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::progress;
use crate::tables::Table;

const RUNNER: &str = include_str!("v8_configure.mjs");

#[derive(Args, Clone, Debug)]
pub(crate) struct V8ConfigureArgs {
    /// Routes in the generated table (the Envoy benchmark's table of that size).
    #[arg(long, default_value_t = 10_000)]
    routes: usize,
    /// node processes; each compiles the module once and runs two instances.
    #[arg(long, default_value_t = 6)]
    runs: usize,
    /// Configurations in each run's first instance.
    #[arg(long, default_value_t = 8)]
    rounds: u32,
    /// The program (default: target/wasm32-wasip1/wasm/v8-configure.wasm, from
    /// `cargo build -p v8-configure --target wasm32-wasip1 --profile wasm`).
    #[arg(long)]
    wasm: Option<PathBuf>,
    /// One run over 1,000 routes with two rounds, to prove the harness works. Its numbers are not
    /// meant to be quoted.
    #[arg(long)]
    quick: bool,
}

/// Parse, validate and compile times of one configuration in microseconds, then the linear
/// memory in 64 KiB pages after parsing and after compiling.
type Phases = [u64; 5];

#[derive(Default)]
struct Samples {
    first_call: Vec<Phases>,
    reused: Vec<Phases>,
    fresh: Vec<Phases>,
}

pub(crate) fn run(args: &V8ConfigureArgs) -> Result<()> {
    let (routes, runs, rounds) = if args.quick {
        (1_000, 1, 2)
    } else {
        (args.routes, args.runs, args.rounds)
    };
    if runs == 0 || rounds == 0 {
        bail!("--runs and --rounds must be at least 1");
    }
    let root = testkit::envoy::workspace_root()?;
    let wasm = crate::built_file(
        args.wasm.as_deref(),
        root.join("target/wasm32-wasip1/wasm/v8-configure.wasm"),
        "`cargo build -p v8-configure --target wasm32-wasip1 --profile wasm` (or run `cargo \
         xtask bench --v8-configure`)",
    )?;
    let dir = tempfile::Builder::new()
        .prefix("gateway-bench-v8-")
        .tempdir()
        .context("creating a temporary directory")?;
    let config = serde_json::to_vec(&Table::generate(routes).plugin_config())?;
    std::fs::write(dir.path().join("config.json"), &config).context("writing the PluginConfig")?;
    let runner = dir.path().join("v8_configure.mjs");
    std::fs::write(&runner, RUNNER).context("writing the node runner")?;
    progress(&format!(
        "v8-configure: {routes} routes ({} bytes of JSON), {runs} runs of {rounds} + 1 configurations, {}",
        config.len(),
        wasm.display()
    ));
    let mut samples = Samples::default();
    for run in 1..=runs {
        let output = node_run(&runner, &wasm, dir.path(), rounds)?;
        let parsed = parse_output(&output)
            .with_context(|| format!("reading the output of run {run}:\n{output}"))?;
        if let Some(fresh) = parsed.fresh.first() {
            progress(&format!(
                "run {run}/{runs}: fresh instance parse {} / validate {} / compile {} ms",
                ms(fresh[0]),
                ms(fresh[1]),
                ms(fresh[2])
            ));
        }
        samples.first_call.extend(parsed.first_call);
        samples.reused.extend(parsed.reused);
        samples.fresh.extend(parsed.fresh);
    }
    print!("{}", report(&samples, routes));
    Ok(())
}

fn node_run(runner: &Path, wasm: &Path, data: &Path, rounds: u32) -> Result<String> {
    // Node 20's V8 (11.3) crashed with SIGSEGV in about half of the runs of one build of the probe,
    // after the second instance had printed its last line (in `KeyedLoadIC_Megamorphic`, a JS
    // builtin); with the GC on the main thread no crash in 12 runs, so most likely a race with
    // V8's concurrent GC. Envoy's V8 is not node's and runs no JS, so this is the harness's own
    // problem; the wasm code and what it measures are the same with either GC.
    let output = Command::new("node")
        .arg("--no-liftoff")
        .arg("--single-threaded-gc")
        .arg(runner)
        .arg(wasm)
        .arg(data)
        .arg(rounds.to_string())
        .output()
        .context("running node (install Node.js: Debian's nodejs package)")?;
    if !output.status.success() {
        bail!(
            "node exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).context("node's output is not UTF-8")
}

/// Splits the runner's output into the three kinds of configuration.
fn parse_output(output: &str) -> Result<Samples> {
    let mut samples = Samples::default();
    let mut instance = 0;
    let mut round = 0;
    for line in output.lines() {
        if let Some(n) = line.strip_prefix("instance ") {
            instance = n.trim().parse().context("instance number")?;
            round = 0;
            continue;
        }
        let numbers: Vec<u64> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("line {line:?}"))?;
        let Ok(phases) = Phases::try_from(numbers.as_slice()) else {
            bail!("expected five numbers (three times, two memory sizes), got {line:?}");
        };
        round += 1;
        match (instance, round) {
            (1, 1) => samples.first_call.push(phases),
            (1, _) => samples.reused.push(phases),
            (2, _) => samples.fresh.push(phases),
            _ => bail!("a timing line before any `instance` line: {line:?}"),
        }
    }
    if samples.first_call.is_empty() || samples.fresh.is_empty() {
        bail!("the runner printed no timing for one of its instances");
    }
    Ok(samples)
}

fn report(samples: &Samples, routes: usize) -> String {
    let mut out = format!(
        "\n| {routes} routes, ms (median, fastest) | configurations | parse | validate | compile | memory after parse / compile, MiB (largest) |\n|---|---:|---:|---:|---:|---:|\n"
    );
    for (name, rows) in [
        ("fresh instance (an Envoy VM)", &samples.fresh),
        ("reused instance", &samples.reused),
        ("first call (V8 compiling too)", &samples.first_call),
    ] {
        if rows.is_empty() {
            continue;
        }
        let cells: Vec<String> = (0..3)
            .map(|phase| {
                let mut values: Vec<u64> = rows
                    .iter()
                    .filter_map(|row| row.get(phase).copied())
                    .collect();
                values.sort_unstable();
                // The upper of the two middle values when the count is even.
                let median = values.get(values.len() / 2).copied().unwrap_or_default();
                let fastest = values.first().copied().unwrap_or_default();
                format!("{} ({})", ms(median), ms(fastest))
            })
            .collect();
        let largest = |at: usize| rows.iter().filter_map(|row| row.get(at)).max().copied();
        let memory = format!(
            "{} / {}",
            mib(largest(3).unwrap_or_default()),
            mib(largest(4).unwrap_or_default())
        );
        out.push_str(&format!(
            "| {name} | {} | {} | {memory} |\n",
            rows.len(),
            cells.join(" | ")
        ));
    }
    out
}

fn ms(micros: u64) -> String {
    format!("{:.1}", micros as f64 / 1000.0)
}

/// 64 KiB pages in MiB.
fn mib(pages: u64) -> String {
    format!("{:.1}", pages as f64 / 16.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_lines_sort_into_first_call_reused_and_fresh() {
        let output = "instance 1\n10000 2000 30000 100 200\n11000 3000 31000 210 300\n\
                      12000 4500 32000 300 320\ninstance 2\n20000 5000 40000 96 160\n";
        let samples = parse_output(output).unwrap();
        assert_eq!(samples.first_call, [[10000, 2000, 30000, 100, 200]]);
        assert_eq!(
            samples.reused,
            [
                [11000, 3000, 31000, 210, 300],
                [12000, 4500, 32000, 300, 320]
            ]
        );
        assert_eq!(samples.fresh, [[20000, 5000, 40000, 96, 160]]);
        let table = report(&samples, 10);
        assert!(
            table.contains(
                "| fresh instance (an Envoy VM) | 1 | 20.0 (20.0) | 5.0 (5.0) | 40.0 (40.0) | 6.0 / 10.0 |"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "| reused instance | 2 | 12.0 (11.0) | 4.5 (3.0) | 32.0 (31.0) | 18.8 / 20.0 |"
            ),
            "{table}"
        );
    }

    #[test]
    fn malformed_output_is_an_error_not_a_sample() {
        assert!(parse_output("10 2 30 1 2\n").is_err());
        assert!(parse_output("instance 1\n10 2 30\ninstance 2\n10 2 30\n").is_err());
        assert!(parse_output("instance 1\n10 2 30 1 2 3\ninstance 2\n10 2 30 1 2\n").is_err());
        assert!(
            parse_output("instance 1\n10 2 30 1 2\n").is_err(),
            "no fresh instance"
        );
    }
}
