//! `depot schemas ...` and the schema subcommands of `depot stations`.

use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::{Value, json};

use depot_schemas::wire::{self, SchemaInfo};

use crate::cli::{
    CliResult, Context,
    output::{self, time},
};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaKind {
    /// JSON Schema (draft 4, 6, 7, 2019-09 or 2020-12).
    Json,
    /// Protobuf: .proto files and a message type.
    Protobuf,
}

#[derive(Debug, Subcommand)]
pub enum SchemasCommand {
    /// Create a schema (version 1) from files. Protobuf files import each
    /// other by the paths given here, as protoc does with `-I .`.
    Create {
        name: String,
        #[arg(long = "type", value_enum)]
        kind: SchemaKind,
        /// A JSON Schema file, or every .proto file of the schema.
        #[arg(long = "file", required = true)]
        files: Vec<PathBuf>,
        /// Protobuf: the fully qualified message type (e.g. shop.v1.Order).
        #[arg(long)]
        message: Option<String>,
    },
    /// Add a version, which becomes the active one.
    Update {
        name: String,
        #[arg(long = "file", required = true)]
        files: Vec<PathBuf>,
        /// Protobuf: the message type (default: the previous version's).
        #[arg(long)]
        message: Option<String>,
    },
    /// List schemas.
    List,
    /// Show a schema's versions and the stations that use it.
    Info {
        name: String,
        /// Also print the active version's source.
        #[arg(long)]
        source: bool,
    },
    /// Make an earlier version the active one again.
    Rollback {
        name: String,
        #[arg(long)]
        version: u32,
    },
    /// Delete a schema (refused while a station uses it).
    Delete { name: String },
}

pub async fn run(context: &Context, command: SchemasCommand) -> CliResult {
    let client = &context.client;
    match command {
        SchemasCommand::Create {
            name,
            kind,
            files,
            message,
        } => {
            let kind = match kind {
                SchemaKind::Json => wire::SchemaType::Json,
                SchemaKind::Protobuf => wire::SchemaType::Protobuf,
            };
            let create = wire::CreateSchema {
                name,
                r#type: kind as i32,
                files: read_files(&files)?,
                message_type: message.unwrap_or_default(),
            };
            let info = client.create_schema(create).await?;
            schema(context, &info, false);
        }
        SchemasCommand::Update {
            name,
            files,
            message,
        } => {
            let update = wire::UpdateSchema {
                name,
                files: read_files(&files)?,
                message_type: message.unwrap_or_default(),
            };
            let info = client.update_schema(update).await?;
            schema(context, &info, false);
        }
        SchemasCommand::List => schema_list(context, &client.list_schemas().await?),
        SchemasCommand::Info { name, source } => {
            let info = client.describe_schema(&name).await?;
            schema(context, &info, source);
        }
        SchemasCommand::Rollback { name, version } => {
            let info = client.rollback_schema(&name, version).await?;
            schema(context, &info, false);
        }
        SchemasCommand::Delete { name } => {
            client.delete_schema(&name).await?;
            output::done(context, &format!("deleted schema {name}"));
        }
    }
    Ok(())
}

/// Reads schema files, named by their path as given (without `./`).
fn read_files(paths: &[PathBuf]) -> Result<Vec<wire::SchemaFile>, String> {
    paths
        .iter()
        .map(|path| {
            let content = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let name = path.strip_prefix("./").unwrap_or(path);
            Ok(wire::SchemaFile {
                name: file_name(name),
                content,
            })
        })
        .collect()
}

/// Forward slashes whatever the platform: imports use them.
fn file_name(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn kind_name(info: &SchemaInfo) -> &'static str {
    match info.r#type() {
        wire::SchemaType::Json => "json",
        wire::SchemaType::Protobuf => "protobuf",
        wire::SchemaType::Unspecified => "?",
    }
}

fn schema_json(info: &SchemaInfo) -> Value {
    json!({
        "name": info.name,
        "type": kind_name(info),
        "active_version": info.active_version,
        "created_at": time(info.created_at_ms),
        "stations": info.stations,
        "versions": info.versions.iter().map(|v| json!({
            "version": v.version,
            "created_at": time(v.created_at_ms),
            "created_by": v.created_by,
            "message_type": (!v.message_type.is_empty()).then_some(&v.message_type),
            "files": v.files.iter().map(|f| json!({"name": f.name, "content": f.content})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn schema(context: &Context, info: &SchemaInfo, with_source: bool) {
    if context.json {
        outln!("{}", schema_json(info));
        return;
    }
    outln!(
        "schema {} ({}), active version {}, used by: {}",
        info.name,
        kind_name(info),
        info.active_version,
        if info.stations.is_empty() {
            "no station".to_owned()
        } else {
            info.stations.join(", ")
        }
    );
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec!["version", "created", "by", "message type", ""]);
    for v in &info.versions {
        table.add_row(vec![
            v.version.to_string(),
            time(v.created_at_ms),
            v.created_by.clone(),
            v.message_type.clone(),
            if v.version == info.active_version {
                "active"
            } else {
                ""
            }
            .to_owned(),
        ]);
    }
    outln!("{table}");
    if with_source
        && let Some(active) = info
            .versions
            .iter()
            .find(|v| v.version == info.active_version)
    {
        for file in &active.files {
            outln!("--- {}", file.name);
            outln!("{}", file.content);
        }
    }
}

fn schema_list(context: &Context, schemas: &[SchemaInfo]) {
    if context.json {
        outln!(
            "{}",
            Value::Array(schemas.iter().map(schema_json).collect())
        );
        return;
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec!["name", "type", "active", "versions", "stations"]);
    for info in schemas {
        table.add_row(vec![
            info.name.clone(),
            kind_name(info).to_owned(),
            info.active_version.to_string(),
            info.versions.len().to_string(),
            info.stations.join(", "),
        ]);
    }
    outln!("{table}");
}
