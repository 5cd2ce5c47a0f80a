//! Who is calling, and what they may do.
//!
//! Credentials are stored only as argon2 hashes. Until the user store
//! arrives with the HTTP proxy issue, the broker has one user, `root`, whose
//! password comes from `DEPOT_ROOT_PASSWORD` on first start (or is generated
//! and printed once).

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use rand::{Rng, distr::Alphanumeric};

use depot_schemas::storage::UserRecord;

use crate::{
    error::{BrokerError, BrokerResult},
    persist::Store,
};

pub const ROOT_USER: &str = "root";
/// Length of a generated root password (alphanumeric, ~143 bits).
const GENERATED_PASSWORD_CHARS: usize = 24;

/// An authenticated caller and its rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub username: String,
    pub may_create_stations: bool,
    pub may_administer: bool,
}

impl Principal {
    pub fn root() -> Self {
        Self {
            username: ROOT_USER.to_owned(),
            may_create_stations: true,
            may_administer: true,
        }
    }

    pub fn require_admin(&self) -> BrokerResult<()> {
        if self.may_administer {
            Ok(())
        } else {
            Err(BrokerError::PermissionDenied {
                reason: format!("user '{}' may not administer stations", self.username),
            })
        }
    }
}

/// Creates `root` on first start. Returns the password when it was generated,
/// so the caller can show it once.
pub fn ensure_root(store: &Store, configured: Option<&str>) -> BrokerResult<Option<String>> {
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
        password_hash: hash_secret(&password)?,
    })?;
    store.db().flush()?;
    Ok(generated.then_some(password))
}

/// Checks a username and password against the store. CPU-heavy by design
/// (argon2): call it off the async threads.
pub fn authenticate(store: &Store, username: &str, password: &str) -> BrokerResult<Principal> {
    let user = store.user(username)?.ok_or(BrokerError::BadCredentials)?;
    let hash = PasswordHash::new(&user.password_hash).map_err(|_| BrokerError::BadCredentials)?;
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .map_err(|_| BrokerError::BadCredentials)?;
    match username {
        ROOT_USER => Ok(Principal::root()),
        _ => Err(BrokerError::BadCredentials),
    }
}

fn hash_secret(secret: &str) -> BrokerResult<String> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| BrokerError::bad_request(format!("cannot encode salt: {e}")))?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| BrokerError::bad_request(format!("cannot hash secret: {e}")))
}
