//! One entry, by the function's own arguments: `f::cache_entry(args)` returns an
//! [`Entry`] (an [`AsyncEntry`] for an `async fn`), to read, write, remove or inspect
//! the entry without computing it, as code that writes through or warms a cache needs.

use std::hash::Hash;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::backend::{Backend, Fill};
use crate::graph::{clear_downstream, clear_downstream_async};
use crate::key::OwnedKey;
use crate::{Error, FunctionCache};

/// The entry of one argument tuple of a cached function (`f::cache_entry(args)`).
///
/// ```
/// use memo_alchemy::cache;
///
/// #[cache]
/// fn square(n: u64) -> u64 { n * n }
///
/// fn main() -> Result<(), memo_alchemy::Error> {
///     let entry = square::cache_entry(4);
///     assert_eq!(entry.get()?, None);
///     entry.set(15)?;                 // written through: the function is not run
///     assert_eq!(square(4), 15);
///     assert!(entry.remove()?);
///     assert_eq!(square(4), 16);
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct Entry<K: 'static, V: 'static, B: 'static> {
    cache: &'static FunctionCache<K, V, B>,
    key: K,
}

/// [`Entry`] of an `async fn`: the same operations, each `async`.
#[derive(Debug)]
pub struct AsyncEntry<K: 'static, V: 'static, B: 'static>(Entry<K, V, B>);

impl<K, V, B> Entry<K, V, B>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    B: Backend<K, V>,
{
    /// The entry of `key` in `cache`. Generated `cache_entry` functions call this.
    pub fn new(cache: &'static FunctionCache<K, V, B>, key: K) -> Self {
        Entry { cache, key }
    }

    /// The entry's key: the function's owned arguments.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// The stored value, without computing it (counted neither as a hit nor a miss).
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub fn get(&self) -> Result<Option<V>, Error> {
        let Some(store) = &self.cache.store else { return Ok(None) };
        Ok(store.get(&OwnedKey(&self.key))?.hit())
    }

    /// Stores `value` as the function's result for these arguments, with the function's
    /// `expire` and tags. A computation of the function that began before does not
    /// overwrite it (here or, for a shared store, in another process); a clear that
    /// begins meanwhile wins: the value is not stored. distributed_memory drops the
    /// entry in the other processes.
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub fn set(&self, value: V) -> Result<(), Error> {
        let Some(store) = &self.cache.store else { return Ok(()) };
        // A computation that began before must not overwrite the value set here.
        self.cache.begin_clear();
        let started = self.cache.generation.load(Ordering::Acquire);
        let ticket = store.reserve(&self.key)?;
        store.put(self.key.clone(), value, Fill::new(&self.cache.generation, started, ticket))
    }

    /// Removes the entry, and clears the functions that depend on this one (they cannot
    /// tell which of their entries used it); returns whether a live entry was there.
    ///
    /// # Errors
    /// When a store cannot be reached (the others are still cleared).
    pub fn remove(&self) -> Result<bool, Error> {
        self.cache.begin_clear();
        let removed = self.cache.store.as_ref().map_or(Ok(false), |s| s.remove(&self.key));
        let downstream = clear_downstream(self.cache.function());
        let removed = removed?;
        downstream.map(|_| removed)
    }

    /// The lifetime the entry has left; `None` when there is no live entry or it never
    /// expires.
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub fn ttl(&self) -> Result<Option<Duration>, Error> {
        self.cache.store.as_ref().map_or(Ok(None), |s| s.ttl(&self.key))
    }

    /// Restarts the entry's lifetime (a full `expire` from now); whether there was a
    /// live entry.
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub fn touch(&self) -> Result<bool, Error> {
        self.cache.store.as_ref().map_or(Ok(false), |s| s.touch(&self.key))
    }
}

impl<K, V, B> AsyncEntry<K, V, B>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    B: Backend<K, V>,
{
    /// The entry of `key` in `cache`. Generated `cache_entry` functions call this.
    pub fn new(cache: &'static FunctionCache<K, V, B>, key: K) -> Self {
        AsyncEntry(Entry::new(cache, key))
    }

    /// The entry's key: the function's owned arguments.
    pub fn key(&self) -> &K {
        &self.0.key
    }

    /// [`Entry::get`].
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub async fn get(&self) -> Result<Option<V>, Error> {
        let Some(store) = &self.0.cache.store else { return Ok(None) };
        Ok(store.get_async(&OwnedKey(&self.0.key)).await?.hit())
    }

    /// [`Entry::set`].
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub async fn set(&self, value: V) -> Result<(), Error> {
        let Entry { cache, key } = &self.0;
        let Some(store) = &cache.store else { return Ok(()) };
        cache.begin_clear();
        let started = cache.generation.load(Ordering::Acquire);
        let ticket = store.reserve_async(key).await?;
        store.put_async(key.clone(), value, Fill::new(&cache.generation, started, ticket)).await
    }

    /// [`Entry::remove`].
    ///
    /// # Errors
    /// When a store cannot be reached (the others are still cleared).
    pub async fn remove(&self) -> Result<bool, Error> {
        let Entry { cache, key } = &self.0;
        cache.begin_clear();
        let removed = match &cache.store {
            Some(store) => store.remove_async(key).await,
            None => Ok(false),
        };
        let downstream = clear_downstream_async(cache.function()).await;
        let removed = removed?;
        downstream.map(|_| removed)
    }

    /// [`Entry::ttl`].
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub async fn ttl(&self) -> Result<Option<Duration>, Error> {
        match &self.0.cache.store {
            Some(store) => store.ttl_async(&self.0.key).await,
            None => Ok(None),
        }
    }

    /// [`Entry::touch`].
    ///
    /// # Errors
    /// When the store cannot be reached.
    pub async fn touch(&self) -> Result<bool, Error> {
        match &self.0.cache.store {
            Some(store) => store.touch_async(&self.0.key).await,
            None => Ok(false),
        }
    }
}
