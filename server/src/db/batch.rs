//! Group commit for small writes that many requests make at once (the audit event of a read,
//! a signaling ticket, its redemption): callers queue their row and wait; one task writes
//! everything waiting, in one statement and one transaction, and answers each caller after
//! the commit. A caller is answered only once its row is committed, exactly as with a write
//! of its own, so an acknowledged request never loses its row. An idle batcher writes a lone
//! row at once (there is no timer): batches form only when rows arrive faster than the
//! database commits them, which is when saving round trips and commits matters.
//!
//! When a batch fails (one row breaking a constraint, say), its rows are written again one
//! at a time, so a bad row fails only its own caller. A batch that fails as a whole (the
//! database is gone) fails every caller in it, as their own writes would have.
//!
//! A *gathering* batcher ([`Batcher::start_gathering`]) is for statements made on a timer
//! rather than for a waiting person, such as the reads of every signaling connection's
//! heartbeat: after its first row it waits a while for more, so that rows spread evenly over
//! time (200 a second for 2,000 connections) share one statement instead of waking the
//! database, and the threads that talk to it, once each.

use crate::error::{ApiError, ApiResult};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Writes a batch; answers one result per row, in the rows' order.
pub type WriteFn<T, R> = Box<dyn Fn(Vec<T>) -> Pin<Box<dyn Future<Output = ApiResult<Vec<R>>> + Send>> + Send + Sync>;

type Job<T, R> = (T, oneshot::Sender<ApiResult<R>>);

/// A queue of rows written in batches of at most `max` by one task.
pub struct Batcher<T, R> {
    tx: mpsc::Sender<Job<T, R>>,
}

impl<T: Clone + Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Starts the writing task (on the current Tokio runtime).
    pub fn start(max: usize, write: WriteFn<T, R>) -> Batcher<T, R> {
        Batcher::start_gathering(max, Duration::ZERO, write)
    }

    /// As [`Batcher::start`], but a batch is written `gather` after its first row arrived
    /// (or as soon as it holds `max` rows), so that rows arriving over that time share it.
    pub fn start_gathering(max: usize, gather: Duration, write: WriteFn<T, R>) -> Batcher<T, R> {
        let (tx, rx) = mpsc::channel::<Job<T, R>>(max * 64);
        tokio::spawn(run(rx, max.max(1), gather, write));
        Batcher { tx }
    }

    /// Queues `row` and waits for the commit of the batch that holds it. `None` when the
    /// writing task is gone (its runtime ended): the caller then writes the row itself. An
    /// error when the batch could not be written (the row was not stored).
    pub async fn submit(&self, row: T) -> Option<ApiResult<R>> {
        let (done, answer) = oneshot::channel();
        if self.tx.send((row, done)).await.is_err() {
            return None;
        }
        // The task answers every row it received; a dropped answer means it stopped mid-way,
        // and the row may or may not be stored: refused, as a failed write is.
        Some(answer.await.unwrap_or_else(|_| Err(ApiError::internal("the batched write was interrupted"))))
    }
}

async fn run<T: Clone, R>(mut rx: mpsc::Receiver<Job<T, R>>, max: usize, gather: Duration, write: WriteFn<T, R>) {
    let mut jobs: Vec<Job<T, R>> = Vec::with_capacity(max);
    while rx.recv_many(&mut jobs, max).await > 0 {
        if !gather.is_zero() {
            let until = tokio::time::Instant::now() + gather;
            while jobs.len() < max {
                let more = max - jobs.len();
                // Ends at the deadline, or when every sender is gone (0).
                if !matches!(tokio::time::timeout_at(until, rx.recv_many(&mut jobs, more)).await, Ok(1..)) {
                    break;
                }
            }
        }
        let rows: Vec<T> = jobs.iter().map(|(row, _)| row.clone()).collect();
        let n = rows.len();
        match write(rows).await {
            Ok(results) if results.len() == n => {
                for ((_, done), r) in jobs.drain(..).zip(results) {
                    let _ = done.send(Ok(r));
                }
            }
            Ok(_) => {
                for (_, done) in jobs.drain(..) {
                    let _ = done.send(Err(ApiError::internal("a batched write answered the wrong number of rows")));
                }
            }
            Err(e) if n == 1 => {
                for (_, done) in jobs.drain(..) {
                    let _ = done.send(Err(e.clone()));
                }
            }
            Err(_) => {
                // Nothing of the batch was committed: each row alone, so only a bad row fails.
                for (row, done) in jobs.drain(..) {
                    let r = write(vec![row])
                        .await
                        .and_then(|mut v| v.pop().ok_or_else(|| ApiError::internal("a batched write answered no row")));
                    let _ = done.send(r);
                }
            }
        }
    }
}

/// `($1, $2, ...), ($k+1, ...)`: placeholders for `rows` rows of `cols` values, numbered from
/// `first`.
pub fn values(rows: usize, cols: usize, first: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            s.push('$');
            s.push_str(&(first + r * cols + c).to_string());
        }
        s.push(')');
    }
    s
}

/// `$first, $first+1, ...`: `n` placeholders for an `IN (...)` list.
pub fn list(n: usize, first: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn placeholders_are_numbered_row_by_row() {
        assert_eq!(values(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values(1, 2, 5), "($5, $6)");
        assert_eq!(list(3, 2), "$2, $3, $4");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rows_arriving_together_share_a_write_and_each_caller_gets_its_answer() {
        let writes = Arc::new(AtomicUsize::new(0));
        let counted = writes.clone();
        let b: Arc<Batcher<u32, u32>> = Arc::new(Batcher::start(
            64,
            Box::new(move |rows: Vec<u32>| {
                counted.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    Ok(rows.iter().map(|r| r * 10).collect())
                })
            }),
        ));
        let tasks: Vec<_> = (0..200u32)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move { (i, b.submit(i).await) })
            })
            .collect();
        for t in tasks {
            let (i, r) = t.await.unwrap();
            assert_eq!(r.unwrap().unwrap(), i * 10, "each caller gets the answer for its own row");
        }
        let n = writes.load(Ordering::SeqCst);
        assert!(n < 200, "200 concurrent rows in {n} writes");
    }

    #[tokio::test]
    async fn a_gathering_batcher_writes_rows_spread_over_its_window_together() {
        let writes = Arc::new(std::sync::Mutex::new(Vec::<Vec<u32>>::new()));
        let seen = writes.clone();
        let b: Arc<Batcher<u32, u32>> = Arc::new(Batcher::start_gathering(
            8,
            Duration::from_millis(500),
            Box::new(move |rows: Vec<u32>| {
                seen.lock().unwrap().push(rows.clone());
                Box::pin(async move { Ok(rows) })
            }),
        ));
        // Five rows 10 ms apart, then one after the window: two statements.
        let mut tasks = Vec::new();
        for i in 0..6u32 {
            let b = b.clone();
            tasks.push(tokio::spawn(async move { b.submit(i).await }));
            tokio::time::sleep(Duration::from_millis(if i == 4 { 1_000 } else { 10 })).await;
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap().unwrap().unwrap(), i as u32, "each caller gets its own answer");
        }
        assert_eq!(*writes.lock().unwrap(), vec![vec![0, 1, 2, 3, 4], vec![5]]);
        // A full batch does not wait for the window.
        let started = tokio::time::Instant::now();
        let tasks: Vec<_> = (10..18u32)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move { b.submit(i).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap().unwrap();
        }
        assert!(started.elapsed() < Duration::from_millis(400), "waited {:?} with a full batch", started.elapsed());
        assert_eq!(writes.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_bad_row_fails_only_its_own_caller() {
        let b: Arc<Batcher<u32, u32>> = Arc::new(Batcher::start(
            64,
            Box::new(|rows: Vec<u32>| {
                Box::pin(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    if rows.contains(&13) {
                        Err(ApiError::internal("constraint"))
                    } else {
                        Ok(rows)
                    }
                })
            }),
        ));
        let tasks: Vec<_> = (0..40u32)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move { (i, b.submit(i).await.unwrap()) })
            })
            .collect();
        for t in tasks {
            let (i, r) = t.await.unwrap();
            assert_eq!(r.is_ok(), i != 13, "row {i}");
        }
    }
}
