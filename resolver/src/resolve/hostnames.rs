//! Route hostnames ∩ listener hostname.
//!
//! Spec (HTTPRouteSpec.hostnames): "If a hostname is specified by both the Listener and HTTPRoute,
//! there must be at least one intersecting hostname for the HTTPRoute to be attached to the
//! Listener." and "Hostnames that are prefixed with a wildcard label (`*.`) are interpreted as a
//! suffix match. That means that a match for `*.example.com` would match both `test.example.com`,
//! and `foo.test.example.com`, but not `example.com`."

/// The route's effective hostnames on a listener, or `None` when they do not intersect.
/// `Some(vec![])` means every host the listener accepts.
///
/// "If both the Listener and HTTPRoute have specified hostnames, any HTTPRoute hostnames that do
/// not match the Listener hostname MUST be ignored." Where a route wildcard is wider than the
/// listener's hostname, the intersection is the listener's (narrower) hostname.
pub fn intersect(listener: Option<&str>, route: &[String]) -> Option<Vec<String>> {
    let listener = listener.filter(|l| !l.is_empty());
    if route.is_empty() {
        return Some(Vec::new());
    }
    let Some(listener) = listener else {
        return Some(dedup(route.iter().map(|h| h.to_ascii_lowercase())));
    };
    let listener = listener.to_ascii_lowercase();
    let result = dedup(
        route
            .iter()
            .filter_map(|h| intersect_one(&listener, &h.to_ascii_lowercase())),
    );
    if result.is_empty() {
        None
    } else {
        Some(result)
    }
}

/// Whether two routes' effective hostnames on one listener share a host. An empty list means every
/// host the listener accepts, which shares a host with anything the listener accepts.
pub fn overlap(a: &[String], b: &[String]) -> bool {
    a.is_empty()
        || b.is_empty()
        || a.iter()
            .any(|x| b.iter().any(|y| intersect_one(x, y).is_some()))
}

/// The intersection of two hostname patterns: the narrower one when one includes the other.
fn intersect_one(listener: &str, route: &str) -> Option<String> {
    if listener == route {
        return Some(route.to_owned());
    }
    match (wildcard_suffix(listener), wildcard_suffix(route)) {
        // Both exact and different.
        (None, None) => None,
        // Exact route host under the listener's wildcard.
        (Some(_), None) => covers(listener, route).then(|| route.to_owned()),
        // The route's wildcard covers the listener's exact host.
        (None, Some(_)) => covers(route, listener).then(|| listener.to_owned()),
        // Two wildcards: the more specific one, if one covers the other.
        (Some(_), Some(_)) => {
            if covers(listener, route) {
                Some(route.to_owned())
            } else if covers(route, listener) {
                Some(listener.to_owned())
            } else {
                None
            }
        }
    }
}

/// `example.com` for `*.example.com`.
fn wildcard_suffix(pattern: &str) -> Option<&str> {
    pattern.strip_prefix("*.")
}

/// Whether `pattern` matches every host `other` (exact or wildcard) matches. `*.example.com` covers
/// `a.example.com`, `a.b.example.com`, `*.b.example.com` and itself, but not `example.com`.
fn covers(pattern: &str, other: &str) -> bool {
    let Some(suffix) = wildcard_suffix(pattern) else {
        return pattern == other;
    };
    match wildcard_suffix(other) {
        Some(other_suffix) => other_suffix == suffix || is_under(other_suffix, suffix),
        None => is_under(other, suffix),
    }
}

/// `host` has at least one more label than `suffix` and ends with `.suffix`.
fn is_under(host: &str, suffix: &str) -> bool {
    host.strip_suffix(suffix)
        .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
}

/// Removes duplicates, keeping the first occurrence.
fn dedup(hosts: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in hosts {
        if !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(hosts: &[&str]) -> Vec<String> {
        hosts.iter().map(|h| h.to_string()).collect()
    }

    #[test]
    fn no_listener_hostname_keeps_route_hostnames() {
        assert_eq!(intersect(None, &v(&["a.com"])), Some(v(&["a.com"])));
        assert_eq!(intersect(Some(""), &v(&["a.com"])), Some(v(&["a.com"])));
        assert_eq!(intersect(None, &[]), Some(vec![]));
    }

    #[test]
    fn no_route_hostnames_means_every_host_of_the_listener() {
        assert_eq!(intersect(Some("a.com"), &[]), Some(vec![]));
        assert_eq!(intersect(Some("*.a.com"), &[]), Some(vec![]));
    }

    /// "A Listener with `test.example.com` as the hostname matches HTTPRoutes that have either not
    /// specified any hostnames, or have specified at least one of `test.example.com` or
    /// `*.example.com`."
    #[test]
    fn exact_listener() {
        let l = Some("test.example.com");
        assert_eq!(
            intersect(l, &v(&["test.example.com"])),
            Some(v(&["test.example.com"]))
        );
        assert_eq!(
            intersect(l, &v(&["*.example.com"])),
            Some(v(&["test.example.com"]))
        );
        assert_eq!(intersect(l, &v(&["other.example.com"])), None);
        assert_eq!(intersect(l, &v(&["*.test.example.com"])), None);
        assert_eq!(intersect(l, &v(&["*.com"])), Some(v(&["test.example.com"])));
    }

    /// "A Listener with `*.example.com` as the hostname matches HTTPRoutes that have either not
    /// specified any hostnames or have specified at least one hostname that matches the Listener
    /// hostname. For example, `*.example.com`, `test.example.com`, and `foo.test.example.com` would
    /// all match. On the other hand, `example.com` and `test.example.net` would not match."
    #[test]
    fn wildcard_listener() {
        let l = Some("*.example.com");
        for host in ["*.example.com", "test.example.com", "foo.test.example.com"] {
            assert_eq!(intersect(l, &v(&[host])), Some(v(&[host])), "{host}");
        }
        assert_eq!(intersect(l, &v(&["example.com"])), None);
        assert_eq!(intersect(l, &v(&["test.example.net"])), None);
        assert_eq!(
            intersect(l, &v(&["*.foo.example.com"])),
            Some(v(&["*.foo.example.com"]))
        );
        // A wider route wildcard narrows to the listener's.
        assert_eq!(intersect(l, &v(&["*.com"])), Some(v(&["*.example.com"])));
    }

    /// "if a Listener specified `*.example.com`, and the HTTPRoute specified `test.example.com`
    /// and `test.example.net`, `test.example.net` must not be considered for a match."
    #[test]
    fn non_matching_route_hostnames_are_dropped() {
        assert_eq!(
            intersect(
                Some("*.example.com"),
                &v(&["test.example.com", "test.example.net"])
            ),
            Some(v(&["test.example.com"]))
        );
    }

    #[test]
    fn overlap_is_a_shared_host() {
        assert!(overlap(&[], &v(&["a.com"])));
        assert!(overlap(&v(&["a.com"]), &[]));
        assert!(overlap(&v(&["a.com", "b.com"]), &v(&["b.com"])));
        assert!(overlap(&v(&["*.a.com"]), &v(&["x.a.com"])));
        assert!(overlap(&v(&["x.a.com"]), &v(&["*.a.com"])));
        assert!(overlap(&v(&["*.a.com"]), &v(&["*.x.a.com"])));
        assert!(!overlap(&v(&["a.com"]), &v(&["b.com"])));
        assert!(!overlap(&v(&["*.a.com"]), &v(&["a.com"])));
        assert!(!overlap(&v(&["*.a.com"]), &v(&["*.b.com"])));
    }

    #[test]
    fn wildcard_does_not_match_its_own_suffix() {
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "*.example.org"));
        assert!(!covers("*.example.com", "xexample.com"));
        assert!(covers("*.example.com", "a.b.example.com"));
    }

    /// Whether a concrete host matches a pattern, straight from the spec sentence: a `*.` prefix is
    /// a suffix match that needs at least one more label.
    fn host_matches(pattern: &str, host: &str) -> bool {
        match pattern.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => pattern == host,
        }
    }

    proptest::proptest! {
        /// Every host an effective hostname matches is matched by the listener's hostname and by
        /// one of the route's (the intersection never widens either side), and every host both
        /// match is matched by an effective hostname (it never loses one).
        #[test]
        fn intersection_is_exact(
            listener in "(\\*\\.)?[ab](\\.[ab]){0,3}",
            route in proptest::collection::vec("(\\*\\.)?[ab](\\.[ab]){0,3}", 1..4),
            host in "[ab](\\.[ab]){0,5}",
        ) {
            let both = route.iter().any(|r| host_matches(r, &host)) && host_matches(&listener, &host);
            if let Some(effective) = intersect(Some(&listener), &route) {
                proptest::prop_assert!(!effective.is_empty());
                // Nothing both sides accept is lost.
                proptest::prop_assert!(!both || effective.iter().any(|e| host_matches(e, &host)));
                for e in &effective {
                    if host_matches(e, &host) {
                        proptest::prop_assert!(host_matches(&listener, &host), "{e} widens {listener}");
                        proptest::prop_assert!(route.iter().any(|r| host_matches(r, &host)), "{e} widens {route:?}");
                    }
                }
            } else {
                // No intersection: no host is matched by both sides.
                proptest::prop_assert!(!both, "{host} is matched by {listener} and {route:?}");
            }
        }
    }
}
