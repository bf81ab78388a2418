//! The gRPC outcome a case expects (`expect.grpcStatus`, `grpcStatusName`, `httpStatusOneOf`),
//! checked against the gateway's raw HTTP/2 answer.
//!
//! The schema: "the gRPC status code the client must end up with (0 OK, 12 UNIMPLEMENTED,
//! 14 UNAVAILABLE, ...), as a grpc-go client computes it: from grpc-status when the response has
//! :status 200 and content-type application/grpc, otherwise from the HTTP status (see
//! grpcStatusFromHttp)", and for `httpStatusOneOf`: "200 counts only with content-type
//! application/grpc and grpc-status == grpcStatus (normally a trailers-only response for errors);
//! every other listed value works regardless of grpc-status".
//!
//! That is grpc-go's rule up to v1.76; from v1.77 (the suite's own client is v1.81.1) a gRPC
//! `content-type` makes any `:status` a gRPC answer (see [`testkit::grpc::status`]). An answer
//! passes only when both generations read the expected code, so no grpc-go client would see
//! anything else. A target produces the [`GrpcAnswer`] (the Envoy target from
//! [`testkit::grpc::GrpcClient::call_raw`], the native one from the engine's decision) and calls
//! [`check`].

use testkit::grpc::status::{GrpcAnswer, GrpcCode, GrpcGoRules, HttpToGrpc, read_unary};

use crate::vectors::{Expect, VectorFile};

/// The file's `grpcStatusFromHttp` table, or grpc-go's when the file has none. A malformed entry
/// is an error naming it (the table decides outcomes, so it is not guessed).
pub fn http_table(file: &VectorFile) -> Result<HttpToGrpc, String> {
    if file.grpc_status_from_http.is_empty() {
        return Ok(HttpToGrpc::grpc_go());
    }
    let mut pairs = Vec::with_capacity(file.grpc_status_from_http.len());
    for (status, code) in &file.grpc_status_from_http {
        let parsed_status = status
            .parse::<u16>()
            .ok()
            .filter(|s| (100..=599).contains(s));
        let parsed_code = code.as_u64().and_then(|c| u32::try_from(c).ok());
        match (parsed_status, parsed_code) {
            (Some(s), Some(c)) => pairs.push((s, GrpcCode(c))),
            _ => {
                return Err(format!(
                    "grpcStatusFromHttp.{status}: expected an HTTP status mapped to a gRPC code number, got {code}"
                ));
            }
        }
    }
    Ok(HttpToGrpc::from_pairs(pairs))
}

/// The code a case expects: `grpcStatus`, or the code `grpcStatusName` names. `Ok(None)` when the
/// case states neither; an error when the two disagree or the name is unknown.
pub fn expected_code(expect: &Expect) -> Result<Option<GrpcCode>, String> {
    let by_number = expect.grpc_status.map(GrpcCode);
    let by_name = match &expect.grpc_status_name {
        None => None,
        Some(name) => Some(
            GrpcCode::from_name(name)
                .ok_or_else(|| format!("expect.grpcStatusName {name:?} names no gRPC code"))?,
        ),
    };
    match (by_number, by_name) {
        (Some(number), Some(name)) if number != name => Err(format!(
            "the case contradicts itself: grpcStatus {} but grpcStatusName {:?}",
            number.0,
            expect.grpc_status_name.as_deref().unwrap_or_default()
        )),
        (number, name) => Ok(number.or(name)),
    }
}

/// Checks a case's gRPC expectations against the gateway's answer.
pub fn check(expect: &Expect, answer: &GrpcAnswer, table: &HttpToGrpc) -> Result<(), String> {
    let expected = expected_code(expect)?;
    if !expect.http_status_one_of.is_empty() {
        let ok = answer
            .status
            .is_some_and(|s| expect.http_status_one_of.contains(&s));
        if !ok {
            return Err(format!(
                "HTTP status: expected one of {:?}, got {}",
                expect.http_status_one_of,
                answer.summary()
            ));
        }
    }
    let Some(expected) = expected else {
        return Ok(());
    };
    if answer.status == Some(200) && expect.http_status_one_of.contains(&200) {
        // "200 counts only with content-type application/grpc and grpc-status == grpcStatus"
        let sent = answer.grpc_status();
        if !answer.has_grpc_content_type() || sent.as_deref() != Some(&expected.0.to_string()) {
            return Err(format!(
                "a 200 answer must carry content-type application/grpc and grpc-status {}; got {}",
                expected.0,
                answer.summary()
            ));
        }
    }
    for (rules, client) in [
        (GrpcGoRules::ContentTypeDecides, "grpc-go v1.77+"),
        (GrpcGoRules::Status200Required, "grpc-go up to v1.76"),
    ] {
        let reading = read_unary(answer, table, rules);
        if reading.code != expected {
            return Err(format!(
                "gRPC status: expected {expected}, {client} reads {} ({}); answer: {}",
                reading.code,
                reading.message,
                answer.summary()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
