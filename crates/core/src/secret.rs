//! Secrets and their keyed hashes.
//!
//! A key's secret exists only in the response that shows it once; what is stored is
//! HMAC-SHA-256 of it under a key derived from the server secret, which lives outside the
//! database. Without the server secret a stolen database cannot even confirm a guess.

use crate::error::{CoreError, CoreResult};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

type HmacSha256 = Hmac<Sha256>;

/// A plaintext credential (an API key's secret, a password). It never prints itself.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// The plaintext, for the one place that must show or hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this secret, compared in constant time (for a given
    /// length: only the length may show). Eight bytes at a time, every word whatever
    /// the ones before it held, and only the accumulated difference is tested, as
    /// `subtle` tests it: this runs on every request of a kept-alive connection, where
    /// a byte-by-byte `subtle` comparison costs more than the lookup it saves.
    pub fn is(&self, presented: &[u8]) -> bool {
        let mine = self.0.as_bytes();
        if mine.len() != presented.len() {
            return false;
        }
        let word = |bytes: &[u8]| u64::from_ne_bytes(bytes.try_into().expect("8 bytes"));
        let mut difference = 0u64;
        let (ours, theirs) = (mine.chunks_exact(8), presented.chunks_exact(8));
        for (a, b) in ours.remainder().iter().zip(theirs.remainder()) {
            difference |= u64::from(a ^ b);
        }
        for (a, b) in ours.zip(theirs) {
            difference |= word(a) ^ word(b);
        }
        difference.ct_eq(&0).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The 32-byte server secret shared by all nodes of one cluster.
#[derive(Clone)]
pub struct ServerSecret([u8; 32]);

impl ServerSecret {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        crate::random::fill(&mut bytes);
        ServerSecret(bytes)
    }

    /// Parses the 64-hex-character form used in files and `KEYWARD_SECRET`.
    pub fn from_hex(text: &str) -> CoreResult<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| {
            CoreError::invalid(
                "secret",
                "the server secret must be 64 hexadecimal characters",
            )
        })?;
        Ok(ServerSecret(bytes))
    }

    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0))
    }

    /// A sub-key for one purpose, so the key-hashing key and the JWT key are independent.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl Drop for ServerSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecret(<redacted>)")
    }
}

/// HMAC-SHA-256 of a key's secret: the only form in which a secret is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    /// Compares without leaking, through timing, how many leading bytes matched.
    pub fn ct_eq(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(SecretHash)
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({}…)", hex::encode(&self.0[..4]))
    }
}

/// HMAC's inner hash of a key's secret, SHA-256((K ⊕ ipad) ‖ secret): a keyed hash in
/// its own right, and half the work of the full HMAC. It names a secret in memory (the
/// verifier's cache), so that a cached verification costs one SHA-256 compression
/// rather than two; the store only ever sees the full [`SecretHash`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InnerHash(pub [u8; 32]);

impl InnerHash {
    /// The first eight bytes: as good a hash-table hash as any, being (a prefix of) the
    /// output of a keyed hash, which nobody without the server secret can steer.
    pub fn prefix(&self) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(first)
    }
}

impl std::hash::Hash for InnerHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.prefix());
    }
}

impl fmt::Debug for InnerHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InnerHash({}…)", hex::encode(&self.0[..4]))
    }
}

/// Hashes key secrets: HMAC-SHA-256 under a key derived from the server secret, in its
/// two halves, so that a caller with a cached secret can stop after the first. Keyed once
/// at start: each half starts from a copy of a SHA-256 state that has already absorbed
/// its padded key block.
#[derive(Clone)]
pub struct KeyHasher {
    inner: Sha256,
    outer: Sha256,
}

impl KeyHasher {
    pub fn new(server_secret: &ServerSecret) -> Self {
        let key = Zeroizing::new(server_secret.derive("keyward/api-key-hash/v1"));
        // RFC 2104 with a 32-byte key: the key, zero-padded to SHA-256's 64-byte block,
        // XORed with the inner or the outer pad.
        let keyed = |pad: u8| {
            let mut block = Zeroizing::new([pad; 64]);
            for (byte, k) in block.iter_mut().zip(key.iter()) {
                *byte ^= k;
            }
            let mut state = Sha256::new();
            state.update(&block[..]);
            state
        };
        KeyHasher {
            inner: keyed(0x36),
            outer: keyed(0x5c),
        }
    }

    /// The first half of [`hash`](Self::hash).
    pub fn inner(&self, secret: &str) -> InnerHash {
        let mut state = self.inner.clone();
        state.update(secret.as_bytes());
        InnerHash(state.finalize().into())
    }

    /// The second half: the full HMAC of the secret whose inner hash this is.
    pub fn finish(&self, inner: &InnerHash) -> SecretHash {
        let mut state = self.outer.clone();
        state.update(inner.0);
        SecretHash(state.finalize().into())
    }

    /// HMAC-SHA-256 of a secret: what the store keeps.
    pub fn hash(&self, secret: &str) -> SecretHash {
        self.finish(&self.inner(secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_only_itself() {
        let secret = Secret::new("kw_abcdefghijklmnopqrstuvwxyz0123456789AB");
        assert!(secret.is(secret.expose().as_bytes()));
        let text = secret.expose().as_bytes().to_vec();
        for at in 0..text.len() {
            let mut other = text.clone();
            other[at] ^= 1;
            assert!(!secret.is(&other), "differs at {at}");
        }
        assert!(!secret.is(&text[..text.len() - 1]));
        assert!(!secret.is(b""));
        assert!(Secret::new("").is(b""));
        assert!(Secret::new("abc").is(b"abc"));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("kw_supersecret");
        assert!(!format!("{s:?}").contains("supersecret"));
        let server = ServerSecret::generate();
        assert!(!format!("{server:?}").contains(&server.to_hex()[..8]));
    }

    #[test]
    fn hash_depends_on_server_secret_and_input() {
        let a = KeyHasher::new(&ServerSecret::generate());
        let b = KeyHasher::new(&ServerSecret::generate());
        assert_eq!(a.hash("x"), a.hash("x"));
        assert_ne!(a.hash("x"), a.hash("y"));
        assert_ne!(a.hash("x"), b.hash("x"));
        assert!(a.hash("x").ct_eq(&a.hash("x")));
        assert!(!a.hash("x").ct_eq(&a.hash("y")));
    }

    proptest::proptest! {
        /// The two halves are HMAC-SHA-256 exactly (checked against the `hmac` crate),
        /// so every hash already stored stays valid.
        #[test]
        fn halves_make_the_standard_hmac(secret in ".{0,200}") {
            let server = ServerSecret::generate();
            let hasher = KeyHasher::new(&server);
            let mut mac = HmacSha256::new_from_slice(&server.derive("keyward/api-key-hash/v1"))
                .unwrap();
            mac.update(secret.as_bytes());
            let expected: [u8; 32] = mac.finalize().into_bytes().into();
            proptest::prop_assert_eq!(hasher.hash(&secret).0, expected);
            proptest::prop_assert_eq!(hasher.finish(&hasher.inner(&secret)).0, expected);
            proptest::prop_assert_ne!(hasher.inner(&secret).0, expected);
        }
    }

    #[test]
    fn server_secret_hex_round_trip_and_rejects_garbage() {
        let s = ServerSecret::generate();
        let back = ServerSecret::from_hex(&s.to_hex()).unwrap();
        assert_eq!(s.derive("p"), back.derive("p"));
        assert!(ServerSecret::from_hex("abc").is_err());
        assert!(ServerSecret::from_hex(&"zz".repeat(32)).is_err());
    }
}
