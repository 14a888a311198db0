use memo_alchemy::cache;

#[cache(single_flight = "global")]
fn global_in_memory(a: u32) -> u32 {
    a
}

#[cache(backend = "distributed_memory", local = 100)]
fn tier_in_front_of_memory(a: u32) -> u32 {
    a
}

#[cache(backend = "json", lease = 5)]
fn lease_without_global(a: u32) -> u32 {
    a
}

#[cache(backend = "json", single_flight = "everywhere", local = 0, lease = 0)]
fn bad_values(a: u32) -> u32 {
    a
}

#[cache(expire = 60, refresh = "late")]
fn refresh_late(a: u32) -> u32 {
    a
}

#[cache(expire = -1, refresh = "early")]
fn early_without_expiry(a: u32) -> u32 {
    a
}

pub struct Mine;

#[cache(backend = Mine, local = 10)]
fn tier_in_front_of_a_custom_backend(a: u32) -> u32 {
    a
}

fn main() {}
