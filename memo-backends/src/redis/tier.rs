//! The `local = N` tier of json and pickle (see [`crate::tier`]): what the Redis store
//! does with it on lookups, writes and direct writes.

use std::hash::Hash;

use memo_core::{Error, Lookup};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::codec::Codec;
use super::namespace::{fnv1a, Entry};
use super::pending::{invalidate, invalidate_async, Target, What};
use super::{RedisStore, RedisTicket};
pub(crate) use crate::tier::{Tier, TierTicket};

impl<K, V, C> RedisStore<K, V, C>
where
    K: Serialize + Hash + Eq + Clone + Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    C: Codec,
{
    /// A lookup's answer (and its value's write time); a hit enters the tier, until the
    /// entry's end in Redis.
    pub(super) fn keep(
        &self,
        (lookup, written): (Lookup<V, RedisTicket>, Option<u64>),
        key: K,
        entry: &Entry,
        ticket: TierTicket,
    ) -> Lookup<V, RedisTicket> {
        if let Some(tier) = &self.tier {
            tier.keep(&lookup, key, written, fnv1a(entry.key.as_bytes()), ticket);
        }
        lookup
    }

    /// A write's outcome, counted; a stored value enters the tier (`direct`: a direct
    /// write's, see [`Tier::stored`]).
    pub(super) fn stored(
        &self,
        evicted: Option<u64>,
        key: K,
        value: V,
        entry: &Entry,
        ticket: (TierTicket, bool),
    ) {
        self.counted(evicted);
        if let (Some(tier), Some(_)) = (&self.tier, evicted) {
            tier.stored(key, value, fnv1a(entry.key.as_bytes()), ticket.0, ticket.1);
        }
    }

    /// Before a direct write of `key`: its value here goes and fills that began before
    /// are refused; the tier's ticket for the write. (The other processes are told once
    /// the value is stored: told before, they could read the old one again.)
    pub(super) fn unserve(&self, key: &K) -> TierTicket {
        self.tier.as_ref()?.unserve(key)
    }

    /// After a direct write stored its value: the other processes drop their copies.
    pub(super) fn announce(&self, entry: &Entry) -> Result<(), Error> {
        invalidate(&self.ns, Target::Bus, What::Key(entry.key.clone())).map(drop).map_err(|m| self.fail(m))
    }

    /// [`announce`](RedisStore::announce) for `async` callers.
    pub(super) async fn announce_async(&self, entry: &Entry) -> Result<(), Error> {
        let what = What::Key(entry.key.clone());
        invalidate_async(&self.ns, Target::Bus, what).await.map(drop).map_err(|m| self.fail(m))
    }
}
