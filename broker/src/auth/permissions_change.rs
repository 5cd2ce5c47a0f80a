//! A change to some of a user's permissions. The wire's `UpdateUser`
//! carries permissions whole, so the CLI and the HTTP proxy start from the
//! current ones and apply only what was given, the same way.

use depot_schemas::wire::Permissions;

/// `None` keeps what is there; given patterns replace the old ones (empty
/// patterns are dropped, so `''` clears a list).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PermissionsChange {
    pub produce: Option<Vec<String>>,
    pub consume: Option<Vec<String>>,
    pub create_stations: Option<bool>,
    pub admin: Option<bool>,
    pub notify: Option<bool>,
}

impl PermissionsChange {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `current` with this change applied.
    pub fn apply(self, current: Permissions) -> Permissions {
        Permissions {
            produce: self.produce.map(patterns).unwrap_or(current.produce),
            consume: self.consume.map(patterns).unwrap_or(current.consume),
            create_stations: self.create_stations.unwrap_or(current.create_stations),
            admin: self.admin.unwrap_or(current.admin),
            notify: self.notify.unwrap_or(current.notify),
        }
    }
}

/// Patterns as given, without empty ones.
pub fn patterns(given: Vec<String>) -> Vec<String> {
    given.into_iter().filter(|p| !p.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_is_given_changes() {
        let current = Permissions {
            produce: vec!["orders.*".into()],
            consume: vec!["orders.*".into()],
            notify: true,
            ..Default::default()
        };
        let change = PermissionsChange {
            consume: Some(vec![String::new()]),
            admin: Some(true),
            ..Default::default()
        };
        let changed = change.apply(current);
        assert_eq!(changed.produce, ["orders.*"]);
        assert!(changed.consume.is_empty(), "'' clears");
        assert!(changed.admin && changed.notify && !changed.create_stations);
        assert!(PermissionsChange::default().is_empty());
    }
}
