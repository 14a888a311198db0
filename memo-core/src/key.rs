//! Keys: the typed argument tuple a call is looked up by, and the encoded argument
//! values that strict keys and partial clears compare.
//!
//! A call's key is the tuple of its owned arguments, `K`. The hit path never builds
//! one: it hashes and compares a tuple of borrows (`(&i64, &str)` for
//! `fn f(a: i64, b: &str)`), which [`KeyRef`] relates to `K = (i64, String)`.
//! Only a miss turns the borrows into an owned key.

use std::any::type_name;
use std::borrow::Borrow;
use std::hash::Hash;

use serde::Serialize;

/// A borrowed form of the owned key `K`: hashes like it, compares to it and can
/// become it. Implemented for tuples of references up to 12 elements.
pub trait KeyRef<K>: Hash {
    /// Whether `owned` is the key this borrow stands for.
    fn matches(&self, owned: &K) -> bool;
    /// The owned key, built on a miss.
    fn to_owned_key(&self) -> K;
}

/// An owned key used where a [`KeyRef`] is expected.
#[derive(Debug)]
pub(crate) struct OwnedKey<'k, K>(pub &'k K);

impl<K: Hash> Hash for OwnedKey<'_, K> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl<K: Hash + Eq + Clone> KeyRef<K> for OwnedKey<'_, K> {
    fn matches(&self, owned: &K) -> bool {
        self.0 == owned
    }
    fn to_owned_key(&self) -> K {
        self.0.clone()
    }
}

/// The owned key of a strict function: each argument can be encoded on its own, so
/// that a partial clear can compare any subset of them.
pub trait StrictArgs {
    /// The canonical encoding (postcard) of argument `index`, or `None` past the end.
    fn encode_arg(&self, index: usize) -> Option<Result<Vec<u8>, postcard::Error>>;
    /// The Rust type of argument `index`, or `None` past the end.
    fn arg_type(index: usize) -> Option<&'static str>;
}

/// Encodes one argument value the way strict keys and partial clears compare it.
///
/// # Errors
/// What the serializer reports for a value it cannot encode.
pub(crate) fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(value)
}

macro_rules! tuple_keys {
    ($( ($($name:ident $idx:tt $life:lifetime),*) )*) => {$(
        impl<$($life,)* $($name: ?Sized + ToOwned + Hash + Eq),*> KeyRef<($($name::Owned,)*)>
            for ($(&$life $name,)*)
        {
            #[inline]
            #[allow(unused_variables)]
            fn matches(&self, owned: &($($name::Owned,)*)) -> bool {
                true $(&& *self.$idx == *Borrow::<$name>::borrow(&owned.$idx))*
            }
            #[allow(clippy::unused_unit)]
            fn to_owned_key(&self) -> ($($name::Owned,)*) {
                ($(self.$idx.to_owned(),)*)
            }
        }

        impl<$($name: Serialize),*> StrictArgs for ($($name,)*) {
            #[allow(unused_variables)]
            fn encode_arg(&self, index: usize) -> Option<Result<Vec<u8>, postcard::Error>> {
                match index {
                    $($idx => Some(encode_value(&self.$idx)),)*
                    _ => None,
                }
            }
            fn arg_type(index: usize) -> Option<&'static str> {
                match index {
                    $($idx => Some(type_name::<$name>()),)*
                    _ => None,
                }
            }
        }
    )*};
}

tuple_keys! {
    ()
    (A 0 'a)
    (A 0 'a, B 1 'b)
    (A 0 'a, B 1 'b, C 2 'c)
    (A 0 'a, B 1 'b, C 2 'c, D 3 'd)
    (A 0 'a, B 1 'b, C 2 'c, D 3 'd, E 4 'e)
    (A 0 'a, B 1 'b, C 2 'c, D 3 'd, E 4 'e, F 5 'f)
    (A 0 'a, B 1 'b, C 2 'c, D 3 'd, E 4 'e, F 5 'f, G 6 'g)
    (A 0 'a, B 1 'b, C 2 'c, D 3 'd, E 4 'e, F 5 'f, G 6 'g, H 7 'h)
    (A 0 'a, B 1 'b, C 2 'c, D 3 'd, E 4 'e, F 5 'f, G 6 'g, H 7 'h, I 8 'i)
    (A 0 'a, B 1 'b, C 2 'c, D 3 'd, E 4 'e, F 5 'f, G 6 'g, H 7 'h, I 8 'i, J 9 'j)
    (A 0 'a, B 1 'b, C 2 'c, D 3 'd, E 4 'e, F 5 'f, G 6 'g, H 7 'h, I 8 'i, J 9 'j, L 10 'l)
    (A 0 'a, B 1 'b, C 2 'c, D 3 'd, E 4 'e, F 5 'f, G 6 'g, H 7 'h, I 8 'i, J 9 'j, L 10 'l, M 11 'm)
}

/// Argument values that a partial clear selects on, by name.
///
/// Generated `cache_clear_by()` builders fill one; the dependency cascade hands the
/// same selector to each dependent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    fields: Vec<Field>,
}

/// One named, encoded argument value of a [`Selector`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The argument's name.
    pub name: &'static str,
    /// The argument's owned type as its function declares it (`str`, `i64`).
    pub type_text: &'static str,
    /// The value's canonical encoding.
    pub encoded: Vec<u8>,
}

impl Selector {
    /// An empty selector, which selects every entry.
    pub fn new() -> Selector {
        Selector::default()
    }

    /// Adds `name == value`, where `type_text` is the argument's owned type as the
    /// function declares it (the `#[cache]` macro passes it).
    ///
    /// # Errors
    /// What the serializer reports for a value it cannot encode.
    pub fn with<T: Serialize + ?Sized>(
        mut self,
        name: &'static str,
        type_text: &'static str,
        value: &T,
    ) -> Result<Self, postcard::Error> {
        let encoded = encode_value(value)?;
        self.fields.retain(|f| f.name != name);
        self.fields.push(Field { name, type_text, encoded });
        Ok(self)
    }

    /// The selected fields.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Whether it selects every entry.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// Encodes argument `index` of an owned key, `None` past the end.
type EncodeArg<K> = fn(&K, usize) -> Option<Result<Vec<u8>, postcard::Error>>;

/// How a strict function's store encodes one argument of an owned key.
#[derive(Debug)]
pub struct StrictKeys<K> {
    encode: EncodeArg<K>,
}

impl<K> Clone for StrictKeys<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for StrictKeys<K> {}

impl<K: StrictArgs> StrictKeys<K> {
    /// The strict-key support of `K`.
    pub fn new() -> Self {
        StrictKeys { encode: K::encode_arg }
    }
}

impl<K: StrictArgs> Default for StrictKeys<K> {
    fn default() -> Self {
        StrictKeys::new()
    }
}

impl<K> StrictKeys<K> {
    /// The canonical encoding of argument `index` of `key`, or `None` past the end.
    pub fn encode(&self, key: &K, index: usize) -> Option<Result<Vec<u8>, postcard::Error>> {
        (self.encode)(key, index)
    }

    /// Whether `key` has every resolved value. An argument that cannot be encoded
    /// counts as matching: clearing too much is safe, keeping a stale entry is not.
    pub fn matches(&self, key: &K, resolved: &[(usize, &[u8])]) -> bool {
        resolved.iter().all(|(index, wanted)| match (self.encode)(key, *index) {
            Some(Ok(bytes)) => bytes == *wanted,
            _ => true,
        })
    }
}
