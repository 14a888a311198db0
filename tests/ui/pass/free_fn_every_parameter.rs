//! Every parameter at once, on a free function and on a method.

use std::sync::atomic::{AtomicUsize, Ordering};

use memo_alchemy::{cache, cache_impl};

static RUNS: AtomicUsize = AtomicUsize::new(0);
static DEPENDENT_RUNS: AtomicUsize = AtomicUsize::new(0);
static METHOD_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(limit = 100, expire = 60, strict = true, backend = "memory", cache_key_prefix = "billing")]
fn add(a: i64, b: i64) -> i64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    a + b
}

#[cache(limit = -1, expire = -1, dependency = [add, crate::add])]
fn add_and_double(a: i64, b: i64) -> i64 {
    DEPENDENT_RUNS.fetch_add(1, Ordering::SeqCst);
    add(a, b) * 2
}

struct Ledger;

#[cache_impl]
impl Ledger {
    #[cache(limit = 10, expire = 30, is_method = true, strict = true, cache_key_prefix = "ledger")]
    fn balance(&self, account: u32) -> u32 {
        METHOD_RUNS.fetch_add(1, Ordering::SeqCst);
        account * 10
    }
}

fn main() -> Result<(), memo_alchemy::Error> {
    assert_eq!(add(1, 2), 3);
    assert_eq!(add(1, 2), 3);
    assert_eq!(add(2, 2), 4);
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
    let stats = add::cache_stats();
    assert_eq!((stats.hits, stats.misses), (1, 2));
    assert_eq!(add::cache().stats(), stats);

    // A partial clear removes only the entries whose `a` matches.
    assert_eq!(add::cache_clear_by().a(1).clear()?, 1);
    assert_eq!(add(2, 2), 4);
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(add(1, 2), 3);
    assert_eq!(RUNS.load(Ordering::SeqCst), 3);

    // Clearing `add` cascades to `add_and_double`.
    assert_eq!(add_and_double(1, 2), 6);
    assert_eq!(add_and_double(1, 2), 6);
    assert_eq!(DEPENDENT_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(add::cache_clear()?, 3);
    assert_eq!(add_and_double(1, 2), 6);
    assert_eq!(DEPENDENT_RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(add_and_double::cache_clear()?, 1);

    // `is_method = true`: every instance shares the entries.
    assert_eq!(Ledger.balance(3), 30);
    let other = Ledger;
    assert_eq!(other.balance(3), 30);
    assert_eq!(METHOD_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(Ledger::balance_cache_clear_by().account(3_u32).clear()?, 1);
    assert_eq!(Ledger::balance_cache_stats().hits, 1);
    Ok(())
}
