//! An in-process fixture of Kong 3.4–3.9's Admin API, for what the shim uses, with a database or
//! DB-less.
//!
//! Kong with Wasm cannot be installed here (no package; Wasm left Kong's default builds after 3.9),
//! so this models the behaviour the shim relies on, as Kong's source and its own integration
//! specs show it (Kong/kong tags 3.4.0 and 3.9.3; files named below):
//! - `GET /` (kong/api/routes/kong.lua): `version` and `configuration` with `database` (`"off"`
//!   when DB-less, else `"postgres"`), `role`, `wasm`;
//! - `GET /status` (kong/api/routes/health.lua): DB-less, `configuration_hash` (32 zeros while
//!   empty, kong/constants.lua); with a database, `database.reachable` instead;
//! - entities `services`, `routes`, `filter-chains`: `GET /{collection}/{name}` (both modes; 404
//!   `{"message": "Not found"}`). With a database, `PUT /{collection}/{name}` is create-or-replace
//!   answering the entity with its `id`, a route's `service.id` and a filter chain's `route.id` must
//!   exist, and the filters are validated (below). DB-less, writes answer what
//!   kong/db/strategies/off/init.lua makes of them: `PUT` → 405 `{"code": 12, "name": "operation
//!   unsupported", "message": "cannot create or update '<schema>' entities by 'name' when not using
//!   a database"}`, `POST /{collection}` → 405 "cannot create '<schema>' entities …" (as
//!   spec/02-integration/04-admin_api/15-off_spec.lua asserts);
//! - `POST /config` (kong/api/routes/config.lua), DB-less only (else 400 "this endpoint is only
//!   available when Kong is configured to not use a database"): a body with `_format_version` is
//!   the configuration itself; otherwise `config` is its text, JSON or YAML, and the new hash is
//!   its MD5 (kong/db/declarative/init.lua). `check_hash=1` and an equal hash → 304 with no body.
//!   The configuration is validated (below) and, when valid, **replaces every entity** and the
//!   hash: 201. When not: 400 `{"code": 14, "name": "invalid declarative configuration",
//!   "message", "fields"}` plus, with a truthy `flatten_errors`, `flattened_errors` shaped like
//!   kong/db/errors.lua's `declarative_config_flattened` (one entry per entity: `entity_type` in
//!   the singular, `entity_name`, `entity`, `errors[]` of `{type: "field", field:
//!   "filters.1.config", message}`), and nothing changes;
//! - `GET /config` (DB-less): `{"config": "<yaml>"}`, the export: `_format_version`,
//!   `_transform: false` and flat lists per entity type with foreign keys as ids
//!   (kong/db/declarative/export.lua);
//! - validation of what the shim writes: a service needs `host` and a `port` in 0–65535, route
//!   paths start with `/`, a filter chain has at least one filter, each filter's `name` must be an
//!   installed filter (`gateway_wasm`; else "no such filter") and its `config` is checked like
//!   kong/db/schema/others/wasm_filter.lua: against `config_schema` from the filter's `meta.json`
//!   when there is one, otherwise it must be a string (or null) — "expected a string".
//!
//! [`FakeKong::restart`]: a DB-less Kong restarting without a `declarative_config` file comes back
//! empty (hash all zeros); with a database it models the entities being deleted behind the shim's
//! back (a real Kong keeps its database across restarts). [`FakeKong::boot_with`]: a DB-less Kong
//! restarting from a `declarative_config` file.
//!
//! - `GET /{collection}?tags=t` lists the entities tagged `t` (`{"data": [...], "next": null}`,
//!   one page) and `DELETE /{collection}/{name}` deletes (204), with a database;
//! - the workers ([`fake_kong_workers`]): after every configuration Kong accepts (`POST /config`
//!   201, or a filter chain `PUT`), they re-encode each filter's object config with lua-cjson
//!   (an empty array becomes `{}`) and load it with the filter's own engine; a rejection is only
//!   logged (`error_log()`), the workers keep the previous configuration, and the Admin API
//!   answer and `GET /status` stay as if all went well — as in Kong.
//!
//! Not modelled: other entity kinds' validation (they are kept as given), uniqueness checks,
//! workspaces, pagination, the proxy itself (`kong-emulator` emulates that part).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code
)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use md5::{Digest as _, Md5};
use serde_json::{Map, Value, json};

#[path = "fake_kong_workers.rs"]
pub mod fake_kong_workers;

pub const EMPTY_HASH: &str = "00000000000000000000000000000000";

/// How the fake Kong is configured.
#[derive(Clone)]
pub struct Settings {
    /// `database = off`.
    pub dbless: bool,
    /// The `config_schema` of `gateway_wasm.meta.json` (None: no meta.json, as on Kong 3.4 where
    /// filter configs are strings).
    pub config_schema: Option<Value>,
    /// `configuration.role` in `GET /`.
    pub role: &'static str,
    /// `configuration.wasm` in `GET /`.
    pub wasm: bool,
    /// `GET /status` reports a hash the shim cannot predict (a Kong fingerprinting differently);
    /// `check_hash` still compares the real one.
    pub unpredictable_hash: bool,
    /// `version` in `GET /`.
    pub version: &'static str,
}

impl Settings {
    pub fn db(config_schema: Option<Value>) -> Settings {
        Settings {
            dbless: false,
            config_schema,
            role: "traditional",
            wasm: true,
            unpredictable_hash: false,
            version: "3.9.1",
        }
    }

    pub fn dbless(config_schema: Option<Value>) -> Settings {
        Settings {
            dbless: true,
            ..Settings::db(config_schema)
        }
    }
}

struct State {
    settings: Settings,
    /// collection (`services`, `routes`, `filter-chains`, or another kind when DB-less) → name
    /// (or id) → entity
    entities: BTreeMap<String, BTreeMap<String, Value>>,
    /// (method, path with query) of every request.
    requests: Vec<(String, String)>,
    next_id: u64,
    /// Answer the next PUT /filter-chains with this status and message.
    fail_next_chain: Option<(u16, String)>,
    /// DB-less: the hash of the configuration Kong runs.
    hash: String,
    /// DB-less: configurations loaded (201s of POST /config).
    reloads: usize,
    /// DB-less: the last configuration loaded, as given.
    loaded: Option<Value>,
    /// What the workers run, and the error log.
    workers: fake_kong_workers::Workers,
}

pub struct FakeKong {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKong {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn respond(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
}

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn not_found() -> Response<Full<Bytes>> {
    respond(404, &json!({"message": "Not found"}))
}

/// The schema name behind an Admin API collection (`filter-chains` → `filter_chains`).
fn schema_name(collection: &str) -> String {
    collection.replace('-', "_")
}

fn singular(kind: &str) -> &str {
    kind.strip_suffix('s').unwrap_or(kind)
}

impl FakeKong {
    /// Kong with a database.
    pub async fn start(config_schema: Option<Value>) -> FakeKong {
        FakeKong::start_with(Settings::db(config_schema)).await
    }

    /// DB-less Kong, started without a `declarative_config`: empty.
    pub async fn start_dbless(config_schema: Option<Value>) -> FakeKong {
        FakeKong::start_with(Settings::dbless(config_schema)).await
    }

    pub async fn start_with(settings: Settings) -> FakeKong {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            settings,
            entities: BTreeMap::new(),
            requests: Vec::new(),
            next_id: 0,
            fail_next_chain: None,
            hash: EMPTY_HASH.to_owned(),
            reloads: 0,
            loaded: None,
            workers: fake_kong_workers::Workers::default(),
        }));
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = state.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request: Request<Incoming>| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(handle(request, &state).await) }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        FakeKong { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn entity(&self, collection: &str, name: &str) -> Option<Value> {
        self.state
            .lock()
            .unwrap()
            .entities
            .get(collection)?
            .get(name)
            .cloned()
    }

    /// Every entity, by collection.
    pub fn entities(&self) -> BTreeMap<String, BTreeMap<String, Value>> {
        self.state.lock().unwrap().entities.clone()
    }

    /// (method, path with query) of every request so far.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Requests to `path` (query included) with `method`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|(m, p)| m == method && p == path)
            .count()
    }

    pub fn writes(&self) -> usize {
        self.requests().iter().filter(|(m, _)| m == "PUT").count()
    }

    /// DB-less: how many configurations were loaded through `POST /config`.
    pub fn reloads(&self) -> usize {
        self.state.lock().unwrap().reloads
    }

    /// DB-less: the hash of what Kong runs (the real one, whatever `GET /status` reports).
    pub fn hash(&self) -> String {
        self.state.lock().unwrap().hash.clone()
    }

    /// DB-less: the last configuration loaded, as posted.
    pub fn loaded(&self) -> Option<Value> {
        self.state.lock().unwrap().loaded.clone()
    }

    /// The filter configurations Kong's workers run, as the filter received them (re-encoded).
    pub fn worker_configs(&self) -> Vec<String> {
        self.state.lock().unwrap().workers.configs.clone()
    }

    /// Kong's error log: worker reconfigurations that failed.
    pub fn error_log(&self) -> Vec<String> {
        self.state.lock().unwrap().workers.error_log.clone()
    }

    /// DB-less: Kong restarted without a `declarative_config` file: empty. With a database: the
    /// entities were deleted behind the shim's back.
    pub fn restart(&self) {
        let mut s = self.state.lock().unwrap();
        s.entities.clear();
        s.hash = EMPTY_HASH.to_owned();
        s.loaded = None;
        s.workers.configs.clear();
    }

    /// DB-less: Kong restarted with `declarative_config` pointing at a file holding `text`.
    pub fn boot_with(&self, text: &str) {
        let mut s = self.state.lock().unwrap();
        let doc = parse_text(text).unwrap();
        let schema = s.settings.config_schema.clone();
        let entities = load(&doc, &schema, &mut s.next_id)
            .unwrap_or_else(|(fields, flat)| panic!("invalid declarative file: {fields} {flat}"));
        s.entities = entities;
        s.hash = md5_hex(text);
        s.loaded = Some(doc);
        reconfigure_workers(&mut s);
    }

    pub fn fail_next_chain(&self, status: u16, message: &str) {
        self.state.lock().unwrap().fail_next_chain = Some((status, message.to_owned()));
    }
}

fn truthy(value: &str) -> bool {
    matches!(value.to_lowercase().as_str(), "1" | "true" | "on" | "yes")
}

async fn handle(request: Request<Incoming>, state: &Mutex<State>) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query: BTreeMap<String, String> = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let full_path = request
        .uri()
        .path_and_query()
        .map_or(path.clone(), |pq| pq.as_str().to_owned());
    let body: Value = {
        let bytes = request.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    let mut s = state.lock().unwrap();
    s.requests.push((method.to_string(), full_path));
    let dbless = s.settings.dbless;
    match (method.clone(), path.as_str()) {
        (Method::GET, "/") => {
            return respond(
                200,
                &json!({
                    "tagline": "Welcome to kong",
                    "version": s.settings.version,
                    "configuration": {
                        "database": if dbless { "off" } else { "postgres" },
                        "role": s.settings.role,
                        "wasm": s.settings.wasm,
                        "wasm_filters_path": "/usr/local/kong/wasm",
                        // kong/conf_loader/listeners.lua parse_listeners: ip, port, flags.
                        "proxy_listeners": [
                            {"ip": "0.0.0.0", "port": 8000, "ssl": false, "http2": false,
                             "listener": "0.0.0.0:8000"},
                            {"ip": "0.0.0.0", "port": 8443, "ssl": true, "http2": true,
                             "listener": "0.0.0.0:8443 ssl http2"},
                        ],
                    },
                }),
            );
        }
        (Method::GET, "/status") => {
            let mut status = json!({"memory": {}, "server": {"connections_active": 1}});
            if dbless {
                let hash = if s.settings.unpredictable_hash && s.hash != EMPTY_HASH {
                    md5_hex(&format!("other:{}", s.hash))
                } else {
                    s.hash.clone()
                };
                status["configuration_hash"] = json!(hash);
            } else {
                status["database"] = json!({"reachable": true});
            }
            return respond(200, &status);
        }
        (_, "/config") if !dbless => {
            return respond(
                400,
                &json!({"message": "this endpoint is only available when Kong is configured to not use a database"}),
            );
        }
        (Method::GET, "/config") => return respond(200, &json!({"config": export(&s)})),
        (Method::POST, "/config") => {
            let check_hash = query.get("check_hash").is_some_and(|v| v == "1");
            let flatten = query.get("flatten_errors").is_some_and(|v| truthy(v));
            return post_config(&mut s, &body, check_hash, flatten);
        }
        _ => {}
    }
    let segments: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let (collection, name) = match segments.as_slice() {
        [collection] => (collection.to_string(), None),
        [collection, name] => (collection.to_string(), Some(name.to_string())),
        _ => return not_found(),
    };
    if !["services", "routes", "filter-chains"].contains(&collection.as_str()) {
        return not_found();
    }
    let schema = schema_name(&collection);
    match (method, name) {
        (Method::GET, Some(name)) => match s.entities.get(&collection).and_then(|m| m.get(&name)) {
            Some(entity) => respond(200, entity),
            None => not_found(),
        },
        (Method::GET, None) => {
            let tag = query.get("tags").cloned();
            let data: Vec<Value> = s
                .entities
                .get(&collection)
                .into_iter()
                .flat_map(|m| m.values())
                .filter(|e| {
                    tag.as_ref().is_none_or(|t| {
                        e["tags"]
                            .as_array()
                            .is_some_and(|tags| tags.iter().any(|x| x == t.as_str()))
                    })
                })
                .cloned()
                .collect();
            respond(200, &json!({"data": data, "next": null}))
        }
        (Method::DELETE, Some(_)) if dbless => respond(
            405,
            &json!({"code": 12, "name": "operation unsupported",
                "message": format!("cannot delete '{schema}' entities when not using a database")}),
        ),
        (Method::DELETE, Some(name)) => {
            if let Some(m) = s.entities.get_mut(&collection) {
                m.remove(&name);
            }
            respond(204, &Value::Null)
        }
        (Method::POST, None) if dbless => respond(
            405,
            &json!({"code": 12, "name": "operation unsupported",
                "message": format!("cannot create '{schema}' entities when not using a database")}),
        ),
        (Method::PUT, Some(_)) if dbless => respond(
            405,
            &json!({"code": 12, "name": "operation unsupported",
                "message": format!("cannot create or update '{schema}' entities by 'name' when not using a database")}),
        ),
        (Method::PUT, Some(name)) => put_entity(&mut s, &collection, &name, body),
        _ => respond(405, &json!({"message": "Method not allowed"})),
    }
}

fn put_entity(s: &mut State, collection: &str, name: &str, body: Value) -> Response<Full<Bytes>> {
    if body["name"] != json!(name) {
        return respond(400, &json!({"message": "name in body and path differ"}));
    }
    let exists = |s: &State, collection: &str, id: &Value| {
        s.entities
            .get(collection)
            .is_some_and(|m| m.values().any(|e| e["id"] == *id))
    };
    let problem = match collection {
        "services" => {
            let errors = service_errors(&body);
            (!errors.is_empty()).then_some(Value::Object(errors))
        }
        "routes" => (!exists(s, "services", &body["service"]["id"]))
            .then(|| json!({"service": "the foreign key does not exist"})),
        _ => {
            if let Some((status, message)) = s.fail_next_chain.take() {
                return respond(status, &json!({"message": message}));
            }
            if !exists(s, "routes", &body["route"]["id"]) {
                Some(json!({"route": "the foreign key does not exist"}))
            } else {
                let errors = chain_errors(&body, &s.settings.config_schema);
                (!errors.is_empty()).then_some(Value::Object(errors))
            }
        }
    };
    if let Some(fields) = problem {
        return respond(
            400,
            &json!({"code": 2, "name": "schema violation", "message": format!("schema violation ({fields})"), "fields": fields}),
        );
    }
    let id = match s.entities.get(collection).and_then(|m| m.get(name)) {
        Some(existing) => existing["id"].clone(),
        None => new_id(&mut s.next_id),
    };
    let mut entity = body;
    entity["id"] = id;
    s.entities
        .entry(collection.to_owned())
        .or_default()
        .insert(name.to_owned(), entity.clone());
    if collection == "filter-chains" {
        reconfigure_workers(s);
    }
    respond(200, &entity)
}

/// Every worker rebuilds its filter chains from what Kong now holds.
fn reconfigure_workers(s: &mut State) {
    let chains: Vec<Value> = s
        .entities
        .get("filter-chains")
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    s.workers.reconfigure(&chains);
}

fn new_id(next: &mut u64) -> Value {
    *next += 1;
    json!(format!("00000000-0000-4000-8000-{:012}", *next))
}

/// Field errors of a service (`{field: message}`).
fn service_errors(service: &Value) -> Map<String, Value> {
    let mut errors = Map::new();
    if service["host"].as_str().is_none() {
        errors.insert("host".into(), json!("required field missing"));
    }
    match service["port"].as_i64() {
        Some(port) if (0..=65535).contains(&port) => {}
        Some(_) => {
            errors.insert("port".into(), json!("value should be between 0 and 65535"));
        }
        None => {
            errors.insert("port".into(), json!("expected an integer"));
        }
    }
    errors
}

/// Field errors of a route.
fn route_errors(route: &Value) -> Map<String, Value> {
    let mut errors = Map::new();
    for (i, path) in route["paths"].as_array().into_iter().flatten().enumerate() {
        if !path.as_str().is_some_and(|p| p.starts_with('/')) {
            errors.insert(format!("paths.{}", i + 1), json!("should start with: /"));
        }
    }
    errors
}

/// Field errors of a filter chain, keyed like Kong's flattened `field` (`filters.1.config`).
fn chain_errors(chain: &Value, schema: &Option<Value>) -> Map<String, Value> {
    let mut errors = Map::new();
    let Some(list) = chain["filters"].as_array().filter(|l| !l.is_empty()) else {
        errors.insert("filters".into(), json!("length must be at least 1"));
        return errors;
    };
    for (i, filter) in list.iter().enumerate() {
        let at = format!("filters.{}", i + 1);
        if filter["name"] != "gateway_wasm" {
            errors.insert(format!("{at}.name"), json!("no such filter"));
            continue;
        }
        let config = &filter["config"];
        let problems = match schema {
            Some(schema) => crate::json_schema::validate(schema, config),
            None if config.is_string() || config.is_null() => Vec::new(),
            None => vec!["expected a string".to_owned()],
        };
        if !problems.is_empty() {
            errors.insert(format!("{at}.config"), json!(problems.join("; ")));
        }
    }
    errors
}

/// A configuration text as Kong's `unserialize` reads it: JSON first, then YAML.
fn parse_text(text: &str) -> Result<Value, String> {
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        return Ok(value);
    }
    serde_norway::from_str::<Value>(text).map_err(|e| e.to_string())
}

fn post_config(
    s: &mut State,
    body: &Value,
    check_hash: bool,
    flatten: bool,
) -> Response<Full<Bytes>> {
    let (doc, new_hash) = if body.get("_format_version").is_some() {
        (body.clone(), None)
    } else {
        let Some(text) = body["config"].as_str() else {
            return respond(
                400,
                &json!({"message": "expected a declarative configuration"}),
            );
        };
        match parse_text(text) {
            Ok(doc) if doc.is_object() => (doc, Some(md5_hex(text))),
            _ => {
                let error = "failed parsing declarative configuration: expected an object";
                return respond(
                    400,
                    &json!({"code": 14, "name": "invalid declarative configuration",
                        "message": format!("declarative config is invalid: {{error=\"{error}\"}}"),
                        "fields": {"error": error}}),
                );
            }
        }
    };
    if check_hash && new_hash.as_deref() == Some(s.hash.as_str()) {
        return respond(304, &Value::Null);
    }
    let schema = s.settings.config_schema.clone();
    let mut next_id = s.next_id;
    match load(&doc, &schema, &mut next_id) {
        Ok(entities) => {
            s.next_id = next_id;
            s.entities = entities;
            s.hash = new_hash.unwrap_or_else(|| md5_hex(&doc.to_string()));
            s.reloads += 1;
            s.loaded = Some(doc);
            reconfigure_workers(s);
            // Kong answers the flattened entities keyed by type and id.
            let mut answer = Map::new();
            for (collection, entities) in &s.entities {
                let by_id: Map<String, Value> = entities
                    .values()
                    .map(|e| (e["id"].as_str().unwrap_or_default().to_owned(), e.clone()))
                    .collect();
                answer.insert(schema_name(collection), Value::Object(by_id));
            }
            respond(201, &Value::Object(answer))
        }
        Err((fields, flattened)) => {
            let mut answer = json!({
                "code": 14,
                "name": "invalid declarative configuration",
                "message": format!("declarative config is invalid: {fields}"),
                "fields": if flatten { json!({}) } else { fields },
            });
            if flatten {
                answer["flattened_errors"] = flattened;
            }
            respond(400, &answer)
        }
    }
}

/// Validates a declarative configuration and builds the entities it declares, or returns Kong's
/// nested `fields` error table and the flattened errors.
#[allow(clippy::type_complexity)]
fn load(
    doc: &Value,
    schema: &Option<Value>,
    next_id: &mut u64,
) -> Result<BTreeMap<String, BTreeMap<String, Value>>, (Value, Value)> {
    let mut entities: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let mut nested = Map::new();
    let mut flattened = Vec::new();
    if !["1.1", "2.1", "3.0"].contains(&doc["_format_version"].as_str().unwrap_or_default()) {
        let error = json!({"_format_version": "expected one of: 1.1, 2.1, 3.0"});
        return Err((error, json!([])));
    }
    let mut flat_error = |kind: &str, entity: &Value, errors: &Map<String, Value>| {
        let mut bare = entity.clone();
        if let Some(object) = bare.as_object_mut() {
            object.remove("routes");
            object.remove("filter_chains");
        }
        let mut entry = json!({
            "entity_type": singular(kind),
            "entity": bare,
            "errors": errors.iter().map(|(field, message)| json!({"type": "field", "field": field, "message": message})).collect::<Vec<_>>(),
        });
        if let Some(name) = entity["name"].as_str() {
            entry["entity_name"] = json!(name);
        }
        flattened.push(entry);
    };
    let mut insert = |collection: &str, entity: Value, next_id: &mut u64| -> Value {
        let mut entity = entity;
        let id = entity.get("id").cloned().unwrap_or_else(|| new_id(next_id));
        entity["id"] = id.clone();
        let key = entity["name"]
            .as_str()
            .or_else(|| entity["username"].as_str())
            .or_else(|| id.as_str())
            .unwrap_or_default()
            .to_owned();
        entities
            .entry(collection.to_owned())
            .or_default()
            .insert(key, entity);
        id
    };
    for (i, service) in doc["services"].as_array().into_iter().flatten().enumerate() {
        let errors = service_errors(service);
        if !errors.is_empty() {
            flat_error("services", service, &errors);
            nested.insert(format!("services.{}", i + 1), Value::Object(errors));
            continue;
        }
        let mut bare = service.clone();
        bare.as_object_mut().unwrap().remove("routes");
        let service_id = insert("services", bare, next_id);
        for (j, route) in service["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let errors = route_errors(route);
            if !errors.is_empty() {
                flat_error("routes", route, &errors);
                nested.insert(
                    format!("services.{}.routes.{}", i + 1, j + 1),
                    Value::Object(errors),
                );
                continue;
            }
            let mut bare = route.clone();
            bare.as_object_mut().unwrap().remove("filter_chains");
            bare["service"] = json!({"id": service_id});
            let route_id = insert("routes", bare, next_id);
            for (k, chain) in route["filter_chains"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let errors = chain_errors(chain, schema);
                if !errors.is_empty() {
                    flat_error("filter_chains", chain, &errors);
                    nested.insert(
                        format!(
                            "services.{}.routes.{}.filter_chains.{}",
                            i + 1,
                            j + 1,
                            k + 1
                        ),
                        Value::Object(errors),
                    );
                    continue;
                }
                let mut chain = chain.clone();
                chain["route"] = json!({"id": route_id});
                chain["enabled"] = chain.get("enabled").cloned().unwrap_or(json!(true));
                insert("filter-chains", chain, next_id);
            }
        }
    }
    // Other kinds are kept as given (not validated here).
    for (kind, list) in doc.as_object().into_iter().flatten() {
        if kind.starts_with('_') || kind == "services" {
            continue;
        }
        for entity in list.as_array().into_iter().flatten() {
            insert(&kind.replace('_', "-"), entity.clone(), next_id);
        }
    }
    if nested.is_empty() {
        Ok(entities)
    } else {
        Err((Value::Object(nested), Value::Array(flattened)))
    }
}

/// `GET /config`'s YAML: flat lists per entity type, foreign keys as ids.
fn export(s: &State) -> String {
    let mut doc = Map::new();
    doc.insert("_format_version".into(), json!("3.0"));
    doc.insert("_transform".into(), json!(false));
    for (collection, entities) in &s.entities {
        let list: Vec<Value> = entities
            .values()
            .map(|e| {
                let mut e = e.clone();
                for foreign in ["service", "route"] {
                    if let Some(id) = e.get(foreign).and_then(|f| f.get("id")).cloned() {
                        e[foreign] = id;
                    }
                }
                e
            })
            .collect();
        doc.insert(schema_name(collection), Value::Array(list));
    }
    serde_norway::to_string(&Value::Object(doc)).unwrap()
}
