//! Password hashing with Argon2id (the OWASP-recommended parameters that the argon2
//! crate uses by default: 19 MiB, 2 passes, 1 lane).

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;

/// A PHC string (`$argon2id$v=19$...`) for storage.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    crate::random::fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 with default parameters cannot fail on a password")
        .to_string()
}

/// Checks a password against a stored PHC string. A corrupt stored hash verifies nothing.
///
/// Argon2's working memory (19 MiB with the default parameters) is kept by the calling
/// thread and reused: allocated and freed per check, it stayed in the allocator's
/// per-thread arenas, 19 MiB more of resident memory after nearly every check.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    WORKING_MEMORY.with_borrow_mut(|memory| verify_in(memory, password, &parsed).unwrap_or(false))
}

/// The most working memory a stored hash may ask for (64 MiB): stored hashes are
/// Keyward's own, made with 19 MiB; a larger one is refused rather than allocated.
const MAX_BLOCKS: usize = 64 * 1024;

thread_local! {
    static WORKING_MEMORY: std::cell::RefCell<Vec<argon2::Block>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Recomputes the stored hash's output for `password` in `memory`, and compares it in
/// constant time; `None` when the stored hash cannot be used.
fn verify_in(
    memory: &mut Vec<argon2::Block>,
    password: &str,
    stored: &PasswordHash,
) -> Option<bool> {
    use subtle::ConstantTimeEq;
    let expected = stored.hash?;
    let algorithm = argon2::Algorithm::try_from(stored.algorithm).ok()?;
    let version = match stored.version {
        Some(v) => argon2::Version::try_from(v).ok()?,
        None => argon2::Version::default(),
    };
    let params = argon2::Params::try_from(stored).ok()?;
    let blocks = params.block_count();
    if blocks > MAX_BLOCKS {
        return None;
    }
    let mut salt = [0u8; 64];
    let salt = stored.salt?.decode_b64(&mut salt).ok()?;
    if memory.len() < blocks {
        memory.resize(blocks, argon2::Block::default());
    }
    let mut output = [0u8; 64];
    let output = output.get_mut(..expected.len())?;
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, output, &mut memory[..blocks])
        .ok()?;
    Some(output.ct_eq(expected.as_bytes()).into())
}

/// Spends the same work as a real check, for logins with an unknown email, so that
/// response time does not reveal which emails exist.
pub fn burn_verification_time(password: &str) {
    use std::sync::OnceLock;
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("keyward-dummy-password"));
    let _ = verify_password(password, dummy);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_uses_argon2id() {
        let stored = hash_password("correct horse");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &stored));
        assert!(!verify_password("wrong horse", &stored));
        assert!(!verify_password("correct horse", "not a hash"));
    }
}
