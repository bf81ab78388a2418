//! DB-less Kong (`database = off`): the whole declarative configuration through `POST /config`.
//!
//! A DB-less Kong's Admin API is read-only except `POST /config`, which **replaces everything**
//! Kong holds. The shim therefore owns that Kong's whole configuration: what it posts is exactly
//! [`super::entities::declarative_config`] (the entry service, route and filter chain of one
//! Gateway, and a service and route per backend) and nothing else.
//! It never merges with other configuration, and it refuses to replace a configuration holding
//! entities it did not write (see [`foreign_entities`]), so pointing it at a Kong that serves
//! other things fails loudly instead of erasing them.
//!
//! One delivery:
//! 1. The configuration is serialized once to JSON text; Kong fingerprints a posted
//!    `{"config": "<text>"}` as the MD5 of that text ([`config_hash`]).
//! 2. `GET /status` reports `configuration_hash`, the fingerprint of what Kong runs (all zeros
//!    when empty: [`EMPTY_CONFIG_HASH`]). Equal to ours: nothing to do. This is what makes the
//!    runtime's periodic re-delivery repair a Kong that restarted empty (or from an older
//!    `declarative_config` file) while costing one small GET when nothing changed.
//! 3. Kong holds something else. When it is empty, or the configuration this target last posted,
//!    go ahead; otherwise (the shim restarted, someone else posted, Kong restarted from a file)
//!    read it (`GET /config`, Kong's export: flat lists per entity type) and refuse if any entity
//!    is not one of ours ([`DeliverError::KongForeign`]).
//! 4. `POST /config?check_hash=1&flatten_errors=1` with `{"config": "<text>"}`: `201` (the new
//!    configuration, reloaded), `304` (Kong already had exactly this text: no reload), `400` with
//!    `flattened_errors` turned into [`DeliverError::KongInvalid`] naming each entity and field;
//!    anything else (`429` while a previous configuration loads, `413` too large for LMDB, `5xx`)
//!    is [`DeliverError::KongStatus`] and retried. A refused configuration changes nothing in Kong.
//!
//! Even if our MD5 ever disagreed with Kong's fingerprint, nothing would reload needlessly: step 3
//! would find only our entities and Kong's own `check_hash` would answer 304.
//!
//! Followed (Kong/kong, identical in tags 3.4.0 and 3.9.3 for what is used here):
//! kong/api/routes/config.lua (`POST /config`: a `config` string is unserialized, JSON first, and
//! its hash compared with the current one when `check_hash` is `"1"`; `flatten_errors` is truthy
//! for `1`/`true`/`on`/`yes`; a validation failure is `400` with `code` 14 and, when flattened,
//! `flattened_errors`; `GET /config` exports `{"config": "<yaml>"}`),
//! kong/db/declarative/init.lua (`unserialize`: `md5(contents)`), kong/api/routes/health.lua
//! (`configuration_hash` in `GET /status` when DB-less), kong/constants.lua
//! (`DECLARATIVE_EMPTY_CONFIG_HASH`, 32 zeros), kong/db/errors.lua (`declarative_config_flattened`:
//! entries with `entity_type` in the singular, `entity_name`, `entity_id`, and `errors[]` of
//! `{type: "field", field: "filters.1.config", message}` or `{type: "entity", message}`), and
//! spec/02-integration/04-admin_api/15-off_spec.lua and spec/02-integration/20-wasm/ for the
//! answers as tested.

use hyper::Method;
use md5::{Digest as _, Md5};
use serde_json::{Value, json};

use super::{KongTarget, at, entities, entity_name};
use crate::deliver::{DeliverError, Delivered};
use crate::resolution::GatewayResult;

/// What `GET /status` reports as `configuration_hash` while a DB-less Kong holds nothing.
pub const EMPTY_CONFIG_HASH: &str = "00000000000000000000000000000000";
/// Skip the reload when Kong already runs this text; name entities and fields in errors.
pub const CONFIG_PATH: &str = "/config?check_hash=1&flatten_errors=1";

/// Kong's fingerprint of a configuration posted as `{"config": text}`: MD5, lowercase hex.
pub fn config_hash(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

/// The exact JSON text posted as `config` for a Gateway, and what the operator should know.
pub fn config_text(
    target: &KongTarget,
    gateway: &GatewayResult,
) -> Result<(String, Vec<String>), DeliverError> {
    let layout = target.layout(gateway)?;
    Ok((
        entities::declarative_config(&layout).to_string(),
        layout.warnings,
    ))
}

pub(super) async fn deliver(
    target: &mut KongTarget,
    gateway: &GatewayResult,
) -> Result<Delivered, DeliverError> {
    let name = entity_name(&gateway.gateway);
    let (text, warnings) = config_text(target, gateway)?;
    let hash = config_hash(&text);
    let current = configuration_hash(target).await?;
    if current.as_deref() == Some(hash.as_str()) {
        target.posted_hash = Some(hash);
        return Ok(Delivered::default());
    }
    let empty = current.as_deref() == Some(EMPTY_CONFIG_HASH);
    let ours = current.is_some() && current == target.posted_hash;
    if !empty && !ours {
        ensure_owned(target, &name).await?;
    }
    match target
        .call(Method::POST, CONFIG_PATH, Some(json!({"config": text})))
        .await?
    {
        (200 | 201, _) => {
            target.posted_hash = Some(hash);
            Ok(Delivered {
                changed: true,
                warnings,
            })
        }
        (304, _) => {
            target.posted_hash = Some(hash);
            Ok(Delivered::default())
        }
        (400, body) => Err(DeliverError::KongInvalid {
            method: "POST",
            path: CONFIG_PATH.to_owned(),
            problems: rejection_problems(&body),
        }),
        (status, body) => Err(DeliverError::KongStatus {
            method: "POST",
            path: CONFIG_PATH.to_owned(),
            status,
            body: body.to_string(),
        }),
    }
}

/// `GET /status`'s `configuration_hash` (absent: unknown). A Kong with a database reports
/// `database.reachable` instead, and is refused: posting would be answered 400.
async fn configuration_hash(target: &KongTarget) -> Result<Option<String>, DeliverError> {
    match target.call(Method::GET, "/status", None).await? {
        (200, status)
            if status.get("configuration_hash").is_none() && status.get("database").is_some() =>
        {
            Err(DeliverError::Config(format!(
                "Kong at {} has a database (GET /status reports no configuration_hash): DB-less delivery does not apply; use --kong-mode auto or db",
                target.options.admin_url
            )))
        }
        (200, status) => Ok(at(&status, "configuration_hash")
            .as_str()
            .map(str::to_owned)),
        (status, body) => Err(DeliverError::KongStatus {
            method: "GET",
            path: "/status".to_owned(),
            status,
            body: body.to_string(),
        }),
    }
}

/// Reads what Kong holds and fails unless every entity in it is one of ours.
async fn ensure_owned(target: &KongTarget, ours: &str) -> Result<(), DeliverError> {
    let export = target.get_ok("/config").await?;
    let Some(text) = at(&export, "config").as_str() else {
        return Err(DeliverError::Config(
            "Kong's GET /config answered without a `config` text".to_owned(),
        ));
    };
    let export: Value = serde_norway::from_str(text)
        .map_err(|e| DeliverError::Config(format!("Kong's GET /config does not parse: {e}")))?;
    let foreign = foreign_entities(&export, ours);
    if foreign.is_empty() {
        Ok(())
    } else {
        Err(DeliverError::KongForeign { entities: foreign })
    }
}

/// The entities of a Kong export (`GET /config`) that are not the shim's own (`ours` is the
/// Gateway's entity name), as `"<type> <name or id>"`. Top-level `_…` keys are metadata and
/// `workspaces` are Kong's own; services, routes and filter chains named `ours` or
/// `ours.<backend id>` are ours — by name, so a Kong serving another Gateway is foreign too (two
/// shims never take turns erasing each other).
pub fn foreign_entities(export: &Value, ours: &str) -> Vec<String> {
    let mut foreign = Vec::new();
    let Some(sections) = export.as_object() else {
        return foreign;
    };
    for (kind, entities) in sections {
        if kind.starts_with('_') || kind == "workspaces" {
            continue;
        }
        let ownable = matches!(kind.as_str(), "services" | "routes" | "filter_chains");
        for entity in entities.as_array().into_iter().flatten() {
            let name = at(entity, "name").as_str().unwrap_or_default();
            let own_name = name == ours
                || name
                    .strip_prefix(ours)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()));
            if ownable && own_name {
                continue;
            }
            let label = ["name", "username", "id"]
                .iter()
                .find_map(|key| at(entity, key).as_str())
                .unwrap_or("(unnamed)");
            foreign.push(format!("{} {label}", singular(kind)));
        }
    }
    foreign.sort();
    foreign
}

fn singular(kind: &str) -> &str {
    kind.strip_suffix('s').unwrap_or(kind)
}

/// A `400` from `POST /config?flatten_errors=1` as readable lines:
/// `filter_chain gateway-wasm.infra.gw: filters.1.config: property backends is required`.
pub fn rejection_problems(body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for entry in at(body, "flattened_errors")
        .as_array()
        .into_iter()
        .flatten()
    {
        let kind = at(entry, "entity_type").as_str().unwrap_or("entity");
        let who = at(entry, "entity_name")
            .as_str()
            .or_else(|| at(entry, "entity_id").as_str())
            .map_or_else(|| kind.to_owned(), |name| format!("{kind} {name}"));
        for error in at(entry, "errors").as_array().into_iter().flatten() {
            let message = at(error, "message").as_str().unwrap_or("invalid");
            match at(error, "field").as_str() {
                Some(field) => problems.push(format!("{who}: {field}: {message}")),
                None => problems.push(format!("{who}: {message}")),
            }
        }
    }
    if problems.is_empty() {
        // Not an entity's error (the text does not parse, `_format_version`): Kong's message.
        problems.push(
            at(body, "message")
                .as_str()
                .map_or_else(|| body.to_string(), str::to_owned),
        );
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_hash_is_md5_hex_like_kong() {
        // RFC 1321's test suite.
        assert_eq!(config_hash(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(config_hash("abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            config_hash(
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890"
            ),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
    }

    #[test]
    fn flattened_errors_name_the_entity_and_the_field() {
        let body = json!({
            "code": 14,
            "name": "invalid declarative configuration",
            "message": "declarative config is invalid: {}",
            "fields": {},
            "flattened_errors": [{
                "entity_type": "filter_chain",
                "entity_name": "gateway-wasm.infra.gw",
                "entity": {"name": "gateway-wasm.infra.gw"},
                "errors": [
                    {"type": "field", "field": "filters.1.config", "message": "expected a string"},
                    {"type": "entity", "message": "no wasm filters are available"},
                ],
            }, {
                "entity_type": "route",
                "entity_id": "7a0c1b0e-6bde-4a35-9a3e-0b5c1a0f5d11",
                "errors": [{"type": "field", "field": "paths.1", "message": "should start with: /"}],
            }],
        });
        assert_eq!(
            rejection_problems(&body),
            [
                "filter_chain gateway-wasm.infra.gw: filters.1.config: expected a string",
                "filter_chain gateway-wasm.infra.gw: no wasm filters are available",
                "route 7a0c1b0e-6bde-4a35-9a3e-0b5c1a0f5d11: paths.1: should start with: /",
            ]
        );
        let unparsable = json!({"code": 14, "message": "declarative config is invalid: {error=\"failed parsing declarative configuration: expected an object\"}"});
        assert_eq!(
            rejection_problems(&unparsable),
            [
                "declarative config is invalid: {error=\"failed parsing declarative configuration: expected an object\"}"
            ]
        );
    }

    #[test]
    fn only_our_named_entities_are_ours() {
        let export: Value = serde_norway::from_str(
            r#"
_format_version: "3.0"
_transform: false
workspaces:
- {name: default, id: 1b2f0c8e-0000-4000-8000-000000000001}
services:
- {name: gateway-wasm.infra.gw, host: 127.0.0.1, port: 9}
- {name: billing, host: billing.internal, port: 80}
routes:
- {name: gateway-wasm.infra.gw, paths: [/]}
filter_chains:
- {name: gateway-wasm.infra.other}
plugins:
- {name: prometheus, id: 5f1c0c8e-0000-4000-8000-000000000002}
consumers:
- {username: alice}
"#,
        )
        .unwrap_or(Value::Null);
        assert_eq!(
            foreign_entities(&export, "gateway-wasm.infra.gw"),
            [
                "consumer alice",
                "filter_chain gateway-wasm.infra.other",
                "plugin prometheus",
                "service billing",
            ]
        );
        let empty: Value = serde_norway::from_str("_format_version: \"3.0\"\n_transform: false\n")
            .unwrap_or(Value::Null);
        assert!(foreign_entities(&empty, "gateway-wasm.infra.gw").is_empty());
    }
}
