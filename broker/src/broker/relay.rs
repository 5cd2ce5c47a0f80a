//! Relaying one HTTP request: stored as a message of `depot.relay`, tried at
//! once by that station's delivery actor, answered with the first
//! attempt's outcome; retried in the background when it did not arrive.

use uuid::Uuid;

use crate::{
    auth::Principal,
    broker::Broker,
    clock::now_ms,
    delivery::{
        DeliveryMode, RetrySchedule, Subscription, WebhookSecret,
        relay::{
            RELAY_STATION, RELAY_SUBSCRIPTION, RelayOutcome, RelayRequest, first_attempt_patience,
        },
        sender::PayloadFormat,
        subscription::{DEFAULT_CONCURRENCY, DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT},
    },
    error::{BrokerError, BrokerResult},
    registry::CreateStation,
    station::{ProduceOutcome, StationName, StationSettings},
};

impl Broker {
    /// Relays `request` as `who`, who needs the right to produce to
    /// `depot.relay`. Answers when the first attempt has ended (or when
    /// waiting longer makes no sense: the request stays queued).
    pub async fn relay(
        &self,
        who: &Principal,
        mut request: RelayRequest,
    ) -> BrokerResult<RelayOutcome> {
        request.validate().map_err(BrokerError::bad_request)?;
        self.inner
            .deliveries
            .policy()
            .check_url(&request.url)
            .map_err(BrokerError::bad_request)?;
        let station = StationName::parse(RELAY_STATION)?;
        who.require_produce(&station)?;
        let sub = self.relay_subscription().await?;
        let message_id = Uuid::now_v7().to_string();
        let waiters = self.inner.deliveries.relay_waiters();
        let first_attempt = waiters.register(&message_id);
        let message = request.into_message(message_id.clone());
        let offset = match self.produce(who, RELAY_STATION, vec![message]).await {
            Ok(outcomes) => match outcomes.into_iter().next() {
                Some(ProduceOutcome::Stored { offset } | ProduceOutcome::Duplicate { offset }) => {
                    offset
                }
                Some(ProduceOutcome::Rejected { reason }) => {
                    waiters.forget(&message_id);
                    return Err(BrokerError::Rejected(reason));
                }
                None => unreachable!("one outcome per message"),
            },
            Err(error) => {
                waiters.forget(&message_id);
                return Err(error);
            }
        };
        let patience = first_attempt_patience(sub.timeout);
        match tokio::time::timeout(patience, first_attempt).await {
            Ok(Ok(outcome)) => Ok(outcome),
            // Still in the queue (behind others, or paused): it will be
            // tried; the caller learns its delivery id, when it has one.
            _ => {
                waiters.forget(&message_id);
                let (_, log) = self.inner.deliveries.log(&sub.id)?;
                let delivery_id = log.delivery(offset)?.map(|d| d.id).unwrap_or_default();
                Ok(RelayOutcome::still_queued(delivery_id))
            }
        }
    }

    /// The relay's station and subscription, made on first use.
    async fn relay_subscription(&self) -> BrokerResult<Subscription> {
        if let Ok(sub) = self.inner.deliveries.find(RELAY_SUBSCRIPTION) {
            return Ok(sub);
        }
        let name = StationName::parse(RELAY_STATION)?;
        self.registry(CreateStation {
            name: name.clone(),
            settings: StationSettings::default(),
            description: "Depot's relay: each message is one HTTP request to deliver".into(),
            if_absent: true,
        })
        .await??;
        let sub = Subscription {
            id: Uuid::now_v7().to_string(),
            name: RELAY_SUBSCRIPTION.to_owned(),
            description: "Depot's relay: delivers each relayed request to its URL".to_owned(),
            station: name,
            url: String::new(),
            secret: WebhookSecret::generate(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            schedule: RetrySchedule::default(),
            timeout: DEFAULT_TIMEOUT,
            format: PayloadFormat::Raw,
            filter: Vec::new(),
            mode: DeliveryMode::Concurrent(DEFAULT_CONCURRENCY),
            max_rate: None,
            paused: false,
            created_at_ms: now_ms(),
            created_by: "depot".to_owned(),
            start_offset: 0,
            relay: true,
        };
        match self.inner.deliveries.create(sub, &self.inner.directory) {
            Ok(()) => {}
            // Two first relays at once: the other one made it.
            Err(BrokerError::BadRequest { .. }) => {}
            Err(error) => return Err(error),
        }
        self.inner.deliveries.find(RELAY_SUBSCRIPTION)
    }
}
