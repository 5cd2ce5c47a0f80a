//! `depot connections list` and `depot notify`: the live WebSocket
//! connections, on every proxy, and pushing data to them.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use depot_schemas::wire::notify::Target;

use crate::cli::{
    CliResult, Context,
    output::{self, time},
};

#[derive(Debug, clap::Subcommand)]
pub enum ConnectionsCommand {
    /// Live connections (and which proxy holds each).
    List {
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct NotifyArgs {
    /// Every live connection of this user.
    #[arg(
        long,
        conflicts_with = "connection",
        required_unless_present = "connection"
    )]
    user: Option<String>,
    /// This one connection.
    #[arg(long)]
    connection: Option<String>,
    /// What to send: JSON (anything else is sent as a JSON string).
    data: String,
}

pub async fn run(context: &Context, command: ConnectionsCommand) -> CliResult {
    let ConnectionsCommand::List { user } = command;
    let all = context
        .client
        .list_connections(&user.unwrap_or_default())
        .await?;
    if context.json {
        let rows: Vec<Value> = all
            .iter()
            .map(|c| {
                json!({
                    "connection": c.connection, "user": c.user, "proxy": c.proxy,
                    "connected_at": time(c.connected_at_ms),
                })
            })
            .collect();
        outln!("{}", Value::Array(rows));
        return Ok(());
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec!["connection", "user", "proxy", "connected at"]);
    for c in &all {
        table.add_row(vec![
            c.connection.clone(),
            c.user.clone(),
            c.proxy.clone(),
            time(c.connected_at_ms),
        ]);
    }
    outln!("{table}");
    Ok(())
}

pub async fn notify(context: &Context, args: NotifyArgs) -> CliResult {
    let data = match serde_json::from_str::<Value>(&args.data) {
        Ok(_) => args.data.into_bytes(),
        Err(_) => Value::String(args.data).to_string().into_bytes(),
    };
    let target = match (args.user, args.connection) {
        (Some(user), _) => Target::User(user),
        (None, Some(connection)) => Target::Connection(connection),
        (None, None) => return Err("name --user or --connection".into()),
    };
    let delivered = context.client.notify(target, data).await?;
    output::done(context, &format!("delivered to {delivered} connection(s)"));
    Ok(())
}
