//! Draining a queue of outgoing frames into a socket, batched: everything
//! queued is encoded into the buffer and written with one flush. Shared by
//! the server's connections and the client.

use futures::{Sink, SinkExt};
use tokio::sync::mpsc;

/// Writes queued items until the queue closes or the sink fails.
pub async fn write_queued<T, S>(mut sink: S, mut queue: mpsc::Receiver<T>)
where
    S: Sink<T> + Unpin,
{
    while let Some(first) = queue.recv().await {
        if sink.feed(first).await.is_err() {
            return;
        }
        if feed_ready(&mut sink, &mut queue).await.is_err() {
            return;
        }
        // Items about to be queued by tasks already woken on this thread
        // (answers released together by one group commit, say) join this
        // write if they get to run first.
        tokio::task::yield_now().await;
        if feed_ready(&mut sink, &mut queue).await.is_err() {
            return;
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}

/// Feeds everything queued right now into the sink, without flushing.
async fn feed_ready<T, S>(sink: &mut S, queue: &mut mpsc::Receiver<T>) -> Result<(), S::Error>
where
    S: Sink<T> + Unpin,
{
    while let Ok(next) = queue.try_recv() {
        sink.feed(next).await?;
    }
    Ok(())
}
