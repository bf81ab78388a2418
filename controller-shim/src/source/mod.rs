//! Where objects come from: the Kubernetes API ([`kube`]) or a directory of manifests ([`dir`]).
//!
//! Both feed one [`Shared`] index and signal changes on a `tokio::sync::watch` channel carrying the
//! index revision; the runtime takes [`Snapshot`]s from it.

pub mod dir;
pub mod index;
pub mod kube;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

pub use gateway_resolver::kinds::{Kind, Object};
pub use index::{Index, IndexFilter};

use crate::Snapshot;

/// The index plus change notification and the problems sources want reported (a manifest that
/// does not parse, a watch that keeps failing).
#[derive(Debug)]
pub struct Shared {
    index: Mutex<Index>,
    changed: watch::Sender<u64>,
    problems: Mutex<BTreeMap<String, String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the index half-updated in a way that matters
    // more than stopping would: every update is a single insert/remove/replace.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(index: Index) -> Shared {
        let (changed, _) = watch::channel(index.revision());
        Shared {
            index: Mutex::new(index),
            changed,
            problems: Mutex::new(BTreeMap::new()),
        }
    }

    /// Runs `f` on the index and wakes the runtime if the revision moved.
    pub fn update<R>(&self, f: impl FnOnce(&mut Index) -> R) -> R {
        let (result, revision) = {
            let mut index = lock(&self.index);
            let result = f(&mut index);
            (result, index.revision())
        };
        self.changed.send_if_modified(|current| {
            let moved = *current != revision;
            *current = revision;
            moved
        });
        result
    }

    /// Reads the index.
    pub fn read<R>(&self, f: impl FnOnce(&Index) -> R) -> R {
        f(&lock(&self.index))
    }

    /// A snapshot, or None while some kind has not been listed yet.
    pub fn snapshot_if_ready(&self) -> Option<(u64, Snapshot)> {
        let index = lock(&self.index);
        index.ready().then(|| (index.revision(), index.snapshot()))
    }

    /// A receiver that sees every revision change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Wakes the runtime without an index change (a problem appeared or went away).
    pub fn poke(&self) {
        self.changed.send_modify(|_| {});
    }

    /// Sets or clears the problem reported under `key` (e.g. a file path). Returns whether it changed.
    pub fn set_problem(&self, key: &str, problem: Option<String>) -> bool {
        let mut problems = lock(&self.problems);
        let changed = match problem {
            Some(p) => problems.insert(key.to_owned(), p.clone()) != Some(p),
            None => problems.remove(key).is_some(),
        };
        drop(problems);
        if changed {
            self.poke();
        }
        changed
    }

    /// Current problems by key.
    pub fn problems(&self) -> BTreeMap<String, String> {
        lock(&self.problems).clone()
    }
}
