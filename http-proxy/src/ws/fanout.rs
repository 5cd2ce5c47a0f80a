//! [`Fanout`]: one feed per station for all of this proxy's WebSocket
//! subscriptions that start at the latest message. The feed follows the
//! station once, serialises each message's frame once, and broadcasts it;
//! each connection only filters and forwards. (Subscriptions from an offset
//! replay history, so they follow the station on their own.)
//!
//! A connection that falls behind the broadcast buffer has lost frames: it
//! is closed as too slow, like one whose send buffer stays full.

use std::{
    collections::HashMap,
    sync::{Arc, Weak},
};

use bytestring::ByteString;
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use depot_broker::auth::ROOT_USER;

use crate::{
    broker_link::{Caller, FollowFrom, SharedLink},
    ws::protocol,
};

/// Frames a feed holds for its slowest subscriber.
const FEED_BUFFER: usize = 8192;

/// One message, ready to send (or the end of the feed).
pub struct Pushed {
    pub offset: u64,
    /// For per-connection header filters.
    pub headers: Vec<(String, String)>,
    /// The serialised frame, shared by every connection.
    pub frame: ByteString,
    /// The feed ended (the station is gone, or the broker): `frame` says so.
    pub ended: bool,
}

struct Feed {
    sender: broadcast::Sender<Arc<Pushed>>,
    /// Set when the feed's follow ended: new subscribers start a new one.
    ended: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
pub struct Fanout {
    feeds: Mutex<HashMap<String, Weak<Feed>>>,
}

/// A connection's place on a feed (the feed lives while anyone holds one).
pub struct FeedReceiver {
    feed: Arc<Feed>,
    receiver: broadcast::Receiver<Arc<Pushed>>,
}

impl FeedReceiver {
    /// The next message (the feed stays alive while this is awaited).
    pub async fn recv(&mut self) -> Result<Arc<Pushed>, broadcast::error::RecvError> {
        debug_assert!(Arc::strong_count(&self.feed) > 0);
        self.receiver.recv().await
    }
}

impl Fanout {
    /// A receiver on the station's feed, starting one when there is none.
    /// Subscribe before checking the caller's right and learning the start
    /// offset: then nothing at or after that offset can be missed.
    pub async fn receiver(&self, link: &SharedLink, station: &str) -> Result<FeedReceiver, String> {
        let live = self
            .feeds
            .lock()
            .get(station)
            .and_then(Weak::upgrade)
            .filter(|feed| !feed.ended.load(std::sync::atomic::Ordering::Acquire));
        if let Some(feed) = live {
            let receiver = feed.sender.subscribe();
            return Ok(FeedReceiver { feed, receiver });
        }
        let (sender, receiver) = broadcast::channel(FEED_BUFFER);
        let feed = Arc::new(Feed {
            sender: sender.clone(),
            ended: Default::default(),
        });
        let (into, batches) = mpsc::channel(4);
        link.follow(
            Caller::internal(ROOT_USER),
            station.to_owned(),
            FollowFrom::Latest,
            into,
        )
        .await
        .map_err(|e| e.to_string())?;
        actix_web::rt::spawn(run_feed(station.to_owned(), batches, Arc::downgrade(&feed)));
        self.feeds
            .lock()
            .insert(station.to_owned(), Arc::downgrade(&feed));
        Ok(FeedReceiver { feed, receiver })
    }
}

/// Broadcasts the station's messages until nobody holds the feed.
async fn run_feed(
    station: String,
    mut batches: mpsc::Receiver<
        crate::broker_link::LinkResult<Vec<depot_schemas::wire::StoredMessage>>,
    >,
    feed: Weak<Feed>,
) {
    let ended = loop {
        let messages = match batches.recv().await {
            Some(Ok(messages)) => messages,
            Some(Err(error)) => break error.to_string(),
            None => break "the station's feed ended".to_owned(),
        };
        let Some(feed) = feed.upgrade() else {
            return;
        };
        for message in &messages {
            let pushed = Pushed {
                offset: message.offset,
                headers: message
                    .headers
                    .iter()
                    .map(|h| (h.key.clone(), h.value.clone()))
                    .collect(),
                frame: protocol::message(&station, message).to_string().into(),
                ended: false,
            };
            // No receiver now: fine, the next subscriber starts later.
            let _ = feed.sender.send(Arc::new(pushed));
        }
    };
    if let Some(feed) = feed.upgrade() {
        feed.ended.store(true, std::sync::atomic::Ordering::Release);
        let error = format!("the subscription to {station} ended: {ended}");
        let frame = json!({ "action": "error", "station": station, "error": error });
        let _ = feed.sender.send(Arc::new(Pushed {
            offset: u64::MAX,
            headers: Vec::new(),
            frame: frame.to_string().into(),
            ended: true,
        }));
    }
}
