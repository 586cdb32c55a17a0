//! Stable hashes for the planner: identical on every machine, process and
//! Rust version (never `std`'s randomly seeded hasher), so plans are
//! reproducible byte for byte.

use sha2::{Digest, Sha256};

/// First 8 bytes (big-endian) of the SHA-256 of `text`.
pub fn sha256_u64(text: &str) -> u64 {
    let digest = Sha256::digest(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Fast well-mixed 64-bit hash of a sequence of strings: FNV-1a over the
/// parts (each followed by a 0xff separator, which never occurs in UTF-8)
/// finished with the SplitMix64 finalizer for good avalanche.
pub fn mix64(parts: &[&str]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut h = OFFSET;
    for part in parts {
        for &b in part.as_bytes().iter().chain(std::iter::once(&0xffu8)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_prefix_is_fixed() {
        // sha256("abc") = ba7816bf8f01cfea...
        assert_eq!(sha256_u64("abc"), 0xba78_16bf_8f01_cfea);
    }

    #[test]
    fn mix64_separates_parts_and_is_fixed() {
        assert_ne!(mix64(&["ab", "c"]), mix64(&["a", "bc"]));
        assert_eq!(mix64(&["x"]), mix64(&["x"]));
        assert_ne!(mix64(&["x"]), mix64(&["y"]));
    }
}
