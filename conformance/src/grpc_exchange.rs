//! A gRPC call as an [`Exchange`], so a gRPC case is checked by the same code as an HTTP one:
//! first its gRPC outcome ([`crate::grpc_status::check`]: `httpStatusOneOf`, `grpcStatus` as a
//! grpc-go client reads it), then everything else it expects of the backend and the response
//! ([`crate::exchange::check`]: backend identity, metadata the backend saw, response headers).
//!
//! The suite's gRPC echo server reports what it received in `EchoResponse.assertions`
//! (`conformance/echo-basic/grpc/grpc.go`): the fully-qualified method (the `:path` it was called
//! on), its metadata, `:authority`, and its identity (`context.namespace`, `service_name`, `pod`).
//! Those become the [`EchoView`]; its method is POST because the server answers nothing else
//! (grpc-go aborts any other method with 405 before a handler runs).

use prost::Message;
use testkit::grpc::EchoResponse;
use testkit::grpc::status::{GrpcAnswer, HttpToGrpc, is_grpc_content_type, split_messages};

use crate::exchange::{EchoView, Exchange};
use crate::vectors::Case;

/// The protocols a gRPC case can be sent with: h2c with prior knowledge (`http`) or HTTP/2 over
/// TLS with ALPN `h2` (`https`, where an absent protocol means the same).
pub fn unsendable(case: &Case) -> Option<String> {
    let request = &case.request;
    if !request.method.eq_ignore_ascii_case("POST") {
        return Some(format!(
            "request.method {:?}: a gRPC call is a POST",
            request.method
        ));
    }
    let protocol = request.protocol.as_deref();
    let fits = match request.scheme.as_str() {
        "http" => protocol == Some("h2c-prior-knowledge"),
        "https" => matches!(protocol, None | Some("h2")),
        _ => false,
    };
    if !fits {
        return Some(format!(
            "a gRPC call over scheme {:?} with protocol {:?} is not something a gRPC client sends",
            request.scheme, protocol
        ));
    }
    let mut unchecked = Vec::new();
    if !request.backend_response_headers.is_empty() {
        unchecked.push("request.backendResponseHeaders");
    }
    if request.backend_behavior.is_some() {
        unchecked.push("request.backendBehavior");
    }
    if !case.expect.websocket_echo.is_empty() {
        unchecked.push("expect.websocketEcho");
    }
    if case.expect.repeat.is_some() {
        unchecked.push("expect.repeat");
    }
    (!unchecked.is_empty()).then(|| {
        format!(
            "the gRPC echo server has no counterpart for {} (never counted as checked)",
            unchecked.join(", ")
        )
    })
}

/// The `:authority` the suite's grpc-go client sends: the case's host, else the dial target, which
/// grpc-go writes with its port even for 80 and 443.
pub fn authority(case: &Case, gateway_ip: &str) -> String {
    match &case.request.host {
        Some(host) => host.clone(),
        None => format!("{gateway_ip}:{}", case.request.port),
    }
}

/// The answer as an exchange: the echo server's report becomes the [`EchoView`] when the answer
/// carries exactly one gRPC message. An error when a gRPC body does not decode as an
/// `EchoResponse` (something other than the echo server answered with a message).
pub fn exchange(request_target: String, answer: &GrpcAnswer) -> Result<Exchange, String> {
    let grpc = answer
        .header("content-type")
        .is_some_and(|value| is_grpc_content_type(&value));
    let echo = if grpc && !answer.body.is_empty() {
        let messages = split_messages(&answer.body)
            .map_err(|e| format!("the response body is not gRPC-framed: {e}"))?;
        match messages.as_slice() {
            [message] => Some(echo_view(message)?),
            other => {
                return Err(format!(
                    "a unary answer must carry one message, got {}",
                    other.len()
                ));
            }
        }
    } else {
        None
    };
    Ok(Exchange {
        request_target,
        status: answer.status.unwrap_or(0),
        response_headers: answer.headers.clone(),
        echo,
    })
}

fn echo_view(message: &[u8]) -> Result<EchoView, String> {
    let response = EchoResponse::decode(message)
        .map_err(|e| format!("the response message is not an EchoResponse: {e}"))?;
    let assertions = response
        .assertions
        .ok_or("the EchoResponse has no assertions (not the echo server?)")?;
    let context = assertions.context.unwrap_or_default();
    Ok(EchoView {
        backend: format!("{}/{}", context.namespace, context.service_name),
        method: "POST".to_owned(),
        path: assertions.fully_qualified_method,
        host: assertions.authority,
        proto: "HTTP/2.0".to_owned(),
        headers: assertions
            .headers
            .into_iter()
            .map(|h| (h.key, h.value))
            .collect(),
    })
}

/// Checks a gRPC case against the answer: the gRPC outcome, then the exchange's checks.
pub fn check(case: &Case, table: &HttpToGrpc, answer: &GrpcAnswer) -> Result<Exchange, String> {
    crate::grpc_status::check(&case.expect, answer, table)?;
    let exchange = exchange(case.request.path.clone(), answer)?;
    crate::exchange::check(case, &exchange)?;
    Ok(exchange)
}

#[cfg(test)]
mod tests;
