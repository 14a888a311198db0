use memo_alchemy::cache;

#[cache(expire = 60, expire_jitter = 95)]
fn spread_too_far(a: u32) -> u32 {
    a
}

#[cache(expire = -1, expire_jitter = 10)]
fn never_expires(a: u32) -> u32 {
    a
}

fn main() {}
