//! The image's one layer: the controller-shim binary, CA certificates and the account it runs as,
//! as a tar archive that is the same bytes for the same inputs.
//!
//! Reproducibility: entries are sorted by path (parents first), every entry has the same mtime
//! (`SOURCE_DATE_EPOCH`, or the last commit's time), numeric owners without user names, fixed
//! modes, and no extended headers.

use std::collections::BTreeMap;

use base64::prelude::{BASE64_STANDARD, Engine as _};

/// The user the image runs as (distroless' `nonroot`): not root, and the same number in the
/// Deployment's `runAsUser`, so Kubernetes' `runAsNonRoot` check can verify it.
pub const USER_ID: u32 = 65532;
/// Where the binary lives in the image; the image's `Entrypoint`.
pub const BINARY_PATH: &str = "/usr/local/bin/controller-shim";
/// The CA bundle, where OpenSSL-style lookups (and rustls-native-certs) find it.
pub const CA_BUNDLE_PATH: &str = "/etc/ssl/certs/ca-certificates.crt";

/// `/etc/passwd`: root (owner of every file) and the unprivileged user the shim runs as.
pub const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
/// `/etc/group`, matching `/etc/passwd`.
pub const GROUP: &str = "root:x:0:\nnonroot:x:65532:\n";

enum Body<'a> {
    Dir,
    File(&'a [u8]),
}

struct Entry<'a> {
    body: Body<'a>,
    mode: u32,
    owner: u32,
}

/// Mozilla's root certificates as the `webpki-root-certs` crate ships them (the version pinned in
/// Cargo.lock), PEM-encoded: the same bundle on every build machine, unlike the build host's
/// `/etc/ssl/certs`, so the image stays reproducible.
pub fn ca_bundle() -> Vec<u8> {
    let mut pem = String::new();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let encoded = BASE64_STANDARD.encode(cert.as_ref());
        let mut rest = encoded.as_str();
        while !rest.is_empty() {
            let (line, tail) = rest.split_at(rest.len().min(64));
            pem.push_str(line);
            pem.push('\n');
            rest = tail;
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem.into_bytes()
}

/// The uncompressed layer tar for one architecture's `binary`.
pub fn layer_tar(binary: &[u8], ca_bundle: &[u8], mtime: u64) -> std::io::Result<Vec<u8>> {
    let dir = |mode| Entry {
        body: Body::Dir,
        mode,
        owner: 0,
    };
    let file = |bytes, mode| Entry {
        body: Body::File(bytes),
        mode,
        owner: 0,
    };
    // Keyed by path without the leading slash; a directory's key ends in `/`, which sorts it
    // before its children.
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for d in [
        "etc/",
        "etc/ssl/",
        "etc/ssl/certs/",
        "home/",
        "usr/",
        "usr/local/",
        "usr/local/bin/",
    ] {
        entries.insert(d.to_string(), dir(0o755));
    }
    entries.insert(
        "home/nonroot/".into(),
        Entry {
            body: Body::Dir,
            mode: 0o700,
            owner: USER_ID,
        },
    );
    // A writable /tmp when the root is not read-only (with a read-only root, mount one).
    entries.insert("tmp/".into(), dir(0o1777));
    entries.insert("etc/passwd".into(), file(PASSWD.as_bytes(), 0o644));
    entries.insert("etc/group".into(), file(GROUP.as_bytes(), 0o644));
    entries.insert(rel(CA_BUNDLE_PATH), file(ca_bundle, 0o644));
    entries.insert(rel(BINARY_PATH), file(binary, 0o755));

    let mut builder = tar::Builder::new(Vec::new());
    for (path, entry) in &entries {
        let mut header = tar::Header::new_ustar();
        header.set_path(path)?;
        header.set_mode(entry.mode);
        header.set_uid(u64::from(entry.owner));
        header.set_gid(u64::from(entry.owner));
        header.set_mtime(mtime);
        header.set_username("")?;
        header.set_groupname("")?;
        let data: &[u8] = match entry.body {
            Body::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                &[]
            }
            Body::File(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                bytes
            }
        };
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data)?;
    }
    builder.into_inner()
}

fn rel(absolute: &str) -> String {
    absolute.trim_start_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn layer_is_sorted_owned_and_stable() {
        let a = layer_tar(b"binary", b"certs", 1_700_000_000).unwrap();
        let b = layer_tar(b"binary", b"certs", 1_700_000_000).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, layer_tar(b"binary", b"certs", 0).unwrap());

        let mut archive = tar::Archive::new(a.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let header = entry.header().clone();
            assert_eq!(header.mtime().unwrap(), 1_700_000_000, "{path}");
            assert_eq!(header.username().unwrap(), Some(""), "{path}");
            let mut body = Vec::new();
            entry.read_to_end(&mut body).unwrap();
            match path.as_str() {
                "usr/local/bin/controller-shim" => {
                    assert_eq!(body, b"binary");
                    assert_eq!(header.mode().unwrap(), 0o755);
                    assert_eq!(header.uid().unwrap(), 0);
                }
                "etc/passwd" => assert!(
                    String::from_utf8(body)
                        .unwrap()
                        .contains("nonroot:x:65532:65532:")
                ),
                "home/nonroot/" => assert_eq!(header.uid().unwrap(), 65532),
                _ => {}
            }
            seen.push(path);
        }
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted);
        assert!(seen.contains(&"etc/ssl/certs/ca-certificates.crt".to_string()));
    }

    #[test]
    fn ca_bundle_is_pem_of_every_root() {
        let pem = String::from_utf8(ca_bundle()).unwrap();
        let count = pem.matches("-----BEGIN CERTIFICATE-----").count();
        assert_eq!(count, webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        assert!(count > 100, "{count} roots");
        assert!(pem.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
        // The first certificate decodes back to its DER bytes.
        let first: String = pem
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with("-----"))
            .collect();
        assert_eq!(
            BASE64_STANDARD.decode(first).unwrap(),
            webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].as_ref()
        );
    }
}
