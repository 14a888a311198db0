//! Methods and associated functions, with the receiver in the key or left out.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use memo_alchemy::cache;

#[derive(Clone, Hash, PartialEq, Eq, serde::Serialize)]
struct Account {
    id: u32,
    rate: u32,
}

static SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);
static OWN_RUNS: AtomicUsize = AtomicUsize::new(0);
static NEW_RUNS: AtomicUsize = AtomicUsize::new(0);

impl Account {
    /// `is_method = true`: every instance shares the entries of one argument list.
    #[cache(is_method = true)]
    fn shared_fee(&self, amount: u32) -> u32 {
        SHARED_RUNS.fetch_add(1, SeqCst);
        amount * self.rate
    }

    /// `is_method = false` (the default): each instance has its own entries.
    #[cache(strict = true)]
    fn own_fee(&self, amount: u32) -> u32 {
        OWN_RUNS.fetch_add(1, SeqCst);
        amount * self.rate
    }

    /// An associated function without a receiver.
    #[cache]
    fn standard(id: u32) -> Self {
        NEW_RUNS.fetch_add(1, SeqCst);
        Account { id, rate: 2 }
    }
}

#[test]
fn is_method_true_shares_entries_between_instances() {
    let a = Account { id: 1, rate: 2 };
    let b = Account { id: 2, rate: 3 };
    assert_eq!(a.shared_fee(10), 20);
    // Same arguments on another instance: served from the shared entry.
    assert_eq!(b.shared_fee(10), 20);
    assert_eq!(SHARED_RUNS.load(SeqCst), 1);
    assert_eq!(Account::shared_fee_cache_stats().hits, 1);
    assert_eq!(Account::shared_fee_cache_clear().unwrap(), 1);
    assert_eq!(Account::shared_fee_cache().function().path(), "methods::Account::shared_fee");
}

#[test]
fn is_method_false_keys_by_the_receiver() {
    let a = Account { id: 1, rate: 2 };
    let b = Account { id: 2, rate: 3 };
    assert_eq!(a.own_fee(10), 20);
    assert_eq!(b.own_fee(10), 30);
    assert_eq!(a.own_fee(10), 20);
    assert_eq!(OWN_RUNS.load(SeqCst), 2);
    assert_eq!(Account::own_fee_cache_stats().len, Some(2));
    // Strict methods clear by argument name at run time.
    assert_eq!(Account::own_fee_cache_clear_by().arg("amount", &10_u32).clear().unwrap(), 2);
    assert!(Account::own_fee_cache_clear_by().arg("nope", &1_u32).clear().is_err());
    assert_eq!(Account::own_fee_cache().function().arg_names(), ["self", "amount"]);
}

#[test]
fn associated_functions_are_cached() {
    assert_eq!(Account::standard(5).id, 5);
    assert_eq!(Account::standard(5).rate, 2);
    assert_eq!(NEW_RUNS.load(SeqCst), 1);
    assert_eq!(Account::standard_cache_clear().unwrap(), 1);
}
