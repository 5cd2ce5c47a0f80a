//! The audit trail: who changed what. Every change an operation makes to
//! the broker's configuration (stations, users and their sessions,
//! schemas, subscriptions, dead letters, consumers), and every such attempt
//! refused, is appended by the broker to its own station `depot.audit`, one
//! JSON message each, durable before the operation is answered. Nobody
//! else writes there (a produce to it is refused) and nobody may delete or
//! purge it; it is read like any station (`depot tail depot.audit`), with
//! consume permission on it. Entries name the operation, the user it ran as
//! and its target, never a secret (passwords, connection tokens, webhook
//! secrets and URLs stay out).

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use crate::{
    auth::Principal,
    broker::{Broker, stations::append},
    error::BrokerResult,
    registry::{CreateStation, UpdateStation},
    station::{
        NewMessage, SettingsChange, StationHandle, StationName, StationSettings, actor::Describe,
    },
};

/// Depot's own station for the audit trail.
pub const AUDIT_STATION: &str = "depot.audit";

/// One change, or one refused attempt at it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// The operation, e.g. `delete_station`.
    pub operation: &'static str,
    /// What it acted on, e.g. `{"station": "orders"}`.
    pub target: Value,
    /// The user it ran as (the one a proxy acted for, over HTTP).
    pub user: String,
    /// The client's network address (over HTTP, the proxy's HTTP peer);
    /// empty when unknown.
    pub from: String,
    /// `None` when it was done; the refusal's code and message otherwise.
    pub refusal: Option<(String, String)>,
}

impl AuditEntry {
    fn to_json(&self) -> Value {
        let mut entry = json!({
            "operation": self.operation,
            "user": self.user,
            "from": self.from,
            "target": self.target,
            "outcome": if self.refusal.is_some() { "refused" } else { "done" },
        });
        if let Some((code, message)) = &self.refusal {
            entry["error"] = json!({ "code": code, "message": message });
        }
        entry
    }
}

impl Broker {
    /// Appends `entry` to the audit trail, durably.
    pub async fn audit(&self, entry: &AuditEntry) -> BrokerResult<()> {
        let station = self.audit_station().await?;
        let message = NewMessage {
            msg_id: None,
            headers: Vec::new(),
            content_type: "application/json".to_owned(),
            payload: serde_json::to_vec(&entry.to_json())
                .expect("JSON values serialise")
                .into(),
        };
        append(&station, "depot".to_owned(), vec![message]).await?;
        Ok(())
    }

    /// Records a station a produce made (`--auto-create`): a change too.
    pub(super) async fn audit_auto_create(&self, who: &Principal, station: &StationHandle) {
        let entry = AuditEntry {
            operation: "create_station",
            target: json!({ "station": station.name.as_str(), "auto_created": true }),
            user: who.username.clone(),
            // A produce carries no address to the core.
            from: String::new(),
            refusal: None,
        };
        if let Err(error) = self.audit(&entry).await {
            tracing::error!(%error, station = %station.name, "the audit trail could not record a station made by a produce");
        }
    }

    /// The audit station, made on first use with `--audit-retention`, which
    /// the first use of each run applies to one made before.
    async fn audit_station(&self) -> BrokerResult<StationHandle> {
        let name = StationName::parse(AUDIT_STATION)?;
        if self.inner.audit_ready.load(Ordering::Acquire)
            && let Some(station) = self.inner.directory.get(&name)
        {
            return Ok(station);
        }
        let settings = StationSettings {
            retention_age: self.inner.config.options.audit_retention,
            ..StationSettings::default()
        };
        let station = self
            .registry(CreateStation {
                name,
                settings,
                description: "Depot's audit trail: every change to its configuration, and every attempt refused".into(),
                if_absent: true,
            })
            .await??
            .station;
        // Made by an earlier run: this run's retention applies.
        if station
            .actor
            .send(Describe)
            .await
            .map(|stats| stats.settings.retention_age)
            != Ok(settings.retention_age)
        {
            self.registry(UpdateStation {
                name: station.name.clone(),
                change: SettingsChange {
                    retention_age: Some(settings.retention_age),
                    ..Default::default()
                },
                description: None,
            })
            .await??;
        }
        self.inner.audit_ready.store(true, Ordering::Release);
        Ok(station)
    }
}
