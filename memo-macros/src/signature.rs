//! The shape of the cached function: receiver, key arguments, async-ness and return
//! type, with errors for the shapes a cache key cannot hold.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::visit::{self, Visit};
use syn::{FnArg, GenericParam, Generics, Ident, ItemFn, Pat, ReturnType, Type, TypeReference};

use crate::ctxt::Ctxt;

/// Where the function is: a module, or an `impl` block under `#[cache_impl]`.
pub(crate) enum Place<'a> {
    Free,
    Impl(&'a ImplBlock),
}

/// The `impl` block of an associated function, as `#[cache_impl]` saw it.
pub(crate) struct ImplBlock {
    /// The type the block implements (`W<T>`).
    pub(crate) self_ty: Type,
    /// The block's own generics (`impl<T: 'static>`).
    pub(crate) generics: Generics,
    /// `impl Trait for Type`: generated items go to an inherent `impl` beside it.
    pub(crate) is_trait: bool,
}

/// The function `#[cache]` is on.
pub(crate) struct Func {
    pub(crate) item: ItemFn,
    pub(crate) receiver: Option<Receiver>,
    pub(crate) args: Vec<Arg>,
    pub(crate) output: Type,
    /// The return type is written as a `Result` (`Result<T, E>`, `io::Result<T>`): the
    /// cache stores `T` alone. Any other return type is stored whole, and the generated
    /// code still finds out from the type itself whether it is a `Result` behind an
    /// alias (`type Res<T> = Result<T, E>`), whose `Err` is then never stored.
    pub(crate) fallible: bool,
}

/// The receiver of a method.
pub(crate) struct Receiver {
    /// `&self` or `&mut self` rather than `self` or `self: Box<Self>`.
    pub(crate) by_ref: bool,
    /// What the key holds: `Self`, or the receiver's type (`Box<Self>`).
    pub(crate) owned: Type,
    pub(crate) span: Span,
}

/// One argument that is part of the key.
pub(crate) struct Arg {
    pub(crate) name: Ident,
    /// `T` for `&T`, else the declared type: the key holds `<T as ToOwned>::Owned`.
    pub(crate) borrowed: Type,
    pub(crate) by_ref: bool,
    /// The `'static` of a `&'static T` argument: a background refresh, which passes a
    /// borrow of the key's owned copy, cannot call the function with it.
    pub(crate) static_ref: Option<Span>,
}

impl Func {
    pub(crate) fn analyze(cx: &mut Ctxt, item: ItemFn, place: &Place<'_>) -> Func {
        let sig = &item.sig;
        for param in &sig.generics.params {
            let ident = match param {
                GenericParam::Type(t) => &t.ident,
                GenericParam::Const(c) => &c.ident,
                GenericParam::Lifetime(_) => continue,
            };
            cx.error(
                ident,
                format!("#[cache] cannot cache a function generic over `{ident}`: its entries would be shared by every `{ident}`; use a concrete type (the generics of an `impl` block under #[cache_impl] are fine: each concrete type gets entries of its own)"),
            );
        }
        let mut receiver = None;
        let mut args = Vec::new();
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(r) => {
                    let by_ref = r.reference.is_some();
                    let owned = if by_ref {
                        let self_ty = Ident::new("Self", r.self_token.span);
                        syn::parse_quote!(#self_ty)
                    } else {
                        (*r.ty).clone()
                    };
                    receiver = Some(Receiver { by_ref, owned, span: r.self_token.span });
                }
                FnArg::Typed(pt) => {
                    let Pat::Ident(pi) = &*pt.pat else {
                        cx.error(
                            &pt.pat,
                            "#[cache] needs a plain name for each argument: bind the pattern inside the body",
                        );
                        continue;
                    };
                    let name = pi.ident.clone();
                    let static_ref = match &*pt.ty {
                        Type::Reference(TypeReference { lifetime: Some(l), .. }) if l.ident == "static" => {
                            Some(l.span())
                        }
                        _ => None,
                    };
                    let (borrowed, by_ref) = match &*pt.ty {
                        Type::Reference(TypeReference { mutability: Some(_), .. }) => {
                            cx.error(
                                &pt.ty,
                                "a `&mut` argument cannot be part of a cache key: take it by value or by `&`",
                            );
                            continue;
                        }
                        Type::Reference(r) => ((*r.elem).clone(), true),
                        other => (other.clone(), false),
                    };
                    if let Some(bad) = scan(&borrowed, false) {
                        cx.error(&bad.0, bad.1);
                        continue;
                    }
                    args.push(Arg { name, borrowed, by_ref, static_ref });
                }
            }
        }
        let output = match &sig.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, ty) => (**ty).clone(),
        };
        if let Some(bad) = scan(&output, true) {
            cx.error(&bad.0, bad.1);
        }
        let fallible = match &output {
            Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
            _ => false,
        };
        if matches!(place, Place::Free) {
            let method = receiver.as_ref().map(|r| r.span).or_else(|| self_token(item.to_token_stream()));
            if let Some(span) = method {
                cx.syn_error(syn::Error::new(
                    span,
                    "#[cache] on a method or an associated function needs #[memo_alchemy::cache_impl] on its `impl` block: add `#[cache_impl]` above `impl`",
                ));
            }
        }
        Func { item, receiver, args, output, fallible }
    }

    pub(crate) fn name(&self) -> &Ident {
        &self.item.sig.ident
    }

    pub(crate) fn is_async(&self) -> bool {
        self.item.sig.asyncness.is_some()
    }
}

/// The span of the first `Self` in `tokens`.
fn self_token(tokens: TokenStream) -> Option<Span> {
    tokens.into_iter().find_map(|t| match t {
        proc_macro2::TokenTree::Ident(i) if i == "Self" => Some(i.span()),
        proc_macro2::TokenTree::Group(g) => self_token(g.stream()),
        _ => None,
    })
}

/// Walks a type for what a `'static` cache cannot hold.
struct Scan {
    /// The first problem: the offending tokens and what to change.
    found: Option<(TokenStream, String)>,
    is_return: bool,
}

/// The first thing in `ty` that a `'static` cache cannot hold, with what to change.
fn scan(ty: &Type, is_return: bool) -> Option<(TokenStream, String)> {
    let mut scan = Scan { found: None, is_return };
    scan.visit_type(ty);
    scan.found
}

impl Scan {
    fn report(&mut self, tokens: impl ToTokens, message: String) {
        if self.found.is_none() {
            self.found = Some((tokens.to_token_stream(), message));
        }
    }
}

impl<'ast> Visit<'ast> for Scan {
    fn visit_type_impl_trait(&mut self, t: &'ast syn::TypeImplTrait) {
        let message = if self.is_return {
            "#[cache] cannot store an `impl Trait` return value: return a concrete type"
        } else {
            "#[cache] cannot key on an `impl Trait` argument: take a concrete type"
        };
        self.report(t, message.to_owned());
    }

    fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
        if l.ident != "static" {
            let what = if self.is_return { "the cached value" } else { "a cache key" };
            self.report(
                l,
                format!("{what} must own its data (`'static`): use an owned type instead of a borrow"),
            );
        }
    }

    fn visit_type_reference(&mut self, r: &'ast TypeReference) {
        let is_static = r.lifetime.as_ref().is_some_and(|l| l.ident == "static");
        if !is_static {
            let what = if self.is_return { "the cached value" } else { "a cache key" };
            self.report(
                r,
                format!("{what} must own its data (`'static`): use an owned type, e.g. `String` for `&str`"),
            );
        }
        visit::visit_type_reference(self, r);
    }
}
