use memo_alchemy::cache;

#[cache(backend = "json")]
fn f(a: u32) -> u32 {
    a
}

fn main() {}
