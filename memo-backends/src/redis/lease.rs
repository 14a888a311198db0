//! `single_flight = "global"` on Redis: one computation per key across processes.
//!
//! The in-process leader of a miss takes the key's lease (a token under `SET NX PX`, in
//! the entry's hash slot) before it runs the body, and the write-back stores only while
//! the lease is still its own (the `WRITE` script checks the token, then the clear
//! generation and the tag versions, and releases the lease). Another process's leader
//! finding the lease held waits with a bounded back-off (2 ms doubling to 50 ms, never
//! past the lease's end) and looks for the value again; when the lease runs out (its
//! holder crashed or outlived it), it takes the lease over, so a crashed holder delays
//! the others by the lease at most. A background refresh takes the lease without
//! waiting: when another process holds it, that one refreshes.

use std::hash::Hash;
use std::time::{Duration, Instant};

use memo_core::{Error, Lead, Lookup};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::conn::block;
use super::namespace::Entry;
use super::ops::{self, Leased};
use super::{Codec, RedisStore, RedisTicket};

/// The lease a background refresh takes when the function sets none.
const REFRESH_LEASE: Duration = Duration::from_secs(10);
/// The first pause of a waiter, doubled up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(2);
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// A lead in progress: what the next round trip asks, and how long to wait.
struct Waiting {
    lease: Duration,
    /// Look for the value before taking the lease.
    look: bool,
    wait: bool,
    pause: Duration,
    /// Past this, compute without a lease: however the leases change hands, a caller
    /// waits two leases at most.
    deadline: Instant,
}

/// What to do after a round trip.
enum Next<V> {
    Done(Lead<V>),
    Pause(Duration),
    Again,
}

impl<K, V, C> RedisStore<K, V, C>
where
    K: Serialize + Hash + Eq + Clone + Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    C: Codec,
{
    /// The lead's first state, or `None` when the function takes no lease.
    fn waiting(&self, wait: bool) -> Option<Waiting> {
        let lease = match (self.function.global_lease(), wait) {
            (Some(lease), _) => lease,
            (None, false) => REFRESH_LEASE,
            (None, true) => return None,
        };
        Some(Waiting { lease, look: wait, wait, pause: FIRST_PAUSE, deadline: Instant::now() + lease * 2 })
    }

    fn lease_ms(w: &Waiting) -> u64 {
        u64::try_from(w.lease.as_millis()).unwrap_or(u64::MAX)
    }

    /// What one round trip's answer means.
    fn next(&self, leased: Leased, entry: &Entry, w: &mut Waiting) -> Next<V> {
        match leased {
            Leased::Mine => Next::Done(Lead::Run),
            Leased::Value(found) => match self.found(found, entry, RedisTicket::default()) {
                Lookup::Hit(v) | Lookup::Refresh(v, _) => Next::Done(Lead::Value(v)),
                // Kept by `stale`, or undecodable: take the lease without looking.
                Lookup::Miss(_) | Lookup::Stale(..) => {
                    w.look = false;
                    Next::Again
                }
            },
            Leased::Held(_) if !w.wait => Next::Done(Lead::Busy),
            Leased::Held(_) if Instant::now() >= w.deadline => Next::Done(Lead::Run),
            Leased::Held(left_ms) => {
                w.look = true;
                let pause = w.pause.min(Duration::from_millis(left_ms + 1));
                w.pause = (w.pause * 2).min(MAX_PAUSE);
                Next::Pause(pause)
            }
        }
    }

    pub(super) fn lead_blocking(
        &self,
        key: &K,
        ticket: &mut RedisTicket,
        wait: bool,
    ) -> Result<Lead<V>, Error> {
        let Some(mut w) = self.waiting(wait) else { return Ok(Lead::Run) };
        let entry = self.entry(key)?;
        loop {
            let (look, ms) = (w.look, Self::lease_ms(&w));
            let leased = self
                .redis
                .run(|io| block(ops::lease(io, &self.ns, &entry, ticket, ms, look)))
                .map_err(|m| self.fail(m))?;
            match self.next(leased, &entry, &mut w) {
                Next::Done(lead) => return Ok(lead),
                Next::Pause(pause) => std::thread::sleep(pause),
                Next::Again => {}
            }
        }
    }

    pub(super) async fn lead_nonblocking(
        &self,
        key: &K,
        ticket: &mut RedisTicket,
        wait: bool,
    ) -> Result<Lead<V>, Error> {
        let Some(mut w) = self.waiting(wait) else { return Ok(Lead::Run) };
        let entry = self.entry(key)?;
        loop {
            let (look, ms) = (w.look, Self::lease_ms(&w));
            let (ns, looked_up, mut sent) = (self.ns.clone(), entry.clone(), ticket.clone());
            let (leased, read) = self
                .redis
                .run_async(move |mut io| async move {
                    let leased = ops::lease(&mut io, &ns, &looked_up, &mut sent, ms, look).await?;
                    Ok((leased, sent))
                })
                .await
                .map_err(|m| self.fail(m))?;
            *ticket = read;
            match self.next(leased, &entry, &mut w) {
                Next::Done(lead) => return Ok(lead),
                Next::Pause(pause) => self.redis.pause(pause).await,
                Next::Again => {}
            }
        }
    }

    pub(super) fn release_blocking(&self, key: &K, ticket: &RedisTicket) -> Result<(), Error> {
        if ticket.lease().is_none() {
            return Ok(());
        }
        let entry = self.entry(key)?;
        self.redis.run(|io| block(ops::release(io, &self.ns, &entry, ticket))).map_err(|m| self.fail(m))
    }

    pub(super) async fn release_nonblocking(&self, key: &K, ticket: &RedisTicket) -> Result<(), Error> {
        if ticket.lease().is_none() {
            return Ok(());
        }
        let (entry, ns, ticket) = (self.entry(key)?, self.ns.clone(), ticket.clone());
        self.redis
            .run_async(move |mut io| async move { ops::release(&mut io, &ns, &entry, &ticket).await })
            .await
            .map_err(|m| self.fail(m))
    }
}
