//! Kong 3.4–3.9 (WasmX) through its Admin API.
//!
//! What is created, all by name with `PUT` (create-or-replace, so a push is idempotent):
//! - a service `gateway-wasm.<ns>.<gateway>` pointing at `127.0.0.1:9` (discard: nothing answers
//!   there, so a request the filter did not route can never reach a backend);
//! - a catch-all route of the same name (`paths: ["/"]`, `preserve_host`, no `strip_path`) on it —
//!   Kong runs filters after its own router, so one route must match everything;
//! - a filter chain of the same name on that route: `filters: [{name: "gateway_wasm", enabled: true,
//!   config: <PluginConfig>}]`.
//!
//! The Admin API shapes followed:
//! - Kong's `filter_chains` entity (kong/db/schema/entities/filter_chains.lua in Kong/kong): `name`
//!   is the endpoint key (so `PUT /filter-chains/{name}` upserts), `route` and `service` are
//!   mutually exclusive foreign keys (`{"id": …}`), `filters[]` has `name`, `enabled`, `config`;
//! - "Proxy-Wasm Filter Configuration" (docs.konghq.com/gateway/3.6.x … 3.9.x/plugin-development/
//!   wasm/filter-configuration): with a `config_schema` in `<filter>.meta.json` next to the `.wasm`
//!   (the packager's kong-bundle ships one), `config` is JSON validated by Kong against that schema;
//!   without one (or on Kong 3.4, whose `config` is a plain string) it must be the JSON serialized
//!   as a string — [`KongOptions::config_as_string`].
//!
//! The PluginConfig sent uses `upstreamSelector: kongServiceTarget` (the filter sets the
//! `kong.service.target` property) and every backend's `upstream` is a `host:port` target: the
//! endpoint's address when the EndpointSlices list exactly one, otherwise the Service's cluster
//! DNS name (`svc.ns.svc.cluster.local:port`, balanced by kube-proxy; a single endpoint address
//! would pin every request to one pod).
//!
//! Read-back: before writing, the filter chain is read (`GET /filter-chains/{name}`); when its
//! filters already equal what we would send, nothing is written. That also repairs a Kong that
//! restarted without its configuration (DB-less mode) on the runtime's periodic re-delivery.

use std::collections::BTreeMap;

use bytes::Bytes;
use engine::PluginConfig;
use engine::config::UpstreamSelector;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use super::{DeliverError, Delivered};
use crate::resolution::{BackendTarget, GatewayResult, ObjectKey};

/// The filter's name in Kong (the `.wasm` file name without extension in `wasm_filters_path`).
pub const FILTER_NAME: &str = "gateway_wasm";
/// Where the catch-all service points: the discard port on loopback.
const SINK_HOST: &str = "127.0.0.1";
const SINK_PORT: u16 = 9;

#[derive(Debug, Clone)]
pub struct KongOptions {
    /// The Admin API base URL (`http://127.0.0.1:8001`).
    pub admin_url: String,
    /// Send `config` as a JSON string (Kong 3.4, or a filter installed without `meta.json`).
    pub config_as_string: bool,
    /// The cluster domain for Service DNS names.
    pub cluster_domain: String,
}

impl KongOptions {
    pub fn new(admin_url: &str) -> KongOptions {
        KongOptions {
            admin_url: admin_url.trim_end_matches('/').to_owned(),
            config_as_string: false,
            cluster_domain: "cluster.local".to_owned(),
        }
    }
}

#[derive(Debug)]
pub struct KongTarget {
    options: KongOptions,
    client: Client<HttpConnector, Full<Bytes>>,
    /// The one Gateway this Kong serves (the first one delivered).
    gateway: Option<ObjectKey>,
}

/// The Kong entity name for a Gateway.
pub fn entity_name(gateway: &ObjectKey) -> String {
    format!("gateway-wasm.{}.{}", gateway.namespace, gateway.name)
}

/// The `host:port` Kong forwards to for a backend.
pub fn target_for(backend: &BackendTarget, cluster_domain: &str) -> String {
    match backend.endpoints.as_slice() {
        [only] if only.address.contains(':') => format!("[{}]:{}", only.address, only.port),
        [only] => format!("{}:{}", only.address, only.port),
        _ => format!(
            "{}.{}.svc.{}:{}",
            backend.service, backend.namespace, cluster_domain, backend.port
        ),
    }
}

/// The PluginConfig as Kong's filter gets it.
pub fn kong_config(gateway: &GatewayResult, cluster_domain: &str) -> PluginConfig {
    let mut config = gateway.config.clone();
    config.upstream_selector = UpstreamSelector::KongServiceTarget;
    for (key, backend) in &mut config.backends {
        if backend.invalid.is_some() {
            continue;
        }
        backend.upstream = gateway
            .backends
            .get(key)
            .map(|target| target_for(target, cluster_domain));
    }
    config
}

impl KongTarget {
    pub fn new(options: KongOptions) -> KongTarget {
        KongTarget {
            options,
            client: Client::builder(TokioExecutor::new()).build_http(),
            gateway: None,
        }
    }

    /// The `filters` array to send.
    pub fn filters(&self, gateway: &GatewayResult) -> Result<Value, DeliverError> {
        let config = serde_json::to_value(kong_config(gateway, &self.options.cluster_domain))
            .map_err(|e| DeliverError::Config(format!("serializing the PluginConfig: {e}")))?;
        let config = if self.options.config_as_string {
            Value::String(config.to_string())
        } else {
            config
        };
        Ok(json!([{"name": FILTER_NAME, "enabled": true, "config": config}]))
    }

    pub async fn deliver(&mut self, gateway: &GatewayResult) -> Result<Delivered, DeliverError> {
        match &self.gateway {
            Some(served) if *served != gateway.gateway => {
                return Err(DeliverError::Config(format!(
                    "a Kong target serves one Gateway ({served}); {} needs its own Kong (select one with --gateway)",
                    gateway.gateway
                )));
            }
            _ => self.gateway = Some(gateway.gateway.clone()),
        }
        let name = entity_name(&gateway.gateway);
        let filters = self.filters(gateway)?;
        let chain_path = format!("/filter-chains/{name}");
        if let (200, existing) = self.call(Method::GET, &chain_path, None).await?
            && same_filters(existing.get("filters"), &filters)
        {
            return Ok(Delivered::default());
        }
        let service = self
            .put(
                &format!("/services/{name}"),
                json!({"name": name, "protocol": "http", "host": SINK_HOST, "port": SINK_PORT}),
            )
            .await?;
        let service_id = id_of(&service, "service")?;
        let route = self
            .put(
                &format!("/routes/{name}"),
                json!({
                    "name": name,
                    "protocols": ["http", "https"],
                    "paths": ["/"],
                    "strip_path": false,
                    "preserve_host": true,
                    "service": {"id": service_id},
                }),
            )
            .await?;
        let route_id = id_of(&route, "route")?;
        self.put(
            &chain_path,
            json!({"name": name, "enabled": true, "route": {"id": route_id}, "filters": filters}),
        )
        .await?;
        Ok(Delivered {
            changed: true,
            warnings: Vec::new(),
        })
    }

    async fn put(&self, path: &str, body: Value) -> Result<Value, DeliverError> {
        match self.call(Method::PUT, path, Some(body)).await? {
            (200 | 201, value) => Ok(value),
            (status, value) => Err(DeliverError::KongStatus {
                method: "PUT",
                path: path.to_owned(),
                status,
                body: value.to_string(),
            }),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), DeliverError> {
        let method_name: &'static str = if method == Method::GET { "GET" } else { "PUT" };
        let fail = |message: String| DeliverError::KongHttp {
            method: method_name,
            path: path.to_owned(),
            message,
        };
        let uri: Uri = format!("{}{path}", self.options.admin_url)
            .parse()
            .map_err(|e| fail(format!("bad URL: {e}")))?;
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| fail(e.to_string()))?;
        let response = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            self.client.request(request),
        )
        .await
        .map_err(|_| fail("timed out after 10 s".to_owned()))?
        .map_err(|e| fail(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(e.to_string()))?
            .to_bytes();
        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok((status, value))
    }
}

fn id_of(entity: &Value, what: &str) -> Result<String, DeliverError> {
    entity
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| DeliverError::Config(format!("Kong returned a {what} without an id")))
}

/// Whether Kong's filters equal ours (a string config is compared as the JSON it holds).
fn same_filters(existing: Option<&Value>, desired: &Value) -> bool {
    fn normal(filters: &Value) -> Vec<BTreeMap<String, Value>> {
        filters
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|f| {
                        let mut map: BTreeMap<String, Value> = f
                            .as_object()
                            .map(|m| m.clone().into_iter().collect())
                            .unwrap_or_default();
                        if let Some(Value::String(text)) = map.get("config")
                            && let Ok(parsed) = serde_json::from_str::<Value>(text)
                        {
                            map.insert("config".into(), parsed);
                        }
                        map.entry("enabled".into()).or_insert(Value::Bool(true));
                        map
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
    existing.is_some_and(|e| normal(e) == normal(desired))
}
