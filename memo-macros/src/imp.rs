//! `#[cache_impl]`: expands the `#[cache]` attributes inside an `impl` block, where
//! the block's type, generics and trait are known. A function attribute alone cannot
//! see them, nor put a type (the typed partial-clear builder) outside the block.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{Attribute, ImplItem, ItemFn, ItemImpl, Meta};

use crate::attr::ALIASES;
use crate::signature::{ImplBlock, Place};

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut block: ItemImpl = match syn::parse2(input.clone()) {
        Ok(block) => block,
        Err(err) => {
            let mut out = input;
            out.extend(err.to_compile_error());
            return out;
        }
    };
    let mut out = TokenStream::new();
    if !args.is_empty() {
        out.extend(syn::Error::new_spanned(&args, "#[cache_impl] takes no arguments").to_compile_error());
    }
    let place = ImplBlock {
        self_ty: (*block.self_ty).clone(),
        generics: block.generics.clone(),
        is_trait: block.trait_.is_some(),
    };
    let (mut associated, mut outside) = (TokenStream::new(), TokenStream::new());
    for impl_item in &mut block.items {
        let ImplItem::Fn(f) = impl_item else { continue };
        let Some((index, preset)) =
            f.attrs.iter().enumerate().find_map(|(i, a)| cache_attribute(a).map(|p| (i, p)))
        else {
            continue;
        };
        let attribute = f.attrs.remove(index);
        // The attribute is expanded here, never resolved: name its path once, so that
        // the import of `cache` does not look unused.
        let path = attribute.path();
        outside.extend(quote!(const _: () = { #[allow(unused_imports)] use #path as _; };));
        let args = match attribute.meta {
            Meta::Path(_) => TokenStream::new(),
            Meta::List(list) => list.tokens,
            Meta::NameValue(nv) => {
                out.extend(
                    syn::Error::new_spanned(nv, "write #[cache(key = value, ...)]").to_compile_error(),
                );
                continue;
            }
        };
        let item = ItemFn {
            attrs: f.attrs.clone(),
            vis: f.vis.clone(),
            sig: f.sig.clone(),
            block: Box::new(f.block.clone()),
        };
        *impl_item = ImplItem::Verbatim(match crate::run(args, item, preset, &Place::Impl(&place)) {
            Ok(expansion) => {
                associated.extend(expansion.associated);
                outside.extend(expansion.outside);
                expansion.item
            }
            Err(tokens) => tokens,
        });
    }
    if place.is_trait {
        // A trait impl holds the trait's items only: the rest goes to an inherent impl.
        if !associated.is_empty() {
            let (generics, _, where_clause) = block.generics.split_for_impl();
            let self_ty = &block.self_ty;
            out.extend(quote!(impl #generics #self_ty #where_clause { #associated }));
        }
    } else {
        block.items.push(ImplItem::Verbatim(associated));
    }
    let mut all = block.into_token_stream();
    all.extend(out);
    all.extend(outside);
    all
}

/// The alias preset of a `#[cache]`-family attribute, recognised by its last path
/// segment (`cache`, `memo_alchemy::json_cache`, ...).
fn cache_attribute(attribute: &Attribute) -> Option<Option<&'static str>> {
    let last = attribute.path().segments.last()?;
    ALIASES.iter().find(|(name, _)| last.ident == name).map(|(_, preset)| *preset)
}
