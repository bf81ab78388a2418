//! The messages of the conformance suite's echo service, written by hand with prost's derive so a
//! clean checkout builds without `protoc`.
//!
//! Source: kubernetes-sigs/gateway-api, `conformance/echo-basic/grpcecho.proto` (v1.6.1), package
//! `gateway_api_conformance.echo_basic.grpcecho`. Field numbers and types follow it exactly; a
//! round-trip test pins the wire bytes of every field.

/// The fully-qualified service name (`package.Service`).
pub const SERVICE: &str = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho";

/// `message Header { string key = 1; string value = 2; }`
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Header {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `message Context`: who the server is (NAMESPACE, INGRESS_NAME, SERVICE_NAME, POD_NAME).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Context {
    #[prost(string, tag = "1")]
    pub namespace: String,
    #[prost(string, tag = "2")]
    pub ingress: String,
    #[prost(string, tag = "3")]
    pub service_name: String,
    #[prost(string, tag = "4")]
    pub pod: String,
}

/// `message TLSAssertions`: the TLS connection between the client and the server.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct TlsAssertions {
    /// `TLSv1.3`, `TLSv1.2`, …
    #[prost(string, tag = "1")]
    pub version: String,
    /// The ALPN protocol negotiated.
    #[prost(string, tag = "2")]
    pub negotiated_protocol: String,
    /// The SNI the client sent.
    #[prost(string, tag = "3")]
    pub server_name: String,
    #[prost(string, tag = "4")]
    pub cipher_suite: String,
    /// PEM of the certificates the peer sent.
    #[prost(string, repeated, tag = "5")]
    pub peer_certificates: Vec<String>,
}

/// `message Assertions`: what the server saw of the call.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Assertions {
    /// `/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/Echo`.
    #[prost(string, tag = "1")]
    pub fully_qualified_method: String,
    /// The request metadata, one entry per value.
    #[prost(message, repeated, tag = "2")]
    pub headers: Vec<Header>,
    /// The `:authority` pseudo-header.
    #[prost(string, tag = "3")]
    pub authority: String,
    #[prost(message, optional, tag = "4")]
    pub context: Option<Context>,
    #[prost(message, optional, tag = "5")]
    pub tls_assertions: Option<TlsAssertions>,
}

/// `message EchoRequest {}`
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct EchoRequest {}

/// `message EchoResponse { Assertions assertions = 1; EchoRequest request = 2; }`
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct EchoResponse {
    #[prost(message, optional, tag = "1")]
    pub assertions: Option<Assertions>,
    #[prost(message, optional, tag = "2")]
    pub request: Option<EchoRequest>,
}

impl Assertions {
    /// Values of a metadata key (case-insensitive) joined with `,`, as the suite compares them.
    pub fn header(&self, key: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|h| h.key.eq_ignore_ascii_case(key))
            .map(|h| h.value.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    }
}

/// The three RPCs of `service GrpcEcho`. `EchoThree` is "an intentionally unimplemented method".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EchoMethod {
    Echo,
    EchoTwo,
    EchoThree,
}

impl EchoMethod {
    pub const ALL: [EchoMethod; 3] = [EchoMethod::Echo, EchoMethod::EchoTwo, EchoMethod::EchoThree];

    /// The method name (`EchoTwo`).
    pub fn name(self) -> &'static str {
        match self {
            EchoMethod::Echo => "Echo",
            EchoMethod::EchoTwo => "EchoTwo",
            EchoMethod::EchoThree => "EchoThree",
        }
    }

    /// The `:path` of a call: `/<service>/<method>`.
    pub fn path(self) -> String {
        format!("/{SERVICE}/{}", self.name())
    }

    /// The method a name stands for.
    pub fn from_name(name: &str) -> Option<EchoMethod> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

#[cfg(test)]
mod tests {

    use prost::Message as _;

    use super::*;

    /// Wire bytes written out from the proto's field numbers and types (tag = number << 3 | wire
    /// type 2 for strings and messages), so a wrong tag in the derive fails here.
    #[test]
    fn every_field_has_the_proto_number() {
        let response = EchoResponse {
            assertions: Some(Assertions {
                fully_qualified_method: "m".into(),
                headers: vec![Header {
                    key: "k".into(),
                    value: "v".into(),
                }],
                authority: "a".into(),
                context: Some(Context {
                    namespace: "n".into(),
                    ingress: "i".into(),
                    service_name: "s".into(),
                    pod: "p".into(),
                }),
                tls_assertions: Some(TlsAssertions {
                    version: "1".into(),
                    negotiated_protocol: "2".into(),
                    server_name: "3".into(),
                    cipher_suite: "4".into(),
                    peer_certificates: vec!["5".into()],
                }),
            }),
            request: Some(EchoRequest {}),
        };
        let header = [0x0a, 1, b'k', 0x12, 1, b'v'];
        let context = [0x0a, 1, b'n', 0x12, 1, b'i', 0x1a, 1, b's', 0x22, 1, b'p'];
        let tls = [
            0x0a, 1, b'1', 0x12, 1, b'2', 0x1a, 1, b'3', 0x22, 1, b'4', 0x2a, 1, b'5',
        ];
        let mut assertions = vec![0x0a, 1, b'm', 0x12, header.len() as u8];
        assertions.extend_from_slice(&header);
        assertions.extend_from_slice(&[0x1a, 1, b'a', 0x22, context.len() as u8]);
        assertions.extend_from_slice(&context);
        assertions.extend_from_slice(&[0x2a, tls.len() as u8]);
        assertions.extend_from_slice(&tls);
        let mut expected = vec![0x0a, assertions.len() as u8];
        expected.extend_from_slice(&assertions);
        expected.extend_from_slice(&[0x12, 0]);
        assert_eq!(response.encode_to_vec(), expected);
        assert_eq!(EchoResponse::decode(expected.as_slice()).unwrap(), response);
        assert!(EchoRequest {}.encode_to_vec().is_empty());
    }

    #[test]
    fn method_paths() {
        assert_eq!(
            EchoMethod::EchoTwo.path(),
            "/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/EchoTwo"
        );
        assert_eq!(EchoMethod::from_name("Echo"), Some(EchoMethod::Echo));
        assert_eq!(EchoMethod::from_name("echo"), None);
    }
}
