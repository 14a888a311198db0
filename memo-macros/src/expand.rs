//! Code generation only: it prints the [`Model`], which made every decision and built
//! every name. Free functions and associated functions share each generator; they
//! differ only in where the items go (a module named after the function, or the type's
//! `impl`) and in the names `Model` gave them.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Ident, Type};

use crate::model::{Home, KeyPart, Model};

/// A local of the expansion: mixed-site hygiene keeps it apart from the user's names.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// What one cached function expands to, by where each part goes.
pub(crate) struct Expansion {
    /// The function itself, its body wrapped.
    pub(crate) item: TokenStream,
    /// Items beside it: in its module, or in an `impl` of its type.
    pub(crate) associated: TokenStream,
    /// Items that must be outside any `impl` block (the partial-clear builder).
    pub(crate) outside: TokenStream,
}

impl Expansion {
    /// Everything, for a free function.
    pub(crate) fn into_tokens(self) -> TokenStream {
        let Expansion { item, associated, outside } = self;
        quote!(#item #associated #outside)
    }
}

/// The expanded items of `m`.
pub(crate) fn expand(m: &Model<'_>) -> Expansion {
    let registration = registration(m);
    let accessor = accessor(m);
    let bounds = bounds(m);
    let item = wrapped(m);
    let fresh = fresh_copy(m);
    let aliases = aliases(m);
    let builder = if m.strict { builder(m) } else { TokenStream::new() };
    let controls = controls(m);
    match m.home {
        Home::Module => {
            let (vis, name) = (&m.vis, m.func.name());
            let raw = syn::ext::IdentExt::unraw(name);
            let doc = format!("Cache controls of [`{raw}()`](fn@{raw}).");
            let module = quote! {
                #[doc = #doc]
                #vis mod #name {
                    #controls
                }
            };
            Expansion {
                item: quote!(#bounds #item),
                associated: quote!(#registration #accessor #builder #module #fresh #aliases),
                outside: TokenStream::new(),
            }
        }
        Home::Impl { .. } => Expansion {
            item,
            associated: quote!(#bounds #registration #accessor #controls #fresh),
            outside: builder,
        },
    }
}

/// The function's static registration: its `CachedFunction`, submitted to the registry.
fn registration(m: &Model<'_>) -> TokenStream {
    let (vis, function_fn, kind) = (&m.vis, &m.names.function_fn, &m.kind);
    let name = syn::ext::IdentExt::unraw(m.func.name()).to_string();
    let (strict, is_async) = (m.strict, m.is_async);
    let arg_names = m.parts.iter().map(|p| &p.name);
    let arg_types = m.parts.iter().map(|p| p.borrowed.to_token_stream().to_string());
    let signature = m.signature_text();
    let limit = setting(m.limit, quote!(Limit));
    let expire = setting(m.expire, quote!(Expire));
    let expire_jitter = match m.expire_jitter {
        Some(percent) => quote!(::std::option::Option::Some(#percent)),
        None => quote!(::std::option::Option::None),
    };
    let version = m.version;
    let prefix = match &m.key_prefix {
        Some(s) => quote!(::std::option::Option::Some(#s)),
        None => quote!(::std::option::Option::None),
    };
    let deps = &m.dependencies;
    let tags = &m.tags;
    let (stale, refresh, early_refresh) = (m.stale, m.refresh, m.early_refresh);
    let (lease, local_tier) = (m.lease, m.local);
    quote! {
        #[doc(hidden)]
        #[allow(non_snake_case)]
        #vis fn #function_fn() -> &'static ::memo_alchemy::__private::CachedFunction {
            struct __MemoAnchor;
            static __MEMO_FUNCTION: ::memo_alchemy::__private::CachedFunction =
                ::memo_alchemy::__private::CachedFunction::__new(::memo_alchemy::__private::Decl {
                    name: #name,
                    anchor: ::std::any::type_name::<__MemoAnchor>,
                    backend: &#kind,
                    strict: #strict,
                    is_async: #is_async,
                    arg_names: &[#(#arg_names),*],
                    arg_types: &[#(#arg_types),*],
                    signature: #signature,
                    limit: #limit,
                    expire: #expire,
                    expire_jitter: #expire_jitter,
                    version: #version,
                    key_prefix: #prefix,
                    tags: &[#(#tags),*],
                    stale: #stale,
                    refresh: #refresh,
                    early_refresh: #early_refresh,
                    lease: #lease,
                    local: #local_tier,
                    dependencies: &[#(#deps),*],
                });
            ::memo_alchemy::__private::inventory::submit! {
                ::memo_alchemy::__private::Registration(&__MEMO_FUNCTION)
            }
            &__MEMO_FUNCTION
        }
    }
}

/// `Some(Limit::from_setting(n))` (or `Expire`) as a constant: the attribute checked
/// `n` by the same rule, so the `Err` arm is never taken.
fn setting(value: Option<i64>, ty: TokenStream) -> TokenStream {
    match value {
        Some(n) => quote!(::std::option::Option::Some(
            match ::memo_alchemy::__private::#ty::from_setting(#n) {
                ::std::result::Result::Ok(v) => v,
                ::std::result::Result::Err(_) => panic!("checked by #[cache]"),
            }
        )),
        None => quote!(::std::option::Option::None),
    }
}

/// A function whose `where` clause states what the key and the value need, each bound
/// spanned on the user's argument or return type. Where clauses are checked before any
/// body, so a missing `Hash` is the first error, on the argument.
fn bounds(m: &Model<'_>) -> TokenStream {
    // Every token of a bound carries the user's span: rustc reports a bound where its
    // first token is. A by-value type is bounded itself, not through
    // `ToOwned::Owned`, whose projection would be reported elsewhere.
    let key_bounds = m.parts.iter().map(|p| {
        let b = &p.borrowed;
        let owned = if p.by_ref {
            quote_spanned!(p.span=> <#b as ::std::borrow::ToOwned>::Owned)
        } else {
            quote!(#b)
        };
        let serialize =
            m.keys_serialized.then(|| quote_spanned!(p.span=> + ::memo_alchemy::__private::Serialize));
        quote_spanned!(p.span=>
            #owned: ::std::hash::Hash + ::std::cmp::Eq + ::std::clone::Clone
                + ::std::marker::Send + ::std::marker::Sync + 'static #serialize,
        )
    });
    let output = &m.output;
    let span = output.span();
    let value = if m.fallible {
        quote_spanned!(span=> <::memo_alchemy::__private::Fallible as ::memo_alchemy::__private::Mode<#output>>::Value)
    } else {
        quote!(#output)
    };
    let serialized = m.values_serialized.then(|| {
        quote_spanned!(span=> + ::memo_alchemy::__private::Serialize + ::memo_alchemy::__private::DeserializeOwned)
    });
    let value_bound = quote_spanned!(span=>
        #value: ::std::clone::Clone + ::std::marker::Send + ::std::marker::Sync + 'static #serialized,
    );
    let name = &m.names.bounds_fn;
    quote! {
        #[doc(hidden)]
        #[allow(non_snake_case, dead_code, clippy::extra_unused_type_parameters)]
        fn #name() where #(#key_bounds)* #value_bound {}
    }
}

/// The typed handle accessor.
fn accessor(m: &Model<'_>) -> TokenStream {
    let (key_ty, handle_ty, vis, function, owner) = (&m.key_ty, &m.handle_ty, &m.vis, &m.function, &m.owner);
    let strict_keys = if m.strict {
        quote!(::std::option::Option::Some(::memo_alchemy::__private::StrictKeys::<#key_ty>::new()))
    } else {
        quote!(::std::option::Option::None)
    };
    let render = render_tags(m);
    let f = local("__memo_function");
    let open = quote! {
        let #f = #function();
        #f.handle(#owner, || <#handle_ty>::open(#f, #strict_keys, #render))
    };
    let name = &m.names.handle_fn;
    match m.home {
        // A method's accessor cannot hold a static: its type may mention `Self`, and
        // each concrete `Self` of a generic `impl` has a handle of its own.
        Home::Impl { .. } => quote! {
            /// This method's cache handle.
            #vis fn #name() -> &'static #handle_ty {
                #open
            }
        },
        // A free function's accessor keeps the typed handle in a static of its own, so
        // a call costs one load rather than the registry's type-erased lookup.
        Home::Module => {
            let alias = &m.names.handle_alias;
            quote! {
                #[doc(hidden)]
                #[allow(non_camel_case_types)]
                #vis type #alias = #handle_ty;
                #[doc(hidden)]
                #[allow(non_snake_case)]
                #[inline]
                #vis fn #name() -> &'static #handle_ty {
                    static __MEMO_HANDLE: ::std::sync::LazyLock<&'static #handle_ty> =
                        ::std::sync::LazyLock::new(|| { #open });
                    *__MEMO_HANDLE
                }
            }
        }
    }
}

/// `Some(fn)` rendering an entry's tags from its key, for `tags = [...]`: each template
/// becomes a `format!` of the arguments it names (their `Display`), spanned on the tag so
/// that an argument without `Display` is reported there.
fn render_tags(m: &Model<'_>) -> TokenStream {
    if m.tags.is_empty() {
        return quote!(::std::option::Option::None);
    }
    let key = local("__memo_key");
    let rendered = m.tags.iter().map(|tag| {
        let Ok(pieces) = crate::attr::template(&tag.value()) else {
            return quote!(::std::string::String::new());
        };
        let mut format = String::new();
        let mut args = Vec::new();
        for piece in pieces {
            match piece {
                crate::attr::Piece::Text(text) => format.push_str(&text),
                crate::attr::Piece::Hole(name) => {
                    let Some(index) = m.parts.iter().position(|p| p.name == name) else { continue };
                    let index = syn::Index::from(index);
                    format.push_str("{}");
                    args.push(quote_spanned!(tag.span()=> &#key.#index));
                }
            }
        }
        let format = syn::LitStr::new(&format, tag.span());
        quote_spanned!(tag.span()=> ::std::format!(#format, #(#args),*))
    });
    let key_ty = &m.key_ty;
    quote! {
        ::std::option::Option::Some(
            (|#key: &#key_ty| -> ::std::vec::Vec<::std::string::String> { ::std::vec![#(#rendered),*] })
                as ::memo_alchemy::__private::RenderTags<#key_ty>
        )
    }
}

/// The user's function, its body wrapped in place.
fn wrapped(m: &Model<'_>) -> TokenStream {
    let item = &m.func.item;
    let (attrs, vis, sig, block) = (&item.attrs, &item.vis, &item.sig, &item.block);
    let (handle, mode, output) = (&m.handle, &m.mode, &m.output);
    let (cache, miss, value, ret, discard) = (
        local("__memo_cache"),
        local("__memo_miss"),
        local("__memo_value"),
        local("__memo_return"),
        local("__memo_discard"),
    );
    // Whether a return value is an `Err`, decided by the type (aliases included).
    let probe = quote! {
        let #discard = {
            #[allow(unused_imports)]
            use ::memo_alchemy::__private::{ProbeAny as _, ProbeResult as _};
            (&&::memo_alchemy::__private::ReturnProbe::<#output>::new()).__memo_discard()
        };
    };
    let borrows = m.parts.iter().map(|p| &p.borrow);
    let key = quote!((#(#borrows,)*));
    let join = quote!(return <#mode as ::memo_alchemy::__private::Mode<#output>>::join(#value););
    let refresh = refresh_call(m, &cache, &probe, &discard);
    let hit = quote! {
        ::memo_alchemy::__private::Lookup::Hit(#value) => {
            #join
        }
        ::memo_alchemy::__private::Lookup::Refresh(#value, #miss) => {
            #refresh
            #join
        }
        // A stale value comes as a miss with something to fall back on.
        ::memo_alchemy::__private::Lookup::Miss(#miss) | ::memo_alchemy::__private::Lookup::Stale(_, #miss) => #miss,
    };
    let body = if m.is_async {
        quote! {
            let #cache = #handle();
            // An in-process store answers at once: no future on the hit path.
            let #miss = if #cache.lookup_at_once() {
                match #cache.lookup(&#key) { #hit }
            } else {
                match #cache.lookup_async(&#key).await { #hit }
            };
            #probe
            // Boxed: the miss path's state (the body's future among it) stays out of the
            // caller's future, so that a hit moves and polls a small one.
            ::std::boxed::Box::pin(#cache.compute_async::<#output, #mode>(#miss, #discard, async move {
                #[allow(unreachable_code, clippy::diverging_sub_expression)]
                let #ret: #output = #block;
                #[allow(unreachable_code)]
                #ret
            }))
            .await
        }
    } else {
        quote! {
            let #cache = #handle();
            let #miss = match #cache.lookup(&#key) { #hit };
            #probe
            #cache.compute::<#output, #mode>(#miss, #discard, move || -> #output #block)
        }
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    }
}

/// With `refresh`, the statement that hands a due entry (`__memo_miss`) to a background
/// recompute, which runs the function's uncached copy on the entry's owned key;
/// without, one that drops it.
fn refresh_call(m: &Model<'_>, cache: &Ident, probe: &TokenStream, discard: &Ident) -> TokenStream {
    let miss = local("__memo_miss");
    if m.refresh == 0 && !m.early_refresh {
        return quote!(let _ = #miss;);
    }
    let (this, key) = (local("__memo_this"), local("__memo_key"));
    let receiver_in_key = m.parts.iter().any(|p| p.name == "self");
    let names: Vec<&Ident> = m.func.args.iter().map(|a| &a.name).collect();
    let this_pat = receiver_in_key.then(|| quote!(mut #this,));
    let passed = m.func.args.iter().map(|a| {
        let name = &a.name;
        if a.by_ref {
            quote!(&#name)
        } else {
            quote!(#name)
        }
    });
    let fresh = &m.names.fresh;
    let callee = match (&m.home, receiver_in_key) {
        (Home::Module, _) => quote!(#fresh),
        (Home::Impl { .. }, true) => quote!(#this.#fresh),
        (Home::Impl { .. }, false) => quote!(Self::#fresh),
    };
    let (key_ty, output, mode) = (&m.key_ty, &m.output, &m.mode);
    let unpack = quote! {
        #[allow(unused_mut)]
        let (#this_pat #(#names,)*) = #key;
    };
    if m.is_async {
        quote! {
            #probe
            #cache.refresh_async::<#output, #mode, _>(
                #miss,
                #discard,
                move |#key: #key_ty| async move {
                    #unpack
                    #callee(#(#passed),*).await
                },
                ::memo_alchemy::__private::spawn,
            );
        }
    } else {
        quote! {
            #probe
            #cache.refresh::<#output, #mode>(#miss, #discard, move |#key: #key_ty| {
                #unpack
                #callee(#(#passed),*)
            });
        }
    }
}

/// With `refresh`, an uncached copy of the function (same signature and body) that a
/// background refresh runs; nothing without.
fn fresh_copy(m: &Model<'_>) -> TokenStream {
    if m.refresh == 0 && !m.early_refresh {
        return TokenStream::new();
    }
    let mut sig = m.func.item.sig.clone();
    sig.ident = m.names.fresh.clone();
    let block = &m.func.item.block;
    // Compiled under the same conditions as the function.
    let cfgs = m.func.item.attrs.iter().filter(|a| a.path().is_ident("cfg") || a.path().is_ident("cfg_attr"));
    quote! {
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_snake_case, clippy::too_many_arguments, clippy::needless_pass_by_value)]
        #sig #block
    }
}

/// The controls, for free and associated functions alike: the handle (free functions;
/// a method's accessor is its handle), `clear`, `clear_by` (strict) and `stats`. A free
/// function's live in its module, so they reach its items through `super::`.
fn controls(m: &Model<'_>) -> TokenStream {
    let n = &m.names;
    let (clear, clear_by, stats) = (&n.clear, &n.clear_by, &n.stats);
    let (up, vis, handle) = match m.home {
        Home::Module => (quote!(super::), quote!(pub), {
            let (alias, handle_fn) = (&n.handle_alias, &n.handle_fn);
            quote! {
                /// The cache handle.
                pub fn cache() -> &'static super::#alias {
                    super::#handle_fn()
                }
            }
        }),
        Home::Impl { .. } => (quote!(Self::), m.vis.to_token_stream(), TokenStream::new()),
    };
    let function_fn = &n.function_fn;
    let clear_item = if m.is_async {
        quote! {
            /// Clears this function's cache, then its dependents'; returns the entries removed.
            #vis async fn #clear() -> ::std::result::Result<usize, ::memo_alchemy::__private::Error> {
                #up #function_fn().clear_async().await
            }
        }
    } else {
        quote! {
            /// Clears this function's cache, then its dependents'; returns the entries removed.
            #vis fn #clear() -> ::std::result::Result<usize, ::memo_alchemy::__private::Error> {
                #up #function_fn().clear()
            }
        }
    };
    let clear_by_item = m.strict.then(|| {
        // The builder is defined beside the module, or outside the `impl` block.
        let ty = builder_type(m);
        let path = match m.home {
            Home::Module => quote!(super::#ty),
            Home::Impl { .. } => ty,
        };
        quote! {
            /// Selects entries by argument value, then `.clear()` removes them.
            #vis fn #clear_by() -> #path {
                <#path>::__memo_new()
            }
        }
    });
    let entry_item = entry(m, &up, &vis);
    let many_item = many(m, &up, &vis);
    quote! {
        #handle
        #clear_item
        #clear_by_item
        #entry_item
        #many_item
        /// Hits, misses, evictions, errors and length.
        #vis fn #stats() -> ::memo_alchemy::__private::CacheStats {
            #up #function_fn().stats()
        }
    }
}

/// The types that a free function's controls name, as seen from its module: written in
/// the function's scope (where `super::T` or a `use` resolve as the user meant), they are
/// aliased there, and the module refers to `super::<alias>`.
fn aliases(m: &Model<'_>) -> TokenStream {
    let vis = &m.vis;
    let raw = syn::ext::IdentExt::unraw(m.func.name());
    let alias = |what: &str, ty: &TokenStream| {
        let name = quote::format_ident!("__memo_{}_{}", raw, what);
        quote! {
            #[doc(hidden)]
            #[allow(non_camel_case_types)]
            #vis type #name = #ty;
        }
    };
    let args = m.func.args.iter().enumerate().map(|(i, a)| {
        let b = &a.borrowed;
        alias(&format!("Arg{i}"), &quote!(#b))
    });
    let output = &m.output;
    let (key, entry) = (alias("Key", &m.key_ty), alias("Entry", &m.entry_ty));
    let output = alias("Output", &quote!(#output));
    quote!(#(#args)* #key #entry #output)
}

/// How a control names one of [`aliases`]' types (`Arg0`, `Key`, `Entry`, `Output`):
/// through the alias from a free function's module, directly in an `impl`.
fn named(m: &Model<'_>, what: &str, direct: TokenStream) -> TokenStream {
    match m.home {
        Home::Module => {
            let name = quote::format_ident!("__memo_{}_{}", syn::ext::IdentExt::unraw(m.func.name()), what);
            quote!(super::#name)
        }
        Home::Impl { .. } => direct,
    }
}

/// `cache_entry(args)`: the entry of the function's own arguments (and receiver, when
/// it is part of the key), typed as the function takes them.
fn entry(m: &Model<'_>, up: &TokenStream, vis: &TokenStream) -> TokenStream {
    let sig = &m.func.item.sig;
    let receiver = m.parts.iter().any(|p| p.name == "self").then(|| sig.receiver()).flatten();
    let args = m.func.args.iter().enumerate().map(|(i, a)| {
        let (name, b) = (&a.name, &a.borrowed);
        let ty = named(m, &format!("Arg{i}"), quote!(#b));
        if a.by_ref {
            quote!(#name: &#ty)
        } else {
            quote!(#name: #ty)
        }
    });
    let params = receiver.map(ToTokens::to_token_stream).into_iter().chain(args);
    let borrows = m.parts.iter().map(|p| &p.borrow);
    let (entry_fn, handle_fn) = (&m.names.entry, &m.names.handle_fn);
    let (entry_ty, key_ty) = (named(m, "Entry", m.entry_ty.clone()), named(m, "Key", m.key_ty.clone()));
    let generics = &sig.generics;
    let key = local("__memo_key");
    let doc = "The entry of these arguments, to get, set, remove or inspect without computing.";
    quote! {
        #[doc = #doc]
        #vis fn #entry_fn #generics (#(#params),*) -> #entry_ty {
            let #key = ::memo_alchemy::__private::KeyRef::<#key_ty>::to_owned_key(&(#(#borrows,)*));
            <#entry_ty>::new(#up #handle_fn(), #key)
        }
    }
}

/// `cache_many(items)`: the function's results for many argument lists (one argument,
/// or a tuple of them, each owned), in order. Hits are read ahead in one go; each miss
/// is an ordinary call. Generated for methods on `&self` only.
fn many(m: &Model<'_>, up: &TokenStream, vis: &TokenStream) -> TokenStream {
    let receiver_in_key = m.parts.iter().any(|p| p.name == "self");
    let shared = |r: &syn::Receiver| r.reference.is_some() && r.mutability.is_none();
    if m.func.item.sig.receiver().is_some_and(|r| !shared(r)) {
        return TokenStream::new();
    }
    let args = &m.func.args;
    let owned: Vec<TokenStream> = args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let b = &a.borrowed;
            let b = named(m, &format!("Arg{i}"), quote!(#b));
            quote!(<#b as ::std::borrow::ToOwned>::Owned)
        })
        .collect();
    let item_ty = match &owned[..] {
        [one] => one.clone(),
        all => quote!((#(#all,)*)),
    };
    let names: Vec<&Ident> = args.iter().map(|a| &a.name).collect();
    let item = local("__memo_item");
    let destructure = if names.len() == 1 { quote!((#item,)) } else { quote!(#item) };
    // A method is called on its receiver to compute a miss, whether or not the key holds it.
    let self_param = if m.func.receiver.is_some() { quote!(&self,) } else { TokenStream::new() };
    let (self_key, self_skip) = if receiver_in_key {
        (quote!(::std::clone::Clone::clone(self),), quote!(_,))
    } else {
        (TokenStream::new(), TokenStream::new())
    };
    let passed = args.iter().map(|a| {
        let name = &a.name;
        if a.by_ref {
            quote!(&#name)
        } else {
            quote!(#name)
        }
    });
    let name = m.func.name();
    let callee = match (&m.home, m.func.receiver.is_some()) {
        (Home::Module, _) => quote!(#up #name),
        (Home::Impl { .. }, true) => quote!(self.#name),
        (Home::Impl { .. }, false) => quote!(Self::#name),
    };
    let call = quote!(#callee(#(#passed),*));
    let (many_fn, handle_fn, mode) = (&m.names.many, &m.names.handle_fn, &m.mode);
    let output = &m.output;
    let (key_ty, output) = (named(m, "Key", m.key_ty.clone()), named(m, "Output", quote!(#output)));
    let (keys, found, key, value, results) = (
        local("__memo_keys"),
        local("__memo_found"),
        local("__memo_key"),
        local("__memo_value"),
        local("__memo_results"),
    );
    let generics = &m.func.item.sig.generics;
    let prepare = quote! {
        let #keys: ::std::vec::Vec<#key_ty> = #item
            .into_iter()
            .map(|#item| {
                let (#(#names,)*) = #destructure;
                (#self_key #(#names,)*)
            })
            .collect();
    };
    let join = quote!(<#mode as ::memo_alchemy::__private::Mode<#output>>::join(#value));
    let doc = "The results for many argument lists (one argument, or a tuple), in order: hits are read in one round trip, misses computed as single calls.";
    if m.is_async {
        quote! {
            #[doc = #doc]
            #[allow(clippy::unused_unit)]
            #vis async fn #many_fn #generics (#self_param #item: impl ::std::iter::IntoIterator<Item = #item_ty>) -> ::std::vec::Vec<#output> {
                #prepare
                let #found = #up #handle_fn().prefetch_async(&#keys).await;
                let mut #results = ::std::vec::Vec::with_capacity(#keys.len());
                for (#key, #found) in #keys.into_iter().zip(#found) {
                    #results.push(match #found {
                        ::std::option::Option::Some(#value) => #join,
                        ::std::option::Option::None => {
                            let (#self_skip #(#names,)*) = #key;
                            #call.await
                        }
                    });
                }
                #results
            }
        }
    } else {
        quote! {
            #[doc = #doc]
            #[allow(clippy::unused_unit)]
            #vis fn #many_fn #generics (#self_param #item: impl ::std::iter::IntoIterator<Item = #item_ty>) -> ::std::vec::Vec<#output> {
                #prepare
                let #found = #up #handle_fn().prefetch(&#keys);
                #keys
                    .into_iter()
                    .zip(#found)
                    .map(|(#key, #found)| match #found {
                        ::std::option::Option::Some(#value) => #join,
                        ::std::option::Option::None => {
                            let (#self_skip #(#names,)*) = #key;
                            #call
                        }
                    })
                    .collect()
            }
        }
    }
}

/// The builder's generics: the `impl` block's, for a method.
fn builder_generics(m: &Model<'_>) -> syn::Generics {
    match m.home {
        Home::Module => syn::Generics::default(),
        Home::Impl { generics, .. } => generics.clone(),
    }
}

/// The builder's type as the controls name it.
fn builder_type(m: &Model<'_>) -> TokenStream {
    let generics = builder_generics(m);
    let (_, ty_generics, _) = generics.split_for_impl();
    let name = &m.names.builder;
    quote!(#name #ty_generics)
}

/// The typed partial-clear builder of a strict function: one setter per argument,
/// taking the argument's own owned type. For a method it is generic over the `impl`
/// block's generics, and `Self` in argument types is the block's type.
fn builder(m: &Model<'_>) -> TokenStream {
    let (vis, name, function_fn) = (&m.vis, &m.names.builder, &m.names.function_fn);
    let function = match m.home {
        Home::Module => quote!(#function_fn),
        Home::Impl { self_ty, .. } => quote!(<#self_ty>::#function_fn),
    };
    let generics = builder_generics(m);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let markers = generics.params.iter().filter_map(|p| match p {
        syn::GenericParam::Lifetime(l) => {
            let l = &l.lifetime;
            Some(quote!(&#l ()))
        }
        syn::GenericParam::Type(t) => Some(t.ident.to_token_stream()),
        syn::GenericParam::Const(_) => None,
    });
    let marker = quote!(::std::marker::PhantomData<fn() -> (#(#markers,)*)>);
    let (f, selector, value) = (local("__memo_function"), local("__memo_selector"), local("__memo_value"));
    let args: Vec<&KeyPart> = m.selectable().collect();
    let owned: Vec<TokenStream> = args
        .iter()
        .map(|p| {
            let b = &p.borrowed;
            let owned = quote!(<#b as ::std::borrow::ToOwned>::Owned);
            match m.home {
                Home::Impl { self_ty, .. } => replace_self(owned, self_ty),
                Home::Module => owned,
            }
        })
        .collect();
    let idents: Vec<Ident> = args.iter().map(|p| Ident::new(&p.name, Span::call_site())).collect();
    let setters = args.iter().zip(&idents).zip(&owned).map(|((p, field), owned)| {
        let doc = format!("Selects the entries whose `{}` equals `value`.", p.name);
        quote! {
            #[doc = #doc]
            pub fn #field(mut self, value: impl ::std::convert::Into<#owned>) -> Self {
                self.#field = ::std::option::Option::Some(value.into());
                self
            }
        }
    });
    let adds = args.iter().zip(&idents).map(|(p, field)| {
        let (name, text) = (&p.name, p.borrowed.to_token_stream().to_string());
        quote! {
            if let ::std::option::Option::Some(#value) = &self.#field {
                #selector = ::memo_alchemy::__private::select(#f, #selector, #name, #text, #value)?;
            }
        }
    });
    let (clear_sig, run) = if m.is_async {
        (quote!(pub async fn clear(self)), quote!(#f.clear_by_async(&#selector).await))
    } else {
        (quote!(pub fn clear(self)), quote!(#f.clear_by(&#selector)))
    };
    quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #[must_use = "a partial clear does nothing until `.clear()`"]
        #vis struct #name #impl_generics #where_clause {
            #(#idents: ::std::option::Option<#owned>,)*
            __memo_marker: #marker,
        }

        impl #impl_generics #name #ty_generics #where_clause {
            #[doc(hidden)]
            pub fn __memo_new() -> Self {
                #name { #(#idents: ::std::option::Option::None,)* __memo_marker: ::std::marker::PhantomData }
            }
            #(#setters)*
            /// Removes the selected entries and cascades to dependents; returns the entries removed.
            #clear_sig -> ::std::result::Result<usize, ::memo_alchemy::__private::Error> {
                let #f = #function();
                let mut #selector = ::memo_alchemy::__private::Selector::new();
                #(#adds)*
                #run
            }
        }
    }
}

/// `tokens` with every `Self` replaced by `self_ty`, for items outside the `impl`.
fn replace_self(tokens: TokenStream, self_ty: &Type) -> TokenStream {
    tokens
        .into_iter()
        .map(|t| match t {
            proc_macro2::TokenTree::Ident(i) if i == "Self" => quote!(#self_ty),
            proc_macro2::TokenTree::Group(g) => {
                let mut group = proc_macro2::Group::new(g.delimiter(), replace_self(g.stream(), self_ty));
                group.set_span(g.span());
                proc_macro2::TokenTree::Group(group).into_token_stream()
            }
            other => other.into_token_stream(),
        })
        .collect()
}
