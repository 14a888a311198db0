use memo_alchemy::cache;

#[cache(limit = -2)]
fn f(a: u32) -> u32 {
    a
}

fn main() {}
