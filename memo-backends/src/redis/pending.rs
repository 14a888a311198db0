//! Durable invalidation: a clear that could not reach Redis is still returned as an
//! error, and is also kept here and retried in the background until Redis takes it.
//! Until then, this process serves no value of that function from Redis (json,
//! pickle) or from its local memory (distributed_memory): it computes directly.
//!
//! The retries run on one thread, every [`RETRY`] at first and at most 400 ms apart
//! later, and bypass the circuit breaker: they are its probes, so Redis is used again
//! within one retry of coming back. A
//! clear of everything supersedes the pending partial clears of the same function.
//!
//! What this cannot do: another process that reaches Redis before this one may read
//! what the clear was meant to remove, until the retry goes through; and a process
//! that exits with clears pending loses them ([`pending`] tells how many there are).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{LazyLock, Once};
use std::thread;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::bus::Bus;
use redis::RedisResult;

use super::conn::{block, Io, Redis};
use super::namespace::Namespace;
use super::ops;

/// How soon a pending clear is first retried; the wait doubles while Redis does not
/// take it, up to [`RETRY_MAX`].
pub(crate) const RETRY: Duration = Duration::from_millis(100);
/// The longest wait between two retries.
const RETRY_MAX: Duration = Duration::from_millis(400);

/// Where a clear goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The entries stored in Redis (json, pickle).
    Store,
    /// The other processes' memory, through the bus (distributed_memory).
    Bus,
}

/// What a clear removes: everything, the entries with every `name=hex` segment, or
/// (in the tags pseudo-namespace) the entries of any function carrying any of the tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum What {
    All,
    Matching(Vec<String>),
    Tags(Vec<String>),
    /// One entry: its key in Redis (json, pickle), or the hex of its encoded arguments
    /// (distributed_memory).
    Key(String),
}

impl What {
    /// What a clear of `function` by `selector` removes (everything without one, or
    /// when the function cannot apply it exactly).
    pub(crate) fn of(function: &memo_core::CachedFunction, selector: Option<&memo_core::Selector>) -> What {
        match selector.and_then(|s| function.resolve(s)) {
            Some(resolved) => What::Matching(super::namespace::selected(function, &resolved)),
            None => What::All,
        }
    }
}

#[derive(Debug)]
struct Op {
    ns: Namespace,
    target: Target,
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
    /// The next sequence number.
    next: AtomicU64,
}

static QUEUE: LazyLock<Queue> = LazyLock::new(Queue::default);

/// Keeps a clear that failed, to be retried until Redis takes it.
pub(crate) fn defer(ns: &Namespace, target: Target, what: What) {
    static RETRIER: Once = Once::new();
    RETRIER.call_once(|| {
        thread::Builder::new()
            .name("memo-alchemy-retry".into())
            .spawn(retry_forever)
            .expect("the OS can start memo-alchemy's retry thread");
    });
    let mut ops = QUEUE.ops.lock();
    let seq = QUEUE.next.fetch_add(1, SeqCst);
    let same = |op: &Op| op.ns.base() == ns.base() && op.target == target;
    if let Some(all) = ops.iter_mut().find(|op| same(op) && op.what == What::All) {
        // A pending clear of everything covers this one; it must now run once more.
        all.seq = seq;
    } else {
        if what == What::All {
            ops.retain(|op| !same(op));
        }
        match ops.iter_mut().find(|op| same(op) && op.what == what) {
            Some(op) => op.seq = seq,
            None => ops.push(Op { ns: ns.clone(), target, what, seq }),
        }
    }
    QUEUE.len.store(ops.len(), SeqCst);
    QUEUE.wake.notify_one();
}

/// Whether a clear of `ns`, or an invalidation of a tag its function may carry, is
/// pending: its values must not be served.
#[inline]
pub(crate) fn blocks(ns: &Namespace) -> bool {
    QUEUE.len.load(SeqCst) != 0
        && QUEUE.ops.lock().iter().any(|op| match &op.what {
            What::Tags(tags) => ns.may_carry(tags),
            _ => op.ns.base() == ns.base(),
        })
}

/// A clear of everything in `ns`, sent when the next sequence number was `since`, went
/// through: the clears that failed before it are done with (not those that failed
/// while it was on its way).
fn settled(ns: &Namespace, target: Target, since: u64) {
    if QUEUE.len.load(SeqCst) != 0 {
        let mut ops = QUEUE.ops.lock();
        ops.retain(|op| !(op.ns.base() == ns.base() && op.target == target && op.seq < since));
        QUEUE.len.store(ops.len(), SeqCst);
    }
}

/// How many clears wait for Redis in this process.
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

/// Tries each pending clear in order; stops at the first that Redis does not take
/// while it is down, and passes over one it refuses while up (it stays for later, and
/// blocks nothing behind it). Returns whether every one went through.
fn retry_all() -> bool {
    let redis = Redis::global();
    let snapshot: Vec<(Namespace, Target, What, u64)> =
        QUEUE.ops.lock().iter().map(|op| (op.ns.clone(), op.target, op.what.clone(), op.seq)).collect();
    let mut all_done = true;
    for (ns, target, what, seq) in snapshot {
        // The retries are the breaker's probes: they go through while it is open.
        if redis.run_probe(|io| block(apply(io, &ns, target, &what))).is_err() {
            all_done = false;
            if redis.is_down() {
                return false;
            }
            continue;
        }
        if target == Target::Store && what == What::All {
            super::drain::poke();
        }
        let mut ops = QUEUE.ops.lock();
        // Only if no clear failed (and was folded in) since this retry began.
        let done = ops.iter().position(|op| {
            op.ns.base() == ns.base() && op.target == target && op.what == what && op.seq == seq
        });
        if let Some(i) = done {
            ops.remove(i);
        }
        QUEUE.len.store(ops.len(), SeqCst);
    }
    all_done
}

/// Runs a clear now; when Redis does not take it, keeps it for the retries and returns
/// the error. Returns the entries removed from Redis (0 for the bus).
pub(crate) fn invalidate(ns: &Namespace, target: Target, what: What) -> Result<usize, String> {
    let since = QUEUE.next.load(SeqCst);
    let result = Redis::global().run(|io| block(apply(io, ns, target, &what)));
    settle(ns, target, what, since, result)
}

/// [`invalidate`] for `async` callers.
pub(crate) async fn invalidate_async(ns: &Namespace, target: Target, what: What) -> Result<usize, String> {
    let since = QUEUE.next.load(SeqCst);
    let (owned_ns, owned_what) = (ns.clone(), what.clone());
    let result = Redis::global()
        .run_async(move |mut io| async move { apply(&mut io, &owned_ns, target, &owned_what).await })
        .await;
    settle(ns, target, what, since, result)
}

fn settle(
    ns: &Namespace,
    target: Target,
    what: What,
    since: u64,
    result: Result<usize, String>,
) -> Result<usize, String> {
    match result {
        Ok(removed) => {
            if what == What::All {
                settled(ns, target, since);
                if target == Target::Store {
                    super::drain::poke();
                }
            }
            Ok(removed)
        }
        Err(message) => {
            defer(ns, target, what);
            Err(format!(
                "{message}; the clear is retried in the background, and this process serves no value of \
                 the function from Redis until it goes through"
            ))
        }
    }
}

/// Carries out one clear.
async fn apply(io: &mut impl Io, ns: &Namespace, target: Target, what: &What) -> RedisResult<usize> {
    match (target, what) {
        (Target::Store, What::All) => ops::clear(io, ns).await,
        (Target::Store, What::Matching(wanted)) => ops::clear_matching(io, ns, wanted).await,
        (Target::Store, What::Tags(tags)) => ops::invalidate_tags(io, ns, tags).await,
        (Target::Store, What::Key(key)) => match ns.entry_of_key(key) {
            Some(entry) => ops::remove(io, ns, &entry).await.map(usize::from),
            None => Ok(0),
        },
        (Target::Bus, what) => {
            let bus = Bus::global();
            let message = match what {
                What::All => bus.message('F', ns.base(), &[]),
                What::Matching(segments) => bus.message('P', ns.base(), segments),
                What::Tags(tags) => bus.message('T', "", tags),
                What::Key(hex) => bus.message('K', ns.base(), std::slice::from_ref(hex)),
            };
            ops::publish(io, bus.channel(), &message).await.map(|()| 0)
        }
    }
}
