//! The postgres backend against a real PostgreSQL that the test starts: rows read
//! straight from the table, limit, expire and the cleanup, strict partial clears,
//! clear versus fill, tags, entries and `cache_many`, cascades to dependents never
//! called in this process, corrupted values, async functions, and two processes
//! sharing entries and clears. (Outages: tests/postgres_outage.rs.)

#[path = "support/postgres.rs"]
mod pg;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use memo_alchemy::{cache, invalidate_tags, postgres_cache};
use pg::{child_command, is_child, server};
use support::Gate;

/// The rows of the function whose path ends in `::{name}`: key, value (jsonb as text).
fn rows_of(name: &str) -> Vec<(String, String)> {
    server()
        .query(&format!(
            "SELECT key, value::text FROM memo_test.memo_entries WHERE namespace LIKE 'memo:%::{name}:%' ORDER BY key"
        ))
        .into_iter()
        .map(|r| (r[0].clone().unwrap_or_default(), r[1].clone().unwrap_or_default()))
        .collect()
}

/// Tests that count rows or clear shared functions run one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

static PROFILE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[postgres_cache(limit = 100, expire = 60)]
fn profile(id: u32) -> String {
    PROFILE_RUNS.fetch_add(1, SeqCst);
    format!("user-{id}")
}

#[test]
fn values_are_jsonb_rows_with_their_expiry() {
    server();
    let _serial = serial();
    assert_eq!(profile(1), "user-1");
    assert_eq!(profile(1), "user-1");
    assert_eq!(PROFILE_RUNS.load(SeqCst), 1, "the second call is served from PostgreSQL");
    assert_eq!(rows_of("profile"), [(memo_hex(&1u32), "\"user-1\"".to_owned())]);
    let left: f64 = server()
        .scalar(
            "SELECT extract(epoch FROM expires_at - now()) FROM memo_test.memo_entries \
             WHERE namespace LIKE 'memo:%::profile:%'",
        )
        .parse()
        .unwrap();
    assert!((58.0..=60.0).contains(&left), "expires in 60 s: {left}");
    let stats = profile::cache_stats();
    assert_eq!((stats.hits, stats.misses, stats.len), (1, 1, Some(1)));
    assert_eq!(profile::cache_clear().unwrap(), 1);
    assert!(rows_of("profile").is_empty());
}

/// The key of a non-strict entry: the hex of the postcard-encoded argument tuple.
fn memo_hex(id: &u32) -> String {
    // postcard encodes a u32 as a varint: small ids are one byte.
    assert!(*id < 128);
    format!("{id:02x}")
}

static LIMITED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[postgres_cache(limit = 5)]
fn limited(i: u32) -> u32 {
    LIMITED_RUNS.fetch_add(1, SeqCst);
    i
}

#[test]
fn limit_evicts_the_oldest_rows() {
    server();
    for i in 0..20 {
        limited(i);
    }
    assert_eq!(rows_of("limited").len(), 5);
    assert_eq!(limited::cache_stats().evictions, 15);
    let before = LIMITED_RUNS.load(SeqCst);
    limited(19);
    limited(15);
    assert_eq!(LIMITED_RUNS.load(SeqCst), before, "the newest survive");
    limited(0);
    assert_eq!(LIMITED_RUNS.load(SeqCst), before + 1, "the oldest went first");
}

static RACED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[postgres_cache(limit = 10)]
fn raced(i: u32) -> u32 {
    RACED_RUNS.fetch_add(1, SeqCst);
    i
}

/// Eight threads fill concurrently: the limit holds exactly (the eviction is atomic
/// with the insert, under the function's lock).
#[test]
fn limit_holds_under_concurrent_fills() {
    server();
    let start = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                for i in 0..25 {
                    raced(t * 100 + i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(RACED_RUNS.load(SeqCst), 200);
    assert_eq!(rows_of("raced").len(), 10);
    assert_eq!(raced::cache_stats().evictions, 190);
    let counted = server()
        .scalar("SELECT entries FROM memo_test.memo_generations WHERE namespace LIKE 'memo:%::raced:%'");
    assert_eq!(counted, "10", "the function's row count, which eviction reads, is exact");
}

static BRIEF_RUNS: AtomicUsize = AtomicUsize::new(0);

#[postgres_cache(limit = -1, expire = 1)]
fn brief(i: u32) -> u32 {
    BRIEF_RUNS.fetch_add(1, SeqCst);
    i
}

#[test]
fn expired_rows_are_never_served_and_the_cleanup_deletes_them() {
    let _serial = serial();
    server();
    for i in 0..3 {
        brief(i);
    }
    brief(0);
    assert_eq!(BRIEF_RUNS.load(SeqCst), 3);
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(rows_of("brief").len(), 3, "still in the table");
    assert_eq!(brief::cache_stats().len, Some(0), "but not live");
    brief(0);
    assert_eq!(BRIEF_RUNS.load(SeqCst), 4, "an expired row is a miss");
    let cleanup = memo_alchemy::postgres::start_cleanup(Duration::from_millis(50));
    let deadline = Instant::now() + Duration::from_secs(10);
    while rows_of("brief").len() != 1 {
        assert!(Instant::now() < deadline, "the cleanup never deleted the expired rows");
        thread::sleep(Duration::from_millis(20));
    }
    let deleted = cleanup.stop();
    assert!(deleted >= 2, "{deleted}");
    assert_eq!(brief(0), 0);
    assert_eq!(BRIEF_RUNS.load(SeqCst), 4, "the fresh row stays");
}

static SEARCH_RUNS: AtomicUsize = AtomicUsize::new(0);

#[postgres_cache(strict = true)]
fn search(term: &str, page: u32) -> String {
    SEARCH_RUNS.fetch_add(1, SeqCst);
    format!("{term}/{page}")
}

#[test]
fn partial_clears_remove_exactly_the_selected_rows() {
    server();
    for term in ["*", "a:b", "a", "%", "_"] {
        for page in 0..2 {
            search(term, page);
        }
    }
    assert_eq!(rows_of("search").len(), 10);
    assert_eq!(search::cache_clear_by().term("*").clear().unwrap(), 2, "`*` matches only `*`");
    assert_eq!(search::cache_clear_by().term("%").page(1_u32).clear().unwrap(), 1, "`%` is no wildcard");
    assert_eq!(search::cache_clear_by().page(0_u32).clear().unwrap(), 4);
    let keys: Vec<String> = rows_of("search").into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    let before = SEARCH_RUNS.load(SeqCst);
    assert_eq!(search("a:b", 1), "a:b/1");
    assert_eq!(search("a", 1), "a/1");
    assert_eq!(search("_", 1), "_/1");
    assert_eq!(SEARCH_RUNS.load(SeqCst), before, "the others are untouched");
    assert_eq!(search("*", 1), "*/1");
    assert_eq!(SEARCH_RUNS.load(SeqCst), before + 1);
}

static SLOW_RUNS: AtomicUsize = AtomicUsize::new(0);
/// The gate `slow`'s body waits at, when one is armed (both sides time out).
static SLOW_GATE: Mutex<Option<Arc<Gate>>> = Mutex::new(None);

fn arm() -> Arc<Gate> {
    let gate = Arc::new(Gate::default());
    *SLOW_GATE.lock().unwrap() = Some(Arc::clone(&gate));
    gate
}

#[postgres_cache(tags = ["slow"])]
fn slow(id: u32) -> u32 {
    SLOW_RUNS.fetch_add(1, SeqCst);
    let gate = SLOW_GATE.lock().unwrap().take();
    if let Some(gate) = gate {
        gate.pass();
    }
    id + SLOW_RUNS.load(SeqCst) as u32 * 1000
}

/// Another process clears `slow`, or invalidates its tag.
#[test]
fn child_clears_slow() {
    if !is_child() {
        return;
    }
    server();
    match std::env::var("HOW").unwrap().as_str() {
        "clear" => drop(slow::cache_clear().unwrap()),
        _ => drop(invalidate_tags(["slow"]).unwrap()),
    }
}

/// A computation that began before another process's clear (or tag invalidation)
/// never stores its value after it: this process saw no clear, so only the
/// database's generation (tag version) check can refuse the write.
#[test]
fn a_clear_in_another_process_during_a_fill_wins() {
    server();
    for how in ["clear", "tag"] {
        slow::cache_clear().unwrap();
        let gate = arm();
        let caller = thread::spawn(|| slow(1));
        gate.arrived();
        let status = child_command("child_clears_slow", &[("HOW", how.to_owned())]).status().unwrap();
        assert!(status.success());
        gate.release();
        let old = caller.join().unwrap();
        assert!(rows_of("slow").is_empty(), "{how}: the fill that began before stored nothing");
        let new = slow(1);
        assert_ne!(old, new, "{how}: recomputed");
        assert_eq!(slow(1), new);
        assert_eq!(rows_of("slow").len(), 1);
    }
}

static BASE_RUNS: AtomicUsize = AtomicUsize::new(0);
static DERIVED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[postgres_cache(strict = true)]
fn base(id: u32) -> u32 {
    BASE_RUNS.fetch_add(1, SeqCst);
    id
}

/// Never called by the parent process: only a child fills it.
#[postgres_cache(strict = true, dependency = [base])]
fn derived(id: u32) -> u32 {
    DERIVED_RUNS.fetch_add(1, SeqCst);
    base(id) * 2
}

#[test]
fn child_fills_derived() {
    if !is_child() {
        return;
    }
    server();
    assert_eq!(derived(1), 2);
    assert_eq!(derived(2), 4);
    assert_eq!(DERIVED_RUNS.load(SeqCst), 2);
}

/// A clear cascades to a dependent this process never called: its rows, written by
/// another process, go (partially for a partial clear).
#[test]
fn clears_cascade_to_dependents_never_called_here() {
    server();
    let _serial = serial();
    let status = child_command("child_fills_derived", &[]).status().unwrap();
    assert!(status.success());
    assert_eq!(rows_of("derived").len(), 2);
    assert_eq!(rows_of("base").len(), 2);
    base::cache_clear_by().id(1_u32).clear().unwrap();
    let left: Vec<String> = rows_of("derived").into_iter().map(|(k, _)| k).collect();
    assert_eq!(left, ["id=02"], "the partial clear cascaded by argument name");
    base::cache_clear().unwrap();
    assert!(rows_of("derived").is_empty(), "the full clear cascaded");
    assert_eq!(DERIVED_RUNS.load(SeqCst), 0, "never called here");
}

static TAGGED_RUNS: AtomicUsize = AtomicUsize::new(0);
static DEPENDENT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[postgres_cache(tags = ["user:{id}", "users"])]
fn tagged(id: u32) -> String {
    TAGGED_RUNS.fetch_add(1, SeqCst);
    format!("t{id}")
}

#[cache(dependency = [tagged])]
fn downstream(id: u32) -> String {
    DEPENDENT_RUNS.fetch_add(1, SeqCst);
    tagged(id)
}

#[test]
fn tags_remove_exactly_the_tagged_rows_and_cascade() {
    server();
    let _serial = serial();
    for id in 0..3 {
        downstream(id);
    }
    assert_eq!(rows_of("tagged").len(), 3);
    let tags = server().scalar(
        "SELECT tags::text FROM memo_test.memo_entries WHERE namespace LIKE 'memo:%::tagged:%' AND value = '\"t1\"'",
    );
    assert_eq!(tags, "{user:1,users}");
    // One tagged row, and the three entries of the in-memory dependent (cascade).
    assert_eq!(invalidate_tags(["user:1"]).unwrap(), 4);
    assert_eq!(rows_of("tagged").len(), 2);
    let before = (TAGGED_RUNS.load(SeqCst), DEPENDENT_RUNS.load(SeqCst));
    assert_eq!(tagged(0), "t0");
    assert_eq!(TAGGED_RUNS.load(SeqCst), before.0, "user:0 untouched");
    assert_eq!(tagged(1), "t1");
    assert_eq!(TAGGED_RUNS.load(SeqCst), before.0 + 1, "user:1 went");
    downstream(2);
    assert_eq!(DEPENDENT_RUNS.load(SeqCst), before.1 + 1, "the dependent was cleared");
    assert_eq!(TAGGED_RUNS.load(SeqCst), before.0 + 1);
    // Three tagged rows, one dependent entry.
    assert_eq!(invalidate_tags(["users"]).unwrap(), 4);
    assert!(rows_of("tagged").is_empty());
}

static LABEL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[postgres_cache(expire = 100)]
fn label(id: u32) -> String {
    LABEL_RUNS.fetch_add(1, SeqCst);
    format!("label-{id}")
}

#[test]
fn entries_and_cache_many() {
    server();
    let e = label::cache_entry(7);
    assert_eq!(e.get().unwrap(), None);
    e.set("seven".to_owned()).unwrap();
    assert_eq!(e.get().unwrap().as_deref(), Some("seven"));
    assert_eq!(label(7), "seven", "served what was set");
    let ttl = e.ttl().unwrap().expect("a lifetime");
    assert!(ttl > Duration::from_secs(98) && ttl <= Duration::from_secs(100), "{ttl:?}");
    assert!(e.touch().unwrap());
    assert!(e.remove().unwrap());
    assert!(!e.remove().unwrap());
    assert_eq!(e.get().unwrap(), None);
    assert_eq!(LABEL_RUNS.load(SeqCst), 0);

    let first = label::cache_many([1, 2, 3]);
    assert_eq!(first, ["label-1", "label-2", "label-3"]);
    assert_eq!(LABEL_RUNS.load(SeqCst), 3);
    let again = label::cache_many([3, 2, 1, 4]);
    assert_eq!(again, ["label-3", "label-2", "label-1", "label-4"]);
    assert_eq!(LABEL_RUNS.load(SeqCst), 4, "only the miss ran");
}

static DOC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[postgres_cache]
fn document(id: u32) -> Vec<String> {
    DOC_RUNS.fetch_add(1, SeqCst);
    vec![format!("doc-{id}")]
}

#[test]
fn a_corrupted_jsonb_value_is_a_miss() {
    server();
    assert_eq!(document(1), ["doc-1"]);
    server().query(
        "UPDATE memo_test.memo_entries SET value = '{\"not\": \"a list\"}' WHERE namespace LIKE 'memo:%::document:%'",
    );
    assert_eq!(document(1), ["doc-1"], "recomputed");
    assert_eq!(DOC_RUNS.load(SeqCst), 2);
    assert_eq!(document::cache_stats().errors, 1, "counted");
    assert_eq!(rows_of("document"), [(memo_hex(&1), "[\"doc-1\"]".to_owned())], "overwritten");
    assert_eq!(document(1), ["doc-1"]);
    assert_eq!(DOC_RUNS.load(SeqCst), 2);
}

static ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[postgres_cache]
async fn doubled(n: u64) -> u64 {
    ASYNC_RUNS.fetch_add(1, SeqCst);
    n * 2
}

#[test]
fn async_functions_share_the_table() {
    server();
    // A current-thread runtime: the backend must not need the caller's runtime to drive I/O.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        assert_eq!(doubled(21).await, 42);
        assert_eq!(doubled(21).await, 42);
        assert_eq!(ASYNC_RUNS.load(SeqCst), 1);
        assert_eq!(doubled::cache_many([21, 1]).await, [42, 2]);
        assert_eq!(ASYNC_RUNS.load(SeqCst), 2);
        assert_eq!(doubled::cache_clear().await.unwrap(), 2);
    });
    // The cleanup's async stop: it ends the thread without blocking the runtime.
    let cleanup = memo_alchemy::postgres::start_cleanup(Duration::from_secs(3600));
    let stopped = Instant::now();
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), cleanup.stop_async()).await })
        .expect("stopped");
    assert!(stopped.elapsed() < Duration::from_secs(2), "{:?}", stopped.elapsed());
    drop(runtime);
    // Another runtime after the first is gone: the pooled connections still work.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert_eq!(runtime.block_on(doubled(21)), 42);
    assert_eq!(runtime.block_on(doubled(21)), 42);
    assert_eq!(ASYNC_RUNS.load(SeqCst), 3);
}

static SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[postgres_cache(strict = true)]
fn shared(id: u32) -> String {
    SHARED_RUNS.fetch_add(1, SeqCst);
    format!("from-{}", std::process::id())
}

/// The child: calls `shared(1)` and checks what it got and whether it computed.
#[test]
fn child_reads_shared() {
    if !is_child() {
        return;
    }
    server();
    let value = shared(1);
    if let Ok(expected) = std::env::var("EXPECT") {
        assert_eq!(value, expected);
    }
    let runs: usize = std::env::var("EXPECT_RUNS").unwrap().parse().unwrap();
    assert_eq!(SHARED_RUNS.load(SeqCst), runs);
}

#[test]
fn two_processes_share_entries_and_clears() {
    server();
    let _serial = serial();
    let mine = shared(1);
    assert_eq!(mine, format!("from-{}", std::process::id()));
    let child = |env: &[(&str, String)]| child_command("child_reads_shared", env).status().unwrap().success();
    assert!(child(&[("EXPECT", mine.clone()), ("EXPECT_RUNS", "0".into())]), "served the parent's value");
    assert_eq!(shared::cache_clear().unwrap(), 1);
    assert!(child(&[("EXPECT_RUNS", "1".into())]), "after the clear the child computes");
    let theirs = shared(1);
    assert_ne!(theirs, mine, "the parent reads the child's value");
    assert_eq!(SHARED_RUNS.load(SeqCst), 1, "the parent computed once");
}

static KEPT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[postgres_cache]
fn kept(id: u32) -> u32 {
    KEPT_RUNS.fetch_add(1, SeqCst);
    id
}

/// Run with another key prefix: fills `kept`, then flushes everything.
#[test]
fn child_flushes_all() {
    if !is_child() {
        return;
    }
    server();
    assert_eq!(kept(2), 2);
    assert_eq!(
        server().scalar("SELECT count(*) FROM memo_test.memo_entries WHERE namespace LIKE 'other:%::kept:%'"),
        "1"
    );
    memo_alchemy::flush_all().unwrap();
}

/// `flush_all` deletes every row under the configured prefix, and none under another.
#[test]
fn flush_all_stays_within_the_prefix() {
    server();
    assert_eq!(kept(1), 1);
    // A function of another program under the other prefix, which the flushing
    // process does not have: the sweep reaches it too, and moves its generation on.
    server().query(
        "INSERT INTO memo_test.memo_generations (namespace, generation, entries) \
         VALUES ('other:_:postgres:ghost::f:00', 7, 1); \
         INSERT INTO memo_test.memo_entries (namespace, key, value) VALUES ('other:_:postgres:ghost::f:00', '01', '1')",
    );
    let status =
        child_command("child_flushes_all", &[("MEMO_TEST_KEY_PREFIX", "other".to_owned())]).status().unwrap();
    assert!(status.success());
    assert_eq!(
        server().scalar(
            "SELECT generation FROM memo_test.memo_generations WHERE namespace = 'other:_:postgres:ghost::f:00'"
        ),
        "8",
        "the unregistered function's fills that began before cannot store"
    );
    assert_eq!(
        server().scalar("SELECT count(*) FROM memo_test.memo_entries WHERE namespace LIKE 'other:%'"),
        "0"
    );
    assert_eq!(rows_of("kept").len(), 1, "the row under `memo:` stays");
    assert_eq!(kept(1), 1);
    assert_eq!(KEPT_RUNS.load(SeqCst), 1);
}

static RATE_RUNS: AtomicUsize = AtomicUsize::new(0);
static RATE_FAILS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[postgres_cache(expire = 1, stale = 30)]
fn rate(id: u32) -> Result<u32, String> {
    RATE_RUNS.fetch_add(1, SeqCst);
    if RATE_FAILS.load(SeqCst) {
        return Err("the upstream is down".into());
    }
    Ok(id * 100 + u32::try_from(RATE_RUNS.load(SeqCst)).unwrap())
}

/// `stale`: past its lifetime a row is kept, and served only when the body fails.
#[test]
fn stale_rows_are_served_when_the_body_fails() {
    server();
    let first = rate(1).unwrap();
    assert_eq!(rate(1).unwrap(), first);
    thread::sleep(Duration::from_millis(1100));
    RATE_FAILS.store(true, SeqCst);
    assert_eq!(rate(1), Ok(first), "the stale value, since the body failed");
    assert_eq!(rate::cache_stats().stale_hits, 1);
    RATE_FAILS.store(false, SeqCst);
    let fresh = rate(1).unwrap();
    assert_ne!(fresh, first, "recomputed once the body works");
    assert_eq!(rate(1).unwrap(), fresh);
}
