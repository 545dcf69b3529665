//! A lock per key, in this process: writers of the same row wait for each other here, in
//! arrival order, before they take a pooled connection, so that waiting holds no connection.
//!
//! The database's own row lock still serialises writers of different instances; this queue
//! only stops writers of one instance from lining up *inside* the database. Without it, a
//! burst of bookings of one expert filled the pool with transactions waiting on that
//! expert's row, and every other request of the instance waited for a connection
//! (docs/scale.md, "Where twice the peak breaks").

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// Locks by key; an entry lives while someone holds or waits for it.
#[derive(Default)]
pub struct KeyedLocks {
    entries: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

/// The lock of one key, held until dropped.
pub struct KeyGuard<'a> {
    locks: &'a KeyedLocks,
    key: String,
    entry: Arc<AsyncMutex<()>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    /// Waits for the key's turn (first come, first served: tokio's mutex is fair).
    pub async fn lock(&self, key: &str) -> KeyGuard<'_> {
        let entry = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries.entry(key.to_string()).or_default().clone()
        };
        // Cancelled here (the request dropped), `guard` is None and the drop below still
        // removes an entry nobody else holds.
        let mut held = KeyGuard { locks: self, key: key.to_string(), entry: entry.clone(), guard: None };
        held.guard = Some(entry.lock_owned().await);
        held
    }

    /// Keys with a holder or a waiter.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let mut entries = self.locks.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.guard.take();
        // Under the map's lock no one can take a new reference: the map's and ours are the
        // only two left when no one else holds or waits.
        if Arc::strong_count(&self.entry) == 2 {
            entries.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_holder_per_key_and_other_keys_pass() {
        let locks = KeyedLocks::default();
        let a = locks.lock("expert-a").await;
        // Another key is not held up.
        let b = tokio::time::timeout(Duration::from_millis(100), locks.lock("expert-b")).await;
        assert!(b.is_ok(), "another key waited");
        drop(b);
        // The same key waits until the holder lets go.
        let again = tokio::time::timeout(Duration::from_millis(50), locks.lock("expert-a")).await;
        assert!(again.is_err(), "the same key was granted twice");
        drop(a);
        let again = tokio::time::timeout(Duration::from_millis(100), locks.lock("expert-a")).await;
        assert!(again.is_ok(), "the key was not released");
    }

    #[tokio::test]
    async fn entries_go_when_nobody_holds_or_waits() {
        let locks = KeyedLocks::default();
        {
            let _a = locks.lock("a").await;
            let _b = locks.lock("b").await;
            assert_eq!(locks.len(), 2);
        }
        assert!(locks.is_empty());
        // A waiter that gives up (its request dropped) leaves nothing behind either.
        let held = locks.lock("a").await;
        assert!(tokio::time::timeout(Duration::from_millis(20), locks.lock("a")).await.is_err());
        assert_eq!(locks.len(), 1);
        drop(held);
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn waiters_are_served_in_arrival_order() {
        let locks = Arc::new(KeyedLocks::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = locks.lock("x").await;
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (locks, order) = (locks.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _g = locks.lock("x").await;
                order.lock().unwrap().push(i);
            }));
            // Each waiter queued before the next is spawned.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
        assert!(locks.is_empty());
    }
}
