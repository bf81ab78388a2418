//! The match index: hostname buckets, then path lookups, yielding candidates in precedence order.
//!
//! Per-request cost is bounded by the shape of the request (labels in the host, segments in the
//! path) and by the candidates that share the request's host and path key, never by the total number
//! of routes:
//! - hostnames: one hash probe for the exact name, one per `.` for wildcard suffixes, then the
//!   catch-all bucket (exact beats wildcard, longer wildcard beats shorter, as the spec orders them);
//! - paths: one hash probe for Exact, then the regex candidates of that bucket, then a walk down a
//!   trie of path segments for PathPrefix (element-wise, deepest prefix first).

use regex_lite::Regex;

use crate::hash::FastMap;
use crate::precedence::HostnameMatch;
use crate::segment_map::SegmentMap;
use crate::sort::{IdOrder, sort_ids, sort_through_positions};

/// Candidates of one hostname bucket, indexed by path.
#[derive(Debug, Default)]
pub(crate) struct PathIndex {
    exact: FastMap<Box<str>, Vec<u32>>,
    regex: Vec<(Regex, u32)>,
    prefix: PrefixNode,
    /// The prefixes (as the trie holds them: no trailing `/`) whose node got a second candidate.
    /// Only those lists need sorting, so [`PathIndex::sort`] visits them instead of every node: a
    /// 10,000-route table has tens of thousands of nodes, nearly all holding one candidate, and
    /// walking them all was 8 % of compiling it in V8.
    crowded: Vec<Box<str>>,
}

#[derive(Debug, Default)]
struct PrefixNode {
    children: SegmentMap<PrefixNode>,
    /// Candidates whose prefix ends at this node, with the length of the prefix as written (the
    /// candidate keeps the prefix itself).
    here: Vec<(u32, usize)>,
}

/// Appends to a list of the index: most hold one item, and a growing vector starts with room for
/// four (`docs/benchmarks.md`, *The lean Wasm path*: every byte of the table is a page touched).
pub(crate) fn push_first_exactly<T>(list: &mut Vec<T>, item: T) {
    if list.capacity() == 0 {
        list.reserve_exact(1);
    }
    list.push(item);
}

/// Calls `then` with the value under `key`, inserting a default first when the key is missing.
/// The borrowed key is looked up first: `entry` takes an owned key, so it would allocate and free
/// a copy of the key on every call, and most calls find the key (every route of a hostname shares
/// its bucket; routes under one path share its first segments).
pub(crate) fn with_slot<V: Default, R>(
    map: &mut FastMap<Box<str>, V>,
    key: &str,
    then: impl FnOnce(&mut V) -> R,
) -> R {
    match map.get_mut(key) {
        Some(value) => then(value),
        None => then(map.entry(key.into()).or_default()),
    }
}

impl PathIndex {
    pub(crate) fn insert_exact(&mut self, path: &str, candidate: u32) {
        with_slot(&mut self.exact, path, |list| {
            push_first_exactly(list, candidate);
        });
    }

    pub(crate) fn insert_regex(&mut self, regex: Regex, candidate: u32) {
        self.regex.push((regex, candidate));
    }

    /// `prefix` starts with `/`; a trailing `/` is ignored for matching, as the spec says.
    pub(crate) fn insert_prefix(&mut self, prefix: &str, candidate: u32) {
        let item = (candidate, prefix.len());
        let trimmed = prefix.trim_end_matches('/');
        let held = match trimmed.strip_prefix('/') {
            Some(rest) => self.prefix.insert(&mut rest.split('/'), item),
            None => {
                push_first_exactly(&mut self.prefix.here, item);
                self.prefix.here.len()
            }
        };
        if held == 2 {
            self.crowded.push(trimmed.into());
        }
    }

    /// Sorts every candidate list with `order` (precedence after the path criterion), once every
    /// candidate is in. Prefix lists put longer prefixes (`/foo/` before `/foo`) first, as the
    /// spec counts characters.
    pub(crate) fn sort(&mut self, order: &IdOrder<'_>) {
        for list in self.exact.values_mut() {
            sort_ids(list, order);
        }
        sort_through_positions(&mut self.regex, &|(ra, a), (rb, b)| {
            rb.as_str()
                .len()
                .cmp(&ra.as_str().len())
                .then_with(|| order(*a, *b))
        });
        for prefix in std::mem::take(&mut self.crowded) {
            if let Some(node) = self.prefix.node_mut(&prefix) {
                node.sort(order);
            }
        }
    }

    /// Calls `visit` with candidates in precedence order until it returns `true`.
    pub(crate) fn visit(&self, path: &str, visit: &mut impl FnMut(u32) -> bool) -> bool {
        if let Some(list) = self.exact.get(path) {
            for &c in list {
                if visit(c) {
                    return true;
                }
            }
        }
        for (regex, c) in &self.regex {
            if regex.is_match(path) && visit(*c) {
                return true;
            }
        }
        match path.strip_prefix('/') {
            Some(rest) => self.prefix.walk(&mut rest.split('/'), visit),
            None => false,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.exact.is_empty()
            && self.regex.is_empty()
            && self.prefix.children.is_empty()
            && self.prefix.here.is_empty()
    }
}

impl PrefixNode {
    /// Adds `item` to the node the segments lead to, creating the nodes on the way; returns how
    /// many candidates that node holds now.
    fn insert<'p>(
        &mut self,
        segments: &mut impl Iterator<Item = &'p str>,
        item: (u32, usize),
    ) -> usize {
        match segments.next() {
            Some(segment) => self
                .children
                .with_slot(segment, |child| child.insert(segments, item)),
            None => {
                push_first_exactly(&mut self.here, item);
                self.here.len()
            }
        }
    }

    /// The node of a prefix as the trie holds it (no trailing `/`).
    fn node_mut(&mut self, trimmed: &str) -> Option<&mut PrefixNode> {
        let mut node = self;
        if let Some(rest) = trimmed.strip_prefix('/') {
            for segment in rest.split('/') {
                node = node.children.get_mut(segment)?;
            }
        }
        Some(node)
    }

    /// Sorts this node's candidates (not its children's).
    fn sort(&mut self, order: &IdOrder<'_>) {
        sort_through_positions(&mut self.here, &|(a, la), (b, lb)| {
            lb.cmp(la).then_with(|| order(*a, *b))
        });
        self.here.dedup_by(|x, y| x.0 == y.0);
    }

    /// Deepest matching node first: descend while segments match, then visit on the way back up.
    fn walk<'p>(
        &self,
        segments: &mut impl Iterator<Item = &'p str>,
        visit: &mut impl FnMut(u32) -> bool,
    ) -> bool {
        if let Some(segment) = segments.next()
            && let Some(child) = self.children.get(segment)
            && child.walk(segments, visit)
        {
            return true;
        }
        for &(c, _) in &self.here {
            if visit(c) {
                return true;
            }
        }
        false
    }
}

/// Hostname buckets of one listener. `B` is what a bucket holds: a [`PathIndex`] of HTTPRoute
/// matches, or the GRPCRoute matches of [`crate::grpc::GrpcBucket`].
#[derive(Debug)]
pub(crate) struct HostIndex<B = PathIndex> {
    exact: FastMap<Box<str>, B>,
    /// `*.example.com` stored under `.example.com`.
    wildcard: FastMap<Box<str>, B>,
    any: B,
}

impl<B: Default> Default for HostIndex<B> {
    fn default() -> Self {
        HostIndex {
            exact: FastMap::default(),
            wildcard: FastMap::default(),
            any: B::default(),
        }
    }
}

/// Which bucket a candidate was found in, for traces.
#[derive(Debug, Clone, Copy)]
pub(crate) enum HostHit<'h> {
    Exact(&'h str),
    Wildcard(&'h str),
    Any,
}

/// `hostname a.example.com`, `hostname *.example.com`, `any hostname`.
impl std::fmt::Display for HostHit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostHit::Exact(h) => write!(f, "hostname {h}"),
            HostHit::Wildcard(suffix) => write!(f, "hostname *{suffix}"),
            HostHit::Any => write!(f, "any hostname"),
        }
    }
}

impl<B: Default> HostIndex<B> {
    /// Calls `then` with the bucket for an effective hostname (`None` = every host), creating it
    /// when it is the hostname's first.
    pub(crate) fn with_bucket<R>(
        &mut self,
        hostname: Option<&str>,
        then: impl FnOnce(&mut B) -> R,
    ) -> R {
        match hostname {
            None => then(&mut self.any),
            Some(h) => match h.strip_prefix('*') {
                Some(suffix) => with_slot(&mut self.wildcard, suffix, then),
                None => with_slot(&mut self.exact, h, then),
            },
        }
    }

    /// Calls `each` with every bucket and how its hostname matches the hosts it serves.
    pub(crate) fn for_each_bucket(&mut self, each: &mut impl FnMut(HostnameMatch, &mut B)) {
        for (name, bucket) in &mut self.exact {
            each(HostnameMatch::Exact { chars: name.len() }, bucket);
        }
        for (suffix, bucket) in &mut self.wildcard {
            let suffix_chars = suffix.len();
            each(HostnameMatch::Wildcard { suffix_chars }, bucket);
        }
        each(HostnameMatch::Any, &mut self.any);
    }

    /// The buckets that serve `host` (lowercase), most specific first: the host itself, wildcard
    /// suffixes longest first (one hash probe per `.`), then the catch-all bucket.
    pub(crate) fn buckets<'s>(
        &'s self,
        host: &'s str,
    ) -> impl Iterator<Item = (HostHit<'s>, &'s B)> {
        let exact = self.exact.get(host).map(|b| (HostHit::Exact(host), b));
        let wildcards = (!self.wildcard.is_empty())
            .then(|| host.match_indices('.'))
            .into_iter()
            .flatten()
            .filter(|(i, _)| *i > 0)
            .filter_map(|(i, _)| {
                let suffix = host.get(i..)?;
                Some((HostHit::Wildcard(suffix), self.wildcard.get(suffix)?))
            });
        exact
            .into_iter()
            .chain(wildcards)
            .chain(std::iter::once((HostHit::Any, &self.any)))
    }
}

impl HostIndex<PathIndex> {
    /// Sorts the candidates of every bucket with `order`, which is told how the bucket's hostname
    /// matches the hosts it serves.
    pub(crate) fn sort(&mut self, order: &dyn Fn(HostnameMatch, u32, u32) -> std::cmp::Ordering) {
        // One closure type for every bucket: each closure type would be another copy of the
        // sorting code in the wasm module.
        self.for_each_bucket(&mut |hostname, index: &mut PathIndex| {
            index.sort(&|a, b| order(hostname, a, b));
        });
    }

    /// Visits candidates bucket by bucket in hostname-specificity order; `host` must be lowercase.
    pub(crate) fn visit(
        &self,
        host: &str,
        path: &str,
        visit: &mut impl FnMut(HostHit<'_>, u32) -> bool,
    ) -> bool {
        self.buckets(host).any(|(host_hit, index)| {
            !index.is_empty() && index.visit(path, &mut |c| visit(host_hit, c))
        })
    }
}

/// Whether `host` (lowercase, no port) is accepted by a listener or route hostname pattern, and how
/// specific the match is: exact names rank above every wildcard, longer wildcards above shorter.
pub(crate) fn hostname_specificity(pattern: Option<&str>, host: &str) -> Option<HostnameMatch> {
    match pattern {
        None => Some(HostnameMatch::Any),
        Some(p) => match p.strip_prefix('*') {
            Some(suffix) => (host.len() > suffix.len() && host.ends_with(suffix)).then_some(
                HostnameMatch::Wildcard {
                    suffix_chars: suffix.len(),
                },
            ),
            None => (p == host).then_some(HostnameMatch::Exact { chars: p.len() }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(index: &PathIndex, path: &str) -> Vec<u32> {
        let mut out = Vec::new();
        index.visit(path, &mut |c| {
            out.push(c);
            false
        });
        out
    }

    #[test]
    fn candidate_lists_start_with_room_for_one() {
        let mut index = PathIndex::default();
        index.insert_exact("/a", 0);
        index.insert_prefix("/b/c", 1);
        let exact = index.exact.get("/a").map(Vec::capacity);
        let node = index
            .prefix
            .children
            .get("b")
            .and_then(|b| b.children.get("c"));
        assert_eq!((exact, node.map(|n| n.here.capacity())), (Some(1), Some(1)));
        // A second candidate grows the list as usual.
        index.insert_prefix("/b/c/", 2);
        index.sort(&|a, b| a.cmp(&b));
        assert_eq!(
            collect(&index, "/b/c/d"),
            [2, 1],
            "/b/c/ is the longer prefix"
        );
    }

    #[test]
    fn every_prefix_list_with_several_candidates_is_sorted_whatever_its_depth() {
        let mut index = PathIndex::default();
        for (prefix, id) in [
            ("/x", 5),
            ("/", 2),
            ("/x/", 3),
            ("/x", 4),
            ("/", 1),
            ("/x", 5),
        ] {
            index.insert_prefix(prefix, id);
        }
        index.insert_prefix("/y/z", 7);
        index.insert_prefix("/y/z", 6);
        index.sort(&|a, b| a.cmp(&b));
        // `/x/` is longer than `/x`; then the order; 5, inserted twice, once.
        assert_eq!(collect(&index, "/x/w"), [3, 4, 5, 1, 2]);
        assert_eq!(collect(&index, "/y/z"), [6, 7, 1, 2]);
    }

    #[test]
    fn longer_regexes_come_first_then_the_order() {
        let regex = |pattern: &str| Regex::new(pattern).unwrap_or_else(|e| unreachable!("{e}"));
        let mut index = PathIndex::default();
        index.insert_regex(regex("/a.*"), 0);
        index.insert_regex(regex("/a/b.*"), 1);
        index.insert_regex(regex("/a.+"), 2);
        index.insert_regex(regex("/a/.*"), 3);
        // Reverse id order among regexes of one length, to tell the order from insertion.
        index.sort(&|a, b| b.cmp(&a));
        assert_eq!(collect(&index, "/a/b/c"), [1, 3, 2, 0]);
        index.sort(&|a, b| a.cmp(&b));
        assert_eq!(collect(&index, "/a/b/c"), [1, 3, 0, 2]);
    }

    #[test]
    fn prefixes_match_element_wise_deepest_first() {
        let mut index = PathIndex::default();
        index.insert_prefix("/", 0);
        index.insert_prefix("/foo", 1);
        index.insert_prefix("/foo/bar", 2);
        index.insert_prefix("/foo/", 3);
        index.insert_exact("/foo", 4);
        index.sort(&|a, b| a.cmp(&b));
        assert_eq!(collect(&index, "/foo/bar/baz"), [2, 3, 1, 0]);
        assert_eq!(
            collect(&index, "/foo"),
            [4, 3, 1, 0],
            "exact first; /foo/ has more characters than /foo"
        );
        assert_eq!(collect(&index, "/foo/"), [3, 1, 0]);
        assert_eq!(
            collect(&index, "/foobar"),
            [0],
            "/foo does not match /foobar"
        );
        assert_eq!(collect(&index, "/"), [0]);
        assert_eq!(collect(&index, "*"), Vec::<u32>::new());
    }

    #[test]
    fn hostnames_are_tried_from_most_to_least_specific() {
        let mut hosts = HostIndex::<PathIndex>::default();
        for (i, h) in [
            (0, None),
            (1, Some("*.com")),
            (2, Some("*.example.com")),
            (3, Some("a.example.com")),
        ] {
            hosts.with_bucket(h, |bucket| bucket.insert_prefix("/", i));
        }
        hosts.sort(&|_, a, b| a.cmp(&b));
        let mut seen = Vec::new();
        hosts.visit("a.example.com", "/x", &mut |_, c| {
            seen.push(c);
            false
        });
        assert_eq!(seen, [3, 2, 1, 0]);
        seen.clear();
        hosts.visit("example.com", "/x", &mut |_, c| {
            seen.push(c);
            false
        });
        assert_eq!(
            seen,
            [1, 0],
            "*.example.com does not match example.com itself"
        );
    }

    #[test]
    fn specificity_ranks_exact_over_wildcards() {
        assert_eq!(
            hostname_specificity(Some("a.b.com"), "a.b.com"),
            Some(HostnameMatch::Exact { chars: 7 })
        );
        assert_eq!(
            hostname_specificity(Some("*.b.com"), "a.b.com"),
            Some(HostnameMatch::Wildcard { suffix_chars: 6 })
        );
        assert_eq!(hostname_specificity(Some("*.b.com"), "b.com"), None);
        assert_eq!(hostname_specificity(None, "x"), Some(HostnameMatch::Any));
        assert!(
            hostname_specificity(Some("*.b.com"), "x.a.b.com")
                > hostname_specificity(Some("*.com"), "x.a.b.com")
        );
    }
}
