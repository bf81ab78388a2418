//! The HTTPCORSFilter: origin matching, preflight answers and response headers.
//!
//! We always echo the request's `Origin` rather than answering `*`: the spec allows either when the
//! request is not credentialed and requires the echo when it is, so echoing is right in every case
//! (with `Vary: Origin`, so caches keep answers per origin apart).

use std::borrow::Cow;

use crate::config::Cors;
use crate::decision::HeaderEdit;

/// The spec's default `Access-Control-Max-Age`.
const DEFAULT_MAX_AGE: &str = "5";

/// A compiled CORS filter.
#[derive(Debug, Clone)]
pub(crate) struct CompiledCors {
    origins: Vec<OriginPattern>,
    allow_credentials: bool,
    methods: Joined,
    headers: Joined,
    expose: Option<String>,
    max_age: String,
}

/// A configured list: either the wildcard, or the names joined for the response header.
#[derive(Debug, Clone)]
enum Joined {
    Empty,
    Wildcard,
    List(String),
}

impl Joined {
    fn new(items: &[String]) -> Joined {
        if items.iter().any(|i| i == "*") {
            Joined::Wildcard
        } else if items.is_empty() {
            Joined::Empty
        } else {
            Joined::List(items.join(", "))
        }
    }
}

#[derive(Debug, Clone)]
enum OriginPattern {
    Any,
    Origin {
        scheme: String,
        host: HostPattern,
        port: u16,
    },
}

#[derive(Debug, Clone)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com` stored as `.example.com`: any number of labels on the left.
    Suffix(String),
}

/// `*`, or `scheme://host[:port]` where the host may start with `*`.
pub(crate) fn is_valid_origin_pattern(pattern: &str) -> bool {
    parse_pattern(pattern).is_some()
}

fn parse_pattern(pattern: &str) -> Option<OriginPattern> {
    if pattern == "*" {
        return Some(OriginPattern::Any);
    }
    let (scheme, host, port) = split_origin(pattern)?;
    let host = if host == "*" {
        HostPattern::Any
    } else if let Some(suffix) = host.strip_prefix('*') {
        if !suffix.starts_with('.') || suffix.len() < 2 || suffix.contains('*') {
            return None;
        }
        HostPattern::Suffix(suffix.to_ascii_lowercase())
    } else {
        if host.contains('*') {
            return None;
        }
        HostPattern::Exact(host.to_ascii_lowercase())
    };
    Some(OriginPattern::Origin { scheme, host, port })
}

/// Splits `scheme://host[:port]` with the scheme's default port filled in.
fn split_origin(origin: &str) -> Option<(String, &str, u16)> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => {
            if host.is_empty() {
                return None;
            }
            (host, port.parse::<u16>().ok().filter(|p| *p != 0)?)
        }
        _ => (rest, default_port),
    };
    if host.is_empty()
        || host
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return None;
    }
    Some((scheme, host, port))
}

impl CompiledCors {
    pub(crate) fn new(cors: &Cors) -> CompiledCors {
        CompiledCors {
            origins: cors
                .allow_origins
                .iter()
                .filter_map(|o| parse_pattern(o))
                .collect(),
            allow_credentials: cors.allow_credentials,
            methods: Joined::new(&cors.allow_methods),
            headers: Joined::new(&cors.allow_headers),
            expose: match Joined::new(&cors.expose_headers) {
                Joined::Empty => None,
                // A credentialed response cannot expose `*`; list nothing rather than lie.
                Joined::Wildcard if cors.allow_credentials => None,
                Joined::Wildcard => Some("*".to_owned()),
                Joined::List(list) => Some(list),
            },
            max_age: cors
                .max_age
                .map_or_else(|| DEFAULT_MAX_AGE.to_owned(), |a| a.to_string()),
        }
    }

    /// Whether the request's `Origin` is allowed.
    pub(crate) fn allows(&self, origin: &str) -> bool {
        let Some((scheme, host, port)) = split_origin(origin) else {
            return false;
        };
        self.origins.iter().any(|pattern| match pattern {
            OriginPattern::Any => true,
            OriginPattern::Origin {
                scheme: s,
                host: h,
                port: p,
            } => {
                *s == scheme
                    && *p == port
                    && match h {
                        HostPattern::Any => true,
                        HostPattern::Exact(exact) => exact.eq_ignore_ascii_case(host),
                        HostPattern::Suffix(suffix) => {
                            host.len() > suffix.len()
                                && host
                                    .get(host.len() - suffix.len()..)
                                    .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
                        }
                    }
            }
        })
    }

    /// Headers for a preflight answer (empty when the origin is not allowed: the browser then
    /// refuses the request, which is what the spec asks for).
    pub(crate) fn preflight_headers<'t>(
        &'t self,
        origin: &'t str,
        requested_method: Option<&'t str>,
        requested_headers: Option<&'t str>,
    ) -> Vec<HeaderEdit<'t>> {
        let mut out = Vec::with_capacity(7);
        if !self.allows(origin) {
            return out;
        }
        self.common_headers(origin, &mut out);
        match &self.methods {
            Joined::Empty => {}
            Joined::List(list) => out.push(HeaderEdit::Set(
                "access-control-allow-methods",
                Cow::Borrowed(list),
            )),
            Joined::Wildcard => match requested_method {
                Some(method) => out.push(HeaderEdit::Set(
                    "access-control-allow-methods",
                    Cow::Borrowed(method),
                )),
                None if !self.allow_credentials => out.push(HeaderEdit::Set(
                    "access-control-allow-methods",
                    Cow::Borrowed("*"),
                )),
                None => {}
            },
        }
        match &self.headers {
            Joined::Empty => {}
            Joined::List(list) => out.push(HeaderEdit::Set(
                "access-control-allow-headers",
                Cow::Borrowed(list),
            )),
            Joined::Wildcard => match requested_headers {
                Some(headers) => out.push(HeaderEdit::Set(
                    "access-control-allow-headers",
                    Cow::Borrowed(headers),
                )),
                None if !self.allow_credentials => out.push(HeaderEdit::Set(
                    "access-control-allow-headers",
                    Cow::Borrowed("*"),
                )),
                None => {}
            },
        }
        out.push(HeaderEdit::Set(
            "access-control-max-age",
            Cow::Borrowed(&self.max_age),
        ));
        out
    }

    /// Headers added to the upstream's response for an actual cross-origin request.
    pub(crate) fn response_headers<'t>(&'t self, origin: &'t str, out: &mut Vec<HeaderEdit<'t>>) {
        if self.allows(origin) {
            self.common_headers(origin, out);
        }
    }

    fn common_headers<'t>(&'t self, origin: &'t str, out: &mut Vec<HeaderEdit<'t>>) {
        out.push(HeaderEdit::Set(
            "access-control-allow-origin",
            Cow::Borrowed(origin),
        ));
        out.push(HeaderEdit::Add("vary", Cow::Borrowed("Origin")));
        if self.allow_credentials {
            out.push(HeaderEdit::Set(
                "access-control-allow-credentials",
                Cow::Borrowed("true"),
            ));
        }
        if let Some(expose) = &self.expose {
            out.push(HeaderEdit::Set(
                "access-control-expose-headers",
                Cow::Borrowed(expose),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str]) -> CompiledCors {
        CompiledCors::new(&Cors {
            allow_origins: origins.iter().map(|s| s.to_string()).collect(),
            ..Cors::default()
        })
    }

    #[test]
    fn origin_patterns_follow_the_spec() {
        let c = cors(&[
            "https://www.foo.com",
            "https://*.bar.com",
            "http://local:8080",
        ]);
        assert!(c.allows("https://www.foo.com"));
        assert!(
            c.allows("https://www.foo.com:443"),
            "default port is implied"
        );
        assert!(!c.allows("http://www.foo.com"), "scheme must match");
        assert!(!c.allows("https://www.foo.com:8443"));
        assert!(c.allows("https://www.bar.com"));
        assert!(
            c.allows("https://xpto.www.bar.com"),
            "wildcard spans several labels"
        );
        assert!(
            !c.allows("https://bar.com"),
            "wildcard needs at least one label"
        );
        assert!(!c.allows("https://foobar.com"));
        assert!(c.allows("http://local:8080"));
        assert!(!c.allows("http://local"));
        assert!(!c.allows("null"));
        assert!(cors(&["*"]).allows("https://foobar.com:12345"));
    }

    #[test]
    fn invalid_patterns_are_rejected() {
        for bad in [
            "foo.com",
            "ftp://foo.com",
            "https://",
            "https://a/b",
            "https://f*o.com",
            "https://*foo.com",
            "https://a:0",
        ] {
            assert!(!is_valid_origin_pattern(bad), "{bad}");
        }
        for good in [
            "*",
            "https://*",
            "https://*.foo.com",
            "http://a:8080",
            "HTTPS://A.COM",
        ] {
            assert!(is_valid_origin_pattern(good), "{good}");
        }
    }

    #[test]
    fn credentialed_wildcards_echo_the_request() {
        let c = CompiledCors::new(&Cors {
            allow_origins: vec!["*".into()],
            allow_methods: vec!["*".into()],
            allow_headers: vec!["*".into()],
            allow_credentials: true,
            ..Cors::default()
        });
        let h = c.preflight_headers("https://a.com", Some("PUT"), Some("x-a, x-b"));
        assert!(h.contains(&HeaderEdit::Set(
            "access-control-allow-methods",
            "PUT".into()
        )));
        assert!(h.contains(&HeaderEdit::Set(
            "access-control-allow-headers",
            "x-a, x-b".into()
        )));
        assert!(h.contains(&HeaderEdit::Set(
            "access-control-allow-credentials",
            "true".into()
        )));
        assert!(h.contains(&HeaderEdit::Set("access-control-max-age", "5".into())));
        let none = c.preflight_headers("https://a.com", None, None);
        assert!(
            !none
                .iter()
                .any(|e| matches!(e, HeaderEdit::Set("access-control-allow-methods", _)))
        );
    }
}
