//! TLS certificateRefs of HTTPS listeners → Secrets.
//!
//! Spec (GatewayTLSConfig.certificateRefs): "References to a resource in different namespace are
//! invalid UNLESS there is a ReferenceGrant in the target namespace that allows the certificate to
//! be attached. If a ReferenceGrant does not allow this reference, the "ResolvedRefs" condition
//! MUST be set to False for this listener with the "RefNotPermitted" reason." and "This field is
//! required to have at least one element when the mode is set to "Terminate" (default)".
//! "Support: Core - A single reference to a Kubernetes Secret of type kubernetes.io/tls".

use super::conditions::{Problem, gateway as reason};
use super::listeners::CertRef;
use super::{Lookup, grants};
use crate::api::GATEWAY_GROUP;
use crate::resolution::{ObjectKey, TlsCertificate};

/// Who holds the reference (a Gateway or a ListenerSet), for ReferenceGrant `from`.
#[derive(Debug, Clone, Copy)]
pub struct Referrer<'a> {
    pub kind: &'a str,
    pub namespace: &'a str,
}

/// The certificates that resolved, and the first problem (which sets ResolvedRefs=False and keeps
/// the listener off the data plane: serving with a subset of its certificates would answer some
/// SNI names with the wrong one).
pub fn resolve(
    lookup: &Lookup<'_>,
    default_namespace: &str,
    refs: &[CertRef],
    referrer: Referrer<'_>,
) -> (Vec<TlsCertificate>, Option<Problem>) {
    if refs.is_empty() {
        return (
            Vec::new(),
            Some(Problem::new(
                reason::INVALID_CERTIFICATE_REF,
                "an HTTPS listener needs at least one tls.certificateRefs entry",
            )),
        );
    }
    let mut certificates = Vec::new();
    let mut problem = None;
    for r in refs {
        match certificate(lookup, default_namespace, r, referrer) {
            Ok(c) => certificates.push(c),
            Err(p) => {
                problem.get_or_insert(p);
            }
        }
    }
    (certificates, problem)
}

fn certificate(
    lookup: &Lookup<'_>,
    default_namespace: &str,
    r: &CertRef,
    referrer: Referrer<'_>,
) -> Result<TlsCertificate, Problem> {
    // "Group is the group of the referent. ... When unspecified or empty string, core API group is
    // inferred." Kind defaults to Secret.
    let group = r.group.as_deref().unwrap_or_default();
    let kind = r.kind.as_deref().unwrap_or("Secret");
    if !group.is_empty() || kind != "Secret" {
        return Err(Problem::new(
            reason::INVALID_CERTIFICATE_REF,
            format!(
                "certificateRef {group}/{kind} {}: only core Secrets are supported",
                r.name
            ),
        ));
    }
    // "Namespace is the namespace of the referenced object. When unspecified, the local namespace
    // is inferred."
    let namespace = r.namespace.as_deref().unwrap_or(default_namespace);
    let from = grants::From {
        group: GATEWAY_GROUP,
        kind: referrer.kind,
        namespace: referrer.namespace,
    };
    let to = grants::To {
        group: "",
        kind: "Secret",
        namespace,
        name: &r.name,
    };
    if !grants::permitted(lookup.grants(), from, to) {
        return Err(Problem::new(
            reason::REF_NOT_PERMITTED,
            format!(
                "no ReferenceGrant in namespace {namespace} allows {} {} to use Secret {}",
                referrer.kind, referrer.namespace, r.name
            ),
        ));
    }
    let secret = lookup.secret(namespace, &r.name).ok_or_else(|| {
        Problem::new(
            reason::INVALID_CERTIFICATE_REF,
            format!("Secret {namespace}/{} does not exist", r.name),
        )
    })?;
    let pem = |key: &str| -> Option<String> {
        let bytes = secret.data.as_ref()?.get(key)?;
        let text = String::from_utf8(bytes.0.clone()).ok()?;
        text.contains("-----BEGIN").then_some(text)
    };
    match (pem("tls.crt"), pem("tls.key")) {
        (Some(certificate_pem), Some(private_key_pem)) => Ok(TlsCertificate {
            secret: ObjectKey {
                namespace: namespace.to_owned(),
                name: r.name.clone(),
            },
            certificate_pem,
            private_key_pem,
        }),
        _ => Err(Problem::new(
            reason::INVALID_CERTIFICATE_REF,
            format!(
                "Secret {namespace}/{} needs PEM data under tls.crt and tls.key",
                r.name
            ),
        )),
    }
}
