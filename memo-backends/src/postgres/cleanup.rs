//! The cleanup: a thread that deletes expired rows in batches, every `interval`, and
//! the expired leases of `single_flight = "global"`. Expired rows are never served
//! meanwhile (reads filter them), and an expired lease is taken over by the next
//! process that wants it; the cleanup only gives their space back.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::conn::Postgres;
use super::sql::CLEANUP_BATCH;

/// A running cleanup, from [`start_cleanup`]; [`stop`](Cleanup::stop) ends it (so does
/// dropping it, without waiting).
#[derive(Debug)]
pub struct Cleanup {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    stopped: Mutex<bool>,
    wake: Condvar,
    deleted: AtomicU64,
    /// Set by the thread as it ends, with a permit on `ended`, for [`Cleanup::stop_async`].
    done: Mutex<bool>,
    ended: tokio::sync::Notify,
}

/// Starts deleting the expired rows of the postgres backend, every `interval`, in
/// batches of 1000 rows (one statement each), on a thread of its own, then the expired
/// leases (not counted in [`deleted`](Cleanup::deleted)). A failed batch (the database
/// is down) waits for the next interval.
///
/// ```no_run
/// let cleanup = memo_backends::postgres::start_cleanup(std::time::Duration::from_secs(60));
/// // ... serve ...
/// cleanup.stop();
/// ```
pub fn start_cleanup(interval: Duration) -> Cleanup {
    let shared = Arc::new(Shared::default());
    let worker = Arc::clone(&shared);
    let thread = thread::Builder::new()
        .name("memo-alchemy-pg-cleanup".into())
        .spawn(move || {
            run(&worker, interval);
            *worker.done.lock() = true;
            worker.ended.notify_one();
        })
        .expect("the OS can start memo-alchemy's cleanup thread");
    Cleanup { shared, thread: Some(thread) }
}

fn run(shared: &Shared, interval: Duration) {
    let db = Postgres::global();
    let full = u64::try_from(CLEANUP_BATCH).unwrap_or(u64::MAX);
    loop {
        loop {
            if *shared.stopped.lock() {
                return;
            }
            let batch = db.run_probe(|c| async move {
                let row = c.query_one(&c.prepare_cached(&db.sql.cleanup).await?, &[]).await?;
                Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
            });
            match batch {
                Ok(n) => {
                    shared.deleted.fetch_add(n, Relaxed);
                    if n < full {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        loop {
            if *shared.stopped.lock() {
                return;
            }
            let leases = db.run_probe(|c| async move {
                c.execute(&c.prepare_cached(&db.sql.cleanup_leases).await?, &[]).await
            });
            if !matches!(leases, Ok(n) if n >= full) {
                break;
            }
        }
        let mut stopped = shared.stopped.lock();
        if !*stopped {
            shared.wake.wait_for(&mut stopped, interval);
        }
        if *stopped {
            return;
        }
    }
}

impl Cleanup {
    /// The expired rows deleted so far.
    pub fn deleted(&self) -> u64 {
        self.shared.deleted.load(Relaxed)
    }

    fn signal(&self) {
        *self.shared.stopped.lock() = true;
        self.shared.wake.notify_all();
    }

    /// Stops the cleanup and waits for its thread (at most one batch, bounded by the
    /// PostgreSQL timeout); returns the rows it deleted.
    pub fn stop(mut self) -> u64 {
        self.signal();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.deleted()
    }

    /// [`stop`](Cleanup::stop) for `async` callers: waits without blocking the runtime.
    pub async fn stop_async(mut self) -> u64 {
        self.signal();
        if !*self.shared.done.lock() {
            // The thread leaves a permit as it ends, even if nobody waits yet.
            self.shared.ended.notified().await;
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.deleted()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.signal();
    }
}
