//! One listening port for everything an xDS-mode Envoy asks the shim: the ADS gRPC service (both
//! variants) and `GET /modules/sha256/<hex>.wasm`, the filter module its extension config names.
//! HTTP/1.1 and HTTP/2 (h2c, which gRPC needs) are told apart per connection.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tonic::codegen::Service as _;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::catalog::Hub;
use super::nodes::Registry;
use super::stream::StreamContext;
use super::{ads, delta, sotw};
use crate::envoy::MODULE_PATH_PREFIX;

/// The modules the shim serves, by sha256: the current one and the few before it (an Envoy that
/// has not switched yet may still ask for its module).
#[derive(Debug, Clone)]
pub struct ModuleStore {
    modules: Arc<Mutex<BTreeMap<String, (u64, Bytes)>>>,
    /// How long each `(connection's peer, sha256)` download took, and a tick per download.
    downloads: Arc<Mutex<BTreeMap<(SocketAddr, String), Duration>>>,
    downloaded: watch::Sender<u64>,
}

impl Default for ModuleStore {
    fn default() -> ModuleStore {
        let (downloaded, _) = watch::channel(0);
        ModuleStore {
            modules: Arc::default(),
            downloads: Arc::default(),
            downloaded,
        }
    }
}

/// How many modules stay downloadable.
const KEPT_MODULES: usize = 3;

impl ModuleStore {
    /// Adds a module (its sha256 is computed here); the oldest beyond [`KEPT_MODULES`] goes.
    pub fn insert(&self, sha256: &str, bytes: Bytes) {
        let mut modules = self.modules.lock().unwrap_or_else(PoisonError::into_inner);
        let next = modules.values().map(|(n, _)| *n).max().unwrap_or(0) + 1;
        modules.insert(sha256.to_owned(), (next, bytes));
        while modules.len() > KEPT_MODULES {
            let oldest = modules
                .iter()
                .min_by_key(|(_, (n, _))| *n)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(key) => modules.remove(&key),
                None => break,
            };
        }
    }

    /// How long the download of module `sha256` by the Envoy on the connection from `peer` took,
    /// once its last byte was sent (the ADS stream and Envoy's module download share that
    /// connection).
    pub fn downloaded(&self, peer: SocketAddr, sha256: &str) -> Option<Duration> {
        self.downloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(peer, sha256.to_owned()))
            .copied()
    }

    /// Ticks when a download completes.
    pub fn subscribe_downloads(&self) -> watch::Receiver<u64> {
        self.downloaded.subscribe()
    }

    fn record_download(&self, peer: SocketAddr, sha256: &str, took: Duration) {
        self.downloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((peer, sha256.to_owned()), took);
        self.downloaded.send_modify(|n| *n = n.wrapping_add(1));
        tracing::debug!(%peer, %sha256, ?took, "module sent");
    }

    pub fn get(&self, sha256: &str) -> Option<Bytes> {
        self.modules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(sha256)
            .map(|(_, b)| b.clone())
    }
}

/// The peer address of a connection, carried to the gRPC handlers in the request extensions.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

#[derive(Debug, Clone)]
struct Ads {
    hub: Arc<Hub>,
    registry: Registry,
    modules: ModuleStore,
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// How many responses may wait for a slow Envoy before the stream's task waits too.
const STREAM_BUFFER: usize = 16;

fn peer<T>(request: &Request<T>) -> Option<SocketAddr> {
    request.extensions().get::<Peer>().map(|p| p.0)
}

fn peer_text(peer: Option<SocketAddr>) -> String {
    peer.map(|p| p.to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        Ok(Response::new(self.start::<sotw::Sotw>(request, "sotw")))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Ok(Response::new(self.start::<delta::Delta>(request, "delta")))
    }
}

impl Ads {
    /// Registers the stream (`protocol` names the variant in the status report) and starts its
    /// task.
    fn start<V: ads::Variant + Default + 'static>(
        &self,
        request: Request<Streaming<V::Request>>,
        protocol: &'static str,
    ) -> ResponseStream<V::Response> {
        let peer = peer(&request);
        let connection = self.registry.connect(peer_text(peer), protocol);
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let context = StreamContext {
            catalog: self.hub.subscribe(),
            connection,
            modules: self.modules.clone(),
            peer,
        };
        tokio::spawn(ads::run(request.into_inner(), tx, context, V::default()));
        Box::pin(receiver_stream(rx))
    }
}

fn receiver_stream<T: Send + 'static>(
    rx: mpsc::Receiver<Result<T, Status>>,
) -> impl Stream<Item = Result<T, Status>> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

fn plain(status: http::StatusCode, text: &str) -> http::Response<tonic::body::Body> {
    let mut response = http::Response::new(tonic::body::Body::new(Full::new(Bytes::from(
        format!("{text}\n"),
    ))));
    *response.status_mut() = status;
    response
}

/// A body that reports when its last byte was handed to the connection.
struct Reported {
    inner: Full<Bytes>,
    done: Option<Box<dyn FnOnce() + Send>>,
}

impl hyper::body::Body for Reported {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(None) = frame
            && let Some(done) = self.done.take()
        {
            done();
        }
        frame
    }
}

/// `/modules/sha256/<hex>.wasm`.
fn module_response(
    path: &str,
    modules: &ModuleStore,
    peer: SocketAddr,
) -> http::Response<tonic::body::Body> {
    let sha256 = path
        .strip_prefix(MODULE_PATH_PREFIX)
        .and_then(|rest| rest.strip_suffix(".wasm"))
        .unwrap_or_default()
        .to_owned();
    match modules.get(&sha256) {
        Some(bytes) => {
            let store = modules.clone();
            let started = Instant::now();
            let body = Reported {
                inner: Full::new(bytes),
                done: Some(Box::new(move || {
                    store.record_download(peer, &sha256, started.elapsed());
                })),
            };
            let mut response = http::Response::new(tonic::body::Body::new(body));
            if let Ok(value) = "application/wasm".parse() {
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_TYPE, value);
            }
            response
        }
        None => plain(
            http::StatusCode::NOT_FOUND,
            &format!("no module with sha256 {sha256:?} here"),
        ),
    }
}

/// Binds `addr` and serves until the task is dropped. Returns the bound address (port 0 works).
pub async fn serve(
    addr: SocketAddr,
    hub: Arc<Hub>,
    registry: Registry,
    modules: ModuleStore,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let ads = AggregatedDiscoveryServiceServer::new(Ads {
        hub,
        registry,
        modules: modules.clone(),
    })
    .max_decoding_message_size(16 << 20);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, remote)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let ads = ads.clone();
            let modules = modules.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                        let mut ads = ads.clone();
                        let modules = modules.clone();
                        async move {
                            let path = request.uri().path().to_owned();
                            if path.starts_with(MODULE_PATH_PREFIX) {
                                return Ok::<_, Infallible>(module_response(
                                    &path, &modules, remote,
                                ));
                            }
                            if path.starts_with(
                                "/envoy.service.discovery.v3.AggregatedDiscoveryService/",
                            ) {
                                request.extensions_mut().insert(Peer(remote));
                                return ads.call(request).await;
                            }
                            Ok(plain(http::StatusCode::NOT_FOUND, "not found"))
                        }
                    });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if let Err(error) = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%remote, %error, "xDS connection ended");
                }
            });
        }
    });
    Ok((bound, task))
}
