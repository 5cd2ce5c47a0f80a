//! [`Places`]: how many of something this proxy holds against a limit
//! (open WebSockets, event streams, fetches waiting for messages). A holder
//! keeps its [`Place`] for as long as it lasts; dropping it gives the place
//! back, whichever way the holder ends.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

/// A count of places taken.
#[derive(Default)]
pub struct Places(Arc<AtomicUsize>);

/// One place taken; given back when dropped.
pub struct Place(Arc<AtomicUsize>);

impl Places {
    /// A place, or `None` when `limit` are taken already.
    pub fn take(&self, limit: usize) -> Option<Place> {
        if self.0.fetch_add(1, Ordering::Relaxed) >= limit {
            self.0.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Place(self.0.clone()))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_limited_and_come_back_when_dropped() {
        let places = Places::default();
        let first = places.take(2).unwrap();
        let _second = places.take(2).unwrap();
        assert!(places.take(2).is_none());
        drop(first);
        assert!(places.take(2).is_some());
    }
}
