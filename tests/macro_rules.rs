//! `#[cache]` inside `macro_rules!`: metavariables arrive wrapped in invisible groups,
//! which the attribute sees through for every parameter.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use memo_alchemy::cache;

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache]
fn base(a: u32) -> u32 {
    a
}

#[rustfmt::skip] // rustfmt re-indents an attribute inside a macro body on every run
macro_rules! cached {
    ($name:ident, $cap:literal, $expire:expr, $strict:literal, $backend:literal, $dep:path, $prefix:literal) => {
        #[cache(limit = $cap, expire = $expire, strict = $strict, backend = $backend, dependency = [$dep], cache_key_prefix = $prefix)]
        fn $name(a: u32) -> u32 {
            RUNS.fetch_add(1, SeqCst);
            base(a) * 2
        }
    };
}

cached!(doubled, 2, -1, true, "memory", base, "macro");

/// Regression: `limit = $cap` with `$cap:literal` was rejected ("`limit` takes a whole
/// number"), because the literal arrives inside an invisible group.
#[test]
fn metavariables_in_the_attribute_are_read_through_their_groups() {
    assert_eq!(doubled(1), 2);
    assert_eq!(doubled(1), 2);
    assert_eq!(RUNS.load(SeqCst), 1, "cached");
    doubled(2);
    doubled(3);
    // limit = 2: never more than two entries.
    assert_eq!(doubled::cache_stats().len, Some(2));
    // strict = true: the typed partial clear exists; dependency = [base] cascades.
    assert_eq!(doubled::cache_clear_by().a(2_u32).clear().unwrap(), 1);
    assert_eq!(doubled::cache_stats().len, Some(1), "doubled(1) is left");
    // base(1), base(2) and base(3) were computed inside doubled; then doubled(1).
    assert_eq!(base::cache_clear().unwrap(), 4, "base's three entries, then doubled's by the cascade");
    assert_eq!(doubled::cache().function().key_prefix(), Some("macro"));
}
