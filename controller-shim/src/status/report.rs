//! Directory mode's status: a JSON report file and one readable line per route parent.
//!
//! The report keeps the statuses it last wrote and serves them as the "current" status to
//! [`super::plan`], so `lastTransitionTime` survives across rounds exactly as it would on the API
//! server. Lines are printed (stdout) only when they change:
//!
//! ```text
//! app/web → infra/gw/http: Accepted=True (Accepted), ResolvedRefs=False (BackendNotFound: service app/missing not found)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use atomic_file::Access;
use serde_json::{Map, Value, json};

use super::{Current, Known, StatusError, StatusPatch};
use crate::kinds::{Kind, StatusWrite};
use crate::resolution::ObjectKey;

/// The report's state.
#[derive(Debug, Default)]
pub struct Report {
    path: Option<PathBuf>,
    controller: String,
    statuses: BTreeMap<(Kind, ObjectKey), Value>,
    /// What exists now (objects not here have no status).
    existing: BTreeSet<(Kind, ObjectKey)>,
    printed: BTreeMap<String, String>,
    print: bool,
    /// xDS mode: the connected Envoys, what they ACKed and NACKed (the report's `xds` section).
    xds: Option<crate::xds::Registry>,
}

impl Report {
    /// `path`: where to write the JSON report (None: no file); `print`: readable lines on stdout.
    pub fn new(path: Option<PathBuf>, controller: &str, print: bool) -> Report {
        Report {
            path,
            controller: controller.to_owned(),
            print,
            ..Report::default()
        }
    }

    /// Adds the xDS server's view (connected Envoys, versions ACKed, NACKs) as the `xds` section.
    pub fn with_xds(mut self, registry: crate::xds::Registry) -> Report {
        self.xds = Some(registry);
        self
    }

    /// Declares which objects exist now; statuses of the others are forgotten.
    pub fn set_existing(&mut self, existing: BTreeSet<(Kind, ObjectKey)>) {
        self.statuses.retain(|id, _| existing.contains(id));
        self.existing = existing;
    }

    /// Records the patches, writes the report file and prints changed lines. Returns the lines
    /// that changed (new or different).
    pub fn apply(
        &mut self,
        patches: &[StatusPatch],
        problems: &BTreeMap<String, String>,
    ) -> Result<Vec<String>, StatusError> {
        for patch in patches {
            self.statuses
                .insert((patch.kind, patch.key.clone()), patch.status.clone());
        }
        if let Some(path) = &self.path {
            let text = serde_json::to_string_pretty(&self.document(problems)).unwrap_or_default();
            atomic_file::write_if_changed(path, format!("{text}\n").as_bytes(), Access::Public)
                .map_err(|e| StatusError::Report {
                    path: path.display().to_string(),
                    message: e.source.to_string(),
                })?;
        }
        let lines = self.lines();
        let mut changed = Vec::new();
        for (id, line) in &lines {
            if self.printed.get(id) != Some(line) {
                changed.push(line.clone());
            }
        }
        self.printed = lines;
        if self.print {
            for line in &changed {
                println!("{line}");
            }
        }
        Ok(changed)
    }

    /// The JSON report: statuses by kind and `namespace/name`, plus current problems.
    pub fn document(&self, problems: &BTreeMap<String, String>) -> Value {
        let mut doc = Map::new();
        doc.insert("controllerName".to_owned(), json!(self.controller));
        doc.insert("problems".to_owned(), json!(problems));
        if let Some(xds) = &self.xds {
            doc.insert("xds".to_owned(), xds.document());
        }
        // One section per kind whose status is written, empty ones included.
        for kind in Kind::ALL {
            let Some(section) = kind.status().report_section() else {
                continue;
            };
            let statuses: Map<String, Value> = self
                .statuses
                .iter()
                .filter(|((k, _), _)| *k == kind)
                .map(|((_, key), status)| (key.to_string(), status.clone()))
                .collect();
            doc.insert(section.to_owned(), Value::Object(statuses));
        }
        Value::Object(doc)
    }

    /// Every route parent line we own, keyed by kind, route and parent.
    pub fn lines(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for ((kind, key), status) in &self.statuses {
            if !matches!(kind.status(), StatusWrite::RouteParents { .. }) {
                continue;
            }
            let parents = status.get("parents").and_then(Value::as_array);
            for parent in parents.into_iter().flatten() {
                if parent.get("controllerName").and_then(Value::as_str) != Some(&self.controller) {
                    continue;
                }
                let target = parent_text(parent.get("parentRef"), &key.namespace);
                let conditions = parent
                    .get("conditions")
                    .and_then(Value::as_array)
                    .map(|list| {
                        list.iter()
                            .map(condition_text)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                // HTTPRoutes read as before; other kinds (GRPCRoute) name their kind, and an
                // HTTPRoute and a GRPCRoute of one name keep a line each.
                let route = match kind {
                    Kind::HttpRoute => key.to_string(),
                    other => format!("{other} {key}"),
                };
                out.insert(
                    format!("{kind} {key} {target}"),
                    format!("{route} → {target}: {conditions}"),
                );
            }
        }
        out
    }
}

fn parent_text(parent: Option<&Value>, route_namespace: &str) -> String {
    let get = |field: &str| {
        parent
            .and_then(|p| p.get(field))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut text = format!(
        "{}/{}",
        get("namespace").unwrap_or_else(|| route_namespace.to_owned()),
        get("name").unwrap_or_default()
    );
    if let Some(section) = get("sectionName") {
        text.push('/');
        text.push_str(&section);
    }
    if let Some(port) = parent.and_then(|p| p.get("port")).and_then(Value::as_u64) {
        text.push_str(&format!(":{port}"));
    }
    text
}

fn condition_text(condition: &Value) -> String {
    let field = |name: &str| {
        condition
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (kind, status, reason, message) = (
        field("type"),
        field("status"),
        field("reason"),
        field("message"),
    );
    if status == "True" || message.is_empty() {
        format!("{kind}={status} ({reason})")
    } else {
        format!("{kind}={status} ({reason}: {message})")
    }
}

impl Known for Report {
    fn current(&self, kind: Kind, key: &ObjectKey) -> Option<Current> {
        let id = (kind, key.clone());
        self.existing.contains(&id).then(|| Current {
            status: self.statuses.get(&id).cloned(),
            resource_version: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_parent_lines() {
        let mut report = Report::new(None, "us", false);
        let key = ObjectKey {
            namespace: "app".into(),
            name: "web".into(),
        };
        report.set_existing([(Kind::HttpRoute, key.clone())].into());
        let status = json!({"parents": [
            {"parentRef": {"name": "gw", "namespace": "infra", "sectionName": "http"}, "controllerName": "us",
             "conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "ok"},
                {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound", "message": "service app/missing not found"}]},
            {"parentRef": {"name": "other"}, "controllerName": "them", "conditions": []}
        ]});
        let patch = StatusPatch {
            kind: Kind::HttpRoute,
            key,
            patch_status: status.clone(),
            status,
            resource_version: None,
        };
        let changed = report
            .apply(std::slice::from_ref(&patch), &BTreeMap::new())
            .unwrap();
        assert_eq!(
            changed,
            [
                "app/web → infra/gw/http: Accepted=True (Accepted), ResolvedRefs=False (BackendNotFound: service app/missing not found)"
            ]
        );
        assert!(
            report.apply(&[patch], &BTreeMap::new()).unwrap().is_empty(),
            "unchanged lines are not repeated"
        );
    }

    /// A GRPCRoute's lines name its kind, and land in the report's `grpcRoutes` section, apart from
    /// an HTTPRoute of the same name.
    #[test]
    fn grpc_route_lines_and_section() {
        let mut report = Report::new(None, "us", false);
        let key = ObjectKey {
            namespace: "app".into(),
            name: "echo".into(),
        };
        report.set_existing(
            [
                (Kind::HttpRoute, key.clone()),
                (Kind::GrpcRoute, key.clone()),
            ]
            .into(),
        );
        let status = |reason: &str| {
            json!({"parents": [{"parentRef": {"name": "gw", "namespace": "infra"}, "controllerName": "us",
                                "conditions": [{"type": "Accepted", "status": "True", "reason": reason, "message": ""}]}]})
        };
        let patch = |kind: Kind, reason: &str| StatusPatch {
            kind,
            key: key.clone(),
            patch_status: status(reason),
            status: status(reason),
            resource_version: None,
        };
        let changed = report
            .apply(
                &[
                    patch(Kind::HttpRoute, "ForHttp"),
                    patch(Kind::GrpcRoute, "ForGrpc"),
                ],
                &BTreeMap::new(),
            )
            .unwrap();
        assert_eq!(
            changed,
            [
                "GRPCRoute app/echo → infra/gw: Accepted=True (ForGrpc)",
                "app/echo → infra/gw: Accepted=True (ForHttp)"
            ]
        );
        let doc = report.document(&BTreeMap::new());
        assert_eq!(
            doc["grpcRoutes"]["app/echo"]["parents"][0]["conditions"][0]["reason"],
            "ForGrpc"
        );
        assert_eq!(
            doc["httpRoutes"]["app/echo"]["parents"][0]["conditions"][0]["reason"],
            "ForHttp"
        );
    }
}
