//! Gateway API hostnames: the one validator the engine (PluginConfig validation) and the resolver
//! (listener and route hostnames, before they reach a PluginConfig) share, so both give the same
//! answer for the same string.
//!
//! Spec (`Hostname`: listener and route hostnames):
//!
//! > Hostname is the fully qualified domain name of a network host. This matches the RFC 1123
//! > definition of a hostname with 2 notable exceptions: IPs are not allowed. A hostname may be
//! > prefixed with a wildcard label (`*.`). The wildcard label must appear by itself as the first
//! > label. [...] Note that as per RFC1035 and RFC1123, a *label* must consist of lower case
//! > alphanumeric characters or '-', and must start and end with an alphanumeric character. No
//! > other punctuation is allowed.
//!
//! (MaxLength 253.)
//!
//! Spec (`PreciseHostname`: redirect and rewrite hostnames): "This matches the RFC 1123 definition
//! of a hostname with 1 notable exception that numeric IP addresses are not allowed." Same labels,
//! no wildcard.
//!
//! RFC 1123 (via RFC 1035) also bounds a label to 63 characters.

use core::fmt;

/// The longest hostname the Gateway API accepts (its CRDs' `MaxLength`).
pub const MAX_HOSTNAME_LEN: usize = 253;
/// The longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a string is not a valid hostname.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostnameError {
    Empty,
    TooLong {
        len: usize,
    },
    /// "IPs are not allowed."
    IpAddress,
    EmptyLabel,
    LabelTooLong {
        len: usize,
    },
    /// A character that is not a lowercase letter, a digit or `-` (or `*` outside a leading `*.`).
    Character(char),
    HyphenAtLabelEdge,
    /// A wildcard where none is allowed: anywhere but a leading `*.`, or at all in a precise
    /// hostname.
    Wildcard {
        allowed_first: bool,
    },
}

impl fmt::Display for HostnameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostnameError::Empty => f.write_str("it is empty"),
            HostnameError::TooLong { len } => {
                write!(
                    f,
                    "it is {len} characters long (at most {MAX_HOSTNAME_LEN})"
                )
            }
            HostnameError::IpAddress => {
                f.write_str("it is an IP address (Gateway API hostnames are DNS names)")
            }
            HostnameError::EmptyLabel => f.write_str("it has an empty label"),
            HostnameError::LabelTooLong { len } => write!(
                f,
                "it has a label of {len} characters (at most {MAX_LABEL_LEN})"
            ),
            HostnameError::Character(c) => write!(
                f,
                "it contains {c:?} (labels hold lowercase letters, digits and '-')"
            ),
            HostnameError::HyphenAtLabelEdge => f.write_str("a label starts or ends with '-'"),
            HostnameError::Wildcard {
                allowed_first: true,
            } => f.write_str("a wildcard may only be the whole first label (*.)"),
            HostnameError::Wildcard {
                allowed_first: false,
            } => f.write_str("a wildcard is not allowed here"),
        }
    }
}

/// A listener or route hostname (`Hostname`): a lowercase RFC 1123 name, optionally prefixed by
/// the wildcard label `*.`; not an IP address.
pub fn check_hostname(hostname: &str) -> Result<(), HostnameError> {
    check(hostname, true)
}

/// A redirect or rewrite hostname (`PreciseHostname`): a lowercase RFC 1123 name, no wildcard; not
/// an IP address.
pub fn check_precise_hostname(hostname: &str) -> Result<(), HostnameError> {
    check(hostname, false)
}

/// [`check_hostname`] as a yes/no.
pub fn is_valid_hostname(hostname: &str) -> bool {
    check_hostname(hostname).is_ok()
}

fn check(hostname: &str, wildcard_allowed: bool) -> Result<(), HostnameError> {
    if hostname.is_empty() {
        return Err(HostnameError::Empty);
    }
    if hostname.len() > MAX_HOSTNAME_LEN {
        return Err(HostnameError::TooLong {
            len: hostname.len(),
        });
    }
    if could_be_ip_address(hostname) && hostname.parse::<core::net::IpAddr>().is_ok() {
        return Err(HostnameError::IpAddress);
    }
    let name = match hostname.strip_prefix("*.") {
        Some(rest) if wildcard_allowed => rest,
        Some(_) => {
            return Err(HostnameError::Wildcard {
                allowed_first: false,
            });
        }
        None => hostname,
    };
    for label in name.split('.') {
        check_label(label, wildcard_allowed)?;
    }
    Ok(())
}

/// Whether `text` holds only what IPv4 and IPv6 addresses are written with. Most hostnames have a
/// letter beyond `f` and skip the address parser, which was a visible share of validating and
/// compiling a 10,000-route table in V8 (`docs/benchmarks.md`, *The lean Wasm path*).
fn could_be_ip_address(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':')
}

fn check_label(label: &str, wildcard_allowed: bool) -> Result<(), HostnameError> {
    if label.is_empty() {
        return Err(HostnameError::EmptyLabel);
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(HostnameError::LabelTooLong { len: label.len() });
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(if c == '*' {
            HostnameError::Wildcard {
                allowed_first: wildcard_allowed,
            }
        } else {
            HostnameError::Character(c)
        });
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(HostnameError::HyphenAtLabelEdge);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_and_route_hostnames() {
        for good in [
            "example.com",
            "a.example.com",
            "*.example.com",
            "*.com",
            "localhost",
            "a-b.c0",
            "0a.example",
            // Not an IPv4 address (three parts), so a DNS name of digit labels.
            "1.2.3",
            // Written with address characters only, but not an address.
            "dead.beef",
        ] {
            assert_eq!(check_hostname(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("", HostnameError::Empty),
            ("10.0.0.1", HostnameError::IpAddress),
            ("::1", HostnameError::IpAddress),
            ("2001:db8::1", HostnameError::IpAddress),
            ("fe80::abcd", HostnameError::IpAddress),
            ("FE80::ABCD", HostnameError::IpAddress),
            ("::ffff:10.0.0.1", HostnameError::IpAddress),
            ("A.example.com", HostnameError::Character('A')),
            ("Bad_Host", HostnameError::Character('B')),
            ("a_b.com", HostnameError::Character('_')),
            ("a.example.com.", HostnameError::EmptyLabel),
            ("a..com", HostnameError::EmptyLabel),
            ("-a.com", HostnameError::HyphenAtLabelEdge),
            ("a-.com", HostnameError::HyphenAtLabelEdge),
            (
                "*",
                HostnameError::Wildcard {
                    allowed_first: true,
                },
            ),
            (
                "a.*.com",
                HostnameError::Wildcard {
                    allowed_first: true,
                },
            ),
            (
                "*.*.com",
                HostnameError::Wildcard {
                    allowed_first: true,
                },
            ),
            (
                "*a.com",
                HostnameError::Wildcard {
                    allowed_first: true,
                },
            ),
        ] {
            assert_eq!(check_hostname(bad), Err(why), "{bad:?}");
        }
    }

    #[test]
    fn lengths() {
        let label = "a".repeat(MAX_LABEL_LEN);
        assert_eq!(check_hostname(&format!("{label}.com")), Ok(()));
        assert_eq!(
            check_hostname(&format!("a{label}.com")),
            Err(HostnameError::LabelTooLong { len: 64 })
        );
        // 4 labels of 63 plus 3 dots: 255 characters.
        let long = [label.as_str(); 4].join(".");
        assert_eq!(
            check_hostname(&long),
            Err(HostnameError::TooLong { len: 255 })
        );
        // 253 is the limit, `*.` included.
        let at_limit = format!("*.{}", &long[..251]);
        assert_eq!(at_limit.len(), MAX_HOSTNAME_LEN);
        assert_eq!(check_hostname(&at_limit), Ok(()));
    }

    #[test]
    fn precise_hostnames_have_no_wildcard() {
        assert_eq!(check_precise_hostname("example.com"), Ok(()));
        assert_eq!(
            check_precise_hostname("*.example.com"),
            Err(HostnameError::Wildcard {
                allowed_first: false
            })
        );
        assert_eq!(
            check_precise_hostname("192.168.0.1"),
            Err(HostnameError::IpAddress)
        );
        assert_eq!(
            check_precise_hostname("Example.com"),
            Err(HostnameError::Character('E'))
        );
    }

    #[test]
    fn messages_say_why() {
        assert_eq!(
            HostnameError::IpAddress.to_string(),
            "it is an IP address (Gateway API hostnames are DNS names)"
        );
        assert_eq!(
            HostnameError::Character('_').to_string(),
            "it contains '_' (labels hold lowercase letters, digits and '-')"
        );
    }
}
