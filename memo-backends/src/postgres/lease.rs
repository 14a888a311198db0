//! `single_flight = "global"` on PostgreSQL: one computation per key across processes.
//!
//! The in-process leader of a miss takes the key's lease (a row of `memo_leases`, by
//! an upsert that succeeds only when the lease is absent or expired, in `memo_lease`)
//! before it runs the body, and `memo_write` stores only while the lease row still
//! carries its token (then the clear generation and the tag versions, which
//! `memo_lease` read again when it took the lease, are checked as before), deleting
//! the lease stored or not. Another process's leader finding the lease held waits with
//! a bounded back-off (2 ms doubling to 50 ms, never past the lease's end) and looks for
//! the value again; when the lease runs out (its holder crashed or outlived it), it
//! takes the lease over, so a crashed holder delays the others by the lease at most.
//! Every expiry is by the database's clock. A background refresh takes the lease
//! without waiting: when another process holds it, that one refreshes.

use std::hash::Hash;
use std::time::{Duration, Instant};

use memo_core::{Error, Freshness, Lead};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::conn::Session;
use super::{PgError, Postgres, Ticket};

/// The lease a background refresh takes when the function sets none.
const REFRESH_LEASE: Duration = Duration::from_secs(10);
/// The first pause of a waiter, doubled up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(2);
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// A lead in progress: what the next call asks, and how long to wait.
struct Waiting {
    lease_ms: i64,
    /// Look for the value before taking the lease.
    look: bool,
    wait: bool,
    pause: Duration,
    /// Past this, compute without a lease: however the leases change hands, a caller
    /// waits two leases at most.
    deadline: Instant,
}

/// What one `memo_lease` call found.
enum Leased<V> {
    /// The live value, with its age in ms (`None` when it did not decode).
    Value(Option<(V, i64)>),
    /// The lease is now the token's: the generation and versions read with it.
    Mine { generation: i64, versions: Vec<i64> },
    /// Another holds the lease, for this many more ms.
    Held(u64),
}

/// What to do after a call.
enum Next<V> {
    Done(Lead<V>),
    Pause(Duration),
    Again,
}

/// A lease token no other lease shares: the time in nanoseconds, the process and a
/// counter (processes that share a pid, in containers, differ by the time).
fn token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{:x}-{}-{}", crate::keys::wall_nanos(), std::process::id(), NEXT.fetch_add(1, Relaxed))
}

impl<K, V> Postgres<K, V>
where
    K: Serialize + Hash + Eq + Clone + Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// The lead's first state, or `None` when the function takes no lease.
    fn waiting(&self, wait: bool) -> Option<Waiting> {
        let lease = match (self.function.global_lease(), wait) {
            (Some(lease), _) => lease,
            (None, false) => REFRESH_LEASE,
            (None, true) => return None,
        };
        Some(Waiting {
            lease_ms: i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
            look: wait,
            wait,
            pause: FIRST_PAUSE,
            deadline: Instant::now() + lease * 2,
        })
    }

    /// One `memo_lease` call for `token`.
    async fn lease_with(
        &self,
        c: Session,
        key: String,
        token: String,
        w: (i64, bool),
        tags: Vec<String>,
    ) -> Result<Leased<V>, PgError> {
        let (lease_ms, look) = w;
        let statement = c.prepare_cached(&self.db.sql.lease).await?;
        let row = c.query_one(&statement, &[&self.ns, &key, &token, &lease_ms, &look, &tags]).await?;
        Ok(match row.get::<_, i32>(0) {
            1 => Leased::Value(self.decoded(&row, 1).map(|v| (v, row.get::<_, i64>(2)))),
            2 => Leased::Mine { generation: row.get(3), versions: row.get(4) },
            _ => Leased::Held(u64::try_from(row.get::<_, Option<i64>>(5).unwrap_or(0)).unwrap_or(0)),
        })
    }

    /// What one call's answer means; a lease taken goes into `ticket`.
    fn next(
        &self,
        leased: Leased<V>,
        key: &str,
        token: String,
        ticket: &mut Ticket,
        w: &mut Waiting,
    ) -> Next<V> {
        match leased {
            Leased::Mine { generation, versions } => {
                ticket.generation = generation;
                ticket.versions = versions;
                ticket.lease = Some(token);
                Next::Done(Lead::Run)
            }
            Leased::Value(Some((v, age))) if self.freshness(key, age) != Freshness::Stale => {
                Next::Done(Lead::Value(v))
            }
            // Kept by `stale`, or undecodable: take the lease without looking.
            Leased::Value(_) => {
                w.look = false;
                Next::Again
            }
            Leased::Held(_) if !w.wait => Next::Done(Lead::Busy),
            Leased::Held(_) if Instant::now() >= w.deadline => Next::Done(Lead::Run),
            Leased::Held(left_ms) => {
                w.look = true;
                let pause = w.pause.min(Duration::from_millis(left_ms.saturating_add(1)));
                w.pause = (w.pause * 2).min(MAX_PAUSE);
                Next::Pause(pause)
            }
        }
    }

    pub(super) fn lead_blocking(&self, key: &K, ticket: &mut Ticket, wait: bool) -> Result<Lead<V>, Error> {
        let Some(mut w) = self.waiting(wait) else { return Ok(Lead::Run) };
        let entry = self.key(key)?;
        loop {
            let (token, asked) = (token(), (w.lease_ms, w.look));
            let (k, t, tags) = (entry.clone(), token.clone(), ticket.tags.clone());
            let leased = self.db.run(|c| self.lease_with(c, k, t, asked, tags)).map_err(|m| self.fail(m))?;
            match self.next(leased, &entry, token, ticket, &mut w) {
                Next::Done(lead) => return Ok(lead),
                Next::Pause(pause) => std::thread::sleep(pause),
                Next::Again => {}
            }
        }
    }

    pub(super) async fn lead_nonblocking(
        &self,
        key: &K,
        ticket: &mut Ticket,
        wait: bool,
    ) -> Result<Lead<V>, Error> {
        let Some(mut w) = self.waiting(wait) else { return Ok(Lead::Run) };
        let entry = self.key(key)?;
        loop {
            let (token, asked) = (token(), (w.lease_ms, w.look));
            let (k, t, tags) = (entry.clone(), token.clone(), ticket.tags.clone());
            let leased = self
                .db
                .run_async(|c| self.lease_with(c, k, t, asked, tags))
                .await
                .map_err(|m| self.fail(m))?;
            match self.next(leased, &entry, token, ticket, &mut w) {
                Next::Done(lead) => return Ok(lead),
                Next::Pause(pause) => self.db.pause(pause).await,
                Next::Again => {}
            }
        }
    }

    /// Deletes the lease `ticket` holds on the key, if it still holds it.
    async fn release_with(&self, c: Session, key: String, token: String) -> Result<(), PgError> {
        c.execute(&c.prepare_cached(&self.db.sql.release).await?, &[&self.ns, &key, &token]).await?;
        Ok(())
    }

    pub(super) fn release_blocking(&self, key: &K, ticket: &Ticket) -> Result<(), Error> {
        let Some(token) = ticket.lease.clone() else { return Ok(()) };
        let entry = self.key(key)?;
        self.db.run(|c| self.release_with(c, entry, token)).map_err(|m| self.fail(m))
    }

    pub(super) async fn release_nonblocking(&self, key: &K, ticket: &Ticket) -> Result<(), Error> {
        let Some(token) = ticket.lease.clone() else { return Ok(()) };
        let entry = self.key(key)?;
        self.db.run_async(|c| self.release_with(c, entry, token)).await.map_err(|m| self.fail(m))
    }
}
