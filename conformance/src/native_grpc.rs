//! gRPC calls on the native target: the case's RPC goes through the filter's request adapter over
//! its mock host, exactly as an HTTP request case does ([`crate::native::Proxy`]), and the answer
//! is judged the way a grpc-go client reads it ([`crate::grpc_status::check`]).
//!
//! The call is what the suite's gRPC client sends: `POST /<service>/<method>` with
//! `content-type: application/grpc`, `te: trailers` and the case's headers as metadata. What the
//! filter does with it decides the answer:
//! - forwarded: the `GrpcEcho` backend it was sent to answers `OK` (one framed, empty
//!   `EchoResponse`, then trailers `grpc-status: 0`); the filter's response phase edits the
//!   response headers; the backend, the metadata it saw and the path are checked as for HTTP;
//! - answered by the filter: its local reply is the answer (a trailers-only response when it has no
//!   body). The native target judges the reply the filter sends; it does not add what Envoy would
//!   do to a plain local reply to a gRPC request (`Utility::sendLocalReply` turns any status into a
//!   gRPC answer), so a filter that answered a gRPC call with an HTTP 404 fails here.

use testkit::grpc::status::{GrpcAnswer, HttpToGrpc, StreamEnd, frame_message};

use gateway_wasm::filter::{Verdict, on_response_headers};

use crate::exchange::{Exchange, check};
use crate::native::{Proxy, local_reply};
use crate::outcome::Outcome;
use crate::vectors::{Case, VectorFile};

/// Runs one case whose request is a gRPC call.
pub fn run(case: &Case, file: &VectorFile) -> Outcome {
    let table = match crate::grpc_status::http_table(file) {
        Ok(table) => table,
        Err(e) => return Outcome::Fail(e),
    };
    let mut proxy = match Proxy::for_case(case, file) {
        Ok(proxy) => proxy,
        Err(e) => return Outcome::Fail(e),
    };
    if !case.expect.distribution.is_empty() {
        return distribution(case, &mut proxy, &table);
    }
    match call(case, &mut proxy).and_then(|c| judge(case, &c, &table)) {
        Ok(()) => Outcome::Pass,
        Err(e) => Outcome::Fail(e),
    }
}

/// One gRPC call: the raw answer the client reads and the exchange as the HTTP checks see it.
#[derive(Debug)]
pub struct Call {
    pub answer: GrpcAnswer,
    pub exchange: Exchange,
}

/// Sends the case's RPC through the filter.
pub fn call(case: &Case, proxy: &mut Proxy) -> Result<Call, String> {
    let rpc = case.request.grpc.as_ref().ok_or(
        "the case expects a gRPC outcome but names no RPC (request.grpc): nothing to call",
    )?;
    let path = rpc.path();
    let mut headers: Vec<(String, String)> = case
        .request
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    headers.push(("content-type".to_owned(), "application/grpc".to_owned()));
    headers.push(("te".to_owned(), "trailers".to_owned()));
    let (mut host, mut stream, verdict) = proxy.filter_request(case, "POST", &path, &headers);
    match verdict {
        Verdict::Stop => {
            let reply = local_reply(&host)?;
            let headers: Vec<(String, String)> = reply
                .headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
                .collect();
            let end = if reply.body.is_empty() {
                StreamEnd::TrailersOnly
            } else {
                StreamEnd::NoTrailers
            };
            Ok(Call {
                answer: GrpcAnswer {
                    status: Some(reply.status),
                    headers: headers.clone(),
                    body: reply.body.clone().into_bytes().into(),
                    end,
                },
                exchange: Exchange {
                    request_target: path,
                    status: reply.status,
                    response_headers: headers,
                    echo: None,
                },
            })
        }
        Verdict::Continue => {
            let echo = proxy.echo_view(&host, "HTTP/2.0")?;
            // The GrpcEcho backend answers OK: response headers, one message, then trailers.
            host.response_headers =
                vec![("content-type".to_owned(), "application/grpc".to_owned())];
            on_response_headers(&mut host, &mut stream);
            let headers: Vec<(String, String)> = std::mem::take(&mut host.response_headers)
                .into_iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v))
                .collect();
            Ok(Call {
                answer: GrpcAnswer {
                    status: Some(200),
                    headers: headers.clone(),
                    body: frame_message(b"")?,
                    end: StreamEnd::Trailers(vec![
                        ("grpc-status".to_owned(), "0".to_owned()),
                        ("grpc-message".to_owned(), String::new()),
                    ]),
                },
                exchange: Exchange {
                    request_target: path,
                    status: 200,
                    response_headers: headers,
                    echo: Some(echo),
                },
            })
        }
    }
}

/// The gRPC status (both grpc-go generations), then what the HTTP checks decide: the backend, the
/// metadata and path it saw, the response headers.
pub fn judge(case: &Case, call: &Call, table: &HttpToGrpc) -> Result<(), String> {
    crate::grpc_status::check(&case.expect, &call.answer, table)?;
    check(case, &call.exchange)
}

/// GRPCRouteWeight: sample calls and compare the backends' shares with the tolerance; every call
/// must also end with the expected gRPC status.
fn distribution(case: &Case, proxy: &mut Proxy, table: &HttpToGrpc) -> Outcome {
    let samples = case.expect.samples.unwrap_or(1000);
    let tolerance = case.expect.distribution_tolerance.unwrap_or(0.05);
    let outcome = crate::distribution::sample(
        &case.id,
        &case.expect.distribution,
        samples,
        tolerance,
        || {
            let answered = call(case, proxy).and_then(|c| {
                judge(case, &c, table)?;
                Ok(c.exchange.echo.map(|echo| echo.backend))
            });
            Ok::<_, std::convert::Infallible>(answered)
        },
    );
    match outcome {
        Ok(outcome) => outcome,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::vectors;

    fn file() -> VectorFile {
        vectors::load(vectors::grpcroute_vectors_path()).unwrap()
    }

    fn case(file: &VectorFile, id: &str) -> Case {
        file.cases
            .iter()
            .chain(&file.unreleased_cases)
            .find(|c| c.id == id)
            .cloned()
            .unwrap()
    }

    fn outcome(case: &Case, file: &VectorFile) -> Outcome {
        crate::native::run(case, file)
    }

    #[test]
    fn a_routed_call_passes_and_a_flipped_status_or_backend_fails() {
        let file = file();
        let routed = case(&file, "GRPCExactMethodMatching/0");
        assert_eq!(outcome(&routed, &file), Outcome::Pass);

        let mut flipped = routed.clone();
        flipped.expect.grpc_status = Some(12);
        flipped.expect.grpc_status_name = Some("UNIMPLEMENTED".to_owned());
        assert!(
            matches!(outcome(&flipped, &file), Outcome::Fail(ref why) if why.contains("grpc-status 12")),
            "{:?}",
            outcome(&flipped, &file)
        );

        let mut other_backend = routed.clone();
        other_backend.expect.backend =
            Some("gateway-conformance-infra/grpc-infra-backend-v2".into());
        assert!(matches!(outcome(&other_backend, &file), Outcome::Fail(_)));
    }

    #[test]
    fn an_unmatched_call_is_unimplemented_and_a_flipped_status_fails() {
        let file = file();
        let unmatched = case(&file, "GRPCExactMethodMatching/2");
        assert_eq!(unmatched.expect.grpc_status, Some(12));
        let mut proxy = Proxy::for_case(&unmatched, &file).unwrap();
        let answer = call(&unmatched, &mut proxy).unwrap().answer;
        assert_eq!(answer.status, Some(200));
        assert_eq!(answer.end, StreamEnd::TrailersOnly);
        assert_eq!(answer.grpc_status().as_deref(), Some("12"));
        assert_eq!(outcome(&unmatched, &file), Outcome::Pass);

        let mut flipped = unmatched.clone();
        flipped.expect.grpc_status = Some(0);
        flipped.expect.grpc_status_name = Some("OK".to_owned());
        assert!(matches!(outcome(&flipped, &file), Outcome::Fail(_)));
    }

    #[test]
    fn metadata_edits_are_checked() {
        let file = file();
        let modified = case(&file, "GRPCRouteRequestHeaderModifier/5");
        assert_eq!(outcome(&modified, &file), Outcome::Pass);
        let mut flipped = modified.clone();
        flipped
            .expect
            .request_headers
            .insert("x-header-set-2".into(), "something-else".into());
        assert!(
            matches!(outcome(&flipped, &file), Outcome::Fail(ref why) if why.contains("x-header-set-2"))
        );
    }

    #[test]
    fn a_case_without_an_rpc_fails_rather_than_passes() {
        let file = file();
        let mut no_rpc = case(&file, "GRPCExactMethodMatching/0");
        no_rpc.request.grpc = None;
        assert!(
            matches!(outcome(&no_rpc, &file), Outcome::Fail(ref why) if why.contains("request.grpc"))
        );
    }
}
