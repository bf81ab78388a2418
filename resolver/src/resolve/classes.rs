//! GatewayClass ownership.
//!
//! Spec (GatewayClassSpec.controllerName): "ControllerName is the name of the controller that is
//! managing Gateways of this class." and (GatewayClassStatus): "Implementations MUST populate status
//! on all GatewayClass resources which specify their controller name."

use std::collections::BTreeMap;

use crate::api::gatewayclasses::GatewayClassStatus;

use super::Lookup;
use super::conditions::{self, Problem, Stamp, carry_transition_times, gateway as reason};
use crate::resolution::ClassStatusUpdate;

/// Our classes by name, each accepted or with the reason it is not.
pub type Classes = BTreeMap<String, Result<(), Problem>>;

pub fn ours(lookup: &Lookup<'_>) -> Classes {
    lookup
        .snapshot
        .gateway_classes
        .iter()
        .filter(|c| c.spec.controller_name == lookup.settings.controller_name)
        .map(|c| (super::name(&c.metadata).to_owned(), accepted(c)))
        .collect()
}

/// "If the referent cannot be found, refers to an unsupported kind, or when the data within that
/// resource is malformed, the GatewayClass SHOULD be rejected with the "Accepted" status condition
/// set to "False" and an "InvalidParameters" reason." This controller takes no parameters, so any
/// parametersRef refers to an unsupported kind.
fn accepted(class: &crate::api::gatewayclasses::GatewayClass) -> Result<(), Problem> {
    match &class.spec.parameters_ref {
        None => Ok(()),
        Some(p) => Err(Problem::new(
            reason::INVALID_PARAMETERS,
            format!(
                "parametersRef {}/{} {}: this controller takes no parameters",
                p.group, p.kind, p.name
            ),
        )),
    }
}

pub fn status(lookup: &Lookup<'_>, classes: &Classes) -> Vec<ClassStatusUpdate> {
    lookup
        .snapshot
        .gateway_classes
        .iter()
        .filter_map(|class| {
            let name = super::name(&class.metadata);
            let result = classes.get(name)?;
            let stamp = Stamp {
                generation: class.metadata.generation,
                now: &lookup.settings.now,
            };
            let mut conditions = vec![stamp.result(
                conditions::ACCEPTED,
                result,
                reason::ACCEPTED,
                "Handled by this controller",
            )];
            carry_transition_times(
                &mut conditions,
                class.status.as_ref().and_then(|s| s.conditions.as_deref()),
            );
            Some(ClassStatusUpdate {
                class: name.to_owned(),
                generation: class.metadata.generation,
                status: GatewayClassStatus {
                    conditions: Some(conditions),
                    supported_features: None,
                },
            })
        })
        .collect()
}
