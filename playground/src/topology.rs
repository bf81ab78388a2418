//! How the objects relate, as nodes and edges for the page to draw: GatewayClass → Gateway →
//! listeners → routes (by hostname) → rules → backends.
//!
//! What a node shows comes from what the resolver decided, never from a second reading of the
//! objects: listeners and attachments from the PluginConfig (what the filter would run) and the
//! status conditions; a condition that is `False` makes its object red with the condition's reason
//! and message. Two problems no status can carry are shown too: a Gateway whose GatewayClass does
//! not exist, and a route whose parentRef names a Gateway that does not exist.

use std::collections::BTreeSet;

use serde::Serialize;

use engine::config::{
    Attachment, BackendRef, Filter, GrpcMatch, GrpcRule, Match, PathMatchType, Rule, ValueMatchType,
};
use gateway_resolver::Snapshot;
use gateway_resolver::api::Condition;
use gateway_resolver::resolution::{GatewayResult, ObjectKey, Resolution};

/// The columns of the diagram, left to right, with the node kinds each holds: routes of both
/// kinds share one column (a listener serves both).
pub const COLUMNS: [&[&str]; 6] = [
    &["GatewayClass"],
    &["Gateway"],
    &["Listener"],
    &["HTTPRoute", "GRPCRoute"],
    &["Rule"],
    &["Backend"],
];

#[derive(Debug, Default, Serialize)]
pub struct Topology {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

#[derive(Debug, Serialize)]
pub struct Node {
    /// `Kind:key`, unique.
    pub id: String,
    /// A kind of [`COLUMNS`].
    pub kind: &'static str,
    pub label: String,
    /// Short lines under the label (ports, hostnames, matches, filters).
    pub detail: Vec<String>,
    /// False when the object is rejected or has an unresolved reference.
    pub ok: bool,
    /// Why not ok: `Condition: Reason — message`.
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub label: Option<String>,
    pub ok: bool,
    pub problem: Option<String>,
}

/// Conditions whose `True` is the bad news (spec: "abnormal-true" polarity).
const ABNORMAL_TRUE: [&str; 3] = ["Conflicted", "PartiallyInvalid", "OverlappingTLSConfig"];

/// The conditions that report a problem (`False`, or `True` for [`ABNORMAL_TRUE`] types), as
/// `Type: Reason — message`.
fn failed(conditions: &[Condition]) -> Vec<String> {
    conditions
        .iter()
        .filter(|c| {
            if ABNORMAL_TRUE.contains(&c.type_.as_str()) {
                c.status == "True"
            } else {
                c.status == "False"
            }
        })
        .map(|c| {
            if c.message.is_empty() {
                format!("{}: {}", c.type_, c.reason)
            } else {
                format!("{}: {} — {}", c.type_, c.reason, c.message)
            }
        })
        .collect()
}

struct Builder {
    topology: Topology,
    ids: BTreeSet<String>,
}

impl Builder {
    /// Adds a node once; a second call with the same id adds its problems to the first.
    fn node(
        &mut self,
        kind: &'static str,
        key: &str,
        label: String,
        detail: Vec<String>,
    ) -> String {
        let id = format!("{kind}:{key}");
        if self.ids.insert(id.clone()) {
            self.topology.nodes.push(Node {
                id: id.clone(),
                kind,
                label,
                detail,
                ok: true,
                problems: Vec::new(),
            });
        }
        id
    }

    /// [`Builder::node`] followed by [`Builder::problems`]: the shape of every node drawn from an
    /// object's status.
    fn node_with_problems(
        &mut self,
        kind: &'static str,
        key: &str,
        label: String,
        detail: Vec<String>,
        problems: Vec<String>,
    ) -> String {
        let id = self.node(kind, key, label, detail);
        self.problems(&id, problems);
        id
    }

    fn problems(&mut self, id: &str, problems: Vec<String>) {
        if let Some(node) = self.topology.nodes.iter_mut().find(|n| n.id == id) {
            for problem in problems {
                if !node.problems.contains(&problem) {
                    node.problems.push(problem);
                }
            }
            node.ok = node.problems.is_empty();
        }
    }

    fn edge(&mut self, from: &str, to: &str, label: Option<String>, problem: Option<String>) {
        let duplicate = self
            .topology
            .edges
            .iter()
            .any(|e| e.from == from && e.to == to && e.label == label);
        if !duplicate {
            self.topology.edges.push(Edge {
                from: from.to_owned(),
                to: to.to_owned(),
                label,
                ok: problem.is_none(),
                problem,
            });
        }
    }
}

fn match_text(m: &Match) -> String {
    let mut parts = Vec::new();
    if let Some(method) = &m.method {
        parts.push(method.clone());
    }
    match &m.path {
        Some(path) => parts.push(match path.kind {
            PathMatchType::Exact => format!("= {}", path.value),
            PathMatchType::PathPrefix => format!("{}/*", path.value.trim_end_matches('/')),
            PathMatchType::RegularExpression => format!("~ {}", path.value),
        }),
        None => parts.push("/*".to_owned()),
    }
    for header in &m.headers {
        parts.push(format!("{}: {}", header.name, header.value));
    }
    for query in &m.query_params {
        parts.push(format!("?{}={}", query.name, query.value));
    }
    parts.join(" ")
}

fn filter_text(filter: &Filter) -> String {
    match filter {
        Filter::RequestHeaderModifier { .. } => "request headers".to_owned(),
        Filter::ResponseHeaderModifier { .. } => "response headers".to_owned(),
        Filter::RequestRedirect { request_redirect } => format!(
            "redirect {}",
            request_redirect.status_code.map_or(302, |s| s)
        ),
        Filter::UrlRewrite { .. } => "rewrite".to_owned(),
        Filter::RequestMirror { .. } => "mirror".to_owned(),
        Filter::Cors { .. } => "CORS".to_owned(),
        Filter::Unresolved { reason } => format!("unresolved filter ({reason})"),
    }
}

/// A rule's lines: its matches (`everything` when it has none), then its filters.
fn rule_lines(mut matches: Vec<String>, everything: &str, filters: &[Filter]) -> Vec<String> {
    if matches.is_empty() {
        matches.push(everything.to_owned());
    }
    let filters: Vec<String> = filters.iter().map(filter_text).collect();
    if !filters.is_empty() {
        matches.push(format!("⇒ {}", filters.join(", ")));
    }
    matches
}

fn rule_detail(rule: &Rule) -> Vec<String> {
    rule_lines(
        rule.matches.iter().map(match_text).collect(),
        "/*",
        &rule.filters,
    )
}

/// A GRPCRoute match: `Service/Method` (`*` for an absent part, `~` before regular expressions),
/// then its header matches.
fn grpc_match_text(m: &GrpcMatch) -> String {
    let mut parts = Vec::new();
    match &m.method {
        Some(method) => {
            let rpc = format!(
                "{}/{}",
                method.service.as_deref().unwrap_or("*"),
                method.method.as_deref().unwrap_or("*")
            );
            parts.push(match method.kind {
                ValueMatchType::Exact => rpc,
                ValueMatchType::RegularExpression => format!("~ {rpc}"),
            });
        }
        None => parts.push("any RPC".to_owned()),
    }
    for header in &m.headers {
        parts.push(format!("{}: {}", header.name, header.value));
    }
    parts.join(" ")
}

fn grpc_rule_detail(rule: &GrpcRule) -> Vec<String> {
    rule_lines(
        rule.matches.iter().map(grpc_match_text).collect(),
        "any RPC",
        &rule.filters,
    )
}

fn gateway(b: &mut Builder, snapshot: &Snapshot, result: &GatewayResult) {
    let key = result.gateway.to_string();
    let spec = snapshot
        .gateways
        .iter()
        .find(|g| ObjectKey::of(&g.metadata) == result.gateway);
    let class = spec.map(|g| g.spec.gateway_class_name.clone());
    let gateway_id = b.node_with_problems(
        "Gateway",
        &key,
        key.clone(),
        Vec::new(),
        failed(result.status.conditions.as_deref().unwrap_or_default()),
    );
    if let Some(class) = class {
        let class_id = b.node("GatewayClass", &class, class.clone(), Vec::new());
        b.edge(&class_id, &gateway_id, None, None);
    }

    let statuses = result.status.listeners.as_deref().unwrap_or_default();
    let mut listed = BTreeSet::new();
    for listener in &result.config.listeners {
        listed.insert(listener.name.clone());
        let detail = vec![format!(
            "{} :{}{}",
            listener.protocol.scheme().to_ascii_uppercase(),
            listener.port,
            listener
                .hostname
                .as_ref()
                .map_or_else(String::new, |h| format!(" {h}"))
        )];
        let problems = statuses
            .iter()
            .find(|s| s.name == listener.name)
            .map_or_else(Vec::new, |status| failed(&status.conditions));
        let id = b.node_with_problems(
            "Listener",
            &format!("{key}/{}", listener.name),
            listener.name.clone(),
            detail,
            problems,
        );
        b.edge(&gateway_id, &id, None, None);
    }
    // Listeners the filter does not get (rejected, or of a protocol it does not serve).
    for status in statuses.iter().filter(|s| !listed.contains(&s.name)) {
        let mut problems = failed(&status.conditions);
        if problems.is_empty() {
            problems.push("not in the filter's configuration".to_owned());
        }
        let id = b.node_with_problems(
            "Listener",
            &format!("{key}/{}", status.name),
            status.name.clone(),
            vec!["not served".to_owned()],
            problems,
        );
        b.edge(&gateway_id, &id, None, Some("not served".to_owned()));
    }

    for route in &result.config.routes {
        let key = format!("{}/{}", route.namespace, route.name);
        let rules = route.rules.iter().map(RuleShape::from).collect();
        route_nodes(b, result, "HTTPRoute", &key, &route.parents, rules);
    }
    for route in &result.config.grpc_routes {
        let key = format!("{}/{}", route.namespace, route.name);
        let rules = route.rules.iter().map(RuleShape::from).collect();
        route_nodes(b, result, "GRPCRoute", &key, &route.parents, rules);
    }
}

/// One rule of a route of either kind, as the diagram draws it.
struct RuleShape<'c> {
    name: Option<&'c str>,
    detail: Vec<String>,
    backend_refs: &'c [BackendRef],
}

impl<'c> From<&'c Rule> for RuleShape<'c> {
    fn from(rule: &'c Rule) -> Self {
        RuleShape {
            name: rule.name.as_deref(),
            detail: rule_detail(rule),
            backend_refs: &rule.backend_refs,
        }
    }
}

impl<'c> From<&'c GrpcRule> for RuleShape<'c> {
    fn from(rule: &'c GrpcRule) -> Self {
        RuleShape {
            name: rule.name.as_deref(),
            detail: grpc_rule_detail(rule),
            backend_refs: &rule.backend_refs,
        }
    }
}

/// The id of a route's rule: `Rule:ns/name/index` for an HTTPRoute, `Rule:GRPCRoute:ns/name/index`
/// for a GRPCRoute (the two kinds may share a name).
pub fn rule_key(kind: &str, route_key: &str, index: usize) -> String {
    if kind == "HTTPRoute" {
        format!("{route_key}/{index}")
    } else {
        format!("{kind}:{route_key}/{index}")
    }
}

/// A route's node; its kind is its detail line, since both kinds share the column.
fn route_node(b: &mut Builder, kind: &'static str, route_key: &str) -> String {
    b.node(kind, route_key, route_key.to_owned(), vec![kind.to_owned()])
}

/// A route's node, its edges from the listeners it is attached to (labelled with its effective
/// hostnames there), its rules and their backends.
fn route_nodes(
    b: &mut Builder,
    result: &GatewayResult,
    kind: &'static str,
    route_key: &str,
    parents: &[Attachment],
    rules: Vec<RuleShape<'_>>,
) {
    let gateway_key = result.gateway.to_string();
    let route_id = route_node(b, kind, route_key);
    for parent in parents {
        let hosts = if parent.hostnames.is_empty() {
            "any host".to_owned()
        } else {
            parent.hostnames.join(", ")
        };
        let listener_id = format!("Listener:{gateway_key}/{}", parent.listener);
        b.edge(&listener_id, &route_id, Some(hosts), None);
    }
    for (index, rule) in rules.into_iter().enumerate() {
        let label = match rule.name {
            Some(name) => format!("rules[{index}] {name}"),
            None => format!("rules[{index}]"),
        };
        let rule_id = b.node(
            "Rule",
            &rule_key(kind, route_key, index),
            label,
            rule.detail,
        );
        b.edge(&route_id, &rule_id, None, None);
        let split = rule.backend_refs.len() > 1;
        for backend_ref in rule.backend_refs {
            let backend = result.config.backends.get(&backend_ref.backend);
            let invalid = backend.and_then(|b| b.invalid.as_ref());
            let label = match invalid {
                // Invalid backends are keyed `invalid:<reason>:<ref>`: show the reference.
                Some(invalid) => backend_ref
                    .backend
                    .strip_prefix(&format!("invalid:{}:", invalid.reason))
                    .unwrap_or(&backend_ref.backend)
                    .to_owned(),
                None => backend_ref.backend.clone(),
            };
            let backend_id = b.node("Backend", &backend_ref.backend, label, Vec::new());
            let problem = invalid.map(|i| {
                if i.message.is_empty() {
                    format!("ResolvedRefs: {}", i.reason)
                } else {
                    format!("ResolvedRefs: {} — {}", i.reason, i.message)
                }
            });
            if let Some(problem) = &problem {
                b.problems(&backend_id, vec![problem.clone()]);
            }
            let weight = split.then(|| format!("weight {}", backend_ref.weight));
            b.edge(&rule_id, &backend_id, weight, problem);
        }
    }
}

/// The diagram's nodes and edges for a resolution.
pub fn build(snapshot: &Snapshot, resolution: &Resolution, controller: &str) -> Topology {
    let mut b = Builder {
        topology: Topology::default(),
        ids: BTreeSet::new(),
    };
    for class in &resolution.gateway_classes {
        b.node_with_problems(
            "GatewayClass",
            &class.class,
            class.class.clone(),
            Vec::new(),
            failed(class.status.conditions.as_deref().unwrap_or_default()),
        );
    }
    for result in &resolution.gateways {
        gateway(&mut b, snapshot, result);
    }

    // Gateways whose class does not exist: nobody will report their status.
    let classes: BTreeSet<&str> = snapshot
        .gateway_classes
        .iter()
        .filter_map(|c| c.metadata.name.as_deref())
        .collect();
    for gw in &snapshot.gateways {
        if !classes.contains(gw.spec.gateway_class_name.as_str()) {
            let key = ObjectKey::of(&gw.metadata).to_string();
            b.node_with_problems(
                "Gateway",
                &key,
                key.clone(),
                Vec::new(),
                vec![format!(
                    "GatewayClass {} does not exist; no controller programs this Gateway",
                    gw.spec.gateway_class_name
                )],
            );
        }
    }

    // Route status: parents that did not accept the route, references that did not resolve.
    for update in &resolution.routes {
        let route_key = update.route.to_string();
        let route_id = route_node(&mut b, update.kind.as_str(), &route_key);
        for parent in update
            .status
            .parents
            .iter()
            .filter(|p| p.controller_name == controller)
        {
            let parent_key = format!(
                "{}/{}",
                parent
                    .parent_ref
                    .namespace
                    .clone()
                    .unwrap_or_else(|| update.route.namespace.clone()),
                parent.parent_ref.name
            );
            let section = parent
                .parent_ref
                .section_name
                .as_ref()
                .map_or_else(String::new, |s| format!(" ({s})"));
            let problems: Vec<String> = failed(&parent.conditions)
                .into_iter()
                .map(|p| format!("parent {parent_key}{section}: {p}"))
                .collect();
            let rejected = crate::view::condition(&parent.conditions, "Accepted")
                .is_some_and(|c| c.status == "False");
            if rejected {
                let gateway_id = format!("Gateway:{parent_key}");
                b.edge(
                    &gateway_id,
                    &route_id,
                    Some(format!("not attached{section}")),
                    problems.first().cloned(),
                );
            }
            b.problems(&route_id, problems);
        }
    }

    // Routes whose parentRef names a Gateway that does not exist.
    for (kind, key, target) in snapshot.routes_to_missing_gateways() {
        let id = route_node(&mut b, kind, &key.to_string());
        b.problems(
            &id,
            vec![format!(
                "parentRef Gateway {target} does not exist; no controller reports status for it"
            )],
        );
    }
    b.topology
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::bundle;
    use gateway_resolver::{Settings, resolve};

    const BASE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/topology.yaml"
    ));

    fn topology(text: &str) -> Topology {
        let loaded = bundle::load(text).unwrap();
        let settings = Settings::default();
        build(
            &loaded.snapshot,
            &resolve(&loaded.snapshot, &settings),
            &settings.controller_name,
        )
    }

    fn node<'t>(t: &'t Topology, id: &str) -> &'t Node {
        t.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id} in {:#?}", t.nodes))
    }

    #[test]
    fn the_chain_from_class_to_backend_is_drawn() {
        let t = topology(BASE);
        for id in [
            "GatewayClass:ours",
            "Gateway:infra/edge",
            "Listener:infra/edge/web",
            "Rule:app/shop/0",
            "Backend:app/cart:8080",
        ] {
            assert!(node(&t, id).ok, "{id}: {:?}", node(&t, id).problems);
        }
        assert_eq!(
            node(&t, "Listener:infra/edge/web").detail,
            ["HTTP :80 *.example.com"]
        );
        assert_eq!(node(&t, "Rule:app/shop/0").label, "rules[0] main");
        assert_eq!(node(&t, "Rule:app/shop/0").detail, ["/cart/*"]);
        let edge = t
            .edges
            .iter()
            .find(|e| e.from == "Listener:infra/edge/web" && e.to == "HTTPRoute:app/shop")
            .unwrap();
        assert_eq!(edge.label.as_deref(), Some("shop.example.com"));
        let weights: Vec<_> = t
            .edges
            .iter()
            .filter(|e| e.from == "Rule:app/shop/0")
            .map(|e| (e.label.clone().unwrap(), e.ok))
            .collect();
        assert_eq!(
            weights,
            [
                ("weight 3".to_owned(), true),
                ("weight 1".to_owned(), false)
            ]
        );
    }

    #[test]
    fn rejected_objects_and_unresolved_refs_are_red_with_their_reason() {
        let t = topology(BASE);
        let missing = t
            .nodes
            .iter()
            .find(|n| n.kind == "Backend" && n.label == "app/nowhere:8080")
            .unwrap();
        assert!(!missing.ok);
        assert!(
            missing.problems[0].contains("BackendNotFound"),
            "{:?}",
            missing.problems
        );
        let shop = node(&t, "HTTPRoute:app/shop");
        assert!(
            shop.problems
                .iter()
                .any(|p| p.contains("ResolvedRefs: BackendNotFound")),
            "{:?}",
            shop.problems
        );
        let lost = node(&t, "HTTPRoute:app/lost");
        assert!(lost.problems[0].contains("parentRef Gateway infra/missing does not exist"));
        let elsewhere = node(&t, "HTTPRoute:app/elsewhere");
        assert!(
            elsewhere
                .problems
                .iter()
                .any(|p| p.contains("Accepted: NoMatchingListenerHostname")),
            "{:?}",
            elsewhere.problems
        );
        let edge = t
            .edges
            .iter()
            .find(|e| e.to == "HTTPRoute:app/elsewhere")
            .unwrap();
        assert!(!edge.ok);

        let t = topology(&BASE.replace("gatewayClassName: ours", "gatewayClassName: theirs"));
        let gw = node(&t, "Gateway:infra/edge");
        assert!(gw.problems[0].contains("GatewayClass theirs does not exist"));
    }

    /// GRPCRoutes on the same listener; `shop` shares its name with the HTTPRoute in [`BASE`].
    const GRPC: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/topology-grpc.yaml"
    ));

    #[test]
    fn grpc_routes_share_the_route_column_with_their_own_rules_and_problems() {
        let t = topology(&format!("{BASE}{GRPC}"));
        for node in &t.nodes {
            assert!(
                COLUMNS.iter().any(|kinds| kinds.contains(&node.kind)),
                "{} has no column",
                node.id
            );
        }
        let route = node(&t, "GRPCRoute:app/shop");
        assert!(
            route
                .problems
                .iter()
                .any(|p| p.contains("ResolvedRefs: BackendNotFound")),
            "{:?}",
            route.problems
        );
        // Its rules are its own, not the HTTPRoute of the same name's.
        let rule = node(&t, "Rule:GRPCRoute:app/shop/0");
        assert_eq!(rule.label, "rules[0] carts");
        assert_eq!(
            rule.detail,
            [
                "shop.v1.Cart/Add x-tenant: a",
                "~ */Get.*",
                "⇒ request headers"
            ]
        );
        assert_eq!(node(&t, "Rule:GRPCRoute:app/shop/1").detail, ["any RPC"]);
        assert_eq!(node(&t, "Rule:app/shop/0").label, "rules[0] main");
        let edge = |from: &str, to: &str| {
            t.edges
                .iter()
                .find(|e| e.from == from && e.to == to)
                .unwrap_or_else(|| panic!("no edge {from} → {to} in {:#?}", t.edges))
        };
        assert_eq!(
            edge("Listener:infra/edge/web", "GRPCRoute:app/shop")
                .label
                .as_deref(),
            Some("rpc.example.com")
        );
        // gRPC backends are keyed apart (the proxy speaks HTTP/2 to them).
        assert!(edge("Rule:GRPCRoute:app/shop/0", "Backend:grpc:app/cart:8080").ok);
        let gone = t
            .edges
            .iter()
            .find(|e| e.from == "Rule:GRPCRoute:app/shop/1")
            .unwrap();
        assert!(!gone.ok, "{gone:?}");
        let stray = node(&t, "GRPCRoute:app/stray");
        assert!(
            stray.problems[0].contains("parentRef Gateway infra/missing does not exist"),
            "{:?}",
            stray.problems
        );
    }
}
