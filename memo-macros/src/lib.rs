//! The `#[cache]` attribute of [memo-alchemy](https://docs.rs/memo-alchemy) and its
//! aliases. Entry points only: parse, validate, expand.
#![warn(missing_docs, unreachable_pub)]

mod attr;
mod ctxt;
mod expand;
mod signature;
mod valid;

use proc_macro::TokenStream;
use quote::ToTokens;

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

fn entry(args: TokenStream, input: TokenStream, preset: Option<&'static str>) -> TokenStream {
    let item: syn::ItemFn = match syn::parse(input.clone()) {
        Ok(item) => item,
        Err(err) => {
            let mut out = proc_macro2::TokenStream::from(input);
            out.extend(err.to_compile_error());
            return out.into();
        }
    };
    let mut cx = ctxt::Ctxt::default();
    let attr = attr::Attr::parse(&mut cx, args.into(), preset);
    let func = signature::Func::analyze(&mut cx, item);
    valid::check(&mut cx, &attr, &func);
    match cx.check() {
        Ok(()) => expand::expand(&attr, &func).into(),
        // Emit the function as written next to the errors, so that one mistake does
        // not bring a cascade of "cannot find function" errors with it.
        Err(err) => {
            let mut out = func.item.to_token_stream();
            out.extend(err.to_compile_error());
            out.into()
        }
    }
}
