//! `flush_all` clears every cached function of the program.

use memo_alchemy::{cache, flush_all, registry};

#[cache]
fn one(a: u32) -> u32 {
    a
}

#[cache(strict = true)]
fn two(a: u32, b: &str) -> String {
    format!("{a}{b}")
}

#[cache]
fn never_called(a: u32) -> u32 {
    a
}

#[test]
fn flush_all_clears_every_function() {
    one(1);
    one(2);
    two(1, "x");
    assert_eq!(flush_all().unwrap(), 3);
    assert_eq!(one::cache_stats().len, Some(0));
    assert_eq!(two::cache_stats().len, Some(0));
    assert_eq!(flush_all().unwrap(), 0);
}

#[test]
fn registry_lists_functions_that_never_ran() {
    let paths: Vec<&str> = registry().map(|f| f.path()).collect();
    for path in ["flush_all::one", "flush_all::two", "flush_all::never_called"] {
        assert!(paths.contains(&path), "{path} in {paths:?}");
    }
    assert_eq!(never_called::cache_stats().misses, 0);
}
