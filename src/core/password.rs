//! Password and static-token hashing.
//!
//! Passwords: argon2id PHC strings with argon2's defaults (19 MiB, 2 passes, 1 lane: OWASP's
//! minimum). Verification reads the parameters from the stored string, so hashes written by
//! Directus verify as they are. Static tokens: SHA-256 hex, because they are long random
//! strings looked up on every request, where a slow hash would cost each request.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use sha2::{Digest, Sha256};

/// Hashes a password into a PHC string.
pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    Ok(Argon2::default().hash_password(password.as_bytes())?.to_string())
}

/// Checks a password against a stored PHC string; a malformed hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Whether a stored hash was made with other settings than ours (Directus writes argon2id with
/// 64 MiB and 3 passes, older tools argon2i): verified logins rewrite it with ours.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return true;
    };
    let ours = argon2::Params::default();
    let param = |name: &str| parsed.params.get_decimal(name);
    parsed.algorithm.as_str() != "argon2id"
        || parsed.version != Some(argon2::Version::V0x13 as u32)
        || param("m") != Some(ours.m_cost())
        || param("t") != Some(ours.t_cost())
        || param("p") != Some(ours.p_cost())
}

/// The stored form of a static token.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The refresh token that succeeds the one whose digest is `digest`: derived (HMAC-SHA256 under
/// `SECRET`), not random, so a refresh retried within the grace period gets the very same
/// successor, as Directus hands out the same next session, although only digests are stored.
/// Unguessable without the secret, even to someone who knows the digest.
pub fn successor_token(secret: &[u8], digest: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = match hmac::Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; unreachable, but a random token is a safe answer.
        Err(_) => return generate(64),
    };
    mac.update(b"directrix refresh successor\0");
    mac.update(digest.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A random password of `len` letters and digits, for the first admin when none is configured.
pub fn generate(len: usize) -> String {
    use rand::Rng;
    use rand::distr::Alphanumeric;
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successors_are_stable_per_token_and_secret() {
        let a = successor_token(b"secret", "digest-1");
        assert_eq!(a, successor_token(b"secret", "digest-1"));
        assert_ne!(a, successor_token(b"secret", "digest-2"));
        assert_ne!(a, successor_token(b"other", "digest-1"));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn hashes_verify_and_wrong_passwords_do_not() {
        let phc = hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse", &phc));
        assert!(!verify("wrong", &phc));
        assert!(!verify("correct horse", "not a hash"));
    }

    #[test]
    fn foreign_parameters_need_a_rehash() {
        let ours = hash("secret").unwrap();
        assert!(!needs_rehash(&ours));
        // What Directus (node `argon2` defaults) writes: argon2id, 64 MiB, 3 passes, 4 lanes.
        let directus = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(65_536, 3, 4, None).unwrap(),
        )
        .hash_password(b"secret")
        .unwrap()
        .to_string();
        assert!(verify("secret", &directus));
        assert!(needs_rehash(&directus));
        assert!(needs_rehash("not a hash"));
    }

    #[test]
    fn token_digests_are_stable_hex() {
        assert_eq!(
            token_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn generated_passwords_are_alphanumeric() {
        let pw = generate(24);
        assert_eq!(pw.len(), 24);
        assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
