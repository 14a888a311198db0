//! `#[cache(...)]` parsed into one typed struct. Every key goes through
//! [`Setting::set`], which reports a duplicate on the second key.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::quote;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, LitStr, Path, PathSegment, Token, UnOp};

use crate::ctxt::Ctxt;

const LIMIT: &str = "limit";
const EXPIRE: &str = "expire";
const IS_METHOD: &str = "is_method";
const STRICT: &str = "strict";
const BACKEND: &str = "backend";
const DEPENDENCY: &str = "dependency";
const CACHE_KEY_PREFIX: &str = "cache_key_prefix";
const VERSION: &str = "version";
const EXPIRE_JITTER: &str = "expire_jitter";
const TAGS: &str = "tags";
const STALE: &str = "stale";
const REFRESH: &str = "refresh";
const SINGLE_FLIGHT: &str = "single_flight";
const LEASE: &str = "lease";
const LOCAL: &str = "local";
const KEYS: &str = "limit, expire, expire_jitter, is_method, strict, backend, dependency, cache_key_prefix, version, tags, stale, refresh, single_flight, lease, local";
const ALL_KEYS: [&str; 15] = [
    LIMIT,
    EXPIRE,
    EXPIRE_JITTER,
    IS_METHOD,
    STRICT,
    BACKEND,
    DEPENDENCY,
    CACHE_KEY_PREFIX,
    VERSION,
    TAGS,
    STALE,
    REFRESH,
    SINGLE_FLIGHT,
    LEASE,
    LOCAL,
];
/// The longest `lease`, in seconds: an hour.
const MAX_LEASE: i64 = 3_600;
/// The lease of `single_flight = "global"` without `lease`, in seconds.
pub(crate) const DEFAULT_LEASE: u32 = 10;
/// The longest `stale` or `refresh`, in seconds: a year.
const MAX_SECONDS: i64 = 31_536_000;

/// A backend known by name: the one place where a name maps to a type. A new backend
/// is one line here and one file in memo-backends.
pub(crate) struct Named {
    pub(crate) name: &'static str,
    /// Its kind, a unit struct under `memo_alchemy::__private`.
    pub(crate) kind: &'static str,
    /// Whether its store needs `Serialize` keys; checked on each argument, so that the
    /// error is on the argument rather than on the attribute.
    pub(crate) serializes_keys: bool,
    /// Whether its store needs `Serialize + DeserializeOwned` values.
    pub(crate) serializes_values: bool,
}

/// The backends known by name; the first is the default.
pub(crate) const BACKENDS: [Named; 5] = [
    Named { name: "memory", kind: "MemoryBackend", serializes_keys: false, serializes_values: false },
    Named {
        name: "distributed_memory",
        kind: "DistributedMemoryBackend",
        serializes_keys: true,
        serializes_values: false,
    },
    Named { name: "json", kind: "JsonBackend", serializes_keys: true, serializes_values: true },
    Named { name: "pickle", kind: "PickleBackend", serializes_keys: true, serializes_values: true },
    Named { name: "postgres", kind: "PostgresBackend", serializes_keys: true, serializes_values: true },
];

/// The attributes of the `#[cache]` family, with the backend each alias fixes.
pub(crate) const ALIASES: [(&str, Option<&str>); 6] = [
    ("cache", None),
    ("memory_cache", Some("memory")),
    ("json_cache", Some("json")),
    ("pickle_cache", Some("pickle")),
    ("distributed_memory_cache", Some("distributed_memory")),
    ("postgres_cache", Some("postgres")),
];

/// One attribute key's value, with the span of its key for "duplicate" errors.
pub(crate) struct Setting<T> {
    name: &'static str,
    pub(crate) value: Option<T>,
}

impl<T> Setting<T> {
    fn new(name: &'static str) -> Self {
        Setting { name, value: None }
    }

    fn set(&mut self, cx: &mut Ctxt, key: &Path, value: T) {
        if self.value.is_some() {
            cx.error(key, format!("duplicate `{}`: set it once", self.name));
        } else {
            self.value = Some(value);
        }
    }
}

/// Where values live.
pub(crate) enum Backend {
    /// One of [`BACKENDS`].
    Named(&'static Named),
    /// The path of a kind: a unit struct implementing `memo_alchemy::BackendKind` and
    /// `StoreFor<K, V>`, treated exactly as a built-in one.
    Custom(Path),
}

impl Backend {
    /// The kind's path, from the generated code.
    pub(crate) fn kind(&self) -> TokenStream {
        match self {
            Backend::Named(named) => {
                let kind = Ident::new(named.kind, Span::call_site());
                quote!(::memo_alchemy::__private::#kind)
            }
            Backend::Custom(path) => quote!(#path),
        }
    }

    fn named(name: &str) -> Option<Backend> {
        BACKENDS.iter().find(|b| b.name == name).map(Backend::Named)
    }
}

/// The parsed attribute.
pub(crate) struct Attr {
    pub(crate) limit: Setting<i64>,
    pub(crate) expire: Setting<i64>,
    pub(crate) is_method: Setting<(bool, Span)>,
    pub(crate) strict: Setting<bool>,
    pub(crate) backend: Setting<Backend>,
    pub(crate) dependency: Setting<Vec<Path>>,
    pub(crate) cache_key_prefix: Setting<LitStr>,
    pub(crate) version: Setting<u32>,
    /// The percentage, and its token for errors that involve another key.
    pub(crate) expire_jitter: Setting<(u8, Span)>,
    /// Tag templates; `valid` checks that each `{name}` names an argument.
    pub(crate) tags: Setting<Vec<LitStr>>,
    /// Seconds, and the value's span for errors that involve another key.
    pub(crate) stale: Setting<(u32, Span)>,
    /// Seconds (0 for `"early"`), and the value's span.
    pub(crate) refresh: Setting<(u32, Span)>,
    /// `refresh = "early"`.
    pub(crate) early_refresh: bool,
    /// `single_flight = "global"` (true) or `"local"`, and the value's span.
    pub(crate) single_flight: Setting<(bool, Span)>,
    /// Seconds, and the value's span.
    pub(crate) lease: Setting<(u32, Span)>,
    /// Entries, and the value's span.
    pub(crate) local: Setting<(u32, Span)>,
}

impl Attr {
    /// `strict = true`.
    pub(crate) fn strict(&self) -> bool {
        self.strict.value.unwrap_or(false)
    }

    /// The backend: the one set, or the default.
    pub(crate) fn backend(&self) -> &Backend {
        const DEFAULT: Backend = Backend::Named(&BACKENDS[0]);
        self.backend.value.as_ref().unwrap_or(&DEFAULT)
    }

    /// Whether keys must be `Serialize`: strict keys, or a backend that needs it.
    pub(crate) fn keys_serialized(&self) -> bool {
        self.strict() || matches!(self.backend(), Backend::Named(b) if b.serializes_keys)
    }

    /// Whether values must be `Serialize + DeserializeOwned`.
    pub(crate) fn values_serialized(&self) -> bool {
        matches!(self.backend(), Backend::Named(b) if b.serializes_values)
    }

    /// Parses `args`; `preset` is the backend an alias such as `#[json_cache]` fixes.
    pub(crate) fn parse(cx: &mut Ctxt, args: TokenStream, preset: Option<&'static str>) -> Attr {
        let mut attr = Attr {
            limit: Setting::new(LIMIT),
            expire: Setting::new(EXPIRE),
            is_method: Setting::new(IS_METHOD),
            strict: Setting::new(STRICT),
            backend: Setting::new(BACKEND),
            dependency: Setting::new(DEPENDENCY),
            cache_key_prefix: Setting::new(CACHE_KEY_PREFIX),
            version: Setting::new(VERSION),
            expire_jitter: Setting::new(EXPIRE_JITTER),
            tags: Setting::new(TAGS),
            stale: Setting::new(STALE),
            refresh: Setting::new(REFRESH),
            early_refresh: false,
            single_flight: Setting::new(SINGLE_FLIGHT),
            lease: Setting::new(LEASE),
            local: Setting::new(LOCAL),
        };
        let entries = match Punctuated::<Entry, Token![,]>::parse_terminated.parse2(args) {
            Ok(entries) => entries,
            Err(err) => {
                cx.syn_error(err);
                return attr;
            }
        };
        for entry in &entries {
            let (key, value) = match entry {
                Entry::Value(key, value) => (key, value),
                Entry::Bare(key, rest) => {
                    cx.error(quote!(#key #rest), bare_key_message(key));
                    continue;
                }
            };
            let name = key_name(key);
            let value = ungroup(value);
            match name.as_str() {
                LIMIT => {
                    if let Some(n) = policy(cx, LIMIT, value) {
                        attr.limit.set(cx, key, n);
                    }
                }
                EXPIRE => {
                    if let Some(n) = policy(cx, EXPIRE, value) {
                        attr.expire.set(cx, key, n);
                    }
                }
                IS_METHOD => {
                    if let Some(b) = boolean(cx, IS_METHOD, value) {
                        attr.is_method.set(cx, key, (b, key_span(key)));
                    }
                }
                STRICT => {
                    if let Some(b) = boolean(cx, STRICT, value) {
                        attr.strict.set(cx, key, b);
                    }
                }
                BACKEND => {
                    if let Some(preset) = preset {
                        cx.error(key, format!("this alias always uses the `{preset}` backend; use #[cache(backend = ...)] to choose another"));
                    } else if let Some(b) = backend(cx, value) {
                        attr.backend.set(cx, key, b);
                    }
                }
                DEPENDENCY => {
                    if let Some(paths) = dependency(cx, value) {
                        attr.dependency.set(cx, key, paths);
                    }
                }
                CACHE_KEY_PREFIX => match value {
                    Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) if valid_prefix(&s.value()) => {
                        attr.cache_key_prefix.set(cx, key, s.clone());
                    }
                    _ => cx.error(
                        value,
                        "expected a non-empty string without spaces or `:`, e.g. `\"billing\"`",
                    ),
                },
                VERSION => {
                    if let Some(n) = whole(value).and_then(|n| u32::try_from(n).ok()) {
                        attr.version.set(cx, key, n);
                    } else {
                        cx.error(value, "`version` takes a whole number from 0, e.g. `version = 2`");
                    }
                }
                EXPIRE_JITTER => match whole(value) {
                    Some(n) => match memo_core::jitter_from_setting(n) {
                        Ok(percent) => attr.expire_jitter.set(cx, key, (percent, span_of(value))),
                        Err(reason) => {
                            cx.error(value, format!("`expire_jitter = {n}` is not allowed: {reason}"))
                        }
                    },
                    None => cx.error(value, "`expire_jitter` takes a percentage, e.g. `expire_jitter = 10`"),
                },
                TAGS => {
                    if let Some(tags) = tags(cx, value) {
                        attr.tags.set(cx, key, tags);
                    }
                }
                STALE => {
                    if let Some(n) = seconds(cx, STALE, value) {
                        attr.stale.set(cx, key, (n, span_of(value)));
                    }
                }
                REFRESH => match value {
                    Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) if s.value() == "early" => {
                        attr.refresh.set(cx, key, (0, span_of(value)));
                        attr.early_refresh = true;
                    }
                    Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => cx.error(
                        s,
                        "`refresh` takes a whole number of seconds (`refresh = 30`) or `\"early\"`",
                    ),
                    _ => {
                        if let Some(n) = seconds(cx, REFRESH, value) {
                            attr.refresh.set(cx, key, (n, span_of(value)));
                        }
                    }
                },
                SINGLE_FLIGHT => match value {
                    Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) if ["global", "local"].contains(&s.value().as_str()) => {
                        attr.single_flight.set(cx, key, (s.value() == "global", span_of(value)));
                    }
                    _ => cx.error(
                        value,
                        "`single_flight` takes `\"global\"` (one computation per key across processes) or `\"local\"` (per process, the default)",
                    ),
                },
                LEASE => match whole(value) {
                    Some(n) if (1..=MAX_LEASE).contains(&n) => {
                        attr.lease.set(cx, key, (u32::try_from(n).unwrap_or(1), span_of(value)));
                    }
                    _ => cx.error(
                        value,
                        format!("`lease` takes a whole number of seconds from 1 to {MAX_LEASE}, e.g. `lease = 30`"),
                    ),
                },
                LOCAL => match whole(value).and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0) {
                    Some(n) => attr.local.set(cx, key, (n, span_of(value))),
                    None => cx.error(
                        value,
                        "`local` takes the most entries of the memory tier, a whole number from 1, e.g. `local = 1000`",
                    ),
                },
                _ => cx.error(key, unknown_key_message(&name)),
            }
        }
        if let Some(preset) = preset {
            attr.backend.value = Backend::named(preset);
        }
        attr
    }
}

/// One element of the attribute: `key = value`, or a key without `= value`.
enum Entry {
    Value(Path, Expr),
    /// `strict` or `strict(true)`: the key and whatever follows it up to the next comma.
    Bare(Path, TokenStream),
}

impl Parse for Entry {
    fn parse(input: ParseStream<'_>) -> syn::Result<Entry> {
        let key = key_path(input)?;
        if input.parse::<Option<Token![=]>>()?.is_some() {
            // An expression, not `syn::Meta`'s literal shortcut: that one folds `-2` into
            // one literal spanned on the `-` alone, so errors would not cover the number.
            return Ok(Entry::Value(key, input.parse()?));
        }
        let mut rest = TokenStream::new();
        while !input.is_empty() && !input.peek(Token![,]) {
            rest.extend([input.parse::<TokenTree>()?]);
        }
        Ok(Entry::Bare(key, rest))
    }
}

/// A key: an identifier (keywords included, so that `type = 1` is reported as an
/// unknown key) or a `::` path, which is never a key either.
fn key_path(input: ParseStream<'_>) -> syn::Result<Path> {
    let mut path = Path { leading_colon: input.parse()?, segments: Punctuated::new() };
    path.segments
        .push_value(PathSegment::from(Ident::parse_any(input).map_err(|e| {
            syn::Error::new(e.span(), format!("expected `key = value`; the keys are {KEYS}"))
        })?));
    while input.peek(Token![::]) {
        path.segments.push_punct(input.parse()?);
        path.segments.push_value(PathSegment::from(Ident::parse_any(input)?));
    }
    Ok(path)
}

/// The key as written: `limit`, or `a::b` for a path (which is never a key).
fn key_name(key: &Path) -> String {
    match key.get_ident() {
        Some(ident) => ident.to_string(),
        None => quote!(#key).to_string().replace(' ', ""),
    }
}

/// What to write instead of a key with no `= value`.
fn bare_key_message(key: &Path) -> String {
    let name = key_name(key);
    let example = match name.as_str() {
        LIMIT => "limit = 1000",
        EXPIRE => "expire = 60",
        IS_METHOD => "is_method = true",
        STRICT => "strict = true",
        BACKEND => "backend = \"memory\"",
        DEPENDENCY => "dependency = [other_cached_fn]",
        CACHE_KEY_PREFIX => "cache_key_prefix = \"billing\"",
        VERSION => "version = 2",
        EXPIRE_JITTER => "expire_jitter = 10",
        TAGS => "tags = [\"user:{id}\"]",
        STALE => "stale = 300",
        REFRESH => "refresh = 30",
        SINGLE_FLIGHT => "single_flight = \"global\"",
        LEASE => "lease = 30",
        LOCAL => "local = 1000",
        _ => return unknown_key_message(&name),
    };
    format!("`{name}` needs a value: write `{example}`")
}

/// "unknown key", with the known key the user most likely meant.
fn unknown_key_message(name: &str) -> String {
    let meant = match name {
        "ttl" | "timeout" | "max_age" => Some(EXPIRE),
        "size" | "maxsize" | "max_size" | "capacity" => Some(LIMIT),
        "dependencies" | "depends_on" | "deps" => Some(DEPENDENCY),
        "tag" | "labels" => Some(TAGS),
        "serve_stale" | "stale_ttl" | "grace" => Some(STALE),
        "refresh_after" | "refresh_ahead" | "early_refresh" | "xfetch" => Some(REFRESH),
        "singleflight" | "lock" | "dogpile" | "stampede" => Some(SINGLE_FLIGHT),
        "lease_ttl" | "lock_timeout" => Some(LEASE),
        "near_cache" | "l1" | "local_limit" | "tier" => Some(LOCAL),
        _ => ALL_KEYS
            .into_iter()
            .map(|k| (edit_distance(name, k), k))
            .filter(|&(d, k)| d <= 2 || (name.len() >= 4 && k.contains(name)))
            .min()
            .map(|(_, k)| k),
    };
    match meant {
        Some(k) => format!("unknown key `{name}`: did you mean `{k}`? The keys are {KEYS}"),
        None => format!("unknown key `{name}`; the keys are {KEYS}"),
    }
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb)).min(row[j] + 1).min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

fn key_span(key: &Path) -> Span {
    key.get_ident().map_or_else(Span::call_site, syn::Ident::span)
}

fn valid_prefix(s: &str) -> bool {
    !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c == ':')
}

/// The expression inside the invisible groups that `macro_rules!` wraps a
/// metavariable in (`limit = $cap` with `$cap:literal` or `$cap:expr`).
fn ungroup(mut expr: &Expr) -> &Expr {
    while let Expr::Group(group) = expr {
        expr = &group.expr;
    }
    expr
}

/// `limit` and `expire`: a whole number, checked by the rule the configuration uses
/// too ([`memo_core::Limit::from_setting`]).
fn policy(cx: &mut Ctxt, name: &str, value: &Expr) -> Option<i64> {
    let Some(n) = whole(value) else {
        cx.error(value, format!("`{name}` takes a whole number: -1 for none, 0 to turn caching off"));
        return None;
    };
    let rule = if name == LIMIT {
        memo_core::Limit::from_setting(n).map(drop)
    } else {
        memo_core::Expire::from_setting(n).map(drop)
    };
    match rule {
        Ok(()) => Some(n),
        Err(reason) => {
            cx.error(value, format!("`{name} = {n}` is not allowed: {reason}"));
            None
        }
    }
}

/// A whole number written as a literal, negative or not.
fn whole(value: &Expr) -> Option<i64> {
    match value {
        Expr::Lit(ExprLit { lit: Lit::Int(int), .. }) => int.base10_parse::<i64>().ok(),
        Expr::Unary(ExprUnary { op: UnOp::Neg(_), expr, .. }) => match ungroup(expr) {
            Expr::Lit(ExprLit { lit: Lit::Int(int), .. }) => int.base10_parse::<i64>().ok().map(|n| -n),
            _ => None,
        },
        _ => None,
    }
}

fn span_of(value: &Expr) -> Span {
    syn::spanned::Spanned::span(value)
}

fn boolean(cx: &mut Ctxt, name: &str, value: &Expr) -> Option<bool> {
    match value {
        Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) => Some(b.value),
        _ => {
            cx.error(value, format!("`{name}` takes `true` or `false`"));
            None
        }
    }
}

fn backend(cx: &mut Ctxt, value: &Expr) -> Option<Backend> {
    match value {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => {
            let name = s.value();
            let backend = Backend::named(&name);
            if backend.is_none() {
                let names: Vec<String> = BACKENDS.iter().map(|b| format!("\"{}\"", b.name)).collect();
                cx.error(s, format!("unknown backend `{name}`: use {} or the path of a backend kind (a type implementing memo_alchemy::BackendKind)", names.join(", ")));
            }
            backend
        }
        Expr::Path(p) if p.qself.is_none() => Some(Backend::Custom(p.path.clone())),
        _ => {
            cx.error(value, "`backend` takes a name such as \"json\" or the path of a backend kind");
            None
        }
    }
}

fn dependency(cx: &mut Ctxt, value: &Expr) -> Option<Vec<Path>> {
    let Expr::Array(array) = value else {
        cx.error(
            value,
            "`dependency` takes a list of cached functions, e.g. `[add, crate::m::mul, Foo::bar]`",
        );
        return None;
    };
    let mut paths = Vec::new();
    for elem in &array.elems {
        match ungroup(elem) {
            Expr::Path(p) if p.qself.is_none() && p.path.segments.iter().all(|s| s.arguments.is_none()) => {
                if let Some(first) = p.path.segments.first().filter(|s| s.ident == "Self") {
                    cx.error(first, "name the type instead of `Self` in `dependency`");
                } else {
                    paths.push(p.path.clone());
                }
            }
            other => cx.error(other, "expected the path of a cached function, e.g. `add` or `Foo::bar`"),
        }
    }
    Some(paths)
}

fn tags(cx: &mut Ctxt, value: &Expr) -> Option<Vec<LitStr>> {
    let Expr::Array(array) = value else {
        cx.error(value, "`tags` takes a list of strings, e.g. `[\"table:users\", \"user:{id}\"]`");
        return None;
    };
    let mut tags = Vec::new();
    for elem in &array.elems {
        match ungroup(elem) {
            Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) if !s.value().is_empty() => tags.push(s.clone()),
            other => cx.error(other, "expected a non-empty string, e.g. `\"user:{id}\"`"),
        }
    }
    Some(tags)
}

/// A tag template's pieces: literal text and `{argument}` holes.
pub(crate) enum Piece {
    Text(String),
    Hole(String),
}

/// Splits a template into its pieces, or says what is wrong with it.
pub(crate) fn template(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!("`}}` without `{{` in tag `{text}`: holes are written `{{argument}}`"));
        }
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("unclosed `{{` in tag `{text}`: holes are written `{{argument}}`"));
        };
        let name = &rest[open + 1..open + close];
        if name.is_empty() || name.contains('{') {
            return Err(format!("`{{{name}}}` in tag `{text}` is not a hole: write `{{argument}}`"));
        }
        pieces.push(Piece::Hole(name.to_owned()));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

/// `stale` and `refresh`: whole seconds, from 1 to a year.
fn seconds(cx: &mut Ctxt, name: &str, value: &Expr) -> Option<u32> {
    match whole(value) {
        Some(n) if (1..=MAX_SECONDS).contains(&n) => u32::try_from(n).ok(),
        Some(n) => {
            cx.error(value, format!("`{name} = {n}` is out of range: give 1 to {MAX_SECONDS} seconds, or leave `{name}` out to turn it off"));
            None
        }
        None => {
            cx.error(value, format!("`{name}` takes a whole number of seconds, e.g. `{name} = 30`"));
            None
        }
    }
}
