use memo_alchemy::cache;

#[cache(strict)]
fn f(a: u32) -> u32 {
    a
}

fn main() {}
