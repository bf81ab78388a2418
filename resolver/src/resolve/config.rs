//! The PluginConfig of one Gateway: its programmed listeners, the routes accepted on them with
//! their effective hostnames (HTTPRoutes in `routes`, GRPCRoutes in `grpcRoutes`), and every
//! backend those routes name.

use std::collections::BTreeMap;

use engine::config::{
    Attachment, GrpcRoute, Listener, ObjectRef, PluginConfig, Route, SCHEMA_VERSION,
    UpstreamSelector,
};

use super::attach::RouteResult;
use super::creation_timestamp;
use super::listeners::GatewayModel;
use super::rules::Rules;
use crate::resolution::{BackendTarget, TlsCertificate};

/// What a Gateway's data plane needs.
pub struct Built {
    pub config: PluginConfig,
    pub backends: BTreeMap<String, BackendTarget>,
    pub tls: BTreeMap<String, Vec<TlsCertificate>>,
}

/// Builds the config of Gateway number `gw_index`. An unaccepted Gateway gets an empty config (no
/// listeners), so nothing is served in its name.
pub fn build(gw_index: usize, gw: &GatewayModel<'_>, routes: &[RouteResult<'_>]) -> Built {
    let programmed = gw.accepted.is_ok();
    let mut listeners = Vec::new();
    let mut tls = BTreeMap::new();
    for l in gw.listeners.iter().filter(|l| programmed && l.programmed()) {
        let (Some(protocol), Ok(port)) = (l.engine_protocol(), u16::try_from(l.port)) else {
            continue;
        };
        // Names are unique by construction; a malformed object must not make the engine reject
        // the whole config.
        if listeners.iter().any(|x: &Listener| x.name == l.config_name) {
            continue;
        }
        listeners.push(Listener {
            name: l.config_name.clone(),
            port,
            protocol,
            hostname: l.hostname.clone(),
        });
        if !l.certificates.is_empty() {
            tls.insert(l.config_name.clone(), l.certificates.clone());
        }
    }

    let mut config_routes = Vec::new();
    let mut grpc_routes = Vec::new();
    let mut backends = BTreeMap::new();
    let mut targets = BTreeMap::new();
    for route in routes {
        let mut parents: Vec<Attachment> = Vec::new();
        for parent in route.parents.iter().filter(|p| p.gateway == gw_index) {
            let Ok(attached) = &parent.accepted else {
                continue;
            };
            for (l, hostnames) in attached {
                let Some(listener) = gw.listeners.get(*l) else {
                    continue;
                };
                if !listeners.iter().any(|x| x.name == listener.config_name)
                    || parents.iter().any(|a| a.listener == listener.config_name)
                {
                    continue;
                }
                parents.push(Attachment {
                    listener: listener.config_name.clone(),
                    hostnames: hostnames.clone(),
                });
            }
        }
        if parents.is_empty() {
            continue;
        }
        for (k, v) in &route.rules.backends.entries {
            backends.insert(k.clone(), v.clone());
        }
        for (k, v) in &route.rules.backends.targets {
            targets.insert(k.clone(), v.clone());
        }
        let namespace = route.key.namespace.clone();
        let name = route.key.name.clone();
        let creation_timestamp = creation_timestamp(route.object.meta());
        match &route.rules.rules {
            Rules::Http(rules) => config_routes.push(Route {
                namespace,
                name,
                creation_timestamp,
                parents,
                rules: rules.clone(),
            }),
            // Contract: "The resolver never emits a GRPCRoute that lost the HTTPRoute/GRPCRoute
            // hostname conflict on that listener": such listeners are no longer in `accepted`.
            Rules::Grpc(rules) => grpc_routes.push(GrpcRoute {
                namespace,
                name,
                creation_timestamp,
                parents,
                rules: rules.clone(),
            }),
        }
    }

    let mut config = PluginConfig {
        schema_version: SCHEMA_VERSION,
        revision: String::new(),
        gateway: ObjectRef {
            namespace: gw.key.namespace.clone(),
            name: gw.key.name.clone(),
        },
        listeners,
        routes: config_routes,
        grpc_routes,
        backends,
        upstream_selector: UpstreamSelector::default(),
        kong: None,
    };
    config.revision = revision(&config);
    Built {
        config,
        backends: targets,
        tls,
    }
}

/// A content hash (FNV-1a, 64 bits) of the config without its revision: equal configs get equal
/// revisions, so the filter's log shows whether a push changed anything.
fn revision(config: &PluginConfig) -> String {
    let bytes = serde_json::to_vec(config).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}
