//! The upstream every setup forwards to: a static responder (hyper HTTP/1.1, keep-alive, `200 ok`
//! with a 2-byte body, one thread). It does as little per request as an HTTP server can, so the
//! proxy, not the upstream, is what the numbers measure; it runs as a child process pinned to the
//! load generator's CPU, and the harness reports how busy that CPU was.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use crate::sys;

/// Serves until killed (the `upstream` subcommand), or until the harness that started it is gone.
pub fn serve(port: u16) -> Result<()> {
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(500));
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(0);
            }
        }
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the upstream's runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{port}"))?;
        loop {
            let (stream, _) = listener.accept().await.context("accepting")?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_request: Request<hyper::body::Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// The upstream child process; killed when dropped.
pub struct Upstream {
    child: Child,
    pub addr: SocketAddr,
}

impl Upstream {
    /// Starts `<this binary> upstream --port P` (pinned to `cpu`) and waits until it accepts.
    pub fn spawn(cpu: Option<usize>) -> Result<Upstream> {
        let port = testkit::free_port()?;
        let exe = std::env::current_exe().context("finding this binary")?;
        let child = sys::pinned_command(Path::new(&exe), cpu)
            .args(["upstream", "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting the upstream")?;
        let upstream = Upstream {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        testkit::wait_for_tcp(upstream.addr, Duration::from_secs(10))?;
        Ok(upstream)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
