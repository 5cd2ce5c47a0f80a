//! The wire boundary: conversions between wire types and domain types, and
//! the one mapping from [`BrokerError`] to wire error codes.

use std::time::Duration;

use depot_schemas::wire::{self, ErrorCode};

use crate::{
    auth::users::{NewUser, UserChange},
    broker::{SpentToken, UserSummary},
    error::{BrokerError, BrokerResult},
    station::{
        Message, NewMessage, ProduceOutcome, RejectReason, SettingsChange, StationSettings,
        actor::StationStats,
    },
};

pub fn error(code: ErrorCode, message: impl Into<String>) -> wire::Error {
    wire::Error {
        code: code as i32,
        message: message.into(),
    }
}

pub fn error_code(e: &BrokerError) -> ErrorCode {
    match e {
        BrokerError::InvalidStationName { .. } => ErrorCode::InvalidStationName,
        BrokerError::StationNotFound { .. } => ErrorCode::StationNotFound,
        BrokerError::StationExists { .. } => ErrorCode::StationExists,
        BrokerError::BadRequest { .. } => ErrorCode::BadRequest,
        BrokerError::BadCredentials | BrokerError::TokenRevoked => ErrorCode::Unauthenticated,
        BrokerError::PermissionDenied { .. } => ErrorCode::PermissionDenied,
        BrokerError::InvalidSchemaName { .. } => ErrorCode::BadRequest,
        BrokerError::SchemaNotFound { .. } | BrokerError::SchemaVersionNotFound { .. } => {
            ErrorCode::SchemaNotFound
        }
        BrokerError::SchemaExists { .. } => ErrorCode::SchemaExists,
        BrokerError::InvalidSchema { .. } => ErrorCode::InvalidSchema,
        BrokerError::SchemaInUse { .. } => ErrorCode::SchemaInUse,
        BrokerError::DeadLetterNotFound { .. } => ErrorCode::DeadLetterNotFound,
        BrokerError::ConsumerNotFound { .. } => ErrorCode::ConsumerNotFound,
        BrokerError::SubscriptionNotFound { .. } => ErrorCode::SubscriptionNotFound,
        BrokerError::DeliveryNotFound { .. } => ErrorCode::DeliveryNotFound,
        BrokerError::Rejected(reason) => reject_code(reason),
        BrokerError::LimitReached { .. } => ErrorCode::LimitExceeded,
        BrokerError::Storage(_)
        | BrokerError::DataDirectoryInUse { .. }
        | BrokerError::FlushFailed { .. }
        | BrokerError::PurgeFailed { .. }
        | BrokerError::Corrupt(_)
        | BrokerError::CorruptValue { .. }
        | BrokerError::ShuttingDown => ErrorCode::Internal,
    }
}

pub fn spent_token(token: wire::ConsumeToken) -> SpentToken {
    SpentToken {
        username: token.username,
        jti: token.jti,
        issued_at_ms: token.issued_at_ms,
        expires_at_ms: token.expires_at_ms,
    }
}

pub fn broker_error(e: &BrokerError) -> wire::Error {
    error(error_code(e), e.to_string())
}

pub fn settings_change(settings: Option<wire::StationSettings>) -> SettingsChange {
    let s = settings.unwrap_or_default();
    SettingsChange {
        retention_age: s.retention_age_ms.map(Duration::from_millis),
        retention_messages: s.retention_messages,
        retention_bytes: s.retention_bytes,
        idempotency_window: s.idempotency_window_ms.map(Duration::from_millis),
        max_message_bytes: s.max_message_bytes,
        dead_letter_retention: s.dead_letter_retention_ms.map(Duration::from_millis),
        keep_dead_letters: s.keep_dead_letters,
        notify_connections: s.notify_connections,
    }
}

fn settings_to_wire(s: &StationSettings) -> wire::StationSettings {
    wire::StationSettings {
        retention_age_ms: Some(s.retention_age.as_millis() as u64),
        retention_messages: Some(s.retention_messages),
        retention_bytes: Some(s.retention_bytes),
        idempotency_window_ms: Some(s.idempotency_window.as_millis() as u64),
        max_message_bytes: Some(s.max_message_bytes),
        dead_letter_retention_ms: Some(s.dead_letter_retention.as_millis() as u64),
        keep_dead_letters: Some(s.keep_dead_letters),
        notify_connections: Some(s.notify_connections),
    }
}

pub fn station_info(stats: &StationStats) -> wire::StationInfo {
    wire::StationInfo {
        name: stats.name.to_string(),
        settings: Some(settings_to_wire(&stats.settings)),
        created_at_ms: stats.created_at_ms,
        message_count: stats.message_count,
        bytes: stats.bytes,
        first_offset: stats.first_offset,
        next_offset: stats.next_offset,
        schema: stats.schema.as_ref().map(|a| wire::SchemaAttachment {
            schema: a.schema.clone(),
            version: a.version.unwrap_or(0),
        }),
        description: stats.meta.description.clone(),
        updated_at_ms: stats.meta.updated_at_ms,
    }
}

pub fn new_message(m: wire::NewMessage) -> NewMessage {
    NewMessage {
        msg_id: (!m.msg_id.is_empty()).then_some(m.msg_id),
        headers: m.headers.into_iter().map(|h| (h.key, h.value)).collect(),
        content_type: m.content_type,
        payload: m.payload,
    }
}

pub fn stored_message(m: Message) -> wire::StoredMessage {
    wire::StoredMessage {
        offset: m.offset,
        id: m.id,
        timestamp_ms: m.timestamp_ms,
        headers: m
            .headers
            .into_iter()
            .map(|(key, value)| wire::Header { key, value })
            .collect(),
        content_type: m.content_type,
        payload: m.payload,
        producer: m.producer,
        deliveries: 0,
    }
}

pub fn produce_outcome(outcome: ProduceOutcome) -> wire::ProduceOutcome {
    use wire::produce_outcome::Outcome;
    let outcome = match outcome {
        ProduceOutcome::Stored { offset } => Outcome::Offset(offset),
        ProduceOutcome::Duplicate { offset } => Outcome::DuplicateOf(offset),
        ProduceOutcome::Rejected { reason } => {
            Outcome::Error(error(reject_code(&reason), reason.to_string()))
        }
    };
    wire::ProduceOutcome {
        outcome: Some(outcome),
    }
}

fn reject_code(reason: &RejectReason) -> ErrorCode {
    match reason {
        RejectReason::TooLarge { .. } => ErrorCode::MessageTooLarge,
        RejectReason::Invalid(_) => ErrorCode::SchemaValidationFailed,
    }
}

pub fn new_user(create: wire::CreateUser) -> BrokerResult<NewUser> {
    let permissions = create.permissions.unwrap_or_default();
    Ok(NewUser {
        name: create.name,
        password: (!create.password.is_empty()).then_some(create.password),
        connection_token: (!create.connection_token.is_empty()).then_some(create.connection_token),
        produce: permissions.produce,
        consume: permissions.consume,
        create_stations: permissions.create_stations,
        admin: permissions.admin,
        notify: permissions.notify,
    })
}

/// An update's permissions replace the old ones when given.
pub fn user_change(update: wire::UpdateUser) -> (String, UserChange) {
    let permissions = update.permissions;
    let change = UserChange {
        password: update.password,
        connection_token: update.connection_token,
        produce: permissions.as_ref().map(|p| p.produce.clone()),
        consume: permissions.as_ref().map(|p| p.consume.clone()),
        create_stations: permissions.as_ref().map(|p| p.create_stations),
        admin: permissions.as_ref().map(|p| p.admin),
        notify: permissions.as_ref().map(|p| p.notify),
    };
    (update.name, change)
}

pub fn user_info(user: &UserSummary) -> wire::UserInfo {
    wire::UserInfo {
        name: user.name.clone(),
        permissions: Some(wire::Permissions {
            produce: user.produce.clone(),
            consume: user.consume.clone(),
            create_stations: user.create_stations,
            admin: user.admin,
            notify: user.notify,
        }),
        has_password: user.has_password,
        has_connection_token: user.has_connection_token,
        created_at_ms: user.created_at_ms,
    }
}
