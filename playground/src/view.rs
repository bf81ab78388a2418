//! `resolve(yamlText)` for the page: every Gateway's PluginConfig, the status every object would
//! get, manifest errors, and the topology to draw.

use serde::Serialize;
use serde_json::Value;

use gateway_resolver::api::{Condition, Time, jiff};
use gateway_resolver::manifests::ManifestError;
use gateway_resolver::resolution::{GatewayResult, Resolution};
use gateway_resolver::{Settings, resolve};

use crate::bundle;
use crate::topology::{self, Topology};

/// What `resolve()` returns (as JSON).
#[derive(Debug, Serialize)]
pub struct Resolved {
    pub gateways: Vec<GatewayView>,
    pub status: Vec<StatusView>,
    /// Manifest errors; loading stops at the first, as the CLI does, so there is at most one.
    pub errors: Vec<ErrorView>,
    /// Objects of kinds the resolver does not read, and similar notices.
    pub warnings: Vec<String>,
    pub topology: Topology,
}

#[derive(Debug, Serialize)]
pub struct GatewayView {
    /// `namespace/name`.
    pub gateway: String,
    pub revision: String,
    /// The PluginConfig the filter would receive.
    pub config: engine::PluginConfig,
    /// Why the engine would reject this config (the proxy keeps its previous one), if it would.
    pub rejected: Option<String>,
}

/// The status one object would get.
#[derive(Debug, Serialize)]
pub struct StatusView {
    /// `GatewayClass`, `Gateway`, `ListenerSet`, `HTTPRoute`, `GRPCRoute`.
    pub kind: &'static str,
    /// `namespace/name` (the name alone for cluster-scoped objects).
    pub name: String,
    /// The `status` as the controller writes it (only our `parents[]` entries for routes).
    pub status: Value,
}

/// A manifest error, with where it is (as the CLI prints it in `text`).
#[derive(Debug, Serialize)]
pub struct ErrorView {
    pub file: Option<String>,
    /// 1-based document number within the file.
    pub document: Option<usize>,
    /// Index inside a `kind: List`.
    pub item: Option<usize>,
    /// The field path (`spec.listeners[0].port`), when one is known.
    pub field: Option<String>,
    pub message: String,
    /// The whole error, as `controller-shim` prints it.
    pub text: String,
}

impl ErrorView {
    fn of(error: &ManifestError) -> ErrorView {
        let (origin, field, message) = match error {
            ManifestError::Yaml { origin, message } => (Some(origin), None, message.clone()),
            ManifestError::Malformed {
                origin,
                field,
                message,
                ..
            } => (Some(origin), Some(field.clone()), message.clone()),
            other => (None, None, other.to_string()),
        };
        ErrorView {
            file: origin.map(|o| o.file.display().to_string()),
            document: origin.map(|o| o.document),
            item: origin.and_then(|o| o.item),
            field,
            message,
            text: error.to_string(),
        }
    }
}

/// The time conditions are stamped with: `now_ms` (milliseconds since the Unix epoch, from
/// JavaScript's `Date.now()`; the browser has no clock Rust can read), or the epoch.
pub fn settings_at(now_ms: f64) -> Settings {
    let mut settings = Settings::default();
    // Whole milliseconds only; NaN and out-of-range values fall back to the epoch.
    if now_ms.is_finite() && now_ms.abs() < 1e15 {
        let millis = now_ms.trunc() as i64;
        if let Ok(now) = jiff::Timestamp::from_millisecond(millis) {
            settings.now = Time(now);
        }
    }
    settings
}

fn status_json(status: &impl Serialize) -> Value {
    serde_json::to_value(status).unwrap_or(Value::Null)
}

fn gateway_view(gateway: &GatewayResult) -> GatewayView {
    GatewayView {
        gateway: gateway.gateway.to_string(),
        revision: gateway.config.revision.clone(),
        rejected: engine::RouteTable::compile(&gateway.config)
            .err()
            .map(|e| e.to_string()),
        config: gateway.config.clone(),
    }
}

fn statuses(resolution: &Resolution) -> Vec<StatusView> {
    let mut out = Vec::new();
    for class in &resolution.gateway_classes {
        out.push(StatusView {
            kind: "GatewayClass",
            name: class.class.clone(),
            status: status_json(&class.status),
        });
    }
    for gateway in &resolution.gateways {
        out.push(StatusView {
            kind: "Gateway",
            name: gateway.gateway.to_string(),
            status: status_json(&gateway.status),
        });
    }
    for set in &resolution.listener_sets {
        out.push(StatusView {
            kind: "ListenerSet",
            name: set.listener_set.to_string(),
            status: status_json(&set.status),
        });
    }
    for route in &resolution.routes {
        out.push(StatusView {
            kind: route.kind.as_str(),
            name: route.route.to_string(),
            status: status_json(&route.status),
        });
    }
    out
}

/// Resolves the editor's text.
pub fn resolved(text: &str, settings: &Settings) -> Resolved {
    let loaded = match bundle::load(text) {
        Ok(loaded) => loaded,
        Err(error) => {
            return Resolved {
                gateways: Vec::new(),
                status: Vec::new(),
                errors: vec![ErrorView::of(&error)],
                warnings: Vec::new(),
                topology: Topology::default(),
            };
        }
    };
    let resolution = resolve(&loaded.snapshot, settings);
    Resolved {
        gateways: resolution.gateways.iter().map(gateway_view).collect(),
        status: statuses(&resolution),
        errors: Vec::new(),
        warnings: loaded.unknown.iter().map(ToString::to_string).collect(),
        topology: topology::build(&loaded.snapshot, &resolution, &settings.controller_name),
    }
}

/// `type=status` of a condition (`None` when absent).
pub(crate) fn condition<'c>(conditions: &'c [Condition], kind: &str) -> Option<&'c Condition> {
    conditions.iter().find(|c| c.type_ == kind)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn the_clock_comes_from_the_caller() {
        let settings = settings_at(1_700_000_000_123.0);
        assert_eq!(settings.now.0.as_millisecond(), 1_700_000_000_123);
        assert_eq!(settings_at(f64::NAN).now, Settings::default().now);
        assert_eq!(settings_at(1e300).now, Settings::default().now);
    }

    #[test]
    fn errors_carry_file_document_and_field() {
        let out = resolved(
            "# file: gw.yaml\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
             metadata: {name: g}\nspec: {gatewayClassName: 7, listeners: []}\n",
            &Settings::default(),
        );
        let error = &out.errors[0];
        assert_eq!(error.file.as_deref(), Some("gw.yaml"));
        assert_eq!(error.document, Some(1));
        assert_eq!(error.field.as_deref(), Some("spec.gatewayClassName"));
        assert!(
            error
                .text
                .starts_with("gw.yaml document 1: Gateway spec.gatewayClassName: ")
        );
        assert!(out.gateways.is_empty());
    }

    #[test]
    fn grpc_routes_get_status_rows_of_their_own_kind() {
        let out = resolved(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: ours}\n\
             spec: {controllerName: gateway-wasm.dev/controller-shim}\n---\n\
             apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g, namespace: n}\n\
             spec: {gatewayClassName: ours, listeners: [{name: h, port: 80, protocol: HTTP}]}\n---\n\
             apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: r, namespace: n}\n\
             spec: {parentRefs: [{name: g}], rules: [{backendRefs: [{name: nowhere, port: 9000}]}]}\n",
            &Settings::default(),
        );
        let row = out
            .status
            .iter()
            .find(|s| s.name == "n/r")
            .expect("a status row for the GRPCRoute");
        assert_eq!(row.kind, "GRPCRoute");
        let conditions = &row.status["parents"][0]["conditions"];
        let reason = |kind: &str| {
            conditions
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == kind)
                .map(|c| c["reason"].clone())
        };
        assert_eq!(reason("Accepted"), Some("Accepted".into()));
        assert_eq!(reason("ResolvedRefs"), Some("BackendNotFound".into()));
    }
}
