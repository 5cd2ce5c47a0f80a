//! Access and refresh tokens: HS256 JWTs signed with the deployment's key,
//! which every proxy takes from the broker, so a token issued by one proxy is
//! good on all of them and no secret is copied by hand.
//!
//! Claims carry the user (`sub`), the token type (`typ`: access or refresh),
//! issue and expiry times, and an id (`jti`); never a secret. Verification
//! pins the algorithm (HS256 only, so `alg: none` and algorithm confusion are
//! refused), checks the signature and the expiry with no leeway, and checks
//! the type, so a refresh token is no access token and the other way round.
//! Refresh tokens are single-use: the broker records each one's `jti` as it
//! is used.
//!
//! Verified tokens are remembered (a bounded cache keyed by the whole token,
//! `--verified-token-cache`): checking the signature and decoding the claims
//! was a tenth of the proxy's CPU per produce, and the same token comes back
//! on every request. Only the exact bytes of a token that passed every check
//! hit the cache, so a hit needs no new signature check; its expiry is
//! checked on every hit, and a token at its last second takes the full
//! check again.

use std::{sync::Arc, time::Duration};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use parking_lot::RwLock;
use quick_cache::sync::Cache;
use serde::{Deserialize, Serialize};

use depot_broker::clock::now_ms;
use depot_schemas::wire::ConsumeToken;

use crate::{broker_link::SharedLink, error::ProxyError};

/// Names the signing key in token headers.
const KEY_ID: &str = "k1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub typ: TokenType,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    /// The issue time in milliseconds (`iat` is whole seconds), so a
    /// session ended in the same second as a token was issued is told
    /// apart from one begun after. 0 (absent): `iat` alone.
    #[serde(default)]
    pub iat_ms: u64,
}

impl Claims {
    /// When the token expires, as an `Instant` (for timers).
    pub fn expires_at(&self) -> std::time::Instant {
        let left = self.exp.saturating_sub(now_seconds());
        std::time::Instant::now() + Duration::from_secs(left)
    }

    /// When the token was issued, in milliseconds.
    pub fn issued_at_ms(&self) -> u64 {
        match self.iat_ms {
            0 => self.iat.saturating_mul(1000),
            ms => ms,
        }
    }
}

/// A new access and refresh token pair, as `/auth/*` answers it (times in
/// milliseconds, as the seed's API has them).
#[derive(Debug, Serialize)]
pub struct TokenPair {
    pub jwt: String,
    pub expires_in: u64,
    pub jwt_refresh_token: String,
    pub refresh_token_expires_in: u64,
}

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Issues and checks tokens; the key is fetched from the broker once.
pub struct Tokens {
    link: SharedLink,
    keys: RwLock<Option<Arc<Keys>>>,
    /// HS256 only, expiry checked with no leeway, `exp` and `sub` required.
    validation: Validation,
    /// Tokens that passed [`Tokens::verify`], by their text; `None` when
    /// the cache is off (capacity 0).
    verified: Option<Cache<String, Arc<Claims>>>,
}

fn now_seconds() -> u64 {
    now_ms() / 1000
}

impl Tokens {
    /// Checks tokens against `link`'s key, remembering up to
    /// `verified_capacity` verified ones (0: none).
    pub fn new(link: SharedLink, verified_capacity: usize) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            link,
            keys: RwLock::new(None),
            validation,
            verified: (verified_capacity > 0).then(|| Cache::new(verified_capacity)),
        }
    }

    async fn keys(&self) -> Result<Arc<Keys>, ProxyError> {
        if let Some(keys) = self.keys.read().clone() {
            return Ok(keys);
        }
        let secret = self.link.signing_key().await?;
        let keys = Arc::new(Keys {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
        });
        *self.keys.write() = Some(keys.clone());
        Ok(keys)
    }

    /// A fresh pair for `username`.
    pub async fn issue(
        &self,
        username: &str,
        access_lifetime: Duration,
        refresh_lifetime: Duration,
    ) -> Result<TokenPair, ProxyError> {
        let keys = self.keys().await?;
        let sign = |typ, lifetime: Duration| {
            let iat_ms = now_ms();
            let iat = iat_ms / 1000;
            let claims = Claims {
                sub: username.to_owned(),
                typ,
                iat,
                exp: iat + lifetime.as_secs(),
                jti: uuid::Uuid::now_v7().to_string(),
                iat_ms,
            };
            let header = Header {
                kid: Some(KEY_ID.to_owned()),
                ..Header::new(Algorithm::HS256)
            };
            jsonwebtoken::encode(&header, &claims, &keys.encoding)
                .map_err(|e| ProxyError::Internal(format!("cannot sign a token: {e}")))
        };
        Ok(TokenPair {
            jwt: sign(TokenType::Access, access_lifetime)?,
            expires_in: access_lifetime.as_millis() as u64,
            jwt_refresh_token: sign(TokenType::Refresh, refresh_lifetime)?,
            refresh_token_expires_in: refresh_lifetime.as_millis() as u64,
        })
    }

    /// The claims of a valid token of the expected type, or 401.
    pub async fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, ProxyError> {
        let claims = match self.verified_before(token) {
            Some(claims) => claims,
            None => {
                let claims = Arc::new(self.decode(token).await?);
                if let Some(verified) = &self.verified {
                    verified.insert(token.to_owned(), claims.clone());
                }
                claims
            }
        };
        if claims.typ != expected {
            let what = match expected {
                TokenType::Access => "an access token is required, not a refresh token",
                TokenType::Refresh => "a refresh token is required, not an access token",
            };
            return Err(ProxyError::Unauthorized(what.to_owned()));
        }
        Ok(Claims::clone(&claims))
    }

    /// The claims of `token` if it passed [`Tokens::decode`] before and has
    /// a second or more to live (at its last second it is decoded again,
    /// so the expiry rule is the decoder's alone).
    fn verified_before(&self, token: &str) -> Option<Arc<Claims>> {
        let claims = self.verified.as_ref()?.get(token)?;
        (now_seconds() < claims.exp).then_some(claims)
    }

    /// Checks the signature, algorithm and expiry, and decodes the claims.
    async fn decode(&self, token: &str) -> Result<Claims, ProxyError> {
        let keys = self.keys().await?;
        jsonwebtoken::decode::<Claims>(token, &keys.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                ProxyError::Unauthorized(match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
                    ErrorKind::InvalidSignature => "the token's signature is invalid".to_owned(),
                    ErrorKind::InvalidAlgorithm => "the token must be signed with HS256".to_owned(),
                    _ => format!("the token is invalid: {e}"),
                })
            })
    }

    /// Verifies a refresh token and spends it: a second use is refused.
    pub async fn redeem_refresh(&self, token: &str) -> Result<Claims, ProxyError> {
        let claims = self.verify(token, TokenType::Refresh).await?;
        let first_use = self
            .link
            .consume_token(ConsumeToken {
                jti: claims.jti.clone(),
                expires_at_ms: claims.exp.saturating_mul(1000),
                username: claims.sub.clone(),
                issued_at_ms: claims.issued_at_ms(),
            })
            .await?;
        if !first_use {
            return Err(ProxyError::Unauthorized(
                "the refresh token was already used".to_owned(),
            ));
        }
        Ok(claims)
    }
}
