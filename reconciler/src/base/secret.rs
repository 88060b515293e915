//! Random secrets and the form they are kept in: session ids, CSRF and
//! personal tokens, salts (from the system's generator), hex, the SHA-256
//! under which a secret is stored instead of itself, and comparing a
//! secret given with the one expected.

/// Whether a secret given equals the one expected, in time that does not
/// depend on where they differ (a timing probe learns nothing).
pub fn same(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// `n` random bytes from the system.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; n];
    // The system's generator failing leaves no safe fallback: a token of
    // zeroes would be guessable, so this panics instead.
    #[allow(clippy::expect_used)]
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .expect("the system random generator works");
    buf
}

/// `n` random bytes from the system, hex.
pub fn random_hex(n: usize) -> String {
    hex(&random_bytes(n))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of lowercase or uppercase hex `s`; `None` if it is not hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// SHA-256 of `text`, hex: how a secret is stored (a store that leaks
/// leaks no usable credential).
pub fn sha256_hex(text: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_secrets_differ() {
        let bytes = random_bytes(16);
        assert_eq!(unhex(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_ne!(random_hex(16), random_hex(16));
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
