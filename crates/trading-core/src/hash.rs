//! A tiny, fast, non-cryptographic hasher for integer ids (no external crates).

use std::hash::{BuildHasherDefault, Hasher};

/// Multiplicative (Fx-style) hasher; ids are not attacker-chosen keys of a
/// long-lived public table in this library, so HashDoS resistance is not needed.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(K);
        }
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0 ^ i).wrapping_mul(K);
    }
}

/// Build-hasher for [`IdHasher`].
pub type IdBuildHasher = BuildHasherDefault<IdHasher>;
