//! Secrets and their keyed hashes.
//!
//! A key's secret exists only in the response that shows it once; what is stored is
//! HMAC-SHA-256 of it under a key derived from the server secret, which lives outside the
//! database. Without the server secret a stolen database cannot even confirm a guess.

use crate::error::{CoreError, CoreResult};
use hmac::{Hmac, Mac};
use sha2::Sha256;
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

/// Hashes key secrets. Keyed once at start; each hash clones the keyed state, which
/// saves re-deriving the HMAC pads on the hot path.
#[derive(Clone)]
pub struct KeyHasher {
    keyed: HmacSha256,
}

impl KeyHasher {
    pub fn new(server_secret: &ServerSecret) -> Self {
        let key = server_secret.derive("keyward/api-key-hash/v1");
        KeyHasher {
            keyed: HmacSha256::new_from_slice(&key).expect("HMAC takes any key length"),
        }
    }

    pub fn hash(&self, secret: &str) -> SecretHash {
        let mut mac = self.keyed.clone();
        mac.update(secret.as_bytes());
        SecretHash(mac.finalize().into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn server_secret_hex_round_trip_and_rejects_garbage() {
        let s = ServerSecret::generate();
        let back = ServerSecret::from_hex(&s.to_hex()).unwrap();
        assert_eq!(s.derive("p"), back.derive("p"));
        assert!(ServerSecret::from_hex("abc").is_err());
        assert!(ServerSecret::from_hex(&"zz".repeat(32)).is_err());
    }
}
