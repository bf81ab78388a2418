//! The gRPC step: real gRPC calls (testkit's `grpc-call`, HTTP/2 with prior knowledge) to Envoy
//! for `grpc.example.com`, where the quickstart's GRPCRoute `rpc/echo` sends the echo service's
//! `Echo` method to `rpc/grpc-echo` and nothing else.

use super::probes::{GRPC_HOST as HOST, GRPC_ROUTED, GRPC_SERVICE, GRPC_UNROUTED};
use super::*;

/// What `grpc-call` printed for one call (its JSON line; unknown fields ignored).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct GrpcCall {
    http_status: Option<u16>,
    grpc_status: u32,
    grpc_status_name: Option<String>,
    grpc_message: Option<String>,
    trailers_only: bool,
    backend: Option<GrpcBackend>,
    metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct GrpcBackend {
    namespace: String,
    service: String,
    pod: String,
}

impl Demo {
    pub(crate) fn grpc(&mut self) {
        self.heading("8. gRPC: a GRPCRoute routes by service and method, over HTTP/2 cleartext");
        let routed = self.grpc_call(GRPC_ROUTED);
        let backend = GRPC_BACKEND;
        let ok = routed.as_ref().is_some_and(|c| {
            c.grpc_status == 0
                && c.backend
                    .as_ref()
                    .is_some_and(|b| b.namespace == backend.0 && b.service == backend.1)
        });
        self.check(
            ok,
            &format!("Echo: grpc-status 0 (OK) from {}/{}", backend.0, backend.1),
        );
        let header_set = routed.as_ref().is_some_and(|c| {
            c.metadata
                .as_ref()
                .and_then(|m| m.get("x-routed-by"))
                .is_some_and(|v| v == "gateway-wasm")
        });
        self.check(
            header_set,
            "the backend saw the route's request header x-routed-by: gateway-wasm",
        );
        let unrouted = self.grpc_call(GRPC_UNROUTED);
        let ok = unrouted.as_ref().is_some_and(|c| {
            c.grpc_status == 12
                && c.http_status == Some(200)
                && c.trailers_only
                && c.backend.is_none()
        });
        self.check(
            ok,
            "EchoTwo (no rule matches): grpc-status 12 (UNIMPLEMENTED) from the filter itself, HTTP 200 trailers-only",
        );
    }

    /// One call through Envoy, shown like the HTTP requests; `None` (printed) when it failed.
    fn grpc_call(&self, method: &str) -> Option<GrpcCall> {
        let addr = self.envoy.to_string();
        println!(
            "    {}  POST /{GRPC_SERVICE}/{method}  :authority {HOST}  (gRPC over h2c)",
            self.style.dim("call    ")
        );
        let output = Command::new(&self.grpc_call)
            .args(["--addr", &addr, "--authority", HOST, "--method", method])
            .output();
        let parsed = match output {
            Ok(o) if o.status.success() => serde_json::from_slice::<GrpcCall>(&o.stdout)
                .map_err(|e| format!("grpc-call printed no JSON line: {e}")),
            Ok(o) => Err(format!(
                "grpc-call failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Err(format!("starting {}: {e}", self.grpc_call.display())),
        };
        let call = match parsed {
            Ok(call) => call,
            Err(e) => {
                println!("    {}  {e}", self.style.dim("answer  "));
                return None;
            }
        };
        let status = format!(
            "grpc-status {} ({})",
            call.grpc_status,
            call.grpc_status_name.as_deref().unwrap_or("?")
        );
        let answer = match (&call.backend, &call.grpc_message) {
            (Some(b), _) => format!(
                "{status} from {}/{} (pod {})",
                b.namespace, b.service, b.pod
            ),
            (None, Some(message)) => format!("{status} from the gateway: {message}"),
            (None, None) => format!("{status} from the gateway"),
        };
        println!("    {}  {answer}", self.style.dim("answer  "));
        Some(call)
    }
}
