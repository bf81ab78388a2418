//! `/healthz`, `/readyz`, `/metrics`, `/debug/xds` and `/ui` on a small HTTP/1.1 server.
//!
//! `/healthz` answers 200 while the process serves; `/readyz` answers 200 once the first delivery
//! round completed without a failed push, 503 before; `/metrics` is the Prometheus exposition;
//! `/ui/` the playground page with the live configuration ([`super::ui`]); `/debug/xds` (xDS mode)
//! the connected Envoys with the versions they ACKed and their NACKs, as JSON.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

use super::ui::Ui;

fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert("content-type", value);
    }
    response
}

fn route(
    request: &Request<Incoming>,
    metrics: &Metrics,
    xds: Option<&crate::xds::Registry>,
    ui: Option<&Ui>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if let Some(ui) = ui {
        if path == "/ui" {
            let mut response = respond(StatusCode::PERMANENT_REDIRECT, "text/plain", "/ui/\n");
            response
                .headers_mut()
                .insert("location", hyper::header::HeaderValue::from_static("/ui/"));
            return response;
        }
        if let Some(name) = path.strip_prefix("/ui/") {
            let (status, content_type, body) = ui.answer(name);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return respond(status, content_type, body);
        }
    }
    match path {
        "/debug/xds" => match xds {
            Some(registry) => respond(
                StatusCode::OK,
                "application/json",
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&registry.document()).unwrap_or_default()
                ),
            ),
            None => respond(
                StatusCode::NOT_FOUND,
                "text/plain",
                "not serving xDS (no --xds-listen)\n",
            ),
        },
        "/healthz" => respond(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" if metrics.ready() => respond(StatusCode::OK, "text/plain", "ready\n"),
        "/readyz" => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready: the first delivery has not completed\n",
        ),
        "/metrics" => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics.encode(),
        ),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// Binds `addr` and serves until the task is dropped. Returns the bound address (port 0 works).
pub async fn serve_health(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve_health_with(addr, metrics, None, None).await
}

/// [`serve_health`], plus `/debug/xds` from the xDS server's registry when `xds` is given and
/// `/ui` when `ui` is given.
pub async fn serve_health_with(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    xds: Option<crate::xds::Registry>,
    ui: Option<Ui>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let ui = ui.map(Arc::new);
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            let xds = xds.clone();
            let ui = ui.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let response = route(&request, &metrics, xds.as_ref(), ui.as_deref());
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::runtime::LiveView;
    use crate::runtime::ui::Assets;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// `GET path` over a fresh connection; the status line and the body.
    async fn get(addr: SocketAddr, path: &str) -> (String, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        (head.lines().next().unwrap().to_owned(), body.to_owned())
    }

    fn ui() -> (tempfile::TempDir, Ui) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("index.html"),
            r#"<html><meta name="gateway-wasm-mode" content="playground"></html>"#,
        )
        .unwrap();
        let live = Arc::new(LiveView::new("manifests m", "c"));
        let ui = Ui::new(Assets::find(Some(dir.path())).unwrap(), live);
        (dir, ui)
    }

    #[tokio::test]
    async fn one_server_serves_health_debug_xds_and_the_ui_together() {
        let metrics = Arc::new(Metrics::default());
        let registry = crate::xds::Registry::new(metrics.clone());
        let (_dir, ui) = ui();
        let (addr, task) = serve_health_with(
            "127.0.0.1:0".parse().unwrap(),
            metrics,
            Some(registry),
            Some(ui),
        )
        .await
        .unwrap();
        assert_eq!(get(addr, "/healthz").await.0, "HTTP/1.1 200 OK");
        let (status, body) = get(addr, "/debug/xds").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(doc["connected"], 0);
        let (status, body) = get(addr, "/ui/").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(body.contains(r#"content="live""#), "{body}");
        assert_eq!(get(addr, "/ui").await.0, "HTTP/1.1 308 Permanent Redirect");
        task.abort();
    }

    #[tokio::test]
    async fn without_xds_or_ui_those_paths_are_not_found() {
        let metrics = Arc::new(Metrics::default());
        let (addr, task) = serve_health("127.0.0.1:0".parse().unwrap(), metrics)
            .await
            .unwrap();
        let (status, body) = get(addr, "/debug/xds").await;
        assert_eq!(status, "HTTP/1.1 404 Not Found");
        assert!(body.contains("--xds-listen"), "{body}");
        assert_eq!(get(addr, "/ui/").await.0, "HTTP/1.1 404 Not Found");
        assert_eq!(get(addr, "/metrics").await.0, "HTTP/1.1 200 OK");
        task.abort();
    }
}
