//! The resolved model of one cached function: what the attribute and the signature
//! decide (the key, the mode, the backend, free or associated), and every generated
//! name, each built here once. `expand` prints the model and decides nothing.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Generics, Ident, LitStr, Path, Type, Visibility};

use crate::attr::Attr;
use crate::signature::{Func, Place};

/// One element of the key: the receiver or a named argument.
pub(crate) struct KeyPart {
    /// The name partial clears use (`self` for a receiver).
    pub(crate) name: String,
    /// `T` such that the key stores `<T as ToOwned>::Owned`.
    pub(crate) borrowed: Type,
    /// The expression borrowing it as `&T`.
    pub(crate) borrow: TokenStream,
    /// Passed by reference (`&str`): the key holds `T::Owned`, else `T` itself.
    pub(crate) by_ref: bool,
    pub(crate) span: Span,
}

/// Where the generated items go.
pub(crate) enum Home<'a> {
    /// A free function: its controls are in a module named after it.
    Module,
    /// An associated function: its controls are associated functions of `self_ty`.
    Impl { self_ty: &'a Type, generics: &'a Generics },
}

/// Every name the expansion defines or refers to.
pub(crate) struct Names {
    /// The fn returning the function's `&'static CachedFunction`.
    pub(crate) function_fn: Ident,
    /// The typed handle accessor.
    pub(crate) handle_fn: Ident,
    /// A free function's alias of its handle type, for `f::cache()`'s signature.
    pub(crate) handle_alias: Ident,
    /// The fn whose `where` clause checks the key and value bounds.
    pub(crate) bounds_fn: Ident,
    /// The typed partial-clear builder.
    pub(crate) builder: Ident,
    /// The controls: `cache_clear`, ... in the module, `m_cache_clear`, ... on the type.
    pub(crate) clear: Ident,
    pub(crate) clear_by: Ident,
    pub(crate) stats: Ident,
    pub(crate) entry: Ident,
    pub(crate) many: Ident,
    /// The uncached copy of the function that a background refresh runs.
    pub(crate) fresh: Ident,
}

/// The name of a cached function's `CachedFunction` accessor, from its own name: the
/// function itself and every `dependency = [...]` naming it build it here.
pub(crate) fn function_fn(name: &Ident, span: Span) -> Ident {
    Ident::new(&format!("__memo_{}_function", name.unraw()), span)
}

impl Names {
    fn new(name: &Ident, home: &Home<'_>) -> Names {
        let raw = name.unraw();
        // A free function's controls are `f::cache_clear()`, an associated function's
        // `T::m_cache_clear()`.
        let (handle_fn, builder, controls) = match home {
            Home::Module => {
                (format_ident!("__memo_{raw}_cache"), format_ident!("__memo_{raw}_ClearBy"), String::new())
            }
            Home::Impl { self_ty, .. } => {
                // Builders of same-named methods of different types live side by side
                // outside their `impl` blocks: the type's text tells them apart.
                let text = self_ty.to_token_stream().to_string();
                let owner: String = text.chars().filter(char::is_ascii_alphanumeric).take(24).collect();
                let builder = format_ident!("__memo_{owner}_{raw}_ClearBy_{:08x}", fnv(&text) as u32);
                (format_ident!("{raw}_cache"), builder, format!("{raw}_"))
            }
        };
        Names {
            function_fn: function_fn(name, Span::call_site()),
            handle_fn,
            handle_alias: format_ident!("__memo_{raw}_Cache"),
            bounds_fn: format_ident!("__memo_{raw}_bounds"),
            builder,
            clear: format_ident!("{controls}cache_clear"),
            clear_by: format_ident!("{controls}cache_clear_by"),
            stats: format_ident!("{controls}cache_stats"),
            entry: format_ident!("{controls}cache_entry"),
            many: format_ident!("{controls}cache_many"),
            fresh: format_ident!("__memo_{raw}_fresh"),
        }
    }
}

/// Everything `expand` needs.
pub(crate) struct Model<'a> {
    pub(crate) func: &'a Func,
    pub(crate) home: Home<'a>,
    pub(crate) names: Names,
    pub(crate) vis: Visibility,
    /// The key: the receiver (unless `is_method = true`) and each argument.
    pub(crate) parts: Vec<KeyPart>,
    pub(crate) is_async: bool,
    pub(crate) strict: bool,
    /// The return type is written as a `Result`: the cache stores its `Ok` value.
    pub(crate) fallible: bool,
    pub(crate) keys_serialized: bool,
    pub(crate) values_serialized: bool,
    pub(crate) limit: Option<i64>,
    pub(crate) expire: Option<i64>,
    pub(crate) expire_jitter: Option<u8>,
    pub(crate) version: u32,
    pub(crate) key_prefix: Option<LitStr>,
    /// Tag templates as written.
    pub(crate) tags: Vec<LitStr>,
    /// `stale` and `refresh`, in seconds (0: off).
    pub(crate) stale: u32,
    pub(crate) refresh: u32,
    /// `refresh = "early"`.
    pub(crate) early_refresh: bool,
    /// `single_flight = "global"`: the lease in seconds (0: per process).
    pub(crate) lease: u32,
    /// `local = N` (0: none).
    pub(crate) local: u32,
    /// The `CachedFunction` accessors of the declared dependencies.
    pub(crate) dependencies: Vec<TokenStream>,
    /// The backend's kind, a type path.
    pub(crate) kind: TokenStream,
    /// `(<A as ToOwned>::Owned, ...)`.
    pub(crate) key_ty: TokenStream,
    /// `Plain` or `Fallible`.
    pub(crate) mode: TokenStream,
    /// The return type as written.
    pub(crate) output: Type,
    /// `FunctionCache<Key, Value, Store>`.
    pub(crate) handle_ty: TokenStream,
    /// `Entry<Key, Value, Store>`, or `AsyncEntry<...>` for an `async fn`.
    pub(crate) entry_ty: TokenStream,
    /// How code in the function's scope calls `function_fn` and `handle_fn`.
    pub(crate) function: TokenStream,
    pub(crate) handle: TokenStream,
    /// The owner of the handle: `Self` for an associated function, `()` for a free one.
    pub(crate) owner: TokenStream,
}

impl<'a> Model<'a> {
    pub(crate) fn new(attr: &Attr, func: &'a Func, place: &'a Place<'a>) -> Model<'a> {
        let home = match place {
            Place::Free => Home::Module,
            Place::Impl(block) => Home::Impl { self_ty: &block.self_ty, generics: &block.generics },
        };
        let names = Names::new(func.name(), &home);
        let parts = key_parts(attr, func);
        let owned = parts.iter().map(|p| {
            let b = &p.borrowed;
            quote_spanned!(p.span=> <#b as ::std::borrow::ToOwned>::Owned)
        });
        let key_ty = quote!((#(#owned,)*));
        let output = func.output.clone();
        let mode = if func.fallible {
            quote!(::memo_alchemy::__private::Fallible)
        } else {
            quote!(::memo_alchemy::__private::Plain)
        };
        let value_ty = quote!(<#mode as ::memo_alchemy::__private::Mode<#output>>::Value);
        let kind = attr.backend().kind();
        let store = quote!(<#kind as ::memo_alchemy::__private::StoreFor<#key_ty, #value_ty>>::Store);
        let handle_ty = quote!(::memo_alchemy::__private::FunctionCache<#key_ty, #value_ty, #store>);
        let entry = if func.is_async() { quote!(AsyncEntry) } else { quote!(Entry) };
        let entry_ty = quote!(::memo_alchemy::__private::#entry<#key_ty, #value_ty, #store>);
        let (function_fn, handle_fn) = (&names.function_fn, &names.handle_fn);
        let (function, handle, owner) = match home {
            Home::Module => {
                (quote!(#function_fn), quote!(#handle_fn), quote!(::memo_alchemy::__private::free_owner()))
            }
            Home::Impl { .. } => (
                quote!(Self::#function_fn),
                quote!(Self::#handle_fn),
                quote!(::memo_alchemy::__private::owner::<Self>()),
            ),
        };
        Model {
            func,
            home,
            vis: func.item.vis.clone(),
            parts,
            is_async: func.is_async(),
            strict: attr.strict(),
            fallible: func.fallible,
            keys_serialized: attr.keys_serialized(),
            values_serialized: attr.values_serialized(),
            limit: attr.limit.value,
            expire: attr.expire.value,
            expire_jitter: attr.expire_jitter.value.map(|(percent, _)| percent),
            version: attr.version.value.unwrap_or(0),
            key_prefix: attr.cache_key_prefix.value.clone(),
            tags: attr.tags.value.clone().unwrap_or_default(),
            stale: attr.stale.value.map_or(0, |(n, _)| n),
            refresh: attr.refresh.value.map_or(0, |(n, _)| n),
            early_refresh: attr.early_refresh,
            lease: match attr.single_flight.value {
                Some((true, _)) => attr.lease.value.map_or(crate::attr::DEFAULT_LEASE, |(n, _)| n),
                _ => 0,
            },
            local: attr.local.value.map_or(0, |(n, _)| n),
            dependencies: attr.dependency.value.iter().flatten().map(dependency_fn).collect(),
            kind,
            key_ty,
            mode,
            output,
            handle_ty,
            entry_ty,
            function,
            handle,
            owner,
            names,
        }
    }

    /// The arguments a partial clear selects by (the receiver never is one).
    pub(crate) fn selectable(&self) -> impl Iterator<Item = &KeyPart> {
        self.parts.iter().filter(|p| p.name != "self")
    }

    /// The signature text the key fingerprint hashes.
    pub(crate) fn signature_text(&self) -> String {
        let inputs: Vec<String> =
            self.func.item.sig.inputs.iter().map(|i| i.to_token_stream().to_string()).collect();
        format!("({}) -> {}", inputs.join(", "), self.output.to_token_stream())
    }
}

fn key_parts(attr: &Attr, func: &Func) -> Vec<KeyPart> {
    let receiver_in_key = !matches!(attr.is_method.value, Some((true, _)));
    let receiver = func.receiver.as_ref().filter(|_| receiver_in_key).map(|r| KeyPart {
        name: "self".to_owned(),
        borrowed: r.owned.clone(),
        borrow: if r.by_ref { quote!(&*self) } else { quote!(&self) },
        by_ref: false,
        span: r.span,
    });
    let args = func.args.iter().map(|a| {
        let name = &a.name;
        KeyPart {
            name: name.unraw().to_string(),
            borrowed: a.borrowed.clone(),
            borrow: if a.by_ref { quote!(#name) } else { quote!(&#name) },
            by_ref: a.by_ref,
            span: a.borrowed.span(),
        }
    });
    receiver.into_iter().chain(args).collect()
}

/// `a::b::add` becomes `a::b::__memo_add_function as fn() -> ...`, spanned on the path.
fn dependency_fn(path: &Path) -> TokenStream {
    let mut path = path.clone();
    let span = path.span();
    if let Some(last) = path.segments.last_mut() {
        last.ident = function_fn(&last.ident, last.ident.span());
    }
    quote_spanned!(span=> #path as fn() -> &'static ::memo_alchemy::__private::CachedFunction)
}

/// FNV-1a, to tell apart the builders of same-named methods of different types.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}
