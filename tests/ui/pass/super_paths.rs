//! Argument and return types written as `super::...` paths, or imported by a `use` of the
//! function's module: the generated module's `cache_entry` and `cache_many` name them
//! through aliases in the function's own scope.

mod model {
    #[derive(Clone, Hash, PartialEq, Eq, Debug)]
    pub struct UserId(pub u64);
}

mod service {
    use memo_alchemy::cache;
    use std::collections::BTreeMap;

    #[cache]
    pub fn load(id: super::model::UserId, label: &str) -> BTreeMap<u64, String> {
        BTreeMap::from([(id.0, label.to_owned())])
    }
}

fn main() {
    use model::UserId;
    let first = service::load(UserId(1), "a");
    assert_eq!(service::load::cache_entry(UserId(1), "a").get().unwrap(), Some(first));
    assert_eq!(service::load::cache_many([(UserId(2), "b".to_owned())]).len(), 1);
}
