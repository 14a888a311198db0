//! The dependency graph: static registration of every cached function, runtime
//! edges, and the cascade that a clear runs along.

use std::collections::HashMap;
use std::sync::LazyLock;

use parking_lot::RwLock;

use crate::key::Selector;
use crate::{BackendKind, CachedFunction, Error};

/// A static registration, submitted by `#[cache]` for every cached function.
#[doc(hidden)]
#[derive(Debug)]
pub struct Registration(pub &'static CachedFunction);

inventory::collect!(Registration);

/// Clears `f` in this process: its opened handles, or its shared store when it has
/// none open.
pub(crate) fn clear_one(f: &'static CachedFunction, selector: Option<&Selector>) -> Result<usize, Error> {
    let controls = f.controls();
    if controls.is_empty() {
        return f.backend_kind().cold_clear(f, selector);
    }
    total(controls.into_iter().map(|control| match selector {
        Some(s) => control.clear_own_by(s),
        None => control.clear_own(),
    }))
}

/// The functions `f` depends on: declared in the attribute or registered at run time.
pub(crate) fn dependencies_of(f: &'static CachedFunction) -> Vec<&'static CachedFunction> {
    let mut all: Vec<_> = f.declared_dependencies().collect();
    all.extend(RUNTIME.read().iter().filter(|(_, d)| *d == f).map(|(u, _)| *u));
    all
}

/// The functions that depend on `f` directly.
pub(crate) fn dependents_of(f: &'static CachedFunction) -> Vec<&'static CachedFunction> {
    let mut all = DECLARED.get(&id(f)).cloned().unwrap_or_default();
    all.extend(RUNTIME.read().iter().filter(|(u, _)| *u == f).map(|(_, d)| *d));
    all
}

/// Every cached function of the program, whether or not it has run, in no set order.
///
/// ```
/// for function in memo_core::registry() {
///     let upstream: Vec<_> = function.dependencies().iter().map(|f| f.path().to_owned()).collect();
///     println!("{} [{}] <- {upstream:?}", function.path(), function.backend());
/// }
/// ```
pub fn registry() -> impl Iterator<Item = &'static CachedFunction> {
    inventory::iter::<Registration>.into_iter().map(|r| r.0)
}

fn id(f: &CachedFunction) -> usize {
    std::ptr::from_ref(f) as usize
}

/// Dependents by upstream, from the attributes: built once, on the first clear.
static DECLARED: LazyLock<HashMap<usize, Vec<&'static CachedFunction>>> = LazyLock::new(|| {
    let mut map: HashMap<usize, Vec<&'static CachedFunction>> = HashMap::new();
    for dependent in registry() {
        for upstream in dependent.declared_dependencies() {
            map.entry(id(upstream)).or_default().push(dependent);
        }
    }
    map
});

/// Edges added at run time: `(upstream, dependent)`.
static RUNTIME: RwLock<Vec<(&'static CachedFunction, &'static CachedFunction)>> = RwLock::new(Vec::new());

/// Names one upstream cached function that another depends on: clearing the upstream
/// clears the dependent too. `#[cache(dependency = [add])]` is sugar for it; it also
/// registers dependencies at run time.
///
/// ```
/// use memo_alchemy::{cache, FunctionCacheDependency};
///
/// #[cache]
/// fn price(id: u32) -> u64 { u64::from(id) * 100 }
///
/// #[cache]
/// fn invoice(id: u32) -> u64 { price(id) + 5 }
///
/// fn main() -> Result<(), memo_alchemy::Error> {
///     FunctionCacheDependency::new(price::cache().function()).register(invoice::cache().function());
///     invoice(1);
///     assert_eq!(price::cache_clear()?, 2); // price(1) and invoice(1)
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionCacheDependency {
    upstream: &'static CachedFunction,
}

impl FunctionCacheDependency {
    /// A dependency on `upstream`.
    pub fn new(upstream: &'static CachedFunction) -> Self {
        FunctionCacheDependency { upstream }
    }

    /// The function depended on.
    pub fn upstream(&self) -> &'static CachedFunction {
        self.upstream
    }

    /// Makes `dependent` depend on the upstream from now on. Registering an edge twice
    /// changes nothing.
    pub fn register(self, dependent: &'static CachedFunction) {
        let mut edges = RUNTIME.write();
        if !edges.iter().any(|&(u, d)| u == self.upstream && d == dependent) {
            edges.push((self.upstream, dependent));
        }
    }
}

/// What one function of a cascade has removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Every entry.
    All,
    /// The entries that match the cascade's selector.
    Matching,
}

/// The functions a clear reaches, each once, root first, with what to remove from each.
///
/// A dependent gets the partial clear when its upstream got it and it can apply the
/// selector exactly; otherwise, and below any function cleared entirely, it is cleared
/// entirely: clearing too much is safe, a stale dependent entry is not.
pub fn plan(
    root: &'static CachedFunction,
    selector: Option<&Selector>,
) -> Vec<(&'static CachedFunction, Step)> {
    let mut order = vec![root];
    let mut index = 0;
    while let Some(&f) = order.get(index) {
        for d in f.dependents() {
            if !order.contains(&d) {
                order.push(d);
            }
        }
        index += 1;
    }
    let mut full: Vec<bool> = order.iter().map(|_| selector.is_none()).collect();
    let position = |f: &'static CachedFunction| order.iter().position(|g| *g == f);
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..order.len() {
            for d in order[i].dependents() {
                let Some(j) = position(d) else { continue };
                let must = full[i] || selector.is_some_and(|s| d.resolve(s).is_none());
                if must && !full[j] {
                    full[j] = true;
                    changed = true;
                }
            }
        }
    }
    order.into_iter().zip(full).map(|(f, all)| (f, if all { Step::All } else { Step::Matching })).collect()
}

/// Runs a clear along the graph from `root`; returns the entries removed in all.
/// Every reached function is cleared even when one fails; the first error is returned.
pub(crate) fn cascade(root: &'static CachedFunction, selector: Option<&Selector>) -> Result<usize, Error> {
    total(plan(root, selector).into_iter().map(|(f, step)| {
        let scope = if step == Step::Matching { selector } else { None };
        clear_one(f, scope)
    }))
}

/// Clears entirely every function downstream of `f`, not `f` itself: what removing one
/// of its entries cascades to.
pub(crate) fn clear_downstream(f: &'static CachedFunction) -> Result<usize, Error> {
    total(plan(f, None).into_iter().skip(1).map(|(g, _)| clear_one(g, None)))
}

/// Clears, in this process only, the functions downstream of `f` whose entries no other
/// process can reach (see [`BackendKind::is_shared`]): what a process does when another
/// process's clear of `f` reaches it; that process cleared the shared ones.
///
/// # Errors
/// The first store that could not be cleared; the others are still cleared.
pub fn clear_private_downstream(f: &'static CachedFunction) -> Result<usize, Error> {
    let private = plan(f, None).into_iter().skip(1).filter(|(g, _)| !g.backend_kind().is_shared());
    total(private.flat_map(|(g, _)| g.controls()).map(|c| c.clear_own()).collect::<Vec<_>>())
}

/// [`clear_downstream`] for `async` callers.
pub(crate) async fn clear_downstream_async(f: &'static CachedFunction) -> Result<usize, Error> {
    let mut results = Vec::new();
    for (g, _) in plan(f, None).into_iter().skip(1) {
        results.push(clear_one_async(g, None).await);
    }
    total(results)
}

/// [`clear_one`] for `async` callers.
pub(crate) async fn clear_one_async(
    f: &'static CachedFunction,
    selector: Option<&Selector>,
) -> Result<usize, Error> {
    let controls = f.controls();
    if controls.is_empty() {
        // Never opened here: the backend's blocking cold clear (rare).
        return clear_one(f, selector);
    }
    let mut results = Vec::with_capacity(controls.len());
    for control in controls {
        results.push(match selector {
            Some(s) => control.clear_own_by_async(s).await,
            None => control.clear_own_async().await,
        });
    }
    total(results)
}

/// [`cascade`] for `async` callers.
pub(crate) async fn cascade_async(
    root: &'static CachedFunction,
    selector: Option<&Selector>,
) -> Result<usize, Error> {
    let mut results = Vec::new();
    for (f, step) in plan(root, selector) {
        let scope = if step == Step::Matching { selector } else { None };
        results.push(clear_one_async(f, scope).await);
    }
    total(results)
}

/// Clears every cached function of the program, then every entry left under the
/// configured prefix in shared stores (Redis), never a key outside it. Returns the live
/// entries the functions' clears removed (leftovers of other builds are removed
/// uncounted).
///
/// # Errors
/// The first store that could not be cleared; the others are still cleared.
pub fn flush_all() -> Result<usize, Error> {
    let results = registry().map(|f| clear_one(f, None)).chain(kinds().into_iter().map(|k| k.sweep()));
    total(results)
}

/// The backend kinds of the program's functions, each once.
pub(crate) fn kinds() -> Vec<&'static dyn BackendKind> {
    let mut kinds: Vec<&'static dyn BackendKind> = Vec::new();
    for f in registry() {
        if !kinds.iter().any(|k| k.name() == f.backend()) {
            kinds.push(f.backend_kind());
        }
    }
    kinds
}

/// [`flush_all`] for `async` callers.
///
/// # Errors
/// As for [`flush_all`].
pub async fn flush_all_async() -> Result<usize, Error> {
    let mut results = Vec::new();
    for f in registry() {
        results.push(clear_one_async(f, None).await);
    }
    for kind in kinds() {
        results.push(kind.sweep_async().await);
    }
    total(results)
}

/// The entries removed in all, or the first error.
pub(crate) fn total(results: impl IntoIterator<Item = Result<usize, Error>>) -> Result<usize, Error> {
    let mut removed = 0;
    let mut first_error = None;
    for result in results {
        match result {
            Ok(n) => removed += n,
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    first_error.map_or(Ok(removed), Err)
}
