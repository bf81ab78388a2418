//! `cargo xtask fuzz`: builds the libFuzzer targets in `fuzz/` with coverage instrumentation and
//! runs each for a bounded time, starting from the committed seeds.
//!
//! The targets are laid out as `cargo fuzz` expects (`fuzz/fuzz_targets/*.rs`, libfuzzer-sys), but
//! this command does not need cargo-fuzz or a nightly toolchain: cargo-fuzz needs nightly for its
//! sanitizer flags (`-Zsanitizer`), and the instrumentation libFuzzer needs to be coverage-guided
//! is stable `-C` options (`-Cpasses=sancov-module` and LLVM's sanitizer-coverage switches), which
//! is all this build passes. Without AddressSanitizer a fuzz target finds panics, aborts, overflows
//! (the build keeps overflow checks and debug assertions), timeouts and runaway memory, which is
//! what safe Rust can get wrong. libfuzzer-sys (crates.io) compiles libFuzzer itself with the C++
//! compiler.
//!
//! Work files stay under `target/fuzz/`: the corpus each run grows (`corpus/<target>`; the seeds in
//! `fuzz/seeds/<target>` are only read), crash artifacts (`artifacts/<target>/`) and logs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Every fuzz target (a `fuzz/fuzz_targets/<name>.rs` with seeds in `fuzz/seeds/<name>/`).
pub const TARGETS: [&str; 5] = [
    "config_compile",
    "evaluate",
    "plugin_payload",
    "manifests",
    "explain_request",
];

/// Coverage instrumentation as cargo-fuzz sets it, minus the sanitizer (which needs nightly).
const RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing";

/// Build the fuzz targets and run each for a while; fails on the first crash
///
/// Builds fuzz/ (its own workspace) with coverage instrumentation on the stable toolchain, then runs
/// every target with libFuzzer for --seconds, starting from fuzz/seeds/<target>/ and the corpus
/// earlier runs grew in target/fuzz/corpus/<target>/. Prints executions, coverage (libFuzzer's
/// `cov` edges and `ft` features) and corpus size per target. A crash, timeout or out-of-memory
/// leaves the input in target/fuzz/artifacts/<target>/ and fails the command; reproduce it with
///   target/fuzz/x86_64-unknown-linux-gnu/release/<target> <artifact>   (`fast` with --fast-build)
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct FuzzArgs {
    /// How long each target runs.
    #[arg(long, value_name = "N", default_value_t = 60)]
    pub seconds: u64,
    /// Only this target (repeatable).
    #[arg(long = "target", value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(TARGETS))]
    pub targets: Vec<String>,
    /// Targets run at once (each is one libFuzzer process).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub jobs: usize,
    /// Build dependencies without optimization (fuzz/Cargo.toml, profile `fast`): the build takes
    /// well under half the time and the targets run several times slower. For short smoke runs
    /// (`cargo xtask test` uses it), not for fuzzing in earnest.
    #[arg(long)]
    pub fast_build: bool,
}

/// What one run reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    pub executions: u64,
    /// Coverage edges (`cov`) and features (`ft`) at the end, and the corpus size.
    pub coverage: u64,
    pub features: u64,
    pub corpus: u64,
    pub peak_rss_mb: u64,
}

/// Reads libFuzzer's output: the last status line (`#N ... cov: C ft: F corp: K/..`) and the
/// `-print_final_stats` lines.
pub fn parse_stats(log: &str) -> RunStats {
    let mut stats = RunStats::default();
    let number_after = |line: &str, key: &str| -> Option<u64> {
        let rest = line.split(key).nth(1)?;
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    for line in log.lines() {
        if line.starts_with('#') && line.contains(" cov: ") {
            stats.coverage = number_after(line, " cov:").unwrap_or(stats.coverage);
            stats.features = number_after(line, " ft:").unwrap_or(stats.features);
            stats.corpus = number_after(line, " corp:").unwrap_or(stats.corpus);
        }
        if let Some(n) = number_after(line, "stat::number_of_executed_units:") {
            stats.executions = n;
        }
        if let Some(n) = number_after(line, "stat::peak_rss_mb:") {
            stats.peak_rss_mb = n;
        }
    }
    stats
}

fn host_triple() -> anyhow::Result<String> {
    let output = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .context("rustc -vV names no host triple")
}

/// Builds every target; returns the directory holding the binaries.
pub fn build(root: &Path, fast: bool) -> anyhow::Result<PathBuf> {
    let triple = host_triple()?;
    let target_dir = root.join("target/fuzz");
    let profile = if fast { "fast" } else { "release" };
    eprintln!("==> build the fuzz targets (coverage-instrumented, {triple}, profile {profile})");
    let started = Instant::now();
    // An explicit --target keeps RUSTFLAGS off build scripts and proc macros, which must not be
    // instrumented (they run without libFuzzer).
    let status = Command::new("cargo")
        .args(["build", "--profile", profile, "--bins", "--manifest-path"])
        .arg(root.join("fuzz/Cargo.toml"))
        .arg("--target")
        .arg(&triple)
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", RUSTFLAGS)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .context("starting cargo")?;
    if !status.success() {
        bail!("building the fuzz targets failed ({status})");
    }
    eprintln!("    built in {:.0}s", started.elapsed().as_secs_f64());
    Ok(target_dir.join(triple).join(profile))
}

struct Finished {
    target: String,
    stats: RunStats,
    took: Duration,
    failure: Option<String>,
}

fn run_target(
    root: &Path,
    binaries: &Path,
    target: &str,
    seconds: u64,
) -> anyhow::Result<Finished> {
    let work = root.join("target/fuzz");
    let corpus = work.join("corpus").join(target);
    let artifacts = work.join("artifacts").join(target);
    let logs = work.join("logs");
    for dir in [&corpus, &artifacts, &logs] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let seeds = root.join("fuzz/seeds").join(target);
    if !seeds.is_dir() {
        bail!(
            "{} is missing: every target starts from committed seeds",
            seeds.display()
        );
    }
    let log_path = logs.join(format!("{target}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let started = Instant::now();
    let status = Command::new(binaries.join(target))
        .arg(&corpus)
        .arg(&seeds)
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        // A single input taking this long is a hang worth reporting, not a slow machine.
        .arg("-timeout=30")
        .arg("-rss_limit_mb=2048")
        .arg("-max_len=65536")
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("duplicating the log file")?)
        .stderr(log)
        .status()
        .with_context(|| format!("starting {}", binaries.join(target).display()))?;
    let took = started.elapsed();
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let failure = (!status.success()).then(|| {
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        let crash: Vec<String> = std::fs::read_dir(&artifacts)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path().display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        format!(
            "{target} failed ({status}); artifacts: {}; log {}:\n{}",
            if crash.is_empty() {
                "none".to_owned()
            } else {
                crash.join(", ")
            },
            log_path.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    });
    Ok(Finished {
        target: target.to_owned(),
        stats: parse_stats(&text),
        took,
        failure,
    })
}

pub fn run(args: &FuzzArgs) -> anyhow::Result<()> {
    let root = crate::steps::root();
    let binaries = build(&root, args.fast_build)?;
    let targets: Vec<String> = if args.targets.is_empty() {
        TARGETS.iter().map(|t| (*t).to_owned()).collect()
    } else {
        args.targets.clone()
    };
    eprintln!(
        "==> fuzz {} target(s) for {} s each, {} at a time",
        targets.len(),
        args.seconds,
        args.jobs.max(1)
    );
    let mut finished = Vec::new();
    for batch in targets.chunks(args.jobs.max(1)) {
        let results: Vec<anyhow::Result<Finished>> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .iter()
                .map(|target| {
                    let (root, binaries) = (&root, &binaries);
                    scope.spawn(move || run_target(root, binaries, target, args.seconds))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a fuzz thread panicked")))
                })
                .collect()
        });
        for result in results {
            let done = result?;
            eprintln!(
                "    {:<16} {:>5.0} s  {:>11} execs  {:>7} exec/s  cov {:>5}  ft {:>6}  corpus {:>5}  rss {:>4} MB  {}",
                done.target,
                done.took.as_secs_f64(),
                done.stats.executions,
                done.stats.executions / done.took.as_secs().max(1),
                done.stats.coverage,
                done.stats.features,
                done.stats.corpus,
                done.stats.peak_rss_mb,
                if done.failure.is_some() {
                    "FAILED"
                } else {
                    "ok"
                }
            );
            finished.push(done);
        }
    }
    let failures: Vec<&String> = finished.iter().filter_map(|f| f.failure.as_ref()).collect();
    if !failures.is_empty() {
        for failure in &failures {
            eprintln!("{failure}");
        }
        bail!("{} fuzz target(s) failed", failures.len());
    }
    eprintln!("    no crashes");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_target_has_a_source_file_and_seeds() {
        let root = crate::steps::root();
        let mut sources: Vec<String> = std::fs::read_dir(root.join("fuzz/fuzz_targets"))
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .path()
                    .file_stem()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        sources.sort();
        let mut targets = TARGETS.map(str::to_owned).to_vec();
        targets.sort();
        assert_eq!(sources, targets);
        let manifest = std::fs::read_to_string(root.join("fuzz/Cargo.toml")).unwrap();
        for target in TARGETS {
            assert!(
                manifest.contains(&format!("name = \"{target}\"")),
                "{target}"
            );
            let seeds = std::fs::read_dir(root.join("fuzz/seeds").join(target))
                .unwrap()
                .count();
            assert!(seeds > 0, "{target} has no seeds");
        }
    }

    #[test]
    fn libfuzzer_output_is_read() {
        let log = "INFO: Seed: 1\n#2\tINITED cov: 812 ft: 1203 corp: 40/12Kb exec/s: 0 rss: 40Mb\n\
                   #40312\tREDUCE cov: 913 ft: 1600 corp: 52/15Kb lim: 4096 exec/s: 4031 rss: 60Mb\n\
                   #50000\tDONE   cov: 915 ft: 1611 corp: 53/15Kb lim: 4096 exec/s: 4166 rss: 61Mb\n\
                   Done 50000 runs in 12 second(s)\nstat::number_of_executed_units: 50000\n\
                   stat::average_exec_per_sec:     4166\nstat::peak_rss_mb:              61\n";
        assert_eq!(
            parse_stats(log),
            RunStats {
                executions: 50000,
                coverage: 915,
                features: 1611,
                corpus: 53,
                peak_rss_mb: 61,
            }
        );
    }
}
