use memo_alchemy::cache;

#[cache(strict = true, limit = 10, strict = false)]
fn f(a: u32) -> u32 {
    a
}

fn main() {}
