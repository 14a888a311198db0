//! `single_flight = "global"` on PostgreSQL: one computation per key across processes.
//!
//! The in-process leader of a miss takes the key's lease (a row of `memo_leases`, by
//! an upsert that succeeds only when the lease is absent or expired, in `memo_lease`)
//! before it runs the body, and `memo_write` stores only while the lease row still
//! carries its token (then the clear generation and the tag versions, which
//! `memo_lease` read again when it took the lease, are checked as before), deleting
//! the lease stored or not. The waiting is [`crate::lease`]'s; every expiry is by the
//! database's clock.

use std::hash::Hash;

use memo_core::{Error, Freshness, Lead};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::conn::Session;
use super::{PgError, Postgres, Ticket};
use crate::lease::{Answer, Next, Waiting};

/// What one `memo_lease` call found.
enum Leased<V> {
    /// The live value, with its age in ms (`None` when it did not decode).
    Value(Option<(V, i64)>),
    /// The lease is now the token's: the generation and versions read with it.
    Mine { generation: i64, versions: Vec<i64> },
    /// Another holds the lease, for this many more ms.
    Held(u64),
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
    fn answer(&self, leased: Leased<V>, key: &str, token: String, ticket: &mut Ticket) -> Answer<V> {
        match leased {
            Leased::Mine { generation, versions } => {
                ticket.generation = generation;
                ticket.versions = versions;
                ticket.lease = Some(token);
                Answer::Mine
            }
            Leased::Value(Some((v, age))) if self.freshness(key, age) != Freshness::Stale => {
                Answer::Value(Some(v))
            }
            Leased::Value(_) => Answer::Value(None),
            Leased::Held(left_ms) => Answer::Held(left_ms),
        }
    }

    pub(super) fn lead_blocking(&self, key: &K, ticket: &mut Ticket, wait: bool) -> Result<Lead<V>, Error> {
        let Some(mut w) = Waiting::of(self.function, wait) else { return Ok(Lead::Run) };
        let entry = self.key(key)?;
        loop {
            let lease_ms = i64::try_from(w.lease_ms()).unwrap_or(i64::MAX);
            let (token, asked) = (token(), (lease_ms, w.look()));
            let (k, t, tags) = (entry.clone(), token.clone(), ticket.tags.clone());
            let leased = self.db.run(|c| self.lease_with(c, k, t, asked, tags)).map_err(|m| self.fail(m))?;
            match w.next(self.answer(leased, &entry, token, ticket)) {
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
        let Some(mut w) = Waiting::of(self.function, wait) else { return Ok(Lead::Run) };
        let entry = self.key(key)?;
        loop {
            let lease_ms = i64::try_from(w.lease_ms()).unwrap_or(i64::MAX);
            let (token, asked) = (token(), (lease_ms, w.look()));
            let (k, t, tags) = (entry.clone(), token.clone(), ticket.tags.clone());
            let leased = self
                .db
                .run_async(|c| self.lease_with(c, k, t, asked, tags))
                .await
                .map_err(|m| self.fail(m))?;
            match w.next(self.answer(leased, &entry, token, ticket)) {
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
