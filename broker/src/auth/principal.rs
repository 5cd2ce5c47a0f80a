//! [`Principal`]: an authenticated user and what it may do, checked on every
//! request. Station patterns are globs (`orders.*`, `*`); an administrator
//! may do everything.

use glob::Pattern;

use depot_schemas::storage::UserRecord;

use crate::{
    error::{BrokerError, BrokerResult},
    station::StationName,
};

/// Compiled permissions of one user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Permissions {
    pub produce: Vec<Pattern>,
    pub consume: Vec<Pattern>,
    pub create_stations: bool,
    pub admin: bool,
    /// May notify WebSocket connections.
    pub notify: bool,
}

impl Permissions {
    /// Everything (root's).
    pub fn all() -> Self {
        let any = Pattern::new("*").expect("valid glob");
        Self {
            produce: vec![any.clone()],
            consume: vec![any],
            create_stations: true,
            admin: true,
            notify: true,
        }
    }

    /// Compiles patterns, refusing invalid globs with the glob's own message.
    pub fn compile(
        produce: &[String],
        consume: &[String],
        create_stations: bool,
        admin: bool,
    ) -> BrokerResult<Self> {
        let compile = |patterns: &[String]| -> BrokerResult<Vec<Pattern>> {
            patterns
                .iter()
                .map(|p| {
                    Pattern::new(p).map_err(|e| {
                        BrokerError::bad_request(format!("invalid station pattern '{p}': {e}"))
                    })
                })
                .collect()
        };
        Ok(Self {
            produce: compile(produce)?,
            consume: compile(consume)?,
            create_stations,
            admin,
            notify: false,
        })
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub username: String,
    pub permissions: Permissions,
    /// Sessions (tokens) begun before this time (ms) are over: the user's
    /// password or connection token changed then, or its sessions were
    /// ended; 0: never since creation.
    pub sessions_ended_at_ms: u64,
}

impl Principal {
    pub fn from_record(user: &UserRecord) -> BrokerResult<Self> {
        Ok(Self {
            username: user.name.clone(),
            permissions: Permissions {
                notify: user.notify,
                ..Permissions::compile(
                    &user.produce,
                    &user.consume,
                    user.create_stations,
                    user.admin,
                )?
            },
            sessions_ended_at_ms: user.sessions_ended_at_ms,
        })
    }

    /// Refuses a session (a token) issued at `issued_at_ms` before the
    /// user's sessions were last ended, so a new password (or a logout
    /// everywhere) ends every session opened before it.
    pub fn require_session(&self, issued_at_ms: u64) -> BrokerResult<()> {
        if session_is_over(issued_at_ms, self.sessions_ended_at_ms) {
            return Err(BrokerError::TokenRevoked);
        }
        Ok(())
    }

    pub fn is_admin(&self) -> bool {
        self.permissions.admin
    }

    pub fn may_create_stations(&self) -> bool {
        self.permissions.admin || self.permissions.create_stations
    }

    pub fn require_admin(&self) -> BrokerResult<()> {
        self.require(self.is_admin(), "administer Depot".into())
    }

    pub fn require_notify(&self) -> BrokerResult<()> {
        let allowed = self.is_admin() || self.permissions.notify;
        self.require(allowed, "notify WebSocket connections".into())
    }

    pub fn require_create_stations(&self) -> BrokerResult<()> {
        self.require(self.may_create_stations(), "create stations".into())
    }

    pub fn require_produce(&self, station: &StationName) -> BrokerResult<()> {
        let allowed = self.is_admin() || matches(&self.permissions.produce, station);
        self.require(allowed, format!("produce to station '{station}'"))
    }

    pub fn require_consume(&self, station: &StationName) -> BrokerResult<()> {
        let allowed = self.is_admin() || matches(&self.permissions.consume, station);
        self.require(allowed, format!("consume from station '{station}'"))
    }

    fn require(&self, allowed: bool, what: String) -> BrokerResult<()> {
        if allowed {
            Ok(())
        } else {
            Err(BrokerError::PermissionDenied {
                reason: format!("user '{}' may not {what}", self.username),
            })
        }
    }
}

/// Whether a session (a token) issued at `issued_at_ms` is over when its
/// user's sessions begun before `ended_before_ms` were ended. Both times are
/// milliseconds of two clocks (the proxy's that issued the token, the
/// broker's that ended the sessions), so the hosts' clocks must agree, as
/// they must for token expiry.
pub fn session_is_over(issued_at_ms: u64, ended_before_ms: u64) -> bool {
    issued_at_ms < ended_before_ms
}

fn matches(patterns: &[Pattern], station: &StationName) -> bool {
    patterns.iter().any(|p| p.matches(station.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(produce: &[&str]) -> Principal {
        let produce: Vec<String> = produce.iter().map(|s| s.to_string()).collect();
        Principal {
            username: "u".into(),
            permissions: Permissions::compile(&produce, &[], false, false).unwrap(),
            sessions_ended_at_ms: 0,
        }
    }

    #[test]
    fn sessions_from_before_their_end_are_refused() {
        let changed = Principal {
            sessions_ended_at_ms: 5_500,
            ..user(&[])
        };
        assert!(matches!(
            changed.require_session(5_499),
            Err(BrokerError::TokenRevoked)
        ));
        assert!(changed.require_session(5_500).is_ok());
        assert!(changed.require_session(6_000).is_ok());
        assert!(user(&[]).require_session(0).is_ok(), "never changed");
    }

    #[test]
    fn globs_decide_per_station() {
        let orders = user(&["orders.*"]);
        assert!(
            orders
                .require_produce(&StationName::parse("orders.eu").unwrap())
                .is_ok()
        );
        let denied = orders.require_produce(&StationName::parse("payments").unwrap());
        assert_eq!(
            denied.unwrap_err().to_string(),
            "permission denied: user 'u' may not produce to station 'payments'"
        );
        assert!(
            orders
                .require_consume(&StationName::parse("orders.eu").unwrap())
                .is_err()
        );
        assert!(orders.require_admin().is_err());
    }

    #[test]
    fn invalid_globs_are_refused() {
        let error = Permissions::compile(&["[".into()], &[], false, false).unwrap_err();
        assert!(
            error.to_string().contains("invalid station pattern '['"),
            "{error}"
        );
    }
}
