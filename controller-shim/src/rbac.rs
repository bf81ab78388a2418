//! Every permission the shim needs, from the table of kinds plus the leader-election Lease.
//!
//! `examples/kubernetes/base/rbac.yaml` grants exactly these (a test compares them), and a test against
//! the fake API server checks that every request the shim makes is covered.

use gateway_resolver::api::Lease;
use gateway_resolver::kinds::{Kind, RbacRule};

/// The Lease loop reads, creates and renews (PUT with resourceVersion) one Lease.
pub const LEASE_VERBS: &[&str] = &["get", "create", "update"];

/// All kinds' rules (read; `patch` on the status of the kinds whose status is written) plus the
/// Lease, in the lease namespace only.
pub fn required_rbac() -> Vec<RbacRule> {
    let mut rules: Vec<RbacRule> = Kind::ALL.into_iter().flat_map(Kind::rbac).collect();
    rules.push(RbacRule::of::<Lease>("", LEASE_VERBS, true));
    rules
}
