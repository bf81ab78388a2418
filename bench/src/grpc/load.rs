//! The gRPC load generator: an in-process loop over HTTP/2 (the `h2` crate), not h2load.
//!
//! h2load can send gRPC-framed POSTs but checks only `:status`, and a gateway's "no route" answer
//! is `:status 200` with `grpc-status: 12`: a misrouted setup would be measured answering
//! UNIMPLEMENTED fast. It also sends one set of headers for every request, and the mix needs a
//! different `:authority` and tenant per call. This loop keeps `connections` h2c connections open,
//! one call in flight on each (as wrk does for HTTP/1.1), cycles through the mix in order across
//! all connections, and checks every answer: `:status` 200, the `grpc-status` the engine expects
//! (from the trailers, or the headers of a trailers-only answer) and, for a forwarded call, that
//! the echo backend that answered is the one the route names. Any other answer counts as an error
//! and fails the run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use prost::Message as _;
use testkit::grpc::EchoResponse;

use crate::load::LoadResult;

/// One call of the mix as the loop sends it, with the answer it must get.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub uri: Uri,
    pub headers: HeaderMap,
    /// The `grpc-status` the call must end with.
    pub grpc_status: u32,
    /// For an OK call: the echo backend's service name that must answer.
    pub backend_service: Option<String>,
}

impl Prepared {
    pub fn new(
        authority: &str,
        path: &str,
        metadata: &[(String, String)],
        grpc_status: u32,
        backend_service: Option<String>,
    ) -> Result<Prepared> {
        let uri = Uri::builder()
            .scheme("http")
            .authority(authority)
            .path_and_query(path)
            .build()
            .with_context(|| format!("{authority}{path} is not a URI"))?;
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        headers.insert("te", HeaderValue::from_static("trailers"));
        for (name, value) in metadata {
            headers.append(
                HeaderName::from_bytes(name.as_bytes())?,
                HeaderValue::from_str(value)?,
            );
        }
        Ok(Prepared {
            uri,
            headers,
            grpc_status,
            backend_service,
        })
    }
}

/// `EchoRequest {}` framed: no compression, length 0.
const EMPTY_MESSAGE: [u8; 5] = [0, 0, 0, 0, 0];

/// What went wrong with one answer (for the first-error message).
type Wrong = String;

struct Tally {
    latencies_us: Vec<u64>,
    wrong: u64,
    errors: u64,
    first_problem: Option<String>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latencies_us: Vec::new(),
            wrong: 0,
            errors: 0,
            first_problem: None,
        }
    }

    /// Counts a wrong answer (`wrong`) or a failed connection or stream, keeping the first problem.
    fn fail(&mut self, problem: String, wrong: bool) {
        if wrong {
            self.wrong += 1;
        } else {
            self.errors += 1;
        }
        self.first_problem.get_or_insert(problem);
    }
}

/// Runs the mix against `addr` for `duration` on `connections` connections and returns wrk's
/// numbers (`status_errors`: wrong answers; `socket_errors`: connection or stream failures), with
/// the first problem seen when there was one.
pub fn run(
    addr: SocketAddr,
    mix: &[Prepared],
    connections: u32,
    duration: Duration,
) -> Result<(LoadResult, Option<String>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the gRPC load runtime")?;
    runtime.block_on(async {
        let mix: Arc<Vec<Prepared>> = Arc::new(mix.to_vec());
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let until = started + duration;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..connections.max(1) {
            let (mix, next) = (mix.clone(), next.clone());
            tasks.spawn(async move { connection(addr, &mix, &next, until).await });
        }
        let mut total = Tally::new();
        while let Some(joined) = tasks.join_next().await {
            let tally = joined.map_err(|e| anyhow!("a load connection panicked: {e}"))?;
            total.latencies_us.extend(tally.latencies_us);
            total.wrong += tally.wrong;
            total.errors += tally.errors;
            total.first_problem = total.first_problem.or(tally.first_problem);
        }
        let elapsed = started.elapsed();
        Ok((
            summarize(total.latencies_us, total.wrong, total.errors, elapsed),
            total.first_problem,
        ))
    })
}

fn summarize(mut latencies: Vec<u64>, wrong: u64, errors: u64, elapsed: Duration) -> LoadResult {
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = ((latencies.len() as f64 * p / 100.0).ceil() as usize)
            .saturating_sub(1)
            .min(latencies.len() - 1);
        latencies.get(index).copied().unwrap_or(0) as f64
    };
    let mean = if latencies.is_empty() {
        0.0
    } else {
        latencies.iter().sum::<u64>() as f64 / latencies.len() as f64
    };
    LoadResult {
        requests: latencies.len() as u64,
        duration_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        status_errors: wrong,
        socket_errors: errors,
        p50_us: percentile(50.0),
        p90_us: percentile(90.0),
        p99_us: percentile(99.0),
        mean_us: mean,
    }
}

/// One connection: calls back to back until `until`.
async fn connection(
    addr: SocketAddr,
    mix: &[Prepared],
    next: &AtomicUsize,
    until: Instant,
) -> Tally {
    let mut tally = Tally::new();
    let sender = match connect(addr).await {
        Ok(sender) => sender,
        Err(e) => {
            tally.fail(format!("connecting: {e:#}"), false);
            return tally;
        }
    };
    while Instant::now() < until {
        let Some(call) = mix.get(next.fetch_add(1, Ordering::Relaxed) % mix.len().max(1)) else {
            break;
        };
        let sent = Instant::now();
        match one_call(sender.clone(), call).await {
            Ok(Ok(())) => {}
            Ok(Err(wrong)) => tally.fail(format!("{}: {wrong}", call.uri), true),
            Err(e) => {
                tally.fail(format!("{}: {e:#}", call.uri), false);
                return tally;
            }
        }
        tally
            .latencies_us
            .push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    tally
}

async fn connect(addr: SocketAddr) -> Result<h2::client::SendRequest<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = h2::client::handshake(stream).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends one call; `Ok(Err(_))` is an answer other than the expected one.
async fn one_call(
    sender: h2::client::SendRequest<Bytes>,
    call: &Prepared,
) -> Result<std::result::Result<(), Wrong>> {
    let mut sender = sender.ready().await?;
    let mut request = http::Request::new(());
    *request.method_mut() = Method::POST;
    *request.uri_mut() = call.uri.clone();
    *request.headers_mut() = call.headers.clone();
    let (response, mut body) = sender.send_request(request, false)?;
    body.send_data(Bytes::from_static(&EMPTY_MESSAGE), true)?;
    let (head, mut received) = response.await?.into_parts();
    if head.status != 200 {
        return Ok(Err(format!(":status {}", head.status)));
    }
    let mut data = BytesMut::new();
    let status_header = if received.is_end_stream() {
        head.headers.get("grpc-status").cloned()
    } else {
        while let Some(chunk) = received.data().await {
            let chunk = chunk?;
            let _ = received.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        received
            .trailers()
            .await?
            .and_then(|t| t.get("grpc-status").cloned())
    };
    let code = status_header
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok());
    if code != Some(call.grpc_status) {
        return Ok(Err(format!(
            "grpc-status {status_header:?}, expected {}",
            call.grpc_status
        )));
    }
    if let Some(expected) = &call.backend_service {
        let service = data
            .get(5..)
            .and_then(|message| EchoResponse::decode(message).ok())
            .and_then(|r| r.assertions)
            .and_then(|a| a.context)
            .map(|c| c.service_name);
        if service.as_deref() != Some(expected.as_str()) {
            return Ok(Err(format!(
                "answered by {service:?}, expected echo backend {expected}"
            )));
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use testkit::EchoIdentity;
    use testkit::grpc::{EchoMethod, GrpcEchoServer};

    use super::*;

    /// Straight at a real echo server: the right calls pass, a wrong backend, a wrong status and
    /// a refused connection all count.
    #[test]
    fn checks_status_and_backend_of_every_call() {
        let server = GrpcEchoServer::start(
            EchoIdentity::new("grpc", "echo-0", "echo-0-pod"),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let echo = EchoMethod::Echo.path();
        let right = Prepared::new("a.example.com", &echo, &[], 0, Some("echo-0".into())).unwrap();
        let (load, problem) = run(
            server.addr(),
            std::slice::from_ref(&right),
            2,
            Duration::from_millis(300),
        )
        .unwrap();
        assert!(load.requests > 0);
        assert_eq!(
            (load.status_errors, load.socket_errors, problem),
            (0, 0, None)
        );

        let other_backend =
            Prepared::new("a.example.com", &echo, &[], 0, Some("echo-1".into())).unwrap();
        let unimplemented = Prepared::new(
            "a.example.com",
            &EchoMethod::EchoThree.path(),
            &[],
            12,
            None,
        )
        .unwrap();
        let (load, problem) = run(
            server.addr(),
            &[right, other_backend, unimplemented.clone()],
            1,
            Duration::from_millis(300),
        )
        .unwrap();
        assert!(load.status_errors > 0 && load.status_errors < load.requests);
        assert!(problem.unwrap().contains("echo-1"));

        let expecting_ok = Prepared {
            grpc_status: 0,
            ..unimplemented
        };
        let (load, _) = run(
            server.addr(),
            &[expecting_ok],
            1,
            Duration::from_millis(100),
        )
        .unwrap();
        assert_eq!(load.status_errors, load.requests);

        let closed = SocketAddr::from(([127, 0, 0, 1], testkit::free_port().unwrap()));
        let (load, problem) = run(closed, &[], 1, Duration::from_millis(100)).unwrap();
        assert_eq!(load.socket_errors, 1);
        assert!(problem.unwrap().contains("connecting"));
    }
}
