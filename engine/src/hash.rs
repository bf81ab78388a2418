//! A fast, non-cryptographic hasher for the match index.
//!
//! The index's keys (hostnames, path segments) come from the config; requests only look them up, so
//! hash-flooding by a client cannot make the tables degrade (lookups do not insert). SipHash, the
//! standard library's default, costs several times more per probe, and a request probes the tables
//! once per host label and path segment.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// `HashMap` with [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Multiply-rotate hashing over 8-byte words (the scheme rustc uses for its own tables).
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            if let Some(head) = word.get_mut(..rest.len()) {
                head.copy_from_slice(rest);
            }
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A string key compared eight bytes at a time. On wasm32, `str` equality calls the C library's
/// `memcmp`, which compares byte by byte: with the 40,000 backend-key lookups of a 10,000-route
/// push, 8 % of `RouteTable::compile`'s V8 profile samples were in `memcmp`.
#[derive(Clone, Copy, Eq)]
pub(crate) struct WordStr<'a>(pub(crate) &'a str);

impl std::hash::Hash for WordStr<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for WordStr<'_> {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let ((words_a, rest_a), (words_b, rest_b)) = (a.as_chunks::<8>(), b.as_chunks::<8>());
        words_a
            .iter()
            .zip(words_b)
            .all(|(x, y)| u64::from_ne_bytes(*x) == u64::from_ne_bytes(*y))
            && rest_a.iter().eq(rest_b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_with_the_fast_hasher_behave_like_maps() {
        let mut map: FastMap<Box<str>, u32> = FastMap::default();
        for (i, key) in [
            "",
            "a",
            "api",
            "exactly8",
            "more-than-eight-bytes",
            "ünïcödé",
        ]
        .iter()
        .enumerate()
        {
            map.insert((*key).into(), i as u32);
        }
        assert_eq!(map.get("exactly8"), Some(&3));
        assert_eq!(map.get("more-than-eight-bytes"), Some(&4));
        assert_eq!(map.get(""), Some(&0));
        assert_eq!(map.get("missing"), None);
    }

    #[test]
    fn word_strings_are_equal_exactly_when_the_strings_are() {
        let words = [
            "",
            "a",
            "b",
            "ab",
            "exactly8",
            "exactly9",
            "exactlY8",
            "team0/svc0:8080",
            "team0/svc0:8081",
            "team0/svc0-canary:8080",
            "ünïcödé",
            "ünïcödè",
        ];
        for a in words {
            for b in words {
                assert_eq!(WordStr(a) == WordStr(b), a == b, "{a:?} vs {b:?}");
            }
        }
    }
}
