//! Who is calling, and what they may do.
//!
//! - [`principal`]: an authenticated user and its permissions.
//! - [`users`]: the user store's rules.
//! - [`password`]: argon2id hashing on its own thread.
//! - [`permissions_change`]: changing some of a user's permissions.
//!
//! Users are stored in the broker (sled tree `users`), secrets only as argon2
//! hashes. `root` has every right; its password comes from
//! `DEPOT_ROOT_PASSWORD` on first start (or is generated and printed once).

mod password;
pub mod permissions_change;
pub mod principal;
pub mod users;

pub use password::{PasswordHasher, RELEASE_AFTER as PASSWORD_WORK_AREA_RELEASE_AFTER};
pub use principal::{Permissions, Principal, session_is_over};

use rand::{Rng, distr::Alphanumeric};

use depot_schemas::storage::UserRecord;

use crate::{
    error::{BrokerError, BrokerResult},
    persist::Store,
};

pub const ROOT_USER: &str = "root";
/// Length of a generated root password (alphanumeric, ~143 bits).
const GENERATED_PASSWORD_CHARS: usize = 24;

/// Creates `root` on first start, with the configured password (or a
/// generated one) and optionally a connection token. Returns the password
/// when it was generated, so the caller can show it once.
pub fn ensure_root(
    store: &Store,
    hasher: &PasswordHasher,
    configured: Option<&str>,
    connection_token: Option<&str>,
) -> BrokerResult<Option<String>> {
    if store.user(ROOT_USER)?.is_some() {
        return Ok(None);
    }
    let (password, generated) = match configured {
        Some(password) if !password.is_empty() => (password.to_owned(), false),
        _ => {
            let password: String = rand::rng()
                .sample_iter(Alphanumeric)
                .take(GENERATED_PASSWORD_CHARS)
                .map(char::from)
                .collect();
            (password, true)
        }
    };
    store.put_user(&UserRecord {
        name: ROOT_USER.to_owned(),
        password_hash: hasher.hash_blocking(password.clone())?,
        connection_token_hash: match connection_token {
            Some(token) if !token.is_empty() => hasher.hash_blocking(token.to_owned())?,
            _ => String::new(),
        },
        produce: vec!["*".into()],
        consume: vec!["*".into()],
        create_stations: true,
        admin: true,
        notify: true,
        created_at_ms: crate::clock::now_ms(),
        sessions_ended_at_ms: 0,
    })?;
    store.db().flush()?;
    Ok(generated.then_some(password))
}

/// A secret presented at login.
#[derive(Debug, Clone)]
pub enum Secret {
    Password(String),
    ConnectionToken(String),
}

/// Checks a user's secret against the store, on the password thread.
/// Unknown users, missing secrets and wrong ones are indistinguishable, in
/// the answer and in the time it takes.
pub async fn authenticate(
    store: &Store,
    hasher: &PasswordHasher,
    username: &str,
    secret: Secret,
) -> BrokerResult<Principal> {
    let user = store.user(username)?;
    let (presented, stored) = match secret {
        Secret::Password(p) => (p, user.as_ref().map(|u| u.password_hash.clone())),
        Secret::ConnectionToken(t) => (t, user.as_ref().map(|u| u.connection_token_hash.clone())),
    };
    let stored = stored.filter(|hash| !hash.is_empty());
    if !hasher.verify(presented, stored).await? {
        return Err(BrokerError::BadCredentials);
    }
    let user = user.ok_or(BrokerError::BadCredentials)?;
    Principal::from_record(&user)
}
