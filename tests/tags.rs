//! Tags against a real redis-server: `invalidate_tags` removes exactly the tagged
//! entries of every backend and cascades to dependents, costs the same whatever else is
//! stored, never loses to a racing fill, reaches other processes, and fails loudly when
//! Redis is down.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Barrier, Mutex, MutexGuard};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use memo_alchemy::{cache, invalidate_tags, invalidate_tags_async};
use redis::Commands;
use support::{is_child, run_child, server, signal, wait_for, warm};

static NAME_RUNS: AtomicUsize = AtomicUsize::new(0);
static ORDERS_RUNS: AtomicUsize = AtomicUsize::new(0);
static AVATAR_RUNS: AtomicUsize = AtomicUsize::new(0);
static TEAM_RUNS: AtomicUsize = AtomicUsize::new(0);
static PAGE_RUNS: AtomicUsize = AtomicUsize::new(0);
static TOTAL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(tags = ["user:{id}"])]
fn name(id: u64) -> String {
    NAME_RUNS.fetch_add(1, SeqCst);
    format!("name-{id}")
}

#[cache(backend = "json", tags = ["table:big"])]
fn big(i: u64) -> u64 {
    i
}

#[cache(backend = "json", tags = ["user:{id}", "table:orders"])]
fn orders(id: u64, page: u32) -> Vec<u64> {
    ORDERS_RUNS.fetch_add(1, SeqCst);
    vec![id, u64::from(page)]
}

#[cache(backend = "distributed_memory", tags = ["user:{id}"])]
fn avatar(id: u64) -> String {
    AVATAR_RUNS.fetch_add(1, SeqCst);
    format!("avatar-{id}-{}", AVATAR_RUNS.load(SeqCst))
}

#[cache(backend = "pickle", tags = ["team:{id}"])]
fn team(id: u64) -> u64 {
    TEAM_RUNS.fetch_add(1, SeqCst);
    id * 10
}

/// Depends on `name` and carries no tag: cleared entirely by a tag of `name`.
#[cache(backend = "json", dependency = [name])]
fn page(id: u64) -> String {
    PAGE_RUNS.fetch_add(1, SeqCst);
    format!("<h1>{}</h1>", name(id))
}

/// Depends on `orders` and carries the same tag: cleared by the tag itself.
#[cache(dependency = [orders], tags = ["user:{id}"])]
fn total(id: u64) -> u64 {
    TOTAL_RUNS.fetch_add(1, SeqCst);
    orders(id, 1).iter().sum()
}

static CARD_RUNS: AtomicUsize = AtomicUsize::new(0);

/// In memory, downstream of `avatar`: another process's invalidation of `avatar`'s
/// entries clears it here.
#[cache(dependency = [avatar])]
fn card(id: u64) -> String {
    CARD_RUNS.fetch_add(1, SeqCst);
    avatar(id)
}

/// The tests share functions and tags, and count Redis commands: one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn runs() -> [usize; 6] {
    [&NAME_RUNS, &ORDERS_RUNS, &AVATAR_RUNS, &TEAM_RUNS, &PAGE_RUNS, &TOTAL_RUNS].map(|r| r.load(SeqCst))
}

/// Calls every function for user 42 and user 7 (and `team(42)`).
fn call_all() {
    for id in [42, 7] {
        name(id);
        orders(id, 1);
        avatar(id);
        page(id);
        total(id);
    }
    orders(42, 2);
    team(42);
}

fn reset() {
    memo_alchemy::flush_all().unwrap();
}

#[test]
fn a_tag_removes_exactly_its_entries_on_every_backend_and_clears_dependents() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    reset();
    warm(|| avatar(1), || avatar::cache_stats().hits);
    call_all();
    let before = runs();
    call_all();
    assert_eq!(runs(), before, "everything is cached");

    // name(42), orders(42, 1), orders(42, 2), avatar(42), total(42), and page(42), page(7)
    // (page depends on name and carries no tag: cleared entirely).
    assert_eq!(invalidate_tags(["user:42"]).unwrap(), 7);

    let mut raw = server().raw();
    assert!(server().keys("memo:*:tag:user:42").is_empty(), "the tag's sets are gone");
    let sevens = server().keys("memo:*:tag:user:7");
    let members: usize = sevens.iter().map(|set| raw.scard::<_, usize>(set).unwrap()).sum();
    assert_eq!(members, 1, "orders(7, 1) keeps its tag");
    let versions = server().keys("memo:*:tagv:user:42");
    assert!(!versions.is_empty(), "the tag has versions where it was carried");
    for key in versions {
        assert!(raw.get::<_, u64>(&key).unwrap() > 0, "the tag's version moved on in {key}");
    }

    let [n, o, a, t, p, tt] = before;
    call_all();
    // For user 7: page(7) is recomputed (cleared by the cascade), nothing else.
    assert_eq!(runs(), [n + 1, o + 2, a + 1, t, p + 2, tt + 1], "only the tagged entries and the dependents");
    assert_eq!(team::cache_stats().misses, 1, "team(42) carries team:42, untouched");
}

#[test]
fn a_tag_costs_the_same_round_trips_with_10_or_100_000_other_entries() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    reset();
    let cost = |others: u64| {
        orders(5, 1);
        for i in 0..10 {
            orders(1000 + i, 1);
        }
        // More entries under other tags, written as the write script would.
        let index = server().fill("orders", others);
        let sub_index = index.strip_suffix(":i").unwrap();
        let _: () = redis::Script::new(
            "for i = 1, tonumber(ARGV[1]) do redis.call('SADD', KEYS[1], ARGV[2] .. ':k:' .. i) end",
        )
        .key(format!("{sub_index}:tag:user:other"))
        .arg(others)
        .arg(sub_index)
        .invoke(&mut server().raw())
        .unwrap();
        let before = commands();
        assert_eq!(invalidate_tags(["user:5"]).unwrap(), 1);
        let cost = commands() - before;
        reset();
        cost
    };
    orders(0, 1); // lists the function's namespace in the tagged hash
    invalidate_tags(["user:0"]).unwrap(); // loads the scripts (one batch: orders(0, 1))
    let (small, large) = (cost(10), cost(100_000));
    println!("commands per invalidation: {small} with 10 other entries, {large} with 100,000");
    assert_eq!(small, large, "commands with 10 and with 100,000 other entries");
}

/// Commands Redis ran (scripts' own commands included), less the background ones: the
/// subscriber's heartbeat, the drain's polls, and these probes.
fn commands() -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server().raw().scard::<_, usize>("memo:__memo:drains").unwrap() > 0 {
        assert!(Instant::now() < deadline, "the drain never finished");
        sleep(Duration::from_millis(10));
    }
    server()
        .command_calls()
        .into_iter()
        .filter(|(c, _)| !["ping", "info", "srandmember", "scard", "replconf"].contains(&c.as_str()))
        .filter(|(c, _)| !c.starts_with("cluster|"))
        .map(|(_, n)| n)
        .sum()
}

static RACE_RUNS: AtomicUsize = AtomicUsize::new(0);
static RACE_GATE: Mutex<Option<std::sync::Arc<Barrier>>> = Mutex::new(None);

#[cache(backend = "json", tags = ["race:{id}"])]
fn raced(id: u64) -> usize {
    let run = RACE_RUNS.fetch_add(1, SeqCst) + 1;
    let gate = RACE_GATE.lock().unwrap().clone();
    if let Some(gate) = gate {
        gate.wait(); // the lookup is done
        gate.wait(); // the tag was invalidated
    }
    id as usize * 100 + run
}

static LOCAL_RACE_RUNS: AtomicUsize = AtomicUsize::new(0);
static LOCAL_GATE: Mutex<Option<std::sync::Arc<Barrier>>> = Mutex::new(None);

#[cache(tags = ["race:{id}"])]
fn raced_locally(id: u64) -> usize {
    let run = LOCAL_RACE_RUNS.fetch_add(1, SeqCst) + 1;
    let gate = LOCAL_GATE.lock().unwrap().clone();
    if let Some(gate) = gate {
        gate.wait();
        gate.wait();
    }
    id as usize * 100 + run
}

fn race(gate: &Mutex<Option<std::sync::Arc<Barrier>>>, call: fn(u64) -> usize) {
    let barrier = std::sync::Arc::new(Barrier::new(2));
    *gate.lock().unwrap() = Some(barrier.clone());
    let filler = thread::spawn(move || call(3));
    barrier.wait();
    invalidate_tags(["race:3"]).unwrap();
    barrier.wait();
    let old = filler.join().unwrap();
    *gate.lock().unwrap() = None;
    assert_ne!(call(3), old, "the value computed before the invalidation was not stored");
}

#[test]
fn a_tag_invalidation_racing_a_fill_leaves_nothing_behind() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    reset();
    race(&RACE_GATE, raced);
    assert_eq!(server().keys("memo:*::raced:*:k:*").len(), 1, "only the value computed after");
    race(&LOCAL_GATE, raced_locally);
}

#[test]
fn child_sees_a_tag_invalidation() {
    if !is_child() {
        return;
    }
    server();
    let old = warm(|| avatar(42), || avatar::cache_stats().hits);
    let kept = warm(|| avatar(7), || avatar::cache_stats().hits);
    orders(42, 1);
    name(42);
    name(7);
    card(42);
    let (names, cards) = (NAME_RUNS.load(SeqCst), CARD_RUNS.load(SeqCst));
    signal("tags:ready");
    wait_for("tags:acted");
    let deadline = Instant::now() + Duration::from_secs(5);
    while name::cache_stats().len != Some(1) {
        assert!(Instant::now() < deadline, "the invalidation never reached this process's memory");
        sleep(Duration::from_millis(5));
    }
    name(42);
    name(7);
    assert_eq!(NAME_RUNS.load(SeqCst), names + 1, "name(42), in memory here, carried user:42");
    card(42);
    assert_eq!(CARD_RUNS.load(SeqCst), cards + 1, "card depends on avatar: cleared here too");
    assert_ne!(avatar(42), old, "user 42's avatar was recomputed after the other process's invalidation");
    assert_eq!(avatar(7), kept, "user 7's stayed");
    let misses = orders::cache_stats().misses;
    orders(42, 1);
    assert_eq!(orders::cache_stats().misses, misses + 1, "orders(42, 1) is gone from Redis");
}

#[test]
fn a_tag_invalidation_reaches_another_process() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    reset();
    let _: () = server().raw().del(&["tags:ready", "tags:acted"]).unwrap();
    let mut child = run_child("child_sees_a_tag_invalidation", &[]);
    wait_for("tags:ready");
    // This process never called avatar or orders for these ids: the bus and Redis's tag
    // index reach the other process's entries.
    assert!(invalidate_tags(["user:42"]).unwrap() >= 1, "orders(42, 1) from the other process");
    signal("tags:acted");
    assert!(child.wait().unwrap().success(), "the child saw the invalidation");
}

#[test]
fn async_invalidation_removes_tagged_entries() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    reset();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        orders(11, 1);
        orders(12, 1);
        assert_eq!(invalidate_tags_async(["user:11", "user:12", "user:13"]).await.unwrap(), 2);
        let misses = orders::cache_stats().misses;
        orders(11, 1);
        assert_eq!(orders::cache_stats().misses, misses + 1);
    });
}

#[test]
fn a_tag_invalidation_while_redis_is_frozen_is_an_error_and_is_retried() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    reset();
    orders(21, 1);
    assert_eq!(orders::cache_stats().len, Some(1));
    server().pause();
    let result = invalidate_tags(["user:21"]);
    server().resume();
    let err = result.expect_err("never a silent success");
    assert!(err.to_string().contains("retried"), "{err}");
    // Meanwhile nothing tagged user:* is served from Redis; then the retry goes through.
    let deadline = Instant::now() + Duration::from_secs(10);
    while memo_alchemy::pending_clears() > 0 {
        assert!(Instant::now() < deadline, "the invalidation was never retried");
        sleep(Duration::from_millis(20));
    }
    assert!(server().keys("memo:*::orders:*:k:*").is_empty(), "the retry removed orders(21, 1)");
}

#[test]
fn a_tag_over_many_entries_is_removed_in_batches() {
    if is_child() {
        return;
    }
    let _serial = serial();
    server();
    reset();
    // 5,000 entries of one function under one tag: one computed, the others written as
    // the write script would (value tagged with the current epoch, member of the tag's
    // set and of the index).
    assert_eq!(big(0), 0);
    let entry = server().keys("memo:*::big:*:k:*").pop().unwrap();
    let sub_index = entry.rsplit_once(":k:").unwrap().0.to_owned();
    let _: () = redis::Script::new(
        "local epoch = redis.call('GET', KEYS[3]) or '0'
         for i = 1, 4999 do
           local key = ARGV[1] .. ':k:x' .. i
           redis.call('SET', key, 'e' .. epoch .. '|' .. i)
           redis.call('ZADD', KEYS[2], i, key)
           redis.call('SADD', KEYS[1], key)
         end",
    )
    .key(format!("{sub_index}:tag:table:big"))
    .key(format!("{sub_index}:i"))
    .key(format!("{sub_index}:e"))
    .arg(&sub_index)
    .invoke(&mut server().raw())
    .unwrap();
    assert_eq!(invalidate_tags(["table:big"]).unwrap(), 5_000, "every live entry, counted once");
    assert!(server().keys("memo:*::big:*:k:*").is_empty(), "all removed");
    let mut raw = server().raw();
    assert_eq!(raw.zcard::<_, usize>(format!("{sub_index}:i")).unwrap(), 0, "and their index members");
    assert!(server().keys("memo:*:tag*:table:big").iter().all(|k| k.contains(":tagv:")), "no set left");
}
