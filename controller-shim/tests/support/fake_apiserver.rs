//! An in-process fake of the parts of the Kubernetes API server the shim uses, on 127.0.0.1.
//!
//! No API server can be installed on the test machines, and a mock at the client level would not
//! exercise kube-runtime's watcher, which is where list/watch correctness lives. So this speaks the
//! real HTTP protocol, enough for kube-rs:
//! - `GET <collection>`: a list with `metadata.resourceVersion` (the `limit` parameter is accepted
//!   and everything fits in one page); `fieldSelector=type=…` is honoured for Secrets;
//! - `GET <collection>?watch=true&resourceVersion=N`: a chunked stream of JSON watch events
//!   (`ADDED`/`MODIFIED`/`DELETED`, `BOOKMARK` on request) of everything after N, then live events;
//!   a version older than the last [`FakeApiServer::compact`] gets an `ERROR` event with a `410 Gone`
//!   Status, as etcd compaction does; [`FakeApiServer::drop_watches`] ends every open watch stream,
//!   as an API server restart or load balancer timeout does;
//! - `PATCH …/{name}/status` with a JSON merge patch: applied to `status` only, rejected with 409
//!   when the body's `metadata.resourceVersion` is stale, recorded for assertions;
//! - Leases: `GET`/`POST`/`PUT` with resourceVersion conflicts (409) and `AlreadyExists` (409).
//!
//! Tests inject faults with [`FakeApiServer::fail_next`] and mutate objects directly with
//! [`FakeApiServer::apply`] / [`FakeApiServer::delete`] / [`FakeApiServer::delete_silently`].

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
use http_body_util::combinators::BoxBody;
use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::broadcast;

pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// A request the server saw (method, path, query).
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
}

/// A status patch the server applied or refused.
#[derive(Debug, Clone)]
pub struct RecordedPatch {
    pub plural: String,
    pub namespace: String,
    pub name: String,
    pub body: Value,
    pub status: u16,
}

#[derive(Debug, Clone)]
pub(crate) enum Live {
    Event {
        plural: String,
        rv: u64,
        line: String,
    },
    Drop,
}

#[derive(Default)]
pub(crate) struct State {
    rv: u64,
    compacted: u64,
    /// plural → (namespace, name) → object
    objects: BTreeMap<String, BTreeMap<(String, String), Value>>,
    /// (rv, plural, event line)
    history: Vec<(u64, String, String)>,
    seen: Vec<Seen>,
    patches: Vec<RecordedPatch>,
    /// Resources answered with 404 (their CRD is not installed).
    unserved: std::collections::BTreeSet<String>,
    /// (method, plural) → status codes to answer with, in order.
    faults: BTreeMap<(String, String), Vec<u16>>,
}

pub struct FakeApiServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    live: broadcast::Sender<Live>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[path = "fake_apiserver_protocol.rs"]
mod protocol;

#[allow(unused_imports)]
pub use protocol::{Target, merge_patch, parse_path};
use protocol::{api_version_kind, handle};

impl FakeApiServer {
    pub async fn start() -> FakeApiServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            rv: 100,
            ..State::default()
        }));
        let (live, _) = broadcast::channel(1024);
        let task = {
            let state = state.clone();
            let live = live.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = state.clone();
                    let live = live.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request: Request<Incoming>| {
                            let state = state.clone();
                            let live = live.clone();
                            async move { Ok::<_, Infallible>(handle(request, state, live).await) }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        FakeApiServer {
            addr,
            state,
            live,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client for this server (no credentials, plain HTTP).
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    fn emit(&self, state: &mut State, plural: &str, kind: &str, object: &Value) {
        let line = json!({"type": kind, "object": object}).to_string();
        state
            .history
            .push((state.rv, plural.to_owned(), line.clone()));
        let _ = self.live.send(Live::Event {
            plural: plural.to_owned(),
            rv: state.rv,
            line,
        });
    }

    /// Creates or replaces an object (ADDED / MODIFIED event). Returns its new resourceVersion.
    pub fn apply(&self, plural: &str, mut object: Value) -> String {
        let mut state = self.state.lock().unwrap();
        state.rv += 1;
        let rv = state.rv.to_string();
        let (api_version, kind) = api_version_kind(plural);
        object["apiVersion"] = json!(api_version);
        object["kind"] = json!(kind);
        object["metadata"]["resourceVersion"] = json!(rv);
        if object["metadata"]["generation"].is_null() {
            object["metadata"]["generation"] = json!(1);
        }
        let key = (
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            object["metadata"]["name"].as_str().unwrap().to_owned(),
        );
        let existed = state
            .objects
            .entry(plural.to_owned())
            .or_default()
            .insert(key, object.clone())
            .is_some();
        self.emit(
            &mut state,
            plural,
            if existed { "MODIFIED" } else { "ADDED" },
            &object,
        );
        rv
    }

    /// Applies each document of a multi-document YAML manifest in order, to the resource its
    /// `kind` names (the lower-case plural Kubernetes uses for every kind served here).
    pub fn apply_manifests(&self, yaml: &str) {
        for document in serde_norway::Deserializer::from_str(yaml) {
            let object: Value = serde::Deserialize::deserialize(document).unwrap();
            if object.is_null() {
                continue;
            }
            let kind = object["kind"]
                .as_str()
                .expect("every document names its kind")
                .to_ascii_lowercase();
            let plural = if kind.ends_with('s') {
                format!("{kind}es")
            } else {
                format!("{kind}s")
            };
            self.apply(&plural, object);
        }
    }

    /// Deletes an object (DELETED event).
    pub fn delete(&self, plural: &str, namespace: &str, name: &str) {
        let mut state = self.state.lock().unwrap();
        let removed = state
            .objects
            .get_mut(plural)
            .and_then(|m| m.remove(&(namespace.to_owned(), name.to_owned())));
        if let Some(mut object) = removed {
            state.rv += 1;
            object["metadata"]["resourceVersion"] = json!(state.rv.to_string());
            self.emit(&mut state, plural, "DELETED", &object);
        }
    }

    /// Deletes an object without any watcher hearing of it (its event was compacted away); only a
    /// relist can notice.
    pub fn delete_silently(&self, plural: &str, namespace: &str, name: &str) {
        let mut state = self.state.lock().unwrap();
        state.rv += 1;
        if let Some(m) = state.objects.get_mut(plural) {
            m.remove(&(namespace.to_owned(), name.to_owned()));
        }
    }

    /// Forgets history up to now: watches resuming from an older version get 410 Gone. Open watch
    /// streams are ended so that they have to resume.
    pub fn compact(&self) {
        {
            let mut state = self.state.lock().unwrap();
            state.compacted = state.rv;
            state.history.clear();
        }
        self.drop_watches();
    }

    /// Ends every open watch stream (clients re-watch from their last version).
    pub fn drop_watches(&self) {
        let _ = self.live.send(Live::Drop);
    }

    /// Sends a BOOKMARK event to every open watch of `plural`.
    pub fn bookmark(&self, plural: &str) {
        let state = self.state.lock().unwrap();
        let (api_version, kind) = api_version_kind(plural);
        let line = json!({"type": "BOOKMARK", "object": {"apiVersion": api_version, "kind": kind,
            "metadata": {"resourceVersion": state.rv.to_string()}}})
        .to_string();
        let _ = self.live.send(Live::Event {
            plural: plural.to_owned(),
            rv: state.rv,
            line,
        });
    }

    /// The next `method` request on `plural` is answered with `code` (e.g. ("PATCH", "httproutes", 409)).
    pub fn fail_next(&self, method: &str, plural: &str, code: u16) {
        self.state
            .lock()
            .unwrap()
            .faults
            .entry((method.to_owned(), plural.to_owned()))
            .or_default()
            .push(code);
    }

    /// Every request for `plural` gets 404, as when its CRD is not installed.
    pub fn unserve(&self, plural: &str) {
        self.state
            .lock()
            .unwrap()
            .unserved
            .insert(plural.to_owned());
    }

    /// `plural` is served again (the CRD was installed).
    pub fn serve(&self, plural: &str) {
        self.state.lock().unwrap().unserved.remove(plural);
    }

    pub fn object(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        self.state
            .lock()
            .unwrap()
            .objects
            .get(plural)?
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    pub fn patches(&self) -> Vec<RecordedPatch> {
        self.state.lock().unwrap().patches.clone()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// How many list (not watch) requests `plural` got.
    pub fn lists(&self, plural: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| {
                s.method == "GET"
                    && !s.query.contains("watch=true")
                    && parse_path(&s.path).is_some_and(|t| t.plural == plural && t.name.is_none())
            })
            .count()
    }
}
