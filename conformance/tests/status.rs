//! Every `statusCases` entry of the shared vector file, checked against the resolver.

use conformance::outcome::Outcome;
use conformance::status::check;
use conformance::vectors;

#[test]
fn all_status_cases() {
    let file = vectors::load(vectors::httproute_vectors_path()).unwrap();
    let mut passed = 0;
    let mut failed = Vec::new();
    let mut skipped = Vec::new();
    for case in &file.status_cases {
        match check(case, &file) {
            Outcome::Pass => passed += 1,
            Outcome::Skip(why) => skipped.push(format!("{}: skipped({why})", case.id)),
            Outcome::Fail(diff) => {
                failed.push(format!("{}:\n  {}", case.id, diff.replace('\n', "\n  ")))
            }
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

/// The checker is not vacuous: a wrong expectation of each kind fails with a difference, and an
/// expectation it does not understand is skipped, not passed.
#[test]
fn wrong_expectations_are_caught() {
    let file = vectors::load(vectors::httproute_vectors_path()).unwrap();
    let case = |id: &str| {
        file.status_cases
            .iter()
            .find(|c| c.id == id)
            .cloned()
            .unwrap()
    };
    let fails = |c: &vectors::StatusCase, what: &str| match check(c, &file) {
        Outcome::Fail(diff) => println!("{what}: {diff}"),
        other => panic!("{what}: expected a failure, got {other:?}"),
    };

    let mut c = case("HTTPRouteInvalidNonExistentBackendRef/status/0");
    c.expect.conditions[1].reason = Some("RefNotPermitted".into());
    fails(&c, "wrong reason");

    let mut c = case("HTTPRouteSimpleSameNamespace/status/0");
    c.expect.route_parent_conditions[0].conditions[0].status = "False".into();
    fails(&c, "wrong status");

    let mut c = case("HTTPRouteSimpleSameNamespace/status/0");
    c.expect.route_parent_conditions[0].parent = "gateway-conformance-infra/other".into();
    fails(&c, "wrong parent");

    let mut c = case("HTTPRouteDisallowedKind/status/0");
    c.expect.gateway_attached_routes = Some(1);
    fails(&c, "wrong attached routes");

    let mut c = case("HTTPRouteHostnameIntersection/status/2");
    c.expect.gateway_listener_status.as_mut().unwrap()[0].attached_routes = Some(3);
    fails(&c, "wrong listener attachedRoutes");

    let mut c = case("HTTPRouteHostnameIntersection/status/2");
    c.expect.gateway_listener_status.as_mut().unwrap().pop();
    fails(&c, "missing listener");

    let mut c = case("ListenerSetHTTPRouting/status/0");
    c.expect
        .listener_set_listener_status
        .as_mut()
        .unwrap()
        .values_mut()
        .next()
        .unwrap()[0]
        .attached_routes = Some(4);
    fails(&c, "wrong ListenerSet listener attachedRoutes");

    let mut c = case("ListenerSetHTTPRouting/status/0");
    c.expect.gateway_attached_listener_sets = Some(1);
    fails(&c, "wrong attachedListenerSets");

    let mut c = case("HTTPRouteListenerHostnameMatching/status/0");
    c.expect.route_parent_conditions[0].parent_section_names = Some(vec!["listener-2".into()]);
    fails(&c, "wrong listener for a sectionName");

    let mut c = case("HTTPRouteCrossNamespace/status/0");
    c.expect.listeners =
        Some("every listener of the parent has Accepted=False (any reason)".into());
    fails(&c, "wrong listener conditions");

    let mut c = case("HTTPRouteObservedGenerationBump/status/0");
    c.expect.mutation = Some("patch spec.rules[0].backendRefs[0].name to no-such-service".into());
    fails(&c, "mutation breaking ResolvedRefs");

    let mut c = case("HTTPRouteSimpleSameNamespace/status/0");
    c.expect
        .extra
        .insert("somethingNew".into(), serde_json::json!(true));
    assert!(matches!(check(&c, &file), Outcome::Skip(_)));

    let mut c = case("HTTPRouteSimpleSameNamespace/status/0");
    c.expect.listeners = Some("most listeners are fine".into());
    assert!(matches!(check(&c, &file), Outcome::Skip(_)));
}
