//! Placeholder: the resolver is being written (issue 2). Returns nothing for now.

use crate::resolution::{Resolution, Settings};
use crate::snapshot::Snapshot;

/// Resolves a snapshot into per-Gateway configs and statuses.
pub fn resolve(_snapshot: &Snapshot, _settings: &Settings) -> Resolution {
    Resolution::default()
}
