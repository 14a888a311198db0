use memo_alchemy::cache;

#[cache(version = "2")]
fn f(a: u32) -> u32 {
    a
}

#[cache(version = -1)]
fn g(a: u32) -> u32 {
    a
}

fn main() {}
