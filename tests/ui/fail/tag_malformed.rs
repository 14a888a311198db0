use memo_alchemy::cache;

#[cache(tags = ["user:{id", "team:}", ""])]
fn profile(id: u64) -> String {
    id.to_string()
}

#[cache(tags = "user:{id}")]
fn other(id: u64) -> String {
    id.to_string()
}

fn main() {}
