//! Time-based one-time passwords (RFC 6238) as Directus's TFA uses them: a base32 secret,
//! HMAC-SHA1, 6 digits, 30-second steps. One step either side is accepted for clock skew.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Seconds per code.
const STEP: i64 = 30;
/// Codes accepted either side of the current one.
const WINDOW: i64 = 1;

/// Whether `otp` is the code for `secret` (base32) at `now` (unix seconds), within the window.
pub fn verify(secret: &str, otp: &str, now: i64) -> bool {
    let Some(key) = base32_decode(secret) else {
        return false;
    };
    if otp.len() != 6 || !otp.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let counter = now.div_euclid(STEP);
    // Constant-time over the window: every candidate is computed and compared.
    (-WINDOW..=WINDOW).fold(false, |found, offset| {
        let code = code_at(&key, counter + offset);
        found
            | code
                .as_deref()
                .is_some_and(|code| constant_eq(code.as_bytes(), otp.as_bytes()))
    })
}

/// The 6-digit code for `key` at step `counter`.
pub fn code_at(key: &[u8], counter: i64) -> Option<String> {
    let counter = u64::try_from(counter).ok()?;
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key).ok()?;
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let bytes: [u8; 4] = digest.get(offset..offset + 4)?.try_into().ok()?;
    let value = u32::from_be_bytes(bytes) & 0x7fff_ffff;
    Some(format!("{:06}", value % 1_000_000))
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 4648 base32 (case-insensitive, padding and spaces ignored).
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u64, 0u32);
    for c in text.chars().filter(|c| *c != '=' && !c.is_whitespace()) {
        let value = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u64 - 'A' as u64,
            c @ '2'..='7' => c as u64 - '2' as u64 + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_vectors() {
        // RFC 6238 appendix B, key "12345678901234567890", last 6 digits of the 8-digit codes.
        let key = b"12345678901234567890";
        assert_eq!(code_at(key, 59 / 30).as_deref(), Some("287082"));
        assert_eq!(code_at(key, 1_111_111_109 / 30).as_deref(), Some("081804"));
        assert_eq!(code_at(key, 1_234_567_890 / 30).as_deref(), Some("005924"));
        assert_eq!(code_at(key, 2_000_000_000 / 30).as_deref(), Some("279037"));
    }

    #[test]
    fn verifies_within_one_step() {
        // "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ" is base32 of the RFC key.
        let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        assert_eq!(base32_decode(secret).unwrap(), b"12345678901234567890");
        assert!(verify(secret, "081804", 1_111_111_109));
        assert!(verify(secret, "081804", 1_111_111_109 + 30));
        assert!(!verify(secret, "081804", 1_111_111_109 + 90));
        assert!(!verify(secret, "81804", 1_111_111_109));
        assert!(!verify("not base32!", "081804", 1_111_111_109));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_input_never_panics(secret in ".{0,40}", otp in ".{0,8}", now in proptest::num::i64::ANY) {
            let _ = verify(&secret, &otp, now);
        }

        #[test]
        fn base32_round_trips(bytes in proptest::collection::vec(proptest::num::u8::ANY, 5..40)) {
            // Encode by the RFC, 5 bytes → 8 symbols at a time.
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
            let mut text = String::new();
            let (mut buffer, mut bits) = (0u64, 0u32);
            for b in &bytes {
                buffer = (buffer << 8) | u64::from(*b);
                bits += 8;
                while bits >= 5 {
                    bits -= 5;
                    text.push(alphabet[((buffer >> bits) & 31) as usize] as char);
                }
            }
            if bits > 0 {
                text.push(alphabet[((buffer << (5 - bits)) & 31) as usize] as char);
            }
            proptest::prop_assert_eq!(base32_decode(&text).unwrap(), bytes);
        }
    }
}
