//! The shared vector file loads completely and every case converts into a snapshot.

use conformance::snapshot::{SnapshotOptions, try_snapshot_for};
use conformance::vectors::{self, Scenario};

#[test]
fn httproute_vectors_load_and_convert() {
    let file = vectors::load(vectors::httproute_vectors_path()).unwrap();
    assert_eq!(file.cases.len(), 335);
    assert_eq!(file.status_cases.len(), 63);
    assert_eq!(file.unreleased_cases.len(), 10);
    let options = SnapshotOptions::default();
    let scenarios = file
        .cases
        .iter()
        .map(|c| c as &dyn ScenarioDyn)
        .chain(file.unreleased_cases.iter().map(|c| c as &dyn ScenarioDyn))
        .chain(file.status_cases.iter().map(|c| c as &dyn ScenarioDyn));
    for case in scenarios {
        let snapshot = case.snapshot(&file, &options).unwrap();
        assert_eq!(snapshot.gateways.len(), 1, "{}", case.case_id());
        assert_eq!(snapshot.http_routes.len(), case.route_count());
    }
}

/// Object-safe view of [`Scenario`] for iterating over both case kinds.
trait ScenarioDyn {
    fn case_id(&self) -> &str;
    fn route_count(&self) -> usize;
    fn snapshot(
        &self,
        file: &vectors::VectorFile,
        options: &SnapshotOptions,
    ) -> Result<controller_shim::Snapshot, String>;
}

impl<T: Scenario> ScenarioDyn for T {
    fn case_id(&self) -> &str {
        self.id()
    }
    fn route_count(&self) -> usize {
        self.routes().len()
    }
    fn snapshot(
        &self,
        file: &vectors::VectorFile,
        options: &SnapshotOptions,
    ) -> Result<controller_shim::Snapshot, String> {
        try_snapshot_for(self, file, options)
    }
}

/// The vendored vectors must be the shared ones, byte for byte, so results here mean results there.
#[test]
fn vendored_vectors_match_the_shared_copy() {
    for name in [vectors::HTTPROUTE_VECTORS, vectors::GRPCROUTE_VECTORS] {
        let shared = vectors::shared_copy_path(name);
        let Ok(shared_bytes) = std::fs::read(&shared) else {
            eprintln!(
                "skipped: no shared vectors at {} to compare with (a clone outside the workspace)",
                shared.display()
            );
            continue;
        };
        let vendored = std::fs::read(vectors::vendored_vectors_path(name)).unwrap();
        assert!(
            shared_bytes == vendored,
            "conformance/vectors/{name} differs from {}: copy the shared file over it",
            shared.display()
        );
    }
}
