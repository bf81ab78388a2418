//! The configuration payload as the host hands it over: PluginConfig JSON, or that JSON
//! gzip-compressed.
//!
//! Why compressed: Envoy reads an extension-config file at a few MB per second (parsing, converting
//! and validating it before the filter sees a byte), so a 10,000-route document of ~6 MB costs it
//! about half a second as JSON and over a second as YAML; gzipped, the same routes are ~0.4 MB and a
//! tenth of that. The controller-shim compresses large documents (`docs/envoy.md`). A JSON text
//! cannot start with gzip's magic bytes, so the payload needs no flag to say which it is.

use std::borrow::Cow;
use std::io::Read as _;

/// gzip's magic bytes (RFC 1952, ID1 ID2).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The largest configuration a compressed payload may inflate to: ten times the biggest route table
/// we measure (10,000 routes ≈ 6 MB), and a bound on what a hostile or corrupt payload can make the
/// VM allocate (gzip inflates up to ~1000:1).
pub const MAX_INFLATED_BYTES: usize = 64 << 20;

/// The PluginConfig JSON inside `bytes`: `bytes` itself, or its gzip contents.
pub fn decode(bytes: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(Cow::Borrowed(bytes));
    }
    let limit = u64::try_from(MAX_INFLATED_BYTES).unwrap_or(u64::MAX);
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(limit.saturating_add(1))
        .read_to_end(&mut json)
        .map_err(|e| format!("the configuration is gzip-compressed but does not inflate: {e}"))?;
    if json.len() > MAX_INFLATED_BYTES {
        return Err(format!(
            "the gzip-compressed configuration inflates to more than {MAX_INFLATED_BYTES} bytes"
        ));
    }
    Ok(Cow::Owned(json))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn plain_json_is_passed_through_without_copying() {
        let json = br#"{"schemaVersion":1}"#;
        assert!(matches!(decode(json), Ok(Cow::Borrowed(b)) if b == json));
    }

    #[test]
    fn gzip_is_inflated() {
        let json = br#"{"schemaVersion":1,"routes":[]}"#;
        assert_eq!(decode(&gzip(json)).unwrap().as_ref(), json);
    }

    #[test]
    fn corrupt_gzip_is_an_error_that_says_so() {
        let mut compressed = gzip(br#"{"schemaVersion":1}"#);
        compressed.truncate(compressed.len() / 2);
        let error = decode(&compressed).unwrap_err();
        assert!(
            error.contains("gzip-compressed but does not inflate"),
            "{error}"
        );
    }

    #[test]
    fn inflating_past_the_bound_is_refused() {
        // 1 MiB of zeros compresses to ~1 KiB; 65 of them inflate just past the bound.
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let zeros = vec![b' '; 1 << 20];
        for _ in 0..65 {
            encoder.write_all(&zeros).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 200_000, "{}", bomb.len());
        let error = decode(&bomb).unwrap_err();
        assert!(
            error.contains("inflates to more than 67108864 bytes"),
            "{error}"
        );
    }
}
