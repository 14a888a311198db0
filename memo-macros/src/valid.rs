//! Cross-checks between the attribute and the function.

use crate::attr::Attr;
use crate::ctxt::Ctxt;
use crate::signature::Func;

pub(crate) fn check(cx: &mut Ctxt, attr: &Attr, func: &Func) {
    if let Some((true, span)) = attr.is_method.value {
        if func.receiver.is_none() {
            cx.syn_error(syn::Error::new(
                span,
                "`is_method = true` leaves the receiver out of the key, but this function has no `self`: remove it",
            ));
        }
    }
    if let (Some((_, span)), Some(expire)) = (attr.expire_jitter.value, attr.expire.value) {
        if expire <= 0 {
            cx.syn_error(syn::Error::new(
                span,
                format!("`expire_jitter` spreads lifetimes, but with `expire = {expire}` entries have none: remove it"),
            ));
        }
    }
    for (name, setting) in [("stale", &attr.stale), ("refresh", &attr.refresh)] {
        if let (Some((_, span)), Some(expire)) = (setting.value, attr.expire.value) {
            if expire < 0 {
                cx.syn_error(syn::Error::new(
                    span,
                    format!("`{name}` works on entries that expire, but with `expire = {expire}` they never do: set an `expire` or remove `{name}`"),
                ));
            }
        }
    }
    if let (Some((refresh, span)), Some(expire)) = (attr.refresh.value, attr.expire.value) {
        if expire > 0 && i64::from(refresh) >= expire {
            cx.syn_error(syn::Error::new(
                span,
                format!("`refresh = {refresh}` must be shorter than `expire = {expire}`: an entry is refreshed before it expires"),
            ));
        }
    }
    if let (Some((_, span)), Some((true, _))) = (attr.refresh.value, attr.is_method.value) {
        cx.syn_error(syn::Error::new(
            span,
            "`refresh` recomputes in the background, on the receiver kept in the key; with `is_method = true` there is none: remove one of them",
        ));
    }
    let refresh_span = attr.refresh.value.map(|(_, span)| span);
    if let Some(refresh) = refresh_span {
        for arg in &func.args {
            if let Some(span) = arg.static_ref {
                let mut error = syn::Error::new(
                    span,
                    format!("`refresh` recomputes from the key's own copy of `{}`, which is not `'static`: take `&` without `'static`", arg.name),
                );
                error.combine(syn::Error::new(refresh, "`refresh` is set here"));
                cx.syn_error(error);
            }
        }
    }
    // A backend of your own has no lease and no tier: it would ignore them.
    let shared = match attr.backend() {
        crate::attr::Backend::Named(b) => ["json", "pickle", "postgres"].contains(&b.name),
        crate::attr::Backend::Custom(_) => false,
    };
    let backend_name = match attr.backend() {
        crate::attr::Backend::Named(b) => format!("the `{}` backend", b.name),
        crate::attr::Backend::Custom(_) => "a backend of your own".to_owned(),
    };
    if let (Some((true, span)), false) = (attr.single_flight.value, shared) {
        cx.syn_error(syn::Error::new(
            span,
            format!("`single_flight = \"global\"` coordinates processes through a shared store, and {backend_name} is none: use json, pickle or postgres"),
        ));
    }
    if let (Some((_, span)), false) = (attr.local.value, shared) {
        cx.syn_error(syn::Error::new(
            span,
            format!("`local` puts a memory tier in front of a shared store, and {backend_name} is none: use json, pickle or postgres"),
        ));
    }
    if let (Some((_, span)), false) = (attr.lease.value, matches!(attr.single_flight.value, Some((true, _))))
    {
        cx.syn_error(syn::Error::new(
            span,
            "`lease` is how long a process may hold a key under `single_flight = \"global\"`: add that, or remove `lease`",
        ));
    }
    for tag in attr.tags.value.iter().flatten() {
        match crate::attr::template(&tag.value()) {
            Ok(pieces) => {
                for piece in pieces {
                    if let crate::attr::Piece::Hole(name) = piece {
                        if !func.args.iter().any(|a| syn::ext::IdentExt::unraw(&a.name) == name) {
                            let names: Vec<String> = func
                                .args
                                .iter()
                                .map(|a| syn::ext::IdentExt::unraw(&a.name).to_string())
                                .collect();
                            let known = if names.is_empty() {
                                "this function has no arguments".to_owned()
                            } else {
                                format!("the arguments are {}", names.join(", "))
                            };
                            cx.error(
                                tag,
                                format!("`{{{name}}}` names no argument of this function: {known}"),
                            );
                        }
                    }
                }
            }
            Err(message) => cx.error(tag, message),
        }
    }
    if attr.strict.value == Some(true) {
        for arg in &func.args {
            if arg.name == "clear" {
                cx.error(&arg.name, "with `strict = true`, an argument cannot be named `clear`: `cache_clear_by().clear()` finishes the builder; rename it");
            }
        }
    }
}
