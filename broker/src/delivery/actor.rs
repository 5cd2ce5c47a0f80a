//! [`DeliveryActor`]: one per subscription, pushing its station's messages
//! to the subscriber's endpoint.
//!
//! Two parts:
//! - a *reader* task ([`super::reader`]) follows the station from the
//!   subscription's cursor and admits pending delivery records with the
//!   cursor in one atomic write; a semaphore bounds how many admitted
//!   deliveries may wait in memory;
//! - the *actor* starts due deliveries (in `ordered` mode one at a time in
//!   offset order; in `concurrent` mode up to the limit), records every
//!   attempt, and schedules retries by the subscription's schedule with a
//!   timer. On start it resumes every pending delivery at its due time, so a
//!   restart keeps schedules and skips nothing.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    rc::Rc,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use actix::prelude::*;
use tokio::sync::Semaphore;

use depot_schemas::storage::{DeliveryAttemptRecord, DeliveryRecord, DeliveryStatus, Header};

use crate::{
    clock::now_ms,
    delivery::{
        DeliveryLog, Subscription, UrlPolicy,
        alert::RelayAlert,
        circuit::{Circuit, CircuitSettings, Permit},
        metrics::SubscriptionMetrics,
        reader::{Admission, Admitted, read_station},
        relay::{MAX_RELAYED_RESPONSE, RelayOutcome, RelayWaiters, relay_request},
        retry::Verdict,
        sender::{AttemptRecord, MAX_RECORDED_BODY, Sender, signed, webhook_request},
    },
    persist::GroupCommit,
    station::{Message, ReadLimits, StationHandle},
};

/// Admitted deliveries that may wait in memory per subscription.
const BACKLOG: usize = 1024;
/// Connections per subscription's sender.
const CONNECTIONS: usize = 64;
/// Finished deliveries removed per sweep, at most (a sweep runs on the
/// delivery thread; a big backlog goes over several sweeps).
const EXPIRE_BATCH: usize = 10_000;
/// How long an alert webhook may take.
const ALERT_TIMEOUT: Duration = Duration::from_secs(10);

/// What every delivery actor shares.
#[derive(Clone)]
pub struct DeliveryContext {
    /// Makes delivery state durable (grouped with every other writer).
    pub group_commit: GroupCommit,
    pub policy: Arc<UrlPolicy>,
    pub circuit: CircuitSettings,
    /// Relay callers waiting for a first attempt.
    pub relay_waiters: Arc<RelayWaiters>,
    /// Where alerts about relayed requests that will not arrive go.
    pub alert_url: Option<String>,
    /// How long finished deliveries (and their attempts) are kept; zero
    /// keeps them forever.
    pub record_retention: Duration,
    /// See [`super::DeliverySettings::outbound_tls`].
    pub outbound_tls: Option<Arc<rustls::ClientConfig>>,
}

pub struct DeliveryActor {
    sub: Rc<Subscription>,
    station: StationHandle,
    log: DeliveryLog,
    context: DeliveryContext,
    sender: Option<Rc<Sender>>,
    /// Deliveries waiting to start, by offset, with when they are due.
    waiting: BTreeMap<u64, (DeliveryRecord, Instant)>,
    /// The messages of waiting and in-flight deliveries, as the reader
    /// read them (deliveries resumed after a restart read theirs again).
    messages: HashMap<u64, Message>,
    in_flight: BTreeSet<u64>,
    /// Admitted deliveries whose first attempt has not been recorded; the
    /// lowest is published as the mark the reader persists (see
    /// `DeliveryLog`: a restart rescans from it).
    unattempted: BTreeSet<u64>,
    mark: Arc<AtomicU64>,
    /// Room for admitted deliveries; given back when one ends.
    room: Arc<Semaphore>,
    /// Deliveries held beyond the room (resumed after a restart, or resent:
    /// they were admitted before, so they are taken in anyway); the first
    /// ones to end give back nothing, so the bound holds again.
    beyond_room: usize,
    /// The pending timer that will start the next due delivery.
    wakeup: Option<SpawnHandle>,
    circuit: Circuit,
    /// With a max rate: the earliest the next attempt may start.
    next_start: Instant,
    metrics: SubscriptionMetrics,
}

/// Stops delivering (the subscription was paused or deleted). In-flight
/// attempts are abandoned; their deliveries stay pending and resume later.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Stop> for DeliveryActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Failed deliveries put back in the queue (already saved as pending).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Requeue(pub Vec<DeliveryRecord>);

impl Handler<Requeue> for DeliveryActor {
    type Result = ();

    fn handle(&mut self, Requeue(records): Requeue, ctx: &mut Self::Context) {
        let now = Instant::now();
        for record in records {
            if self.in_flight.contains(&record.offset) || self.waiting.contains_key(&record.offset)
            {
                continue;
            }
            self.take_room();
            self.waiting.insert(record.offset, (record, now));
        }
        self.pump(ctx);
    }
}

impl DeliveryActor {
    pub fn new(
        sub: Subscription,
        station: StationHandle,
        log: DeliveryLog,
        metrics: SubscriptionMetrics,
        context: DeliveryContext,
    ) -> Self {
        let circuit = context.circuit;
        Self {
            sub: Rc::new(sub),
            station,
            log,
            context,
            sender: None,
            waiting: BTreeMap::new(),
            messages: HashMap::new(),
            in_flight: BTreeSet::new(),
            unattempted: BTreeSet::new(),
            mark: Arc::new(AtomicU64::new(u64::MAX)),
            room: Arc::new(Semaphore::new(BACKLOG)),
            beyond_room: 0,
            wakeup: None,
            circuit: Circuit::new(circuit),
            next_start: Instant::now(),
            metrics,
        }
    }

    /// Starts what is due, as far as the in-flight limit, the circuit
    /// breaker and the max rate allow; sets a timer for the next one
    /// otherwise.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        self.start_due(ctx);
        self.metrics
            .pending
            .set((self.waiting.len() + self.in_flight.len()) as i64);
        self.metrics.set_circuit(self.circuit.state());
    }

    fn start_due(&mut self, ctx: &mut Context<Self>) {
        let limit = self.sub.in_flight_limit();
        let now = Instant::now();
        while self.in_flight.len() < limit {
            let next = if limit == 1 {
                // Ordered: only the lowest offset may go, when it is due.
                self.waiting
                    .first_key_value()
                    .map(|(o, (_, due))| (*o, *due))
            } else {
                self.waiting
                    .iter()
                    .find(|(_, (_, due))| *due <= now)
                    .or_else(|| self.waiting.iter().min_by_key(|(_, (_, due))| *due))
                    .map(|(o, (_, due))| (*o, *due))
            };
            let Some((offset, due)) = next else { return };
            if due > now {
                self.wake_at(due, ctx);
                return;
            }
            let probe = match self.circuit.permit(now, self.in_flight.len()) {
                Permit::Go => false,
                Permit::Probe => true,
                Permit::WaitUntil(when) => {
                    self.wake_at(when, ctx);
                    return;
                }
                Permit::Wait => return,
            };
            if let Some(rate) = self.sub.max_rate {
                if now < self.next_start {
                    self.wake_at(self.next_start, ctx);
                    return;
                }
                let interval = Duration::from_secs(1) / rate.max(1);
                // Late timers do not slow the rate down: up to one interval of
                // lateness is made up.
                let earliest = now.checked_sub(interval).unwrap_or(now);
                self.next_start = self.next_start.max(earliest) + interval;
            }
            let (record, _) = self.waiting.remove(&offset).expect("just found");
            self.attempt(record, ctx);
            if probe {
                return;
            }
        }
    }

    fn wake_at(&mut self, due: Instant, ctx: &mut Context<Self>) {
        if let Some(handle) = self.wakeup.take() {
            ctx.cancel_future(handle);
        }
        let delay = due.saturating_duration_since(Instant::now());
        self.wakeup = Some(ctx.run_later(delay, |actor, ctx| {
            actor.wakeup = None;
            actor.pump(ctx);
        }));
    }

    fn attempt(&mut self, record: DeliveryRecord, ctx: &mut Context<Self>) {
        self.in_flight.insert(record.offset);
        let message = match self.messages.get(&record.offset) {
            Some(message) => Some(message.clone()),
            None => self.message(record.offset),
        };
        let sub = self.sub.clone();
        let sender = self.sender.clone().expect("started");
        let attempt_number = record.attempts + 1;
        let delivery_id = record.id.clone();
        let work = async move {
            let message = message?;
            if sub.relay {
                let request = match relay_request(&message) {
                    Ok(request) => signed(request, &delivery_id, &sub.secret),
                    Err(error) => return Some(AttemptRecord::unsendable(error)),
                };
                let keep = MAX_RELAYED_RESPONSE;
                return Some(sender.send_keeping(&request, sub.timeout, keep).await);
            }
            let request = webhook_request(
                &sub.url,
                &delivery_id,
                &sub.secret,
                sub.format,
                &message,
                sub.station.as_str(),
                &sub.id,
            );
            Some(sender.send(&request, sub.timeout).await)
        };
        ctx.spawn(work.into_actor(self).map(move |result, actor, ctx| {
            actor.finish(record, attempt_number, result, ctx);
        }));
    }

    /// The message at `offset`, if retention has not removed it.
    fn message(&self, offset: u64) -> Option<Message> {
        let limits = ReadLimits {
            max_messages: 1,
            max_bytes: 1,
        };
        match self.station.read(offset, limits) {
            Ok((batch, _)) => batch.messages.into_iter().find(|m| m.offset == offset),
            Err(error) => {
                tracing::warn!(subscription = %self.sub.id, %error, "reading a message to deliver failed");
                None
            }
        }
    }

    fn finish(
        &mut self,
        mut record: DeliveryRecord,
        number: u32,
        result: Option<AttemptRecord>,
        ctx: &mut Context<Self>,
    ) {
        self.in_flight.remove(&record.offset);
        let now = now_ms();
        record.attempts = number;
        record.updated_at_ms = now;
        if let Some(attempt) = &result {
            self.metrics
                .attempt_seconds
                .observe(attempt.duration.as_secs_f64());
            self.judge_endpoint(attempt);
            if self.sub.relay && number == 1 {
                let outcome = || RelayOutcome::of_attempt(&record.id, attempt);
                self.context
                    .relay_waiters
                    .settle(&record.message_id, outcome);
            }
        }
        let (attempt, verdict) = match result {
            Some(attempt) => (to_storage(number, now, &attempt), attempt.verdict),
            None => {
                let attempt = DeliveryAttemptRecord {
                    number,
                    at_ms: now,
                    error: "the message is no longer stored (retention removed it)".into(),
                    ..Default::default()
                };
                (attempt, Verdict::Permanent)
            }
        };
        record.last_status = attempt.response_status;
        record.last_error = attempt.error.clone();
        let retry_after = match verdict {
            Verdict::Delivered => {
                record.set_status(DeliveryStatus::Completed);
                self.metrics.delivered.inc();
                None
            }
            Verdict::Retry { retry_after }
                if number - record.attempts_before_resend < self.sub.max_attempts =>
            {
                let delay = self.sub.schedule.delay_before(number + 1, retry_after);
                record.next_attempt_at_ms = now + delay.as_millis() as u64;
                self.metrics.failed_attempts.inc();
                self.metrics.retried.inc();
                Some(delay)
            }
            Verdict::Retry { .. } | Verdict::Permanent => {
                record.set_status(DeliveryStatus::Failed);
                self.metrics.failed_attempts.inc();
                self.metrics.dead_lettered.inc();
                if self.sub.relay {
                    self.alert(&record, &attempt, ctx);
                }
                None
            }
        };
        if let Err(error) = self.log.record_attempt(&mut record, attempt) {
            tracing::error!(subscription = %self.sub.id, %error, "recording a delivery attempt failed");
        }
        if self.unattempted.remove(&record.offset) {
            self.publish_mark();
        }
        // Not flushed here: it reaches the disk with the next flush of
        // anyone (admissions, produces, shutdown). Losing it in a crash
        // only repeats an attempt, which at-least-once allows; flushing
        // after every attempt cost a third of the delivery rate.
        match retry_after {
            Some(delay) => {
                let due = Instant::now() + delay;
                self.waiting.insert(record.offset, (record, due));
            }
            None => {
                self.messages.remove(&record.offset);
                self.give_room();
            }
        }
        self.pump(ctx);
    }
}

impl DeliveryActor {
    /// Takes room for a delivery the reader did not admit (resumed or
    /// resent), or counts it as held beyond the room.
    fn take_room(&mut self) {
        match self.room.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(_) => self.beyond_room += 1,
        }
    }

    /// A delivery ended: its room goes back (unless it was beyond it).
    fn give_room(&mut self) {
        if self.beyond_room > 0 {
            self.beyond_room -= 1;
        } else {
            self.room.add_permits(1);
        }
    }

    /// Publishes the lowest never-attempted offset (`u64::MAX`: none) for
    /// the reader to persist with its next admission.
    fn publish_mark(&self) {
        let lowest = self.unattempted.first().copied().unwrap_or(u64::MAX);
        self.mark.store(lowest, Ordering::Release);
    }

    /// Removes finished delivery records older than the retention.
    fn expire_records(&self, retention: Duration) {
        let cutoff = now_ms().saturating_sub(retention.as_millis() as u64);
        match self.log.expire(cutoff, EXPIRE_BATCH) {
            Ok(0) => {}
            Ok(n) => {
                tracing::debug!(subscription = %self.sub.name, removed = n, "expired delivery records")
            }
            Err(error) => {
                tracing::warn!(subscription = %self.sub.name, %error, "expiring delivery records failed")
            }
        }
    }

    /// A relayed request failed for good: log it, and tell the alert URL.
    fn alert(
        &self,
        record: &DeliveryRecord,
        attempt: &DeliveryAttemptRecord,
        ctx: &mut Context<Self>,
    ) {
        let request = self
            .messages
            .get(&record.offset)
            .and_then(|m| relay_request(m).ok());
        let alert = RelayAlert {
            delivery_id: record.id.clone(),
            method: request
                .as_ref()
                .map_or(String::new(), |r| r.method.to_string()),
            url: request.map_or(String::new(), |r| r.url),
            status: u16::try_from(attempt.response_status)
                .ok()
                .filter(|s| *s > 0),
            error: attempt.error.clone(),
            response: attempt.response_body.clone(),
            attempts: record.attempts,
        };
        alert.log();
        let Some(url) = &self.context.alert_url else {
            return;
        };
        let request = alert.request(url, &self.sub.secret);
        let sender = self.sender.clone().expect("started");
        ctx.spawn(
            async move {
                let sent = sender.send(&request, ALERT_TIMEOUT).await;
                if sent.verdict != Verdict::Delivered {
                    tracing::warn!(
                        status = sent.status,
                        error = sent.error.as_deref().unwrap_or(""),
                        "the alert URL did not take the alert"
                    );
                }
            }
            .into_actor(self),
        );
    }

    /// Feeds an attempt's outcome to the circuit breaker: an answer other
    /// than 408, 429 or 5xx means the endpoint works; a retryable outcome
    /// means it may not.
    fn judge_endpoint(&mut self, attempt: &AttemptRecord) {
        let now = Instant::now();
        match attempt.verdict {
            Verdict::Retry { .. } => {
                if self.circuit.failed(now) {
                    tracing::warn!(
                        subscription = %self.sub.name,
                        "the endpoint keeps failing: circuit open, attempts wait for a probe"
                    );
                }
            }
            Verdict::Delivered | Verdict::Permanent if attempt.status.is_some() => {
                if self.circuit.succeeded() {
                    tracing::info!(subscription = %self.sub.name, "the endpoint answers again: circuit closed");
                }
            }
            // Refused before sending (the URL policy): says nothing about
            // the endpoint.
            Verdict::Delivered | Verdict::Permanent => {}
        }
    }
}

fn to_storage(number: u32, at_ms: u64, attempt: &AttemptRecord) -> DeliveryAttemptRecord {
    let headers = |list: &[(String, String)]| {
        list.iter()
            .map(|(key, value)| Header {
                key: key.clone(),
                value: value.clone(),
            })
            .collect()
    };
    DeliveryAttemptRecord {
        number,
        at_ms,
        request_line: attempt.request_line.clone(),
        request_headers: headers(&attempt.request_headers),
        response_status: attempt.status.map_or(0, u32::from),
        response_headers: headers(&attempt.response_headers),
        response_body: attempt
            .response_body
            .slice(..attempt.response_body.len().min(MAX_RECORDED_BODY)),
        duration_ms: attempt.duration.as_millis() as u64,
        error: attempt.error.clone().unwrap_or_default(),
    }
}

impl Actor for DeliveryActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        // Ends the reader too, even while it waits for room.
        self.room.close();
        self.metrics.pending.set(0);
        self.metrics
            .set_circuit(super::circuit::CircuitState::Closed);
    }

    fn started(&mut self, ctx: &mut Self::Context) {
        let policy = self.context.policy.clone();
        let tls = self.context.outbound_tls.clone();
        self.sender = Some(Rc::new(Sender::new(policy, tls, CONNECTIONS)));
        let retention = self.context.record_retention;
        if !retention.is_zero() {
            let every = (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
            ctx.run_interval(every, move |actor, _| actor.expire_records(retention));
        }
        // Resume pending deliveries at their due times.
        let pending = self.log.pending().unwrap_or_else(|error| {
            tracing::error!(subscription = %self.sub.id, %error, "reading pending deliveries failed");
            Vec::new()
        });
        let now_ms = now_ms();
        for record in pending {
            if record.attempts == 0 {
                self.unattempted.insert(record.offset);
            }
            let wait = Duration::from_millis(record.next_attempt_at_ms.saturating_sub(now_ms));
            self.waiting
                .insert(record.offset, (record, Instant::now() + wait));
            self.take_room();
        }
        let cursor = match self.log.cursor() {
            Ok(cursor) => cursor.unwrap_or(self.sub.start_offset),
            Err(error) => {
                tracing::error!(subscription = %self.sub.id, %error, "reading the cursor failed");
                ctx.stop();
                return;
            }
        };
        self.publish_mark();
        actix::spawn(read_station(
            ctx.address(),
            self.sub.clone().as_ref().clone(),
            self.station.clone(),
            self.log.clone(),
            Admission {
                group_commit: self.context.group_commit.clone(),
                room: self.room.clone(),
                mark: self.mark.clone(),
            },
            cursor,
        ));
        self.pump(ctx);
    }
}

impl Handler<Admitted> for DeliveryActor {
    type Result = ();

    fn handle(&mut self, Admitted(admitted): Admitted, ctx: &mut Self::Context) {
        let now = Instant::now();
        for (record, message) in admitted {
            self.unattempted.insert(record.offset);
            self.messages.insert(record.offset, message);
            self.waiting.insert(record.offset, (record, now));
        }
        // Before the reader admits more (it awaits this message): its next
        // mark must count these.
        self.publish_mark();
        self.pump(ctx);
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, sync::Mutex};

    use actix_web::{App, HttpResponse, HttpServer, web};

    use super::*;
    use crate::delivery::test_receiver::spawn_on_loopback;
    use crate::{
        Broker,
        delivery::{
            DeliveryMode, RetrySchedule, WebhookSecret, sender::PayloadFormat,
            subscription::DEFAULT_TIMEOUT,
        },
        station::{NewMessage, StationName, StationSettings},
    };

    /// What the receiver saw: (webhook-id, offset, status it answered).
    type Seen = Arc<Mutex<Vec<(String, u64, u16)>>>;

    /// A receiver that fails the first attempt of every delivery with 500
    /// on `/flaky`, and answers 410 on `/gone`.
    fn receiver(seen: Seen) -> String {
        let tries: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        spawn_on_loopback(|listener| {
            HttpServer::new(move || {
                let seen = seen.clone();
                let tries = tries.clone();
                App::new().route(
                    "/{mode}",
                    web::post().to(
                        move |mode: web::Path<String>,
                              request: actix_web::HttpRequest,
                              body: web::Bytes| {
                            let seen = seen.clone();
                            let tries = tries.clone();
                            async move {
                                let id = request
                                    .headers()
                                    .get("webhook-id")
                                    .unwrap()
                                    .to_str()
                                    .unwrap()
                                    .to_owned();
                                let event: serde_json::Value =
                                    serde_json::from_slice(&body).unwrap();
                                let offset = event["depotoffset"].as_u64().unwrap();
                                let status = match mode.as_str() {
                                    "gone" => 410,
                                    _ => {
                                        let mut tries = tries.lock().unwrap();
                                        let n = tries.entry(id.clone()).or_default();
                                        *n += 1;
                                        if *n == 1 { 500 } else { 200 }
                                    }
                                };
                                seen.lock().unwrap().push((id, offset, status));
                                HttpResponse::build(
                                    actix_web::http::StatusCode::from_u16(status).unwrap(),
                                )
                                .finish()
                            }
                        },
                    ),
                )
            })
            .workers(1)
            .listen(listener)
            .map(|server| server.run())
        })
    }

    async fn broker_with_messages(dir: &std::path::Path, count: usize) -> (Broker, StationHandle) {
        let broker = Broker::open_for_test(dir, |_| {});
        let root = broker.principal("root").unwrap();
        broker
            .create_station(&root, "orders", StationSettings::default(), String::new())
            .await
            .unwrap();
        let messages = (0..count)
            .map(|i| NewMessage {
                content_type: "application/json".into(),
                payload: format!("{{\"n\":{i}}}").into(),
                ..Default::default()
            })
            .collect();
        broker.produce(&root, "orders", messages).await.unwrap();
        let station = broker.station_for_reading(&root, "orders").unwrap();
        (broker, station)
    }

    fn subscription(url: String, mode: DeliveryMode) -> Subscription {
        Subscription {
            id: "sub-1".into(),
            name: "test".into(),
            station: StationName::parse("orders").unwrap(),
            url,
            secret: WebhookSecret::generate(),
            max_attempts: 3,
            schedule: RetrySchedule::parse("0s,20ms,20ms").unwrap(),
            timeout: DEFAULT_TIMEOUT,
            format: PayloadFormat::CloudEvents,
            filter: Vec::new(),
            mode,
            max_rate: None,
            paused: false,
            created_at_ms: 0,
            created_by: "root".into(),
            start_offset: 0,
            relay: false,
            description: String::new(),
        }
    }

    async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn start(sub: Subscription, station: StationHandle, log: &DeliveryLog, broker: &Broker) {
        let policy = Arc::new(UrlPolicy {
            allow_private: true,
            ..Default::default()
        });
        let metrics = crate::delivery::metrics::DeliveryMetrics::register(&Default::default())
            .unwrap()
            .for_subscription(&sub);
        let context = DeliveryContext {
            group_commit: broker.group_commit(),
            policy,
            circuit: CircuitSettings::default(),
            relay_waiters: Arc::default(),
            alert_url: None,
            record_retention: Duration::ZERO,
            outbound_tls: None,
        };
        DeliveryActor::new(sub, station, log.clone(), metrics, context).start();
    }

    #[actix_rt::test]
    async fn ordered_delivery_retries_in_offset_order_with_a_stable_id() {
        let dir = tempfile::tempdir().unwrap();
        let (broker, station) = broker_with_messages(dir.path(), 10).await;
        let seen: Seen = Arc::default();
        let url = format!("{}/flaky", receiver(seen.clone()));
        let log = DeliveryLog::new(broker.store().db().open_tree("subscription/sub-1").unwrap());
        start(
            subscription(url, DeliveryMode::Ordered),
            station,
            &log,
            &broker,
        );
        // The receiver sees each 200 before the actor records it: wait for
        // the records, not the receiver.
        wait_until("10 completed records", || {
            let (records, _) = log.deliveries(None, None, 100).unwrap();
            records.len() == 10
                && records
                    .iter()
                    .all(|r| r.status() == DeliveryStatus::Completed)
        })
        .await;
        let seen = seen.lock().unwrap().clone();
        // Strictly in order: each message failed once, then succeeded,
        // before the next one was tried at all.
        let offsets: Vec<u64> = seen.iter().map(|s| s.1).collect();
        let expected: Vec<u64> = (0..10).flat_map(|o| [o, o]).collect();
        assert_eq!(offsets, expected);
        for pair in seen.chunks(2) {
            assert_eq!(pair[0].0, pair[1].0, "the webhook-id stays across retries");
            assert_eq!((pair[0].2, pair[1].2), (500, 200));
        }
        let (records, _) = log.deliveries(None, None, 100).unwrap();
        assert_eq!(records.len(), 10);
        for record in &records {
            assert_eq!(record.status(), DeliveryStatus::Completed);
            assert_eq!(record.attempts, 2);
            let attempts = log.attempts(record.offset).unwrap();
            assert_eq!(
                attempts
                    .iter()
                    .map(|a| a.response_status)
                    .collect::<Vec<_>>(),
                [500, 200]
            );
        }
        assert_eq!(log.cursor().unwrap(), Some(10));
    }

    #[actix_rt::test]
    async fn permanent_failures_end_after_one_attempt_and_new_messages_wake_the_actor() {
        let dir = tempfile::tempdir().unwrap();
        let (broker, station) = broker_with_messages(dir.path(), 5).await;
        let seen: Seen = Arc::default();
        let url = format!("{}/gone", receiver(seen.clone()));
        let log = DeliveryLog::new(broker.store().db().open_tree("subscription/sub-1").unwrap());
        start(
            subscription(url, DeliveryMode::Concurrent(4)),
            station,
            &log,
            &broker,
        );
        wait_until("5 attempts", || seen.lock().unwrap().len() == 5).await;
        // A message produced later is picked up without polling.
        let root = broker.principal("root").unwrap();
        let late = NewMessage {
            content_type: "application/json".into(),
            payload: "{}".into(),
            ..Default::default()
        };
        broker.produce(&root, "orders", vec![late]).await.unwrap();
        wait_until("the late message", || seen.lock().unwrap().len() == 6).await;
        wait_until("failed records", || {
            log.deliveries(None, Some(DeliveryStatus::Failed), 100)
                .unwrap()
                .0
                .len()
                == 6
        })
        .await;
        let (failed, _) = log
            .deliveries(None, Some(DeliveryStatus::Failed), 100)
            .unwrap();
        assert!(
            failed
                .iter()
                .all(|d| d.attempts == 1 && d.last_status == 410)
        );
    }
}
