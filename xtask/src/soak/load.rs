//! The soak's load: a few keep-alive HTTP/1.1 connections to Envoy on loopback, each paced to a
//! share of the request rate, every answer checked against what the configuration means.
//!
//! A request on a reused connection that the server closed just as it was sent (the keep-alive
//! race every HTTP/1.1 client meets, here during Envoy's drain after a hot restart) gets no answer
//! at all; like browsers and curl, the client sends such a GET again once on a new connection and
//! counts it. Any other failure to get an answer is a socket error.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::demo::http::{Echo, Reply, parse_reply, response_complete};

/// What a request should get.
#[derive(Debug, Clone, Copy)]
pub(super) enum Expect {
    /// 200 from this backend (`namespace/service`), always.
    Backend(&'static str),
    /// 200 from whichever backend the current edit names, or 404 while the edit dropped the rule.
    Edited,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Target {
    pub(super) host: &'static str,
    pub(super) path: &'static str,
    pub(super) expect: Expect,
}

/// An answer that was not the 200 its target expects.
#[derive(Debug, Clone)]
pub(super) struct Miss {
    pub(super) at: Instant,
    pub(super) target: Target,
    pub(super) status: u16,
    /// The backend that answered, when it was the wrong one.
    pub(super) backend: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) requests: AtomicU64,
    pub(super) ok: AtomicU64,
    pub(super) stale_retries: AtomicU64,
    pub(super) misses: Mutex<Vec<Miss>>,
    pub(super) socket_errors: Mutex<Vec<(Instant, String)>>,
}

pub(super) struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    pub(super) tally: Arc<Tally>,
}

enum Failure {
    /// A reused connection answered nothing: closed by the server as the request went out.
    Stale(String),
    Socket(String),
}

/// One connection, reconnected when the server closes it.
struct Connection {
    addr: SocketAddr,
    stream: Option<TcpStream>,
}

impl Connection {
    fn exchange(&mut self, request: &[u8]) -> Result<Reply, Failure> {
        let reused = self.stream.is_some();
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))
                    .map_err(|e| Failure::Socket(format!("connect: {e}")))?;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = stream.set_nodelay(true);
                self.stream.insert(stream)
            }
        };
        let result = send(stream, request);
        match result {
            Ok((reply, close)) => {
                if close {
                    self.stream = None;
                }
                Ok(reply)
            }
            Err((answered_nothing, message)) => {
                self.stream = None;
                if reused && answered_nothing {
                    Err(Failure::Stale(message))
                } else {
                    Err(Failure::Socket(message))
                }
            }
        }
    }
}

/// Sends one request and reads its answer; `Err((answered_nothing, why))`.
fn send(stream: &mut TcpStream, request: &[u8]) -> Result<(Reply, bool), (bool, String)> {
    stream
        .write_all(request)
        .map_err(|e| (true, format!("write: {e}")))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Err((raw.is_empty(), format!("closed after {} bytes", raw.len()))),
            Ok(n) => {
                raw.extend_from_slice(buf.get(..n).unwrap_or_default());
                if response_complete(&raw) {
                    break;
                }
            }
            Err(e) => return Err((raw.is_empty(), format!("read: {e}"))),
        }
    }
    let reply = parse_reply(&raw).map_err(|e| (false, format!("{e:#}")))?;
    let close = reply
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close"));
    Ok((reply, close))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tally {
    fn record(&self, target: Target, reply: &Reply) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let backend = Echo::parse(&reply.body).map(|e| e.backend());
        let good = match target.expect {
            Expect::Backend(expected) => {
                reply.status == 200 && backend.as_deref() == Some(expected)
            }
            Expect::Edited => reply.status == 200 && backend.is_some(),
        };
        if good {
            self.ok.fetch_add(1, Ordering::Relaxed);
            return;
        }
        lock(&self.misses).push(Miss {
            at: Instant::now(),
            target,
            status: reply.status,
            backend: if reply.status == 200 { backend } else { None },
        });
    }
}

impl Load {
    /// `connections` threads share `rate` requests per second over `targets`.
    pub(super) fn start(addr: SocketAddr, targets: &[Target], connections: u32, rate: u32) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let interval =
            Duration::from_secs_f64(f64::from(connections.max(1)) / f64::from(rate.max(1)));
        let threads = (0..connections.max(1))
            .map(|n| {
                let (stop, tally) = (Arc::clone(&stop), Arc::clone(&tally));
                let targets = targets.to_vec();
                std::thread::spawn(move || {
                    let mut connection = Connection { addr, stream: None };
                    let mut next = Instant::now();
                    let mut i = n as usize;
                    while !stop.load(Ordering::Relaxed) {
                        next += interval;
                        std::thread::sleep(next.saturating_duration_since(Instant::now()));
                        let Some(target) = targets.get(i % targets.len().max(1)).copied() else {
                            return;
                        };
                        i += 1;
                        let request = format!(
                            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: gateway-wasm-soak\r\n\r\n",
                            target.path, target.host
                        );
                        let mut outcome = connection.exchange(request.as_bytes());
                        if matches!(outcome, Err(Failure::Stale(_))) {
                            tally.stale_retries.fetch_add(1, Ordering::Relaxed);
                            outcome = connection.exchange(request.as_bytes());
                        }
                        match outcome {
                            Ok(reply) => tally.record(target, &reply),
                            Err(Failure::Stale(why) | Failure::Socket(why)) => {
                                tally.requests.fetch_add(1, Ordering::Relaxed);
                                lock(&tally.socket_errors).push((Instant::now(), why));
                                // Do not spin on a dead server.
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            threads,
            tally,
        }
    }

    /// Stops the connections and returns what they saw.
    pub(super) fn finish(self) -> Arc<Tally> {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
        self.tally
    }
}
