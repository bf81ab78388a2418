//! The index: a synchronous store of the objects the sources have seen (one map per kind of the table
//! in `gateway_resolver::kinds`), from which the runtime takes [`Snapshot`]s.
//!
//! Sources call [`Index::apply`], [`Index::delete`] and [`Index::replace`] (a relist), then
//! [`Index::mark_synced`] once a kind's initial list is complete. The index is [`Index::ready`] when
//! every kind it expects has been synced once: resolving earlier would, for example, see routes
//! before their Services and report `BackendNotFound` for a moment (a half-built config).
//!
//! Every change that alters the stored set bumps [`Index::revision`]; the runtime compares
//! revisions to know whether anything happened.

use std::collections::{BTreeMap, BTreeSet};

use gateway_resolver::kinds::{Kind, Object};

use crate::Snapshot;
use crate::resolution::ObjectKey;

/// Which objects the index keeps.
#[derive(Debug, Clone, Default)]
pub struct IndexFilter {
    /// Keep only GatewayClasses with this `spec.controllerName` (None: keep all).
    pub controller_name: Option<String>,
}

impl IndexFilter {
    fn keeps(&self, object: &Object) -> bool {
        match (object, &self.controller_name) {
            (Object::GatewayClass(class), Some(ours)) => class.spec.controller_name == *ours,
            _ => true,
        }
    }
}

/// The store. Not thread-safe by itself: sources share it behind a mutex.
#[derive(Debug, Default)]
pub struct Index {
    filter: IndexFilter,
    objects: BTreeMap<Kind, BTreeMap<ObjectKey, Object>>,
    expected: BTreeSet<Kind>,
    synced: BTreeSet<Kind>,
    revision: u64,
}

impl Index {
    /// An index that is ready once every kind in `expected` has been synced.
    pub fn new(filter: IndexFilter, expected: impl IntoIterator<Item = Kind>) -> Index {
        Index {
            filter,
            expected: expected.into_iter().collect(),
            ..Index::default()
        }
    }

    /// Stores (or replaces) an object. Returns whether the stored set changed. A GatewayClass that
    /// is not ours is dropped (and removed if an earlier version was ours).
    pub fn apply(&mut self, object: Object) -> bool {
        let kind = object.kind();
        let key = object.key();
        if !self.filter.keeps(&object) {
            return self.delete(kind, &key);
        }
        let store = self.objects.entry(kind).or_default();
        if store.get(&key) == Some(&object) {
            return false;
        }
        store.insert(key, object);
        self.revision += 1;
        true
    }

    /// Removes an object. Returns whether it was there.
    pub fn delete(&mut self, kind: Kind, key: &ObjectKey) -> bool {
        let removed = self
            .objects
            .get_mut(&kind)
            .and_then(|store| store.remove(key))
            .is_some();
        if removed {
            self.revision += 1;
        }
        removed
    }

    /// Replaces every object of one kind (a relist). Returns whether the stored set changed.
    pub fn replace(&mut self, kind: Kind, objects: Vec<Object>) -> bool {
        let fresh: BTreeMap<ObjectKey, Object> = objects
            .into_iter()
            .filter(|o| o.kind() == kind && self.filter.keeps(o))
            .map(|o| (o.key(), o))
            .collect();
        let store = self.objects.entry(kind).or_default();
        if *store == fresh {
            return false;
        }
        *store = fresh;
        self.revision += 1;
        true
    }

    /// Records that a kind's initial list is complete.
    pub fn mark_synced(&mut self, kind: Kind) {
        if self.synced.insert(kind) {
            self.revision += 1;
        }
    }

    /// Whether a kind has been listed once.
    pub fn synced(&self, kind: Kind) -> bool {
        self.synced.contains(&kind)
    }

    /// Every expected kind has been listed once.
    pub fn ready(&self) -> bool {
        self.expected.is_subset(&self.synced)
    }

    /// Kinds still waiting for their first complete list.
    pub fn unsynced(&self) -> Vec<Kind> {
        self.expected.difference(&self.synced).copied().collect()
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// One object, if stored.
    pub fn get(&self, kind: Kind, key: &ObjectKey) -> Option<&Object> {
        self.objects.get(&kind)?.get(key)
    }

    /// How many objects of each kind are stored.
    pub fn counts(&self) -> BTreeMap<Kind, usize> {
        self.objects.iter().map(|(k, s)| (*k, s.len())).collect()
    }

    /// A consistent copy of everything stored.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for object in self.objects.values().flat_map(BTreeMap::values) {
            snapshot.push(object.clone());
        }
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{GatewayClass, Service};

    fn class(name: &str, controller: &str) -> Object {
        let mut class = GatewayClass::default();
        class.metadata.name = Some(name.into());
        class.spec.controller_name = controller.into();
        Object::GatewayClass(class)
    }

    fn service(ns: &str, name: &str) -> Object {
        let mut service = Service::default();
        service.metadata.namespace = Some(ns.into());
        service.metadata.name = Some(name.into());
        Object::Service(service)
    }

    #[test]
    fn foreign_gateway_classes_are_dropped() {
        let mut index = Index::new(
            IndexFilter {
                controller_name: Some("ours".into()),
            },
            [Kind::GatewayClass],
        );
        assert!(index.apply(class("a", "ours")));
        assert!(!index.apply(class("b", "theirs")));
        assert_eq!(index.snapshot().gateway_classes.len(), 1);
        // A class handed to another controller disappears.
        assert!(index.apply(class("a", "theirs")));
        assert!(index.snapshot().gateway_classes.is_empty());
    }

    #[test]
    fn unchanged_objects_do_not_bump_the_revision() {
        let mut index = Index::new(IndexFilter::default(), [Kind::Service]);
        assert!(index.apply(service("app", "web")));
        let revision = index.revision();
        assert!(!index.apply(service("app", "web")));
        assert_eq!(index.revision(), revision);
        assert!(!index.replace(Kind::Service, vec![service("app", "web")]));
        assert!(index.replace(Kind::Service, vec![service("app", "api")]));
        assert_eq!(index.snapshot().services.len(), 1);
    }

    #[test]
    fn ready_after_every_expected_kind_synced() {
        let mut index = Index::new(IndexFilter::default(), [Kind::Service, Kind::Gateway]);
        assert!(!index.ready());
        index.mark_synced(Kind::Service);
        assert_eq!(index.unsynced(), vec![Kind::Gateway]);
        index.mark_synced(Kind::Gateway);
        assert!(index.ready());
    }
}
