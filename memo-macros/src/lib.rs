//! The `#[cache]` attribute of [memo-alchemy](https://docs.rs/memo-alchemy), its
//! aliases, and `#[cache_impl]` for `impl` blocks. Entry points only: parse,
//! validate, expand.
#![warn(missing_docs, unreachable_pub)]

mod attr;
mod ctxt;
mod expand;
mod imp;
mod model;
mod signature;
mod valid;

use proc_macro::TokenStream;
use quote::ToTokens;

use crate::expand::Expansion;
use crate::signature::Place;

/// Memoizes a function. See the `memo-alchemy` crate for the parameters.
#[proc_macro_attribute]
pub fn cache(args: TokenStream, input: TokenStream) -> TokenStream {
    entry(args, input, None)
}

/// `#[cache(backend = "memory", ...)]`.
#[proc_macro_attribute]
pub fn memory_cache(args: TokenStream, input: TokenStream) -> TokenStream {
    entry(args, input, Some("memory"))
}

/// `#[cache(backend = "json", ...)]`.
#[proc_macro_attribute]
pub fn json_cache(args: TokenStream, input: TokenStream) -> TokenStream {
    entry(args, input, Some("json"))
}

/// `#[cache(backend = "pickle", ...)]`.
#[proc_macro_attribute]
pub fn pickle_cache(args: TokenStream, input: TokenStream) -> TokenStream {
    entry(args, input, Some("pickle"))
}

/// `#[cache(backend = "distributed_memory", ...)]`.
#[proc_macro_attribute]
pub fn distributed_memory_cache(args: TokenStream, input: TokenStream) -> TokenStream {
    entry(args, input, Some("distributed_memory"))
}

/// `#[cache(backend = "postgres", ...)]` (feature `postgres` of memo-alchemy).
#[proc_macro_attribute]
pub fn postgres_cache(args: TokenStream, input: TokenStream) -> TokenStream {
    entry(args, input, Some("postgres"))
}

/// Expands the `#[cache]` attributes of the methods and associated functions of an
/// `impl` block (inherent or trait). See the `memo-alchemy` crate.
#[proc_macro_attribute]
pub fn cache_impl(args: TokenStream, input: TokenStream) -> TokenStream {
    imp::expand(args.into(), input.into()).into()
}

fn entry(args: TokenStream, input: TokenStream, preset: Option<&'static str>) -> TokenStream {
    let item: syn::ItemFn = match syn::parse(input.clone()) {
        Ok(item) => item,
        Err(err) => {
            let mut out = proc_macro2::TokenStream::from(input);
            out.extend(err.to_compile_error());
            return out.into();
        }
    };
    match run(args.into(), item, preset, &Place::Free) {
        Ok(expansion) => expansion.into_tokens().into(),
        Err(tokens) => tokens.into(),
    }
}

/// Parses, checks and expands one cached function; on error, the function as written
/// next to the errors, so that one mistake does not bring a cascade of "cannot find
/// function" errors with it.
fn run(
    args: proc_macro2::TokenStream,
    item: syn::ItemFn,
    preset: Option<&'static str>,
    place: &Place<'_>,
) -> Result<Expansion, proc_macro2::TokenStream> {
    let mut cx = ctxt::Ctxt::default();
    let attr = attr::Attr::parse(&mut cx, args, preset);
    let func = signature::Func::analyze(&mut cx, item, place);
    valid::check(&mut cx, &attr, &func);
    match cx.check() {
        Ok(()) => Ok(expand::expand(&model::Model::new(&attr, &func, place))),
        Err(err) => {
            let mut out = func.item.to_token_stream();
            out.extend(err.to_compile_error());
            Err(out)
        }
    }
}
