use memo_alchemy::cache;

#[cache(backend = "mongo")]
fn f(a: u32) -> u32 {
    a
}

fn main() {}
