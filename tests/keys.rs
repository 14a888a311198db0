//! Two different calls never share a key, whatever their arguments contain.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use memo_alchemy::cache;
use serde::Serialize;

static JOIN_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache]
fn join(a: &str, b: &str) -> String {
    JOIN_RUNS.fetch_add(1, SeqCst);
    format!("{a}|{b}")
}

#[test]
fn separators_and_special_text_never_collide() {
    let cases = [
        ("a:b", "c"),
        ("a", "b:c"),
        ("", ""),
        ("", "*"),
        ("*", ""),
        ("?", "["),
        ("[", "?"),
        ("\\", "]"),
        ("line\nbreak", ""),
        ("line", "\nbreak"),
        ("\u{0}", ""),
        ("é", "\u{301}"),
    ];
    for (a, b) in cases {
        assert_eq!(join(a, b), format!("{a}|{b}"));
    }
    assert_eq!(JOIN_RUNS.load(SeqCst), cases.len());
    for (a, b) in cases {
        assert_eq!(join(a, b), format!("{a}|{b}"), "a hit returns this call's own value");
    }
    assert_eq!(JOIN_RUNS.load(SeqCst), cases.len());
}

#[derive(Clone, Hash, PartialEq, Eq, Serialize, Debug)]
enum Value {
    Int(i64),
    Text(String),
}

static SHOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(strict = true)]
fn show(v: Value) -> String {
    SHOW_RUNS.fetch_add(1, SeqCst);
    format!("{v:?}")
}

#[test]
fn one_and_the_string_one_are_different_keys() {
    assert_eq!(show(Value::Int(1)), "Int(1)");
    assert_eq!(show(Value::Text("1".into())), "Text(\"1\")");
    assert_eq!(SHOW_RUNS.load(SeqCst), 2);
    assert_eq!(show::cache_clear_by().v(Value::Int(1)).clear().unwrap(), 1);
    assert_eq!(show::cache_stats().len, Some(1));
}

mod first {
    use memo_alchemy::cache;

    #[cache]
    pub fn same_name(a: u32) -> &'static str {
        let _ = a;
        "first"
    }
}

mod second {
    use memo_alchemy::cache;

    #[cache]
    pub fn same_name(a: u32) -> &'static str {
        let _ = a;
        "second"
    }
}

#[test]
fn same_name_in_two_modules_never_shares_entries() {
    assert_eq!(first::same_name(1), "first");
    assert_eq!(second::same_name(1), "second");
    assert_eq!(first::same_name(1), "first");
    assert_eq!(first::same_name::cache().function().path(), "keys::first::same_name");
    assert_eq!(second::same_name::cache().function().path(), "keys::second::same_name");
    assert_eq!(first::same_name::cache_clear().unwrap(), 1);
    assert_eq!(second::same_name::cache_stats().len, Some(1));
}
