//! `packager snippets`: ready-to-apply configuration that consumes a published artifact, with the
//! manifest digest and the module's sha256 filled in.
//!
//! - Istio `WasmPlugin`: `url: oci://…@sha256:<manifest>` and `sha256:` (Istio checks the image's
//!   manifest digest against it). Istio reads the compat and oci formats.
//! - Envoy Gateway `EnvoyExtensionPolicy`: `code.type: Image`, `image.url` without scheme,
//!   `image.sha256` is the manifest digest. Envoy Gateway reads the compat and oci formats.
//! - Envoy `vm_config.code.remote`: Envoy downloads the raw module over HTTP and checks the
//!   module's sha256. The registry's blob URL serves the raw module for the oci and cncf formats;
//!   for compat, serve the module pulled with `packager pull` yourself.

use std::fmt::Write;

use crate::formats::{Format, ROOT_ID};

/// What the snippets need to know about the artifact.
#[derive(Debug, Clone)]
pub struct SnippetInput {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>` of the manifest.
    pub manifest_digest: String,
    /// Lower-case hex sha256 of the module.
    pub module_sha256: String,
    /// The format, when known (from the registry).
    pub format: Option<Format>,
    /// Digest of a layer that is the raw module (oci and cncf formats), for Envoy's remote source.
    pub raw_module_blob: Option<String>,
    pub plain_http: bool,
}

impl SnippetInput {
    fn pinned(&self) -> String {
        format!(
            "{}/{}@{}",
            self.registry, self.repository, self.manifest_digest
        )
    }

    fn manifest_hex(&self) -> &str {
        self.manifest_digest
            .strip_prefix("sha256:")
            .unwrap_or(&self.manifest_digest)
    }

    fn host_port(&self) -> (String, u16) {
        let default_port = if self.plain_http { 80 } else { 443 };
        match self.registry.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), port.parse().unwrap_or(default_port)),
            None => (self.registry.clone(), default_port),
        }
    }
}

/// Renders all three snippets as one multi-document YAML stream.
pub fn render(input: &SnippetInput) -> String {
    let mut out = String::new();
    let tag_note = input
        .tag
        .as_deref()
        .map(|t| format!(" (tag {t})"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "# gateway-wasm artifact {}{tag_note}\n# manifest digest: {}\n# module sha256:   {}",
        input.pinned(),
        input.manifest_digest,
        input.module_sha256
    );
    if input.format == Some(Format::Cncf) {
        let _ = writeln!(
            out,
            "# WARNING: this artifact is in the CNCF Wasm format, which Istio and Envoy Gateway do not\n\
             # read; publish the compat (default) or oci format for them. The Envoy remote source works."
        );
    }
    let _ = writeln!(out, "---");
    out.push_str(&istio(input));
    let _ = writeln!(out, "---");
    out.push_str(&envoy_gateway(input));
    let _ = writeln!(out, "---");
    out.push_str(&envoy_remote(input));
    out
}

fn istio(input: &SnippetInput) -> String {
    let plain = if input.plain_http {
        "\n# The registry serves plain HTTP: Istio falls back to http:// when https fails."
    } else {
        ""
    };
    format!(
        r#"# Istio: WasmPlugin pulling the OCI artifact, pinned by manifest digest.{plain}
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: gateway-wasm
  namespace: istio-system
spec:
  selector:
    matchLabels:
      istio: ingressgateway
  url: oci://{pinned}
  sha256: {manifest_hex}
  imagePullPolicy: IfNotPresent
  failStrategy: FAIL_CLOSE
  pluginConfig: {{}}  # the PluginConfig document (written by the controller shim)
"#,
        pinned = input.pinned(),
        manifest_hex = input.manifest_hex(),
    )
}

fn envoy_gateway(input: &SnippetInput) -> String {
    format!(
        r#"# Envoy Gateway: EnvoyExtensionPolicy with the Image code source, pinned by manifest digest.
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyExtensionPolicy
metadata:
  name: gateway-wasm
  namespace: default
spec:
  targetRefs:
    - group: gateway.networking.k8s.io
      kind: Gateway
      name: eg
  wasm:
    - name: gateway-wasm
      rootID: {ROOT_ID}
      code:
        type: Image
        image:
          url: {pinned}
          sha256: {manifest_hex}
        pullPolicy: IfNotPresent
      failOpen: false
      config: {{}}  # the PluginConfig document
"#,
        pinned = input.pinned(),
        manifest_hex = input.manifest_hex(),
    )
}

fn envoy_remote(input: &SnippetInput) -> String {
    let scheme = if input.plain_http { "http" } else { "https" };
    let (host, port) = input.host_port();
    let (uri, note) = match &input.raw_module_blob {
        Some(blob) => (
            format!(
                "{scheme}://{}/v2/{}/blobs/{blob}",
                input.registry, input.repository
            ),
            "# The URI is the registry's blob holding the raw module (anonymous pull only).",
        ),
        None => (
            format!("{scheme}://{}/gateway_wasm.wasm", input.registry),
            "# The compat layer is a tar.gz, not the module: serve the module from\n\
             # `packager pull <ref> --out gateway_wasm.wasm` on an HTTP server and point the URI at it.",
        ),
    };
    let tls = if input.plain_http {
        String::new()
    } else {
        format!(
            r#"    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: {host}
"#
        )
    };
    format!(
        r#"# Envoy: the Wasm HTTP filter fetching the module with vm_config.code.remote, checked by sha256.
{note}
# Put the filter in the HTTP connection manager's http_filters (before the router) and the
# cluster in static_resources.clusters.
http_filters:
  - name: envoy.filters.http.wasm
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
      config:
        name: gateway-wasm
        root_id: {ROOT_ID}
        failure_policy: FAIL_CLOSED
        configuration:
          "@type": type.googleapis.com/google.protobuf.StringValue
          value: "{{}}"
        vm_config:
          vm_id: gateway-wasm
          runtime: envoy.wasm.runtime.v8
          code:
            remote:
              http_uri:
                uri: {uri}
                cluster: gateway_wasm_registry
                timeout: 30s
              sha256: {module_sha256}
              retry_policy:
                num_retries: 3
clusters:
  - name: gateway_wasm_registry
    type: LOGICAL_DNS
    connect_timeout: 5s
    load_assignment:
      cluster_name: gateway_wasm_registry
      endpoints:
        - lb_endpoints:
            - endpoint:
                address:
                  socket_address: {{ address: {host}, port_value: {port} }}
{tls}"#,
        module_sha256 = input.module_sha256,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(format: Format, raw: Option<&str>) -> SnippetInput {
        SnippetInput {
            registry: "127.0.0.1:5000".into(),
            repository: "gw/filter".into(),
            tag: Some("0.1.0".into()),
            manifest_digest: format!("sha256:{}", "a".repeat(64)),
            module_sha256: "b".repeat(64),
            format: Some(format),
            raw_module_blob: raw.map(str::to_string),
            plain_http: true,
        }
    }

    #[test]
    fn digests_are_filled_in() {
        let out = render(&input(Format::Compat, None));
        let manifest_hex = "a".repeat(64);
        assert!(out.contains(&format!(
            "url: oci://127.0.0.1:5000/gw/filter@sha256:{manifest_hex}"
        )));
        assert!(out.contains(&format!("  sha256: {manifest_hex}")));
        assert!(out.contains(&format!(
            "url: 127.0.0.1:5000/gw/filter@sha256:{manifest_hex}"
        )));
        assert!(out.contains(&format!("sha256: {}", "b".repeat(64))));
        assert!(out.contains("kind: WasmPlugin"));
        assert!(out.contains("kind: EnvoyExtensionPolicy"));
        assert!(out.contains("remote:"));
        assert!(out.contains("socket_address: { address: 127.0.0.1, port_value: 5000 }"));
        assert!(out.contains("packager pull"));
        assert_eq!(out.matches("\n---\n").count(), 3);
    }

    #[test]
    fn raw_layer_becomes_the_remote_uri() {
        let blob = format!("sha256:{}", "c".repeat(64));
        let out = render(&input(Format::Oci, Some(&blob)));
        assert!(out.contains(&format!(
            "uri: http://127.0.0.1:5000/v2/gw/filter/blobs/{blob}"
        )));
    }

    #[test]
    fn cncf_gets_a_warning() {
        let out = render(&input(Format::Cncf, None));
        assert!(out.contains("WARNING: this artifact is in the CNCF Wasm format"));
    }
}
