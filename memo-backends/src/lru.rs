//! An exact LRU map: a hash table of slot indices over a slab of slots that a doubly
//! linked list orders from most to least recently used. Not synchronised: the
//! memory backend wraps it in a mutex, for small limits (`EXACT_LRU_MAX`).

use hashbrown::HashTable;

const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Slot<K, V> {
    hash: u64,
    entry: Option<(K, V)>,
    /// `now_ms()` past which the entry is expired; `u64::MAX` for never.
    expires_at: u64,
    prev: u32,
    next: u32,
}

/// The LRU map.
#[derive(Debug)]
pub(crate) struct Lru<K, V> {
    table: HashTable<u32>,
    slots: Vec<Slot<K, V>>,
    free: Vec<u32>,
    /// Most recently used.
    head: u32,
    /// Least recently used: the next to evict.
    tail: u32,
}

/// What a lookup found.
pub(crate) enum Found<'a, V> {
    /// The value and its expiry time.
    Live(&'a V, u64),
    Expired,
    Absent,
}

impl<K, V> Lru<K, V> {
    pub(crate) fn new() -> Self {
        Lru { table: HashTable::new(), slots: Vec::new(), free: Vec::new(), head: NIL, tail: NIL }
    }

    /// Whether `key` has an entry (expired or not).
    pub(crate) fn contains(&self, hash: u64, key: &K) -> bool
    where
        K: Eq,
    {
        self.find(hash, |k| k == key).is_some()
    }

    /// The hash of the entry a full map evicts next: the least recently used.
    pub(crate) fn victim_hash(&self) -> Option<u64> {
        (self.tail != NIL).then(|| self.slots[self.tail as usize].hash)
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Finds the entry for which `eq` holds; a live one becomes most recently used, one
    /// whose expiry time `expired` accepts is removed.
    pub(crate) fn get(
        &mut self,
        hash: u64,
        expired: impl Fn(u64) -> bool,
        eq: impl Fn(&K) -> bool,
    ) -> Found<'_, V> {
        let Some(index) = self.find(hash, eq) else {
            return Found::Absent;
        };
        if expired(self.slots[index as usize].expires_at) {
            self.remove(index);
            return Found::Expired;
        }
        self.unlink(index);
        self.push_front(index);
        let slot = &self.slots[index as usize];
        match &slot.entry {
            Some((_, v)) => Found::Live(v, slot.expires_at),
            None => Found::Absent,
        }
    }

    /// Inserts or replaces; returns how many entries were evicted to stay within `limit`.
    pub(crate) fn insert(&mut self, hash: u64, key: K, value: V, expires_at: u64, limit: Option<usize>) -> u64
    where
        K: Eq,
    {
        let slots = &self.slots;
        if let Some(&index) =
            self.table.find(hash, |&i| slots[i as usize].entry.as_ref().is_some_and(|(k, _)| *k == key))
        {
            let slot = &mut self.slots[index as usize];
            slot.entry = Some((key, value));
            slot.expires_at = expires_at;
            self.unlink(index);
            self.push_front(index);
            return 0;
        }
        let cap = limit.unwrap_or(usize::MAX).min(NIL as usize - 1);
        let mut evicted = 0;
        while self.len() >= cap && self.tail != NIL {
            self.remove(self.tail);
            evicted += 1;
        }
        let slot = Slot { hash, entry: Some((key, value)), expires_at, prev: NIL, next: NIL };
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index as usize] = slot;
                index
            }
            None => {
                self.slots.push(slot);
                u32::try_from(self.slots.len() - 1).expect("the slab holds fewer than u32::MAX slots")
            }
        };
        let slots = &self.slots;
        self.table.insert_unique(hash, index, |&i| slots[i as usize].hash);
        self.push_front(index);
        evicted
    }

    /// The slot of the entry for which `eq` holds.
    fn find(&self, hash: u64, eq: impl Fn(&K) -> bool) -> Option<u32> {
        let slots = &self.slots;
        self.table.find(hash, |&i| slots[i as usize].entry.as_ref().is_some_and(|(k, _)| eq(k))).copied()
    }

    /// Removes the entry for which `eq` holds; its expiry time, if there was one.
    pub(crate) fn remove_key(&mut self, hash: u64, eq: impl Fn(&K) -> bool) -> Option<u64> {
        let index = self.find(hash, eq)?;
        let expires_at = self.slots[index as usize].expires_at;
        self.remove(index);
        Some(expires_at)
    }

    /// The expiry time of the entry for which `eq` holds, which `update` replaces.
    pub(crate) fn expiry(
        &mut self,
        hash: u64,
        eq: impl Fn(&K) -> bool,
        update: impl FnOnce(u64) -> u64,
    ) -> Option<u64> {
        let index = self.find(hash, eq)?;
        let slot = &mut self.slots[index as usize];
        let old = slot.expires_at;
        slot.expires_at = update(old);
        Some(old)
    }

    /// Removes every entry whose key satisfies `doomed`; returns how many.
    pub(crate) fn remove_where(&mut self, mut doomed: impl FnMut(&K) -> bool) -> usize {
        let targets: Vec<u32> = (0..self.slots.len())
            .filter(|&i| self.slots[i].entry.as_ref().is_some_and(|(k, _)| doomed(k)))
            .map(|i| u32::try_from(i).expect("slot indices fit in u32"))
            .collect();
        targets.iter().for_each(|&i| self.remove(i));
        targets.len()
    }

    /// The entries not expired by `now`.
    pub(crate) fn live(&self, now: u64) -> usize {
        self.slots.iter().filter(|s| s.entry.is_some() && s.expires_at > now).count()
    }

    /// Removes everything; returns how many live (not expired by `now`) entries there were.
    pub(crate) fn clear(&mut self, now: u64) -> usize {
        let n = self.live(now);
        *self = Lru::new();
        n
    }

    fn remove(&mut self, index: u32) {
        let hash = self.slots[index as usize].hash;
        if let Ok(found) = self.table.find_entry(hash, |&i| i == index) {
            found.remove();
        }
        self.unlink(index);
        self.slots[index as usize].entry = None;
        self.free.push(index);
    }

    fn unlink(&mut self, index: u32) {
        let Slot { prev, next, .. } = self.slots[index as usize];
        match prev {
            NIL => self.head = next,
            p => self.slots[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n as usize].prev = prev,
        }
        let slot = &mut self.slots[index as usize];
        slot.prev = NIL;
        slot.next = NIL;
    }

    fn push_front(&mut self, index: u32) {
        let old_head = self.head;
        {
            let slot = &mut self.slots[index as usize];
            slot.prev = NIL;
            slot.next = old_head;
        }
        match old_head {
            NIL => self.tail = index,
            h => self.slots[h as usize].prev = index,
        }
        self.head = index;
    }
}
