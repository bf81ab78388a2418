//! Gateway API conformance vectors for this project.
//!
//! Consumes the neutral vector files in `../shared/conformance/` and produces what the test runners
//! need: [`vectors`] (the file model and [`vectors::load`]), [`snapshot`] (a case → the resolver's
//! input), and [`status`] (checks a `statusCases` entry against the resolver's output). Request
//! cases run natively ([`native`]), through a real Envoy ([`envoy`]) or through the controller-shim's
//! Kong rendering in an emulation of Kong ([`kong`]). [`coverage`] says which cases the runners cannot
//! check (skipped with the reason, never passed), [`grpc_status`] checks a case's gRPC outcome
//! against a gateway's HTTP/2 answer and [`grpc_exchange`] a whole gRPC call (outcome, backend,
//! metadata).

pub mod coverage;
pub mod grpc_status;
pub mod snapshot;
pub mod status;
pub mod vectors;

// Request cases: shared checks, the native target and the pass/fail bookkeeping.
pub mod distribution;
pub mod envoy;
pub mod exchange;
pub mod grpc_exchange;
pub mod kong;
pub mod native;
pub mod native_grpc;
pub mod outcome;
