//! `depot stations ...`

use clap::{Args, Subcommand};

use depot_schemas::wire::{self, StationSettings};

use crate::{
    cli::{CliResult, Context, output},
    config::{parse_bytes, parse_duration},
};

#[derive(Debug, Subcommand)]
pub enum StationsCommand {
    /// Create a station.
    Create {
        name: String,
        /// Free text for people (at most 1,000 characters).
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// List every station with its counters.
    List,
    /// Show one station's settings and counters.
    Info { name: String },
    /// Change a station's settings (only the ones given).
    Update {
        name: String,
        /// Replace the description ("" clears it).
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Delete a station and all its messages.
    Delete { name: String },
    /// Remove a station's stored messages (all, or those below --before);
    /// the station, its settings, offsets, consumers and subscriptions stay.
    Purge {
        name: String,
        /// Remove only the messages below this offset.
        #[arg(long)]
        before: Option<u64>,
    },
    /// Validate the station's new messages against a schema.
    AttachSchema {
        station: String,
        schema: String,
        /// Pin this version (default: follow the schema's active version).
        #[arg(long)]
        version: Option<u32>,
    },
    /// Stop validating the station's messages.
    DetachSchema { station: String },
}

#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// Remove messages older than this (e.g. 7d, 12h; 0 = keep forever).
    #[arg(long, value_parser = parse_duration)]
    retention_age: Option<std::time::Duration>,
    /// Keep at most this many messages (0 = no limit).
    #[arg(long)]
    retention_messages: Option<u64>,
    /// Keep at most this many payload bytes (e.g. 1GiB; 0 = no limit).
    #[arg(long, value_parser = parse_bytes)]
    retention_bytes: Option<u64>,
    /// A repeated msg-id within this window is a duplicate (e.g. 2m).
    #[arg(long, value_parser = parse_duration)]
    idempotency_window: Option<std::time::Duration>,
    /// Largest accepted payload (e.g. 1MiB).
    #[arg(long, value_parser = parse_bytes)]
    max_message_size: Option<u64>,
    /// Keep messages refused by the station's schema this long (e.g. 3d; 0 =
    /// forever).
    #[arg(long, value_parser = parse_duration)]
    dead_letter_retention: Option<std::time::Duration>,
    /// Keep messages refused by the station's schema (true, the default) or
    /// drop them (false).
    #[arg(long)]
    keep_dead_letters: Option<bool>,
    /// A notification station (true): messages with a `user` or
    /// `connection` header are pushed to those WebSocket connections.
    #[arg(long)]
    notify_connections: Option<bool>,
}

impl SettingsArgs {
    fn to_wire(&self) -> StationSettings {
        StationSettings {
            retention_age_ms: self.retention_age.map(|d| d.as_millis() as u64),
            retention_messages: self.retention_messages,
            retention_bytes: self.retention_bytes,
            idempotency_window_ms: self.idempotency_window.map(|d| d.as_millis() as u64),
            max_message_bytes: self.max_message_size,
            dead_letter_retention_ms: self.dead_letter_retention.map(|d| d.as_millis() as u64),
            keep_dead_letters: self.keep_dead_letters,
            notify_connections: self.notify_connections,
        }
    }
}

pub async fn run(context: &Context, command: StationsCommand) -> CliResult {
    let client = &context.client;
    match command {
        StationsCommand::Create {
            name,
            description,
            settings,
        } => {
            let create = wire::CreateStation {
                name,
                settings: Some(settings.to_wire()),
                description,
            };
            let info = client.create_station_with(create).await?;
            output::station(context, &info);
        }
        StationsCommand::List => {
            let stations = client.list_stations().await?;
            output::station_list(context, &stations);
        }
        StationsCommand::Info { name } => {
            let info = client.describe_station(&name).await?;
            output::station(context, &info);
        }
        StationsCommand::Update {
            name,
            description,
            settings,
        } => {
            let update = wire::UpdateStation {
                name,
                settings: Some(settings.to_wire()),
                description,
            };
            let info = client.update_station_with(update).await?;
            output::station(context, &info);
        }
        StationsCommand::Delete { name } => {
            client.delete_station(&name).await?;
            output::done(context, &format!("deleted station {name}"));
        }
        StationsCommand::Purge { name, before } => {
            let purged = client.purge_station(&name, before).await?;
            output::purged(context, &name, &purged);
        }
        StationsCommand::AttachSchema {
            station,
            schema,
            version,
        } => {
            client
                .attach_schema(&station, &schema, version.unwrap_or(0))
                .await?;
            let which = version.map_or("its active version".to_owned(), |v| format!("version {v}"));
            output::done(
                context,
                &format!("station {station} validates against schema {schema}, {which}"),
            );
        }
        StationsCommand::DetachSchema { station } => {
            client.detach_schema(&station).await?;
            output::done(context, &format!("station {station} validates nothing"));
        }
    }
    Ok(())
}
