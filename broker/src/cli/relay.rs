//! `depot relay METHOD URL`: hand one HTTP request to the relay; it is tried
//! at once and, if it does not arrive, kept and retried.

use serde_json::json;

use depot_schemas::wire;

use crate::cli::{CliResult, Context};

#[derive(Debug, clap::Args)]
pub struct RelayArgs {
    /// GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS.
    method: String,
    url: String,
    /// The body (text as given).
    #[arg(long, conflicts_with = "body_file")]
    body: Option<String>,
    /// The body, read from a file.
    #[arg(long)]
    body_file: Option<std::path::PathBuf>,
    /// The body's content type.
    #[arg(long, default_value = "application/json")]
    content_type: String,
    /// A header to forward (repeatable): `Name: value`.
    #[arg(short = 'H', long = "header", value_parser = header)]
    headers: Vec<(String, String)>,
}

fn header(text: &str) -> Result<(String, String), String> {
    text.split_once(':')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .ok_or_else(|| format!("expected 'Name: value', got '{text}'"))
}

pub async fn run(context: &Context, args: RelayArgs) -> CliResult {
    let body = match (args.body, args.body_file) {
        (Some(text), _) => text.into_bytes(),
        (None, Some(path)) => {
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
        }
        (None, None) => Vec::new(),
    };
    let relay = wire::Relay {
        method: args.method,
        url: args.url,
        headers: args
            .headers
            .into_iter()
            .map(|(key, value)| wire::Header { key, value })
            .collect(),
        content_type: if body.is_empty() {
            String::new()
        } else {
            args.content_type
        },
        body: body.into(),
    };
    let result = context.client.relay(relay).await?;
    let response = String::from_utf8_lossy(&result.response_body);
    if context.json {
        outln!(
            "{}",
            json!({
                "outcome": result.outcome, "delivery_id": result.delivery_id,
                "status": (result.status > 0).then_some(result.status),
                "response": response,
                "error": (!result.error.is_empty()).then_some(&result.error),
            })
        );
        return Ok(());
    }
    let status = if result.status > 0 {
        format!("HTTP {}", result.status)
    } else {
        result.error.clone()
    };
    outln!(
        "{} ({status}), delivery {}",
        result.outcome,
        result.delivery_id
    );
    if !response.is_empty() {
        outln!("{response}");
    }
    Ok(())
}
