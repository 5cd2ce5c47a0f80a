//! Draining a queue of outgoing frames into a socket, batched: everything
//! queued is encoded into the buffer and written with one flush. Shared by
//! the server's connections and the client.
//!
//! The server's answers need one more step to batch well. The answers one
//! flush releases are handed to their tasks one at a time, from the flushing
//! thread, so the writer wakes for the first before the others are queued;
//! when more answers are pending it yields once, letting them join the
//! write. It yields only then: a yield costs the thread a pass through its
//! event loop, ~10% more broker CPU per message when every producer has its
//! own connection and nothing else could join.

use futures::{Sink, SinkExt};
use tokio::sync::mpsc;

/// Writes queued items until the queue closes or the sink fails. Before
/// each write, while `more_pending()` says other items may be about to be
/// queued, it yields once to let them join.
pub async fn write_queued<T, S>(
    mut sink: S,
    mut queue: mpsc::Receiver<T>,
    more_pending: impl Fn() -> bool,
) where
    S: Sink<T> + Unpin,
{
    while let Some(first) = queue.recv().await {
        if sink.feed(first).await.is_err() {
            return;
        }
        if feed_ready(&mut sink, &mut queue).await.is_err() {
            return;
        }
        if more_pending() {
            // Items about to be queued by tasks already woken on this
            // thread (answers released by the same flush) join this write.
            tokio::task::yield_now().await;
            if feed_ready(&mut sink, &mut queue).await.is_err() {
                return;
            }
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

#[cfg(test)]
mod tests {
    use std::{
        pin::Pin,
        sync::{Arc, Mutex},
        task::{Context, Poll},
    };

    use tokio::sync::Notify;

    use super::*;

    /// A sink that records what each flush wrote.
    #[derive(Default)]
    struct Writes {
        pending: Vec<u32>,
        flushed: Arc<Mutex<Vec<Vec<u32>>>>,
    }

    impl Sink<u32> for Writes {
        type Error = ();

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            Poll::Ready(Ok(()))
        }

        fn start_send(mut self: Pin<&mut Self>, item: u32) -> Result<(), ()> {
            self.pending.push(item);
            Ok(())
        }

        fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
            let written = std::mem::take(&mut self.pending);
            self.flushed.lock().unwrap().push(written);
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
            self.poll_flush(cx)
        }
    }

    /// The first answer wakes the writer before the tasks holding the
    /// others run, as when one flush releases many answers. With more
    /// pending, they leave in one write; without, as they come.
    #[tokio::test(flavor = "current_thread")]
    async fn answers_released_together_leave_in_one_write_when_more_are_pending() {
        assert_eq!(
            release_ten_answers(true).await,
            vec![(0..10).collect::<Vec<_>>()]
        );
        assert_eq!(
            release_ten_answers(false).await,
            vec![vec![0], (1..10).collect::<Vec<_>>()]
        );
    }

    /// Queues answer 0, then releases the tasks holding answers 1 to 9;
    /// returns the writes.
    async fn release_ten_answers(more_pending: bool) -> Vec<Vec<u32>> {
        let writes = Writes::default();
        let flushed = writes.flushed.clone();
        let (answers, queue) = mpsc::channel(64);
        let writer = tokio::spawn(write_queued(writes, queue, move || more_pending));
        let release = Arc::new(Notify::new());
        let others: Vec<_> = (1..10)
            .map(|answer| {
                let (answers, release) = (answers.clone(), release.clone());
                tokio::spawn(async move {
                    release.notified().await;
                    answers.send(answer).await.unwrap();
                })
            })
            .collect();
        // Let every task start waiting for the release.
        tokio::task::yield_now().await;

        answers.send(0).await.unwrap();
        release.notify_waiters();
        for task in others {
            task.await.unwrap();
        }
        drop(answers);
        writer.await.unwrap();
        std::mem::take(&mut *flushed.lock().unwrap())
    }
}
