//! Gateway API match precedence as a type: a summary of *how well* one `matches[]` entry claims a
//! request, totally ordered so that the greater summary wins (the technique of linkerd's
//! `http-route` crate, with the Gateway API spec's order).
//!
//! The order is documented on [`RouteTable`](crate::RouteTable); each rule has its own test below.
//! The index (`index.rs`) applies the hostname and path criteria structurally (bucket by bucket,
//! deepest prefix first) and sorts the candidates that share a bucket by this order, so the first
//! candidate that holds is the winner.

use std::cmp::Ordering;

use crate::time::Timestamp;

/// How well one `matches[]` entry of one rule claims a request. **Greater wins.**
///
/// `M` is the protocol's own part: [`HttpMatch`] for HTTPRoute, [`GrpcMatchRank`] for GRPCRoute
/// (the characters of the matching service, then of the method, then the number of header
/// matches); the hostname before it and the route tie-breaks after it are the same for both.
///
/// `Ord` is consistent with `Eq`: two summaries compare `Equal` only when every field is equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precedence<'t, M = HttpMatch> {
    /// How specifically the route's hostname matched the request host.
    pub hostname: HostnameMatch,
    /// The protocol's match criteria.
    pub request: M,
    /// The route's `creationTimestamp`: the oldest wins; a route without one loses to any with one.
    pub created: Option<Timestamp>,
    /// With `name`: the route first in alphabetical order by `{namespace}/{name}` wins.
    pub namespace: &'t str,
    pub name: &'t str,
    /// Within a route, the first rule in list order wins ...
    pub rule_index: u32,
    /// ... and within a rule, the first of its `matches`.
    pub match_index: u32,
}

/// How a route hostname matched the request host. Ordered by the spec's "characters in a matching
/// non-wildcard hostname", then "characters in a matching hostname": any exact name beats every
/// wildcard, a longer wildcard beats a shorter one, and a route without hostnames comes last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HostnameMatch {
    /// The route (and its listener) set no hostname: every host matches.
    Any,
    /// `*.example.com`: `suffix_chars` counts `.example.com`.
    Wildcard { suffix_chars: usize },
    /// The request host itself.
    Exact { chars: usize },
}

/// The HTTPRoute criteria after the hostname, in the spec's order:
/// "precedence must be given to the match having: "Exact" path match. "Prefix" path match with
/// largest number of characters. Method match. Largest number of header matches. Largest number of
/// query param matches."
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpMatch {
    pub path: PathMatchRank,
    /// The match names a method.
    pub method: bool,
    /// Header conditions (after dropping repeated names, which the spec says do not count).
    pub headers: usize,
    /// Query parameter conditions (likewise).
    pub query_params: usize,
}

/// The path criterion. "The precedence of RegularExpression path matches are
/// implementation-specific": we place them between Exact and PathPrefix, longer patterns first,
/// as Envoy Gateway does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathMatchRank {
    /// `PathPrefix`, by the number of characters of the prefix as written (`/foo/` beats `/foo`).
    Prefix {
        chars: usize,
    },
    RegularExpression {
        chars: usize,
    },
    /// Every Exact match of one request has the same path, so there is nothing to count.
    Exact,
}

impl Ord for HttpMatch {
    fn cmp(&self, other: &Self) -> Ordering {
        self.path
            .cmp(&other.path)
            .then_with(|| self.method.cmp(&other.method))
            .then_with(|| self.headers.cmp(&other.headers))
            .then_with(|| self.query_params.cmp(&other.query_params))
    }
}

impl PartialOrd for HttpMatch {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The GRPCRoute criteria after the hostname, in the spec's order (GRPCRouteRule: "Characters in a
/// matching service. Characters in a matching method. Header matches."). Compared by a hand-written
/// `Ord`: service first, then method, then the number of header matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcMatchRank {
    pub service: NameMatchRank,
    pub method: NameMatchRank,
    /// Header conditions (after dropping repeated names, as for HTTPRoute).
    pub headers: usize,
}

/// How a GRPCMethodMatch's `service` (or `method`) claims the request. "Characters in a matching
/// service": every Exact match of one request has the request's own service, so an Exact match
/// has the most characters any match can have. The spec leaves RegularExpression to
/// implementations: we place it below Exact and above an absent value, longer patterns first (as
/// RegularExpression paths sit between Exact and PathPrefix for HTTPRoute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NameMatchRank {
    /// No value: every service (or method) matches.
    Any,
    /// A regular expression of `chars` characters as written.
    RegularExpression { chars: usize },
    /// The request's service (or method) itself, `chars` long.
    Exact { chars: usize },
}

impl Ord for GrpcMatchRank {
    fn cmp(&self, other: &Self) -> Ordering {
        self.service
            .cmp(&other.service)
            .then_with(|| self.method.cmp(&other.method))
            .then_with(|| self.headers.cmp(&other.headers))
    }
}

impl PartialOrd for GrpcMatchRank {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<M: Ord> Ord for Precedence<'_, M> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.hostname
            .cmp(&other.hostname)
            .then_with(|| self.request.cmp(&other.request))
            // "If ties still exist across multiple Routes, matching precedence MUST be determined
            // in order of the following criteria, continuing on ties: The oldest Route based on
            // creation timestamp. The Route appearing first in alphabetical order by
            // "{namespace}/{name}"."
            .then_with(|| older_wins(self.created, other.created))
            .then_with(|| alphabetical_wins(other, self))
            // "If ties still exist within an HTTPRoute, matching precedence MUST be granted to the
            // FIRST matching rule (in list order) with a match meeting the above criteria."
            .then_with(|| other.rule_index.cmp(&self.rule_index))
            .then_with(|| other.match_index.cmp(&self.match_index))
    }
}

impl<M: Ord> PartialOrd for Precedence<'_, M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// `Greater` when `a` is older; a route with a timestamp beats one without.
fn older_wins(a: Option<Timestamp>, b: Option<Timestamp>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => b.cmp(&a),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => Ordering::Equal,
    }
}

/// Compares `{namespace}/{name}` as one string without building it (`a-b/x` sorts before `a/x`,
/// which comparing the namespace first would get wrong), then the parts themselves, so that only
/// equal parts are `Equal`.
fn alphabetical_wins<M>(a: &Precedence<'_, M>, b: &Precedence<'_, M>) -> Ordering {
    fn joined<'t>(namespace: &'t str, name: &'t str) -> impl Iterator<Item = u8> + 't {
        namespace
            .bytes()
            .chain(std::iter::once(b'/'))
            .chain(name.bytes())
    }
    joined(a.namespace, a.name)
        .cmp(joined(b.namespace, b.name))
        .then_with(|| a.namespace.cmp(b.namespace))
}

#[cfg(test)]
mod tests {
    //! One sentinel test per rule: two summaries that differ only in that rule, one `Expected` and
    //! one `Unexpected`, offered in both orders; the greater must be the `Expected` one.

    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Policy {
        Expected,
        Unexpected,
    }

    fn base() -> Precedence<'static> {
        Precedence {
            hostname: HostnameMatch::Any,
            request: HttpMatch {
                path: PathMatchRank::Prefix { chars: 1 },
                method: false,
                headers: 0,
                query_params: 0,
            },
            created: None,
            namespace: "ns",
            name: "route",
            rule_index: 0,
            match_index: 0,
        }
    }

    fn best(expected: Precedence<'_>, unexpected: Precedence<'_>) -> Policy {
        let pick = |list: [(Precedence<'_>, Policy); 2]| {
            list.into_iter()
                .max_by(|a, b| a.0.cmp(&b.0))
                .map(|(_, policy)| policy)
        };
        let forward = pick([
            (expected, Policy::Expected),
            (unexpected, Policy::Unexpected),
        ]);
        let backward = pick([
            (unexpected, Policy::Unexpected),
            (expected, Policy::Expected),
        ]);
        assert_eq!(
            forward, backward,
            "the order the candidates come in decides"
        );
        assert_ne!(expected, unexpected);
        forward.unwrap_or(Policy::Unexpected)
    }

    fn with_request(f: impl FnOnce(&mut HttpMatch)) -> Precedence<'static> {
        let mut p = base();
        f(&mut p.request);
        p
    }

    #[test]
    fn exact_hostname_beats_wildcard() {
        let mut exact = base();
        exact.hostname = HostnameMatch::Exact { chars: 5 };
        let mut wildcard = base();
        wildcard.hostname = HostnameMatch::Wildcard { suffix_chars: 50 };
        assert_eq!(best(exact, wildcard), Policy::Expected);
    }

    #[test]
    fn longer_wildcard_beats_shorter() {
        let mut long = base();
        long.hostname = HostnameMatch::Wildcard { suffix_chars: 12 };
        let mut short = base();
        short.hostname = HostnameMatch::Wildcard { suffix_chars: 4 };
        assert_eq!(best(long, short), Policy::Expected);
    }

    #[test]
    fn any_hostname_comes_last() {
        let mut wildcard = base();
        wildcard.hostname = HostnameMatch::Wildcard { suffix_chars: 4 };
        assert_eq!(best(wildcard, base()), Policy::Expected);
    }

    #[test]
    fn hostname_beats_every_request_criterion() {
        let mut exact_host = base();
        exact_host.hostname = HostnameMatch::Exact { chars: 5 };
        let mut exact_path = with_request(|r| {
            r.path = PathMatchRank::Exact;
            r.method = true;
            r.headers = 9;
        });
        exact_path.hostname = HostnameMatch::Wildcard { suffix_chars: 4 };
        assert_eq!(best(exact_host, exact_path), Policy::Expected);
    }

    #[test]
    fn exact_path_beats_regular_expression() {
        let exact = with_request(|r| r.path = PathMatchRank::Exact);
        let regex = with_request(|r| r.path = PathMatchRank::RegularExpression { chars: 99 });
        assert_eq!(best(exact, regex), Policy::Expected);
    }

    #[test]
    fn regular_expression_beats_prefix() {
        let regex = with_request(|r| r.path = PathMatchRank::RegularExpression { chars: 1 });
        let prefix = with_request(|r| r.path = PathMatchRank::Prefix { chars: 99 });
        assert_eq!(best(regex, prefix), Policy::Expected);
    }

    #[test]
    fn longer_regular_expression_beats_shorter() {
        let long = with_request(|r| r.path = PathMatchRank::RegularExpression { chars: 9 });
        let short = with_request(|r| r.path = PathMatchRank::RegularExpression { chars: 3 });
        assert_eq!(best(long, short), Policy::Expected);
    }

    #[test]
    fn longer_prefix_beats_shorter() {
        let long = with_request(|r| r.path = PathMatchRank::Prefix { chars: 5 });
        let short = with_request(|r| r.path = PathMatchRank::Prefix { chars: 4 });
        assert_eq!(best(long, short), Policy::Expected);
    }

    #[test]
    fn path_beats_method() {
        let longer = with_request(|r| r.path = PathMatchRank::Prefix { chars: 2 });
        let method = with_request(|r| r.method = true);
        assert_eq!(best(longer, method), Policy::Expected);
    }

    #[test]
    fn method_beats_headers() {
        let method = with_request(|r| r.method = true);
        let headers = with_request(|r| r.headers = 5);
        assert_eq!(best(method, headers), Policy::Expected);
    }

    #[test]
    fn more_headers_beat_fewer() {
        let two = with_request(|r| r.headers = 2);
        let one = with_request(|r| r.headers = 1);
        assert_eq!(best(two, one), Policy::Expected);
    }

    #[test]
    fn headers_beat_query_params() {
        let headers = with_request(|r| r.headers = 1);
        let query = with_request(|r| r.query_params = 5);
        assert_eq!(best(headers, query), Policy::Expected);
    }

    #[test]
    fn more_query_params_beat_fewer() {
        let two = with_request(|r| r.query_params = 2);
        let one = with_request(|r| r.query_params = 1);
        assert_eq!(best(two, one), Policy::Expected);
    }

    #[test]
    fn request_criteria_beat_age() {
        let mut young = with_request(|r| r.query_params = 1);
        young.created = Some((2_000, 0));
        let mut old = base();
        old.created = Some((1_000, 0));
        assert_eq!(best(young, old), Policy::Expected);
    }

    #[test]
    fn oldest_route_wins() {
        let mut old = base();
        old.created = Some((1_000, 0));
        old.name = "z";
        let mut young = base();
        young.created = Some((1_000, 1));
        young.name = "a";
        assert_eq!(best(old, young), Policy::Expected);
    }

    #[test]
    fn a_route_with_a_timestamp_beats_one_without() {
        let mut timed = base();
        timed.created = Some((i64::MAX, 0));
        timed.name = "z";
        let mut untimed = base();
        untimed.name = "a";
        assert_eq!(best(timed, untimed), Policy::Expected);
    }

    #[test]
    fn first_alphabetically_by_namespace_slash_name_wins() {
        let mut a = base();
        (a.namespace, a.name) = ("a", "z");
        let mut b = base();
        (b.namespace, b.name) = ("b", "a");
        assert_eq!(best(a, b), Policy::Expected);
        let mut alpha = base();
        alpha.name = "alpha";
        let mut beta = base();
        beta.name = "beta";
        assert_eq!(best(alpha, beta), Policy::Expected);
    }

    #[test]
    fn alphabetical_order_is_of_the_joined_string() {
        // "a-b/x" < "a/x" because '-' (0x2d) sorts before '/' (0x2f); comparing the namespaces
        // alone ("a" < "a-b") would pick the other one.
        let mut dashed = base();
        (dashed.namespace, dashed.name) = ("a-b", "x");
        let mut short = base();
        (short.namespace, short.name) = ("a", "x");
        assert_eq!(best(dashed, short), Policy::Expected);
    }

    #[test]
    fn name_beats_rule_order() {
        let mut first_name = base();
        (first_name.name, first_name.rule_index) = ("a", 7);
        let mut first_rule = base();
        (first_rule.name, first_rule.rule_index) = ("b", 0);
        assert_eq!(best(first_name, first_rule), Policy::Expected);
    }

    #[test]
    fn first_rule_wins_within_a_route() {
        let mut first = base();
        (first.rule_index, first.match_index) = (0, 3);
        let mut second = base();
        second.rule_index = 1;
        assert_eq!(best(first, second), Policy::Expected);
    }

    #[test]
    fn first_match_wins_within_a_rule() {
        let mut first = base();
        first.match_index = 0;
        let mut second = base();
        second.match_index = 1;
        assert_eq!(best(first, second), Policy::Expected);
    }

    fn grpc(f: impl FnOnce(&mut GrpcMatchRank)) -> Precedence<'static, GrpcMatchRank> {
        let b = base();
        let mut request = GrpcMatchRank {
            service: NameMatchRank::Any,
            method: NameMatchRank::Any,
            headers: 0,
        };
        f(&mut request);
        Precedence {
            hostname: b.hostname,
            request,
            created: b.created,
            namespace: b.namespace,
            name: b.name,
            rule_index: b.rule_index,
            match_index: b.match_index,
        }
    }

    fn best_grpc(
        expected: Precedence<'_, GrpcMatchRank>,
        unexpected: Precedence<'_, GrpcMatchRank>,
    ) -> Policy {
        assert_ne!(expected, unexpected);
        let forward = expected.cmp(&unexpected);
        assert_eq!(forward, unexpected.cmp(&expected).reverse());
        if forward == Ordering::Greater {
            Policy::Expected
        } else {
            Policy::Unexpected
        }
    }

    #[test]
    fn grpc_hostname_beats_service() {
        let mut exact_host = grpc(|_| {});
        exact_host.hostname = HostnameMatch::Exact { chars: 4 };
        let mut exact_service = grpc(|r| {
            r.service = NameMatchRank::Exact { chars: 9 };
            r.method = NameMatchRank::Exact { chars: 9 };
            r.headers = 9;
        });
        exact_service.hostname = HostnameMatch::Wildcard { suffix_chars: 4 };
        assert_eq!(best_grpc(exact_host, exact_service), Policy::Expected);
    }

    #[test]
    fn grpc_exact_service_beats_regular_expression_service() {
        let exact = grpc(|r| r.service = NameMatchRank::Exact { chars: 3 });
        let regex = grpc(|r| r.service = NameMatchRank::RegularExpression { chars: 99 });
        assert_eq!(best_grpc(exact, regex), Policy::Expected);
    }

    #[test]
    fn grpc_regular_expression_service_beats_any_service() {
        let regex = grpc(|r| r.service = NameMatchRank::RegularExpression { chars: 1 });
        let any = grpc(|r| r.method = NameMatchRank::Exact { chars: 9 });
        assert_eq!(best_grpc(regex, any), Policy::Expected);
    }

    #[test]
    fn grpc_longer_service_regular_expression_beats_shorter() {
        let long = grpc(|r| r.service = NameMatchRank::RegularExpression { chars: 8 });
        let short = grpc(|r| r.service = NameMatchRank::RegularExpression { chars: 2 });
        assert_eq!(best_grpc(long, short), Policy::Expected);
    }

    #[test]
    fn grpc_service_beats_method() {
        let service = grpc(|r| r.service = NameMatchRank::Exact { chars: 3 });
        let method = grpc(|r| {
            r.method = NameMatchRank::Exact { chars: 30 };
            r.headers = 5;
        });
        assert_eq!(best_grpc(service, method), Policy::Expected);
    }

    #[test]
    fn grpc_exact_method_beats_regular_expression_method() {
        let exact = grpc(|r| r.method = NameMatchRank::Exact { chars: 3 });
        let regex = grpc(|r| r.method = NameMatchRank::RegularExpression { chars: 30 });
        assert_eq!(best_grpc(exact, regex), Policy::Expected);
    }

    #[test]
    fn grpc_method_beats_headers() {
        let method = grpc(|r| r.method = NameMatchRank::RegularExpression { chars: 1 });
        let headers = grpc(|r| r.headers = 5);
        assert_eq!(best_grpc(method, headers), Policy::Expected);
    }

    #[test]
    fn grpc_more_headers_beat_fewer() {
        let two = grpc(|r| r.headers = 2);
        let one = grpc(|r| r.headers = 1);
        assert_eq!(best_grpc(two, one), Policy::Expected);
    }

    #[test]
    fn grpc_headers_beat_age_then_name_then_rule_order() {
        let mut young = grpc(|r| r.headers = 1);
        young.created = Some((2_000, 0));
        let mut old = grpc(|_| {});
        old.created = Some((1_000, 0));
        assert_eq!(best_grpc(young, old), Policy::Expected);
        let mut older = grpc(|_| {});
        (older.created, older.name) = (Some((1, 0)), "z");
        let mut newer = grpc(|_| {});
        (newer.created, newer.name) = (Some((2, 0)), "a");
        assert_eq!(best_grpc(older, newer), Policy::Expected);
        let mut alpha = grpc(|_| {});
        (alpha.name, alpha.rule_index) = ("a", 5);
        let mut beta = grpc(|_| {});
        beta.name = "b";
        assert_eq!(best_grpc(alpha, beta), Policy::Expected);
        let mut first = grpc(|_| {});
        first.match_index = 2;
        let mut second = grpc(|_| {});
        second.rule_index = 1;
        assert_eq!(best_grpc(first, second), Policy::Expected);
    }

    #[test]
    fn ord_is_a_total_order_consistent_with_eq() {
        let mut all = Vec::new();
        for hostname in [
            HostnameMatch::Any,
            HostnameMatch::Wildcard { suffix_chars: 4 },
            HostnameMatch::Exact { chars: 4 },
        ] {
            for path in [
                PathMatchRank::Prefix { chars: 1 },
                PathMatchRank::RegularExpression { chars: 1 },
                PathMatchRank::Exact,
            ] {
                for created in [None, Some((1, 0))] {
                    // "a/b" + "c" and "a" + "b/c" join to the same text: still not equal.
                    for (namespace, name) in [("a/b", "c"), ("a", "b/c"), ("a", "c")] {
                        for rule_index in [0, 1] {
                            let mut p = base();
                            p.hostname = hostname;
                            p.request.path = path;
                            p.created = created;
                            (p.namespace, p.name, p.rule_index) = (namespace, name, rule_index);
                            all.push(p);
                        }
                    }
                }
            }
        }
        for a in &all {
            for b in &all {
                assert_eq!(a.cmp(b) == Ordering::Equal, a == b, "{a:?} vs {b:?}");
                assert_eq!(a.cmp(b), b.cmp(a).reverse(), "{a:?} vs {b:?}");
                for c in &all {
                    if a < b && b < c {
                        assert!(a < c, "not transitive: {a:?} {b:?} {c:?}");
                    }
                }
            }
        }
    }
}
