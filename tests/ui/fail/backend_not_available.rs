use memo_alchemy::cache;

#[cache(backend = "distributed_memory")]
fn f(a: u32) -> u32 {
    a
}

fn main() {}
