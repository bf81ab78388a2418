//! CRC-32 as gzip's trailer holds it (RFC 1952 section 8: ISO 3309 / ITU-T V.42, the reflected
//! polynomial 0xEDB88320), sixteen bytes per step with sixteen lookup tables.
//!
//! The tables (16 KiB) are built when a checksum is needed rather than stored in the module: the
//! crc32fast crate this replaces keeps the same tables as a static, which was 16 KiB of the Wasm
//! module's data, written into every VM's linear memory at instantiation whether or not it ever
//! inflated a configuration (`docs/benchmarks.md`, *The lean Wasm path*). Building them is 4,096
//! table entries, microseconds against the milliseconds of checking a multi-megabyte document.

/// The reflected CRC-32 polynomial.
const POLYNOMIAL: u32 = 0xEDB8_8320;

/// `tables[k][b]` is the CRC of byte `b` followed by `k` zero bytes.
pub(crate) struct Crc32 {
    tables: Box<[[u32; 256]; 16]>,
}

impl Crc32 {
    pub(crate) fn new() -> Crc32 {
        let mut tables = Box::new([[0u32; 256]; 16]);
        let mut byte_table = [0u32; 256];
        for (byte, entry) in (0u32..).zip(byte_table.iter_mut()) {
            let mut crc = byte;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ POLYNOMIAL
                } else {
                    crc >> 1
                };
            }
            *entry = crc;
        }
        let mut previous = byte_table;
        for (k, table) in tables.iter_mut().enumerate() {
            if k > 0 {
                for (entry, &before) in table.iter_mut().zip(previous.iter()) {
                    *entry = (before >> 8) ^ lookup(&byte_table, before as u8);
                }
                previous = *table;
            } else {
                *table = byte_table;
            }
        }
        Crc32 { tables }
    }

    /// The CRC-32 of `bytes`.
    pub(crate) fn checksum(&self, bytes: &[u8]) -> u32 {
        let t = &*self.tables;
        let mut crc = !0u32;
        let (blocks, rest) = bytes.as_chunks::<16>();
        for block in blocks {
            crc = fold(t, crc, block);
        }
        for &byte in rest {
            crc = (crc >> 8) ^ lookup(&t[0], (crc as u8) ^ byte);
        }
        !crc
    }
}

/// The CRC after one 16-byte block. The twelve lookups that do not depend on the CRC so far come
/// first: XOR groups from the left, so the block's work can start before the previous block's CRC
/// is known and only the last four lookups wait for it. The other order (the CRC's four first) made
/// a native build half as fast (2.1 against 1.1 ms for 5.2 MB).
#[inline(always)]
fn fold(t: &[[u32; 256]; 16], crc: u32, block: &[u8; 16]) -> u32 {
    let head = crc ^ u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
    lookup(&t[0], block[15])
        ^ lookup(&t[1], block[14])
        ^ lookup(&t[2], block[13])
        ^ lookup(&t[3], block[12])
        ^ lookup(&t[4], block[11])
        ^ lookup(&t[5], block[10])
        ^ lookup(&t[6], block[9])
        ^ lookup(&t[7], block[8])
        ^ lookup(&t[8], block[7])
        ^ lookup(&t[9], block[6])
        ^ lookup(&t[10], block[5])
        ^ lookup(&t[11], block[4])
        ^ lookup(&t[12], (head >> 24) as u8)
        ^ lookup(&t[13], (head >> 16) as u8)
        ^ lookup(&t[14], (head >> 8) as u8)
        ^ lookup(&t[15], head as u8)
}

/// A table entry; a `u8` cannot be out of a 256-entry table's range, and the compiler knows it, so
/// the fallback costs nothing.
#[inline(always)]
fn lookup(table: &[u32; 256], index: u8) -> u32 {
    table.get(usize::from(index)).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_check_values() {
        let crc = Crc32::new();
        // The check value of CRC-32/ISO-HDLC (the gzip CRC) is that of "123456789".
        assert_eq!(crc.checksum(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc.checksum(b""), 0);
        assert_eq!(crc.checksum(b"a"), 0xE8B7_BE43);
        assert_eq!(
            crc.checksum(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    /// Every length around the 16-byte step, and a long buffer, against the gzip trailers flate2
    /// writes (its CRC is crc32fast's, which this module replaced).
    #[test]
    fn agrees_with_the_gzip_trailers_of_another_implementation() {
        use std::io::Write;
        let crc = Crc32::new();
        let mut data = Vec::new();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            data.push(state as u8);
        }
        for len in (0..70).chain([1_000, 4_095, 4_096, 4_097, 100_000]) {
            let slice = data.get(..len).unwrap();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(slice).unwrap();
            let gz = gz.finish().unwrap();
            let trailer = &gz[gz.len() - 8..gz.len() - 4];
            let expected = u32::from_le_bytes(trailer.try_into().unwrap());
            assert_eq!(crc.checksum(slice), expected, "{len} bytes");
        }
    }
}
