use memo_alchemy::cache;

#[cache]
fn f(a: u32) -> impl Iterator<Item = u32> {
    0..a
}

fn main() {}
