//! `single_flight = "global"` on Redis (see [`crate::lease`]): the lease is a key beside
//! the entry, in its hash slot, taken by the `LEASE` script (`SET NX PX`, which also
//! reads the clear generation and tag versions again into the ticket), checked and
//! released by `WRITE`, given back by `RELEASE`.

use std::hash::Hash;

use memo_core::{Error, Lead, Lookup};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::conn::block;
use super::namespace::Entry;
use super::ops::{self, Leased};
use super::{Codec, RedisStore, RedisTicket};
use crate::lease::{Answer, Next, Waiting};

impl<K, V, C> RedisStore<K, V, C>
where
    K: Serialize + Hash + Eq + Clone + Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    C: Codec,
{
    /// What one round trip's answer means.
    fn answer(&self, leased: Leased, entry: &Entry) -> Answer<V> {
        match leased {
            Leased::Mine => Answer::Mine,
            Leased::Value(found) => match self.found(found, entry, RedisTicket::default()) {
                Lookup::Hit(v) | Lookup::Refresh(v, _) => Answer::Value(Some(v)),
                Lookup::Miss(_) | Lookup::Stale(..) => Answer::Value(None),
            },
            Leased::Held(left_ms) => Answer::Held(left_ms),
        }
    }

    pub(super) fn lead_blocking(
        &self,
        key: &K,
        ticket: &mut RedisTicket,
        wait: bool,
    ) -> Result<Lead<V>, Error> {
        let Some(mut w) = Waiting::of(self.function, wait) else { return Ok(Lead::Run) };
        let entry = self.entry(key)?;
        loop {
            let (look, ms) = (w.look(), w.lease_ms());
            let leased = self
                .redis
                .run(|io| block(ops::lease(io, &self.ns, &entry, ticket, ms, look)))
                .map_err(|m| self.fail(m))?;
            match w.next(self.answer(leased, &entry)) {
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
        let Some(mut w) = Waiting::of(self.function, wait) else { return Ok(Lead::Run) };
        let entry = self.entry(key)?;
        loop {
            let (look, ms) = (w.look(), w.lease_ms());
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
            match w.next(self.answer(leased, &entry)) {
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
