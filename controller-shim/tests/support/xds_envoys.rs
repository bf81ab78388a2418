//! What the tests that feed real Envoys over xDS share: an Envoy started from the xDS bootstrap
//! for Gateway `infra/gw`, echo backends, requests, and waiting for an effect.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use controller_shim::envoy::{AdsBootstrap, AdsProtocol, Binding, ads_bootstrap};
use controller_shim::resolution::ObjectKey;
use testkit::client::{HttpClient, Request, Response};
use testkit::echo::{EchoIdentity, EchoServer};
use testkit::envoy::{Envoy, EnvoyOptions as RunOptions};

/// The Gateway every Envoy here serves.
pub fn gateway_key() -> ObjectKey {
    ObjectKey {
        namespace: "infra".into(),
        name: "gw".into(),
    }
}

/// An echo backend in namespace `app` that names itself `service`.
pub fn echo(service: &str) -> EchoServer {
    EchoServer::start(
        EchoIdentity::new("app", service, format!("{service}-0")),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap()
}

/// The echo backend that answered, or what came instead.
pub fn service(response: &Response) -> String {
    response
        .echo()
        .map(|e| e.service)
        .unwrap_or_else(|e| format!("<not an echo: {e}: {}>", response.text()))
}

/// Ports one Envoy binds for Gateway ports 80, 8080 and 443.
pub struct Ports {
    pub http: u16,
    pub unused: u16,
    pub https: u16,
}

/// Starts an Envoy from the ADS bootstrap for `node`, on `protocol`, feeding on `xds`.
pub fn start_envoy(
    xds: SocketAddr,
    protocol: AdsProtocol,
    node: &str,
    dir: &Path,
) -> (Envoy, Ports) {
    let ports = testkit::ports::free_ports(3).unwrap();
    let ports = Ports {
        http: ports[0],
        unused: ports[1],
        https: ports[2],
    };
    let bootstrap = ads_bootstrap(&AdsBootstrap {
        xds_host: xds.ip().to_string(),
        xds_port: xds.port(),
        gateway: gateway_key(),
        node_id: node.into(),
        admin_port: 0,
        protocol,
        binding: Binding {
            bind_address: "127.0.0.1".into(),
            port_offset: 0,
            port_map: BTreeMap::from([(80, ports.http), (8080, ports.unused), (443, ports.https)]),
        },
        edge: controller_shim::envoy::EdgeOptions::default(),
    })
    .unwrap();
    let path = dir.join(format!("{node}.yaml"));
    std::fs::write(&path, bootstrap).unwrap();
    let envoy = Envoy::start(RunOptions::new(&path)).unwrap();
    (envoy, ports)
}

pub fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn get(port: u16, path: &str) -> Result<Response, testkit::client::ClientError> {
    HttpClient::http1(localhost(port))
        .with_timeout(Duration::from_secs(5))
        .send(&Request::get(path).with_host("example.com"))
}

/// Waits until `check` holds, or fails with `what` and Envoy's log.
pub fn eventually(envoy: &Envoy, what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {timeout:?}\n{}",
            envoy.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn routes_to(port: u16, path: &str, expected: &str) -> bool {
    get(port, path).is_ok_and(|r| r.status == 200 && service(&r) == expected)
}
