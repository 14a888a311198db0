//! The shape of the cached function: receiver, key arguments, async-ness and return
//! type, with errors for the shapes a cache key cannot hold.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::visit::{self, Visit};
use syn::{FnArg, GenericParam, Ident, ItemFn, Pat, ReturnType, Type, TypeReference};

use crate::ctxt::Ctxt;

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
    /// An associated function: it has a receiver or mentions `Self`.
    pub(crate) associated: bool,
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
}

impl Func {
    pub(crate) fn analyze(cx: &mut Ctxt, item: ItemFn) -> Func {
        let sig = &item.sig;
        let generic_types: Vec<Ident> = sig
            .generics
            .params
            .iter()
            .filter_map(|p| match p {
                GenericParam::Type(t) => Some(t.ident.clone()),
                GenericParam::Const(c) => Some(c.ident.clone()),
                GenericParam::Lifetime(_) => None,
            })
            .collect();
        let mut receiver = None;
        let mut args = Vec::new();
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(r) => {
                    let by_ref = r.reference.is_some();
                    let owned = if by_ref { syn::parse_quote!(Self) } else { (*r.ty).clone() };
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
                    if let Some(bad) = scan(&borrowed, &generic_types, false) {
                        cx.error(&bad.0, bad.1);
                        continue;
                    }
                    args.push(Arg { name, borrowed, by_ref });
                }
            }
        }
        let output = match &sig.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, ty) => (**ty).clone(),
        };
        if let Some(bad) = scan(&output, &generic_types, true) {
            cx.error(&bad.0, bad.1);
        }
        let fallible = match &output {
            Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
            _ => false,
        };
        let associated = receiver.is_some() || mentions_self(item.to_token_stream());
        Func { item, receiver, args, output, fallible, associated }
    }

    pub(crate) fn name(&self) -> &Ident {
        &self.item.sig.ident
    }

    pub(crate) fn is_async(&self) -> bool {
        self.item.sig.asyncness.is_some()
    }
}

fn mentions_self(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|t| match t {
        proc_macro2::TokenTree::Ident(i) => i == "Self",
        proc_macro2::TokenTree::Group(g) => mentions_self(g.stream()),
        _ => false,
    })
}

/// Walks a type for what a `'static` cache cannot hold.
struct Scan<'a> {
    generics: &'a [Ident],
    /// The first problem: the offending tokens and what to change.
    found: Option<(TokenStream, String)>,
    is_return: bool,
}

/// The first thing in `ty` that a `'static` cache cannot hold, with what to change.
fn scan(ty: &Type, generics: &[Ident], is_return: bool) -> Option<(TokenStream, String)> {
    let mut scan = Scan { generics, found: None, is_return };
    scan.visit_type(ty);
    scan.found
}

impl Scan<'_> {
    fn report(&mut self, tokens: impl ToTokens, message: String) {
        if self.found.is_none() {
            self.found = Some((tokens.to_token_stream(), message));
        }
    }
}

impl<'ast> Visit<'ast> for Scan<'_> {
    fn visit_type_impl_trait(&mut self, t: &'ast syn::TypeImplTrait) {
        let message = if self.is_return {
            "#[cache] cannot store an `impl Trait` return value: return a concrete type"
        } else {
            "#[cache] cannot key on an `impl Trait` argument: take a concrete type"
        };
        self.report(t, message.to_owned());
    }

    fn visit_type_path(&mut self, t: &'ast syn::TypePath) {
        if t.qself.is_none() {
            if let Some(g) = t.path.get_ident().filter(|i| self.generics.contains(i)) {
                self.report(
                    t,
                    format!("#[cache] cannot use the generic parameter `{g}` here: its cache is one static for all `{g}`; use a concrete type"),
                );
            }
        }
        visit::visit_type_path(self, t);
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
