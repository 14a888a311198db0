//! The values of a memory tier kept coherent through the invalidation bus: `distributed_memory`'s
//! values, and the `local = N` tier in front of json and pickle. Every invalidation,
//! here or from another process, moves the tier's generation on before it removes
//! anything, so that a fill that began before cannot store after; values are served
//! only under the bus epoch they were filled in, so a subscription gap drops them all.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

use memo_core::{Backend, CachedFunction, RenderTags};
use serde::Serialize;

use super::Listener;
use crate::keys::unhex;
use crate::Memory;

/// One function's values in this process.
#[derive(Debug)]
pub(crate) struct Local<K, V> {
    pub(crate) memory: Memory<K, V>,
    pub(crate) function: &'static CachedFunction,
    pub(crate) tags: Option<RenderTags<K>>,
    /// Advanced by every invalidation, local or remote, before it removes anything.
    pub(crate) generation: AtomicU64,
    /// The bus epoch the stored values were filled under.
    pub(crate) epoch: AtomicU64,
}

impl<K, V> Local<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn invalidate(&self) -> usize {
        self.generation.fetch_add(1, SeqCst);
        self.memory.clear().unwrap_or(0)
    }

    pub(crate) fn invalidate_resolved(&self, resolved: &[(usize, &[u8])]) -> usize {
        self.generation.fetch_add(1, SeqCst);
        self.memory.clear_by(resolved).unwrap_or(0)
    }

    pub(crate) fn invalidate_where(&self, doomed: &(dyn Fn(&K) -> bool + Sync)) -> usize {
        self.generation.fetch_add(1, SeqCst);
        self.memory.clear_tagged(doomed).unwrap_or(0)
    }

    /// After another process's clear: the functions downstream whose entries only this
    /// process can reach (that process cleared the shared ones).
    fn cascade(&self) {
        if let Err(err) = memo_core::clear_private_downstream(self.function) {
            tracing::debug!(function = self.function.path(), %err, "memo-alchemy: a dependent could not be cleared");
        }
    }
}

impl<K, V> Local<K, V>
where
    K: Serialize + Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// `memory`'s values, listening on `bus` for the invalidations of namespace `ns`.
    pub(crate) fn listening(
        memory: Memory<K, V>,
        function: &'static CachedFunction,
        tags: Option<RenderTags<K>>,
        ns: &str,
        bus: &dyn super::Bus,
    ) -> Arc<Self> {
        let local = Arc::new(Local {
            memory,
            function,
            tags,
            generation: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
        });
        bus.listen(ns, Arc::clone(&local) as Arc<dyn Listener>);
        local
    }
}

impl<K, V> Listener for Local<K, V>
where
    K: Serialize + Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn invalidate_all(&self) {
        self.invalidate();
        self.cascade();
    }

    fn invalidate_matching(&self, segments: &[&str]) {
        let names = self.function.arg_names();
        let decoded: Option<Vec<(usize, Vec<u8>)>> = segments
            .iter()
            .map(|s| {
                let (name, hex) = s.split_once('=')?;
                Some((names.iter().position(|n| *n == name)?, unhex(hex)?))
            })
            .collect();
        match decoded {
            Some(decoded) => {
                let resolved: Vec<(usize, &[u8])> = decoded.iter().map(|(i, b)| (*i, &b[..])).collect();
                self.invalidate_resolved(&resolved);
            }
            // A message this build cannot read: clearing everything is safe.
            None => {
                self.invalidate();
            }
        }
        self.cascade();
    }

    fn invalidate_key(&self, hex: &str) {
        match unhex(hex) {
            Some(wanted) => {
                self.invalidate_where(&|key: &K| {
                    postcard::to_stdvec(key).map_or(true, |bytes| bytes == wanted)
                });
            }
            None => {
                self.invalidate();
            }
        }
        self.cascade();
    }

    fn invalidate_tagged(&self, tags: &[String]) {
        if let (true, Some(render)) = (self.function.may_carry(tags), self.tags) {
            // The bus then clears what is private downstream of every carrying function.
            self.invalidate_where(&|key: &K| render(key).iter().any(|t| tags.contains(t)));
        }
    }
}
