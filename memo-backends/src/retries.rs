//! Durable invalidation, for the stores outside the process (Redis, PostgreSQL): a clear
//! that could not reach its store is still returned as an error, and is also kept here
//! and retried in the background until the store takes it. Until then, this process
//! serves no value of that function (or, for a tag invalidation, of a function that may
//! carry one of the tags) from the store: each store asks [`Retries::blocks`] before
//! its reads, and computes directly.
//!
//! The retries run on one thread per store, every [`RETRY`] at first and at most
//! [`RETRY_MAX`] apart later, and bypass the circuit breaker: they are its probes, so
//! the store is used again within one retry of coming back. A clear of everything
//! supersedes the pending partial clears of the same function.
//!
//! What this cannot do: another process that reaches the store before this one may
//! read what the clear was meant to remove, until the retry goes through; and a process
//! that exits with clears pending loses them ([`Retries::pending`] tells how many).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Once;
use std::thread;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// How soon a pending clear is first retried; the wait doubles while the store does not
/// take it, up to [`RETRY_MAX`].
pub(crate) const RETRY: Duration = Duration::from_millis(100);
/// The longest wait between two retries.
const RETRY_MAX: Duration = Duration::from_millis(400);

/// Where a clear goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The entries in the shared store.
    Store,
    /// The other processes' memory, through the bus (distributed_memory, and the tiers
    /// after a direct write).
    Bus,
    /// Both, the store first (a function with a `local` tier, tag invalidations).
    StoreAndBus,
}

impl Target {
    /// The store's target for a function: with a `local` tier, the bus too.
    pub(crate) fn store_of(function: &memo_core::CachedFunction) -> Target {
        match function.local_tier() {
            Some(_) => Target::StoreAndBus,
            None => Target::Store,
        }
    }

    /// Where tag invalidations go: the store, and the bus (the other processes' `local`
    /// tiers, of functions this program may not know of).
    pub(crate) fn of_tags() -> Target {
        Target::StoreAndBus
    }

    pub(crate) fn reaches_store(self) -> bool {
        matches!(self, Target::Store | Target::StoreAndBus)
    }
}

/// What a clear removes: everything, the entries with every `name=hex` segment, one
/// entry, or the entries of any function carrying any of some tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum What {
    All,
    Matching(Vec<String>),
    /// One entry: its key in the store, or (distributed_memory) the hex of its encoded
    /// arguments.
    Key(String),
    Tags(Vec<String>),
}

impl What {
    /// What a clear of `function` by `selector` removes (everything without one, or
    /// when the function cannot apply it exactly).
    pub(crate) fn of(function: &memo_core::CachedFunction, selector: Option<&memo_core::Selector>) -> What {
        match selector.and_then(|s| function.resolve(s)) {
            Some(resolved) => What::Matching(crate::keys::selected(function, &resolved)),
            None => What::All,
        }
    }
}

/// A store whose clears are retried: applies one, bypassing its breaker.
pub(crate) trait Store<S>: Sync + 'static {
    /// Applies `what` to `scope` (a function's namespace, with whatever else the store
    /// needs to reach it).
    fn apply(&self, scope: &S, what: &What) -> Result<usize, String>;
    /// Whether the store was unreachable at its last call.
    fn is_down(&self) -> bool;
    /// What the store is called in messages: `Redis`, `PostgreSQL`.
    fn name(&self) -> &'static str;
}

#[derive(Debug)]
struct Op<S> {
    scope: S,
    what: What,
    /// Raised each time a failed clear is folded into this op: a retry that began
    /// before removes it only if no clear failed since.
    seq: u64,
}

/// The pending clears of one store.
#[derive(Debug)]
pub(crate) struct Retries<S> {
    ops: Mutex<Vec<Op<S>>>,
    wake: Condvar,
    /// `ops.len()`, read without the lock on every lookup.
    len: AtomicUsize,
    next: AtomicU64,
    retrier: Once,
    thread: &'static str,
}

impl<S: Clone + PartialEq + Send + 'static> Retries<S> {
    /// An empty queue, whose retry thread (started with the first failure) is called `thread`.
    pub(crate) const fn new(thread: &'static str) -> Retries<S> {
        Retries {
            ops: parking_lot::const_mutex(Vec::new()),
            wake: Condvar::new(),
            len: AtomicUsize::new(0),
            next: AtomicU64::new(0),
            retrier: Once::new(),
            thread,
        }
    }

    /// How many clears wait for the store.
    pub(crate) fn pending(&self) -> usize {
        self.len.load(SeqCst)
    }

    /// Whether a pending clear covers a function, as `covers` tells for each: then it
    /// must not be served from the store. One atomic load when nothing is pending.
    #[inline]
    pub(crate) fn blocks(&self, covers: impl Fn(&S, &What) -> bool) -> bool {
        self.len.load(SeqCst) != 0 && self.ops.lock().iter().any(|op| covers(&op.scope, &op.what))
    }

    /// Runs a clear with `apply` and accounts for it: on success, a clear of everything
    /// settles the failed clears of its scope made before it began; on failure, the
    /// clear is queued for retries, and the error says so.
    pub(crate) fn run(
        &'static self,
        store: &'static dyn Store<S>,
        scope: &S,
        what: What,
        apply: impl FnOnce() -> Result<usize, String>,
    ) -> Result<usize, String> {
        let since = self.next.load(SeqCst);
        self.settle(store, scope, what, since, apply())
    }

    /// [`run`](Retries::run) for `async` callers.
    pub(crate) async fn run_async<F: std::future::Future<Output = Result<usize, String>>>(
        &'static self,
        store: &'static dyn Store<S>,
        scope: &S,
        what: What,
        apply: impl FnOnce() -> F,
    ) -> Result<usize, String> {
        let since = self.next.load(SeqCst);
        let result = apply().await;
        self.settle(store, scope, what, since, result)
    }

    fn settle(
        &'static self,
        store: &'static dyn Store<S>,
        scope: &S,
        what: What,
        since: u64,
        result: Result<usize, String>,
    ) -> Result<usize, String> {
        match result {
            Ok(removed) => {
                if what == What::All && self.len.load(SeqCst) != 0 {
                    // The clears of `scope` that failed before this one are done with.
                    let mut ops = self.ops.lock();
                    ops.retain(|op| !(op.scope == *scope && op.seq < since));
                    self.len.store(ops.len(), SeqCst);
                }
                Ok(removed)
            }
            Err(message) => {
                self.defer(store, scope, what);
                Err(format!(
                    "{message}; the clear is retried in the background, and this process serves no value of \
                     the function from {} until it goes through",
                    store.name()
                ))
            }
        }
    }

    /// Queues a clear that failed.
    fn defer(&'static self, store: &'static dyn Store<S>, scope: &S, what: What) {
        self.retrier.call_once(|| {
            thread::Builder::new()
                .name(self.thread.into())
                .spawn(move || self.retry_forever(store))
                .expect("the OS can start memo-alchemy's retry thread");
        });
        let mut ops = self.ops.lock();
        let seq = self.next.fetch_add(1, SeqCst);
        if let Some(all) = ops.iter_mut().find(|op| op.scope == *scope && op.what == What::All) {
            // A pending clear of everything covers this one; it must now run once more.
            all.seq = seq;
        } else {
            if what == What::All {
                ops.retain(|op| op.scope != *scope);
            }
            match ops.iter_mut().find(|op| op.scope == *scope && op.what == what) {
                Some(op) => op.seq = seq,
                None => ops.push(Op { scope: scope.clone(), what, seq }),
            }
        }
        self.len.store(ops.len(), SeqCst);
        self.wake.notify_one();
    }

    fn retry_forever(&self, store: &dyn Store<S>) {
        let mut wait = RETRY;
        loop {
            {
                let mut ops = self.ops.lock();
                while ops.is_empty() {
                    wait = RETRY;
                    self.wake.wait(&mut ops);
                }
            }
            thread::sleep(wait);
            wait = if self.retry_all(store) { RETRY } else { (wait * 2).min(RETRY_MAX) };
        }
    }

    /// One round of retries; whether every pending clear went through.
    fn retry_all(&self, store: &dyn Store<S>) -> bool {
        let snapshot: Vec<(S, What, u64)> =
            self.ops.lock().iter().map(|op| (op.scope.clone(), op.what.clone(), op.seq)).collect();
        let mut all_done = true;
        for (scope, what, seq) in snapshot {
            if store.apply(&scope, &what).is_err() {
                all_done = false;
                if store.is_down() {
                    return false;
                }
                continue;
            }
            let mut ops = self.ops.lock();
            // Only if no clear failed (and was folded in) since this retry began.
            if let Some(i) = ops.iter().position(|op| op.scope == scope && op.what == what && op.seq == seq) {
                ops.remove(i);
            }
            self.len.store(ops.len(), SeqCst);
        }
        all_done
    }
}
