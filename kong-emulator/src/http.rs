//! What goes in and out of the emulated Kong: a client request, what a backend received, the
//! client's response, and how emulated backends answer.

/// A request as a client sends it to one of Kong's proxy listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest {
    /// The Kong listen port it arrives on.
    pub port: u16,
    pub method: String,
    /// The request target exactly as sent (`/path?query`).
    pub target: String,
    /// Headers as sent, `Host` included.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ClientRequest {
    pub fn get(port: u16, host: &str, target: &str) -> ClientRequest {
        ClientRequest {
            port,
            method: "GET".to_owned(),
            target: target.to_owned(),
            headers: vec![("Host".to_owned(), host.to_owned())],
            body: Vec::new(),
        }
    }
}

/// What a backend received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The name the backend was registered with ([`KongEmulator::listen`]).
    pub backend: String,
    /// `ip:port` Kong connected to.
    pub peer: String,
    pub method: String,
    /// Path and query as sent upstream (`$upstream_uri`).
    pub target: String,
    /// The Host header sent (`$upstream_host`).
    pub host: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the client got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The backend that answered, when one did.
    pub upstream: Option<Upstream>,
    /// Every `ip:port` Kong tried, in order, over all passes.
    pub attempts: Vec<String>,
}

impl Response {
    pub(crate) fn plain(status: u16, message: &str) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
            body: format!("{{\"message\":\"{message}\"}}").into_bytes(),
            upstream: None,
            attempts: Vec::new(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How a backend answers: status and response headers for what it received.
pub type Answer = fn(&Upstream) -> (u16, Vec<(String, String)>);

/// The default backend: 200, and the response headers the request asks for in
/// `X-Echo-Set-Header: Name:value,Other:value` (like the conformance suite's echo server).
pub fn echo(upstream: &Upstream) -> (u16, Vec<(String, String)>) {
    let headers = upstream
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-echo-set-header"))
        .flat_map(|(_, v)| v.split(','))
        .filter_map(|pair| pair.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    (200, headers)
}
