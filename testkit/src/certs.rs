//! Test certificates: a self-signed CA and leaf certificates for given DNS names (rcgen, ECDSA P-256).
//!
//! Used to give Envoy HTTPS listeners certificates and to let [`crate::client::TlsConfig::with_ca_pem`]
//! verify them. Everything is PEM; [`IssuedCert::write`] puts the files where a bootstrap can name them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// A self-signed certificate authority that can issue leaf certificates.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .finish_non_exhaustive()
    }
}

/// A leaf certificate with its private key, both PEM.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The leaf certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
    /// The issuing CA's certificate.
    pub ca_pem: String,
}

/// Paths written by [`IssuedCert::write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// Leaf followed by the CA certificate (what a server presents).
    pub chain: PathBuf,
    /// The leaf's private key.
    pub key: PathBuf,
    /// The CA certificate (what a client trusts).
    pub ca: PathBuf,
}

impl CertificateAuthority {
    /// A new CA with the given common name.
    pub fn new(common_name: &str) -> Result<CertificateAuthority> {
        let key = KeyPair::generate().context("generating the CA key")?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).context("CA certificate parameters")?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, "gateway-wasm testkit");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .with_context(|| format!("self-signing the CA {common_name:?}"))?;
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a certificate for `dns_names` (wildcards such as `*.example.com` and IP literals allowed),
    /// usable for server and client authentication. The first name is also the common name.
    pub fn issue(&self, dns_names: &[&str]) -> Result<IssuedCert> {
        let names: Vec<String> = dns_names.iter().map(|s| (*s).to_owned()).collect();
        let key = KeyPair::generate().context("generating a leaf key")?;
        let mut params = CertificateParams::new(names.clone())
            .with_context(|| format!("leaf parameters for {names:?}"))?;
        let mut dn = DistinguishedName::new();
        if let Some(first) = names.first() {
            dn.push(DnType::CommonName, first.as_str());
        }
        params.distinguished_name = dn;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .signed_by(&key, &self.issuer)
            .with_context(|| format!("signing a leaf certificate for {names:?}"))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_pem: self.cert_pem.clone(),
        })
    }

    /// Writes the CA certificate to `path`.
    pub fn write_cert(&self, path: &Path) -> Result<()> {
        std::fs::write(path, &self.cert_pem)
            .with_context(|| format!("writing the CA certificate to {}", path.display()))
    }
}

impl IssuedCert {
    /// Leaf certificate followed by the CA certificate.
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.cert_pem, self.ca_pem)
    }

    /// Writes `<stem>.crt` (chain), `<stem>.key` and `<stem>-ca.crt` into `dir` (created if missing).
    pub fn write(&self, dir: &Path, stem: &str) -> Result<CertFiles> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let files = CertFiles {
            chain: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
            ca: dir.join(format!("{stem}-ca.crt")),
        };
        for (path, content) in [
            (&files.chain, self.chain_pem()),
            (&files.key, self.key_pem.clone()),
            (&files.ca, self.ca_pem.clone()),
        ] {
            std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use std::sync::Arc;

    fn verifier(ca_pem: &str) -> Arc<dyn rustls::client::danger::ServerCertVerifier> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .build()
        .unwrap()
    }

    #[test]
    fn leaf_verifies_against_its_ca_for_its_names_only() {
        let ca = CertificateAuthority::new("test CA").unwrap();
        let leaf = ca.issue(&["example.com", "*.wild.example.com"]).unwrap();
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(leaf.chain_pem().as_bytes())
                .map(|c| c.unwrap())
                .collect();
        assert_eq!(chain.len(), 2);
        PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        let v = verifier(ca.cert_pem());
        let (end, rest) = chain.split_first().unwrap();
        for name in ["example.com", "foo.wild.example.com"] {
            let sn = ServerName::try_from(name).unwrap();
            v.verify_server_cert(end, rest, &sn, &[], UnixTime::now())
                .unwrap();
        }
        let other = ServerName::try_from("other.example.org").unwrap();
        assert!(
            v.verify_server_cert(end, rest, &other, &[], UnixTime::now())
                .is_err()
        );
        let other_ca = CertificateAuthority::new("other CA").unwrap();
        let sn = ServerName::try_from("example.com").unwrap();
        assert!(
            verifier(other_ca.cert_pem())
                .verify_server_cert(end, rest, &sn, &[], UnixTime::now())
                .is_err()
        );
    }

    #[test]
    fn writes_pem_files() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::new("test CA").unwrap();
        let files = ca
            .issue(&["a.example"])
            .unwrap()
            .write(dir.path(), "a")
            .unwrap();
        assert!(
            std::fs::read_to_string(&files.chain)
                .unwrap()
                .matches("BEGIN CERTIFICATE")
                .count()
                == 2
        );
        assert!(
            std::fs::read_to_string(&files.key)
                .unwrap()
                .contains("PRIVATE KEY")
        );
        assert_eq!(std::fs::read_to_string(&files.ca).unwrap(), ca.cert_pem());
        let ca_path = dir.path().join("ca.pem");
        ca.write_cert(&ca_path).unwrap();
        assert_eq!(std::fs::read_to_string(ca_path).unwrap(), ca.cert_pem());
    }
}
