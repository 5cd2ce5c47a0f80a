//! The webhook subscription operations of the wire protocol (wire
//! subscriptions, which stream a station to a client, are in `subscription`).

use std::time::Duration;

use depot_schemas::{
    storage::{DeliveryAttemptRecord, DeliveryRecord, DeliveryStatus, Header},
    wire::{self, create_subscription::Start, request::Op, response::Result as Reply},
};

use crate::{
    auth::Principal,
    broker::{Broker, DeliveryView, NewSubscription, SubscriptionChange, SubscriptionState},
    delivery::relay::{RelayOutcome, RelayRequest, RelayVerdict},
    error::{BrokerError, BrokerResult},
};

/// Deliveries listed when the request does not say, and at most.
const DEFAULT_LIST: usize = 100;
const MAX_LIST: usize = 1000;

/// Runs `op` if it is a subscription operation; gives it back otherwise.
pub async fn run(broker: &Broker, who: &Principal, op: Op) -> Result<BrokerResult<Reply>, Op> {
    let info = |state: SubscriptionState| Reply::Subscription(subscription_info(&state, false));
    let answer = match op {
        Op::CreateSubscription(create) => broker
            .create_subscription(who, new_subscription(create))
            .map(|state| Reply::Subscription(subscription_info(&state, true))),
        Op::UpdateSubscription(update) => {
            let id = update.subscription.clone();
            broker
                .update_subscription(who, &id, subscription_change(update))
                .map(info)
        }
        Op::ListSubscriptions(list) => {
            let station = (!list.station.is_empty()).then_some(list.station.as_str());
            broker.list_subscriptions(who, station).map(|all| {
                Reply::SubscriptionList(wire::SubscriptionList {
                    subscriptions: all
                        .iter()
                        .map(|state| subscription_info(state, false))
                        .collect(),
                })
            })
        }
        Op::GetDelivery(get) => broker
            .get_delivery(who, &get.id)
            .map(|view| Reply::DeliveryDetail(delivery_detail(view))),
        Op::GetDeliveryAttempt(get) => {
            broker
                .get_delivery_attempt(who, &get.id)
                .map(|(delivery_id, attempt)| {
                    Reply::DeliveryAttempt(delivery_attempt(&delivery_id, &attempt))
                })
        }
        Op::GetMetrics(_) => Ok(Reply::Metrics(wire::MetricsText {
            text: broker.metrics_text(),
        })),
        Op::Relay(relay) => broker
            .relay(who, relay_request(relay))
            .await
            .map(|outcome| Reply::RelayResult(relay_result(outcome))),
        Op::DescribeSubscription(d) => broker.describe_subscription(who, &d.subscription).map(info),
        Op::PauseSubscription(p) => broker
            .pause_subscription(who, &p.subscription, true)
            .map(info),
        Op::ResumeSubscription(r) => broker
            .pause_subscription(who, &r.subscription, false)
            .map(info),
        Op::DeleteSubscription(d) => broker
            .delete_subscription(who, &d.subscription)
            .map(|()| Reply::Done(wire::Done {})),
        Op::ListDeliveries(list) => list_deliveries(broker, who, list),
        Op::ResendDeliveries(resend) => broker
            .resend_deliveries(
                who,
                &resend.subscription,
                &resend.delivery_ids,
                (resend.failed_since_ms > 0).then_some(resend.failed_since_ms),
            )
            .await
            .map(|count| {
                Reply::DeliveriesResent(wire::DeliveriesResent {
                    count: count as u32,
                })
            }),
        op => return Err(op),
    };
    Ok(answer)
}

fn new_subscription(create: wire::CreateSubscription) -> NewSubscription {
    let text = |s: String| (!s.is_empty()).then_some(s);
    NewSubscription {
        name: create.name,
        description: create.description,
        station: create.station,
        url: create.url,
        secret: text(create.secret),
        max_attempts: (create.max_attempts > 0).then_some(create.max_attempts),
        retry_schedule: text(create.retry_schedule),
        timeout: (create.timeout_ms > 0).then(|| Duration::from_millis(create.timeout_ms)),
        format: text(create.format),
        filter: create
            .filter
            .into_iter()
            .map(|h| (h.key, h.value))
            .collect(),
        ordered: create.ordered,
        concurrency: (create.concurrency > 0).then_some(create.concurrency),
        from_offset: match create.start {
            Some(Start::FromOffset(offset)) => Some(offset),
            Some(Start::Latest(_)) | None => None,
        },
        max_rate: (create.max_rate > 0).then_some(create.max_rate),
    }
}

fn relay_request(relay: wire::Relay) -> RelayRequest {
    RelayRequest {
        method: relay.method,
        url: relay.url,
        headers: relay
            .headers
            .into_iter()
            .map(|h| (h.key, h.value))
            .collect(),
        content_type: relay.content_type,
        body: relay.body,
    }
}

fn relay_result(outcome: RelayOutcome) -> wire::RelayResult {
    wire::RelayResult {
        outcome: match outcome.verdict {
            RelayVerdict::Delivered => "delivered",
            RelayVerdict::Rejected => "rejected",
            RelayVerdict::Queued => "queued",
        }
        .to_owned(),
        delivery_id: outcome.delivery_id,
        status: outcome.status.map_or(0, u32::from),
        response_headers: outcome
            .response_headers
            .into_iter()
            .map(|(key, value)| wire::Header { key, value })
            .collect(),
        response_body: outcome.response_body,
        error: outcome.error.unwrap_or_default(),
    }
}

fn subscription_change(update: wire::UpdateSubscription) -> SubscriptionChange {
    SubscriptionChange {
        name: update.name,
        description: update.description,
        url: update.url,
        secret: update.secret,
        max_attempts: update.max_attempts,
        retry_schedule: update.retry_schedule,
        timeout: update.timeout_ms.map(Duration::from_millis),
        format: update.format,
        filter: update.replace_filter.then(|| {
            update
                .filter
                .into_iter()
                .map(|h| (h.key, h.value))
                .collect()
        }),
        ordered: update.ordered,
        concurrency: update.concurrency,
        max_rate: update.max_rate,
    }
}

fn list_deliveries(
    broker: &Broker,
    who: &Principal,
    list: wire::ListDeliveries,
) -> BrokerResult<Reply> {
    let status = match list.status.as_str() {
        "" => None,
        "pending" => Some(DeliveryStatus::Pending),
        "completed" => Some(DeliveryStatus::Completed),
        "failed" => Some(DeliveryStatus::Failed),
        other => {
            return Err(BrokerError::bad_request(format!(
                "unknown delivery status '{other}': use pending, completed or failed"
            )));
        }
    };
    let limit = match list.limit {
        0 => DEFAULT_LIST,
        n => (n as usize).min(MAX_LIST),
    };
    let after_id = (!list.after_id.is_empty()).then_some(list.after_id.as_str());
    let (records, more) = if list.subscription.is_empty() {
        broker.list_all_deliveries(who, status, after_id, limit)?
    } else {
        let after = match after_id {
            Some(id) => Some(broker.get_delivery(who, id)?.record.offset),
            None => list.after_offset,
        };
        broker.list_deliveries(who, &list.subscription, status, after, limit)?
    };
    Ok(Reply::DeliveryList(wire::DeliveryList {
        deliveries: records.iter().map(|(sub, r)| delivery(sub, r)).collect(),
        more,
    }))
}

pub fn status_name(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::Completed => "completed",
        DeliveryStatus::Failed => "failed",
        DeliveryStatus::Unspecified => "unknown",
    }
}

fn delivery(subscription_id: &str, record: &DeliveryRecord) -> wire::Delivery {
    wire::Delivery {
        id: record.id.clone(),
        offset: record.offset,
        message_id: record.message_id.clone(),
        status: status_name(record.status()).to_owned(),
        attempts: record.attempts,
        next_attempt_at_ms: record.next_attempt_at_ms,
        created_at_ms: record.created_at_ms,
        updated_at_ms: record.updated_at_ms,
        last_status: record.last_status,
        last_error: record.last_error.clone(),
        subscription_id: subscription_id.to_owned(),
    }
}

fn delivery_detail(view: DeliveryView) -> wire::DeliveryDetail {
    let (content_type, data) = match &view.message {
        Some(message) => (message.content_type.clone(), message.payload.clone()),
        None => (String::new(), Default::default()),
    };
    wire::DeliveryDetail {
        delivery: Some(delivery(&view.sub.id, &view.record)),
        subscription_name: view.sub.name.clone(),
        station: view.sub.station.to_string(),
        url: view.sub.url.clone(),
        max_attempts: view.sub.max_attempts,
        message_retained: view.message.is_some(),
        content_type,
        data,
        attempts: view
            .attempts
            .iter()
            .map(|a| delivery_attempt(&view.record.id, a))
            .collect(),
    }
}

fn wire_headers(headers: &[Header]) -> Vec<wire::Header> {
    headers
        .iter()
        .map(|h| wire::Header {
            key: h.key.clone(),
            value: h.value.clone(),
        })
        .collect()
}

fn delivery_attempt(delivery_id: &str, attempt: &DeliveryAttemptRecord) -> wire::DeliveryAttempt {
    wire::DeliveryAttempt {
        id: format!("{delivery_id}.{}", attempt.number),
        delivery_id: delivery_id.to_owned(),
        number: attempt.number,
        at_ms: attempt.at_ms,
        request_line: attempt.request_line.clone(),
        request_headers: wire_headers(&attempt.request_headers),
        response_status: attempt.response_status,
        response_headers: wire_headers(&attempt.response_headers),
        response_body: attempt.response_body.clone(),
        duration_ms: attempt.duration_ms,
        error: attempt.error.clone(),
        success: (200..300).contains(&attempt.response_status),
    }
}

fn subscription_info(state: &SubscriptionState, with_secret: bool) -> wire::SubscriptionInfo {
    let SubscriptionState {
        sub,
        cursor,
        health,
    } = state;
    let (retry_schedule_ms, fixed_delay_ms) = sub.schedule.to_millis();
    let (ordered, concurrency) = sub.mode.parts();
    wire::SubscriptionInfo {
        id: sub.id.clone(),
        name: sub.name.clone(),
        description: sub.description.clone(),
        station: sub.station.to_string(),
        url: sub.url.clone(),
        secret: if with_secret {
            sub.secret.expose()
        } else {
            String::new()
        },
        max_attempts: sub.max_attempts,
        retry_schedule_ms,
        fixed_delay_ms,
        timeout_ms: sub.timeout.as_millis() as u64,
        format: sub.format.name().to_owned(),
        filter: sub
            .filter
            .iter()
            .map(|(key, value)| wire::Header {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        ordered,
        concurrency,
        paused: sub.paused,
        created_at_ms: sub.created_at_ms,
        created_by: sub.created_by.clone(),
        start_offset: sub.start_offset,
        cursor: *cursor,
        max_rate: sub.max_rate.unwrap_or(0),
        relay: sub.relay,
        circuit: match health.as_ref().and_then(|h| h.circuit) {
            Some(state) => state.name().to_owned(),
            None => "stopped".to_owned(),
        },
        counts: health.as_ref().map(|h| wire::DeliveryCounts {
            delivered: h.metrics.delivered.get(),
            dead_lettered: h.metrics.dead_lettered.get(),
            failed_attempts: h.metrics.failed_attempts.get(),
            retried: h.metrics.retried.get(),
            pending: h.metrics.pending.get().max(0) as u64,
        }),
    }
}
