//! The configuration payload as the host hands it over: PluginConfig JSON, or that JSON
//! gzip-compressed.
//!
//! Why compressed: Envoy reads an extension-config file at a few MB per second (parsing, converting
//! and validating it before the filter sees a byte), so a 10,000-route document of ~6 MB costs it
//! about half a second as JSON and over a second as YAML; gzipped, the same routes are ~0.4 MB and a
//! tenth of that. The controller-shim compresses large documents (`docs/envoy.md`). A JSON text
//! cannot start with gzip's magic bytes, so the payload needs no flag to say which it is.

use std::borrow::Cow;

use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress};

use crate::crc32::Crc32;

/// The most deflate expands its input: a 258-byte match costs at least two bits, so 1032:1 (zlib's
/// technical details, "Maximum compression factor").
const DEFLATE_MAX_RATIO: usize = 1032;

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
    inflate_gzip(bytes)
        .map(Cow::Owned)
        .map_err(|why| format!("the configuration is gzip-compressed but does not inflate: {why}"))
}

/// Inflates a single-member gzip file straight into a buffer of the size its trailer states, then
/// checks that size and the CRC-32. A streaming decoder (flate2's `GzDecoder`, used before) inflates
/// through a 32 KiB window and copies out of it, and grows its output by doubling: at 10,000 routes
/// (5.7 MB of JSON) inflating this way takes a third less time in Envoy's V8 (`docs/benchmarks.md`,
/// *The lean Wasm path*) and never holds more than the document.
fn inflate_gzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let deflate_start = member_body_offset(bytes)?;
    // The trailer (CRC-32, then the size mod 2^32) ends the payload: the member must end exactly
    // there (checked after inflating). The size is only trusted to size the buffer up to the bound,
    // and checked against what actually inflated.
    let trailer = bytes
        .len()
        .checked_sub(8)
        .and_then(|at| bytes.get(at..))
        .ok_or("the payload ends before the gzip trailer")?;
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            trailer.get(at..at + 4)?.try_into().ok()?,
        ))
    };
    let (crc, stated) = word(0)
        .zip(word(4).and_then(|size| usize::try_from(size).ok()))
        .ok_or("the payload ends before the gzip trailer")?;
    if stated > MAX_INFLATED_BYTES {
        return Err(format!(
            "it states {stated} bytes; the gzip-compressed configuration may inflate to at most \
             {MAX_INFLATED_BYTES} bytes"
        ));
    }
    // Nor is a size trusted that deflate cannot produce from this many bytes (at most 1032 times
    // its input): a few corrupt bytes must not make the VM allocate the whole bound.
    if stated / DEFLATE_MAX_RATIO > bytes.len() {
        return Err(format!(
            "it states {stated} bytes, more than deflate can produce from {} bytes",
            bytes.len()
        ));
    }
    let deflate = bytes.get(deflate_start..).unwrap_or_default();
    let mut json = vec![0u8; stated];
    let mut state = Box::<DecompressorOxide>::default();
    let (status, read, written) = decompress(
        &mut state,
        deflate,
        &mut json,
        0,
        TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
    );
    match status {
        TINFLStatus::Done => {}
        TINFLStatus::HasMoreOutput => {
            return Err(format!(
                "it inflates past the {stated} bytes its trailer states"
            ));
        }
        TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress => {
            return Err("the deflate stream is truncated".to_owned());
        }
        other => return Err(format!("the deflate stream is corrupt ({other:?})")),
    }
    match deflate_start
        .saturating_add(read)
        .saturating_add(8)
        .cmp(&bytes.len())
    {
        std::cmp::Ordering::Greater => {
            return Err("the payload ends before the gzip trailer".to_owned());
        }
        std::cmp::Ordering::Less => {
            return Err("bytes follow the gzip member (one gzip member is expected)".to_owned());
        }
        std::cmp::Ordering::Equal => {}
    }
    if written != stated {
        return Err(format!(
            "it inflated to {written} bytes, its trailer states {stated}"
        ));
    }
    if Crc32::new().checksum(&json) != crc {
        return Err("the CRC-32 of the inflated bytes does not match the gzip trailer".to_owned());
    }
    Ok(json)
}

/// Where the deflate data of a gzip member starts: after the 10-byte header and the optional
/// fields its flags announce (RFC 1952, section 2.3).
fn member_body_offset(bytes: &[u8]) -> Result<usize, String> {
    const FHCRC: u8 = 1 << 1;
    const FEXTRA: u8 = 1 << 2;
    const FNAME: u8 = 1 << 3;
    const FCOMMENT: u8 = 1 << 4;
    const RESERVED: u8 = 0b1110_0000;
    const DEFLATE: u8 = 8;
    let truncated = || "the gzip header is truncated".to_owned();
    let Some(&[_, _, method, flags, ..]) = bytes.get(..10) else {
        return Err(truncated());
    };
    if method != DEFLATE {
        return Err(format!("compression method {method} is not deflate (8)"));
    }
    if flags & RESERVED != 0 {
        return Err(format!(
            "the gzip header sets reserved flags ({flags:#04x})"
        ));
    }
    let mut at = 10usize;
    if flags & FEXTRA != 0 {
        let len = bytes
            .get(at..at + 2)
            .and_then(|len| <[u8; 2]>::try_from(len).ok())
            .ok_or_else(truncated)?;
        at = at
            .saturating_add(2)
            .saturating_add(usize::from(u16::from_le_bytes(len)));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = bytes.get(at..).ok_or_else(truncated)?;
            let nul = rest.iter().position(|&b| b == 0).ok_or_else(truncated)?;
            at = at.saturating_add(nul).saturating_add(1);
        }
    }
    if flags & FHCRC != 0 {
        at = at.saturating_add(2);
    }
    if at > bytes.len() {
        return Err(truncated());
    }
    Ok(at)
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
    fn inflating_past_the_bound_is_refused_before_allocating() {
        // 1 MiB of spaces compresses to ~1 KiB; 65 of them state a size just past the bound.
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let spaces = vec![b' '; 1 << 20];
        for _ in 0..65 {
            encoder.write_all(&spaces).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 200_000, "{}", bomb.len());
        let error = decode(&bomb).unwrap_err();
        assert!(
            error.contains("states 68157440 bytes") && error.contains("at most 67108864 bytes"),
            "{error}"
        );
    }

    /// The trailer's size field is the last four bytes.
    fn with_stated_size(mut gz: Vec<u8>, size: u32) -> Vec<u8> {
        let at = gz.len() - 4;
        gz[at..].copy_from_slice(&size.to_le_bytes());
        gz
    }

    #[test]
    fn a_trailer_that_misstates_the_size_is_refused() {
        let json = br#"{"schemaVersion":1,"routes":[]}"#;
        let small = with_stated_size(gzip(json), 10);
        let error = decode(&small).unwrap_err();
        assert!(error.contains("inflates past the 10 bytes"), "{error}");
        let large = with_stated_size(gzip(json), 1000);
        let error = decode(&large).unwrap_err();
        assert!(
            error.contains("inflated to 31 bytes, its trailer states 1000"),
            "{error}"
        );
    }

    #[test]
    fn a_size_deflate_cannot_reach_is_refused_before_allocating() {
        let tiny = with_stated_size(gzip(b"{}"), 60 << 20);
        let error = decode(&tiny).unwrap_err();
        assert!(
            error.contains("more than deflate can produce from 22 bytes"),
            "{error}"
        );
    }

    #[test]
    fn a_wrong_crc_is_refused() {
        let mut gz = gzip(br#"{"schemaVersion":1}"#);
        let at = gz.len() - 8;
        gz[at] ^= 0xff;
        let error = decode(&gz).unwrap_err();
        assert!(error.contains("CRC-32"), "{error}");
    }

    #[test]
    fn bytes_after_the_member_are_refused_not_dropped() {
        let json = br#"{"schemaVersion":1}"#;
        let mut two = gzip(json);
        two.extend(gzip(json));
        let error = decode(&two).unwrap_err();
        assert!(error.contains("bytes follow the gzip member"), "{error}");
    }

    #[test]
    fn optional_header_fields_are_skipped() {
        let json = br#"{"schemaVersion":1,"routes":[]}"#;
        let mut encoder = flate2::GzBuilder::new()
            .filename("config.json")
            .comment("rendered by a test")
            .extra(vec![1, 2, 3, 4])
            .write(Vec::new(), flate2::Compression::default());
        encoder.write_all(json).unwrap();
        let gz = encoder.finish().unwrap();
        assert_eq!(gz[3], 0b0001_1100, "FEXTRA, FNAME and FCOMMENT set");
        assert_eq!(decode(&gz).unwrap().as_ref(), json);
        // FHCRC: two bytes of header CRC after the other fields, skipped.
        let mut with_hcrc = gzip(json);
        with_hcrc[3] |= 1 << 1;
        with_hcrc.splice(10..10, [0xab, 0xcd]);
        assert_eq!(decode(&with_hcrc).unwrap().as_ref(), json);
    }

    #[test]
    fn headers_that_are_not_gzip_deflate_are_refused() {
        let mut gz = gzip(b"{}");
        gz[2] = 7;
        let error = decode(&gz).unwrap_err();
        assert!(
            error.contains("compression method 7 is not deflate"),
            "{error}"
        );
        let mut gz = gzip(b"{}");
        gz[3] = 0x80;
        let error = decode(&gz).unwrap_err();
        assert!(error.contains("reserved flags (0x80)"), "{error}");
        let error = decode(&[0x1f, 0x8b, 8]).unwrap_err();
        assert!(error.contains("header is truncated"), "{error}");
    }

    #[test]
    fn an_empty_document_inflates_to_nothing() {
        assert_eq!(decode(&gzip(b"")).unwrap().as_ref(), b"");
    }

    /// Every truncation and every single-byte corruption of a payload is an error or, where the
    /// damage misses everything that matters (an ignored header byte), the original document:
    /// never a panic, never other bytes.
    #[test]
    fn damaged_payloads_never_panic_or_inflate_to_other_bytes() {
        let json = br#"{"schemaVersion":1,"gateway":{"namespace":"ns","name":"gw"},"routes":[]}"#;
        let gz = gzip(json);
        for end in 0..gz.len() {
            if let Ok(inflated) = decode(&gz[..end]) {
                assert!(
                    end < 2 && inflated.as_ref() == &gz[..end],
                    "truncated at {end}"
                );
            }
        }
        for at in 0..gz.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut damaged = gz.clone();
                damaged[at] ^= flip;
                match decode(&damaged) {
                    Ok(Cow::Owned(inflated)) => assert_eq!(inflated, json, "byte {at} ^ {flip:#x}"),
                    Ok(Cow::Borrowed(_)) => assert!(at < 2, "no longer gzip, passed through"),
                    Err(_) => {}
                }
            }
        }
    }
}
