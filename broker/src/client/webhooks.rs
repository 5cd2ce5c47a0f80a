//! Webhook subscription operations of [`BrokerClient`] (not to be confused
//! with wire subscriptions, `subscription.rs`, which stream a station).

use depot_schemas::wire::{self, request::Op, response::Result as Reply};

use crate::client::{BrokerClient, ClientResult, unexpected};

impl BrokerClient {
    pub async fn create_subscription(
        &self,
        create: wire::CreateSubscription,
    ) -> ClientResult<wire::SubscriptionInfo> {
        expect_subscription(self.call(Op::CreateSubscription(create)).await?)
    }

    pub async fn list_subscriptions(
        &self,
        station: &str,
    ) -> ClientResult<Vec<wire::SubscriptionInfo>> {
        let op = Op::ListSubscriptions(wire::ListSubscriptions {
            station: station.to_owned(),
        });
        match self.call(op).await? {
            Reply::SubscriptionList(list) => Ok(list.subscriptions),
            other => Err(unexpected(other)),
        }
    }

    pub async fn describe_subscription(&self, id: &str) -> ClientResult<wire::SubscriptionInfo> {
        let op = Op::DescribeSubscription(wire::DescribeSubscription {
            subscription: id.to_owned(),
        });
        expect_subscription(self.call(op).await?)
    }

    /// Pauses (`true`) or resumes (`false`) a subscription.
    pub async fn pause_subscription(
        &self,
        id: &str,
        paused: bool,
    ) -> ClientResult<wire::SubscriptionInfo> {
        let subscription = id.to_owned();
        let op = if paused {
            Op::PauseSubscription(wire::PauseSubscription { subscription })
        } else {
            Op::ResumeSubscription(wire::ResumeSubscription { subscription })
        };
        expect_subscription(self.call(op).await?)
    }

    pub async fn delete_subscription(&self, id: &str) -> ClientResult<()> {
        let op = Op::DeleteSubscription(wire::DeleteSubscription {
            subscription: id.to_owned(),
        });
        match self.call(op).await? {
            Reply::Done(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub async fn list_deliveries(
        &self,
        list: wire::ListDeliveries,
    ) -> ClientResult<wire::DeliveryList> {
        match self.call(Op::ListDeliveries(list)).await? {
            Reply::DeliveryList(list) => Ok(list),
            other => Err(unexpected(other)),
        }
    }
}

impl BrokerClient {
    /// Puts failed deliveries back in the queue; returns how many.
    pub async fn resend_deliveries(&self, resend: wire::ResendDeliveries) -> ClientResult<u32> {
        match self.call(Op::ResendDeliveries(resend)).await? {
            Reply::DeliveriesResent(resent) => Ok(resent.count),
            other => Err(unexpected(other)),
        }
    }
}

impl BrokerClient {
    pub async fn update_subscription(
        &self,
        update: wire::UpdateSubscription,
    ) -> ClientResult<wire::SubscriptionInfo> {
        expect_subscription(self.call(Op::UpdateSubscription(update)).await?)
    }

    /// A delivery by id, with its attempts and message.
    pub async fn get_delivery(&self, id: &str) -> ClientResult<wire::DeliveryDetail> {
        let op = Op::GetDelivery(wire::GetDelivery { id: id.to_owned() });
        match self.call(op).await? {
            Reply::DeliveryDetail(detail) => Ok(detail),
            other => Err(unexpected(other)),
        }
    }

    /// An attempt by id (`<delivery id>.<number>`).
    pub async fn get_delivery_attempt(&self, id: &str) -> ClientResult<wire::DeliveryAttempt> {
        let op = Op::GetDeliveryAttempt(wire::GetDeliveryAttempt { id: id.to_owned() });
        match self.call(op).await? {
            Reply::DeliveryAttempt(attempt) => Ok(attempt),
            other => Err(unexpected(other)),
        }
    }

    /// The broker's Prometheus metrics, as text.
    pub async fn metrics(&self) -> ClientResult<String> {
        match self.call(Op::GetMetrics(wire::GetMetrics {})).await? {
            Reply::Metrics(metrics) => Ok(metrics.text),
            other => Err(unexpected(other)),
        }
    }
}

impl BrokerClient {
    /// Relays one HTTP request; answers with its first attempt's outcome.
    pub async fn relay(&self, relay: wire::Relay) -> ClientResult<wire::RelayResult> {
        match self.call(Op::Relay(relay)).await? {
            Reply::RelayResult(result) => Ok(result),
            other => Err(unexpected(other)),
        }
    }
}

fn expect_subscription(reply: Reply) -> ClientResult<wire::SubscriptionInfo> {
    match reply {
        Reply::Subscription(info) => Ok(info),
        other => Err(unexpected(other)),
    }
}
