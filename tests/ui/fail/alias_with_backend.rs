use memo_alchemy::json_cache;

#[json_cache(backend = "memory")]
fn f(a: u32) -> u32 {
    a
}

fn main() {}
