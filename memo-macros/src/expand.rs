//! Code generation only: every decision was made in `attr`, `signature` and `valid`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Ident, Path, Type};

/// A local of the expansion: mixed-site hygiene keeps it apart from the user's names.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

use crate::attr::Attr;
use crate::signature::{Func, ImplBlock, Place};

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

/// One element of the key: the receiver or a named argument.
struct KeyPart {
    /// The name partial clears use (`self` for a receiver).
    name: String,
    /// `T` such that the key stores `<T as ToOwned>::Owned`.
    borrowed: Type,
    /// The expression borrowing it as `&T`.
    borrow: TokenStream,
    /// Passed by reference (`&str`): the key holds `T::Owned`, else `T` itself.
    by_ref: bool,
    span: Span,
}

/// The expanded items for `func` under `attr`, at `place`.
pub(crate) fn expand(attr: &Attr, func: &Func, place: &Place<'_>) -> Expansion {
    let parts = key_parts(attr, func);
    let g = Generated::new(attr, func, &parts);
    let registration = g.registration(attr, func, &parts);
    let accessor = g.accessor(attr, func);
    let bounds = g.bounds(attr, func, &parts);
    let item = g.wrapped(func, &parts);
    match place {
        Place::Free => {
            let api = g.free_api(attr, func, &parts);
            let item = quote!(#bounds #item);
            Expansion { item, associated: quote!(#registration #accessor #api), outside: TokenStream::new() }
        }
        Place::Impl(block) => {
            let builder = attr.strict().then(|| g.builder(func, &parts, Some(block)));
            let api = g.associated_api(func, builder.as_ref());
            let outside = builder.map(|b| b.definition).unwrap_or_default();
            Expansion { item, associated: quote!(#bounds #registration #accessor #api), outside }
        }
    }
}

/// A typed partial-clear builder: its definition, and its type as the API names it.
struct Builder {
    definition: TokenStream,
    ty: TokenStream,
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

/// Names and types shared by every generated item.
struct Generated {
    vis: syn::Visibility,
    key_ty: TokenStream,
    mode: TokenStream,
    output: Type,
    handle_ty: TokenStream,
    function_fn: Ident,
    /// Path of the typed handle accessor from the function's own scope.
    handle_fn: TokenStream,
    is_async: bool,
}

impl Generated {
    fn new(attr: &Attr, func: &Func, parts: &[KeyPart]) -> Generated {
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
        let name = func.name();
        let function_fn = format_ident!("__memo_{}_function", name.unraw());
        let handle_fn = if func.associated {
            let f = format_ident!("{}_cache", name.unraw());
            quote!(Self::#f)
        } else {
            let f = format_ident!("__memo_{}_cache", name.unraw());
            quote!(#f)
        };
        Generated {
            vis: func.item.vis.clone(),
            key_ty,
            mode,
            output,
            handle_ty,
            function_fn,
            handle_fn,
            is_async: func.is_async(),
        }
    }

    fn function_path(&self, func: &Func) -> TokenStream {
        let f = &self.function_fn;
        if func.associated {
            quote!(Self::#f)
        } else {
            quote!(#f)
        }
    }

    /// The function's static registration: its `CachedFunction`, submitted to the registry.
    fn registration(&self, attr: &Attr, func: &Func, parts: &[KeyPart]) -> TokenStream {
        let vis = &self.vis;
        let function_fn = &self.function_fn;
        let name = func.name().unraw().to_string();
        let backend = attr.backend().kind();
        let strict = attr.strict();
        let is_async = self.is_async;
        let arg_names = parts.iter().map(|p| &p.name);
        let arg_types = parts.iter().map(|p| p.borrowed.to_token_stream().to_string());
        let signature = signature_text(func);
        let limit = setting(attr.limit.value, quote!(Limit));
        let expire = setting(attr.expire.value, quote!(Expire));
        let prefix = match &attr.cache_key_prefix.value {
            Some(s) => quote!(::std::option::Option::Some(#s)),
            None => quote!(::std::option::Option::None),
        };
        let deps = attr.dependency.value.iter().flatten().map(dependency_fn);
        quote! {
            #[doc(hidden)]
            #[allow(non_snake_case)]
            #vis fn #function_fn() -> &'static ::memo_alchemy::__private::CachedFunction {
                struct __MemoAnchor;
                static __MEMO_FUNCTION: ::memo_alchemy::__private::CachedFunction =
                    ::memo_alchemy::__private::CachedFunction::__new(::memo_alchemy::__private::Decl {
                        name: #name,
                        anchor: ::std::any::type_name::<__MemoAnchor>,
                        backend: &#backend,
                        strict: #strict,
                        is_async: #is_async,
                        arg_names: &[#(#arg_names),*],
                        arg_types: &[#(#arg_types),*],
                        signature: #signature,
                        limit: #limit,
                        expire: #expire,
                        key_prefix: #prefix,
                        dependencies: &[#(#deps),*],
                    });
                ::memo_alchemy::__private::inventory::submit! {
                    ::memo_alchemy::__private::Registration(&__MEMO_FUNCTION)
                }
                &__MEMO_FUNCTION
            }
        }
    }

    /// The typed handle accessor, with the bound checks spanned on the user's types.
    /// A function whose `where` clause states what the key and the value need, each
    /// bound spanned on the user's argument or return type. Where clauses are checked
    /// before any body, so a missing `Hash` is the first error, on the argument.
    fn bounds(&self, attr: &Attr, func: &Func, parts: &[KeyPart]) -> TokenStream {
        // Every token of a bound carries the user's span: rustc reports a bound where
        // its first token is. A by-value type is bounded itself, not through
        // `ToOwned::Owned`, whose projection would be reported elsewhere.
        let key_bounds = parts.iter().map(|p| {
            let b = &p.borrowed;
            let owned = if p.by_ref {
                quote_spanned!(p.span=> <#b as ::std::borrow::ToOwned>::Owned)
            } else {
                quote!(#b)
            };
            let serialize = attr
                .keys_serialized()
                .then(|| quote_spanned!(p.span=> + ::memo_alchemy::__private::Serialize));
            quote_spanned!(p.span=>
                #owned: ::std::hash::Hash + ::std::cmp::Eq + ::std::clone::Clone
                    + ::std::marker::Send + ::std::marker::Sync + 'static #serialize,
            )
        });
        let output = &self.output;
        let span = output.span();
        let value = if func.fallible {
            quote_spanned!(span=> <::memo_alchemy::__private::Fallible as ::memo_alchemy::__private::Mode<#output>>::Value)
        } else {
            quote!(#output)
        };
        let serialized = attr.values_serialized().then(|| {
            quote_spanned!(span=> + ::memo_alchemy::__private::Serialize + ::memo_alchemy::__private::DeserializeOwned)
        });
        let value_bound = quote_spanned!(span=>
            #value: ::std::clone::Clone + ::std::marker::Send + ::std::marker::Sync + 'static #serialized,
        );
        let name = format_ident!("__memo_{}_bounds", func.name().unraw());
        quote! {
            #[doc(hidden)]
            #[allow(non_snake_case, dead_code, clippy::extra_unused_type_parameters)]
            fn #name() where #(#key_bounds)* #value_bound {}
        }
    }

    /// The typed handle accessor.
    fn accessor(&self, attr: &Attr, func: &Func) -> TokenStream {
        let strict = attr.strict();
        let (key_ty, handle_ty, vis) = (&self.key_ty, &self.handle_ty, &self.vis);
        let strict_keys = if strict {
            quote!(::std::option::Option::Some(::memo_alchemy::__private::StrictKeys::<#key_ty>::new()))
        } else {
            quote!(::std::option::Option::None)
        };
        let function = self.function_path(func);
        let f = local("__memo_function");
        let owner = if func.associated {
            quote!(::memo_alchemy::__private::owner::<Self>())
        } else {
            quote!(::memo_alchemy::__private::free_owner())
        };
        let open = quote! {
            let #f = #function();
            #f.handle(#owner, || <#handle_ty>::open(#f, #strict_keys))
        };
        let raw = func.name().unraw();
        if func.associated {
            // A method's accessor cannot hold a static: its type may mention `Self`, and
            // each concrete `Self` of a generic `impl` has a handle of its own.
            let name = format_ident!("{raw}_cache");
            quote! {
                /// This method's cache handle.
                #vis fn #name() -> &'static #handle_ty {
                    #open
                }
            }
        } else {
            // A free function's accessor keeps the typed handle in a static of its own,
            // so a call costs one load rather than the registry's type-erased lookup.
            let name = format_ident!("__memo_{raw}_cache");
            let alias = format_ident!("__memo_{raw}_Cache");
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

    /// The user's function, its body wrapped in place.
    fn wrapped(&self, func: &Func, parts: &[KeyPart]) -> TokenStream {
        let item = &func.item;
        let (attrs, vis, sig, block) = (&item.attrs, &item.vis, &item.sig, &item.block);
        let (handle_fn, mode, output) = (&self.handle_fn, &self.mode, &self.output);
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
        let borrows = parts.iter().map(|p| &p.borrow);
        let key = quote!((#(#borrows,)*));
        let hit = quote! {
            ::memo_alchemy::__private::Lookup::Hit(#value) => {
                return <#mode as ::memo_alchemy::__private::Mode<#output>>::join(#value);
            }
            ::memo_alchemy::__private::Lookup::Miss(#miss) => #miss,
        };
        let body = if self.is_async {
            quote! {
                let #cache = #handle_fn();
                let #miss = match #cache.lookup_async(&#key).await { #hit };
                #probe
                #cache
                    .compute_async::<#output, #mode>(#miss, #discard, async move {
                        #[allow(unreachable_code, clippy::diverging_sub_expression)]
                        let #ret: #output = #block;
                        #[allow(unreachable_code)]
                        #ret
                    })
                    .await
            }
        } else {
            quote! {
                let #cache = #handle_fn();
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

    /// `Type::m_cache_clear` and friends, for associated functions.
    fn associated_api(&self, func: &Func, builder: Option<&Builder>) -> TokenStream {
        let name = func.name().unraw();
        let vis = &self.vis;
        let function = self.function_path(func);
        let (clear, clear_by, stats) = (
            format_ident!("{name}_cache_clear"),
            format_ident!("{name}_cache_clear_by"),
            format_ident!("{name}_cache_stats"),
        );
        let clear_item = if self.is_async {
            quote! {
                /// Clears this method's cache, then its dependents'; returns the entries removed.
                #vis async fn #clear() -> ::std::result::Result<usize, ::memo_alchemy::__private::Error> {
                    #function().clear_async().await
                }
            }
        } else {
            quote! {
                /// Clears this method's cache, then its dependents'; returns the entries removed.
                #vis fn #clear() -> ::std::result::Result<usize, ::memo_alchemy::__private::Error> {
                    #function().clear()
                }
            }
        };
        let clear_by_item = builder.map(|Builder { ty, .. }| {
            quote! {
                /// Selects entries by argument value, then `.clear()` removes them.
                #vis fn #clear_by() -> #ty {
                    <#ty>::__memo_new()
                }
            }
        });
        quote! {
            #clear_item
            #clear_by_item
            /// This method's hits, misses, evictions, errors and length.
            #vis fn #stats() -> ::memo_alchemy::__private::CacheStats {
                #function().stats()
            }
        }
    }

    /// The module `f` with `cache()`, `cache_clear()`, ... for a free function.
    fn free_api(&self, attr: &Attr, func: &Func, parts: &[KeyPart]) -> TokenStream {
        let name = func.name();
        let raw = name.unraw();
        let vis = &self.vis;
        let function_fn = &self.function_fn;
        let handle_fn = &self.handle_fn;
        let alias = format_ident!("__memo_{raw}_Cache");
        let (clear_sig, clear_call) = if self.is_async {
            (quote!(pub async fn cache_clear()), quote!(super::#function_fn().clear_async().await))
        } else {
            (quote!(pub fn cache_clear()), quote!(super::#function_fn().clear()))
        };
        let builder = attr.strict().then(|| self.builder(func, parts, None));
        let builder_fn = builder.as_ref().map(|Builder { ty, .. }| {
            quote! {
                /// Selects entries by argument value, then `.clear()` removes them.
                pub fn cache_clear_by() -> super::#ty {
                    super::#ty::__memo_new()
                }
            }
        });
        let builder = builder.map(|b| b.definition);
        let doc = format!("Cache controls of [`{raw}()`](fn@{raw}).");
        quote! {
            #builder
            #[doc = #doc]
            #vis mod #name {
                /// The cache handle.
                pub fn cache() -> &'static super::#alias {
                    super::#handle_fn()
                }
                /// Clears this function's cache, then its dependents'; returns the entries removed.
                #clear_sig -> ::std::result::Result<usize, ::memo_alchemy::__private::Error> {
                    #clear_call
                }
                #builder_fn
                /// Hits, misses, evictions, errors and length.
                pub fn cache_stats() -> ::memo_alchemy::__private::CacheStats {
                    super::#function_fn().stats()
                }
            }
        }
    }

    /// The typed partial-clear builder of a strict function: one setter per argument,
    /// taking the argument's own owned type. For a method it is generic over the
    /// `impl` block's generics, and `Self` in argument types is the block's type.
    fn builder(&self, func: &Func, parts: &[KeyPart], block: Option<&ImplBlock>) -> Builder {
        let raw = func.name().unraw();
        let vis = &self.vis;
        let function_fn = &self.function_fn;
        let (name, function, generics) = match block {
            None => (format_ident!("__memo_{raw}_ClearBy"), quote!(#function_fn), syn::Generics::default()),
            Some(block) => {
                let self_ty = &block.self_ty;
                let text = self_ty.to_token_stream().to_string();
                let owner: String = text.chars().filter(char::is_ascii_alphanumeric).take(24).collect();
                let name = format_ident!("__memo_{owner}_{raw}_ClearBy_{:08x}", fnv(&text) as u32);
                (name, quote!(<#self_ty>::#function_fn), block.generics.clone())
            }
        };
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
        let (f, selector, value) =
            (local("__memo_function"), local("__memo_selector"), local("__memo_value"));
        let args: Vec<_> = parts.iter().filter(|p| p.name != "self").collect();
        let owned: Vec<TokenStream> = args
            .iter()
            .map(|p| {
                let b = &p.borrowed;
                let owned = quote!(<#b as ::std::borrow::ToOwned>::Owned);
                match block {
                    Some(block) => replace_self(owned, &block.self_ty),
                    None => owned,
                }
            })
            .collect();
        let idents: Vec<Ident> = args.iter().map(|p| format_ident!("{}", p.name)).collect();
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
        let (clear_sig, run) = if self.is_async {
            (quote!(pub async fn clear(self)), quote!(#f.clear_by_async(&#selector).await))
        } else {
            (quote!(pub fn clear(self)), quote!(#f.clear_by(&#selector)))
        };
        let definition = quote! {
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
        };
        Builder { definition, ty: quote!(#name #ty_generics) }
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

/// FNV-1a, to tell apart the builders of same-named methods of different types.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
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

/// `a::b::add` becomes `a::b::__memo_add_function as fn() -> ...`, spanned on the path.
fn dependency_fn(path: &Path) -> TokenStream {
    let mut path = path.clone();
    let span = path.span();
    if let Some(last) = path.segments.last_mut() {
        last.ident = Ident::new(&format!("__memo_{}_function", last.ident.unraw()), last.ident.span());
    }
    quote_spanned!(span=> #path as fn() -> &'static ::memo_alchemy::__private::CachedFunction)
}

fn signature_text(func: &Func) -> String {
    let inputs = func.item.sig.inputs.iter().map(|i| i.to_token_stream().to_string()).collect::<Vec<_>>();
    format!("({}) -> {}", inputs.join(", "), func.output.to_token_stream())
}
