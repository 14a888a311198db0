//! Durable invalidation: a clear that could not reach PostgreSQL is returned as an
//! error, and is also kept here and retried in the background until the database
//! takes it. Until then, this process serves no value of that function (or, for a tag
//! invalidation, of a function that may carry the tags) from PostgreSQL: it computes
//! directly.
//!
//! The retries run on one thread, every [`RETRY`] at first and at most 400 ms apart
//! later, and bypass the circuit breaker: they are its probes. A clear of everything
//! supersedes the pending partial clears of the same function. A process that exits
//! with clears pending loses them ([`pending`] tells how many there are).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{LazyLock, Once};
use std::thread;
use std::time::Duration;

use memo_core::CachedFunction;
use parking_lot::{Condvar, Mutex};

use super::conn::{Postgres, Session};

/// How soon a pending clear is first retried; the wait doubles up to [`RETRY_MAX`].
const RETRY: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_millis(400);

/// The pseudo-namespace of tag invalidations (no function's namespace is empty).
pub(crate) const TAGS: &str = "";

/// What a clear removes: everything, the strict rows with every `name=hex` segment,
/// one row by key, or (in [`TAGS`]) the rows of any function carrying any of the tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum What {
    All,
    Matching(Vec<String>),
    Key(String),
    Tags(Vec<String>),
}

#[derive(Debug)]
struct Op {
    ns: String,
    what: What,
    /// Raised each time a failed clear is folded into this op: a retry that began
    /// before removes it only if no clear failed since.
    seq: u64,
}

#[derive(Debug, Default)]
struct Queue {
    ops: Mutex<Vec<Op>>,
    wake: Condvar,
    /// `ops.len()`, read without the lock on every lookup.
    len: AtomicUsize,
    next: AtomicU64,
}

static QUEUE: LazyLock<Queue> = LazyLock::new(Queue::default);

/// Keeps a clear that failed, to be retried until PostgreSQL takes it.
fn defer(ns: &str, what: What) {
    static RETRIER: Once = Once::new();
    RETRIER.call_once(|| {
        thread::Builder::new()
            .name("memo-alchemy-pg-retry".into())
            .spawn(retry_forever)
            .expect("the OS can start memo-alchemy's retry thread");
    });
    let mut ops = QUEUE.ops.lock();
    let seq = QUEUE.next.fetch_add(1, SeqCst);
    if let Some(all) = ops.iter_mut().find(|op| op.ns == ns && op.what == What::All) {
        // A pending clear of everything covers this one; it must now run once more.
        all.seq = seq;
    } else {
        if what == What::All {
            ops.retain(|op| op.ns != ns);
        }
        match ops.iter_mut().find(|op| op.ns == ns && op.what == what) {
            Some(op) => op.seq = seq,
            None => ops.push(Op { ns: ns.to_owned(), what, seq }),
        }
    }
    QUEUE.len.store(ops.len(), SeqCst);
    QUEUE.wake.notify_one();
}

/// Whether a clear of `ns`, or an invalidation of a tag `function` may carry, is
/// pending: its values must not be served.
#[inline]
pub(crate) fn blocks(ns: &str, function: &CachedFunction) -> bool {
    QUEUE.len.load(SeqCst) != 0
        && QUEUE.ops.lock().iter().any(|op| match &op.what {
            What::Tags(tags) => function.may_carry(tags),
            _ => op.ns == ns,
        })
}

/// How many clears wait for PostgreSQL in this process.
pub fn pending() -> usize {
    QUEUE.len.load(SeqCst)
}

fn retry_forever() {
    let mut wait = RETRY;
    loop {
        {
            let mut ops = QUEUE.ops.lock();
            while ops.is_empty() {
                wait = RETRY;
                QUEUE.wake.wait(&mut ops);
            }
        }
        thread::sleep(wait);
        wait = if retry_all() { RETRY } else { (wait * 2).min(RETRY_MAX) };
    }
}

/// Tries each pending clear in order; stops at the first that fails while the
/// database is down. Returns whether every one went through.
fn retry_all() -> bool {
    let db = Postgres::global();
    let snapshot: Vec<(String, What, u64)> =
        QUEUE.ops.lock().iter().map(|op| (op.ns.clone(), op.what.clone(), op.seq)).collect();
    let mut all_done = true;
    for (ns, what, seq) in snapshot {
        if db.run_probe(|c| apply(c, &ns, &what)).is_err() {
            all_done = false;
            if db.is_down() {
                return false;
            }
            continue;
        }
        let mut ops = QUEUE.ops.lock();
        if let Some(i) = ops.iter().position(|op| op.ns == ns && op.what == what && op.seq == seq) {
            ops.remove(i);
        }
        QUEUE.len.store(ops.len(), SeqCst);
    }
    all_done
}

/// Runs a clear now; when PostgreSQL does not take it, keeps it for the retries and
/// returns the error. Returns the live rows removed.
pub(crate) fn invalidate(ns: &str, what: What) -> Result<usize, String> {
    let since = QUEUE.next.load(SeqCst);
    let result = Postgres::global().run(|c| apply(c, ns, &what));
    settle(ns, what, since, result)
}

/// [`invalidate`] for `async` callers.
pub(crate) async fn invalidate_async(ns: &str, what: What) -> Result<usize, String> {
    let since = QUEUE.next.load(SeqCst);
    let result = Postgres::global().run_async(|c| apply(c, ns, &what)).await;
    settle(ns, what, since, result)
}

fn settle(ns: &str, what: What, since: u64, result: Result<usize, String>) -> Result<usize, String> {
    match result {
        Ok(removed) => {
            if what == What::All && QUEUE.len.load(SeqCst) != 0 {
                // The clears of `ns` that failed before this one are done with.
                let mut ops = QUEUE.ops.lock();
                ops.retain(|op| !(op.ns == ns && op.seq < since));
                QUEUE.len.store(ops.len(), SeqCst);
            }
            Ok(removed)
        }
        Err(message) => {
            defer(ns, what);
            Err(format!(
                "{message}; the clear is retried in the background, and this process serves no value of \
                 the function from PostgreSQL until it goes through"
            ))
        }
    }
}

/// Carries out one clear.
async fn apply(c: Session, ns: &str, what: &What) -> Result<usize, tokio_postgres::Error> {
    let sql = &Postgres::global().sql;
    let row = match what {
        What::Tags(tags) => c.query_one(&c.prepare_cached(&sql.invalidate_tags).await?, &[tags]).await?,
        What::All => {
            c.query_one(&c.prepare_cached(&sql.clear).await?, &[&ns, &None::<Vec<String>>, &None::<String>])
                .await?
        }
        What::Matching(wanted) => {
            c.query_one(&c.prepare_cached(&sql.clear).await?, &[&ns, wanted, &None::<String>]).await?
        }
        What::Key(key) => {
            c.query_one(&c.prepare_cached(&sql.clear).await?, &[&ns, &None::<Vec<String>>, key]).await?
        }
    };
    Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}
