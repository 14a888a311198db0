//! `CachedFunction`: what the program knows about one cached function before it is
//! ever called (its path, backend, arguments and dependencies), and the handles it
//! has opened since.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::OnceLock;

use parking_lot::RwLock;

use crate::key::Selector;
use crate::{graph, BackendKind, CacheStats, Config, Error, Expire, Limit, Policy};

/// One cached function, registered statically by `#[cache]`.
///
/// Every cached function of the program is listed by [`registry`](crate::registry),
/// whether or not it has run. Clearing through it cascades to its dependents.
pub struct CachedFunction {
    decl: Decl,
    path: OnceLock<Box<str>>,
    opened: OnceLock<Opened>,
    /// The body's run time, for `refresh = "early"`.
    body: crate::BodyTime,
    /// Handles of further instantiations: a method of a generic `impl` has one per
    /// concrete `Self`; rare, so a lock is fine.
    more: RwLock<Vec<Opened>>,
}

/// The static facts `#[cache]` records about a function.
#[doc(hidden)]
pub struct Decl {
    pub name: &'static str,
    /// `type_name` of a type declared inside the function's registration fn: its
    /// path names the module, and the `impl` type for methods.
    pub anchor: fn() -> &'static str,
    pub backend: &'static dyn BackendKind,
    pub strict: bool,
    pub is_async: bool,
    pub arg_names: &'static [&'static str],
    /// The owned type of each argument, as written (`str` for `&str`).
    pub arg_types: &'static [&'static str],
    /// Arguments and return type as written, for the key fingerprint.
    pub signature: &'static str,
    pub limit: Option<Limit>,
    pub expire: Option<Expire>,
    /// `expire_jitter`, in percent, if the attribute set one.
    pub expire_jitter: Option<u8>,
    /// `stale`, in seconds (0: off).
    pub stale: u32,
    /// `refresh`, in seconds (0: off).
    pub refresh: u32,
    /// `refresh = "early"`.
    pub early_refresh: bool,
    /// `single_flight = "global"`: the lease, in seconds (0: single-flight within the
    /// process only).
    pub lease: u32,
    /// `local = N`: the entries of the memory tier in front of a shared store (0: none).
    pub local: u32,
    /// `version`: part of the key, so that entries of other versions are never read.
    pub version: u32,
    pub key_prefix: Option<&'static str>,
    /// `tags`, as written: literal text with `{argument}` holes.
    pub tags: &'static [&'static str],
    pub dependencies: &'static [fn() -> &'static CachedFunction],
}

impl fmt::Debug for Decl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decl")
            .field("name", &self.name)
            .field("backend", &self.backend.name())
            .field("strict", &self.strict)
            .finish_non_exhaustive()
    }
}

/// An opened handle, reachable both typed (`any`) and erased (`control`).
#[derive(Clone, Copy)]
struct Opened {
    /// The type that owns the handle: `Self` for an associated function (so that each
    /// concrete type of a generic `impl` has entries of its own), `()` otherwise.
    owner: TypeId,
    type_id: TypeId,
    any: &'static (dyn Any + Send + Sync),
    control: &'static dyn CacheControl,
}

/// The operations every opened function handle offers whatever its types.
pub trait CacheControl: Send + Sync {
    /// Removes this handle's entries, without cascading.
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn clear_own(&self) -> Result<usize, Error>;
    /// Removes this handle's entries that match `selector`, or all of them when the
    /// selector names an argument this function lacks, without cascading.
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn clear_own_by(&self, selector: &Selector) -> Result<usize, Error>;
    /// [`clear_own`](CacheControl::clear_own) for `async` callers.
    fn clear_own_async(&self) -> crate::BoxFuture<'_, Result<usize, Error>>;
    /// [`clear_own_by`](CacheControl::clear_own_by) for `async` callers.
    fn clear_own_by_async<'a>(&'a self, selector: &'a Selector)
        -> crate::BoxFuture<'a, Result<usize, Error>>;
    /// This handle's counters.
    fn stats(&self) -> CacheStats;
    /// Removes this handle's entries in this process that carry any of `tags`, without
    /// cascading (see [`invalidate_tags`](crate::invalidate_tags)).
    ///
    /// # Errors
    /// When the store cannot be reached.
    fn clear_own_tagged(&self, tags: &[String]) -> Result<usize, Error>;
}

impl CachedFunction {
    #[doc(hidden)]
    pub const fn __new(decl: Decl) -> CachedFunction {
        CachedFunction {
            decl,
            path: OnceLock::new(),
            opened: OnceLock::new(),
            body: crate::BodyTime::new(),
            more: RwLock::new(Vec::new()),
        }
    }

    /// The function's full path: `crate::module::name`, or
    /// `crate::module::Type::name` for a method.
    pub fn path(&self) -> &str {
        self.path.get_or_init(|| {
            let anchor = (self.decl.anchor)();
            // The anchor is `<owner>::<registration fn>::<type>`; keep `<owner>`.
            let owner = anchor.rsplitn(3, "::").nth(2).unwrap_or(anchor);
            format!("{owner}::{}", self.decl.name).into_boxed_str()
        })
    }

    /// The function's name.
    pub fn name(&self) -> &'static str {
        self.decl.name
    }

    /// The backend's name (`memory`, `json`, ...: its kind's [`name`](BackendKind::name)).
    pub fn backend(&self) -> &'static str {
        self.decl.backend.name()
    }

    /// The backend, as its kind.
    pub fn backend_kind(&self) -> &'static dyn BackendKind {
        self.decl.backend
    }

    /// Whether keys are strict, which allows partial clears.
    pub fn is_strict(&self) -> bool {
        self.decl.strict
    }

    /// Whether the function is `async`.
    pub fn is_async(&self) -> bool {
        self.decl.is_async
    }

    /// The names of the arguments that make up the key, in order (`self` for a
    /// receiver that is part of the key).
    pub fn arg_names(&self) -> &'static [&'static str] {
        self.decl.arg_names
    }

    /// The owned type of each key argument, as written (`str` for `&str`).
    pub fn arg_types(&self) -> &'static [&'static str] {
        self.decl.arg_types
    }

    /// The arguments and return type as written, which the key fingerprint hashes.
    pub fn signature(&self) -> &'static str {
        self.decl.signature
    }

    /// `limit` from the attribute, if it set one.
    pub fn declared_limit(&self) -> Option<Limit> {
        self.decl.limit
    }

    /// `expire` from the attribute, if it set one.
    pub fn declared_expire(&self) -> Option<Expire> {
        self.decl.expire
    }

    /// The function's `limit` and `expire`: the attribute's, else `config`'s defaults.
    pub fn policy(&'static self, config: &Config) -> Policy {
        Policy {
            early: self.decl.early_refresh.then_some(&self.body),
            limit: self.decl.limit.unwrap_or(config.default_limit()),
            expire: self.decl.expire.unwrap_or(config.default_expire()),
            expire_jitter: self.decl.expire_jitter.unwrap_or(config.default_expire_jitter()),
            stale_ms: u64::from(self.decl.stale) * 1000,
            refresh_ms: u64::from(self.decl.refresh) * 1000,
        }
    }

    /// Whether the function has `refresh = "early"`.
    pub fn refreshes_early(&self) -> bool {
        self.decl.early_refresh
    }

    /// The body's measured run time (measured only with `refresh = "early"`).
    pub fn body_time(&self) -> &crate::BodyTime {
        &self.body
    }

    /// With `single_flight = "global"`, how long a process's claim on computing a key
    /// (its lease) lasts: others wait for its value that long at most.
    pub fn global_lease(&self) -> Option<std::time::Duration> {
        (self.decl.lease != 0).then(|| std::time::Duration::from_secs(u64::from(self.decl.lease)))
    }

    /// With `local = N`, the most entries of the memory tier in front of the shared store.
    pub fn local_tier(&self) -> Option<usize> {
        (self.decl.local != 0).then_some(self.decl.local as usize)
    }

    /// `version` from the attribute (0 when it set none): part of the key in shared
    /// stores, so that entries written under another version are never read.
    pub fn version(&self) -> u32 {
        self.decl.version
    }

    /// The tag templates of `tags = [...]`, as written (`"user:{id}"`).
    pub fn tags(&self) -> &'static [&'static str] {
        self.decl.tags
    }

    /// Whether one of the function's tag templates can render one of `tags`.
    pub fn may_carry(&self, tags: &[String]) -> bool {
        crate::may_carry(self.decl.tags, tags)
    }

    /// `cache_key_prefix` from the attribute, if it set one.
    pub fn key_prefix(&self) -> Option<&'static str> {
        self.decl.key_prefix
    }

    /// The functions this one declared with `dependency = [...]`.
    pub fn declared_dependencies(&self) -> impl Iterator<Item = &'static CachedFunction> + '_ {
        self.decl.dependencies.iter().map(|f| f())
    }

    /// Maps `selector` onto this function's arguments as `(index, encoding)` pairs, or
    /// `None` when this function cannot apply it exactly: it is not strict, lacks one of
    /// the names, or declares another type under it. `None` means clear everything.
    pub fn resolve<'s>(&self, selector: &'s Selector) -> Option<Vec<(usize, &'s [u8])>> {
        if !self.decl.strict {
            return None;
        }
        selector
            .fields()
            .iter()
            .map(|field| {
                let index = self.decl.arg_names.iter().position(|n| *n == field.name)?;
                let declared = *self.decl.arg_types.get(index)?;
                let comparable = declared == field.type_text && !declared.contains("Self");
                comparable.then_some((index, &field.encoded[..]))
            })
            .collect()
    }

    /// The typed handle of type `H` owned by `owner` (see `Opened::owner`), created by
    /// `open` on first use.
    #[doc(hidden)]
    #[inline]
    pub fn handle<H: CacheControl + Any>(&'static self, owner: TypeId, open: impl Fn() -> H) -> &'static H {
        let opened = self.opened.get_or_init(|| leak(owner, open()));
        match opened.any.downcast_ref::<H>().filter(|_| opened.owner == owner) {
            Some(handle) => handle,
            None => self.other_instantiation(owner, open),
        }
    }

    #[cold]
    fn other_instantiation<H: CacheControl + Any>(
        &'static self,
        owner: TypeId,
        open: impl Fn() -> H,
    ) -> &'static H {
        let wanted = |o: &&Opened| o.type_id == TypeId::of::<H>() && o.owner == owner;
        let found = self.more.read().iter().find(wanted).copied();
        let opened = found.unwrap_or_else(|| {
            let mut more = self.more.write();
            match more.iter().find(wanted) {
                Some(opened) => *opened,
                None => {
                    let opened = leak(owner, open());
                    more.push(opened);
                    opened
                }
            }
        });
        opened.any.downcast_ref().expect("an Opened's type_id matches its handle's type")
    }

    /// The handles this process has opened (usually one; none before the first call).
    pub fn controls(&self) -> Vec<&'static dyn CacheControl> {
        let mut all: Vec<_> = self.opened.get().map(|o| o.control).into_iter().collect();
        all.extend(self.more.read().iter().map(|o| o.control));
        all
    }

    /// Counters summed over this process's handles of the function.
    pub fn stats(&self) -> CacheStats {
        let mut total = CacheStats::default();
        for control in self.controls() {
            let s = control.stats();
            total.hits += s.hits;
            total.misses += s.misses;
            total.evictions += s.evictions;
            total.expirations += s.expirations;
            total.errors += s.errors;
            total.stale_hits += s.stale_hits;
            total.refreshes += s.refreshes;
            total.len = match (total.len, s.len) {
                (Some(a), Some(b)) => Some(a + b),
                (None, Some(b)) => Some(b),
                (a, None) => a,
            };
        }
        total
    }
}

// The dependency graph, as seen from one function (see `graph.rs`).
impl CachedFunction {
    /// The functions this one depends on: declared in the attribute or registered at
    /// run time.
    pub fn dependencies(&'static self) -> Vec<&'static CachedFunction> {
        graph::dependencies_of(self)
    }

    /// The functions that depend on this one directly.
    pub fn dependents(&'static self) -> Vec<&'static CachedFunction> {
        graph::dependents_of(self)
    }

    /// The functions a full clear of this one reaches, itself first, each once.
    pub fn clear_plan(&'static self) -> Vec<&'static CachedFunction> {
        graph::plan(self, None).into_iter().map(|(f, _)| f).collect()
    }

    /// Clears this function, then everything downstream of it; returns the entries
    /// removed in all.
    ///
    /// # Errors
    /// The first store that could not be cleared; the others are still cleared.
    pub fn clear(&'static self) -> Result<usize, Error> {
        graph::cascade(self, None)
    }

    /// Clears the entries that match `selector`, cascading partially (see
    /// [`plan`](crate::plan)).
    ///
    /// # Errors
    /// As for [`clear`](CachedFunction::clear).
    pub fn clear_by(&'static self, selector: &Selector) -> Result<usize, Error> {
        graph::cascade(self, Some(selector))
    }

    /// [`clear`](CachedFunction::clear) for `async` callers.
    ///
    /// # Errors
    /// As for [`clear`](CachedFunction::clear).
    pub async fn clear_async(&'static self) -> Result<usize, Error> {
        graph::cascade_async(self, None).await
    }

    /// [`clear_by`](CachedFunction::clear_by) for `async` callers.
    ///
    /// # Errors
    /// As for [`clear`](CachedFunction::clear).
    pub async fn clear_by_async(&'static self, selector: &Selector) -> Result<usize, Error> {
        graph::cascade_async(self, Some(selector)).await
    }
}

fn leak<H: CacheControl + Any>(owner: TypeId, handle: H) -> Opened {
    let handle: &'static H = Box::leak(Box::new(handle));
    Opened { owner, type_id: TypeId::of::<H>(), any: handle, control: handle }
}

impl fmt::Debug for CachedFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedFunction")
            .field("path", &self.path())
            .field("backend", &self.backend())
            .field("strict", &self.is_strict())
            .finish_non_exhaustive()
    }
}

impl PartialEq for CachedFunction {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}
impl Eq for CachedFunction {}
