//! Every `statusCases` entry of the shared vector file, checked against the resolver.

use conformance::status::{Outcome, check};
use conformance::vectors;

#[test]
fn all_status_cases() {
    let file = vectors::load(vectors::httproute_vectors_path()).unwrap();
    let mut passed = 0;
    let mut failed = Vec::new();
    let mut skipped = Vec::new();
    for case in &file.status_cases {
        match check(case, &file) {
            Ok(Outcome::Passed) => passed += 1,
            Ok(Outcome::Skipped(why)) => skipped.push(format!("{}: skipped({why})", case.id)),
            Err(diff) => failed.push(format!("{}:\n  {}", case.id, diff.replace('\n', "\n  "))),
        }
    }
    println!(
        "status cases: {passed} passed, {} failed, {} skipped",
        failed.len(),
        skipped.len()
    );
    for line in skipped.iter().chain(&failed) {
        println!("{line}");
    }
    assert!(
        failed.is_empty() && skipped.is_empty(),
        "{} failed, {} skipped (see above)",
        failed.len(),
        skipped.len()
    );
}
