//! Status conditions: small named constructors, so every place that decides a status says which
//! spec reason it uses, and the `lastTransitionTime` rule in one place.

use crate::api::meta::{Condition, Time};

/// Condition types.
pub const ACCEPTED: &str = "Accepted";
pub const RESOLVED_REFS: &str = "ResolvedRefs";
pub const PROGRAMMED: &str = "Programmed";
pub const CONFLICTED: &str = "Conflicted";
pub const PARTIALLY_INVALID: &str = "PartiallyInvalid";

/// Route reasons (Gateway API `RouteConditionReason`).
pub mod route {
    pub const ACCEPTED: &str = "Accepted";
    pub const NOT_ALLOWED_BY_LISTENERS: &str = "NotAllowedByListeners";
    pub const NO_MATCHING_LISTENER_HOSTNAME: &str = "NoMatchingListenerHostname";
    pub const NO_MATCHING_PARENT: &str = "NoMatchingParent";
    pub const UNSUPPORTED_VALUE: &str = "UnsupportedValue";
    pub const INCOMPATIBLE_FILTERS: &str = "IncompatibleFilters";
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
    pub const INVALID_KIND: &str = "InvalidKind";
    pub const BACKEND_NOT_FOUND: &str = "BackendNotFound";
    pub const UNSUPPORTED_PROTOCOL: &str = "UnsupportedProtocol";
    /// Not a Gateway API route reason: the spec requires Accepted=False for the loser of an
    /// HTTPRoute/GRPCRoute hostname conflict on a listener but names no reason. Istio and Traefik
    /// report this one (after the listener reason of the same name).
    pub const HOSTNAME_CONFLICT: &str = "HostnameConflict";
}

/// Gateway, listener and ListenerSet reasons.
pub mod gateway {
    pub const ACCEPTED: &str = "Accepted";
    pub const PROGRAMMED: &str = "Programmed";
    pub const INVALID: &str = "Invalid";
    pub const INVALID_PARAMETERS: &str = "InvalidParameters";
    pub const LISTENERS_NOT_VALID: &str = "ListenersNotValid";
    pub const ADDRESS_NOT_ASSIGNED: &str = "AddressNotAssigned";
    pub const NO_CONFLICTS: &str = "NoConflicts";
    pub const HOSTNAME_CONFLICT: &str = "HostnameConflict";
    pub const PROTOCOL_CONFLICT: &str = "ProtocolConflict";
    pub const PORT_UNAVAILABLE: &str = "PortUnavailable";
    pub const UNSUPPORTED_PROTOCOL: &str = "UnsupportedProtocol";
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    pub const INVALID_CERTIFICATE_REF: &str = "InvalidCertificateRef";
    pub const INVALID_ROUTE_KINDS: &str = "InvalidRouteKinds";
    pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
    /// ListenerSet: the parent Gateway's `allowedListeners` does not select it.
    pub const NOT_ALLOWED: &str = "NotAllowed";
    /// ListenerSet: its parent Gateway is not accepted / not programmed.
    pub const PARENT_NOT_ACCEPTED: &str = "ParentNotAccepted";
    pub const PARENT_NOT_PROGRAMMED: &str = "ParentNotProgrammed";
}

/// A failed check: the condition reason and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
}

impl Problem {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Problem {
        Problem {
            reason,
            message: message.into(),
        }
    }
}

/// Builds conditions for one object generation at one point in time.
#[derive(Debug, Clone, Copy)]
pub struct Stamp<'a> {
    pub generation: Option<i64>,
    pub now: &'a Time,
}

impl Stamp<'_> {
    pub fn condition(&self, kind: &str, status: bool, reason: &str, message: &str) -> Condition {
        Condition {
            type_: kind.to_owned(),
            status: if status { "True" } else { "False" }.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            observed_generation: self.generation,
            last_transition_time: self.now.clone(),
        }
    }

    /// `True` with `ok_reason`, or `False` with the problem's reason.
    pub fn result(
        &self,
        kind: &str,
        result: &Result<(), Problem>,
        ok_reason: &str,
        ok_message: &str,
    ) -> Condition {
        match result {
            Ok(()) => self.condition(kind, true, ok_reason, ok_message),
            Err(p) => self.condition(kind, false, p.reason, &p.message),
        }
    }
}

/// Keeps the recorded `lastTransitionTime` of conditions whose status did not change: "the last time
/// the condition transitioned from one status to another" (metav1.Condition).
pub fn carry_transition_times(new: &mut [Condition], old: Option<&[Condition]>) {
    let Some(old) = old else { return };
    for condition in new {
        if let Some(previous) = old
            .iter()
            .find(|o| o.type_ == condition.type_ && o.status == condition.status)
        {
            condition.last_transition_time = previous.last_transition_time.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::jiff::Timestamp;

    #[test]
    fn unchanged_status_keeps_its_transition_time() {
        let then = Time(Timestamp::from_second(100).unwrap());
        let now = Time(Timestamp::from_second(200).unwrap());
        let old = vec![
            Stamp {
                generation: Some(1),
                now: &then,
            }
            .condition(ACCEPTED, true, "Accepted", ""),
            Stamp {
                generation: Some(1),
                now: &then,
            }
            .condition(RESOLVED_REFS, true, "ResolvedRefs", ""),
        ];
        let stamp = Stamp {
            generation: Some(2),
            now: &now,
        };
        let mut new = vec![
            stamp.condition(ACCEPTED, true, "Accepted", ""),
            stamp.condition(RESOLVED_REFS, false, "BackendNotFound", "gone"),
        ];
        carry_transition_times(&mut new, Some(&old));
        assert_eq!(new[0].last_transition_time, then);
        assert_eq!(new[0].observed_generation, Some(2));
        assert_eq!(new[1].last_transition_time, now);
    }
}
