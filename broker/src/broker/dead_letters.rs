//! Dead letters: listing what a station's schema refused (or a consumer's
//! workers never acknowledged), resending it once the schema (or the data,
//! or the worker) is fixed, and deleting what nobody wants back.
//! Administrators only.

use depot_schemas::storage::DeadLetterRecord;

use crate::{
    auth::Principal,
    broker::{Broker, stations::append},
    error::{BrokerError, BrokerResult},
    schema::Accepted,
    station::{NewMessage, ProduceOutcome, RejectReason, StationHandle, StationName},
};

/// Which dead letters a resend takes.
#[derive(Debug, Clone)]
pub enum ResendSelection {
    Ids(Vec<u64>),
    /// Every dead letter after this id, at most `limit`.
    All {
        after: u64,
        limit: usize,
    },
}

/// What a resend did with one dead letter.
#[derive(Debug)]
pub struct ResendOutcome {
    pub id: u64,
    /// The offset it was produced at, or why it stays a dead letter.
    pub result: Result<u64, BrokerError>,
}

impl Broker {
    /// Up to `limit` dead letters after `after`, oldest first, and whether
    /// more follow.
    pub fn list_dead_letters(
        &self,
        who: &Principal,
        station: &str,
        after: u64,
        limit: usize,
    ) -> BrokerResult<(Vec<DeadLetterRecord>, bool)> {
        who.require_admin()?;
        let station = self.station(&StationName::parse(station)?)?;
        station.dead_letters.list(after, limit)
    }

    pub fn dead_letter(
        &self,
        who: &Principal,
        station: &str,
        id: u64,
    ) -> BrokerResult<DeadLetterRecord> {
        who.require_admin()?;
        let station = self.station(&StationName::parse(station)?)?;
        station
            .dead_letters
            .get(id)?
            .ok_or_else(|| BrokerError::DeadLetterNotFound {
                station: station.name.to_string(),
                id,
            })
    }

    /// Revalidates dead letters against the station's current schema: those
    /// that pass are produced (as their original producer, in id order) and
    /// removed; those that fail stay, with the new reason. Returns one
    /// outcome per dead letter and, for `All`, whether more remain.
    pub async fn resend_dead_letters(
        &self,
        who: &Principal,
        station: &str,
        selection: ResendSelection,
    ) -> BrokerResult<(Vec<ResendOutcome>, bool)> {
        who.require_admin()?;
        let station = self.station(&StationName::parse(station)?)?;
        let (letters, more) = match selection {
            ResendSelection::All { after, limit } => station.dead_letters.list(after, limit)?,
            ResendSelection::Ids(ids) => {
                let mut letters = Vec::with_capacity(ids.len());
                for id in ids {
                    match station.dead_letters.get(id)? {
                        Some(letter) => letters.push(Ok(letter)),
                        None => letters.push(Err(id)),
                    }
                }
                return self.resend(&station, letters).await.map(|o| (o, false));
            }
        };
        let outcomes = self
            .resend(&station, letters.into_iter().map(Ok).collect())
            .await?;
        Ok((outcomes, more))
    }

    /// Deletes these dead letters for good; returns how many were there.
    /// Durable before it returns (no flush when none was there).
    pub async fn delete_dead_letters(
        &self,
        who: &Principal,
        station: &str,
        ids: &[u64],
    ) -> BrokerResult<u64> {
        who.require_admin()?;
        let station = self.station(&StationName::parse(station)?)?;
        let mut deleted = 0;
        for &id in ids {
            deleted += u64::from(station.dead_letters.remove(id)?);
        }
        if deleted > 0 {
            self.inner.group_commit.commit().await?;
        }
        Ok(deleted)
    }

    /// Deletes the station's oldest dead letters with ids up to `up_to`
    /// (0: the newest now), at most `limit`. Returns how many, the `up_to`
    /// it used (for the next call) and whether any up to it remain.
    /// Durable before it returns.
    pub async fn delete_oldest_dead_letters(
        &self,
        who: &Principal,
        station: &str,
        up_to: u64,
        limit: usize,
    ) -> BrokerResult<(u64, u64, bool)> {
        who.require_admin()?;
        let station = self.station(&StationName::parse(station)?)?;
        let up_to = match up_to {
            0 => station.dead_letters.newest_id()?,
            id => id,
        };
        let (deleted, more) = station.dead_letters.remove_oldest(up_to, limit)?;
        if deleted > 0 {
            self.inner.group_commit.commit().await?;
        }
        Ok((deleted as u64, up_to, more))
    }

    async fn resend(
        &self,
        station: &StationHandle,
        letters: Vec<Result<DeadLetterRecord, u64>>,
    ) -> BrokerResult<Vec<ResendOutcome>> {
        let attachment = station.schema.read().clone();
        let schema = match attachment {
            Some(attachment) => Some(self.inner.schemas.compiled(&attachment)?),
            None => None,
        };
        let mut outcomes = Vec::with_capacity(letters.len());
        let mut pending = Vec::new();
        for letter in letters {
            let mut letter = match letter {
                Ok(letter) => letter,
                Err(id) => {
                    let station = station.name.to_string();
                    let result = Err(BrokerError::DeadLetterNotFound { station, id });
                    outcomes.push(ResendOutcome { id, result });
                    continue;
                }
            };
            let checked = match &schema {
                Some(schema) => schema
                    .validator
                    .check(&letter.content_type, &letter.payload),
                None => Ok(Accepted::AsIs),
            };
            let message = match checked {
                Ok(accepted) => to_message(letter.clone(), accepted),
                Err(failure) => {
                    letter.reason = failure.to_string();
                    if let Some(schema) = &schema {
                        letter.schema = schema.schema.clone();
                        letter.schema_version = schema.version;
                    }
                    station.dead_letters.put(&letter)?;
                    let result = Err(BrokerError::Rejected(RejectReason::Invalid(failure)));
                    outcomes.push(ResendOutcome {
                        id: letter.id,
                        result,
                    });
                    continue;
                }
            };
            // One produce per letter: each keeps its original producer.
            let appended = append(station, letter.producer.clone(), vec![message]);
            let id = letter.id;
            pending.push((outcomes.len(), letter, appended));
            // Replaced below once the append is answered.
            outcomes.push(ResendOutcome { id, result: Ok(0) });
        }
        for (index, letter, appended) in pending {
            let result = match appended.await?.pop() {
                Some(ProduceOutcome::Stored { offset } | ProduceOutcome::Duplicate { offset }) => {
                    station.dead_letters.remove(letter.id)?;
                    Ok(offset)
                }
                Some(ProduceOutcome::Rejected { reason }) => Err(BrokerError::Rejected(reason)),
                None => Err(BrokerError::ShuttingDown),
            };
            outcomes[index] = ResendOutcome {
                id: letter.id,
                result,
            };
        }
        // Removals and new reasons are durable before the caller hears.
        self.inner.group_commit.commit().await?;
        Ok(outcomes)
    }
}

fn to_message(letter: DeadLetterRecord, accepted: Accepted) -> NewMessage {
    let mut message = NewMessage {
        msg_id: (!letter.msg_id.is_empty()).then_some(letter.msg_id),
        headers: letter
            .headers
            .into_iter()
            .map(|h| (h.key, h.value))
            .collect(),
        content_type: letter.content_type,
        payload: letter.payload,
    };
    accepted.apply(&mut message);
    message
}
