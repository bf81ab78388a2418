//! What the HTTP and the gRPC echo servers share: a runtime of their own for synchronous callers,
//! binding a listener, the accept loop, stopping, and the log of requests received.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpStream;
use tokio::task::{JoinHandle, JoinSet};

use crate::echo::{HISTORY_CAPACITY, RecordedRequest};

/// A poisoned lock still holds consistent data here (counters and logs): keep using it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A one-worker runtime a server owns when started from synchronous code.
pub(crate) fn own_runtime(thread_name: &str) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(thread_name)
        .enable_all()
        .build()
        .with_context(|| format!("building the {thread_name} tokio runtime"))
}

/// Binds `bind` (port 0 picks a free port) and registers it with the current runtime.
pub(crate) fn bind(bind: SocketAddr, what: &str) -> Result<(tokio::net::TcpListener, SocketAddr)> {
    let std_listener =
        std::net::TcpListener::bind(bind).with_context(|| format!("{what}: binding {bind}"))?;
    std_listener
        .set_nonblocking(true)
        .with_context(|| format!("{what}: making the listener on {bind} non-blocking"))?;
    let addr = std_listener
        .local_addr()
        .with_context(|| format!("{what}: reading the bound address of {bind}"))?;
    let listener = tokio::net::TcpListener::from_std(std_listener)
        .with_context(|| format!("{what}: registering the listener on {addr}"))?;
    Ok((listener, addr))
}

/// Accepts connections forever, serving each on its own task. Dropping the returned future (when
/// its task is aborted) aborts every connection task too.
pub(crate) async fn accept_loop<F, Fut>(listener: tokio::net::TcpListener, mut serve: F)
where
    F: FnMut(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((stream, _peer)) => {
                        let _ = stream.set_nodelay(true);
                        connections.spawn(serve(stream));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Stops a server: its accept loop (and so its connections), then its own runtime if it has one.
pub(crate) fn stop(accept_task: &JoinHandle<()>, runtime: Option<tokio::runtime::Runtime>) {
    accept_task.abort();
    if let Some(runtime) = runtime {
        if tokio::runtime::Handle::try_current().is_ok() {
            runtime.shutdown_background();
        } else {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// Requests counted and the most recent ones kept (at most [`HISTORY_CAPACITY`]).
pub(crate) struct RequestLog {
    count: AtomicU64,
    recent: Mutex<VecDeque<RecordedRequest>>,
}

impl RequestLog {
    pub(crate) fn new() -> RequestLog {
        RequestLog {
            count: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::with_capacity(64)),
        }
    }

    /// Counts a request and keeps it; `request` gets the 1-based arrival number.
    pub(crate) fn record(&self, request: impl FnOnce(u64) -> RecordedRequest) {
        let seq = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        let mut recent = lock(&self.recent);
        if recent.len() >= HISTORY_CAPACITY {
            recent.pop_front();
        }
        recent.push_back(request(seq));
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// The last `n` requests, oldest first.
    pub(crate) fn recent(&self, n: usize) -> Vec<RecordedRequest> {
        let recent = lock(&self.recent);
        let skip = recent.len().saturating_sub(n);
        recent.iter().skip(skip).cloned().collect()
    }

    pub(crate) fn clear(&self) {
        let mut recent = lock(&self.recent);
        recent.clear();
        self.count.store(0, Ordering::SeqCst);
    }
}
