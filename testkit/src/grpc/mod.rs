//! gRPC for tests: the Gateway API conformance suite's echo service and a client that reports what
//! the wire carried.
//!
//! - [`proto`]: the messages of the suite's `grpcecho.proto`, written with prost's derive (no
//!   `protoc` at build time), and [`EchoMethod`] (`Echo`, `EchoTwo`, the unimplemented `EchoThree`).
//! - [`server`]: [`GrpcEchoServer`], the suite's echo server (h2c or TLS), in-process; also the
//!   `echo-backend --grpc` binary.
//! - [`client`]: [`GrpcClient`], unary calls over h2c or TLS with `:authority`, metadata and a
//!   deadline, returning the raw HTTP/2 answer and the status a grpc-go client reports.
//! - [`status`]: [`GrpcAnswer`] and how grpc-go reads one ([`read_unary`]), with gRPC codes by name.
//!
//! # Example
//!
//! ```
//! use testkit::EchoIdentity;
//! use testkit::grpc::{EchoMethod, GrpcClient, GrpcCode, GrpcEchoServer, GrpcRequest};
//!
//! let server = GrpcEchoServer::start(EchoIdentity::new("ns", "svc", "svc-pod-1"), "127.0.0.1:0".parse()?)?;
//! let call = GrpcClient::h2c(server.addr())
//!     .echo(&GrpcRequest::echo(EchoMethod::Echo).with_authority("grpc.example.com").with_metadata("x-a", "1"))?;
//! assert_eq!(call.code(), GrpcCode::OK);
//! let seen = call.response.unwrap_or_default().assertions.unwrap_or_default();
//! assert_eq!(seen.authority, "grpc.example.com");
//! assert_eq!(seen.header("x-a").as_deref(), Some("1"));
//! assert_eq!(seen.context.unwrap_or_default().pod, "svc-pod-1");
//!
//! let unimplemented = GrpcClient::h2c(server.addr()).echo(&GrpcRequest::echo(EchoMethod::EchoThree))?;
//! assert_eq!(unimplemented.code(), GrpcCode::UNIMPLEMENTED);
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod client;
pub mod proto;
pub mod server;
pub mod status;

pub use client::{GrpcClient, GrpcRequest, GrpcTransport, UnaryCall};
pub use proto::{EchoMethod, EchoResponse};
pub use server::GrpcEchoServer;
pub use status::{
    GrpcAnswer, GrpcCode, GrpcGoRules, GrpcReading, HttpToGrpc, StreamEnd, read_unary,
};
