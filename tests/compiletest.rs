//! The attribute's diagnostics and accepted shapes, checked with trybuild.
//!
//! `tests/ui/fail/` holds one program per diagnostic, named after it, next to the
//! `.stderr` it must produce; `tests/ui/pass/` holds programs that must compile and
//! run. Regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test --test compiletest`, then read them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
