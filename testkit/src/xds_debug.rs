//! Reading the controller-shim's `/debug/xds` document (tests and harnesses that wait for Envoys
//! fed over xDS).

use serde_json::Value;

/// The entry of `node` in a `/debug/xds` document when every version sent to it of every type was
/// ACKed; `None` while something is outstanding or the node is not connected.
pub fn synced_node<'a>(status: &'a Value, node: &str) -> Option<&'a Value> {
    status
        .get("nodes")
        .and_then(Value::as_array)?
        .iter()
        .find(|n| n.get("node").and_then(Value::as_str) == Some(node))
        .filter(|n| {
            n.get("resources")
                .and_then(Value::as_object)
                .is_some_and(|types| types.values().all(|t| t.get("sent") == t.get("acked")))
        })
}

#[cfg(test)]
mod tests {
    use super::synced_node;
    use serde_json::json;

    #[test]
    fn a_node_is_synced_when_every_type_sent_was_acked() {
        let status = json!({"nodes": [
            {"node": "a", "resources": {"CDS": {"sent": "1", "acked": "1"}}},
            {"node": "b", "resources": {"CDS": {"sent": "2", "acked": "1"}}},
        ]});
        assert!(synced_node(&status, "a").is_some());
        assert!(synced_node(&status, "b").is_none());
        assert!(synced_node(&status, "c").is_none());
    }
}
