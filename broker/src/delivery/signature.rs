//! Webhook signatures per the Standard Webhooks scheme, so a receiver can
//! verify with any off-the-shelf Standard Webhooks library:
//!
//! - `webhook-id`: the delivery's id, the same across retries (receivers
//!   deduplicate on it);
//! - `webhook-timestamp`: unix seconds of the attempt;
//! - `webhook-signature`: `v1,` + base64(HMAC-SHA256(secret, "id.timestamp.body")).
//!
//! The secret travels only as the HMAC key, never in a header or the body.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// What Standard Webhooks secrets start with.
const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a generated secret (the scheme asks for 24 to 64).
const GENERATED_SECRET_BYTES: usize = 32;
/// At least 128 bits of key, however it is given (Standard Webhooks asks
/// 24 of generated secrets; a token of the webhook seed's may be shorter).
const MIN_SECRET_BYTES: usize = 16;
const MAX_SECRET_BYTES: usize = 64;

/// A subscription's signing key. Its `Debug` form hides the key.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl WebhookSecret {
    /// A new random secret.
    pub fn generate() -> Self {
        let mut key = vec![0u8; GENERATED_SECRET_BYTES];
        rand::rng().fill_bytes(&mut key);
        Self { key }
    }

    /// Parses `whsec_<base64>` (a Standard Webhooks secret) or, without the
    /// prefix, a token whose UTF-8 bytes are the key (the webhook seed's
    /// `secret_token`), refusing keys too short to be safe.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(encoded) = text.strip_prefix(SECRET_PREFIX) else {
            let key = text.as_bytes().to_vec();
            if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
                return Err(format!(
                    "a webhook secret is {SECRET_PREFIX}<base64 of a key> or a token, of {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes either way; this one has {}",
                    key.len()
                ));
            }
            return Ok(Self { key });
        };
        let key = STANDARD
            .decode(encoded)
            .map_err(|e| format!("a webhook secret is {SECRET_PREFIX} and base64: {e}"))?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(format!(
                "a webhook secret has {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes of key, not {}",
                key.len()
            ));
        }
        Ok(Self { key })
    }

    /// A secret from its stored key bytes.
    pub fn from_key(key: Vec<u8>) -> Self {
        Self { key }
    }

    /// The key bytes, to store.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The `whsec_...` form, shown to the subscription's owner.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// The `webhook-signature` header value for one attempt.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        // The published vector of the Standard Webhooks reference libraries.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn generated_secrets_round_trip_and_differ() {
        let secret = WebhookSecret::generate();
        let text = secret.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&text).unwrap(), secret);
        assert_ne!(WebhookSecret::generate(), secret);
        assert_eq!(format!("{secret:?}"), "WebhookSecret(..)");
    }

    #[test]
    fn a_token_without_the_prefix_is_its_own_key() {
        let token = WebhookSecret::parse("my-super-secret-token").unwrap();
        assert_eq!(token.key(), b"my-super-secret-token");
        // Receivers verify with its whsec_ form, as with any secret.
        assert_eq!(WebhookSecret::parse(&token.expose()).unwrap(), token);
        assert!(
            WebhookSecret::parse("too-short")
                .unwrap_err()
                .contains("16 to 64")
        );
    }

    #[test]
    fn refuses_malformed_and_short_secrets() {
        assert!(WebhookSecret::parse("whsec_not base64!").is_err());
        assert!(
            WebhookSecret::parse("whsec_c2hvcnQ=")
                .unwrap_err()
                .contains("16 to 64")
        );
    }
}
