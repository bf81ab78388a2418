//! The TLS material of the two HTTPS listeners the Envoy fixtures declare (`https-a` serves
//! `a.example.com`, `https-b` serves `b.example.com`), in the shape the resolver hands the renderers.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use controller_shim::resolution::{ObjectKey, TlsCertificate};
use testkit::certs::CertificateAuthority;

/// One certificate per HTTPS listener, issued by `ca`, keyed by listener name; each names the
/// Secret `infra/<listener>` it stands for.
pub fn certificates(ca: &CertificateAuthority) -> BTreeMap<String, Vec<TlsCertificate>> {
    let mut tls = BTreeMap::new();
    for (listener, host) in [("https-a", "a.example.com"), ("https-b", "b.example.com")] {
        let issued = ca.issue(&[host]).unwrap();
        tls.insert(
            listener.to_owned(),
            vec![TlsCertificate {
                secret: ObjectKey {
                    namespace: "infra".into(),
                    name: listener.into(),
                },
                certificate_pem: issued.chain_pem(),
                private_key_pem: issued.key_pem.clone(),
            }],
        );
    }
    tls
}
