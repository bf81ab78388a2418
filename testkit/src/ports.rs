//! Loopback port helpers: pick free TCP ports and wait for a listener to come up.
//!
//! `free_port` has the usual race (another process may take the port between our probe and the caller's
//! bind); on a test machine that is rare enough, and callers that start a server on the port should fail
//! loudly when the bind fails. `free_ports` returns several distinct ports at once.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read the port, close the socket).
pub fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0 to find a free port")?;
    let port = listener
        .local_addr()
        .context("reading the local address of a probe socket")?
        .port();
    Ok(port)
}

/// `n` distinct free ports on 127.0.0.1 (all probe sockets are held until every port is chosen).
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let mut listeners = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    for _ in 0..n {
        let listener =
            TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0 to find a free port")?;
        ports.push(
            listener
                .local_addr()
                .context("reading the local address of a probe socket")?
                .port(),
        );
        listeners.push(listener);
    }
    Ok(ports)
}

/// Waits until a TCP connection to `addr` succeeds, polling every 20 ms, for at most `timeout`.
pub fn wait_for_tcp(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let last_error = match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            bail!(
                "nothing accepted TCP connections on {addr} within {timeout:?} (last error: {last_error})"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        TcpListener::bind(("127.0.0.1", port)).unwrap();
    }

    #[test]
    fn free_ports_are_distinct() {
        let mut ports = free_ports(5).unwrap();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 5);
    }

    #[test]
    fn wait_for_tcp_sees_listener_and_times_out_without_one() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        wait_for_tcp(addr, Duration::from_secs(5)).unwrap();
        drop(listener);
        let err = wait_for_tcp(addr, Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
