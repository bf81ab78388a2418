//! A request written as text, the way `controller-shim explain` takes it: `'METHOD URL'` (or just
//! the URL for GET) and `'name: value'` headers. Consumes user input, produces the parts the
//! engine's [`engine::Request`] borrows; never panics, whatever the text (a fuzz target feeds it).

use engine::request::host_of;

/// A parsed `--request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestText {
    /// Upper-cased.
    pub method: String,
    pub https: bool,
    /// Host and port as written (`Example.com:8443`): the `:authority` the engine sees.
    pub authority: String,
    /// The authority's host, without port or trailing dot (the TLS server name for https).
    pub host: String,
    /// The port written in the URL, else 80 for http:// and 443 for https://.
    pub port: u16,
    /// Path and query, `/` when the URL has none.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestTextError {
    #[error("{url:?}: the URL must start with http:// or https://")]
    Scheme { url: String },
    #[error("{url:?} has no host")]
    NoHost { url: String },
    #[error("{port:?} in {url:?} is not a port (1-65535)")]
    Port { port: String, url: String },
    #[error("{text:?} is not 'name: value'")]
    Header { text: String },
    #[error("--grpc {rpc:?} is not 'SERVICE/METHOD' (e.g. 'pkg.v1.Cart/AddItem')")]
    Grpc { rpc: String },
}

impl RequestText {
    /// The request as the engine evaluates it: the listener port from the URL, and for https the
    /// host as the TLS server name.
    pub fn to_engine<'a>(&'a self, headers: &'a [(String, String)]) -> engine::Request<'a, String> {
        engine::Request {
            port: self.port,
            sni: self.https.then_some(self.host.as_str()),
            method: &self.method,
            authority: &self.authority,
            path: &self.path,
            headers,
        }
    }
}

/// Parses `'METHOD URL'` or `'URL'` (GET).
pub fn parse_request(text: &str) -> Result<RequestText, RequestTextError> {
    let text = text.trim();
    let (method, url) = match text.split_once(char::is_whitespace) {
        Some((method, url)) => (method.to_ascii_uppercase(), url.trim()),
        None => ("GET".to_owned(), text),
    };
    let (https, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err(RequestTextError::Scheme {
            url: url.to_owned(),
        });
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    let host = host_of(authority);
    if authority.is_empty() || host.is_empty() {
        return Err(RequestTextError::NoHost {
            url: url.to_owned(),
        });
    }
    let port = match port_text(authority) {
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => {
                return Err(RequestTextError::Port {
                    port: port.to_owned(),
                    url: url.to_owned(),
                });
            }
        },
        None if https => 443,
        None => 80,
    };
    Ok(RequestText {
        method,
        https,
        authority: authority.to_owned(),
        host: host.to_owned(),
        port,
        path,
    })
}

/// The text after the authority's last `:` (after `]` for an IPv6 literal), if it has a port.
fn port_text(authority: &str) -> Option<&str> {
    let after_host = if authority.starts_with('[') {
        authority.get(authority.find(']')? + 1..)?
    } else {
        authority
    };
    after_host.rsplit_once(':').map(|(_, port)| port)
}

/// Parses a `'name: value'` header; the name is lower-cased, both are trimmed.
pub fn parse_header(text: &str) -> Result<(String, String), RequestTextError> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| RequestTextError::Header {
            text: text.to_owned(),
        })?;
    Ok(crate::explain::header(name, value))
}

/// Makes `request` the gRPC call `rpc` (`SERVICE/METHOD`; a leading `/` is allowed) to the URL's
/// host and port, as a gRPC client sends it (gRPC over HTTP/2: `Path → ":path" "/" Service-Name
/// "/" {method name}`, `Content-Type → "content-type" "application/grpc"`): `POST /SERVICE/METHOD`,
/// with `content-type: application/grpc` added unless a header already sets one.
///
/// `controller-shim explain --grpc` and the playground's `explain(..., {grpc})` both call this, so
/// they evaluate the very same request.
pub fn grpc_call(
    rpc: &str,
    request: &mut RequestText,
    headers: &mut Vec<(String, String)>,
) -> Result<(), RequestTextError> {
    let rpc = rpc.strip_prefix('/').unwrap_or(rpc);
    match rpc.rsplit_once('/') {
        Some((service, method)) if !service.is_empty() && !method.is_empty() => {}
        _ => {
            return Err(RequestTextError::Grpc {
                rpc: rpc.to_owned(),
            });
        }
    }
    request.method = "POST".to_owned();
    request.path = format!("/{rpc}");
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("content-type".to_owned(), "application/grpc".to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        let t = parse_request("post https://Example.com:8443/a?b=1").unwrap();
        assert_eq!(
            (
                t.method.as_str(),
                t.https,
                t.host.as_str(),
                t.port,
                t.path.as_str()
            ),
            ("POST", true, "Example.com", 8443, "/a?b=1")
        );
        let t = parse_request("http://example.com").unwrap();
        assert_eq!(
            (t.method.as_str(), t.port, t.path.as_str()),
            ("GET", 80, "/")
        );
        let t = parse_request("GET http://[::1]?q").unwrap();
        assert_eq!((t.host.as_str(), t.path.as_str()), ("[::1]", "/?q"));
        let t = parse_request("https://[::1]:9443/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("[::1]", 9443));
        assert!(parse_request("GET example.com/").is_err());
        assert_eq!(
            parse_header("X-A:  b ").unwrap(),
            ("x-a".to_owned(), "b".to_owned())
        );
        assert!(parse_header("no colon").is_err());
    }

    #[test]
    fn a_grpc_call_is_a_post_of_the_rpc_path_with_the_grpc_content_type() {
        let mut t = parse_request("GET http://grpc.example.com:8080/ignored").unwrap();
        let mut headers = vec![("x-a".to_owned(), "1".to_owned())];
        grpc_call("/pkg.v1.Cart/AddItem", &mut t, &mut headers).unwrap();
        assert_eq!(
            (t.method.as_str(), t.path.as_str(), t.port),
            ("POST", "/pkg.v1.Cart/AddItem", 8080)
        );
        assert_eq!(
            headers[1],
            ("content-type".to_owned(), "application/grpc".to_owned())
        );
        // A content type given by the caller stays, alone.
        let mut headers = vec![(
            "Content-Type".to_owned(),
            "application/grpc+json".to_owned(),
        )];
        grpc_call("pkg.v1.Cart/AddItem", &mut t, &mut headers).unwrap();
        assert_eq!(headers.len(), 1);
        for rpc in ["Cart", "/Cart/", "/AddItem", "", "/"] {
            let err = grpc_call(rpc, &mut t, &mut headers).unwrap_err();
            assert!(matches!(err, RequestTextError::Grpc { .. }), "{rpc}: {err}");
        }
    }

    /// The port used to be found by cutting the host off the authority, which a trailing dot or a
    /// non-numeric port defeated: both fell back to port 80 silently.
    #[test]
    fn the_port_is_read_from_the_authority_itself() {
        let t = parse_request("http://example.com.:8080/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("example.com", 8080));
        for url in [
            "http://example.com:abc/",
            "http://example.com:/",
            "http://example.com:0/",
            "http://example.com:65536/",
            "http://[::1]:x/",
        ] {
            assert!(
                matches!(parse_request(url), Err(RequestTextError::Port { .. })),
                "{url}: {:?}",
                parse_request(url)
            );
        }
        for url in ["http://", "http:///x", "http://:80/", "http://./"] {
            assert!(
                matches!(parse_request(url), Err(RequestTextError::NoHost { .. })),
                "{url}: {:?}",
                parse_request(url)
            );
        }
    }
}
