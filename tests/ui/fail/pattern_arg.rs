use memo_alchemy::cache;

#[cache]
fn f((a, b): (u32, u32)) -> u32 {
    a + b
}

fn main() {}
