use memo_alchemy::cache;

fn not_cached(a: u32) -> u32 {
    a
}

#[cache(dependency = [not_cached])]
fn f(a: u32) -> u32 {
    not_cached(a)
}

#[cache(dependency = [missing::g])]
fn h(a: u32) -> u32 {
    a
}

fn main() {}
