use memo_alchemy::cache;

#[cache(strict = true)]
fn f(clear: bool) -> u32 {
    u32::from(clear)
}

fn main() {}
