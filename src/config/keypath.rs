//! TOML key paths for diagnostics: `records."www.example.com".geo.continent.EU`.
//!
//! Validation builds paths itself with [`join`]. For errors raised by toml or serde the
//! path comes from `serde_path_to_error`, except that it cannot see keys read as
//! `Spanned<String>` (the key string goes through toml's span wrapper, not through the
//! key capture, so it reports `?`); then the path is recovered from the error's span by
//! finding the innermost key or value of the parsed document that covers it.

use std::borrow::Cow;
use std::ops::Range;

use serde_path_to_error::{Path, Segment};
use toml::de::{DeTable, DeValue};

/// The field name toml uses for the inner value of a `Spanned<T>`; never shown to users.
const SPANNED_PREFIX: &str = "$__serde_spanned_private_";

/// True when `key` may be written without quotes.
fn is_bare(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `key` as written in a TOML key path: bare when possible, else a basic string.
pub(crate) fn segment(key: &str) -> Cow<'_, str> {
    if is_bare(key) {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len() + 2);
    out.push('"');
    for c in key.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

/// `parent.key`, quoting `key` when needed; `parent` is already a rendered path.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        segment(key).into_owned()
    } else {
        format!("{parent}.{}", segment(key))
    }
}

/// The path serde reported, or `None` when part of it is unknown. Array indexes are left
/// out, as in every other diagnostic: the line and column already point at the element.
pub(crate) fn from_serde(path: &Path) -> Option<String> {
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Map { key } if key.starts_with(SPANNED_PREFIX) => {}
            Segment::Map { key } | Segment::Enum { variant: key } => out = join(&out, key),
            Segment::Seq { .. } => {}
            Segment::Unknown => return None,
        }
    }
    Some(out)
}

/// The path of the innermost key or value in `doc` whose span covers `span`.
pub(crate) fn at_span(doc: &DeTable<'_>, span: &Range<usize>) -> Option<String> {
    let mut best: Option<(usize, usize, String)> = None;
    walk_table(doc, span, "", 0, &mut best);
    best.map(|(_, _, path)| path)
}

fn covers(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
}

/// Keeps the smallest covering span; on a tie the deeper node, since a table opened by a
/// header shares the header's span with its implicit parents.
fn consider(
    node: &Range<usize>,
    span: &Range<usize>,
    depth: usize,
    path: &str,
    best: &mut Option<(usize, usize, String)>,
) {
    if !covers(node, span) {
        return;
    }
    let len = node.end - node.start;
    let better = match best {
        None => true,
        Some((best_len, best_depth, _)) => {
            len < *best_len || (len == *best_len && depth > *best_depth)
        }
    };
    if better {
        *best = Some((len, depth, path.to_owned()));
    }
}

fn walk_table(
    table: &DeTable<'_>,
    span: &Range<usize>,
    parent: &str,
    depth: usize,
    best: &mut Option<(usize, usize, String)>,
) {
    for (key, value) in table.iter() {
        let path = join(parent, key.get_ref());
        consider(&key.span(), span, depth + 1, &path, best);
        consider(&value.span(), span, depth + 1, &path, best);
        walk_value(value.get_ref(), span, &path, depth + 1, best);
    }
}

fn walk_value(
    value: &DeValue<'_>,
    span: &Range<usize>,
    path: &str,
    depth: usize,
    best: &mut Option<(usize, usize, String)>,
) {
    match value {
        DeValue::Table(t) => walk_table(t, span, path, depth, best),
        DeValue::Array(items) => {
            for item in items.iter() {
                consider(&item.span(), span, depth + 1, path, best);
                walk_value(item.get_ref(), span, path, depth + 1, best);
            }
        }
        _ => {}
    }
}

/// The line around byte `offset`: its start offset and its text, trimmed.
fn line_at(text: &str, offset: usize) -> Option<(usize, &str)> {
    let offset = offset.min(text.len());
    let offset = (0..=offset).rev().find(|&o| text.is_char_boundary(o))?;
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    Some((line_start, text[line_start..line_end].trim()))
}

/// Byte offset of the value at `path` (`["server", "geoip"]`) in `doc`, when it is there.
pub(crate) fn value_offset(doc: &DeTable<'_>, path: &[&str]) -> Option<usize> {
    let (last, parents) = path.split_last()?;
    let mut table = doc;
    for key in parents {
        match table.get(*key)?.get_ref() {
            DeValue::Table(t) => table = t,
            _ => return None,
        }
    }
    Some(table.get(*last)?.span().start)
}

/// A best guess at the key a syntax error at `offset` belongs to, from the text alone
/// (the document did not parse): the last `[table]` header before the error's line plus
/// the key on that line, if it has one; the header's key when the error is in a header
/// (`None` when that header is too broken to have one).
pub(crate) fn near_syntax_error(text: &str, offset: usize) -> Option<String> {
    let (line_start, line) = line_at(text, offset)?;
    if line.starts_with('[') {
        return header_key(line).map(|k| squeeze(&k));
    }
    let header = text[..line_start]
        .lines()
        .filter_map(|l| header_key(l.trim()))
        .next_back()
        .unwrap_or_default();
    let key = until_unquoted(line, '=')
        .map(str::trim)
        .filter(|k| !k.is_empty());
    match key {
        Some(key) if header.is_empty() => Some(key.to_owned()),
        Some(key) => Some(format!("{header}.{key}")),
        None if header.is_empty() => None,
        None => Some(header),
    }
}

/// For a duplicate key at `offset`: where it was first defined, as `(what, line)`, e.g.
/// `("table [regions.east]", 3)` or `("key `zones`", 2)` (line 1-based). Found from the
/// text alone: an earlier header with the same key, or the same key earlier in the same
/// table. `None` when it was defined otherwise (dotted keys, an inline table).
pub(crate) fn first_definition(text: &str, offset: usize) -> Option<(String, usize)> {
    let (line_start, line) = line_at(text, offset)?;
    let before: Vec<&str> = text[..line_start].lines().collect();
    if line.starts_with('[') {
        let key = squeeze(&header_key(line)?);
        let at = before
            .iter()
            .position(|l| header_key(l.trim()).is_some_and(|k| squeeze(&k) == key))?;
        return Some((format!("table [{key}]"), at + 1));
    }
    let key = until_unquoted(line, '=')?.trim();
    // Back to this table's header: the same key there is the first definition.
    for (i, l) in before.iter().enumerate().rev() {
        let l = l.trim();
        if l.starts_with('[') {
            return None;
        }
        if until_unquoted(l, '=').is_some_and(|k| k.trim() == key) {
            return Some((format!("key `{key}`"), i + 1));
        }
    }
    None
}

/// A dotted key as a path: without the blanks TOML allows around its dots.
fn squeeze(key: &str) -> String {
    let mut quote: Option<char> = None;
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c.is_whitespace() => continue,
            None => {}
        }
        out.push(c);
    }
    out
}

/// The key of a `[table]` or `[[array]]` header line.
fn header_key(line: &str) -> Option<String> {
    let inner = line.strip_prefix("[[").or_else(|| line.strip_prefix('['))?;
    let key = until_unquoted(inner, ']')?.trim();
    (!key.is_empty()).then(|| key.to_owned())
}

/// `s` up to the first `stop` outside quotes, or `None` when there is none.
fn until_unquoted(s: &str, stop: char) -> Option<&str> {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' => return None,
            None if c == stop => return Some(&s[..i]),
            None => {}
        }
    }
    None
}
