//! The peers every bench compares against, on the same keys and working set.
//!
//! Each peer is a memo function as a user would write it with that crate: look the
//! key up, else compute, insert and return. `memo_alchemy` is ours.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::LazyLock;

use cached::macros::cached;
use cached::Cached;
use lru::LruCache;
use memo_alchemy::cache;
use parking_lot::Mutex;

/// Capacity of every cache in the hit and throughput groups.
pub const CAPACITY: usize = 10_000;
/// Keys that are read over and over: they all fit.
pub const WORKING_SET: u64 = 8_000;

/// The "expensive" body: cheap, so that the benches measure the caches.
#[inline]
pub fn compute(a: u64) -> u64 {
    a.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A memo function `u64 -> u64` and how to empty its cache.
#[derive(Clone, Copy)]
pub struct Peer {
    /// The name in criterion ids and in the report.
    pub name: &'static str,
    /// The memo function.
    pub call: fn(u64) -> u64,
    /// Empties its cache.
    pub clear: fn(),
}

impl Peer {
    /// Empties the cache, then reads the whole working set once so that it is cached.
    pub fn fill(&self) {
        (self.clear)();
        for k in 0..WORKING_SET {
            (self.call)(k);
        }
    }
}

#[cache(limit = 10000)]
pub fn ours(a: u64) -> u64 {
    compute(a)
}

#[cache(limit = 10000, expire = -1)]
pub fn ours_no_expire(a: u64) -> u64 {
    compute(a)
}

thread_local! {
    /// The floor: a bare hashbrown map with foldhash, one per thread (no sharing, no
    /// lock), FIFO-evicted when full.
    static FLOOR: RefCell<(hashbrown::HashMap<u64, u64, foldhash::fast::FixedState>, VecDeque<u64>)> =
        RefCell::default();
}

pub fn floor(a: u64) -> u64 {
    FLOOR.with(|cell| {
        let (map, order) = &mut *cell.borrow_mut();
        if let Some(v) = map.get(&a) {
            return *v;
        }
        let v = compute(a);
        if map.len() >= CAPACITY {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
        map.insert(a, v);
        order.push_back(a);
        v
    })
}

fn floor_clear() {
    FLOOR.with(|cell| *cell.borrow_mut() = Default::default());
}

fn capacity() -> NonZeroUsize {
    NonZeroUsize::new(CAPACITY).expect("the capacity is not zero")
}

static LRU: LazyLock<Mutex<LruCache<u64, u64>>> = LazyLock::new(|| Mutex::new(LruCache::new(capacity())));

pub fn lru_mutex(a: u64) -> u64 {
    if let Some(v) = LRU.lock().get(&a) {
        return *v;
    }
    let v = compute(a);
    LRU.lock().put(a, v);
    v
}

static QUICK: LazyLock<quick_cache::sync::Cache<u64, u64>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(CAPACITY));

pub fn quick_cache(a: u64) -> u64 {
    if let Some(v) = QUICK.get(&a) {
        return v;
    }
    let v = compute(a);
    QUICK.insert(a, v);
    v
}

static MOKA: LazyLock<moka::sync::Cache<u64, u64>> =
    LazyLock::new(|| moka::sync::Cache::new(CAPACITY as u64));

pub fn moka(a: u64) -> u64 {
    if let Some(v) = MOKA.get(&a) {
        return v;
    }
    let v = compute(a);
    MOKA.insert(a, v);
    v
}

#[cached(max_size = 10000)]
pub fn cached_u64(a: u64) -> u64 {
    compute(a)
}

/// Every peer of the u64 groups, ours first.
pub const U64_PEERS: [Peer; 6] = [
    Peer { name: "memo_alchemy", call: ours, clear: || drop(ours::cache_clear()) },
    Peer { name: "floor_hashbrown", call: floor, clear: floor_clear },
    Peer { name: "lru_mutex", call: lru_mutex, clear: || LRU.lock().clear() },
    Peer { name: "quick_cache", call: quick_cache, clear: || QUICK.clear() },
    Peer {
        name: "moka",
        call: moka,
        clear: || {
            MOKA.invalidate_all();
            MOKA.run_pending_tasks();
        },
    },
    Peer { name: "cached", call: cached_u64, clear: || CACHED_U64.write().cache_clear() },
];

/// Ours without expiry: the hit path without any clock.
pub const OURS_NO_EXPIRE: Peer = Peer {
    name: "memo_alchemy_no_expire",
    call: ours_no_expire,
    clear: || drop(ours_no_expire::cache_clear()),
};

/// The two-`String` working set of group 2.
pub fn string_keys() -> Vec<(String, String)> {
    (0..WORKING_SET).map(|i| (format!("user-{i}"), format!("/articles/{}/comments", i * 7))).collect()
}

fn compute_str(a: &str, b: &str) -> u64 {
    compute((a.len() * 31 + b.len()) as u64)
}

#[cache(limit = 10000, strict = true)]
pub fn ours_strict(a: &str, b: &str) -> u64 {
    compute_str(a, b)
}

#[cache(limit = 10000)]
pub fn ours_fast_keys(a: &str, b: &str) -> u64 {
    compute_str(a, b)
}

/// `(&str, &str)` looking up a `(String, String)` key without allocating, where the
/// peer's API allows it (hashbrown and quick_cache take an `Equivalent` key).
#[derive(Hash)]
struct Pair<'a>(&'a str, &'a str);

impl hashbrown::Equivalent<(String, String)> for Pair<'_> {
    fn equivalent(&self, key: &(String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

impl quick_cache::Equivalent<(String, String)> for Pair<'_> {
    fn equivalent(&self, key: &(String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

/// Checks that `Pair` hashes like the tuple it stands for.
pub fn pair_hashes_like_tuple() -> bool {
    let hash = |x: &dyn Fn(&mut foldhash::fast::FoldHasher)| {
        let mut h = foldhash::fast::FixedState::with_seed(1).build_hasher();
        x(&mut h);
        h.finish()
    };
    hash(&|h| Pair("a", "b").hash(h)) == hash(&|h| ("a".to_owned(), "b".to_owned()).hash(h))
}

use std::hash::BuildHasher;

type StrMap = hashbrown::HashMap<(String, String), u64, foldhash::fast::FixedState>;

thread_local! {
    static FLOOR_STR: RefCell<StrMap> = RefCell::default();
}

pub fn floor_str(a: &str, b: &str) -> u64 {
    FLOOR_STR.with(|cell| {
        if let Some(v) = cell.borrow().get(&Pair(a, b)) {
            return *v;
        }
        let v = compute_str(a, b);
        cell.borrow_mut().insert((a.to_owned(), b.to_owned()), v);
        v
    })
}

static LRU_STR: LazyLock<Mutex<LruCache<(String, String), u64>>> =
    LazyLock::new(|| Mutex::new(LruCache::new(capacity())));

/// The lru crate looks up by `Borrow`, so the key is built (allocated) for each call.
pub fn lru_mutex_str(a: &str, b: &str) -> u64 {
    let key = (a.to_owned(), b.to_owned());
    if let Some(v) = LRU_STR.lock().get(&key) {
        return *v;
    }
    let v = compute_str(a, b);
    LRU_STR.lock().put(key, v);
    v
}

static QUICK_STR: LazyLock<quick_cache::sync::Cache<(String, String), u64>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(CAPACITY));

pub fn quick_cache_str(a: &str, b: &str) -> u64 {
    if let Some(v) = QUICK_STR.get(&Pair(a, b)) {
        return v;
    }
    let v = compute_str(a, b);
    QUICK_STR.insert((a.to_owned(), b.to_owned()), v);
    v
}

static MOKA_STR: LazyLock<moka::sync::Cache<(String, String), u64>> =
    LazyLock::new(|| moka::sync::Cache::new(CAPACITY as u64));

/// moka looks up by `Borrow` too: the key is built for each call.
pub fn moka_str(a: &str, b: &str) -> u64 {
    let key = (a.to_owned(), b.to_owned());
    if let Some(v) = MOKA_STR.get(&key) {
        return v;
    }
    let v = compute_str(a, b);
    MOKA_STR.insert(key, v);
    v
}

/// The cached crate keys by an owned value: `convert` builds it for each call.
#[cached(max_size = 10000, key = "(String, String)", convert = r#"{ (a.to_owned(), b.to_owned()) }"#)]
pub fn cached_str(a: &str, b: &str) -> u64 {
    compute_str(a, b)
}

/// A memo function of two string arguments.
pub type StrCall = fn(&str, &str) -> u64;

/// Every peer of the string group, ours (strict, then fast keys) first.
pub const STR_PEERS: [(&str, StrCall); 7] = [
    ("memo_alchemy_strict", ours_strict),
    ("memo_alchemy_fast_keys", ours_fast_keys),
    ("floor_hashbrown", floor_str),
    ("lru_mutex", lru_mutex_str),
    ("quick_cache", quick_cache_str),
    ("moka", moka_str),
    ("cached", cached_str),
];

/// A small, fast, seedable generator (xorshift64*), so that no bench needs `rand`.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }
}
