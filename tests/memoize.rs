//! Memoization basics: bodies run once per key, borrowed arguments, `Option`,
//! `Result`, and caching turned off with `limit = 0` or `expire = 0`.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use memo_alchemy::cache;

static ADD_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache]
fn add(a: i64, b: i64) -> i64 {
    ADD_RUNS.fetch_add(1, SeqCst);
    a + b
}

#[test]
fn body_runs_once_per_key() {
    assert_eq!(add(1, 2), 3);
    assert_eq!(add(1, 2), 3);
    assert_eq!(add(2, 1), 3);
    assert_eq!(add(2, 1), 3);
    assert_eq!(ADD_RUNS.load(SeqCst), 2);
    let stats = add::cache_stats();
    assert_eq!((stats.hits, stats.misses, stats.len), (2, 2, Some(2)));
    assert_eq!(add::cache_clear().unwrap(), 2);
    assert_eq!(add(1, 2), 3);
    assert_eq!(ADD_RUNS.load(SeqCst), 3);
}

static BORROWED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Hash, PartialEq, Eq)]
struct Point {
    x: i32,
    y: i32,
}

#[cache]
fn describe(name: &str, bytes: &[u8], point: &Point, owned: String) -> String {
    BORROWED_RUNS.fetch_add(1, SeqCst);
    format!("{name}:{}:{}:{}:{owned}", bytes.len(), point.x, point.y)
}

#[test]
fn borrowed_arguments_become_owned_keys() {
    let p = Point { x: 1, y: 2 };
    let first = describe("n", &[1, 2, 3], &p, "o".to_owned());
    // A key built from other allocations of equal values hits.
    let name = String::from("n");
    let bytes = vec![1_u8, 2, 3];
    let again = describe(&name, &bytes, &Point { x: 1, y: 2 }, String::from("o"));
    assert_eq!(first, again);
    assert_eq!(BORROWED_RUNS.load(SeqCst), 1);
    describe("n", &[1, 2], &p, "o".to_owned());
    assert_eq!(BORROWED_RUNS.load(SeqCst), 2);
}

static FIND_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache]
fn find(id: u32) -> Option<String> {
    FIND_RUNS.fetch_add(1, SeqCst);
    (id == 1).then(|| "one".to_owned())
}

#[test]
fn option_is_cached_none_included() {
    assert_eq!(find(1).as_deref(), Some("one"));
    assert_eq!(find(2), None);
    assert_eq!(find(1).as_deref(), Some("one"));
    assert_eq!(find(2), None);
    assert_eq!(FIND_RUNS.load(SeqCst), 2);
}

static PARSE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache]
fn parse(text: &str) -> Result<i64, std::num::ParseIntError> {
    PARSE_RUNS.fetch_add(1, SeqCst);
    text.parse()
}

#[test]
fn result_caches_ok_only() {
    assert_eq!(parse("7"), Ok(7));
    assert_eq!(parse("7"), Ok(7));
    assert!(parse("x").is_err());
    assert!(parse("x").is_err());
    // One run for "7", two for "x": an Err is never stored.
    assert_eq!(PARSE_RUNS.load(SeqCst), 3);
    assert_eq!(parse::cache_stats().len, Some(1));
}

type Res<T> = Result<T, String>;

static ALIAS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache]
fn parse_aliased(text: &str) -> Res<i32> {
    ALIAS_RUNS.fetch_add(1, SeqCst);
    text.parse().map_err(|e| format!("{e}"))
}

static ALIAS_ASYNC_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache]
async fn parse_aliased_async(text: &str) -> Res<i32> {
    ALIAS_ASYNC_RUNS.fetch_add(1, SeqCst);
    text.parse().map_err(|e| format!("{e}"))
}

/// Regression: a `Result` behind a type alias was taken for a plain value, and its
/// `Err` was stored and served.
#[test]
fn result_behind_a_type_alias_caches_ok_only() {
    assert!(parse_aliased("x").is_err());
    assert!(parse_aliased("x").is_err());
    assert_eq!(ALIAS_RUNS.load(SeqCst), 2, "an Err is never stored");
    assert_eq!(parse_aliased("4"), Ok(4));
    assert_eq!(parse_aliased("4"), Ok(4));
    assert_eq!(ALIAS_RUNS.load(SeqCst), 3);
    assert_eq!(parse_aliased::cache_stats().len, Some(1));

    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        assert!(parse_aliased_async("x").await.is_err());
        assert!(parse_aliased_async("x").await.is_err());
        assert_eq!(parse_aliased_async("5").await, Ok(5));
        assert_eq!(parse_aliased_async("5").await, Ok(5));
    });
    assert_eq!(ALIAS_ASYNC_RUNS.load(SeqCst), 3);
}

static OFF_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(limit = 0)]
fn limit_zero(a: u8) -> u8 {
    OFF_RUNS.fetch_add(1, SeqCst);
    a
}

static EXPIRE_OFF_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(expire = 0)]
fn expire_zero(a: u8) -> u8 {
    EXPIRE_OFF_RUNS.fetch_add(1, SeqCst);
    a
}

#[test]
fn zero_turns_caching_off_but_keeps_the_api() {
    for _ in 0..3 {
        assert_eq!(limit_zero(1), 1);
        assert_eq!(expire_zero(1), 1);
    }
    assert_eq!(OFF_RUNS.load(SeqCst), 3);
    assert_eq!(EXPIRE_OFF_RUNS.load(SeqCst), 3);
    assert_eq!(limit_zero::cache_clear().unwrap(), 0);
    assert_eq!(expire_zero::cache_stats().len, Some(0));
}

static UNLIMITED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(limit = -1, expire = -1)]
fn unlimited(a: u32) -> u32 {
    UNLIMITED_RUNS.fetch_add(1, SeqCst);
    a
}

#[test]
fn minus_one_is_unlimited() {
    for i in 0..5000 {
        unlimited(i);
    }
    for i in 0..5000 {
        unlimited(i);
    }
    assert_eq!(UNLIMITED_RUNS.load(SeqCst), 5000);
    let stats = unlimited::cache_stats();
    assert_eq!((stats.len, stats.evictions), (Some(5000), 0));
}

static NO_ARGS_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache]
fn no_args() {
    NO_ARGS_RUNS.fetch_add(1, SeqCst);
}

#[test]
fn functions_without_arguments_or_return_value() {
    no_args();
    no_args();
    assert_eq!(NO_ARGS_RUNS.load(SeqCst), 1);
}

static EARLY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache]
fn early_return(a: i32) -> i32 {
    EARLY_RUNS.fetch_add(1, SeqCst);
    if a < 0 {
        return 0;
    }
    a * 2
}

#[test]
fn return_in_the_body_is_cached_too() {
    assert_eq!(early_return(-5), 0);
    assert_eq!(early_return(-5), 0);
    assert_eq!(early_return(4), 8);
    assert_eq!(EARLY_RUNS.load(SeqCst), 2);
}

#[test]
fn handle_reports_the_full_path() {
    assert_eq!(add::cache().function().path(), "memoize::add");
    assert_eq!(add::cache().function().backend(), "memory");
}
