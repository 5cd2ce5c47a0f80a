//! The schema and dead-letter operations of the wire protocol: parse, call
//! one [`Broker`] method, map the answer.

use depot_schemas::{
    storage::DeadLetterRecord,
    wire::{self, request::Op, response::Result as Reply},
};

use crate::{
    auth::Principal,
    broker::{Broker, ResendSelection, SchemaSummary},
    error::{BrokerError, BrokerResult},
    schema::{Attachment, SchemaType, SchemaVersionSource},
    server::convert,
};

/// Dead letters listed when the request does not say.
const DEFAULT_LIST: usize = 100;
/// Most dead letters one list returns, or one resend takes.
const MAX_BATCH: usize = 1000;

/// Runs `op` if it is a schema or dead-letter operation; gives it back
/// otherwise.
pub async fn run(broker: &Broker, who: &Principal, op: Op) -> Result<BrokerResult<Reply>, Op> {
    let answer = match op {
        Op::CreateSchema(create) => {
            let kind = match schema_type(create.r#type()) {
                Ok(kind) => kind,
                Err(e) => return Ok(Err(e)),
            };
            broker
                .create_schema(
                    who,
                    &create.name,
                    kind,
                    source(create.files, create.message_type),
                )
                .await
                .map(schema_reply)
        }
        Op::UpdateSchema(update) => broker
            .update_schema(who, &update.name, source(update.files, update.message_type))
            .await
            .map(schema_reply),
        Op::ListSchemas(_) => broker.list_schemas(who).map(|schemas| {
            Reply::SchemaList(wire::SchemaList {
                schemas: schemas.iter().map(|s| schema_info(s, false)).collect(),
            })
        }),
        Op::DescribeSchema(describe) => broker
            .describe_schema(who, &describe.name)
            .map(|s| Reply::Schema(schema_info(&s, true))),
        Op::RollbackSchema(rollback) => broker
            .rollback_schema(who, &rollback.name, rollback.version)
            .await
            .map(schema_reply),
        Op::DeleteSchema(delete) => broker
            .delete_schema(who, &delete.name)
            .await
            .map(|()| Reply::Done(wire::Done {})),
        Op::AttachSchema(attach) => {
            let attachment = attach.schema.map(|a| Attachment {
                schema: a.schema,
                version: (a.version != 0).then_some(a.version),
            });
            match attachment {
                Some(attachment) => broker
                    .attach_schema(who, &attach.station, Some(attachment))
                    .await
                    .map(|()| Reply::Done(wire::Done {})),
                None => Err(BrokerError::bad_request("attach needs a schema")),
            }
        }
        Op::DetachSchema(detach) => broker
            .attach_schema(who, &detach.station, None)
            .await
            .map(|()| Reply::Done(wire::Done {})),
        Op::ListDeadLetters(list) => {
            let limit = match list.limit {
                0 => DEFAULT_LIST,
                n => (n as usize).min(MAX_BATCH),
            };
            broker
                .list_dead_letters(who, &list.station, list.after_id, limit)
                .map(|(letters, more)| {
                    Reply::DeadLetterList(wire::DeadLetterList {
                        dead_letters: letters
                            .into_iter()
                            .map(|l| dead_letter(&list.station, l, false))
                            .collect(),
                        more,
                    })
                })
        }
        Op::GetDeadLetter(get) => broker
            .dead_letter(who, &get.station, get.id)
            .map(|l| Reply::DeadLetter(dead_letter(&get.station, l, true))),
        Op::DeleteDeadLetters(delete) if delete.all => {
            let limit = match delete.limit {
                0 => MAX_BATCH,
                n => (n as usize).min(MAX_BATCH),
            };
            broker
                .delete_oldest_dead_letters(who, &delete.station, delete.up_to_id, limit)
                .await
                .map(|(deleted, up_to_id, more)| {
                    Reply::DeadLettersDeleted(wire::DeadLettersDeleted {
                        deleted,
                        up_to_id,
                        more,
                    })
                })
        }
        Op::DeleteDeadLetters(delete) => broker
            .delete_dead_letters(who, &delete.station, &delete.ids)
            .await
            .map(|deleted| {
                Reply::DeadLettersDeleted(wire::DeadLettersDeleted {
                    deleted,
                    ..Default::default()
                })
            }),
        Op::ResendDeadLetters(resend) => {
            let selection = if resend.all {
                let limit = match resend.limit {
                    0 => MAX_BATCH,
                    n => (n as usize).min(MAX_BATCH),
                };
                ResendSelection::All {
                    after: resend.after_id,
                    limit,
                }
            } else {
                ResendSelection::Ids(resend.ids)
            };
            broker
                .resend_dead_letters(who, &resend.station, selection)
                .await
                .map(|(outcomes, more)| {
                    use wire::resend_outcome::Outcome;
                    let outcomes = outcomes
                        .into_iter()
                        .map(|o| wire::ResendOutcome {
                            id: o.id,
                            outcome: Some(match o.result {
                                Ok(offset) => Outcome::Offset(offset),
                                Err(e) => Outcome::Error(convert::broker_error(&e)),
                            }),
                        })
                        .collect();
                    Reply::ResendResult(wire::ResendResult { outcomes, more })
                })
        }
        op => return Err(op),
    };
    Ok(answer)
}

fn schema_type(kind: wire::SchemaType) -> BrokerResult<SchemaType> {
    match kind {
        wire::SchemaType::Json => Ok(SchemaType::Json),
        wire::SchemaType::Protobuf => Ok(SchemaType::Protobuf),
        wire::SchemaType::Unspecified => Err(BrokerError::bad_request(
            "a schema needs a type: json or protobuf",
        )),
    }
}

fn source(files: Vec<wire::SchemaFile>, message_type: String) -> SchemaVersionSource {
    SchemaVersionSource {
        files: files.into_iter().map(|f| (f.name, f.content)).collect(),
        message_type,
    }
}

fn schema_reply(summary: SchemaSummary) -> Reply {
    Reply::Schema(schema_info(&summary, false))
}

fn schema_info(summary: &SchemaSummary, with_files: bool) -> wire::SchemaInfo {
    let record = &summary.record;
    let kind = match record.r#type() {
        depot_schemas::storage::SchemaType::Json => wire::SchemaType::Json,
        depot_schemas::storage::SchemaType::Protobuf => wire::SchemaType::Protobuf,
        depot_schemas::storage::SchemaType::Unspecified => wire::SchemaType::Unspecified,
    };
    wire::SchemaInfo {
        name: record.name.clone(),
        r#type: kind as i32,
        active_version: record.active_version,
        versions: record
            .versions
            .iter()
            .map(|v| wire::SchemaVersionInfo {
                version: v.version,
                created_at_ms: v.created_at_ms,
                created_by: v.created_by.clone(),
                message_type: v.message_type.clone(),
                files: if with_files {
                    v.files
                        .iter()
                        .map(|f| wire::SchemaFile {
                            name: f.name.clone(),
                            content: f.content.clone(),
                        })
                        .collect()
                } else {
                    Vec::new()
                },
            })
            .collect(),
        stations: summary.stations.clone(),
        created_at_ms: record.created_at_ms,
    }
}

fn dead_letter(station: &str, letter: DeadLetterRecord, with_payload: bool) -> wire::DeadLetter {
    wire::DeadLetter {
        id: letter.id,
        station: station.to_owned(),
        timestamp_ms: letter.timestamp_ms,
        reason: letter.reason,
        schema: letter.schema,
        schema_version: letter.schema_version,
        producer: letter.producer,
        msg_id: letter.msg_id,
        headers: letter
            .headers
            .into_iter()
            .map(|h| wire::Header {
                key: h.key,
                value: h.value,
            })
            .collect(),
        content_type: letter.content_type,
        consumer: letter.consumer,
        offset: letter.offset,
        deliveries: letter.deliveries,
        payload_bytes: letter.payload.len() as u64,
        payload: if with_payload {
            letter.payload
        } else {
            Default::default()
        },
    }
}
