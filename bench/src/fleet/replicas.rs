//! Two controller-shim replicas, as `examples/kubernetes-fleet` runs them: both watch the same
//! manifests and serve xDS, and the Envoys are split between them (there, behind one Service;
//! here, each Envoy's bootstrap names one replica's address).
//!
//! The second replica joins the running fleet with its own Envoys (one per ADS variant). Then:
//! both halves serve the same routes; a push reaches every Envoy through both replicas; the second
//! replica killed, its Envoys keep serving their last config while a push reaches the first
//! replica's Envoys only; restarted, its Envoys reconnect and converge. No Envoy restarts.
//!
//! What this does not cover: Lease leader election for status. It needs the Kubernetes API
//! (`--kube`); a manifests-mode shim writes status to its own report file, so here each replica
//! writes its own. The election itself is tested against the API fixture in
//! `controller-shim/tests/kube_source.rs`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::checks::{backend, wait_all, wait_in_sync};
use crate::topology::{self, Manifests, Member, Shim, pids};

/// Envoys the second replica feeds.
pub const ENVOYS: usize = 2;

/// Timings of the two-replica scenario (each sample: one Envoy).
pub struct ReplicaTimes {
    /// The second replica's Envoys routing, from their start.
    pub serving: Vec<Duration>,
    /// A push through both replicas → effect, on every Envoy of both.
    pub pushed: Vec<Duration>,
    /// The second replica restarted → its Envoys serve the route changed while it was down.
    pub converged: Vec<Duration>,
    /// The whole scenario, from the second replica's start.
    pub took: Duration,
}

/// Runs the scenario next to the first replica `first` and its Envoys `fleet`, which route to
/// `current`; leaves every Envoy routing to the returned backend.
pub fn run(
    shim_binary: &Path,
    dir: &Path,
    manifests: &Manifests,
    reference: &str,
    first: &Shim,
    fleet: &[Member],
    current: &str,
) -> Result<(ReplicaTimes, &'static str)> {
    let scenario = Instant::now();
    let work = dir.join("replica-b");
    std::fs::create_dir_all(&work)?;
    let mut second = Shim::start(shim_binary, &work, &manifests.dir, reference)?;
    let started = Instant::now();
    let ours = topology::start_envoys(shim_binary, second.xds, &work, "replica-b-envoy", ENVOYS)?;
    // The same routes on both halves: the route and the listener added earlier.
    let serving = wait_all(
        &ours,
        started,
        Duration::from_secs(120),
        "routing through the second replica",
        |m| {
            backend(m.ports.http).as_deref() == Some(current)
                && backend(m.ports.extra).as_deref() == Some(current)
        },
    )?;
    wait_in_sync(&second, &ours, Duration::from_secs(30))?;
    let ours_pids = pids(&ours);

    let (pushed_to, changed_to) = if current == "api" {
        ("api-v2", "api")
    } else {
        ("api", "api-v2")
    };
    let pushed_at = Instant::now();
    manifests.set_route(pushed_to)?;
    let everyone: Vec<&Member> = fleet.iter().chain(&ours).collect();
    let mut pushed = Vec::new();
    for half in [fleet, ours.as_slice()] {
        pushed.extend(wait_all(
            half,
            pushed_at,
            Duration::from_secs(30),
            "a push through both replicas",
            |m| backend(m.ports.http).as_deref() == Some(pushed_to),
        )?);
    }

    second.kill();
    manifests.set_route(changed_to)?;
    wait_all(
        fleet,
        Instant::now(),
        Duration::from_secs(30),
        "a push through the first replica while the second is down",
        |m| backend(m.ports.http).as_deref() == Some(changed_to),
    )?;
    // The second replica's Envoys had no control plane for that push: they keep their last one.
    wait_all(
        &ours,
        Instant::now(),
        Duration::from_secs(5),
        "the second replica's Envoys serving their last config",
        |m| backend(m.ports.http).as_deref() == Some(pushed_to),
    )?;

    let restarted = Instant::now();
    second.restart()?;
    let converged = wait_all(
        &ours,
        restarted,
        Duration::from_secs(90),
        "convergence after the second replica's restart",
        |m| backend(m.ports.http).as_deref() == Some(changed_to),
    )?;
    wait_in_sync(&second, &ours, Duration::from_secs(30))?;
    wait_in_sync(first, fleet, Duration::from_secs(30))?;
    if pids(&ours) != ours_pids {
        bail!("an Envoy of the second replica restarted");
    }
    if everyone
        .iter()
        .any(|m| backend(m.ports.http).as_deref() != Some(changed_to))
    {
        bail!("the two halves of the fleet serve different routes after the restart");
    }
    Ok((
        ReplicaTimes {
            serving,
            pushed,
            converged,
            took: scenario.elapsed(),
        },
        changed_to,
    ))
}
