//! Kong 3.4–3.9 (WasmX) through its Admin API, with a database or DB-less.
//!
//! What Kong gets, in both modes, all named `gateway-wasm.<ns>.<gateway>`:
//! - a service pointing at `127.0.0.1:9` (discard: nothing answers there, so a request the filter
//!   did not route can never reach a backend);
//! - a catch-all route on it (`paths: ["/"]`, `preserve_host`, no `strip_path`) — Kong runs filters
//!   after its own router, so one route must match everything;
//! - a filter chain on that route: `filters: [{name: "gateway_wasm", enabled: true, config:
//!   <PluginConfig>}]`.
//!
//! **Which mode** ([`KongMode`]): `GET /` on the Admin API answers Kong's configuration with
//! secrets removed; `configuration.database` is `"off"` for DB-less Kong (`"postgres"` otherwise),
//! `configuration.role` is `"data_plane"` on a hybrid-mode data plane (refused: its configuration
//! comes from its control plane) and `configuration.wasm` is false when Wasm is off (refused with a
//! clear message rather than the filter-chain errors it would cause). Followed: the `["/"]` handler
//! of kong/api/routes/kong.lua and the `database`/`role`/`wasm` entries of Kong's configuration
//! schema (kong/conf_loader), identical in tags 3.4.0 and 3.9.3 of Kong/kong.
//!
//! **With a database** each entity is upserted by name with `PUT` (create-or-replace, so a push is
//! idempotent). Before writing, the filter chain is read back (`GET /filter-chains/{name}`); when
//! its filters already equal ours nothing is written, and entities deleted behind the shim's back
//! are recreated on the next (periodic) delivery. A DB-less Kong answers these `PUT`s with
//! `405 {"code": 12, "name": "operation unsupported", "message": "cannot create or update
//! 'services' entities by 'name' when not using a database"}` (kong/db/strategies/off/init.lua);
//! the error says so and points at `--kong-mode`.
//!
//! **DB-less** ([`dbless`]): the whole declarative configuration is posted with `POST /config`,
//! which replaces everything Kong has; the shim therefore owns that Kong's configuration and
//! refuses to replace one holding entities it did not write. See the module for details.
//!
//! Entity shapes followed:
//! - Kong's `filter_chains` entity (kong/db/schema/entities/filter_chains.lua in Kong/kong): `name`
//!   is the endpoint key (so `PUT /filter-chains/{name}` upserts), `route` and `service` are
//!   mutually exclusive foreign keys (`{"id": …}`), `filters[]` has `name`, `enabled`, `config`;
//!   in a declarative configuration filter chains nest under their route like any entity with a
//!   foreign key to it;
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

pub mod dbless;

use std::collections::BTreeMap;

use bytes::Bytes;
use engine::PluginConfig;
use engine::config::UpstreamSelector;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value, json};

use super::{DeliverError, Delivered};
use crate::resolution::{BackendTarget, GatewayResult, ObjectKey};

/// The filter's name in Kong (the `.wasm` file name without extension in `wasm_filters_path`).
pub const FILTER_NAME: &str = "gateway_wasm";
/// Where the catch-all service points: the discard port on loopback.
const SINK_HOST: &str = "127.0.0.1";
const SINK_PORT: u16 = 9;

/// How the shim writes to Kong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KongMode {
    /// Ask Kong (`GET /`, `configuration.database`) on the first delivery.
    Auto,
    /// Kong has a database: upsert the entities by name.
    Db,
    /// Kong is DB-less: post the whole declarative configuration.
    Dbless,
}

impl KongMode {
    pub fn as_str(self) -> &'static str {
        match self {
            KongMode::Auto => "auto",
            KongMode::Db => "db",
            KongMode::Dbless => "dbless",
        }
    }
}

#[derive(Debug, Clone)]
pub struct KongOptions {
    /// The Admin API base URL (`http://127.0.0.1:8001`).
    pub admin_url: String,
    /// Send `config` as a JSON string (Kong 3.4, or a filter installed without `meta.json`).
    pub config_as_string: bool,
    /// The cluster domain for Service DNS names.
    pub cluster_domain: String,
    /// Database or DB-less (default: ask Kong).
    pub mode: KongMode,
}

impl KongOptions {
    pub fn new(admin_url: &str) -> KongOptions {
        KongOptions {
            admin_url: admin_url.trim_end_matches('/').to_owned(),
            config_as_string: false,
            cluster_domain: "cluster.local".to_owned(),
            mode: KongMode::Auto,
        }
    }
}

#[derive(Debug)]
pub struct KongTarget {
    options: KongOptions,
    client: Client<HttpConnector, Full<Bytes>>,
    /// The one Gateway this Kong serves (the first one delivered).
    gateway: Option<ObjectKey>,
    /// `Db` or `Dbless` once known (from the options, or detected).
    mode: Option<KongMode>,
    /// The mode last detected and logged (logged again only when it changes).
    announced: Option<KongMode>,
    /// DB-less: the hash of the configuration text this target last got Kong to accept.
    posted_hash: Option<String>,
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

/// The filter chain's `filters` array.
pub fn filters(gateway: &GatewayResult, options: &KongOptions) -> Result<Value, DeliverError> {
    let config = serde_json::to_value(kong_config(gateway, &options.cluster_domain))
        .map_err(|e| DeliverError::Config(format!("serializing the PluginConfig: {e}")))?;
    let config = if options.config_as_string {
        Value::String(config.to_string())
    } else {
        config
    };
    Ok(json!([{"name": FILTER_NAME, "enabled": true, "config": config}]))
}

/// A JSON object's field, `null` when absent (or not an object).
pub(crate) fn at<'v>(value: &'v Value, key: &str) -> &'v Value {
    static NULL: Value = Value::Null;
    value.get(key).unwrap_or(&NULL)
}

/// The service's fields (both modes).
fn service_fields(name: &str) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("name".into(), json!(name));
    fields.insert("protocol".into(), json!("http"));
    fields.insert("host".into(), json!(SINK_HOST));
    fields.insert("port".into(), json!(SINK_PORT));
    fields
}

/// The route's fields without its service reference (both modes).
fn route_fields(name: &str) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("name".into(), json!(name));
    fields.insert("protocols".into(), json!(["http", "https"]));
    fields.insert("paths".into(), json!(["/"]));
    fields.insert("strip_path".into(), json!(false));
    fields.insert("preserve_host".into(), json!(true));
    fields
}

/// The declarative configuration (`_format_version: "3.0"`) a DB-less Kong gets for a Gateway:
/// the service with its route nested, and the filter chain nested in the route — the same shape as
/// `examples/kong/kong.yaml`. It is everything Kong will hold: `POST /config` replaces the rest.
pub fn declarative_config(
    gateway: &GatewayResult,
    options: &KongOptions,
) -> Result<Value, DeliverError> {
    let name = entity_name(&gateway.gateway);
    let chain = json!({"name": name, "enabled": true, "filters": filters(gateway, options)?});
    let mut route = route_fields(&name);
    route.insert("filter_chains".into(), json!([chain]));
    let mut service = service_fields(&name);
    service.insert("routes".into(), json!([route]));
    Ok(json!({"_format_version": "3.0", "services": [service]}))
}

impl KongTarget {
    pub fn new(options: KongOptions) -> KongTarget {
        let mode = match options.mode {
            KongMode::Auto => None,
            explicit => Some(explicit),
        };
        KongTarget {
            options,
            client: Client::builder(TokioExecutor::new()).build_http(),
            gateway: None,
            mode,
            announced: None,
            posted_hash: None,
        }
    }

    /// The `filters` array to send.
    pub fn filters(&self, gateway: &GatewayResult) -> Result<Value, DeliverError> {
        filters(gateway, &self.options)
    }

    /// `Db` or `Dbless` when known (explicit, or detected by an earlier delivery).
    pub fn mode(&self) -> Option<KongMode> {
        self.mode
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
        let mode = match self.mode {
            Some(mode) => mode,
            None => {
                let mode = self.detect().await?;
                self.mode = Some(mode);
                if self.announced != Some(mode) {
                    self.announced = Some(mode);
                    self.announce(mode);
                }
                mode
            }
        };
        let result = match mode {
            KongMode::Dbless => dbless::deliver(self, gateway).await,
            _ => self.deliver_db(gateway).await,
        };
        if result.is_err() && self.options.mode == KongMode::Auto {
            // Ask again next time: the Admin API may now be another Kong (a redeploy).
            self.mode = None;
        }
        result
    }

    /// `GET /`: `configuration.database` says whether Kong has a database.
    async fn detect(&self) -> Result<KongMode, DeliverError> {
        let url = &self.options.admin_url;
        let root = match self.call(Method::GET, "/", None).await? {
            (200, root) => root,
            (status, body) => {
                return Err(DeliverError::KongStatus {
                    method: "GET",
                    path: "/".to_owned(),
                    status,
                    body: body.to_string(),
                });
            }
        };
        let configuration = at(&root, "configuration");
        if at(configuration, "role") == "data_plane" {
            return Err(DeliverError::Config(format!(
                "Kong at {url} is a hybrid-mode data plane (role = data_plane): its configuration comes from its control plane; point --kong-admin at the control plane"
            )));
        }
        if at(configuration, "wasm") == false {
            return Err(DeliverError::Config(format!(
                "Kong at {url} runs with wasm = off; the gateway_wasm filter needs wasm = on and wasm_filters_path (see examples/kong/kong.conf)"
            )));
        }
        let mode = match at(configuration, "database").as_str() {
            Some("off") => KongMode::Dbless,
            Some(_) => KongMode::Db,
            None => {
                return Err(DeliverError::Config(format!(
                    "Kong at {url}: GET / did not report configuration.database; pass --kong-mode db or dbless"
                )));
            }
        };
        tracing::debug!(
            kong = %url,
            version = at(&root, "version").as_str().unwrap_or("unknown"),
            database = at(configuration, "database").as_str().unwrap_or_default(),
            "GET / answered"
        );
        Ok(mode)
    }

    fn announce(&self, mode: KongMode) {
        let url = &self.options.admin_url;
        match mode {
            KongMode::Dbless => tracing::warn!(kong = %url, mode = mode.as_str(),
                "Kong is DB-less: every push replaces its whole declarative configuration (POST /config), so the shim owns this Kong's configuration"),
            _ => tracing::info!(kong = %url, mode = mode.as_str(),
                "Kong has a database: the shim upserts its own service, route and filter chain by name"),
        }
    }

    async fn deliver_db(&mut self, gateway: &GatewayResult) -> Result<Delivered, DeliverError> {
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
                Value::Object(service_fields(&name)),
            )
            .await?;
        let service_id = id_of(&service, "service")?;
        let mut route = route_fields(&name);
        route.insert("service".into(), json!({"id": service_id}));
        let route = self
            .put(&format!("/routes/{name}"), Value::Object(route))
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
            (status, value) => {
                let mut body = value.to_string();
                if status == 405 {
                    body.push_str(
                        " (Kong's Admin API refuses writes: a DB-less Kong only takes POST /config; use --kong-mode auto or dbless)",
                    );
                }
                Err(DeliverError::KongStatus {
                    method: "PUT",
                    path: path.to_owned(),
                    status,
                    body,
                })
            }
        }
    }

    /// One Admin API request; the answer's status and JSON body (`null` when empty or not JSON).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), DeliverError> {
        let method_name: &'static str = match method {
            Method::GET => "GET",
            Method::POST => "POST",
            _ => "PUT",
        };
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
