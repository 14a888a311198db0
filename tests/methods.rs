//! Methods and associated functions, with the receiver in the key or left out.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use memo_alchemy::{cache, cache_impl};

#[derive(Clone, Hash, PartialEq, Eq, serde::Serialize)]
struct Account {
    id: u32,
    rate: u32,
}

static SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);
static OWN_RUNS: AtomicUsize = AtomicUsize::new(0);
static NEW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache_impl]
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
    // Strict methods have the typed builder of free functions.
    assert_eq!(Account::own_fee_cache_clear_by().amount(10_u32).clear().unwrap(), 2);
    assert_eq!(Account::own_fee_cache().function().arg_names(), ["self", "amount"]);
}

#[test]
fn associated_functions_are_cached() {
    assert_eq!(Account::standard(5).id, 5);
    assert_eq!(Account::standard(5).rate, 2);
    assert_eq!(NEW_RUNS.load(SeqCst), 1);
    assert_eq!(Account::standard_cache_clear().unwrap(), 1);
}

static STRICT_FEE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache_impl]
impl Account {
    #[cache(is_method = true, strict = true)]
    fn strict_fee(&self, amount: u32) -> u32 {
        STRICT_FEE_RUNS.fetch_add(1, SeqCst);
        amount + self.rate
    }
}

/// Regression: a method's partial clear took any `Serialize` value by name, so
/// `.arg("amount", &10)` (an `i32` 10, which encodes like a `u32` 20) removed
/// `strict_fee(20)` and left `strict_fee(10)` cached. Now the builder is typed.
#[test]
fn method_partial_clear_is_typed_and_removes_only_the_named_entry() {
    let a = Account { id: 1, rate: 1 };
    assert_eq!(a.strict_fee(10), 11);
    assert_eq!(a.strict_fee(20), 21);
    assert_eq!(Account::strict_fee_cache_clear_by().amount(10_u32).clear().unwrap(), 1);
    assert_eq!(a.strict_fee(20), 21, "still cached");
    assert_eq!(STRICT_FEE_RUNS.load(SeqCst), 2);
    assert_eq!(a.strict_fee(10), 11, "recomputed");
    assert_eq!(STRICT_FEE_RUNS.load(SeqCst), 3);
}

/// A type whose method's value depends only on its type parameter.
struct Sized_<T>(std::marker::PhantomData<T>);

static SIZE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache_impl]
impl<T: 'static> Sized_<T> {
    #[cache(is_method = true)]
    fn size(&self) -> usize {
        SIZE_RUNS.fetch_add(1, SeqCst);
        std::mem::size_of::<T>()
    }

    #[cache]
    fn type_size() -> usize {
        std::mem::size_of::<T>()
    }
}

/// Regression: a generic `impl` shared one cache across every `T`:
/// `Sized_::<u8>.size()` was 1, then `Sized_::<u64>.size()` was also 1.
#[test]
fn generic_impl_keeps_entries_per_concrete_type() {
    let (small, big) = (Sized_::<u8>(std::marker::PhantomData), Sized_::<u64>(std::marker::PhantomData));
    assert_eq!(small.size(), 1);
    assert_eq!(big.size(), 8);
    assert_eq!(small.size(), 1);
    assert_eq!(big.size(), 8);
    assert_eq!(SIZE_RUNS.load(SeqCst), 2, "one computation per type, then hits");
    assert_eq!(Sized_::<u8>::type_size(), 1);
    assert_eq!(Sized_::<u16>::type_size(), 2);
    // A clear reaches the entries of every type.
    assert_eq!(Sized_::<u8>::size_cache_clear().unwrap(), 2);
}

/// A type with lifetimes: `Self` is not `'static`, and caching still works.
struct View<'a> {
    text: &'a str,
}

#[cache_impl]
impl<'a> View<'a> {
    #[cache(is_method = true)]
    fn measure(&self, factor: usize) -> usize {
        self.text.len() * factor
    }
}

#[test]
fn methods_of_borrowing_types_are_cached() {
    let text = String::from("abc");
    assert_eq!(View { text: &text }.measure(2), 6);
    assert_eq!(View { text: "zz" }.measure(2), 6, "is_method = true: shared by every instance");
    assert_eq!(View::measure_cache_stats().hits, 1);
}

static PLAIN_ASSOC_RUNS: AtomicUsize = AtomicUsize::new(0);

struct Tax;

#[cache_impl]
impl Tax {
    /// Regression: neither `self` nor `Self`: this used to be taken for a free
    /// function, and the `impl` rejected the generated module.
    #[cache(strict = true)]
    fn rate(country: &str) -> u32 {
        PLAIN_ASSOC_RUNS.fetch_add(1, SeqCst);
        country.len() as u32
    }
}

#[test]
fn associated_function_without_self_or_self_type_is_cached() {
    assert_eq!(Tax::rate("fr"), 2);
    assert_eq!(Tax::rate("fr"), 2);
    assert_eq!(PLAIN_ASSOC_RUNS.load(SeqCst), 1);
    assert_eq!(Tax::rate_cache_clear_by().country("fr").clear().unwrap(), 1);
    assert_eq!(Tax::rate_cache().function().path(), "methods::Tax::rate");
}

trait Shape {
    fn area(&self) -> u64;
}

#[derive(Clone, Hash, PartialEq, Eq)]
struct Square(u64);

static AREA_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache_impl]
impl Shape for Square {
    #[cache]
    fn area(&self) -> u64 {
        AREA_RUNS.fetch_add(1, SeqCst);
        self.0 * self.0
    }
}

/// In a trait impl, the cache's API goes to an inherent impl of the type.
#[test]
fn trait_impl_methods_are_cached() {
    assert_eq!(Square(3).area(), 9);
    assert_eq!(Square(3).area(), 9);
    assert_eq!(Square(4).area(), 16);
    assert_eq!(AREA_RUNS.load(SeqCst), 2);
    assert_eq!(Square::area_cache_clear().unwrap(), 2);
}
