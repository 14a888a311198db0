use memo_alchemy::cache;

#[cache(is_method = true)]
fn f(a: u32) -> u32 {
    a
}

fn main() {}
