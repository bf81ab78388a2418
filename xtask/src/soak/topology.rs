//! The soak's processes: echo backends, the controller-shim and Envoy, with the restarts.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use super::{PUSHES, REJECTED};
use crate::demo::http::{Echo, http_get};
use crate::demo::procs::{Processes, wait_for};

pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(super) fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A counter from a Prometheus text or Envoy `name: value` listing.
pub(super) fn counter(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let value = rest.strip_prefix(':').unwrap_or(rest).trim();
        value.parse::<f64>().ok().map(|v| v as u64)
    })
}

pub(super) struct Topology {
    pub(super) root: PathBuf,
    pub(super) work: PathBuf,
    pub(super) logs: PathBuf,
    pub(super) shim_bin: PathBuf,
    pub(super) envoy_bin: PathBuf,
    pub(super) manifests: PathBuf,
    pub(super) envoy_dir: PathBuf,
    pub(super) wasm: PathBuf,
    pub(super) listen: SocketAddr,
    pub(super) admin: SocketAddr,
    pub(super) metrics: SocketAddr,
    pub(super) processes: Processes,
    pub(super) shim_pid: u32,
    pub(super) shim_starts: u32,
    pub(super) envoy_pid: u32,
    pub(super) envoy_epoch: u32,
}

impl Topology {
    pub(super) fn start_shim(&mut self) -> anyhow::Result<()> {
        let log = self
            .logs
            .join(format!("controller-shim-{}.log", self.shim_starts));
        let mut command = Command::new(&self.shim_bin);
        command
            .arg("run")
            .arg("--manifests")
            .arg(&self.manifests)
            .arg("--envoy-dir")
            .arg(&self.envoy_dir)
            .arg("--wasm")
            .arg(&self.wasm)
            .arg("--port-map")
            .arg(format!("80={}", self.listen.port()))
            .args(["--bind-address", "127.0.0.1"])
            .arg("--admin-port")
            .arg(self.admin.port().to_string())
            .arg("--metrics-addr")
            .arg(self.metrics.to_string())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        self.shim_pid = self.processes.spawn("controller-shim", command, &log)?;
        self.shim_starts += 1;
        let metrics = self.metrics;
        wait_for(
            "controller-shim",
            Duration::from_secs(30),
            &mut self.processes,
            || http_get(metrics, "localhost", "/readyz", &[]).is_ok_and(|r| r.status == 200),
        )?;
        Ok(())
    }

    /// Starts Envoy (epoch 0), or hot-restarts it: the new process takes the listening sockets
    /// over and the old one drains and exits, so no connection is refused.
    pub(super) fn start_envoy(&mut self) -> anyhow::Result<()> {
        let base_id_file = self.work.join("envoy-base-id");
        let mut command = Command::new(&self.envoy_bin);
        command
            .arg("-c")
            .arg(self.envoy_dir.join("infra/quickstart/bootstrap.yaml"))
            .args([
                "--concurrency",
                "2",
                "--drain-time-s",
                "2",
                "--parent-shutdown-time-s",
                "4",
            ])
            .arg("--restart-epoch")
            .arg(self.envoy_epoch.to_string())
            .arg("--log-path")
            .arg(self.logs.join(format!("envoy-{}.log", self.envoy_epoch)));
        if self.envoy_epoch == 0 {
            command
                .arg("--use-dynamic-base-id")
                .arg("--base-id-path")
                .arg(&base_id_file);
        } else {
            let base_id = std::fs::read_to_string(&base_id_file)
                .with_context(|| format!("reading {}", base_id_file.display()))?;
            command.arg("--base-id").arg(base_id.trim());
        }
        let old = (self.envoy_epoch > 0).then_some(self.envoy_pid);
        let stdout = self
            .logs
            .join(format!("envoy-{}.stdout.log", self.envoy_epoch));
        self.envoy_pid = self.processes.spawn("envoy", command, &stdout)?;
        let (admin, epoch) = (self.admin, self.envoy_epoch);
        wait_for(
            "Envoy",
            Duration::from_secs(60),
            &mut self.processes,
            || {
                http_get(admin, "localhost", "/server_info", &[]).is_ok_and(|r| {
                    let info = r.text();
                    info.contains("\"state\": \"LIVE\"")
                        && info.contains(&format!("\"restart_epoch\": {epoch}"))
                })
            },
        )?;
        if let Some(old) = old {
            // The old process drains (--drain-time-s) and is told to exit (--parent-shutdown-time-s).
            let status = self.processes.retire(old, Duration::from_secs(15));
            if !status.is_some_and(|s| s.success()) {
                bail!("the previous Envoy ended with {status:?} after the hot restart");
            }
        }
        self.envoy_epoch += 1;
        Ok(())
    }

    pub(super) fn envoy_pushes(&self) -> Option<u64> {
        let reply = http_get(
            self.admin,
            "localhost",
            &format!("/stats?filter={PUSHES}"),
            &[],
        )
        .ok()?;
        counter(&reply.text(), PUSHES)
    }

    pub(super) fn rejected(&self) -> Option<u64> {
        let reply = http_get(self.metrics, "localhost", "/metrics", &[]).ok()?;
        Some(counter(&reply.text(), REJECTED).unwrap_or(0))
    }

    /// Who answers `soak.example.com/soak`: `Ok(backend)` or `Err(status)`.
    pub(super) fn soak_answer(&self) -> Result<String, u16> {
        match http_get(self.listen, "soak.example.com", "/soak", &[]) {
            Ok(reply) => match Echo::parse(&reply.body) {
                Some(echo) if reply.status == 200 => Ok(echo.service),
                _ => Err(reply.status),
            },
            Err(_) => Err(0),
        }
    }
}
