//! The `mutation` expectation: a change applied to a route between two resolutions
//! ("patch spec.rules[0].backendRefs[0].name to infra-backend-v2").

use controller_shim::api::RouteStatus;
use controller_shim::kinds::KindType;
use controller_shim::{Kind, Resolution, Snapshot};
use serde_json::Value;

/// A parsed `patch <path> to <value>` mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutation {
    pub text: String,
    path: Vec<Segment>,
    value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Field(String),
    Index(usize),
}

/// Reads `patch a.b[0].c to value`; `None` for any other phrasing.
pub fn parse(text: &str) -> Option<Mutation> {
    let rest = text.strip_prefix("patch ")?;
    let (path, value) = rest.split_once(" to ")?;
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (field, mut indices) = match part.find('[') {
            Some(i) => (part.get(..i)?, part.get(i..)?),
            None => (part, ""),
        };
        if field.is_empty() {
            return None;
        }
        segments.push(Segment::Field(field.to_owned()));
        while !indices.is_empty() {
            let close = indices.find(']')?;
            let number = indices.get(1..close)?.parse().ok()?;
            segments.push(Segment::Index(number));
            indices = indices.get(close + 1..)?;
        }
    }
    if value.is_empty() || segments.is_empty() {
        return None;
    }
    Some(Mutation {
        text: text.to_owned(),
        path: segments,
        value: value.to_owned(),
    })
}

/// The snapshot with `route` patched the way the API server would store it: the spec changed,
/// `metadata.generation` incremented, and the status the controller wrote from `before` in place.
pub fn apply(
    snapshot: &Snapshot,
    before: &Resolution,
    kind: Kind,
    route: &str,
    m: &Mutation,
) -> Result<Snapshot, String> {
    let mut patched = snapshot.clone();
    let status = before
        .routes
        .iter()
        .find(|r| r.kind == kind && r.route.to_string() == route)
        .map(|r| r.status.clone());
    match kind {
        Kind::HttpRoute => patch(&mut patched.http_routes, route, m, status)?,
        Kind::GrpcRoute => patch(&mut patched.grpc_routes, route, m, status)?,
        other => return Err(format!("{other} {route} is not a route")),
    }
    Ok(patched)
}

/// Applies the mutation to route `route` of one kind's list, bumps its generation and gives it the
/// status the controller wrote before.
fn patch<T: KindType>(
    routes: &mut [T],
    route: &str,
    m: &Mutation,
    status: Option<RouteStatus>,
) -> Result<(), String> {
    let object = routes
        .iter_mut()
        .find(|r| {
            let meta = r.meta();
            format!(
                "{}/{}",
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default()
            ) == route
        })
        .ok_or_else(|| format!("route {route} is not in the snapshot"))?;
    let mut value = serde_json::to_value(&*object).map_err(|e| e.to_string())?;
    let mut target = &mut value;
    for segment in &m.path {
        target = match segment {
            Segment::Field(f) => target.get_mut(f.as_str()),
            Segment::Index(i) => target.get_mut(*i),
        }
        .ok_or_else(|| format!("{route} has no {segment:?} on the path"))?;
    }
    if target.as_str() == Some(m.value.as_str()) {
        return Err(format!("the value is already {:?}", m.value));
    }
    *target = Value::String(m.value.clone());
    if let (Some(status), Some(fields)) = (status, value.as_object_mut()) {
        fields.insert(
            "status".to_owned(),
            serde_json::to_value(status).map_err(|e| e.to_string())?,
        );
    }
    *object = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let meta = object.meta_mut();
    meta.generation = Some(meta.generation.unwrap_or(1) + 1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_patch_phrasing() {
        let m = parse("patch spec.rules[0].backendRefs[0].name to infra-backend-v2").unwrap();
        assert_eq!(
            m.path,
            vec![
                Segment::Field("spec".into()),
                Segment::Field("rules".into()),
                Segment::Index(0),
                Segment::Field("backendRefs".into()),
                Segment::Index(0),
                Segment::Field("name".into()),
            ]
        );
        assert_eq!(m.value, "infra-backend-v2");
        assert!(parse("delete the route").is_none());
        assert!(parse("patch spec.rules[x] to y").is_none());
    }
}
