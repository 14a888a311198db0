use memo_alchemy::cache;

#[cache(limt = 10, strict = true, limit = -5, strict = false)]
fn f(a: u32) -> u32 {
    a
}

fn main() {}
