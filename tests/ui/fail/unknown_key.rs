use memo_alchemy::cache;

#[cache(limt = 10)]
fn f(a: u32) -> u32 {
    a
}

#[cache(color = "red")]
fn g(a: u32) -> u32 {
    a
}

fn main() {}
