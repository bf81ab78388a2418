//! Kong 3.4–3.9 (WasmX) through its Admin API, with a database or DB-less.
//!
//! What Kong gets ([`entities`]): an entry service (Kong's own proxy listener) with a catch-all
//! route carrying the `gateway_wasm` filter chain, and one service and path-prefix route per
//! backend, so that Kong's router (not a property set after Kong's balancer already chose a peer)
//! sends every request to its backend. `docs/kong.md` has the design and the Kong source it is
//! derived from.
//!
//! **Which Kong** ([`KongMode`], [`KongInfo`]): `GET /` on the Admin API answers Kong's version
//! and its configuration with secrets removed; `configuration.database` is `"off"` for DB-less
//! Kong (`"postgres"` otherwise), `configuration.role` is `"data_plane"` on a hybrid-mode data
//! plane (refused: its configuration comes from its control plane), `configuration.wasm` is false
//! when Wasm is off (refused with a clear message rather than the filter-chain errors it would
//! cause) and `configuration.proxy_listeners` (`[{ip, port, ssl, …}]`, parsed by
//! kong/conf_loader/listeners.lua) tells where the entry service must point. Followed: the `["/"]`
//! handler of kong/api/routes/kong.lua and Kong's configuration schema (kong/conf_loader),
//! identical in tags 3.4.0 and 3.9.3 of Kong/kong.
//!
//! **With a database** each entity is upserted by name with `PUT` (create-or-replace, so a push is
//! idempotent), backends first and the filter chain last, then the Gateway's entities that are no
//! longer wanted (found by their tag) are deleted. The filter chain carries a tag with a digest of
//! everything written; when the chain read back (`GET /filter-chains/{name}`) has it, nothing is
//! written, and entities deleted behind the shim's back are recreated on the next (periodic)
//! delivery. A DB-less Kong answers these `PUT`s with `405 {"code": 12, "name": "operation
//! unsupported", "message": "cannot create or update 'services' entities by 'name' when not using
//! a database"}` (kong/db/strategies/off/init.lua); the error says so and points at `--kong-mode`.
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

pub mod dbless;
pub mod entities;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

pub use entities::{FILTER_NAME, Layout, entity_name};

use super::{DeliverError, Delivered};
use crate::resolution::GatewayResult;

/// Where the entry service points when neither `--kong-proxy` nor Kong's `proxy_listeners` say.
pub const DEFAULT_PROXY_PORT: u16 = 8000;
/// Prefix of the filter chain tag holding the digest of what the database mode wrote.
const STATE_TAG_PREFIX: &str = "gateway-wasm-state:";

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
    /// Kong's own proxy listener as Kong reaches it (`127.0.0.1:8000`); `None`: from `GET /`'s
    /// `configuration.proxy_listeners` (the first plain-HTTP one).
    pub proxy: Option<String>,
    /// The secret part of the backend routes' paths (random per process unless pinned).
    pub route_secret: String,
    /// Gateway port → Kong listen port, required for Gateways with more than one port.
    pub ports: BTreeMap<u16, u16>,
}

impl KongOptions {
    pub fn new(admin_url: &str) -> KongOptions {
        KongOptions {
            admin_url: admin_url.trim_end_matches('/').to_owned(),
            config_as_string: false,
            cluster_domain: "cluster.local".to_owned(),
            mode: KongMode::Auto,
            proxy: None,
            route_secret: entities::random_secret(),
            ports: BTreeMap::new(),
        }
    }
}

/// What `GET /` told about Kong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KongInfo {
    pub version: String,
    pub mode: KongMode,
    /// The first plain-HTTP proxy listener as `host:port` reachable from Kong itself.
    pub proxy: Option<String>,
}

#[derive(Debug)]
pub struct KongTarget {
    options: KongOptions,
    client: Client<HttpConnector, Full<Bytes>>,
    /// The one Gateway this Kong serves (the first one delivered).
    gateway: Option<crate::resolution::ObjectKey>,
    /// What `GET /` answered (asked on the first delivery, and again after a failure).
    info: Option<KongInfo>,
    /// The mode last detected and logged (logged again only when it changes).
    announced: Option<KongMode>,
    /// DB-less: the hash of the configuration text this target last got Kong to accept.
    posted_hash: Option<String>,
}

/// The layout for a Gateway with explicit options (`options.proxy`, else Kong's default port on
/// loopback): what tests and `render`-like callers use without asking Kong.
pub fn layout(gateway: &GatewayResult, options: &KongOptions) -> Result<Layout, DeliverError> {
    let proxy = options
        .proxy
        .clone()
        .unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_PROXY_PORT}"));
    entities::layout(gateway, options, &proxy)
}

/// The declarative configuration a DB-less Kong gets (see [`entities::declarative_config`]).
pub fn declarative_config(
    gateway: &GatewayResult,
    options: &KongOptions,
) -> Result<Value, DeliverError> {
    Ok(entities::declarative_config(&layout(gateway, options)?))
}

/// A JSON object's field, `null` when absent (or not an object).
pub(crate) fn at<'v>(value: &'v Value, key: &str) -> &'v Value {
    static NULL: Value = Value::Null;
    value.get(key).unwrap_or(&NULL)
}

/// `configuration.proxy_listeners` → `host:port` of the first plain-HTTP listener, with a
/// wildcard address replaced by loopback (Kong connects to itself).
pub fn proxy_from_listeners(listeners: &Value) -> Option<String> {
    let listener = listeners
        .as_array()?
        .iter()
        .find(|l| at(l, "ssl") != true && at(l, "port").as_u64().is_some())?;
    let port = at(listener, "port").as_u64()?;
    let host = match at(listener, "ip").as_str() {
        None | Some("0.0.0.0" | "*") => "127.0.0.1",
        Some("[::]") => "[::1]",
        Some(ip) => ip,
    };
    Some(format!("{host}:{port}"))
}

impl KongTarget {
    pub fn new(options: KongOptions) -> KongTarget {
        KongTarget {
            options,
            client: Client::builder(TokioExecutor::new()).build_http(),
            gateway: None,
            info: None,
            announced: None,
            posted_hash: None,
        }
    }

    /// `Db` or `Dbless` when known (explicit, or detected by an earlier delivery).
    pub fn mode(&self) -> Option<KongMode> {
        match self.options.mode {
            KongMode::Auto => self.info.as_ref().map(|i| i.mode),
            explicit => Some(explicit),
        }
    }

    /// The layout this target delivers for a Gateway (after the first delivery told the proxy
    /// listener, or with `--kong-proxy`).
    pub fn layout(&self, gateway: &GatewayResult) -> Result<Layout, DeliverError> {
        let proxy = self
            .options
            .proxy
            .clone()
            .or_else(|| self.info.as_ref().and_then(|i| i.proxy.clone()))
            .unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_PROXY_PORT}"));
        entities::layout(gateway, &self.options, &proxy)
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
        if self.info.is_none() {
            let info = self.detect().await?;
            if self.announced != Some(info.mode) {
                self.announced = Some(info.mode);
                self.announce(&info);
            }
            self.info = Some(info);
        }
        let mode = self.mode().unwrap_or(KongMode::Db);
        let result = match mode {
            KongMode::Dbless => dbless::deliver(self, gateway).await,
            _ => self.deliver_db(gateway).await,
        };
        if result.is_err() {
            // Ask again next time: the Admin API may now be another Kong (a redeploy).
            self.info = None;
        }
        result
    }

    /// `GET /`: the version, the database mode and the proxy listeners. Not asked when the mode
    /// and the proxy listener are both given.
    async fn detect(&self) -> Result<KongInfo, DeliverError> {
        let url = &self.options.admin_url;
        if self.options.mode != KongMode::Auto && self.options.proxy.is_some() {
            return Ok(KongInfo {
                version: "unknown".to_owned(),
                mode: self.options.mode,
                proxy: None,
            });
        }
        let root = self.get_ok("/").await?;
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
        let mode = match (self.options.mode, at(configuration, "database").as_str()) {
            (KongMode::Auto, Some("off")) => KongMode::Dbless,
            (KongMode::Auto, Some(_)) => KongMode::Db,
            (KongMode::Auto, None) => {
                return Err(DeliverError::Config(format!(
                    "Kong at {url}: GET / did not report configuration.database; pass --kong-mode db or dbless"
                )));
            }
            (explicit, _) => explicit,
        };
        let version = at(&root, "version")
            .as_str()
            .unwrap_or("unknown")
            .to_owned();
        let proxy = proxy_from_listeners(at(configuration, "proxy_listeners"));
        if self.options.proxy.is_none() && proxy.is_none() {
            return Err(DeliverError::Config(format!(
                "Kong at {url} reports no plain-HTTP proxy listener (configuration.proxy_listeners); pass --kong-proxy HOST:PORT, the address at which Kong reaches its own proxy"
            )));
        }
        tracing::debug!(kong = %url, %version, database = at(configuration, "database").as_str().unwrap_or_default(), "GET / answered");
        Ok(KongInfo {
            version,
            mode,
            proxy,
        })
    }

    fn announce(&self, info: &KongInfo) {
        let url = &self.options.admin_url;
        let version = info.version.as_str();
        match info.mode {
            KongMode::Dbless => tracing::warn!(kong = %url, version, mode = info.mode.as_str(),
                "Kong is DB-less: every push replaces its whole declarative configuration (POST /config), so the shim owns this Kong's configuration"),
            _ => tracing::info!(kong = %url, version, mode = info.mode.as_str(),
                "Kong has a database: the shim upserts its own services, routes and filter chain by name"),
        }
        if let Some(note) = support_note(version) {
            tracing::warn!(kong = %url, version, "{note}");
        }
    }

    async fn deliver_db(&mut self, gateway: &GatewayResult) -> Result<Delivered, DeliverError> {
        let layout = self.layout(gateway)?;
        let name = layout.name.clone();
        let state_tag = format!(
            "{STATE_TAG_PREFIX}{}",
            digest(&entities::declarative_config(&layout))
        );
        let chain_path = format!("/filter-chains/{name}");
        if let (200, existing) = self.call(Method::GET, &chain_path, None).await?
            && at(&existing, "tags")
                .as_array()
                .is_some_and(|tags| tags.iter().any(|t| *t == state_tag))
        {
            return Ok(Delivered::default());
        }
        // Backends first: the filter may route to them as soon as its chain exists.
        for backend in &layout.backends {
            let service = self
                .put(
                    &format!("/services/{}", backend.name),
                    Value::Object(entities::backend_service(&layout, backend)),
                )
                .await?;
            let mut route = entities::backend_route(&layout, backend);
            route.insert("service".into(), json!({"id": id_of(&service, "service")?}));
            self.put(&format!("/routes/{}", backend.name), Value::Object(route))
                .await?;
        }
        let service = self
            .put(
                &format!("/services/{name}"),
                Value::Object(entities::entry_service(&layout)),
            )
            .await?;
        let mut route = entities::entry_route(&layout);
        route.insert("service".into(), json!({"id": id_of(&service, "service")?}));
        let route = self
            .put(&format!("/routes/{name}"), Value::Object(route))
            .await?;
        let route_id = id_of(&route, "route")?;
        self.put(
            &chain_path,
            json!({"name": name, "enabled": true, "route": {"id": route_id},
                   "filters": layout.filters, "tags": ["gateway-wasm", name, state_tag]}),
        )
        .await?;
        self.delete_stale(&layout).await?;
        Ok(Delivered {
            changed: true,
            warnings: layout.warnings,
        })
    }

    /// Deletes the Gateway's backend routes and services that the layout no longer has.
    async fn delete_stale(&self, layout: &Layout) -> Result<(), DeliverError> {
        let wanted: BTreeSet<&str> = layout.backends.iter().map(|b| b.name.as_str()).collect();
        for collection in ["routes", "services"] {
            for stale in self.tagged(collection, &layout.name).await? {
                if wanted.contains(stale.as_str()) || stale == layout.name {
                    continue;
                }
                let path = format!("/{collection}/{stale}");
                match self.call(Method::DELETE, &path, None).await? {
                    (204 | 404, _) => {}
                    (status, body) => {
                        return Err(DeliverError::KongStatus {
                            method: "DELETE",
                            path,
                            status,
                            body: body.to_string(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Names of the entities of a collection carrying `tag`, following Kong's pagination.
    async fn tagged(&self, collection: &str, tag: &str) -> Result<Vec<String>, DeliverError> {
        let mut names = Vec::new();
        let mut path = format!("/{collection}?tags={tag}");
        for _ in 0..1000 {
            let page = self.get_ok(&path).await?;
            names.extend(
                at(&page, "data")
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| at(e, "name").as_str().map(str::to_owned)),
            );
            match at(&page, "offset").as_str() {
                Some(offset) => path = format!("/{collection}?tags={tag}&offset={offset}"),
                None => break,
            }
        }
        Ok(names)
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

    /// `GET path`: the body of a 200 answer; any other status is an error naming the request,
    /// the status and Kong's answer.
    async fn get_ok(&self, path: &str) -> Result<Value, DeliverError> {
        match self.call(Method::GET, path, None).await? {
            (200, body) => Ok(body),
            (status, body) => Err(DeliverError::KongStatus {
                method: "GET",
                path: path.to_owned(),
                status,
                body: body.to_string(),
            }),
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
            Method::DELETE => "DELETE",
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

/// Lowercase hex SHA-256 of a JSON value's text, cut to 16 digits (a tag, not a secret).
fn digest(value: &Value) -> String {
    hex::encode(Sha256::digest(value.to_string().as_bytes()))
        .chars()
        .take(16)
        .collect()
}

/// What a Kong version lacks, for the operator (`docs/kong.md`, *Support window*).
pub fn support_note(version: &str) -> Option<&'static str> {
    let mut parts = version.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts
        .next()?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    match (major, minor) {
        (3, 4) => Some(
            "Kong 3.4: filter configs are strings only (use --kong-config-string) and the filter defines no metrics (ngx_wasm_module traps on them before 3.8)",
        ),
        (3, 5..=7) => Some(
            "Kong before 3.8: the filter's metrics are off (ngx_wasm_module traps on the metric calls before 3.8); routing, filters and mirrors work",
        ),
        (3, 8..=9) => None,
        _ => Some(
            "this Kong version is outside the supported window (3.4-3.9, full features from 3.8): Wasm left Kong's default builds after 3.9",
        ),
    }
}
