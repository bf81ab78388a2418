//! A Gateway's listeners: its own, merged with those of the ListenerSets it allows, validated and
//! checked for conflicts.
//!
//! Spec (ListenerSetSpec.listeners): "Implementations MUST treat the parent Gateway as having the
//! merged list of all listeners from itself and attached ListenerSets using the following
//! precedence: 1. "parent" Gateway 2. ListenerSet ordered by creation time (oldest first)
//! 3. ListenerSet ordered alphabetically by "{namespace}/{name}"."

use crate::api::gateways::{
    Gateway, GatewayAllowedListenersNamespacesFrom, GatewayListeners,
    GatewayListenersAllowedRoutesNamespacesFrom, GatewayListenersTlsMode,
};
use crate::api::listenersets::{
    ListenerSet, ListenerSetListeners, ListenerSetListenersAllowedRoutesNamespacesFrom,
    ListenerSetListenersTlsMode,
};

use super::classes::Classes;
use super::conditions::{Problem, gateway as reason};
use super::routes::RouteKind;
use super::selectors::{Selector, selector_from};
use super::{Lookup, key, name, namespace, tls};
use crate::api::GATEWAY_GROUP;
use crate::resolution::{ObjectKey, TlsCertificate};

/// Which object defines a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    Gateway,
    /// Index into [`GatewayModel::listener_sets`]; lower indices have higher precedence.
    ListenerSet(usize),
}

/// `allowedRoutes.namespaces.from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromNamespaces {
    Same,
    All,
    /// `None` when the selector is missing: it then selects nothing.
    Selector(Option<Selector>),
}

/// A TLS certificateRef, defaults not applied.
#[derive(Debug, Clone)]
pub struct CertRef {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub name: String,
    pub namespace: Option<String>,
}

/// One listener, whatever object defined it.
#[derive(Debug, Clone)]
pub struct ListenerModel {
    pub owner: Owner,
    /// The owner's namespace: `from: Same` and certificateRef defaults refer to it.
    pub namespace: String,
    /// The listener's own name (a parentRef `sectionName` selects it).
    pub section_name: String,
    /// Unique within the Gateway's PluginConfig: the listener name for the Gateway's own
    /// listeners, `<namespace>/<listenerset>/<name>` for ListenerSet listeners.
    pub config_name: String,
    pub port: i32,
    pub protocol: String,
    pub hostname: Option<String>,
    pub from: FromNamespaces,
    /// `(group, kind)` pairs routes may have; empty when none of ours.
    pub supported_kinds: Vec<(String, String)>,
    pub accepted: Result<(), Problem>,
    pub conflicted: Option<Problem>,
    /// Certificate problems (they keep the listener off the data plane).
    pub tls_problem: Option<Problem>,
    /// `allowedRoutes.kinds` entries we do not support (the valid ones still apply).
    pub kinds_problem: Option<Problem>,
    pub certificates: Vec<TlsCertificate>,
    /// Routes with Accepted=True attached here (filled by the attachment step).
    pub attached_routes: i32,
}

impl ListenerModel {
    /// Whether the listener goes into the PluginConfig.
    pub fn programmed(&self) -> bool {
        self.accepted.is_ok() && self.conflicted.is_none() && self.tls_problem.is_none()
    }

    pub fn allows_kind(&self, group: &str, kind: &str) -> bool {
        self.supported_kinds
            .iter()
            .any(|(g, k)| g == group && k == kind)
    }

    /// ResolvedRefs: certificate problems first, then route kinds.
    pub fn resolved_refs(&self) -> Result<(), Problem> {
        match self.tls_problem.as_ref().or(self.kinds_problem.as_ref()) {
            Some(p) => Err(p.clone()),
            None => Ok(()),
        }
    }

    pub fn engine_protocol(&self) -> Option<engine::config::Protocol> {
        match self.protocol.as_str() {
            "HTTP" => Some(engine::config::Protocol::Http),
            "HTTPS" => Some(engine::config::Protocol::Https),
            _ => None,
        }
    }
}

/// A ListenerSet whose parentRef is this Gateway.
#[derive(Debug, Clone)]
pub struct ListenerSetModel<'a> {
    pub object: &'a ListenerSet,
    pub key: ObjectKey,
    /// Whether its listeners join the Gateway: the Gateway's `allowedListeners` selects it and
    /// its listener names are unique.
    pub allowed: Result<(), Problem>,
}

/// One Gateway of ours with its merged listeners.
#[derive(Debug, Clone)]
pub struct GatewayModel<'a> {
    pub object: &'a Gateway,
    pub key: ObjectKey,
    /// The class is accepted and the Gateway takes no parameters we cannot honour.
    pub accepted: Result<(), Problem>,
    pub listeners: Vec<ListenerModel>,
    pub listener_sets: Vec<ListenerSetModel<'a>>,
}

impl GatewayModel<'_> {
    /// Listeners defined by `owner`.
    pub fn listeners_of(&self, owner: Owner) -> impl Iterator<Item = (usize, &ListenerModel)> {
        self.listeners
            .iter()
            .enumerate()
            .filter(move |(_, l)| l.owner == owner)
    }
}

/// Every Gateway whose class is ours, sorted by `namespace/name`.
pub fn gateways<'a>(lookup: &Lookup<'a>, classes: &Classes) -> Vec<GatewayModel<'a>> {
    let mut out: Vec<GatewayModel<'a>> = lookup
        .snapshot
        .gateways
        .iter()
        // The data plane names its Gateway `namespace/name`; objects without both cannot be served.
        .filter(|g| !name(&g.metadata).is_empty() && !namespace(&g.metadata).is_empty())
        .filter_map(|g| {
            let class = classes.get(&g.spec.gateway_class_name)?;
            Some(gateway(lookup, g, class))
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

fn gateway<'a>(
    lookup: &Lookup<'a>,
    object: &'a Gateway,
    class: &Result<(), Problem>,
) -> GatewayModel<'a> {
    let gw_key = key(&object.metadata);
    let repeated = duplicate_names(object.spec.listeners.iter().map(|l| l.name.as_str()));
    let accepted = match (class, &object.spec.infrastructure) {
        (Err(p), _) => Err(Problem::new(
            reason::INVALID_PARAMETERS,
            format!(
                "GatewayClass {} is not accepted: {}",
                object.spec.gateway_class_name, p.message
            ),
        )),
        (Ok(()), Some(infra)) if infra.parameters_ref.is_some() => Err(Problem::new(
            reason::INVALID_PARAMETERS,
            "infrastructure.parametersRef: this controller takes no parameters",
        )),
        _ => Ok(()),
    }
    .and_then(|()| refuse_repeated_names("Gateway", &repeated));

    let mut listeners: Vec<ListenerModel> = object
        .spec
        .listeners
        .iter()
        .map(|l| from_gateway_listener(lookup, &gw_key, l))
        .collect();

    let mut listener_sets: Vec<ListenerSetModel<'a>> = lookup
        .snapshot
        .listener_sets
        .iter()
        .filter(|s| targets(s, &gw_key))
        .map(|s| ListenerSetModel {
            object: s,
            key: key(&s.metadata),
            allowed: allowed_listener_set(lookup, object, s).and_then(|()| {
                let names = s.spec.listeners.iter().map(|l| l.name.as_str());
                refuse_repeated_names("ListenerSet", &duplicate_names(names))
            }),
        })
        .collect();
    // "ListenerSet ordered by creation time (oldest first)", then "alphabetically by
    // {namespace}/{name}". A missing timestamp sorts last.
    listener_sets.sort_by(|a, b| {
        let ta = a.object.metadata.creation_timestamp.as_ref();
        let tb = b.object.metadata.creation_timestamp.as_ref();
        (ta.is_none(), ta, &a.key).cmp(&(tb.is_none(), tb, &b.key))
    });
    for (i, set) in listener_sets.iter().enumerate() {
        if set.allowed.is_err() {
            continue;
        }
        for l in &set.object.spec.listeners {
            listeners.push(from_listener_set_listener(lookup, i, &set.key, l));
        }
    }

    reject_duplicate_names(&mut listeners, &repeated);
    mark_conflicts(&mut listeners);
    GatewayModel {
        object,
        key: gw_key,
        accepted,
        listeners,
        listener_sets,
    }
}

/// ListenerSet `spec.parentRef`: "Namespace is the namespace of the referent. If not present, the
/// namespace of the referent is assumed to be the same as the namespace of the referring object."
fn targets(set: &ListenerSet, gateway: &ObjectKey) -> bool {
    let p = &set.spec.parent_ref;
    p.group.as_deref().unwrap_or(GATEWAY_GROUP) == GATEWAY_GROUP
        && p.kind.as_deref().unwrap_or("Gateway") == "Gateway"
        && p.name == gateway.name
        && p.namespace.as_deref().unwrap_or(namespace(&set.metadata)) == gateway.namespace
}

/// Gateway `allowedListeners`: "The default value is to allow no ListenerSets."
fn allowed_listener_set(
    lookup: &Lookup<'_>,
    gw: &Gateway,
    set: &ListenerSet,
) -> Result<(), Problem> {
    let namespaces = gw
        .spec
        .allowed_listeners
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    let set_ns = namespace(&set.metadata);
    let allowed = match namespaces.and_then(|n| n.from.as_ref()) {
        None | Some(GatewayAllowedListenersNamespacesFrom::None) => false,
        Some(GatewayAllowedListenersNamespacesFrom::All) => true,
        Some(GatewayAllowedListenersNamespacesFrom::Same) => set_ns == namespace(&gw.metadata),
        Some(GatewayAllowedListenersNamespacesFrom::Selector) => namespaces
            .and_then(|n| n.selector.as_ref())
            .is_some_and(|s| selector_from!(s).matches(&lookup.namespace_labels(set_ns))),
    };
    if allowed {
        Ok(())
    } else {
        Err(Problem::new(
            reason::NOT_ALLOWED,
            format!(
                "Gateway {}/{} does not allow ListenerSets from namespace {set_ns}",
                namespace(&gw.metadata),
                name(&gw.metadata)
            ),
        ))
    }
}

/// The listener fields both listener types share, defaults not yet applied.
struct RawListener<'a> {
    name: &'a str,
    port: i32,
    protocol: &'a str,
    hostname: Option<&'a str>,
    tls: Option<RawTls>,
    from: FromNamespaces,
    kinds: Option<Vec<(Option<String>, String)>>,
}

struct RawTls {
    passthrough: bool,
    certificate_refs: Vec<CertRef>,
}

/// Reads the fields both generated listener types share (`GatewayListeners`,
/// `ListenerSetListeners`), given the names of their `from` and TLS mode enums.
macro_rules! raw_listener {
    ($l:expr, $from:ident, $mode:ident) => {{
        let l = $l;
        let namespaces = l
            .allowed_routes
            .as_ref()
            .and_then(|a| a.namespaces.as_ref());
        let from = match namespaces.and_then(|n| n.from.as_ref()) {
            // "This is restricted to the namespace of this Gateway by default."
            None | Some($from::Same) => FromNamespaces::Same,
            Some($from::All) => FromNamespaces::All,
            Some($from::Selector) => FromNamespaces::Selector(
                namespaces
                    .and_then(|n| n.selector.as_ref())
                    .map(|s| selector_from!(s)),
            ),
        };
        RawListener {
            name: &l.name,
            port: l.port,
            protocol: &l.protocol,
            hostname: l.hostname.as_deref(),
            tls: l.tls.as_ref().map(|t| RawTls {
                passthrough: t.mode == Some($mode::Passthrough),
                certificate_refs: t
                    .certificate_refs
                    .iter()
                    .flatten()
                    .map(|r| CertRef {
                        group: r.group.clone(),
                        kind: r.kind.clone(),
                        name: r.name.clone(),
                        namespace: r.namespace.clone(),
                    })
                    .collect(),
            }),
            from,
            kinds: l.allowed_routes.as_ref().and_then(|a| {
                a.kinds.as_ref().map(|k| {
                    k.iter()
                        .map(|k| (k.group.clone(), k.kind.clone()))
                        .collect()
                })
            }),
        }
    }};
}

fn from_gateway_listener(
    lookup: &Lookup<'_>,
    gw: &ObjectKey,
    l: &GatewayListeners,
) -> ListenerModel {
    let raw = raw_listener!(
        l,
        GatewayListenersAllowedRoutesNamespacesFrom,
        GatewayListenersTlsMode
    );
    let referrer = tls::Referrer {
        kind: "Gateway",
        namespace: &gw.namespace,
    };
    build(
        lookup,
        Owner::Gateway,
        &gw.namespace,
        l.name.clone(),
        raw,
        referrer,
    )
}

fn from_listener_set_listener(
    lookup: &Lookup<'_>,
    set_index: usize,
    set: &ObjectKey,
    l: &ListenerSetListeners,
) -> ListenerModel {
    let raw = raw_listener!(
        l,
        ListenerSetListenersAllowedRoutesNamespacesFrom,
        ListenerSetListenersTlsMode
    );
    let referrer = tls::Referrer {
        kind: "ListenerSet",
        namespace: &set.namespace,
    };
    let config_name = format!("{}/{}/{}", set.namespace, set.name, l.name);
    build(
        lookup,
        Owner::ListenerSet(set_index),
        &set.namespace,
        config_name,
        raw,
        referrer,
    )
}

/// Validates one listener (everything but conflicts, which need all of them).
fn build(
    lookup: &Lookup<'_>,
    owner: Owner,
    owner_namespace: &str,
    config_name: String,
    raw: RawListener<'_>,
    referrer: tls::Referrer<'_>,
) -> ListenerModel {
    let http_family = matches!(raw.protocol, "HTTP" | "HTTPS");
    let hostname = raw.hostname.filter(|h| !h.is_empty()).map(str::to_owned);

    // "If kinds are specified in Spec that are not supported, they MUST NOT appear in this list and
    // an implementation MUST set the "ResolvedRefs" condition to "False" with the
    // "InvalidRouteKinds" reason. If both valid and invalid Route kinds are specified, the
    // implementation MUST reference the valid Route kinds that have been specified."
    //
    // HTTP and HTTPS listeners serve HTTPRoutes and GRPCRoutes (GRPCRoute: "Implementations
    // supporting `GRPCRoute` with the `HTTPS` `ProtocolType` MUST accept HTTP/2 connections
    // without an initial upgrade from HTTP/1.1, i.e. via ALPN" and, for `HTTP`, "MUST support
    // HTTP/2 over cleartext TCP (h2c ...) ... with prior knowledge": the rendered Envoy listeners
    // do both).
    let served = |group: &str, kind: &str| {
        http_family
            && RouteKind::ALL
                .iter()
                .any(|r| r.group_kind() == (group, kind))
    };
    let mut supported_kinds: Vec<(String, String)> = Vec::new();
    let mut unsupported = Vec::new();
    match raw.kinds.filter(|k| !k.is_empty()) {
        // "When unspecified or empty, the kinds of Routes selected are determined using the
        // Listener protocol."
        None => {
            if http_family {
                supported_kinds.extend(RouteKind::ALL.iter().map(|r| {
                    let (group, kind) = r.group_kind();
                    (group.to_owned(), kind.to_owned())
                }));
            }
        }
        Some(kinds) => {
            for (group, kind) in kinds {
                // RouteGroupKind.group: "+kubebuilder:default=gateway.networking.k8s.io".
                let group = group.unwrap_or_else(|| GATEWAY_GROUP.to_owned());
                if served(&group, &kind) {
                    if !supported_kinds.contains(&(group.clone(), kind.clone())) {
                        supported_kinds.push((group, kind));
                    }
                } else {
                    unsupported.push(format!("{group}/{kind}"));
                }
            }
        }
    }
    let kinds_problem = (!unsupported.is_empty()).then(|| {
        Problem::new(
            reason::INVALID_ROUTE_KINDS,
            format!(
                "route kinds not supported on a {} listener: {}",
                raw.protocol,
                unsupported.join(", ")
            ),
        )
    });

    let accepted = if raw.name.is_empty() {
        Err(Problem::new(reason::INVALID, "a listener needs a name"))
    } else if !http_family {
        Err(Problem::new(
            reason::UNSUPPORTED_PROTOCOL,
            format!(
                "protocol {} is not supported: this data plane serves HTTP and HTTPS",
                raw.protocol
            ),
        ))
    } else if !(1..=65535).contains(&raw.port) {
        Err(Problem::new(
            reason::PORT_UNAVAILABLE,
            format!("port {} is not a valid port number", raw.port),
        ))
    } else if let Some((h, why)) = hostname
        .as_deref()
        .and_then(|h| Some((h, engine::check_hostname(h).err()?)))
    {
        Err(Problem::new(
            reason::INVALID,
            format!("hostname {h:?} is not valid: {why}"),
        ))
    } else if raw.protocol == "HTTPS" && raw.tls.as_ref().is_some_and(|t| t.passthrough) {
        Err(Problem::new(
            reason::UNSUPPORTED_PROTOCOL,
            "HTTPS listeners terminate TLS; Passthrough needs protocol TLS",
        ))
    } else {
        Ok(())
    };

    let (certificates, tls_problem) = if raw.protocol == "HTTPS" && accepted.is_ok() {
        let refs = raw.tls.map(|t| t.certificate_refs).unwrap_or_default();
        tls::resolve(lookup, owner_namespace, &refs, referrer)
    } else {
        (Vec::new(), None)
    };

    ListenerModel {
        owner,
        namespace: owner_namespace.to_owned(),
        section_name: raw.name.to_owned(),
        config_name,
        port: raw.port,
        protocol: raw.protocol.to_owned(),
        hostname: hostname.map(|h| h.to_ascii_lowercase()),
        from: raw.from,
        supported_kinds,
        accepted,
        conflicted: None,
        tls_problem,
        kinds_problem,
        certificates,
        attached_routes: 0,
    }
}

/// Listener names used more than once in one object's `spec.listeners`, in order of first use,
/// each with the indices of the listeners that use it.
fn duplicate_names<'n>(names: impl Iterator<Item = &'n str>) -> Vec<(&'n str, Vec<usize>)> {
    let mut uses: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, name) in names.enumerate() {
        match uses.iter_mut().find(|(n, _)| *n == name) {
            Some((_, at)) => at.push(i),
            None => uses.push((name, vec![i])),
        }
    }
    uses.retain(|(_, at)| at.len() > 1);
    uses
}

/// `"twin" at spec.listeners[5] and spec.listeners[6]`.
fn describe_duplicate(name: &str, at: &[usize]) -> String {
    let fields: Vec<String> = at.iter().map(|i| format!("spec.listeners[{i}]")).collect();
    format!("{name:?} at {}", fields.join(" and "))
}

/// "Name is the name of the Listener. This name MUST be unique within a Gateway." (ListenerSet:
/// "This name MUST be unique within a ListenerSet.") The CRDs make `listeners` a map keyed by
/// name, so the API server never stores such an object; a manifest directory can still hold one.
/// Which listener a parentRef `sectionName` selects, and which `status.listeners` entry (also keyed
/// by name) belongs to which listener, are then undefined, so the whole object is refused as
/// syntactically invalid: reason "Invalid" ("used with the "Accepted" condition when the Gateway
/// is syntactically or semantically invalid").
fn refuse_repeated_names(what: &str, repeated: &[(&str, Vec<usize>)]) -> Result<(), Problem> {
    if repeated.is_empty() {
        return Ok(());
    }
    let described: Vec<String> = repeated
        .iter()
        .map(|(name, at)| describe_duplicate(name, at))
        .collect();
    Err(Problem::new(
        reason::INVALID,
        format!(
            "listener names must be unique within a {what}; repeated: {}",
            described.join("; ")
        ),
    ))
}

/// Marks each of the Gateway's own listeners whose name is `repeated` (the Gateway's
/// [`duplicate_names`]) as not accepted, so the one status entry written for that name says why.
fn reject_duplicate_names(listeners: &mut [ListenerModel], repeated: &[(&str, Vec<usize>)]) {
    for l in listeners.iter_mut().filter(|l| l.owner == Owner::Gateway) {
        if let Some((name, at)) = repeated.iter().find(|(n, _)| *n == l.section_name) {
            l.accepted = Err(Problem::new(
                reason::INVALID,
                format!(
                    "the listener name is not unique within the Gateway: {}",
                    describe_duplicate(name, at)
                ),
            ));
        }
    }
}

/// "Each Listener in a set of Listeners (for example, in a single Gateway) MUST be _distinct_ ...
/// The set of listeners that all share a protocol value MUST have _different_ values for _at least
/// one_ of these fields to be distinct: HTTP, HTTPS, TLS: Port, Hostname". Listeners sharing a port
/// with different protocols (HTTP vs HTTPS) conflict on protocol.
///
/// Within one object, "ALL indistinct Listeners must not be accepted". Across a Gateway and its
/// ListenerSets the merged list has a precedence order, so a listener only loses to one that comes
/// from a higher-precedence object (or from its own object).
fn mark_conflicts(listeners: &mut [ListenerModel]) {
    let mut marks: Vec<Option<Problem>> = vec![None; listeners.len()];
    for (i, a) in listeners.iter().enumerate() {
        if a.accepted.is_err() {
            continue;
        }
        for b in listeners.iter().filter(|b| b.accepted.is_ok()) {
            if std::ptr::eq(a, b) || b.owner > a.owner || a.port != b.port {
                continue;
            }
            let problem = if a.protocol != b.protocol {
                Problem::new(
                    reason::PROTOCOL_CONFLICT,
                    format!(
                        "port {} is also used by listener {:?} with protocol {}",
                        a.port, b.config_name, b.protocol
                    ),
                )
            } else if a.hostname == b.hostname {
                Problem::new(
                    reason::HOSTNAME_CONFLICT,
                    format!(
                        "listener {:?} uses the same port, protocol and hostname",
                        b.config_name
                    ),
                )
            } else {
                continue;
            };
            if let Some(slot) = marks.get_mut(i) {
                slot.get_or_insert(problem);
            }
        }
    }
    for (l, mark) in listeners.iter_mut().zip(marks) {
        l.conflicted = mark;
    }
}
