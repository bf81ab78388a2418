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
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::broadcast;

type Body = BoxBody<Bytes, Infallible>;

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
enum Live {
    Event {
        plural: String,
        rv: u64,
        line: String,
    },
    Drop,
}

#[derive(Default)]
struct State {
    rv: u64,
    compacted: u64,
    /// plural → (namespace, name) → object
    objects: BTreeMap<String, BTreeMap<(String, String), Value>>,
    /// (rv, plural, event line)
    history: Vec<(u64, String, String)>,
    seen: Vec<Seen>,
    patches: Vec<RecordedPatch>,
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

fn api_version_kind(plural: &str) -> (&'static str, &'static str) {
    match plural {
        "gatewayclasses" => ("gateway.networking.k8s.io/v1", "GatewayClass"),
        "gateways" => ("gateway.networking.k8s.io/v1", "Gateway"),
        "listenersets" => ("gateway.networking.k8s.io/v1", "ListenerSet"),
        "httproutes" => ("gateway.networking.k8s.io/v1", "HTTPRoute"),
        "referencegrants" => ("gateway.networking.k8s.io/v1", "ReferenceGrant"),
        "services" => ("v1", "Service"),
        "namespaces" => ("v1", "Namespace"),
        "secrets" => ("v1", "Secret"),
        "endpointslices" => ("discovery.k8s.io/v1", "EndpointSlice"),
        "leases" => ("coordination.k8s.io/v1", "Lease"),
        other => panic!("the fake API server does not serve {other}"),
    }
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn full(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

fn error(code: u16, reason: &str, message: &str) -> Response<Body> {
    full(
        StatusCode::from_u16(code).unwrap(),
        &status_body(code, reason, message),
    )
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            let map = target.as_object_mut().unwrap();
            for (key, value) in fields {
                if value.is_null() {
                    map.remove(key);
                } else {
                    merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// A parsed request path.
#[derive(Debug)]
pub struct Target {
    pub plural: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub status: bool,
}

pub fn parse_path(path: &str) -> Option<Target> {
    let rest = if let Some(rest) = path.strip_prefix("/api/v1/") {
        rest
    } else {
        let rest = path.strip_prefix("/apis/")?;
        let mut parts = rest.splitn(3, '/');
        parts.next()?;
        parts.next()?;
        parts.next()?
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let (namespace, segments) = if segments.len() >= 3 && segments[0] == "namespaces" {
        (Some(segments[1].to_owned()), &segments[2..])
    } else {
        (None, &segments[..])
    };
    Some(Target {
        plural: segments.first()?.to_string(),
        namespace,
        name: segments.get(1).map(|s| s.to_string()),
        status: segments.get(2) == Some(&"status"),
    })
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn selected(plural: &str, object: &Value, field_selector: Option<&str>) -> bool {
    match (plural, field_selector) {
        ("secrets", Some(selector)) => selector.split(',').all(|term| match term.split_once('=') {
            Some(("type", value)) => object["type"].as_str() == Some(value),
            _ => true,
        }),
        _ => true,
    }
}

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

async fn handle(
    request: Request<Incoming>,
    state: Arc<Mutex<State>>,
    live: broadcast::Sender<Live>,
) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let Some(target) = parse_path(&path) else {
        return error(404, "NotFound", &format!("no route {path}"));
    };
    {
        let mut s = state.lock().unwrap();
        s.seen.push(Seen {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
        });
        let fault = s
            .faults
            .get_mut(&(method.to_string(), target.plural.clone()))
            .and_then(|codes| (!codes.is_empty()).then(|| codes.remove(0)));
        if let Some(code) = fault {
            if method == Method::PATCH {
                s.patches.push(RecordedPatch {
                    plural: target.plural.clone(),
                    namespace: target.namespace.clone().unwrap_or_default(),
                    name: target.name.clone().unwrap_or_default(),
                    body: Value::Null,
                    status: code,
                });
            }
            return error(code, "Injected", "injected fault");
        }
    }
    let body: Value = {
        let bytes = request.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    match (method.clone(), &target) {
        (Method::GET, Target { name: None, .. }) if query.contains("watch=true") => {
            watch(&target, &query, &state, &live)
        }
        (Method::GET, Target { name: None, .. }) => list(&target, &query, &state),
        (
            Method::GET,
            Target {
                name: Some(name), ..
            },
        ) => {
            let s = state.lock().unwrap();
            let key = (target.namespace.clone().unwrap_or_default(), name.clone());
            match s.objects.get(&target.plural).and_then(|m| m.get(&key)) {
                Some(object) => full(StatusCode::OK, object),
                None => error(
                    404,
                    "NotFound",
                    &format!("{} {name} not found", target.plural),
                ),
            }
        }
        (Method::POST, Target { name: None, .. }) => {
            let mut s = state.lock().unwrap();
            let name = body["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let key = (target.namespace.clone().unwrap_or_default(), name.clone());
            if s.objects
                .get(&target.plural)
                .is_some_and(|m| m.contains_key(&key))
            {
                return error(
                    409,
                    "AlreadyExists",
                    &format!("{} {name} already exists", target.plural),
                );
            }
            s.rv += 1;
            let mut object = body;
            object["metadata"]["resourceVersion"] = json!(s.rv.to_string());
            object["metadata"]["namespace"] = json!(key.0);
            s.objects
                .entry(target.plural.clone())
                .or_default()
                .insert(key, object.clone());
            full(StatusCode::CREATED, &object)
        }
        (
            Method::PUT,
            Target {
                name: Some(name), ..
            },
        ) => {
            let mut s = state.lock().unwrap();
            let key = (target.namespace.clone().unwrap_or_default(), name.clone());
            let Some(current) = s
                .objects
                .get(&target.plural)
                .and_then(|m| m.get(&key))
                .cloned()
            else {
                return error(
                    404,
                    "NotFound",
                    &format!("{} {name} not found", target.plural),
                );
            };
            if body["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
                return error(
                    409,
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version and try again",
                );
            }
            s.rv += 1;
            let mut object = body;
            object["metadata"]["resourceVersion"] = json!(s.rv.to_string());
            s.objects
                .entry(target.plural.clone())
                .or_default()
                .insert(key, object.clone());
            full(StatusCode::OK, &object)
        }
        (
            Method::PATCH,
            Target {
                name: Some(name),
                status: true,
                ..
            },
        ) => patch_status(&target, name, body, &state, &live),
        _ => error(405, "MethodNotAllowed", &format!("{method} {path}")),
    }
}

fn list(target: &Target, query: &str, state: &Arc<Mutex<State>>) -> Response<Body> {
    let s = state.lock().unwrap();
    let selector = query_param(query, "fieldSelector");
    let items: Vec<Value> = s
        .objects
        .get(&target.plural)
        .map(|m| {
            m.iter()
                .filter(|((ns, _), _)| target.namespace.as_ref().is_none_or(|want| want == ns))
                .map(|(_, o)| o.clone())
                .filter(|o| selected(&target.plural, o, selector.as_deref()))
                .collect()
        })
        .unwrap_or_default();
    let (api_version, kind) = api_version_kind(&target.plural);
    full(
        StatusCode::OK,
        &json!({"apiVersion": api_version, "kind": format!("{kind}List"),
                "metadata": {"resourceVersion": s.rv.to_string()}, "items": items}),
    )
}

fn watch(
    target: &Target,
    query: &str,
    state: &Arc<Mutex<State>>,
    live: &broadcast::Sender<Live>,
) -> Response<Body> {
    let mut receiver = live.subscribe();
    let from: u64 = query_param(query, "resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let selector = query_param(query, "fieldSelector");
    let plural = target.plural.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
    let backlog: Vec<(u64, String)> = {
        let s = state.lock().unwrap();
        if from < s.compacted {
            let line = json!({"type": "ERROR", "object": status_body(410, "Expired",
                &format!("too old resource version: {from} ({})", s.compacted))})
            .to_string();
            let _ = tx.try_send(Ok(Frame::data(Bytes::from(format!("{line}\n")))));
            drop(tx);
            return stream_response(rx);
        }
        s.history
            .iter()
            .filter(|(rv, p, _)| *rv > from && *p == plural)
            .map(|(rv, _, line)| (*rv, line.clone()))
            .collect()
    };
    let keep = move |line: &str| {
        let value: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        selected(&plural, &value["object"], selector.as_deref())
    };
    let plural = target.plural.clone();
    tokio::spawn(async move {
        let mut last = from;
        for (rv, line) in backlog {
            last = rv;
            if keep(&line)
                && tx
                    .send(Ok(Frame::data(Bytes::from(format!("{line}\n")))))
                    .await
                    .is_err()
            {
                return;
            }
        }
        loop {
            match receiver.recv().await {
                Ok(Live::Event {
                    plural: p,
                    rv,
                    line,
                }) if p == plural && (rv > last || line.contains("\"BOOKMARK\"")) => {
                    last = last.max(rv);
                    if keep(&line)
                        && tx
                            .send(Ok(Frame::data(Bytes::from(format!("{line}\n")))))
                            .await
                            .is_err()
                    {
                        return;
                    }
                }
                Ok(Live::Drop) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    stream_response(rx)
}

fn stream_response(
    rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>,
) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut response = Response::new(StreamBody::new(stream).boxed());
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

fn patch_status(
    target: &Target,
    name: &str,
    body: Value,
    state: &Arc<Mutex<State>>,
    live: &broadcast::Sender<Live>,
) -> Response<Body> {
    let mut s = state.lock().unwrap();
    let key = (
        target.namespace.clone().unwrap_or_default(),
        name.to_owned(),
    );
    let mut record = RecordedPatch {
        plural: target.plural.clone(),
        namespace: key.0.clone(),
        name: name.to_owned(),
        body: body.clone(),
        status: 200,
    };
    let Some(mut object) = s
        .objects
        .get(&target.plural)
        .and_then(|m| m.get(&key))
        .cloned()
    else {
        record.status = 404;
        s.patches.push(record);
        return error(
            404,
            "NotFound",
            &format!("{} {name} not found", target.plural),
        );
    };
    if let Some(version) = body["metadata"]["resourceVersion"].as_str()
        && Some(version) != object["metadata"]["resourceVersion"].as_str()
    {
        record.status = 409;
        s.patches.push(record);
        return error(
            409,
            "Conflict",
            "the object has been modified; please apply your changes to the latest version and try again",
        );
    }
    // The status subresource ignores everything but `status`.
    merge_patch(&mut object["status"], &body["status"]);
    s.rv += 1;
    object["metadata"]["resourceVersion"] = json!(s.rv.to_string());
    s.objects
        .entry(target.plural.clone())
        .or_default()
        .insert(key, object.clone());
    s.patches.push(record);
    let line = json!({"type": "MODIFIED", "object": object}).to_string();
    let rv = s.rv;
    s.history.push((rv, target.plural.clone(), line.clone()));
    let _ = live.send(Live::Event {
        plural: target.plural.clone(),
        rv,
        line,
    });
    full(StatusCode::OK, &object)
}
