//! Which wire operations change the broker's configuration, and how each is
//! named in the audit trail ([`crate::broker::audit`]): the operation and
//! its target, never a secret. Reads, produces, fetches, subscriptions,
//! commits and acknowledgements are not changes to audit (they are the
//! traffic, counted by metrics), nor are a proxy's own bookkeeping calls.

use serde_json::{Value, json};

use depot_schemas::wire::{Permissions, request::Op};

/// The operation's name and target when `op` is a change to audit.
pub fn described(op: &Op) -> Option<(&'static str, Value)> {
    let described = match op {
        Op::CreateStation(create) => ("create_station", json!({ "station": create.name })),
        Op::UpdateStation(update) => ("update_station", json!({ "station": update.name })),
        Op::DeleteStation(delete) => ("delete_station", json!({ "station": delete.name })),
        Op::PurgeStation(purge) => (
            "purge_station",
            json!({ "station": purge.name, "before_offset": purge.before_offset }),
        ),
        Op::CreateUser(create) => (
            "create_user",
            json!({
                "user": create.name,
                "permissions": create.permissions.as_ref().map(permissions),
            }),
        ),
        Op::UpdateUser(update) => {
            // Which credentials changed, never what to.
            let mut changed = Vec::new();
            if update.password.is_some() {
                changed.push("password");
            }
            if update.connection_token.is_some() {
                changed.push("connection_token");
            }
            (
                "update_user",
                json!({
                    "user": update.name,
                    "credentials_changed": changed,
                    "permissions": update.permissions.as_ref().map(permissions),
                }),
            )
        }
        Op::DeleteUser(delete) => ("delete_user", json!({ "user": delete.name })),
        Op::EndSessions(end) => ("end_sessions", json!({ "user": end.user })),
        Op::CreateSchema(create) => ("create_schema", json!({ "schema": create.name })),
        Op::UpdateSchema(update) => ("update_schema", json!({ "schema": update.name })),
        Op::RollbackSchema(rollback) => (
            "rollback_schema",
            json!({ "schema": rollback.name, "version": rollback.version }),
        ),
        Op::DeleteSchema(delete) => ("delete_schema", json!({ "schema": delete.name })),
        Op::AttachSchema(attach) => (
            "attach_schema",
            json!({
                "station": attach.station,
                "schema": attach.schema.as_ref().map(|s| &s.schema),
                "version": attach.schema.as_ref().map(|s| s.version),
            }),
        ),
        Op::DetachSchema(detach) => ("detach_schema", json!({ "station": detach.station })),
        Op::ResendDeadLetters(resend) => (
            "resend_dead_letters",
            json!({ "station": resend.station, "ids": resend.ids, "all": resend.all }),
        ),
        Op::DeleteDeadLetters(delete) => (
            "delete_dead_letters",
            json!({ "station": delete.station, "ids": delete.ids, "all": delete.all }),
        ),
        // Not the URL (it may carry credentials) nor the secret.
        Op::CreateSubscription(create) => (
            "create_subscription",
            json!({ "subscription": create.name, "station": create.station }),
        ),
        Op::UpdateSubscription(update) => (
            "update_subscription",
            json!({ "subscription": update.subscription, "url_changed": update.url.is_some(),
                    "secret_changed": update.secret.is_some() }),
        ),
        Op::PauseSubscription(pause) => (
            "pause_subscription",
            json!({ "subscription": pause.subscription }),
        ),
        Op::ResumeSubscription(resume) => (
            "resume_subscription",
            json!({ "subscription": resume.subscription }),
        ),
        Op::DeleteSubscription(delete) => (
            "delete_subscription",
            json!({ "subscription": delete.subscription }),
        ),
        Op::ResendDeliveries(resend) => (
            "resend_deliveries",
            json!({ "subscription": resend.subscription, "deliveries": resend.delivery_ids }),
        ),
        Op::DeleteConsumer(delete) => (
            "delete_consumer",
            json!({ "station": delete.station, "consumer": delete.consumer }),
        ),
        _ => return None,
    };
    Some(described)
}

fn permissions(permissions: &Permissions) -> Value {
    json!({
        "produce": permissions.produce,
        "consume": permissions.consume,
        "create_stations": permissions.create_stations,
        "admin": permissions.admin,
        "notify": permissions.notify,
    })
}
