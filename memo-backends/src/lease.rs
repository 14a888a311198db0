//! `single_flight = "global"`: how the in-process leader of a miss waits for another
//! process's lease on the key, the same for every shared store (each store's `lease`
//! module makes the round trips: Redis scripts, PostgreSQL functions).
//!
//! A round trip looks for the value and, when there is none, takes the lease if it is
//! free or expired; when another process holds it, the caller pauses (2 ms, doubling up
//! to 50 ms, never past the lease's end) and looks again. A crashed holder's lease runs
//! out, and the next round trip takes it over: the others wait the lease at most. Past
//! two leases a caller stops waiting and computes without a lease. A background refresh
//! takes the lease without waiting; when another process holds it, that one refreshes.

use std::time::{Duration, Instant};

use memo_core::{CachedFunction, Lead};

/// The first pause of a waiter, doubled up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(2);
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// A lead in progress: what the next round trip asks, and how long to wait.
#[derive(Debug)]
pub(crate) struct Waiting {
    lease: Duration,
    /// Look for the value before taking the lease.
    look: bool,
    wait: bool,
    pause: Duration,
    deadline: Instant,
}

/// What a round trip answered.
#[derive(Debug)]
pub(crate) enum Answer<V> {
    /// The lease is now the caller's (the store put it in the ticket).
    Mine,
    /// The value another process stored, if it may be served (`None`: kept by
    /// `stale`, or undecodable).
    Value(Option<V>),
    /// Another process holds the lease, for this many more ms.
    Held(u64),
}

/// What to do after a round trip.
pub(crate) enum Next<V> {
    Done(Lead<V>),
    Pause(Duration),
    Again,
}

impl Waiting {
    /// The first state of a lead of `function` (`wait`: a miss; not: a background
    /// refresh), or `None` when it takes no lease.
    pub(crate) fn of(function: &CachedFunction, wait: bool) -> Option<Waiting> {
        let lease = function.global_lease()?;
        Some(Waiting { lease, look: wait, wait, pause: FIRST_PAUSE, deadline: Instant::now() + lease * 2 })
    }

    /// The lease to ask for, in ms.
    pub(crate) fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the next round trip looks for the value first.
    pub(crate) fn look(&self) -> bool {
        self.look
    }

    /// What `answer` means for the caller.
    pub(crate) fn next<V>(&mut self, answer: Answer<V>) -> Next<V> {
        match answer {
            Answer::Mine => Next::Done(Lead::Run),
            Answer::Value(Some(v)) => Next::Done(Lead::Value(v)),
            // Kept by `stale`, or undecodable: take the lease without looking.
            Answer::Value(None) => {
                self.look = false;
                Next::Again
            }
            Answer::Held(_) if !self.wait => Next::Done(Lead::Busy),
            Answer::Held(_) if Instant::now() >= self.deadline => Next::Done(Lead::Run),
            Answer::Held(left_ms) => {
                self.look = true;
                let pause = self.pause.min(Duration::from_millis(left_ms.saturating_add(1)));
                self.pause = (self.pause * 2).min(MAX_PAUSE);
                Next::Pause(pause)
            }
        }
    }
}
