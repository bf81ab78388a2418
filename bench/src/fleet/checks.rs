//! The fleet scenarios: each changes something in the manifests (or the registry, or kills the
//! shim) and waits until every Envoy shows the effect, measuring how long each took. A scenario
//! that does not converge fails the run.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::Value;
use testkit::certs::CertificateAuthority;
use testkit::client::{HttpClient, Request, TlsConfig};

use super::topology::{Member, Shim};

pub const HOST: &str = "fleet.example.com";

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The backend serving `GET /switch` on `port`, if any.
pub fn backend(port: u16) -> Option<String> {
    let response = HttpClient::http1(localhost(port))
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(5))
        .send(&Request::get("/switch").with_host(HOST))
        .ok()?;
    (response.status == 200)
        .then(|| response.echo().ok().map(|e| e.service))
        .flatten()
}

/// Whether HTTPS on `port` presents a certificate `ca` issued and routes.
pub fn https_with(port: u16, ca: &CertificateAuthority) -> bool {
    let Ok(tls) = TlsConfig::with_ca_pem(HOST, ca.cert_pem().as_bytes()) else {
        return false;
    };
    HttpClient::https1(localhost(port), tls)
        .with_timeout(Duration::from_secs(5))
        .send(&Request::get("/switch").with_host(HOST))
        .is_ok_and(|r| r.status == 200)
}

/// Waits until `check` holds on every member (one thread each); returns each member's time from
/// `since`. Fails naming the members that did not get there within `timeout`.
pub fn wait_all(
    members: &[Member],
    since: Instant,
    timeout: Duration,
    what: &str,
    check: impl Fn(&Member) -> bool + Sync,
) -> Result<Vec<Duration>> {
    let results: Vec<Option<Duration>> = std::thread::scope(|scope| {
        let handles: Vec<_> = members
            .iter()
            .map(|member| {
                let check = &check;
                scope.spawn(move || {
                    let deadline = since + timeout;
                    loop {
                        if check(member) {
                            return Some(since.elapsed());
                        }
                        if Instant::now() > deadline {
                            return None;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    });
    let missing: Vec<&str> = members
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_none())
        .map(|(m, _)| m.name.as_str())
        .collect();
    if !missing.is_empty() {
        bail!(
            "{what}: {} of {} Envoys did not get there within {timeout:?}: {}",
            missing.len(),
            members.len(),
            missing.join(", ")
        );
    }
    Ok(results.into_iter().flatten().collect())
}

/// The `p`-th percentile (0–100) of `samples`, nearest rank.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank: ceil(p/100 * n), 1-based.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len()) - 1)
        .copied()
        .unwrap_or_default()
}

/// The shim's view of the xDS nodes (`/debug/xds`).
pub fn xds_status(shim: &Shim) -> Result<Value> {
    let (status, body) = shim.get("/debug/xds")?;
    if status != 200 {
        bail!("/debug/xds answered {status}: {body}");
    }
    Ok(serde_json::from_str(&body)?)
}

/// Every member connected and in sync (everything sent was ACKed), per the shim.
pub fn all_in_sync(shim: &Shim, members: &[Member]) -> bool {
    let Ok(status) = xds_status(shim) else {
        return false;
    };
    members.iter().all(|m| {
        testkit::xds_debug::synced_node(&status, &m.name)
            .and_then(|n| n.get("resources"))
            .and_then(Value::as_object)
            .is_some_and(|types| types.len() == 5)
    })
}

/// Waits until [`all_in_sync`], or fails with the shim's `/debug/xds`.
pub fn wait_in_sync(shim: &Shim, members: &[Member], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !all_in_sync(shim, members) {
        if Instant::now() > deadline {
            bail!(
                "not every Envoy is in sync per /debug/xds within {timeout:?}: {}",
                xds_status(shim)?
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The Prometheus sample `name` from the shim's `/metrics`.
pub fn metric(shim: &Shim, name: &str) -> Option<f64> {
    let (_, body) = shim.get("/metrics").ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.trim().parse().ok())
}

/// `ms` with one decimal.
pub fn millis(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}
