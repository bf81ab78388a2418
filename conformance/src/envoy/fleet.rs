//! The echo backends behind the real-Envoy target: one echo server per Service port on loopback,
//! started on first use and kept for the whole run, and EndpointSlices that point the resolver at
//! them. A Service marked `grpcEcho` gets the suite's gRPC echo server (h2c) instead of the HTTP
//! one, as its pods run `echo-basic` in gRPC mode.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::Context;
use controller_shim::api::discovery::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use controller_shim::api::meta::ObjectMeta;
use testkit::grpc::GrpcEchoServer;
use testkit::{EchoIdentity, EchoServer};

use crate::vectors::ServiceSpec;

/// The Service whose pods selector-less and headless test Services resolve to (the suite fills
/// their EndpointSlices with `infra-backend-v1`'s pod addresses).
const ENDPOINTS_DONOR: (&str, &str) = ("gateway-conformance-infra", "infra-backend-v1");

/// One Service port's backend: the HTTP echo server or the gRPC echo server.
pub enum Backend {
    Http(EchoServer),
    Grpc(GrpcEchoServer),
}

impl Backend {
    pub fn addr(&self) -> SocketAddr {
        match self {
            Backend::Http(server) => server.addr(),
            Backend::Grpc(server) => server.addr(),
        }
    }

    /// Requests (HTTP requests or gRPC calls) the backend received so far.
    pub fn request_count(&self) -> u64 {
        match self {
            Backend::Http(server) => server.request_count(),
            Backend::Grpc(server) => server.request_count(),
        }
    }
}

/// `(namespace, service, port)` → a running echo server.
#[derive(Default)]
pub struct Fleet {
    servers: BTreeMap<(String, String, i32), Backend>,
}

impl Fleet {
    /// The echo server for a Service port, started when first asked for (the gRPC one when
    /// `grpc`).
    pub fn server(
        &mut self,
        namespace: &str,
        service: &str,
        port: i32,
        grpc: bool,
    ) -> anyhow::Result<&Backend> {
        let key = (namespace.to_owned(), service.to_owned(), port);
        if !self.servers.contains_key(&key) {
            let identity = EchoIdentity::new(namespace, service, format!("{service}-{port}-0"));
            let bind: SocketAddr = ([127, 0, 0, 1], 0).into();
            let started = if grpc {
                GrpcEchoServer::start(identity, bind).map(Backend::Grpc)
            } else {
                EchoServer::start(identity, bind).map(Backend::Http)
            };
            let kind = if grpc { "gRPC echo" } else { "echo" };
            let server = started.with_context(|| {
                format!("starting the {kind} backend for {namespace}/{service}:{port}")
            })?;
            self.servers.insert(key.clone(), server);
        }
        self.servers.get(&key).context("echo server vanished")
    }

    /// The server that answers for `namespace/service` (any port), if it was started.
    pub fn find(&self, backend: &str) -> Vec<&Backend> {
        self.servers
            .iter()
            .filter(|((ns, svc, _), _)| format!("{ns}/{svc}") == backend)
            .map(|(_, server)| server)
            .collect()
    }

    /// EndpointSlices for `services`, each port pointing at its loopback echo server. Services
    /// without a selector, and headless ones, get the donor's servers, as in the suite.
    pub fn endpoint_slices(
        &mut self,
        services: &[&ServiceSpec],
    ) -> anyhow::Result<Vec<EndpointSlice>> {
        let mut slices = Vec::new();
        for spec in services {
            let donor = spec.selector_less() || spec.headless;
            let mut ports = Vec::new();
            for port in &spec.ports {
                let server = if donor {
                    self.server(ENDPOINTS_DONOR.0, ENDPOINTS_DONOR.1, 8080, false)?
                } else {
                    self.server(&spec.namespace, &spec.name, port.port, spec.grpc_echo)?
                };
                // One slice per port: EndpointSlice ports apply to every endpoint of the slice, and
                // each Service port has its own loopback server.
                ports.push((port, server.addr()));
            }
            for (i, (port, addr)) in ports.into_iter().enumerate() {
                slices.push(EndpointSlice {
                    address_type: "IPv4".to_owned(),
                    endpoints: Some(vec![Endpoint {
                        addresses: vec![addr.ip().to_string()],
                        conditions: Some(EndpointConditions {
                            ready: Some(true),
                            serving: Some(true),
                            terminating: Some(false),
                        }),
                        ..Endpoint::default()
                    }]),
                    metadata: ObjectMeta {
                        namespace: Some(spec.namespace.clone()),
                        name: Some(format!("{}-loopback-{i}", spec.name)),
                        labels: Some(BTreeMap::from([(
                            "kubernetes.io/service-name".to_owned(),
                            spec.name.clone(),
                        )])),
                        ..ObjectMeta::default()
                    },
                    ports: Some(vec![EndpointPort {
                        name: Some(port.name.clone().unwrap_or_default()),
                        port: Some(i32::from(addr.port())),
                        protocol: Some("TCP".to_owned()),
                        app_protocol: port.app_protocol.clone(),
                    }]),
                });
            }
        }
        Ok(slices)
    }
}
