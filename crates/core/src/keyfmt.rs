//! The shapes an API key's secret can take, and how to generate and check them.
//!
//! Every shape ends in a checksum of the rest, so a mistyped or truncated key is refused
//! without touching the store, and every shape has a fixed prefix or length that secret
//! scanners can match with a regular expression:
//!
//! | shape   | regular expression         | random bits |
//! |---------|----------------------------|-------------|
//! | native  | `kw_[0-9A-Za-z]{38}`       | 190         |
//! | octopus | `API-[0-9A-Z]{26}`         | 129         |
//! | pair    | `[0-9a-f]{64}` (secret)    | 224         |

use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::fmt;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE36_UPPER: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const HEX_LOWER: &[u8] = b"0123456789abcdef";
static BASE62_MEMBERS: [bool; 256] = members(BASE62);
static BASE36_UPPER_MEMBERS: [bool; 256] = members(BASE36_UPPER);
static HEX_LOWER_MEMBERS: [bool; 256] = members(HEX_LOWER);

const fn members(alphabet: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = true;
        i += 1;
    }
    table
}

/// How many characters after the prefix are shown to tell keys apart.
const VISIBLE_BODY_CHARS: usize = 4;

/// Which front door's format a key was issued in. All verify the same way.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyShape {
    /// `kw_` + base62: Keyward's own format.
    Native,
    /// `API-` + upper-case base36, as Octopus Deploy's clients insist on.
    Octopus,
    /// 64 lower-case hex characters: the secret half of a W3IPFS key + secret pair.
    Pair,
}

struct Spec {
    prefix: &'static str,
    alphabet: &'static [u8],
    /// Membership in `alphabet`, one table load per character: every presented key is
    /// checked character by character, and a scan of the alphabet per character cost
    /// more than the rest of the parse.
    members: &'static [bool; 256],
    body_len: usize,
    checksum_len: usize,
}

impl KeyShape {
    pub const ALL: [KeyShape; 3] = [KeyShape::Native, KeyShape::Octopus, KeyShape::Pair];

    fn spec(self) -> Spec {
        match self {
            KeyShape::Native => Spec {
                prefix: "kw_",
                alphabet: BASE62,
                members: &BASE62_MEMBERS,
                body_len: 32,
                checksum_len: 6,
            },
            // Octopus keys are `API-` + exactly 26 characters (what gitleaks matches);
            // 25 carry 129 random bits, which leaves one checksum character.
            KeyShape::Octopus => Spec {
                prefix: "API-",
                alphabet: BASE36_UPPER,
                members: &BASE36_UPPER_MEMBERS,
                body_len: 25,
                checksum_len: 1,
            },
            KeyShape::Pair => Spec {
                prefix: "",
                alphabet: HEX_LOWER,
                members: &HEX_LOWER_MEMBERS,
                body_len: 56,
                checksum_len: 8,
            },
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyShape::Native => "native",
            KeyShape::Octopus => "octopus",
            KeyShape::Pair => "pair",
        }
    }

    pub fn parse_name(name: &str) -> Option<KeyShape> {
        KeyShape::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub fn total_len(self) -> usize {
        let spec = self.spec();
        spec.prefix.len() + spec.body_len + spec.checksum_len
    }

    /// A new secret of this shape, from the OS generator.
    pub fn generate(self) -> Secret {
        let spec = self.spec();
        let mut text = String::with_capacity(self.total_len());
        text.push_str(spec.prefix);
        text.push_str(&crate::random::string_from(spec.alphabet, spec.body_len));
        let checksum = checksum(&text, spec.alphabet, spec.checksum_len);
        text.push_str(&checksum);
        Secret::new(text)
    }

    /// The part of a secret that may be shown: prefix and first characters.
    pub fn visible_start(self, secret: &str) -> String {
        let end = self.spec().prefix.len() + VISIBLE_BODY_CHARS;
        secret.get(..end).unwrap_or(secret).to_string()
    }

    fn accepts(self, candidate: &str) -> bool {
        let spec = self.spec();
        if candidate.len() != self.total_len() || !candidate.starts_with(spec.prefix) {
            return false;
        }
        let rest = &candidate.as_bytes()[spec.prefix.len()..];
        if !rest.iter().all(|&b| spec.members[usize::from(b)]) {
            return false;
        }
        let (signed, check) = candidate.split_at(candidate.len() - spec.checksum_len);
        checksum_matches(signed, spec.alphabet, check.as_bytes())
    }
}

impl fmt::Display for KeyShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a presented key was refused before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedKey;

/// Recognises a presented secret's shape and checks its checksum. Costs no allocation,
/// so garbage is refused as cheaply as possible.
pub fn parse(candidate: &str) -> Result<KeyShape, MalformedKey> {
    KeyShape::ALL
        .into_iter()
        .find(|shape| shape.accepts(candidate))
        .ok_or(MalformedKey)
}

/// CRC32 of `signed`, written in `alphabet` as exactly `len` digits (most significant
/// first), keeping the low digits when the alphabet cannot hold all 32 bits in `len`.
fn checksum(signed: &str, alphabet: &[u8], len: usize) -> String {
    let mut value = u64::from(crc32fast::hash(signed.as_bytes()));
    let base = alphabet.len() as u64;
    let mut digits = vec![0u8; len];
    for slot in digits.iter_mut().rev() {
        *slot = alphabet[(value % base) as usize];
        value /= base;
    }
    String::from_utf8(digits).expect("alphabets are ASCII")
}

/// Whether `check` is [`checksum`]'s answer for `signed`, computed without allocating:
/// every presented key, garbage included, goes through here.
fn checksum_matches(signed: &str, alphabet: &[u8], check: &[u8]) -> bool {
    let mut value = u64::from(crc32fast::hash(signed.as_bytes()));
    let base = alphabet.len() as u64;
    check.iter().rev().all(|&digit| {
        let expected = alphabet[(value % base) as usize];
        value /= base;
        digit == expected
    })
}

/// The public half of a key + secret pair (W3IPFS's `pinning_api_key`): it identifies a
/// key but grants nothing alone, so it is stored in clear.
pub fn generate_public_id() -> String {
    crate::random::string_from(HEX_LOWER, 20)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_keys_parse_as_their_shape() {
        for shape in KeyShape::ALL {
            for _ in 0..50 {
                let secret = shape.generate();
                assert_eq!(secret.expose().len(), shape.total_len());
                assert_eq!(parse(secret.expose()), Ok(shape), "{shape}");
            }
        }
    }

    #[test]
    fn octopus_keys_match_what_clients_and_scanners_expect() {
        let key = KeyShape::Octopus.generate();
        let body = key.expose().strip_prefix("API-").unwrap();
        assert_eq!(body.len(), 26);
        assert!(body
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
    }

    #[test]
    fn garbage_and_truncations_are_malformed() {
        let key = KeyShape::Native.generate();
        let text = key.expose();
        assert_eq!(parse(&text[..text.len() - 1]), Err(MalformedKey));
        assert_eq!(parse(""), Err(MalformedKey));
        assert_eq!(parse("kw_"), Err(MalformedKey));
        assert_eq!(parse("Bearer something"), Err(MalformedKey));
        assert_eq!(parse(&format!("{text}x")), Err(MalformedKey));
        assert_eq!(parse(&"é".repeat(20)), Err(MalformedKey));
    }

    #[test]
    fn visible_start_shows_prefix_and_four_characters() {
        let key = KeyShape::Native.generate();
        let start = KeyShape::Native.visible_start(key.expose());
        assert_eq!(start.len(), 7);
        assert!(key.expose().starts_with(&start));
    }

    proptest! {
        // Changing any one character of a native key is caught by the checksum.
        #[test]
        fn single_character_typos_are_caught(pos in 3usize..41, replacement in 0usize..62) {
            let key = KeyShape::Native.generate();
            let mut bytes = key.expose().as_bytes().to_vec();
            let new = BASE62[replacement];
            prop_assume!(bytes[pos] != new);
            bytes[pos] = new;
            let typo = String::from_utf8(bytes).unwrap();
            prop_assert_eq!(parse(&typo), Err(MalformedKey));
        }
    }
}
