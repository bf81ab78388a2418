//! What the engine needs to know about one request. Borrowed from the host's own buffers: building a
//! `Request` allocates nothing.

use std::borrow::Cow;

/// One incoming request as the proxy sees it after TLS termination.
///
/// `H` is any string type, so both `&[(&str, &str)]` (tests) and the `Vec<(String, String)>` that
/// proxy-wasm hands out (the filter) work without copying.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a, H: AsRef<str> = &'a str> {
    /// The Gateway listener port the request arrived on.
    pub port: u16,
    /// TLS server name, for HTTPS listeners (listener selection and misdirected-request detection).
    pub sni: Option<&'a str>,
    pub method: &'a str,
    /// Host header or `:authority`, possibly with a port.
    pub authority: &'a str,
    /// Request target: path plus optional `?query`, as received.
    pub path: &'a str,
    /// Every request header, in order; names compare case-insensitively.
    pub headers: &'a [(H, H)],
}

impl<'a, H: AsRef<str>> Request<'a, H> {
    /// Values of a header, in order, matching the name case-insensitively.
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.header_values(name).next()
    }

    /// The path without the query string.
    pub fn path_only(&self) -> &'a str {
        split_query(self.path).0
    }

    /// The query string (without `?`), if any.
    pub fn query(&self) -> Option<&'a str> {
        split_query(self.path).1
    }
}

/// Splits a request target into path and query.
pub fn split_query(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

/// The host part of an authority, without port, and whether it needs lowercasing.
/// `[::1]:8080` → `[::1]`, `Example.COM:80` → `Example.COM`, trailing dot removed.
pub fn host_of(authority: &str) -> &str {
    let host = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => authority.get(..=end).unwrap_or(authority),
            None => authority,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        }
    };
    host.strip_suffix('.').unwrap_or(host)
}

/// Hosts and TLS server names up to this length are lowercased on the stack; DNS names have at most
/// 253 characters, so only a hostile or broken client ever makes [`ascii_lowercase`] allocate.
pub(crate) const LOWERCASE_BUFFER: usize = 256;

/// `text` in ASCII lowercase: borrowed when it has no uppercase letter, else written into `buffer`
/// when it fits (host names are compared lowercase: this keeps evaluation free of allocation). The
/// buffer starts as `None` and is filled only when needed, so the common case does not even zero it.
pub(crate) fn ascii_lowercase<'b>(
    text: &'b str,
    buffer: &'b mut Option<[u8; LOWERCASE_BUFFER]>,
) -> Cow<'b, str> {
    if !text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Cow::Borrowed(text);
    }
    let Some(out) = buffer.insert([0; LOWERCASE_BUFFER]).get_mut(..text.len()) else {
        return Cow::Owned(text.to_ascii_lowercase());
    };
    out.copy_from_slice(text.as_bytes());
    out.make_ascii_lowercase();
    // Lowercasing ASCII bytes keeps UTF-8 valid; the fallback is never taken.
    match std::str::from_utf8(out) {
        Ok(lower) => Cow::Borrowed(lower),
        Err(_) => Cow::Owned(text.to_ascii_lowercase()),
    }
}

/// A source of randomness for weighted backend picks and mirror percentages, supplied by the caller
/// so the host decides (proxy-wasm has no RNG of its own; tests use a seeded generator).
pub trait RandomSource {
    fn next_u64(&mut self) -> u64;
}

impl<F: FnMut() -> u64> RandomSource for F {
    fn next_u64(&mut self) -> u64 {
        self()
    }
}

/// A small, fast, non-cryptographic generator (SplitMix64), enough to spread traffic.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl RandomSource for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Maps a random value onto `0..n` without modulo bias worth mentioning (Lemire's multiply-shift).
pub(crate) fn below(random: u64, n: u64) -> u64 {
    ((u128::from(random) * u128::from(n)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_strips_ports_brackets_and_trailing_dots() {
        assert_eq!(host_of("example.com"), "example.com");
        assert_eq!(host_of("example.com:8080"), "example.com");
        assert_eq!(host_of("example.com."), "example.com");
        assert_eq!(host_of("[::1]:8080"), "[::1]");
        assert_eq!(host_of("[::1]"), "[::1]");
        assert_eq!(host_of("10.0.0.1:80"), "10.0.0.1");
        assert_eq!(host_of(""), "");
    }

    #[test]
    fn header_lookup_ignores_case_and_keeps_order() {
        let headers = [("X-A", "1"), ("x-a", "2"), ("x-b", "3")];
        let req = Request {
            port: 80,
            sni: None,
            method: "GET",
            authority: "h",
            path: "/p?q=1",
            headers: &headers,
        };
        assert_eq!(req.header_values("X-a").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(req.header("X-B"), Some("3"));
        assert_eq!(req.path_only(), "/p");
        assert_eq!(req.query(), Some("q=1"));
    }

    #[test]
    fn lowercasing_borrows_or_uses_the_buffer() {
        let mut buffer = None;
        assert!(matches!(
            ascii_lowercase("a.example", &mut buffer),
            Cow::Borrowed("a.example")
        ));
        let mut buffer = None;
        assert_eq!(ascii_lowercase("A.Example.ÉÉ", &mut buffer), "a.example.ÉÉ");
        let long = "A".repeat(LOWERCASE_BUFFER + 1);
        let mut buffer = None;
        assert_eq!(
            ascii_lowercase(&long, &mut buffer),
            "a".repeat(LOWERCASE_BUFFER + 1)
        );
        let exact = "B".repeat(LOWERCASE_BUFFER);
        let mut buffer = None;
        assert_eq!(
            ascii_lowercase(&exact, &mut buffer),
            "b".repeat(LOWERCASE_BUFFER)
        );
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = SplitMix64(7);
        for n in [1u64, 2, 3, 100, 1_000_000] {
            for _ in 0..1000 {
                assert!(below(rng.next_u64(), n) < n);
            }
        }
        assert_eq!(below(u64::MAX, 10), 9);
        assert_eq!(below(0, 10), 0);
    }
}
