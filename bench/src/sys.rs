//! The machine: what it is, what a process uses (from `/proc`), CPU pinning and the Debian tools.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// `model name` from `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident set size in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// User plus system CPU time of a process (all threads), in clock ticks.
pub fn process_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// One CPU's clock ticks from `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    /// Everything but idle and iowait (steal included).
    pub busy: u64,
    /// Time the hypervisor gave to someone else while this CPU wanted to run.
    pub steal: u64,
    pub total: u64,
}

/// Per-CPU clock ticks, indexed by CPU number.
pub fn cpu_ticks() -> Vec<CpuTicks> {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let values: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            let total: u64 = values.iter().sum();
            // user nice system idle iowait irq softirq steal …
            let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
            CpuTicks {
                busy: total.saturating_sub(idle),
                steal: values.get(7).copied().unwrap_or(0),
                total,
            }
        })
        .collect()
}

fn fraction_between(
    before: &[CpuTicks],
    after: &[CpuTicks],
    part: impl Fn(&CpuTicks) -> u64,
) -> Vec<f64> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| {
            let total = a.total.saturating_sub(b.total);
            if total == 0 {
                0.0
            } else {
                part(a).saturating_sub(part(b)) as f64 / total as f64
            }
        })
        .collect()
}

/// Busy fraction of each CPU between two [`cpu_ticks`] readings.
pub fn busy_between(before: &[CpuTicks], after: &[CpuTicks]) -> Vec<f64> {
    fraction_between(before, after, |t| t.busy)
}

/// Steal fraction of each CPU between two [`cpu_ticks`] readings.
pub fn steal_between(before: &[CpuTicks], after: &[CpuTicks]) -> Vec<f64> {
    fraction_between(before, after, |t| t.steal)
}

/// Envoy's share of the CPU over a measured load run, and the CPUs' busy and steal fractions.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuUsage {
    /// Envoy's CPU time as a fraction of one CPU.
    pub envoy_cpu: f64,
    /// Envoy's CPU time (all threads) per completed request, in µs: unlike req/s, it hardly
    /// changes when other processes take CPU time from Envoy's CPU (a shared machine).
    pub envoy_cpu_us_per_request: f64,
    pub cpu_busy: Vec<f64>,
    pub cpu_steal: Vec<f64>,
}

/// Readings taken when a measured load run starts ([`CpuWindow::close`] when it ends).
pub struct CpuWindow {
    process: Option<u64>,
    cpus: Vec<CpuTicks>,
    opened: std::time::Instant,
}

impl CpuWindow {
    pub fn open(pid: u32) -> CpuWindow {
        CpuWindow {
            process: process_ticks(pid),
            cpus: cpu_ticks(),
            opened: std::time::Instant::now(),
        }
    }

    /// The usage since [`CpuWindow::open`], for `requests` completed requests.
    pub fn close(self, pid: u32, requests: u64) -> CpuUsage {
        let (process, cpus) = (process_ticks(pid), cpu_ticks());
        let measured_s = self.opened.elapsed().as_secs_f64();
        // /proc/<pid>/stat and /proc/stat count in the same unit (USER_HZ); a CPU's total ticks
        // over the run give the ticks per second.
        let elapsed_ticks: u64 = cpus
            .first()
            .zip(self.cpus.first())
            .map_or(0, |(x, y)| x.total.saturating_sub(y.total));
        let envoy_ticks = match (self.process, process) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        };
        let (envoy_cpu, envoy_cpu_us_per_request) = if elapsed_ticks == 0 {
            (0.0, 0.0)
        } else {
            let share = envoy_ticks as f64 / elapsed_ticks as f64;
            let per_request = if requests == 0 {
                0.0
            } else {
                share * measured_s * 1e6 / requests as f64
            };
            (share, per_request)
        };
        CpuUsage {
            envoy_cpu,
            envoy_cpu_us_per_request,
            cpu_busy: busy_between(&self.cpus, &cpus),
            cpu_steal: steal_between(&self.cpus, &cpus),
        }
    }
}

/// Whether `program` is on `PATH`.
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Installs `wrk` from Debian when it is missing (the load generator), saying so.
pub fn ensure_wrk() -> Result<()> {
    if have("wrk") {
        return Ok(());
    }
    eprintln!("[bench] wrk is missing: installing it from Debian (apt-get install -y wrk)");
    let quiet = |args: &[&str]| -> Result<()> {
        let output = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running apt-get {}", args.join(" ")))?;
        if !output.status.success() {
            bail!(
                "apt-get {} failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    };
    quiet(&["update", "-qq"])?;
    quiet(&["install", "-y", "-qq", "--no-install-recommends", "wrk"])?;
    if !have("wrk") {
        bail!("apt-get installed wrk, but it is not on PATH");
    }
    Ok(())
}

/// Whether CPU pinning is possible: `taskset` exists and there are at least two CPUs.
pub fn can_pin() -> bool {
    have("taskset") && cores() >= 2
}

/// Pins every thread of a running process to one CPU (`taskset -a -p -c CPU PID`); threads it
/// creates later inherit the mask.
pub fn pin_process(pid: u32, cpu: usize) -> Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running taskset")?;
    if !status.success() {
        bail!("taskset -a -p -c {cpu} {pid} failed ({status})");
    }
    Ok(())
}

/// `command args…`, under `taskset -c CPU` when `cpu` is set.
pub fn pinned_command(program: &Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut command = Command::new("taskset");
            command.arg("-c").arg(cpu.to_string()).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// The first line of `program --version` (or `-v`), for the report.
pub fn version_line(program: &Path, flag: &str) -> String {
    Command::new(program)
        .arg(flag)
        .output()
        .map(|o| {
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            text.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(process_ticks(pid).is_some());
        let ticks = cpu_ticks();
        assert!(!ticks.is_empty());
        let busy = busy_between(&ticks, &ticks);
        assert!(busy.iter().all(|b| *b == 0.0));
        assert!(!cpu_model().is_empty());
    }
}
