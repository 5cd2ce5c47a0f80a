//! `depot users ...`

use clap::{ArgAction, Args, Subcommand};

use depot_schemas::wire::{CreateUser, Permissions, UpdateUser};

use crate::{
    auth::permissions_change::{PermissionsChange, patterns},
    cli::{CliResult, Context, output},
};

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user with a password and/or a connection token.
    Create {
        name: String,
        #[command(flatten)]
        secrets: SecretArgs,
        /// Station glob the user may produce to (repeatable), e.g. 'orders.*'.
        #[arg(long)]
        produce: Vec<String>,
        /// Station glob the user may consume from (repeatable).
        #[arg(long)]
        consume: Vec<String>,
        /// May create stations (also by producing to a new one).
        #[arg(long)]
        create_stations: bool,
        /// May do everything, including managing users.
        #[arg(long)]
        admin: bool,
        /// May notify WebSocket connections of any user.
        #[arg(long)]
        notify: bool,
    },
    /// List users (never their secrets).
    List,
    /// Change a user: secrets, or permissions (given patterns replace the
    /// old ones; pass --produce '' to clear). A new password or connection
    /// token ends every session begun before it: its access and refresh
    /// tokens are refused and its WebSockets closed.
    Update {
        name: String,
        #[command(flatten)]
        secrets: SecretArgs,
        #[arg(long)]
        produce: Option<Vec<String>>,
        #[arg(long)]
        consume: Option<Vec<String>>,
        #[arg(long, action = ArgAction::Set)]
        create_stations: Option<bool>,
        #[arg(long, action = ArgAction::Set)]
        admin: Option<bool>,
        #[arg(long, action = ArgAction::Set)]
        notify: Option<bool>,
    },
    /// Delete a user.
    Delete { name: String },
    /// End every session of a user begun until now (its tokens are refused,
    /// its WebSockets closed, on every proxy); its secrets stay, so it can
    /// authenticate again.
    EndSessions { name: String },
}

#[derive(Debug, Args)]
pub struct SecretArgs {
    /// A password (for people).
    #[arg(long = "password", id = "user_password")]
    password: Option<String>,
    /// A connection token (for applications).
    #[arg(long = "connection-token", id = "user_connection_token")]
    connection_token: Option<String>,
}

pub async fn run(context: &Context, command: UsersCommand) -> CliResult {
    let client = &context.client;
    match command {
        UsersCommand::Create {
            name,
            secrets,
            produce,
            consume,
            create_stations,
            admin,
            notify,
        } => {
            let user = CreateUser {
                name,
                password: secrets.password.unwrap_or_default(),
                connection_token: secrets.connection_token.unwrap_or_default(),
                permissions: Some(Permissions {
                    produce: patterns(produce),
                    consume: patterns(consume),
                    create_stations,
                    admin,
                    notify,
                }),
            };
            let info = client.create_user(user).await?;
            output::user(context, &info);
        }
        UsersCommand::List => {
            let users = client.list_users().await?;
            output::user_list(context, &users);
        }
        UsersCommand::Update {
            name,
            secrets,
            produce,
            consume,
            create_stations,
            admin,
            notify,
        } => {
            let change = PermissionsChange {
                produce,
                consume,
                create_stations,
                admin,
                notify,
            };
            // Permissions travel whole: start from the current ones.
            let permissions = if change.is_empty() {
                None
            } else {
                let current = client
                    .list_users()
                    .await?
                    .into_iter()
                    .find(|u| u.name == name)
                    .ok_or_else(|| format!("user '{name}' does not exist"))?
                    .permissions
                    .unwrap_or_default();
                Some(change.apply(current))
            };
            let change = UpdateUser {
                name,
                password: secrets.password,
                connection_token: secrets.connection_token,
                permissions,
            };
            let info = client.update_user(change).await?;
            output::user(context, &info);
        }
        UsersCommand::Delete { name } => {
            client.delete_user(&name).await?;
            output::done(context, &format!("deleted user {name}"));
        }
        UsersCommand::EndSessions { name } => {
            client.end_sessions(&name).await?;
            output::done(context, &format!("ended every session of {name}"));
        }
    }
    Ok(())
}
