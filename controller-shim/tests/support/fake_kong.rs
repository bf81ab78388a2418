//! An in-process fixture of Kong 3.4–3.9's Admin API, for the entities the shim writes.
//!
//! Kong with Wasm cannot be installed here (no package; Wasm left Kong's default builds after 3.9),
//! so this models the documented behaviour the shim relies on:
//! - `PUT /services/{name}`, `PUT /routes/{name}`, `PUT /filter-chains/{name}`: create-or-replace
//!   by endpoint key, answering with the entity including its `id`; `GET` of each; 404 otherwise;
//! - a route's `service.id` and a filter chain's `route.id` must name existing entities;
//! - a filter chain's `filters[].name` must be an installed filter (`gateway_wasm`), and its
//!   `config` is validated like Kong does: against `config_schema` from the filter's `meta.json`
//!   when there is one, otherwise it must be a string (or null);
//! - [`FakeKong::restart`] forgets every entity (DB-less Kong after a restart).
//!
//! Rejections answer 400 with `{"message": …, "fields": …}` like Kong's schema violations.

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
use serde_json::{Value, json};

#[derive(Default)]
struct State {
    /// collection → name → entity
    entities: BTreeMap<String, BTreeMap<String, Value>>,
    requests: Vec<(String, String)>,
    next_id: u64,
    /// Answer the next PUT /filter-chains with this status and message.
    fail_next_chain: Option<(u16, String)>,
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
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
}

impl FakeKong {
    /// `config_schema`: the `config_schema` of `gateway_wasm.meta.json` (None: no meta.json, as on
    /// Kong 3.4 where filter configs are strings).
    pub async fn start(config_schema: Option<Value>) -> FakeKong {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let schema = Arc::new(config_schema);
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = state.clone();
                    let schema = schema.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request: Request<Incoming>| {
                            let state = state.clone();
                            let schema = schema.clone();
                            async move { Ok::<_, Infallible>(handle(request, &state, &schema).await) }
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

    /// (method, path) of every request so far.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn writes(&self) -> usize {
        self.requests().iter().filter(|(m, _)| m == "PUT").count()
    }

    /// Kong restarted in DB-less mode: every entity is gone.
    pub fn restart(&self) {
        self.state.lock().unwrap().entities.clear();
    }

    pub fn fail_next_chain(&self, status: u16, message: &str) {
        self.state.lock().unwrap().fail_next_chain = Some((status, message.to_owned()));
    }
}

async fn handle(
    request: Request<Incoming>,
    state: &Mutex<State>,
    schema: &Option<Value>,
) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let body: Value = {
        let bytes = request.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    let mut s = state.lock().unwrap();
    s.requests.push((method.to_string(), path.clone()));
    let segments: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let [collection, name] = segments.as_slice() else {
        return respond(404, &json!({"message": "Not found"}));
    };
    let (collection, name) = (collection.to_string(), name.to_string());
    if !["services", "routes", "filter-chains"].contains(&collection.as_str()) {
        return respond(404, &json!({"message": "Not found"}));
    }
    match method {
        Method::GET => match s.entities.get(&collection).and_then(|m| m.get(&name)) {
            Some(entity) => respond(200, entity),
            None => respond(404, &json!({"message": "Not found"})),
        },
        Method::PUT => {
            if body["name"] != json!(name) {
                return respond(400, &json!({"message": "name in body and path differ"}));
            }
            let exists = |s: &State, collection: &str, id: &Value| {
                s.entities
                    .get(collection)
                    .is_some_and(|m| m.values().any(|e| e["id"] == *id))
            };
            let problem = match collection.as_str() {
                "services" => (body["host"].as_str().is_none() || body["port"].as_u64().is_none())
                    .then(|| json!({"host": "required field missing"})),
                "routes" => (!exists(&s, "services", &body["service"]["id"]))
                    .then(|| json!({"service": "the foreign key does not exist"})),
                _ => {
                    if let Some((status, message)) = s.fail_next_chain.take() {
                        return respond(status, &json!({"message": message}));
                    }
                    if !exists(&s, "routes", &body["route"]["id"]) {
                        Some(json!({"route": "the foreign key does not exist"}))
                    } else {
                        filters_problem(&body["filters"], schema)
                    }
                }
            };
            if let Some(fields) = problem {
                return respond(
                    400,
                    &json!({"code": 2, "name": "schema violation", "message": format!("schema violation ({fields})"), "fields": fields}),
                );
            }
            let id = match s.entities.get(&collection).and_then(|m| m.get(&name)) {
                Some(existing) => existing["id"].clone(),
                None => {
                    s.next_id += 1;
                    json!(format!("00000000-0000-4000-8000-{:012}", s.next_id))
                }
            };
            let mut entity = body;
            entity["id"] = id;
            s.entities
                .entry(collection)
                .or_default()
                .insert(name, entity.clone());
            respond(200, &entity)
        }
        _ => respond(405, &json!({"message": "Method not allowed"})),
    }
}

fn filters_problem(filters: &Value, schema: &Option<Value>) -> Option<Value> {
    let Some(list) = filters.as_array().filter(|l| !l.is_empty()) else {
        return Some(json!({"filters": "length must be at least 1"}));
    };
    for (i, filter) in list.iter().enumerate() {
        if filter["name"] != "gateway_wasm" {
            return Some(json!({"filters": {i.to_string(): {"name": "no such filter"}}}));
        }
        let config = &filter["config"];
        let errors = match schema {
            Some(schema) => crate::json_schema::validate(schema, config),
            None if config.is_string() || config.is_null() => Vec::new(),
            None => vec!["expected a string".to_owned()],
        };
        if !errors.is_empty() {
            return Some(json!({"filters": {i.to_string(): {"config": errors}}}));
        }
    }
    None
}
