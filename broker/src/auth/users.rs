//! The user store's rules: names, secrets, and what is stored. Secrets are
//! hashed on the password thread before they reach sled; nothing here ever
//! returns a secret or a hash to a caller.

use depot_schemas::storage::UserRecord;

use crate::error::{BrokerError, BrokerResult};

/// Longest user name, in bytes.
const MAX_USER_NAME_BYTES: usize = 64;
/// The rule user names follow, quoted in errors.
pub const USER_NAME_RULE: &str = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$";

/// A new user as an administrator describes it.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub name: String,
    pub password: Option<String>,
    pub connection_token: Option<String>,
    pub produce: Vec<String>,
    pub consume: Vec<String>,
    pub create_stations: bool,
    pub admin: bool,
    pub notify: bool,
}

/// A change to a user: `None` keeps the value; `Some("")` removes a secret.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub password: Option<String>,
    pub connection_token: Option<String>,
    pub produce: Option<Vec<String>>,
    pub consume: Option<Vec<String>>,
    pub create_stations: Option<bool>,
    pub admin: Option<bool>,
    pub notify: Option<bool>,
}

pub fn validate_name(name: &str) -> BrokerResult<()> {
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= MAX_USER_NAME_BYTES
        && bytes[0].is_ascii_alphanumeric()
        && bytes[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'@' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(BrokerError::bad_request(format!(
            "invalid user name '{name}': a user name must match {USER_NAME_RULE}"
        )))
    }
}

/// A user must keep at least one way to authenticate.
pub fn require_a_secret(user: &UserRecord) -> BrokerResult<()> {
    if user.password_hash.is_empty() && user.connection_token_hash.is_empty() {
        return Err(BrokerError::bad_request(format!(
            "user '{}' needs a password or a connection token",
            user.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        for good in ["root", "svc.orders", "ana@example.com", "a-b_c"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
