//! The webhook subscription operations of the wire protocol (wire
//! subscriptions, which stream a station to a client, are in `subscription`).

use std::time::Duration;

use depot_schemas::{
    storage::{DeliveryRecord, DeliveryStatus},
    wire::{self, create_subscription::Start, request::Op, response::Result as Reply},
};

use crate::{
    auth::Principal,
    broker::{Broker, NewSubscription},
    delivery::Subscription,
    error::{BrokerError, BrokerResult},
};

/// Deliveries listed when the request does not say, and at most.
const DEFAULT_LIST: usize = 100;
const MAX_LIST: usize = 1000;

/// Runs `op` if it is a subscription operation; gives it back otherwise.
pub async fn run(broker: &Broker, who: &Principal, op: Op) -> Result<BrokerResult<Reply>, Op> {
    let info = |(sub, cursor)| Reply::Subscription(subscription_info(&sub, cursor, false));
    let answer = match op {
        Op::CreateSubscription(create) => broker
            .create_subscription(who, new_subscription(create))
            .map(|(sub, cursor)| Reply::Subscription(subscription_info(&sub, cursor, true))),
        Op::ListSubscriptions(list) => {
            let station = (!list.station.is_empty()).then_some(list.station.as_str());
            broker.list_subscriptions(who, station).map(|all| {
                Reply::SubscriptionList(wire::SubscriptionList {
                    subscriptions: all
                        .iter()
                        .map(|(sub, cursor)| subscription_info(sub, *cursor, false))
                        .collect(),
                })
            })
        }
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
    let (records, more) =
        broker.list_deliveries(who, &list.subscription, status, list.after_offset, limit)?;
    Ok(Reply::DeliveryList(wire::DeliveryList {
        deliveries: records.iter().map(delivery).collect(),
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

fn delivery(record: &DeliveryRecord) -> wire::Delivery {
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
    }
}

fn subscription_info(sub: &Subscription, cursor: u64, with_secret: bool) -> wire::SubscriptionInfo {
    let (retry_schedule_ms, fixed_delay_ms) = sub.schedule.to_millis();
    let (ordered, concurrency) = sub.mode.parts();
    wire::SubscriptionInfo {
        id: sub.id.clone(),
        name: sub.name.clone(),
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
        cursor,
    }
}
