//! Comparing and merging status documents, as JSON.
//!
//! Working on JSON rather than the typed structs lets one set of rules cover every kind:
//! - two statuses are the same when they are equal once every `lastTransitionTime` is removed;
//! - a condition whose `status` did not change keeps the `lastTransitionTime` already recorded
//!   (matched by `type`, inside the listener with the same `name` or the route parent with the same
//!   `parentRef` and `controllerName`);
//! - an HTTPRoute's `parents[]` entries owned by other controllers are kept as they are.

use serde_json::{Map, Value};

const LTT: &str = "lastTransitionTime";

/// The value with every `lastTransitionTime` removed.
pub fn without_transition_times(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != LTT)
                .map(|(k, v)| (k.clone(), without_transition_times(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_transition_times).collect()),
        other => other.clone(),
    }
}

/// Equal ignoring `lastTransitionTime`.
pub fn same(a: &Value, b: &Value) -> bool {
    without_transition_times(a) == without_transition_times(b)
}

/// How array elements are matched between the desired and the current document.
fn identity(item: &Value) -> Option<Value> {
    let map = item.as_object()?;
    if let Some(parent) = map.get("parentRef") {
        return Some(Value::Array(vec![
            parent.clone(),
            map.get("controllerName").cloned().unwrap_or(Value::Null),
        ]));
    }
    if let Some(kind) = map.get("type") {
        return Some(kind.clone());
    }
    map.get("name").cloned()
}

/// Copies `lastTransitionTime` from `current` into `desired` for every condition whose `status`
/// is unchanged.
pub fn carry_transition_times(desired: &mut Value, current: &Value) {
    match (desired, current) {
        (Value::Object(want), Value::Object(have)) => {
            let is_condition = want.contains_key("type") && want.contains_key("status");
            if is_condition {
                if want.get("status") == have.get("status")
                    && let Some(time) = have.get(LTT)
                {
                    want.insert(LTT.to_owned(), time.clone());
                }
                return;
            }
            for (key, value) in want.iter_mut() {
                if let Some(old) = have.get(key) {
                    carry_transition_times(value, old);
                }
            }
        }
        (Value::Array(want), Value::Array(have)) => {
            for item in want.iter_mut() {
                let Some(id) = identity(item) else { continue };
                if let Some(old) = have.iter().find(|o| identity(o).as_ref() == Some(&id)) {
                    carry_transition_times(item, old);
                }
            }
        }
        _ => {}
    }
}

/// The route status to write: other controllers' parents as they are (in their order), then ours.
pub fn merge_route_parents(ours: Vec<Value>, current: Option<&Value>, controller: &str) -> Value {
    let mut parents: Vec<Value> = current
        .and_then(|s| s.get("parents"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter(|p| p.get("controllerName").and_then(Value::as_str) != Some(controller))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    parents.extend(ours);
    let mut status = current
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    status.insert("parents".to_owned(), Value::Array(parents));
    Value::Object(status)
}

/// Whether the current route status has parents owned by `controller`.
pub fn has_our_parents(current: Option<&Value>, controller: &str) -> bool {
    current
        .and_then(|s| s.get("parents"))
        .and_then(Value::as_array)
        .is_some_and(|list| {
            list.iter()
                .any(|p| p.get("controllerName").and_then(Value::as_str) == Some(controller))
        })
}

/// A merge patch that turns `current` into `desired` at the top level of `status`: fields of the
/// current status that the desired one lacks are set to `null` (a merge patch otherwise keeps them).
pub fn replacing(desired: &Value, current: Option<&Value>) -> Value {
    let mut out: Map<String, Value> = desired.as_object().cloned().unwrap_or_default();
    if let Some(Value::Object(have)) = current {
        for key in have.keys() {
            if !out.contains_key(key) {
                out.insert(key.clone(), Value::Null);
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn transition_times_are_ignored_and_carried() {
        let current = json!({"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "lastTransitionTime": "2020-01-01T00:00:00Z"},
            {"type": "Programmed", "status": "False", "reason": "Pending", "lastTransitionTime": "2020-01-01T00:00:00Z"}
        ], "listeners": [{"name": "http", "attachedRoutes": 1, "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "lastTransitionTime": "2020-01-02T00:00:00Z"}
        ]}]});
        let mut desired = json!({"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "lastTransitionTime": "2030-01-01T00:00:00Z"},
            {"type": "Programmed", "status": "True", "reason": "Programmed", "lastTransitionTime": "2030-01-01T00:00:00Z"}
        ], "listeners": [{"name": "http", "attachedRoutes": 1, "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "lastTransitionTime": "2030-01-01T00:00:00Z"}
        ]}]});
        assert!(!same(&desired, &current));
        carry_transition_times(&mut desired, &current);
        assert_eq!(desired["conditions"][0][LTT], "2020-01-01T00:00:00Z");
        assert_eq!(
            desired["conditions"][1][LTT], "2030-01-01T00:00:00Z",
            "status changed"
        );
        assert_eq!(
            desired["listeners"][0]["conditions"][0][LTT],
            "2020-01-02T00:00:00Z"
        );
    }

    #[test]
    fn other_controllers_parents_are_kept() {
        let current = json!({"parents": [
            {"parentRef": {"name": "theirs"}, "controllerName": "example.com/other", "conditions": []},
            {"parentRef": {"name": "gw"}, "controllerName": "us", "conditions": []}
        ]});
        let merged = merge_route_parents(
            vec![json!({"parentRef": {"name": "gw2"}, "controllerName": "us", "conditions": []})],
            Some(&current),
            "us",
        );
        let names: Vec<&str> = merged["parents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["parentRef"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["theirs", "gw2"]);
        assert!(has_our_parents(Some(&current), "us"));
        assert!(!has_our_parents(Some(&current), "nobody"));
    }

    #[test]
    fn replacing_nulls_fields_that_went_away() {
        let patch = replacing(
            &json!({"conditions": []}),
            Some(&json!({"conditions": [], "listeners": []})),
        );
        assert_eq!(patch, json!({"conditions": [], "listeners": null}));
    }
}
