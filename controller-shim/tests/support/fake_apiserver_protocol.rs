//! The HTTP side of the fake API server: routing, lists, watch streams, status patches, Leases.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use controller_shim::Kind;
use controller_shim::api::Lease;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use kube::api::ApiResource;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{Body, Live, RecordedPatch, Seen, State};

/// The `apiVersion` and `kind` of the objects under a resource path: every kind of the shim's
/// table (their group, version and plural come from the Rust types, i.e. the real API definitions),
/// plus the Lease.
pub(super) fn api_version_kind(plural: &str) -> (String, String) {
    let lease = ApiResource::erase::<Lease>(&());
    Kind::ALL
        .into_iter()
        .map(Kind::api_resource)
        .chain([lease])
        .find(|resource| resource.plural == plural)
        .map(|resource| (resource.api_version, resource.kind))
        .unwrap_or_else(|| panic!("the fake API server does not serve {plural}"))
}

pub(super) fn status_body(code: u16, reason: &str, message: &str) -> Value {
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

pub(super) async fn handle(
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
        if s.unserved.contains(&target.plural) {
            return error(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
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
