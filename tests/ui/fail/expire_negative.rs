use memo_alchemy::cache;

#[cache(expire = -60)]
fn f(a: u32) -> u32 {
    a
}

fn main() {}
