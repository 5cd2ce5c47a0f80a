//! The broker in this process: calls go straight to the core.

use futures::{FutureExt, future::BoxFuture};

use depot_broker::{
    Broker, BrokerError,
    auth::ROOT_USER,
    client::Secret,
    server::{convert, operations},
};
use depot_schemas::wire::{
    ErrorCode, NewMessage, ProduceOutcome, request::Op, response::Result as Reply,
};

use super::{BrokerLink, LinkError, LinkResult};

pub struct EmbeddedBroker {
    broker: Broker,
}

impl EmbeddedBroker {
    pub fn new(broker: Broker) -> Self {
        Self { broker }
    }
}

fn refused(error: BrokerError) -> LinkError {
    LinkError::Refused {
        code: convert::error_code(&error),
        message: error.to_string(),
    }
}

impl BrokerLink for EmbeddedBroker {
    fn authenticate(&self, username: String, secret: Secret) -> BoxFuture<'_, LinkResult<()>> {
        async move {
            self.broker
                .authenticate(&username, secret)
                .await
                .map(drop)
                .map_err(refused)
        }
        .boxed()
    }

    fn produce(
        &self,
        username: String,
        station: String,
        messages: Vec<NewMessage>,
    ) -> BoxFuture<'_, LinkResult<Vec<ProduceOutcome>>> {
        async move {
            let producer = self.broker.principal(&username).map_err(refused)?;
            let messages = messages.into_iter().map(convert::new_message).collect();
            let outcomes = self
                .broker
                .produce(&producer, &station, messages)
                .await
                .map_err(refused)?;
            Ok(outcomes.into_iter().map(convert::produce_outcome).collect())
        }
        .boxed()
    }

    fn signing_key(&self) -> BoxFuture<'_, LinkResult<Vec<u8>>> {
        async move {
            let root = self.broker.principal(ROOT_USER).map_err(refused)?;
            self.broker.signing_key(&root).map_err(refused)
        }
        .boxed()
    }

    fn call_as(&self, username: String, op: Op) -> BoxFuture<'_, LinkResult<Reply>> {
        async move {
            let who = self.broker.principal(&username).map_err(refused)?;
            // The wire server's own dispatch: one implementation of every
            // operation, whichever edge it arrives through.
            match operations::run(&self.broker, &who, op).await {
                Reply::Error(error) => Err(LinkError::Refused {
                    code: ErrorCode::try_from(error.code).unwrap_or(ErrorCode::Unspecified),
                    message: error.message,
                }),
                reply => Ok(reply),
            }
        }
        .boxed()
    }

    fn consume_token(
        &self,
        username: String,
        jti: String,
        expires_at_ms: u64,
    ) -> BoxFuture<'_, LinkResult<bool>> {
        async move {
            let root = self.broker.principal(ROOT_USER).map_err(refused)?;
            self.broker
                .consume_token(&root, &username, &jti, expires_at_ms)
                .await
                .map_err(refused)
        }
        .boxed()
    }

    fn ready(&self) -> BoxFuture<'_, bool> {
        async { true }.boxed()
    }
}
