//! Directus's signed tokens: access tokens and password-reset tokens, both HS256 JWTs signed
//! with `SECRET` and issued by `"directus"`.
//!
//! Pure: the caller passes the current time (unix seconds), so expiry is checked against the
//! same clock as everything else in a request, with no leeway (Directus's `jsonwebtoken` has
//! none either, and short test TTLs depend on it).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

/// Every token we issue names this issuer; a JWT from anyone else is treated as a static token.
pub const ISSUER: &str = "directus";

/// The scope of a password-reset token.
pub const PASSWORD_RESET_SCOPE: &str = "password-reset";

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Well-formed and correctly signed, but past `exp` (Directus: TOKEN_EXPIRED).
    #[error("token expired")]
    Expired,
    /// Not decodable, wrong signature, wrong issuer or missing claims (Directus: INVALID_TOKEN).
    #[error("invalid token")]
    Invalid,
}

/// The claims of an access token, as Directus writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user (absent for shares, which we do not issue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// Must be present, even as `null`: Directus refuses tokens without it.
    #[serde(deserialize_with = "present")]
    pub role: Option<Uuid>,
    pub app_access: bool,
    pub admin_access: bool,
    /// Session mode: the refresh token's session this access token belongs to; the session
    /// must still exist for the token to be accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce_tfa: Option<bool>,
    pub iat: i64,
    pub exp: i64,
    /// Not valid before (never issued by us; honoured when present, RFC 7519 §4.1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub iss: String,
}

/// The claims of a password-reset token. `hash` fingerprints the password it may replace, so
/// the token stops working once the password changes (single use, as in Directus).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResetClaims {
    pub email: String,
    pub scope: String,
    pub hash: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub iss: String,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
    Option::<Uuid>::deserialize(d)
}

/// Signs claims with the secret.
pub fn sign<C: Serialize>(claims: &C, secret: &[u8]) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
}

/// Verifies signature, issuer and expiry (`now` in unix seconds) and returns the claims.
pub fn verify<C>(token: &str, secret: &[u8], now: i64) -> Result<C, TokenError>
where
    C: for<'de> Deserialize<'de> + Expiring,
{
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "iss"]);
    // Expiry is checked below against the caller's clock.
    validation.validate_exp = false;
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<C>(token, &DecodingKey::from_secret(secret), &validation)
        .map_err(|_| TokenError::Invalid)?;
    if data.claims.expires_at() <= now {
        return Err(TokenError::Expired);
    }
    // A token that is not valid yet is refused as Directus's `jsonwebtoken` refuses it
    // (`NotBeforeError` is a `JsonWebTokenError`: INVALID_TOKEN).
    if data.claims.not_before().is_some_and(|nbf| nbf > now) {
        return Err(TokenError::Invalid);
    }
    Ok(data.claims)
}

/// Claims with an expiry.
pub trait Expiring {
    fn expires_at(&self) -> i64;
    fn not_before(&self) -> Option<i64>;
}

impl Expiring for AccessClaims {
    fn expires_at(&self) -> i64 {
        self.exp
    }

    fn not_before(&self) -> Option<i64> {
        self.nbf
    }
}

impl Expiring for ResetClaims {
    fn expires_at(&self) -> i64 {
        self.exp
    }

    fn not_before(&self) -> Option<i64> {
        self.nbf
    }
}

/// Whether `token` looks like a JWT we issued (Directus's `isDirectusJWT`): decodable and with
/// `iss: "directus"`, whatever its signature. Anything else is looked up as a static token.
pub fn is_directus_jwt(token: &str) -> bool {
    #[derive(Deserialize)]
    struct Issuer {
        iss: Option<String>,
    }
    if token.split('.').count() != 3 {
        return false;
    }
    // Only the issuer is read here; `verify` checks the signature before anything is trusted.
    jsonwebtoken::dangerous::insecure_decode_claims::<Issuer>(token)
        .is_ok_and(|claims| claims.iss.as_deref() == Some(ISSUER))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret";

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            id: Some(Uuid::nil()),
            role: None,
            app_access: true,
            admin_access: false,
            session: None,
            enforce_tfa: None,
            iat: 1_000,
            exp,
            nbf: None,
            iss: ISSUER.into(),
        }
    }

    #[test]
    fn a_token_not_valid_yet_is_invalid() {
        let early = AccessClaims {
            nbf: Some(1_600),
            ..claims(2_000)
        };
        let token = sign(&early, SECRET).unwrap();
        assert_eq!(
            verify::<AccessClaims>(&token, SECRET, 1_599),
            Err(TokenError::Invalid)
        );
        assert_eq!(verify::<AccessClaims>(&token, SECRET, 1_600), Ok(early));
    }

    #[test]
    fn round_trips_until_expiry() {
        let token = sign(&claims(2_000), SECRET).unwrap();
        assert!(is_directus_jwt(&token));
        let back: AccessClaims = verify(&token, SECRET, 1_999).unwrap();
        assert_eq!(back, claims(2_000));
        assert_eq!(
            verify::<AccessClaims>(&token, SECRET, 2_000),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn wrong_secret_issuer_or_shape_is_invalid() {
        let token = sign(&claims(2_000), SECRET).unwrap();
        assert_eq!(
            verify::<AccessClaims>(&token, b"other", 1_500),
            Err(TokenError::Invalid)
        );
        let foreign = AccessClaims {
            iss: "someone".into(),
            ..claims(2_000)
        };
        let token = sign(&foreign, SECRET).unwrap();
        assert!(!is_directus_jwt(&token));
        assert_eq!(
            verify::<AccessClaims>(&token, SECRET, 1_500),
            Err(TokenError::Invalid)
        );
        // A token without `role` is refused, as Directus's verifyAccessJWT does.
        let no_role = serde_json::json!({"id": Uuid::nil(), "app_access": true, "admin_access": false,
            "iat": 1_000, "exp": 2_000, "iss": ISSUER});
        let token = sign(&no_role, SECRET).unwrap();
        assert_eq!(
            verify::<AccessClaims>(&token, SECRET, 1_500),
            Err(TokenError::Invalid)
        );
        assert!(!is_directus_jwt("static-token-value"));
        assert!(!is_directus_jwt("a.b.c"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}") {
            let _ = is_directus_jwt(&text);
            let _ = verify::<AccessClaims>(&text, SECRET, 0);
        }

        #[test]
        fn tampered_payloads_are_refused(flip in 0usize..400) {
            let token = sign(&claims(2_000), SECRET).unwrap();
            let mut bytes = token.into_bytes();
            let at = flip % bytes.len();
            if bytes[at] == b'.' { return Ok(()); }
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            proptest::prop_assert!(verify::<AccessClaims>(&tampered, SECRET, 1_500).is_err());
        }
    }
}
