//! Authentication and the user store, as operations of the core. Only
//! administrators manage users; answers never include a secret or its hash.

use std::sync::Arc;

use depot_schemas::storage::UserRecord;

use crate::{
    auth::{
        self, Principal, ROOT_USER, Secret,
        users::{NewUser, UserChange, require_a_secret, validate_name},
    },
    broker::Broker,
    clock::now_ms,
    error::{BrokerError, BrokerResult},
};

/// A refresh token being spent: whose it is, its id, and its times.
#[derive(Debug, Clone)]
pub struct SpentToken {
    pub username: String,
    pub jti: String,
    pub issued_at_ms: u64,
    pub expires_at_ms: u64,
}

/// A user as administrators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub name: String,
    pub produce: Vec<String>,
    pub consume: Vec<String>,
    pub create_stations: bool,
    pub admin: bool,
    pub notify: bool,
    pub has_password: bool,
    pub has_connection_token: bool,
    pub created_at_ms: u64,
}

impl From<&UserRecord> for UserSummary {
    fn from(user: &UserRecord) -> Self {
        Self {
            name: user.name.clone(),
            produce: user.produce.clone(),
            consume: user.consume.clone(),
            create_stations: user.create_stations,
            admin: user.admin,
            notify: user.notify,
            has_password: !user.password_hash.is_empty(),
            has_connection_token: !user.connection_token_hash.is_empty(),
            created_at_ms: user.created_at_ms,
        }
    }
}

impl Broker {
    /// Checks credentials on the password thread (argon2 is slow on purpose).
    pub async fn authenticate(&self, username: &str, secret: Secret) -> BrokerResult<Principal> {
        auth::authenticate(&self.inner.store, &self.inner.passwords, username, secret).await
    }

    /// The principal to act as: `who` itself, or, when an administrator (the
    /// HTTP proxy's connection) names another user, that user.
    pub fn acting_as(
        &self,
        who: &Arc<Principal>,
        on_behalf_of: &str,
    ) -> BrokerResult<Arc<Principal>> {
        if on_behalf_of.is_empty() || on_behalf_of == who.username {
            return Ok(who.clone());
        }
        who.require_admin()?;
        self.principal(on_behalf_of)
    }

    /// The current principal of `username` for a session (an HTTP token)
    /// begun at `session_issued_at_ms`: refused as revoked when the user's
    /// sessions were ended since (a new password or connection token, a
    /// logout), at once, not when their tokens expire.
    pub fn session_principal(
        &self,
        username: &str,
        session_issued_at_ms: u64,
    ) -> BrokerResult<Arc<Principal>> {
        let principal = self.principal(username)?;
        principal.require_session(session_issued_at_ms)?;
        Ok(principal)
    }

    /// A user's current principal, for callers that authenticated it
    /// themselves (the embedded HTTP proxy checks its tokens). Cached until
    /// the user changes.
    pub fn principal(&self, username: &str) -> BrokerResult<Arc<Principal>> {
        if let Some(principal) = self.inner.principals.read().get(username) {
            return Ok(principal.clone());
        }
        let user =
            self.inner
                .store
                .user(username)?
                .ok_or_else(|| BrokerError::PermissionDenied {
                    reason: format!("user '{username}' does not exist"),
                })?;
        let principal = Arc::new(Principal::from_record(&user)?);
        self.inner
            .principals
            .write()
            .insert(username.to_owned(), principal.clone());
        Ok(principal)
    }

    /// The key that signs the HTTP proxies' tokens (administrators only).
    pub fn signing_key(&self, who: &Principal) -> BrokerResult<Vec<u8>> {
        who.require_admin()?;
        self.inner.store.signing_key()
    }

    /// Marks a single-use token of `username` as used; false if it was used
    /// before, an error if the user no longer exists (administrators only). Durable before it answers, so a refresh token
    /// cannot be used twice across a crash either.
    pub async fn consume_token(&self, who: &Principal, token: &SpentToken) -> BrokerResult<bool> {
        who.require_admin()?;
        if token.jti.is_empty() {
            return Err(BrokerError::bad_request("a token id is required"));
        }
        // A deleted user's tokens die with it, and so do those issued
        // before its sessions were ended (a new secret, a logout).
        if self.inner.store.user(&token.username)?.is_none() {
            return Err(BrokerError::BadCredentials);
        }
        self.session_principal(&token.username, token.issued_at_ms)?;
        let first_use = self
            .inner
            .store
            .consume_token(&token.jti, token.expires_at_ms)?;
        self.inner.group_commit.commit_metadata().await?;
        Ok(first_use)
    }

    pub async fn create_user(&self, who: &Principal, new: NewUser) -> BrokerResult<UserSummary> {
        who.require_admin()?;
        validate_name(&new.name)?;
        // Validate the patterns before anything is hashed or stored.
        auth::Permissions::compile(&new.produce, &new.consume, new.create_stations, new.admin)?;
        if self.inner.store.user(&new.name)?.is_some() {
            return Err(BrokerError::bad_request(format!(
                "user '{}' already exists",
                new.name
            )));
        }
        let user = UserRecord {
            name: new.name,
            password_hash: self.hash_optional(new.password).await?,
            connection_token_hash: self.hash_optional(new.connection_token).await?,
            produce: new.produce,
            consume: new.consume,
            create_stations: new.create_stations,
            admin: new.admin,
            notify: new.notify,
            created_at_ms: now_ms(),
            sessions_ended_at_ms: 0,
        };
        require_a_secret(&user)?;
        self.save_user(&user).await?;
        Ok(UserSummary::from(&user))
    }

    pub async fn update_user(
        &self,
        who: &Principal,
        name: &str,
        change: UserChange,
    ) -> BrokerResult<UserSummary> {
        who.require_admin()?;
        let mut user = self.stored_user(name)?;
        if name == ROOT_USER && change.admin == Some(false) {
            return Err(BrokerError::bad_request("root stays an administrator"));
        }
        let credentials_changed = change.password.is_some() || change.connection_token.is_some();
        if credentials_changed {
            user.sessions_ended_at_ms = now_ms();
        }
        if let Some(password) = change.password {
            user.password_hash = self.hash_optional(Some(password)).await?;
        }
        if let Some(token) = change.connection_token {
            user.connection_token_hash = self.hash_optional(Some(token)).await?;
        }
        if let Some(produce) = change.produce {
            user.produce = produce;
        }
        if let Some(consume) = change.consume {
            user.consume = consume;
        }
        if let Some(create_stations) = change.create_stations {
            user.create_stations = create_stations;
        }
        if let Some(admin) = change.admin {
            user.admin = admin;
        }
        if let Some(notify) = change.notify {
            user.notify = notify;
        }
        auth::Permissions::compile(
            &user.produce,
            &user.consume,
            user.create_stations,
            user.admin,
        )?;
        require_a_secret(&user)?;
        self.save_user(&user).await?;
        if credentials_changed {
            // Its WebSockets opened with the old credentials close too.
            self.close_ended_sockets(&user);
        }
        Ok(UserSummary::from(&user))
    }

    /// Ends every session of `name` begun until now (its tokens and
    /// WebSockets); its secrets stay. A user may end its own sessions, an
    /// administrator anyone's.
    pub async fn end_sessions(&self, who: &Principal, name: &str) -> BrokerResult<()> {
        if who.username != name {
            who.require_admin()?;
        }
        let mut user = self.stored_user(name)?;
        user.sessions_ended_at_ms = now_ms();
        self.save_user(&user).await?;
        self.close_ended_sockets(&user);
        Ok(())
    }

    pub async fn delete_user(&self, who: &Principal, name: &str) -> BrokerResult<()> {
        who.require_admin()?;
        if name == ROOT_USER {
            return Err(BrokerError::bad_request("root cannot be deleted"));
        }
        if !self.inner.store.remove_user(name)? {
            return Err(no_such_user(name));
        }
        self.inner.principals.write().remove(name);
        self.inner.group_commit.commit_metadata().await?;
        // Its WebSockets close: every session of a deleted user is over.
        self.inner.connections.end_sessions(name, u64::MAX);
        Ok(())
    }

    pub fn list_users(&self, who: &Principal) -> BrokerResult<Vec<UserSummary>> {
        who.require_admin()?;
        Ok(self
            .inner
            .store
            .users()?
            .iter()
            .map(UserSummary::from)
            .collect())
    }

    async fn hash_optional(&self, secret: Option<String>) -> BrokerResult<String> {
        match secret {
            Some(secret) if !secret.is_empty() => self.inner.passwords.hash(secret).await,
            _ => Ok(String::new()),
        }
    }

    fn stored_user(&self, name: &str) -> BrokerResult<UserRecord> {
        self.inner
            .store
            .user(name)?
            .ok_or_else(|| no_such_user(name))
    }

    /// Asks every proxy to close `user`'s WebSockets begun before its
    /// sessions were ended (called once the record saying so is durable).
    fn close_ended_sockets(&self, user: &UserRecord) {
        self.inner
            .connections
            .end_sessions(&user.name, user.sessions_ended_at_ms);
    }

    async fn save_user(&self, user: &UserRecord) -> BrokerResult<()> {
        self.inner.store.put_user(user)?;
        self.inner.principals.write().remove(&user.name);
        self.inner.group_commit.commit_metadata().await
    }
}

fn no_such_user(name: &str) -> BrokerError {
    BrokerError::bad_request(format!("user '{name}' does not exist"))
}
