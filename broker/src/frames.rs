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
        while let Ok(next) = queue.try_recv() {
            if sink.feed(next).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}
