//! Edge hardening: the settings Envoy's "Configuring Envoy as an edge proxy" best practices ask for,
//! in every bootstrap we render. Envoy's defaults suit a service mesh, not an edge that takes
//! requests from anyone; `docs/envoy.md` ("Edge-safe defaults") says why each value is what it is.
//!
//! - path handling: `normalize_path` (RFC 3986 dot segments, `%2e` included), `merge_slashes`, and
//!   [`EscapedSlashes`] for `%2F`/`%5C`. The filter matches the `:path` Envoy hands it after these,
//!   and that same path (or the rule's rewrite of it) is what the backend receives, so a
//!   `PathPrefix /store` rule can never be reached by, or forward, `/store/../admin`;
//! - `headers_with_underscores_action: REJECT_REQUEST` (backends that fold `_` into `-` cannot be
//!   fed a header the filter did not see);
//! - timeouts: request headers, stream idle, connection idle;
//! - HTTP/2 limits (concurrent streams, initial windows) and 32 KiB per-connection buffers;
//! - the overload manager: a heap limit (shrink the heap, then refuse new requests) and a global
//!   active-connection limit, with the admin listener exempt so it can still be read.

use std::time::Duration;

use super::node::Node;

/// Listener and cluster per-connection buffer limit (Envoy's edge recommendation: 32 KiB). The filter
/// streams request bodies (it never asks Envoy to buffer one), so this bounds memory per connection
/// without limiting body size.
pub const BUFFER_LIMIT_BYTES: i64 = 32 * 1024;
/// HTTP/2 concurrent streams per downstream connection (Envoy's default is 2^31 - 1).
pub const H2_MAX_CONCURRENT_STREAMS: i64 = 100;
/// HTTP/2 initial stream window (Envoy's default is 256 MiB).
pub const H2_INITIAL_STREAM_WINDOW: i64 = 64 * 1024;
/// HTTP/2 initial connection window (Envoy's default is 256 MiB).
pub const H2_INITIAL_CONNECTION_WINDOW: i64 = 1024 * 1024;
/// Largest request header block, in KiB (Envoy's default, written out so it is visible): more gets 431.
pub const MAX_REQUEST_HEADERS_KB: i64 = 60;
/// Most request headers per request (Envoy's default, written out): more gets 431.
pub const MAX_HEADERS_COUNT: i64 = 100;

const FIXED_HEAP: &str = "envoy.resource_monitors.fixed_heap";
const FIXED_HEAP_TYPE: &str =
    "type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig";
const CONNECTIONS: &str = "envoy.resource_monitors.global_downstream_max_connections";
const CONNECTIONS_TYPE: &str = "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig";

/// What Envoy does with `%2F`, `%2f`, `%5C` or `%5c` in a request path
/// (`path_with_escaped_slashes_action`). Envoy applies it before normalizing the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EscapedSlashes {
    /// Unescape and answer with a redirect to the unescaped path (gRPC: rejected), so the path every
    /// party sees is the same. Envoy's edge recommendation; our default.
    #[default]
    UnescapeAndRedirect,
    /// Answer 400.
    RejectRequest,
    /// Unescape and forward. Only when nothing in front of Envoy decides by path.
    UnescapeAndForward,
    /// Forward as sent. A backend that decodes `%2F` after routing then sees segments routing did not.
    KeepUnchanged,
}

impl EscapedSlashes {
    pub fn as_envoy(self) -> &'static str {
        match self {
            EscapedSlashes::UnescapeAndRedirect => "UNESCAPE_AND_REDIRECT",
            EscapedSlashes::RejectRequest => "REJECT_REQUEST",
            EscapedSlashes::UnescapeAndForward => "UNESCAPE_AND_FORWARD",
            EscapedSlashes::KeepUnchanged => "KEEP_UNCHANGED",
        }
    }
}

/// The tunable part of the edge settings; `Default` is what `render` and `run` use without flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeOptions {
    pub escaped_slashes: EscapedSlashes,
    /// From the first byte of a request's headers to the last (slow-header clients). Envoy's default
    /// is none.
    pub request_headers_timeout: Duration,
    /// A stream with no activity for this long is reset (Envoy's default, 5 min, written out).
    /// Applies to WebSockets and gRPC streams too: they must send something within it.
    pub stream_idle_timeout: Duration,
    /// A downstream connection with no active stream for this long is closed (Envoy's default, 1 h).
    pub connection_idle_timeout: Duration,
    /// The heap the overload manager measures against: at 95% Envoy shrinks its heap, at 98% it
    /// answers new requests with 503.
    pub max_heap_bytes: u64,
    /// Active downstream connections across all listeners; more are refused at accept.
    pub max_connections: u64,
}

impl Default for EdgeOptions {
    fn default() -> EdgeOptions {
        EdgeOptions {
            escaped_slashes: EscapedSlashes::default(),
            request_headers_timeout: Duration::from_secs(10),
            stream_idle_timeout: Duration::from_secs(300),
            connection_idle_timeout: Duration::from_secs(3600),
            max_heap_bytes: 2 * 1024 * 1024 * 1024,
            max_connections: 50_000,
        }
    }
}

/// A protobuf `Duration` in Envoy's YAML form (`10s`, `0.250s`).
pub(super) fn duration(value: Duration) -> Node {
    let millis = value.as_millis();
    if millis.is_multiple_of(1000) {
        Node::from(format!("{}s", millis / 1000))
    } else {
        Node::from(format!("{}.{:03}s", millis / 1000, millis % 1000))
    }
}

fn int(value: u64) -> Node {
    Node::Int(i64::try_from(value).unwrap_or(i64::MAX))
}

/// The connection manager fields every HTTP connection manager we render carries.
pub(super) fn connection_manager_fields(edge: &EdgeOptions) -> Vec<(&'static str, Node)> {
    vec![
        ("normalize_path", Node::from(true)),
        ("merge_slashes", Node::from(true)),
        (
            "path_with_escaped_slashes_action",
            Node::from(edge.escaped_slashes.as_envoy()),
        ),
        ("max_request_headers_kb", Node::Int(MAX_REQUEST_HEADERS_KB)),
        (
            "common_http_protocol_options",
            Node::map([
                ("idle_timeout", duration(edge.connection_idle_timeout)),
                ("max_headers_count", Node::Int(MAX_HEADERS_COUNT)),
                (
                    "headers_with_underscores_action",
                    Node::from("REJECT_REQUEST"),
                ),
            ]),
        ),
        (
            "http2_protocol_options",
            Node::map([
                (
                    "max_concurrent_streams",
                    Node::Int(H2_MAX_CONCURRENT_STREAMS),
                ),
                (
                    "initial_stream_window_size",
                    Node::Int(H2_INITIAL_STREAM_WINDOW),
                ),
                (
                    "initial_connection_window_size",
                    Node::Int(H2_INITIAL_CONNECTION_WINDOW),
                ),
            ]),
        ),
        (
            "request_headers_timeout",
            duration(edge.request_headers_timeout),
        ),
        ("stream_idle_timeout", duration(edge.stream_idle_timeout)),
    ]
}

/// Upstream HTTP/2 windows for h2c clusters, matching the downstream ones.
pub(super) fn upstream_http2_options() -> Node {
    Node::map([
        (
            "initial_stream_window_size",
            Node::Int(H2_INITIAL_STREAM_WINDOW),
        ),
        (
            "initial_connection_window_size",
            Node::Int(H2_INITIAL_CONNECTION_WINDOW),
        ),
    ])
}

/// The bootstrap's `overload_manager`.
pub(super) fn overload_manager(edge: &EdgeOptions) -> Node {
    let heap_trigger = |value: f64| {
        Node::list([Node::map([
            ("name", Node::from(FIXED_HEAP)),
            ("threshold", Node::map([("value", Node::Float(value))])),
        ])])
    };
    Node::map([
        ("refresh_interval", Node::from("0.25s")),
        (
            "resource_monitors",
            Node::list([
                Node::map([
                    ("name", Node::from(FIXED_HEAP)),
                    (
                        "typed_config",
                        Node::typed(
                            FIXED_HEAP_TYPE,
                            [("max_heap_size_bytes", int(edge.max_heap_bytes))],
                        ),
                    ),
                ]),
                Node::map([
                    ("name", Node::from(CONNECTIONS)),
                    (
                        "typed_config",
                        Node::typed(
                            CONNECTIONS_TYPE,
                            [(
                                "max_active_downstream_connections",
                                int(edge.max_connections),
                            )],
                        ),
                    ),
                ]),
            ]),
        ),
        (
            "actions",
            Node::list([
                Node::map([
                    ("name", Node::from("envoy.overload_actions.shrink_heap")),
                    ("triggers", heap_trigger(0.95)),
                ]),
                Node::map([
                    (
                        "name",
                        Node::from("envoy.overload_actions.stop_accepting_requests"),
                    ),
                    ("triggers", heap_trigger(0.98)),
                ]),
            ]),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_render_as_envoy_reads_them() {
        assert_eq!(duration(Duration::from_secs(10)), Node::from("10s"));
        assert_eq!(duration(Duration::from_millis(250)), Node::from("0.250s"));
        assert_eq!(
            duration(Duration::from_millis(61_005)),
            Node::from("61.005s")
        );
    }

    #[test]
    fn huge_limits_saturate_instead_of_wrapping() {
        assert_eq!(int(u64::MAX), Node::Int(i64::MAX));
    }
}
