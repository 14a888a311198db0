use memo_alchemy::cache;

struct Tax;

impl Tax {
    #[cache]
    fn rate(country: u32) -> u32 {
        country
    }
}

fn main() {}
