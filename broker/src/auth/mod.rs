//! Who is calling, and what they may do.
//!
//! Credentials are stored only as argon2 hashes. Until the user store
//! arrives with the HTTP proxy issue, the broker has one user, `root`, whose
//! password comes from `DEPOT_ROOT_PASSWORD` on first start (or is generated
//! and printed once).

mod password;

pub use password::PasswordHasher;

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
pub fn ensure_root(
    store: &Store,
    hasher: &PasswordHasher,
    configured: Option<&str>,
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
    })?;
    store.db().flush()?;
    Ok(generated.then_some(password))
}

/// Checks a username and password against the store, on the password
/// thread. Unknown users and wrong passwords are indistinguishable, in the
/// answer and in the time it takes.
pub async fn authenticate(
    store: &Store,
    hasher: &PasswordHasher,
    username: &str,
    password: &str,
) -> BrokerResult<Principal> {
    let stored = store.user(username)?.map(|user| user.password_hash);
    if !hasher.verify(password.to_owned(), stored).await? {
        return Err(BrokerError::BadCredentials);
    }
    match username {
        ROOT_USER => Ok(Principal::root()),
        _ => Err(BrokerError::BadCredentials),
    }
}
