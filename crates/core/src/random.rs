//! Randomness from the operating system's generator, and uniform strings drawn from it.

/// Fills `buf` from the OS generator. A machine without one cannot run Keyward safely,
/// so failure is fatal rather than silently weaker.
pub fn fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random generator failed");
}

/// `len` characters drawn uniformly from `alphabet` (at most 256 symbols), by rejection
/// sampling so that no symbol is favoured.
pub fn string_from(alphabet: &[u8], len: usize) -> String {
    assert!(!alphabet.is_empty() && alphabet.len() <= 256);
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(len);
    let mut pool = [0u8; 64];
    while out.len() < len {
        fill(&mut pool);
        for &b in pool.iter().filter(|&&b| (b as usize) < limit) {
            if out.len() == len {
                break;
            }
            out.push(alphabet[b as usize % alphabet.len()] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_only_from_alphabet_with_the_right_length() {
        let s = string_from(b"abc", 500);
        assert_eq!(s.len(), 500);
        assert!(s.bytes().all(|b| b"abc".contains(&b)));
        assert!(s.contains('a') && s.contains('b') && s.contains('c'));
    }
}
