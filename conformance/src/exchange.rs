//! One request/response exchange as a client and the echo backend saw it, and the checks of a
//! case's expectations against it. Both targets produce `Exchange`s: the native target by simulating
//! the proxy around the engine's decision, the Envoy target from real HTTP.

use std::collections::BTreeMap;

use crate::vectors::{Case, Expect};

/// What the echo backend received (absent when the gateway answered itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EchoView {
    /// `namespace/service` of the backend that answered.
    pub backend: String,
    pub method: String,
    pub path: String,
    pub host: String,
    /// `HTTP/1.1` or `HTTP/2.0`, as the backend saw the upstream connection (empty when unknown).
    pub proto: String,
    /// Every header the backend received, in order (names as sent).
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exchange {
    /// The request target as sent (the case's path, with placeholders like the retry simulator's
    /// fresh UUID filled in).
    pub request_target: String,
    pub status: u16,
    pub response_headers: Vec<(String, String)>,
    pub echo: Option<EchoView>,
}

/// Values of a header (case-insensitive name) joined with "," — how the suite compares them.
pub fn joined(headers: &[(String, String)], name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// The request headers a case sends: its own plus `X-Echo-Set-Header`, which the suite always
/// sends (possibly empty) and the echo backend uses to set response headers.
pub fn request_headers(case: &Case) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = case
        .request
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    let echo_set: Vec<String> = case
        .request
        .backend_response_headers
        .iter()
        .map(|(n, v)| format!("{n}:{v}"))
        .collect();
    headers.push(("X-Echo-Set-Header".to_owned(), echo_set.join(",")));
    headers
}

/// The Host header the suite sends: the case's host, or the Gateway address (with `:port` unless
/// 80/443) when the case says null.
pub fn request_authority(case: &Case, gateway_ip: &str) -> String {
    match &case.request.host {
        Some(host) => host.clone(),
        None if matches!(case.request.port, 80 | 443) => gateway_ip.to_owned(),
        None => format!("{gateway_ip}:{}", case.request.port),
    }
}

/// Checks everything the case expects of a single exchange.
pub fn check(case: &Case, exchange: &Exchange) -> Result<(), String> {
    let expect = &case.expect;
    let acceptable = expect.acceptable_statuses();
    if !acceptable.is_empty() && !acceptable.contains(&exchange.status) {
        let answered = match &exchange.echo {
            Some(echo) => format!(" (answered by {})", echo.backend),
            None => String::new(),
        };
        return Err(format!(
            "status: expected {acceptable:?}, got {}{answered}",
            exchange.status
        ));
    }
    if expect.answered_by_gateway == Some(true)
        && let Some(echo) = &exchange.echo
    {
        return Err(format!(
            "expected the gateway to answer itself, but {} answered",
            echo.backend
        ));
    }
    if let Some(redirect) = &expect.redirect {
        check_redirect(expect, redirect, exchange)?;
    }
    let success = matches!(exchange.status, 200 | 204);
    if success {
        check_response_headers(expect, exchange)?;
    }
    if let Some(echo) = &exchange.echo
        && success
    {
        check_backend(case, expect, exchange, echo)?;
    } else if success && expect.answered_by_gateway != Some(true) && wants_backend(expect) {
        return Err("expected a backend to answer, but the gateway answered".to_owned());
    }
    Ok(())
}

/// Backend-level filters: the backend that answered must see its own request headers
/// (`perBackendRequestHeaders`); a backend without expectations passes.
pub fn check_backend_headers(case: &Case, exchange: &Exchange) -> Result<(), String> {
    let Some(echo) = &exchange.echo else {
        return Ok(());
    };
    let Some(expected) = case.expect.per_backend_request_headers.get(&echo.backend) else {
        return Ok(());
    };
    for (name, value) in expected {
        let got = joined(&echo.headers, name);
        if got.as_deref() != Some(value.as_str()) {
            return Err(format!(
                "{} must see {name}: {value:?}, got {got:?}",
                echo.backend
            ));
        }
    }
    Ok(())
}

/// Judges the copies a mirror backend received for `requests` requests: at least one, or (when
/// the case mirrors a share) within 10 points of the expected percentage.
pub fn check_mirror_count(
    expected: &crate::vectors::MirrorExpect,
    count: u64,
    requests: u64,
    sampled: bool,
) -> Result<(), String> {
    let percent = f64::from(expected.percent.unwrap_or(100));
    let got = count as f64 * 100.0 / requests.max(1) as f64;
    let ok = if sampled {
        (got - percent).abs() <= 10.0
    } else {
        count >= 1
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "mirror to {}: expected {percent}% of {requests} requests, got {count}",
            expected.backend
        ))
    }
}

fn wants_backend(expect: &Expect) -> bool {
    expect.backend.is_some()
        || expect.backend_namespace.is_some()
        || !expect.backend_one_of.is_empty()
}

fn check_backend(
    case: &Case,
    expect: &Expect,
    exchange: &Exchange,
    echo: &EchoView,
) -> Result<(), String> {
    if let Some(backend) = &expect.backend
        && *backend != echo.backend
    {
        return Err(format!("backend: expected {backend}, got {}", echo.backend));
    }
    if !expect.backend_one_of.is_empty() && !expect.backend_one_of.contains(&echo.backend) {
        return Err(format!(
            "backend: expected one of {:?}, got {}",
            expect.backend_one_of, echo.backend
        ));
    }
    if let Some(namespace) = &expect.backend_namespace
        && !echo.backend.starts_with(&format!("{namespace}/"))
    {
        return Err(format!(
            "backend namespace: expected {namespace}, got {}",
            echo.backend
        ));
    }
    let expected_path = expect
        .rewritten_path
        .as_deref()
        .unwrap_or(&exchange.request_target);
    if echo.path != expected_path {
        return Err(format!(
            "path seen by the backend: expected {expected_path:?}, got {:?}",
            echo.path
        ));
    }
    let expected_method = expect
        .upstream_method
        .as_deref()
        .unwrap_or(&case.request.method);
    if echo.method != expected_method {
        return Err(format!(
            "method seen by the backend: expected {expected_method}, got {}",
            echo.method
        ));
    }
    let expected_host = expect
        .rewritten_host
        .as_deref()
        .or(case.request.host.as_deref());
    if let Some(host) = expected_host
        && echo.host != host
    {
        return Err(format!(
            "Host seen by the backend: expected {host:?}, got {:?}",
            echo.host
        ));
    }
    // "When the suite gives no explicit expectation this is the request headers (they must pass
    // through)."
    // Headers the case expects to be removed are, of course, not expected to pass through.
    let expected_headers: BTreeMap<String, String> = if expect.request_headers.is_empty() {
        let removed = |name: &str| {
            expect
                .absent_request_headers
                .iter()
                .any(|a| a.eq_ignore_ascii_case(name))
        };
        case.request
            .headers
            .iter()
            .filter(|(n, _)| !removed(n))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    } else {
        expect.request_headers.clone()
    };
    for (name, value) in &expected_headers {
        match joined(&echo.headers, name) {
            Some(got) if got == *value => {}
            got => {
                return Err(format!(
                    "request header {name}: expected {value:?}, got {got:?}"
                ));
            }
        }
    }
    for name in &expect.absent_request_headers {
        if let Some(got) = joined(&echo.headers, name) {
            return Err(format!("request header {name} must be absent, got {got:?}"));
        }
    }
    Ok(())
}

fn check_response_headers(expect: &Expect, exchange: &Exchange) -> Result<(), String> {
    let squash = expect.ignore_whitespace_in_response_header_values == Some(true);
    let normalise = |v: &str| {
        if squash {
            v.chars().filter(|c| !c.is_whitespace()).collect()
        } else {
            v.to_owned()
        }
    };
    for (name, value) in &expect.response_headers {
        let got = joined(&exchange.response_headers, name);
        if got.as_deref().map(normalise) != Some(normalise(value)) {
            return Err(format!(
                "response header {name}: expected {value:?}, got {got:?}"
            ));
        }
    }
    for (name, values) in &expect.response_headers_one_of {
        let got = joined(&exchange.response_headers, name);
        let ok = got
            .as_deref()
            .is_some_and(|g| values.iter().any(|v| normalise(v) == normalise(g)));
        if !ok {
            return Err(format!(
                "response header {name}: expected one of {values:?}, got {got:?}"
            ));
        }
    }
    for name in &expect.absent_response_headers {
        if let Some(got) = joined(&exchange.response_headers, name) {
            return Err(format!(
                "response header {name} must be absent, got {got:?}"
            ));
        }
    }
    Ok(())
}

fn check_redirect(
    expect: &Expect,
    redirect: &crate::vectors::RedirectExpect,
    exchange: &Exchange,
) -> Result<(), String> {
    let Some(location) = joined(&exchange.response_headers, "location") else {
        return Err("expected a Location header".to_owned());
    };
    let parsed = ParsedLocation::parse(&location)
        .ok_or_else(|| format!("Location {location:?} is not an absolute URL"))?;
    if let Some(scheme) = &redirect.scheme
        && parsed.scheme != *scheme
    {
        return Err(format!(
            "redirect scheme: expected {scheme}, got {} (Location {location})",
            parsed.scheme
        ));
    }
    if let Some(host) = &redirect.host
        && parsed.host != *host
    {
        return Err(format!(
            "redirect host: expected {host}, got {} (Location {location})",
            parsed.host
        ));
    }
    match redirect.port_number() {
        Some(port) if parsed.port != Some(port) => {
            return Err(format!(
                "redirect port: expected {port}, got {:?} (Location {location})",
                parsed.port
            ));
        }
        None => {
            // "port null = no port or the scheme default (80/443) is accepted"
            let default = match parsed.scheme.as_str() {
                "https" => 443,
                _ => 80,
            };
            if parsed.port.is_some_and(|p| p != default) {
                return Err(format!(
                    "redirect port: expected none or {default}, got {:?} (Location {location})",
                    parsed.port
                ));
            }
        }
        Some(_) => {}
    }
    if let Some(path) = &redirect.path
        && parsed.path != *path
    {
        return Err(format!(
            "redirect path: expected {path}, got {} (Location {location})",
            parsed.path
        ));
    }
    if let Some(expected) = &expect.redirect_location
        && location != *expected
    {
        return Err(format!("Location: expected {expected}, got {location}"));
    }
    Ok(())
}

/// `scheme://host[:port]/path?query` split into the parts the suite compares.
#[derive(Debug, PartialEq, Eq)]
struct ParsedLocation {
    scheme: String,
    host: String,
    port: Option<u16>,
    /// Without the query, as the suite compares it.
    path: String,
}

impl ParsedLocation {
    fn parse(location: &str) -> Option<ParsedLocation> {
        let (scheme, rest) = location.split_once("://")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (rest.get(..i)?, rest.get(i..)?),
            None => (rest, "/"),
        };
        let path = path.split('?').next().unwrap_or(path);
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => (host, Some(port.parse().ok()?)),
            _ => (authority, None),
        };
        Some(ParsedLocation {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_into_the_compared_parts() {
        assert_eq!(
            ParsedLocation::parse("https://example.org:8443/a/b?x=1"),
            Some(ParsedLocation {
                scheme: "https".into(),
                host: "example.org".into(),
                port: Some(8443),
                path: "/a/b".into()
            })
        );
        assert_eq!(
            ParsedLocation::parse("http://h").map(|p| p.path),
            Some("/".into())
        );
        assert_eq!(ParsedLocation::parse("/relative"), None);
    }

    #[test]
    fn joined_values_follow_the_suite() {
        let h = vec![
            ("A".to_owned(), "1".to_owned()),
            ("a".to_owned(), "2".to_owned()),
        ];
        assert_eq!(joined(&h, "a").as_deref(), Some("1,2"));
        assert_eq!(joined(&h, "b"), None);
    }
}
