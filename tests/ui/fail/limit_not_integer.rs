use memo_alchemy::cache;

#[cache(limit = "x")]
fn f(a: u32) -> u32 {
    a
}

fn main() {}
