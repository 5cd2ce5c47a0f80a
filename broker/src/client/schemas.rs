//! Schema and dead-letter operations of [`BrokerClient`].

use depot_schemas::wire::{self, request::Op, response::Result as Reply};

use crate::client::{BrokerClient, ClientResult, unexpected};

impl BrokerClient {
    pub async fn create_schema(
        &self,
        create: wire::CreateSchema,
    ) -> ClientResult<wire::SchemaInfo> {
        expect_schema(self.call(Op::CreateSchema(create)).await?)
    }

    pub async fn update_schema(
        &self,
        update: wire::UpdateSchema,
    ) -> ClientResult<wire::SchemaInfo> {
        expect_schema(self.call(Op::UpdateSchema(update)).await?)
    }

    pub async fn describe_schema(&self, name: &str) -> ClientResult<wire::SchemaInfo> {
        let op = Op::DescribeSchema(wire::DescribeSchema {
            name: name.to_owned(),
        });
        expect_schema(self.call(op).await?)
    }

    pub async fn list_schemas(&self) -> ClientResult<Vec<wire::SchemaInfo>> {
        match self.call(Op::ListSchemas(wire::ListSchemas {})).await? {
            Reply::SchemaList(list) => Ok(list.schemas),
            other => Err(unexpected(other)),
        }
    }

    pub async fn rollback_schema(
        &self,
        name: &str,
        version: u32,
    ) -> ClientResult<wire::SchemaInfo> {
        let op = Op::RollbackSchema(wire::RollbackSchema {
            name: name.to_owned(),
            version,
        });
        expect_schema(self.call(op).await?)
    }

    pub async fn delete_schema(&self, name: &str) -> ClientResult<()> {
        let op = Op::DeleteSchema(wire::DeleteSchema {
            name: name.to_owned(),
        });
        expect_done(self.call(op).await?)
    }

    /// Attaches `schema` to `station`; `version` 0 follows the active one.
    pub async fn attach_schema(
        &self,
        station: &str,
        schema: &str,
        version: u32,
    ) -> ClientResult<()> {
        let op = Op::AttachSchema(wire::AttachSchema {
            station: station.to_owned(),
            schema: Some(wire::SchemaAttachment {
                schema: schema.to_owned(),
                version,
            }),
        });
        expect_done(self.call(op).await?)
    }

    pub async fn detach_schema(&self, station: &str) -> ClientResult<()> {
        let op = Op::DetachSchema(wire::DetachSchema {
            station: station.to_owned(),
        });
        expect_done(self.call(op).await?)
    }

    pub async fn list_dead_letters(
        &self,
        station: &str,
        after_id: u64,
        limit: u32,
    ) -> ClientResult<wire::DeadLetterList> {
        let op = Op::ListDeadLetters(wire::ListDeadLetters {
            station: station.to_owned(),
            after_id,
            limit,
        });
        match self.call(op).await? {
            Reply::DeadLetterList(list) => Ok(list),
            other => Err(unexpected(other)),
        }
    }

    pub async fn dead_letter(&self, station: &str, id: u64) -> ClientResult<wire::DeadLetter> {
        let op = Op::GetDeadLetter(wire::GetDeadLetter {
            station: station.to_owned(),
            id,
        });
        match self.call(op).await? {
            Reply::DeadLetter(letter) => Ok(letter),
            other => Err(unexpected(other)),
        }
    }

    pub async fn resend_dead_letters(
        &self,
        resend: wire::ResendDeadLetters,
    ) -> ClientResult<wire::ResendResult> {
        match self.call(Op::ResendDeadLetters(resend)).await? {
            Reply::ResendResult(result) => Ok(result),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes dead letters: `delete.ids`, or with `all` the oldest up to
    /// `up_to_id` (repeat with the answer's `up_to_id` while `more`).
    pub async fn delete_dead_letters(
        &self,
        delete: wire::DeleteDeadLetters,
    ) -> ClientResult<wire::DeadLettersDeleted> {
        match self.call(Op::DeleteDeadLetters(delete)).await? {
            Reply::DeadLettersDeleted(deleted) => Ok(deleted),
            other => Err(unexpected(other)),
        }
    }
}

fn expect_schema(reply: Reply) -> ClientResult<wire::SchemaInfo> {
    match reply {
        Reply::Schema(info) => Ok(info),
        other => Err(unexpected(other)),
    }
}

fn expect_done(reply: Reply) -> ClientResult<()> {
    match reply {
        Reply::Done(_) => Ok(()),
        other => Err(unexpected(other)),
    }
}
