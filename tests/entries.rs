//! `f::cache_entry(args)`: get, set, remove, ttl and touch without computing, on the
//! memory, json and distributed_memory backends, for free functions, methods and
//! `async fn`s. (A set racing a clear: tests/custom_backend.rs, whose store can stop a
//! set halfway.)

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use memo_alchemy::{cache, cache_impl};
use redis::Commands;
use support::{is_child, run_child, server, signal, wait_for, warm};

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

static SQUARE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(expire = 60)]
fn square(n: u64) -> u64 {
    SQUARE_RUNS.fetch_add(1, SeqCst);
    n * n
}

#[cache(dependency = [square])]
fn square_plus_one(n: u64) -> u64 {
    square(n) + 1
}

static SLOW_GATE: Mutex<Option<std::sync::Arc<std::sync::Barrier>>> = Mutex::new(None);

#[cache]
fn slow(n: u64) -> u64 {
    let gate = SLOW_GATE.lock().unwrap().clone();
    if let Some(gate) = gate {
        gate.wait(); // the computation has begun
        gate.wait(); // a set happened meanwhile
    }
    n
}

#[cache(backend = "json")]
fn slow_shared(n: u64) -> u64 {
    let gate = SLOW_GATE.lock().unwrap().clone();
    if let Some(gate) = gate {
        gate.wait();
        gate.wait();
    }
    n
}

/// A computation that read the old data before a write-through must not overwrite it.
fn a_set_wins_over_an_older_computation(
    f: fn(u64) -> u64,
    set: fn(u64) -> Result<(), memo_alchemy::Error>,
    get: fn() -> Option<u64>,
) {
    let gate = std::sync::Arc::new(std::sync::Barrier::new(2));
    *SLOW_GATE.lock().unwrap() = Some(std::sync::Arc::clone(&gate));
    let computing = std::thread::spawn(move || f(5));
    gate.wait();
    set(500).unwrap();
    gate.wait();
    assert_eq!(computing.join().unwrap(), 5, "the caller still gets what it computed");
    *SLOW_GATE.lock().unwrap() = None;
    assert_eq!(get(), Some(500), "the older computation did not overwrite the set value");
}

#[test]
fn a_set_wins_over_an_older_computation_in_memory_and_in_redis() {
    let _serial = serial();
    server();
    a_set_wins_over_an_older_computation(
        slow,
        |v| slow::cache_entry(5).set(v),
        || slow::cache_entry(5).get().unwrap(),
    );
    a_set_wins_over_an_older_computation(
        slow_shared,
        |v| slow_shared::cache_entry(5).set(v),
        || slow_shared::cache_entry(5).get().unwrap(),
    );
}

#[test]
fn memory_entries_get_set_remove_ttl_and_touch() {
    server(); // installs the test configuration before any cached call
    let e = square::cache_entry(3);
    assert_eq!(e.get().unwrap(), None, "nothing is computed by get");
    assert_eq!(SQUARE_RUNS.load(SeqCst), 0);
    e.set(10).unwrap();
    assert_eq!(e.get().unwrap(), Some(10));
    assert_eq!(square(3), 10, "the set value is served");
    assert_eq!(SQUARE_RUNS.load(SeqCst), 0);
    let ttl = e.ttl().unwrap().expect("expire = 60");
    assert!(ttl > Duration::from_secs(59) && ttl <= Duration::from_secs(60), "{ttl:?}");
    std::thread::sleep(Duration::from_millis(30));
    assert!(e.touch().unwrap());
    assert!(e.ttl().unwrap().unwrap() > ttl - Duration::from_millis(5), "touch restarted the lifetime");
    assert_eq!(square_plus_one(3), 11);
    assert!(e.remove().unwrap(), "there was a live entry");
    assert!(!e.remove().unwrap(), "not any more");
    assert_eq!(e.ttl().unwrap(), None);
    assert!(!e.touch().unwrap());
    assert_eq!(square_plus_one::cache_stats().len, Some(0), "the dependent was cleared");
    assert_eq!(square(3), 9);
    assert_eq!(SQUARE_RUNS.load(SeqCst), 1);
}

static PROFILE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(backend = "json", expire = 60, strict = true, tags = ["user:{id}"])]
fn profile(id: u64, lang: &str) -> String {
    PROFILE_RUNS.fetch_add(1, SeqCst);
    format!("{id}-{lang}")
}

#[test]
fn json_entries_live_in_redis() {
    let _serial = serial();
    server();
    let e = profile::cache_entry(7, "en");
    assert_eq!(e.key(), &(7, "en".to_owned()));
    assert_eq!(e.get().unwrap(), None);
    e.set("written through".to_owned()).unwrap();
    let keys = server().keys("memo:*::profile:*:k:*");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let mut raw = server().raw();
    let stored: String = raw.get(&keys[0]).unwrap();
    assert!(stored.ends_with("|\"written through\""), "{stored}");
    let sub_index = keys[0].rsplit_once(":k:").unwrap().0;
    let members: Vec<String> = raw.smembers(format!("{sub_index}:tag:user:7")).unwrap();
    assert_eq!(members, keys, "the set entry carries the function's tags");
    assert_eq!(profile(7, "en"), "written through");
    assert_eq!(PROFILE_RUNS.load(SeqCst), 0);

    let ttl = e.ttl().unwrap().expect("expire = 60");
    assert!(ttl > Duration::from_secs(59), "{ttl:?}");
    let _: () = raw.pexpire(&keys[0], 5_000).unwrap();
    assert!(e.ttl().unwrap().unwrap() <= Duration::from_secs(5));
    assert!(e.touch().unwrap());
    let pttl: i64 = raw.pttl(&keys[0]).unwrap();
    assert!(pttl > 59_000, "touch restarted the lifetime in Redis: {pttl}");

    assert!(e.remove().unwrap());
    assert!(server().keys("memo:*::profile:*:k:*").is_empty(), "removed from Redis");
    let index = server().keys("memo:*::profile:*:i");
    assert!(index.iter().all(|i| raw.zcard::<_, usize>(i).unwrap() == 0), "and from the index");
    assert!(!e.remove().unwrap());
    assert_eq!(e.ttl().unwrap(), None);
    assert_eq!(profile(7, "en"), "7-en");
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Shop {
    id: u32,
}

#[cache_impl]
impl Shop {
    #[cache]
    fn price(&self, item: u32) -> u32 {
        self.id * 100 + item
    }

    #[cache(is_method = true)]
    fn shared(&self, item: u32) -> u32 {
        self.id + item
    }
}

#[test]
fn method_entries_take_the_receiver_when_it_is_in_the_key() {
    server(); // installs the test configuration before any cached call
    let (a, b) = (Shop { id: 1 }, Shop { id: 2 });
    a.price_cache_entry(5).set(7).unwrap();
    assert_eq!(a.price(5), 7);
    assert_eq!(b.price(5), 205, "another receiver, another entry");
    Shop::shared_cache_entry(5).set(0).unwrap();
    assert_eq!((a.shared(5), b.shared(5)), (0, 0), "is_method = true: one entry for every receiver");
}

#[cache]
async fn fetch(id: u64) -> u64 {
    id + 1
}

#[test]
fn async_entries_are_awaited() {
    server(); // installs the test configuration before any cached call
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let e = fetch::cache_entry(1);
        assert_eq!(e.get().await.unwrap(), None);
        e.set(42).await.unwrap();
        assert_eq!(fetch(1).await, 42);
        assert!(e.touch().await.unwrap());
        assert!(e.ttl().await.unwrap().is_some());
        assert!(e.remove().await.unwrap());
        assert_eq!(fetch(1).await, 2);
    });
}

static AVATAR_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(backend = "distributed_memory")]
fn avatar(id: u64) -> String {
    format!("avatar-{id}-{}", AVATAR_RUNS.fetch_add(1, SeqCst))
}

#[test]
fn child_sees_an_entry_removed() {
    if !is_child() {
        return;
    }
    server();
    let old = warm(|| avatar(1), || avatar::cache_stats().hits);
    let kept = warm(|| avatar(2), || avatar::cache_stats().hits);
    signal("entries:ready");
    wait_for("entries:acted");
    assert_ne!(avatar(1), old, "removed in the other process: recomputed here");
    assert_eq!(avatar(2), kept, "the other entry stays");
}

#[test]
fn a_distributed_memory_entry_removed_here_is_removed_everywhere() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    let _: () = server().raw().del(&["entries:ready", "entries:acted"]).unwrap();
    let mut child = run_child("child_sees_an_entry_removed", &[]);
    wait_for("entries:ready");
    assert!(!avatar::cache_entry(1).remove().unwrap(), "never computed in this process");
    signal("entries:acted");
    assert!(child.wait().unwrap().success(), "the child saw the removal");
}

static MANY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(backend = "json")]
fn label(id: u64, lang: &str) -> String {
    MANY_RUNS.fetch_add(1, SeqCst);
    format!("{id}:{lang}")
}

/// Calls of `name` Redis has run, from `INFO commandstats`.
fn calls(name: &str) -> u64 {
    server().command_calls().into_iter().find(|(c, _)| c == name).map_or(0, |(_, n)| n)
}

#[test]
fn cache_many_reads_every_hit_in_one_mget() {
    let _serial = serial();
    server();
    let items: Vec<(u64, String)> = (0..100).map(|i| (i, "en".to_owned())).collect();
    let first = label::cache_many(items.clone());
    assert_eq!(first.len(), 100);
    assert_eq!(first[42], "42:en", "in order");
    assert_eq!(MANY_RUNS.load(SeqCst), 100, "every miss computed once");
    let mgets = calls("mget");
    let all = label::cache_many(items);
    assert_eq!(all, first);
    assert_eq!(calls("mget") - mgets, 1, "100 hits, one MGET");
    assert_eq!(MANY_RUNS.load(SeqCst), 100);
    let mgets = calls("mget");
    for i in 0..100 {
        label(i, "en");
    }
    assert_eq!(calls("mget") - mgets, 100, "single calls: one MGET each");
    // A mix: the hits in one MGET, each miss as a single call.
    let mixed = label::cache_many([(1, "en".to_owned()), (500, "fr".to_owned())]);
    assert_eq!(mixed, ["1:en", "500:fr"]);
    assert_eq!(MANY_RUNS.load(SeqCst), 101);
}

#[cache]
async fn double(n: u32) -> u32 {
    n * 2
}

#[test]
fn cache_many_on_async_functions_and_methods() {
    server();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert_eq!(runtime.block_on(double::cache_many([1, 2, 3])), [2, 4, 6]);
    let shop = Shop { id: 3 };
    assert_eq!(shop.price_cache_many([1, 2]), [301, 302]);
    assert_eq!(shop.shared_cache_many([1]), [4]);
}
