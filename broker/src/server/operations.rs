//! The request/response operations: each parses its wire request, calls one
//! [`Broker`] method, and maps the result to a wire answer. Session-level
//! operations (handshake, subscriptions) live in `connection`.

use std::{sync::Arc, time::Duration};

use depot_schemas::wire::{self, ErrorCode, request::Op, response::Result as Reply};

use crate::{
    auth::Principal,
    broker::audit::AuditEntry,
    broker::{Broker, FetchFrom, UserSummary},
    error::BrokerResult,
    server::{
        audited, connection_operations, consumer_operations, convert, schema_operations,
        webhook_operations,
    },
    station::{ProduceOutcome, ReadLimits, StationSettings},
};

/// The id of the (single, for now) JWT signing key.
const SIGNING_KEY_ID: &str = "k1";
/// Messages a fetch returns when the request does not say.
const DEFAULT_FETCH_MESSAGES: usize = 100;
/// Most messages one fetch may return.
const MAX_FETCH_MESSAGES: usize = 10_000;
/// Payload bytes a fetch returns when the request does not say.
const DEFAULT_FETCH_BYTES: u64 = 1024 * 1024;

/// Runs `op` as `who`, for a client at `from` (its network address; empty:
/// unknown); a change to the broker's configuration (or an attempt
/// refused) goes to the audit trail before the answer.
pub async fn run(broker: &Broker, who: &Arc<Principal>, from: &str, op: Op) -> Reply {
    let Some((operation, target)) = audited::described(&op) else {
        return dispatch(broker, who, op).await;
    };
    let reply = dispatch(broker, who, op).await;
    let refusal = match &reply {
        Reply::Error(error) => Some((
            ErrorCode::try_from(error.code)
                .unwrap_or(ErrorCode::Unspecified)
                .as_str_name()
                .to_owned(),
            error.message.clone(),
        )),
        _ => None,
    };
    let entry = AuditEntry {
        operation,
        target,
        user: who.username.clone(),
        from: from.to_owned(),
        refusal,
    };
    if let Err(error) = broker.audit(&entry).await {
        // The change is made: say so, and that its record is missing.
        tracing::error!(%error, operation, user = %who.username, "the audit trail could not record a change");
    }
    reply
}

async fn dispatch(broker: &Broker, who: &Arc<Principal>, op: Op) -> Reply {
    let op = match schema_operations::run(broker, who, op).await {
        Ok(answer) => return answer.unwrap_or_else(|e| Reply::Error(convert::broker_error(&e))),
        Err(op) => op,
    };
    let op = match webhook_operations::run(broker, who, op).await {
        Ok(answer) => return answer.unwrap_or_else(|e| Reply::Error(convert::broker_error(&e))),
        Err(op) => op,
    };
    let op = match connection_operations::run(broker, who, op).await {
        Ok(answer) => return answer.unwrap_or_else(|e| Reply::Error(convert::broker_error(&e))),
        Err(op) => op,
    };
    let op = match consumer_operations::run(broker, who, op).await {
        Ok(answer) => return answer.unwrap_or_else(|e| Reply::Error(convert::broker_error(&e))),
        Err(op) => op,
    };
    let answer: BrokerResult<Reply> = match op {
        Op::CreateStation(create) => {
            let settings =
                StationSettings::default().with(convert::settings_change(create.settings));
            broker
                .create_station(who, &create.name, settings, create.description)
                .await
                .map(|stats| Reply::Station(convert::station_info(&stats)))
        }
        Op::UpdateStation(update) => broker
            .update_station(
                who,
                &update.name,
                convert::settings_change(update.settings),
                update.description,
            )
            .await
            .map(|stats| Reply::Station(convert::station_info(&stats))),
        Op::DeleteStation(delete) => broker
            .delete_station(who, &delete.name)
            .await
            .map(|()| Reply::Done(wire::Done {})),
        Op::PurgeStation(purge) => broker
            .purge_station(who, &purge.name, purge.before_offset)
            .await
            .map(|purged| {
                Reply::Purged(wire::Purged {
                    removed: purged.removed,
                    first_offset: purged.first_offset,
                })
            }),
        Op::ListStations(_) => broker.list_stations(who).await.map(|stations| {
            Reply::StationList(wire::StationList {
                stations: stations.iter().map(convert::station_info).collect(),
            })
        }),
        Op::DescribeStation(describe) => broker
            .describe_station(who, &describe.name)
            .await
            .map(|stats| Reply::Station(convert::station_info(&stats))),
        Op::Produce(produce) => {
            return finish_produce(start_produce(broker, who, produce).await).await;
        }
        Op::Fetch(fetch) => fetch_messages(broker, who, fetch).await,
        Op::CreateUser(create) => match convert::new_user(create) {
            Ok(new) => broker.create_user(who, new).await.map(user_reply),
            Err(e) => Err(e),
        },
        Op::UpdateUser(update) => {
            let (name, change) = convert::user_change(update);
            broker.update_user(who, &name, change).await.map(user_reply)
        }
        Op::DeleteUser(delete) => broker
            .delete_user(who, &delete.name)
            .await
            .map(|()| Reply::Done(wire::Done {})),
        Op::EndSessions(end) => broker
            .end_sessions(who, &end.user)
            .await
            .map(|()| Reply::Done(wire::Done {})),
        Op::GetSigningKey(_) => broker.signing_key(who).map(|key| {
            Reply::SigningKey(wire::SigningKey {
                key: key.into(),
                key_id: SIGNING_KEY_ID.to_owned(),
            })
        }),
        Op::ConsumeToken(token) => broker
            .consume_token(who, &convert::spent_token(token))
            .await
            .map(|first_use| Reply::TokenConsumed(wire::TokenConsumed { first_use })),
        Op::ListUsers(_) => broker.list_users(who).map(|users| {
            Reply::UserList(wire::UserList {
                users: users.iter().map(convert::user_info).collect(),
            })
        }),
        // Session operations (and schema operations, answered above).
        _ => Ok(Reply::Error(convert::error(
            ErrorCode::BadRequest,
            "session operation out of place",
        ))),
    };
    answer.unwrap_or_else(|e| Reply::Error(convert::broker_error(&e)))
}

/// The part of a produce that must happen in request order: parse, and hand
/// the messages to the station.
pub async fn start_produce(
    broker: &Broker,
    who: &Arc<Principal>,
    produce: wire::Produce,
) -> BrokerResult<impl Future<Output = BrokerResult<Vec<ProduceOutcome>>> + use<>> {
    let producer = broker.acting_as(who, &produce.on_behalf_of)?;
    let messages = produce
        .messages
        .into_iter()
        .map(convert::new_message)
        .collect();
    broker
        .start_produce(&producer, &produce.station, messages)
        .await
}

/// Waits for a started produce to be durable and maps its outcomes.
pub async fn finish_produce(
    started: BrokerResult<impl Future<Output = BrokerResult<Vec<ProduceOutcome>>>>,
) -> Reply {
    let outcomes = match started {
        Ok(outcomes) => outcomes.await,
        Err(e) => Err(e),
    };
    match outcomes {
        Ok(outcomes) => Reply::ProduceResult(wire::ProduceResult {
            outcomes: outcomes.into_iter().map(convert::produce_outcome).collect(),
        }),
        Err(e) => Reply::Error(convert::broker_error(&e)),
    }
}

fn user_reply(user: UserSummary) -> Reply {
    Reply::User(convert::user_info(&user))
}

async fn fetch_messages(
    broker: &Broker,
    who: &Arc<Principal>,
    fetch: wire::Fetch,
) -> BrokerResult<Reply> {
    let reader = broker.acting_as(who, &fetch.on_behalf_of)?;
    let frame_room = broker.config().options.payload_room_per_frame();
    let limits = ReadLimits {
        max_messages: match fetch.max_messages {
            0 => DEFAULT_FETCH_MESSAGES,
            n => (n as usize).min(MAX_FETCH_MESSAGES),
        },
        max_bytes: match fetch.max_bytes {
            0 => DEFAULT_FETCH_BYTES,
            n => n,
        }
        .min(frame_room),
    };
    let wait = Duration::from_millis(fetch.max_wait_ms.into());
    if fetch.lease_ms > 0 {
        return leased_fetch(broker, &reader, fetch, limits, wait).await;
    }
    if fetch.max_deliveries > 0 {
        return Err(crate::error::BrokerError::bad_request(
            "max_deliveries bounds a leased fetch's deliveries: it needs lease_ms",
        ));
    }
    let from = match fetch.consumer.as_str() {
        "" => FetchFrom::Offset(fetch.from_offset),
        consumer => FetchFrom::Consumer(consumer),
    };
    let (batch, head) = broker
        .fetch(&reader, &fetch.station, from, limits, wait)
        .await?;
    Ok(Reply::FetchResult(wire::FetchResult {
        messages: batch
            .messages
            .into_iter()
            .map(convert::stored_message)
            .collect(),
        next_offset: batch.next_offset,
        head_offset: head,
    }))
}

/// A fetch that leases its messages to one of a consumer's workers.
async fn leased_fetch(
    broker: &Broker,
    reader: &Principal,
    fetch: wire::Fetch,
    limits: ReadLimits,
    wait: Duration,
) -> BrokerResult<Reply> {
    if fetch.consumer.is_empty() {
        return Err(crate::error::BrokerError::bad_request(
            "a leased fetch (lease_ms) names the consumer whose messages it shares",
        ));
    }

    let lease = Duration::from_millis(fetch.lease_ms.into());
    let (leased, head) = broker
        .lease(
            reader,
            &fetch.station,
            &fetch.consumer,
            limits,
            lease,
            fetch.max_deliveries,
            wait,
        )
        .await?;
    // Not a place to commit (the worker acknowledges instead): past the
    // last message handed out, or the head when there was none.
    let next_offset = leased
        .iter()
        .map(|leased| leased.message.offset + 1)
        .max()
        .unwrap_or(head);
    Ok(Reply::FetchResult(wire::FetchResult {
        messages: leased
            .into_iter()
            .map(|leased| wire::StoredMessage {
                deliveries: leased.deliveries,
                ..convert::stored_message(leased.message)
            })
            .collect(),
        next_offset,
        head_offset: head,
    }))
}
