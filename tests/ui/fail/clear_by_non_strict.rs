use memo_alchemy::cache;

#[cache]
fn f(a: u32) -> u32 {
    a
}

fn main() {
    let _ = f::cache_clear_by().a(1).clear();
}
