//! Clears cascade along `dependency = [...]`: transitively, each function once, cycles
//! allowed, partial clears by argument name.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use memo_alchemy::{cache, cache_impl, registry, FunctionCacheDependency};

// cache_alchemy's test_function_dependency: one level.

static ADD_RUNS: AtomicUsize = AtomicUsize::new(0);
static DOUBLE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(strict = true)]
fn add(a: i64, b: i64) -> i64 {
    ADD_RUNS.fetch_add(1, SeqCst);
    a + b
}

#[cache(dependency = [add])]
fn add_and_double(a: i64, b: i64) -> i64 {
    DOUBLE_RUNS.fetch_add(1, SeqCst);
    add(a, b) * 2
}

#[test]
fn one_level_cascade() {
    assert_eq!(add_and_double(1, 2), 6);
    assert_eq!(add_and_double(1, 2), 6);
    assert_eq!((ADD_RUNS.load(SeqCst), DOUBLE_RUNS.load(SeqCst)), (1, 1));
    // add(1, 2) and add_and_double(1, 2).
    assert_eq!(add::cache_clear().unwrap(), 2);
    assert_eq!(add_and_double(1, 2), 6);
    assert_eq!((ADD_RUNS.load(SeqCst), DOUBLE_RUNS.load(SeqCst)), (2, 2));
    // Clearing the dependent does not clear its upstream.
    assert_eq!(add_and_double::cache_clear().unwrap(), 1);
    assert_eq!(add::cache_stats().len, Some(1));
}

// A chain of three.

#[cache]
fn c1(x: u32) -> u32 {
    x + 1
}
#[cache(dependency = [c1])]
fn c2(x: u32) -> u32 {
    c1(x) + 1
}
#[cache(dependency = [c2])]
fn c3(x: u32) -> u32 {
    c2(x) + 1
}

#[test]
fn three_level_chain() {
    assert_eq!(c3(1), 4);
    c3(2);
    assert_eq!(c1::cache_clear().unwrap(), 6);
    assert_eq!(c3::cache_stats().len, Some(0));
    c3(1);
    assert_eq!(c2::cache_clear().unwrap(), 2, "c2 and c3 only");
    assert_eq!(c1::cache_stats().len, Some(1));
}

// A diamond: top <- left, right <- bottom.

static BOTTOM_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache]
fn top(x: u32) -> u32 {
    x
}
#[cache(dependency = [top])]
fn left(x: u32) -> u32 {
    top(x) + 1
}
#[cache(dependency = [top])]
fn right(x: u32) -> u32 {
    top(x) + 2
}
#[cache(dependency = [left, right])]
fn bottom(x: u32) -> u32 {
    BOTTOM_RUNS.fetch_add(1, SeqCst);
    left(x) + right(x)
}

#[test]
fn diamond_clears_each_function_once_with_an_exact_count() {
    bottom(1);
    bottom(2);
    let mut plan: Vec<&str> = top::cache().function().clear_plan().iter().map(|f| f.path()).collect();
    assert_eq!(plan[0], "dependency::top");
    plan[1..].sort_unstable();
    assert_eq!(plan, ["dependency::top", "dependency::bottom", "dependency::left", "dependency::right"]);
    // 2 entries in each of the four functions, each counted once.
    assert_eq!(top::cache_clear().unwrap(), 8);
    bottom(1);
    assert_eq!(BOTTOM_RUNS.load(SeqCst), 3);
}

// A cycle of two.

#[cache(dependency = [pong])]
fn ping(x: u32) -> u32 {
    x
}
#[cache(dependency = [ping])]
fn pong(x: u32) -> u32 {
    ping(x) + 1
}

#[test]
fn two_function_cycle_terminates() {
    pong(1);
    pong(2);
    assert_eq!(ping::cache_clear().unwrap(), 4);
    pong(3);
    assert_eq!(pong::cache_clear().unwrap(), 2);
}

// Partial cascades.

static PROFILE_RUNS: AtomicUsize = AtomicUsize::new(0);
static FEED_RUNS: AtomicUsize = AtomicUsize::new(0);
static TOTAL_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(strict = true)]
fn user(user_id: u32) -> String {
    format!("user{user_id}")
}

/// Strict and has `user_id`: gets the same partial clear.
#[cache(strict = true, dependency = [user])]
fn profile(user_id: u32, lang: &str) -> String {
    PROFILE_RUNS.fetch_add(1, SeqCst);
    format!("{}:{lang}", user(user_id))
}

/// No `user_id` parameter: cleared entirely.
#[cache(strict = true, dependency = [user])]
fn user_count(region: u32) -> u32 {
    region
}

/// Has `user_id` but is not strict: cleared entirely.
#[cache(dependency = [user])]
fn feed(user_id: u32) -> String {
    FEED_RUNS.fetch_add(1, SeqCst);
    user(user_id)
}

/// Below `user_count`, which is cleared entirely: cleared entirely too, although it
/// has `user_id`.
#[cache(strict = true, dependency = [user_count])]
fn total(user_id: u32) -> u32 {
    TOTAL_RUNS.fetch_add(1, SeqCst);
    user_id
}

/// Same name, other type: cleared entirely.
#[cache(strict = true, dependency = [user])]
fn badge(user_id: u64) -> u64 {
    user_id
}

#[test]
fn partial_cascade_clears_only_matching_dependent_entries() {
    for id in 1..=3 {
        profile(id, "en");
        profile(id, "fr");
        feed(id);
        total(id);
        badge(u64::from(id));
    }
    user_count(7);
    user_count(8);
    let before = PROFILE_RUNS.load(SeqCst);
    // user(1) + profile(1, en|fr) + user_count (2) + feed (3) + total (3) + badge (3).
    assert_eq!(user::cache_clear_by().user_id(1_u32).clear().unwrap(), 1 + 2 + 2 + 3 + 3 + 3);
    // The other users' profiles are still cached; user 1's are recomputed.
    profile(2, "en");
    profile(3, "fr");
    assert_eq!(PROFILE_RUNS.load(SeqCst), before);
    profile(1, "en");
    assert_eq!(PROFILE_RUNS.load(SeqCst), before + 1);
    assert_eq!(feed::cache_stats().len, Some(0));
    assert_eq!(total::cache_stats().len, Some(0));
    assert_eq!(badge::cache_stats().len, Some(0));
}

// Across modules, and methods.

mod catalog {
    use memo_alchemy::cache;

    #[cache(strict = true)]
    pub fn base_price(sku: u32) -> u64 {
        u64::from(sku) * 100
    }
}

struct Cart;

#[cache_impl]
impl Cart {
    #[cache(is_method = true, strict = true, dependency = [crate::catalog::base_price])]
    fn line(&self, sku: u32, qty: u32) -> u64 {
        crate::catalog::base_price(sku) * u64::from(qty)
    }
}

#[cache(dependency = [Cart::line])]
fn checkout(sku: u32) -> u64 {
    Cart.line(sku, 2) + 1
}

#[test]
fn cross_module_and_method_dependencies() {
    checkout(1);
    checkout(2);
    // base_price(1) + Cart::line(1, 2) + checkout(1) and checkout(2): the checkout is
    // not strict, so it is cleared entirely.
    assert_eq!(catalog::base_price::cache_clear_by().sku(1_u32).clear().unwrap(), 4);
    assert_eq!(Cart::line_cache_stats().len, Some(1));
    assert_eq!(Cart::line_cache_clear().unwrap(), 1, "line(2, 2); checkout is empty already");
}

// Registered at run time.

#[cache]
fn rate(currency: u32) -> u32 {
    currency * 3
}

#[cache]
fn convert(amount: u32, currency: u32) -> u32 {
    amount * rate(currency)
}

#[test]
fn runtime_registered_dependency() {
    convert(10, 1);
    assert_eq!(rate::cache_clear().unwrap(), 1, "no edge yet");
    FunctionCacheDependency::new(rate::cache().function()).register(convert::cache().function());
    FunctionCacheDependency::new(rate::cache().function()).register(convert::cache().function());
    convert(10, 2);
    assert_eq!(rate::cache_clear().unwrap(), 3, "rate(2), convert(10, 1) and convert(10, 2), once each");
    let deps: Vec<&str> = convert::cache().function().dependencies().iter().map(|f| f.path()).collect();
    assert_eq!(deps, ["dependency::rate"]);
}

// Sync and async mixed.

static ASYNC_DEP_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache]
fn sync_source(x: u32) -> u32 {
    x
}

#[cache(dependency = [sync_source])]
async fn async_reader(x: u32) -> u32 {
    ASYNC_DEP_RUNS.fetch_add(1, SeqCst);
    sync_source(x) + 1
}

#[cache(dependency = [async_reader])]
fn sync_after_async(x: u32) -> u32 {
    x
}

#[tokio::test]
async fn sync_clear_reaches_async_dependents_and_back() {
    assert_eq!(async_reader(1).await, 2);
    sync_after_async(1);
    // A sync clear removes the async function's entries, and those below it.
    assert_eq!(sync_source::cache_clear().unwrap(), 3);
    assert_eq!(async_reader(1).await, 2);
    assert_eq!(ASYNC_DEP_RUNS.load(SeqCst), 2);
    assert_eq!(async_reader::cache_clear().await.unwrap(), 1);
}

#[test]
fn registry_lists_paths_backends_and_dependencies() {
    let bottom = registry().find(|f| f.path() == "dependency::bottom").expect("bottom is registered");
    let deps: Vec<&str> = bottom.dependencies().iter().map(|f| f.path()).collect();
    assert_eq!(deps, ["dependency::left", "dependency::right"]);
    assert_eq!(bottom.backend(), "memory");
    let line = registry().find(|f| f.path() == "dependency::Cart::line").expect("methods are registered");
    assert_eq!(line.dependencies()[0].path(), "dependency::catalog::base_price");
}
