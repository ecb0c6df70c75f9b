//! Expands a zone file into the text hickory parses, keeping a position for every
//! entry: follows `$ORIGIN` and blank owners to name each record's owner and type the way
//! hickory will, and splices in `$INCLUDE`d files (confined to the zones folder) so that
//! hickory never opens a file itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hickory_proto::rr::{DNSClass, LowerName, Name, RecordType};
use hickory_proto::serialize::txt::parse_ttl;

use super::lines::{Logical, split};
use crate::diag::{Diagnostic, Diagnostics};

/// Splits the zone file `path` (content `text`) into positioned entries, splicing
/// in `$INCLUDE`d files; `origin` is the initial origin.
pub(super) fn expand(text: &str, path: &Path, origin: &Name) -> Expander {
    let mut ex = Expander {
        files: vec![path.to_path_buf()],
        stack: path.canonicalize().into_iter().collect(),
        origin: origin.clone(),
        ..Expander::default()
    };
    ex.file(0, text, None);
    ex
}

/// Where an entry came from: `files[file]` line `line`, and `top`, the line in
/// the zone file itself (the `$INCLUDE` line for included entries).
#[derive(Debug, Clone, Copy)]
pub(super) struct At {
    file: usize,
    pub(super) line: usize,
    pub(super) top: usize,
}

/// One entry of the spliced text handed to hickory.
#[derive(Debug)]
pub(super) struct Piece {
    /// Byte offset just past this entry in `Expander::text`.
    pub(super) end: usize,
    pub(super) at: At,
    /// Owner and type, for records.
    pub(super) key: Option<(LowerName, RecordType)>,
}

/// Splices `$INCLUDE`s, normalises `$ORIGIN`, and rejects what hickory would
/// mishandle, keeping a position for every entry.
#[derive(Default)]
pub(super) struct Expander {
    files: Vec<PathBuf>,
    /// Canonical paths of the files being expanded, to catch `$INCLUDE` loops.
    stack: Vec<PathBuf>,
    /// The spliced text for hickory: no `$INCLUDE`, only absolute `$ORIGIN`s.
    pub(super) text: String,
    pub(super) pieces: Vec<Piece>,
    /// The current origin for relative names; always absolute.
    origin: Name,
    /// The last stated owner, reused by entries that start with white space.
    owner: Option<Name>,
    pub(super) diags: Diagnostics,
    /// The splitter failed somewhere: entry boundaries cannot be trusted.
    pub(super) fatal: bool,
    /// A directive or `$INCLUDE` was dropped, so the zone-level checks would
    /// only add follow-on errors (a rejected record alone does not count).
    pub(super) incomplete: bool,
}

impl Expander {
    /// The first line in the zone file of each (owner, type).
    pub(super) fn first_lines(&self) -> HashMap<(LowerName, RecordType), usize> {
        let mut first = HashMap::new();
        for p in &self.pieces {
            if let Some(k) = &p.key {
                first.entry(k.clone()).or_insert(p.at.top);
            }
        }
        first
    }

    /// A diagnostic at `at`, or about the zone file as a whole when `None`.
    pub(super) fn diag(&self, at: Option<At>, msg: impl Into<String>) -> Diagnostic {
        let file = &self.files[at.map_or(0, |a| a.file)];
        let d = Diagnostic::new(file, msg);
        match at {
            Some(at) => d.at_line(at.line),
            None => d,
        }
    }

    /// Resolves a `$ORIGIN` or `$INCLUDE` domain argument against the current
    /// origin (RFC 1035 §5.1: a relative name is relative to the current origin).
    fn resolve(&self, name: &str) -> Result<Name, String> {
        let mut n = Name::parse(name, Some(&self.origin)).map_err(|e| e.to_string())?;
        n.set_fqdn(true);
        Ok(n)
    }

    /// The owner and type token of a record entry, following blank owners as
    /// hickory does; `None` where hickory will fail anyway (bad owner, no type).
    fn owner_type(&mut self, l: &Logical) -> Option<(Name, String)> {
        let mut toks = l.toks.iter();
        if !l.blank_owner {
            let t = toks.next()?;
            self.owner = if t.text == "@" && !t.quoted {
                Some(self.origin.clone())
            } else {
                self.resolve(&t.text).ok()
            };
        }
        let owner = self.owner.clone()?;
        // `[<TTL>] [<class>] <type>` in either order; TTLs may be `300` or `1h`.
        let ty = toks.find(|t| {
            parse_ttl(&t.text).is_err() && DNSClass::from_str(&t.text.to_ascii_uppercase()).is_err()
        })?;
        Some((owner, ty.text.to_ascii_uppercase()))
    }

    /// Reports a problem that leaves content out of the spliced text.
    fn error(&mut self, at: At, msg: impl Into<String>) {
        self.incomplete = true;
        let d = self.diag(Some(at), msg);
        self.diags.push(d);
    }

    fn emit(&mut self, text: &str, at: At, key: Option<(LowerName, RecordType)>) {
        self.text.push_str(text);
        if !text.ends_with('\n') {
            self.text.push('\n');
        }
        self.pieces.push(Piece {
            end: self.text.len(),
            at,
            key,
        });
    }

    fn set_origin(&mut self, origin: Name, at: At) {
        self.emit(&format!("$ORIGIN {origin}"), at, None);
        self.origin = origin;
    }

    /// Expands `files[file]`, whose content is `text`; `top` is the zone file's
    /// `$INCLUDE` line when this is an included file.
    fn file(&mut self, file: usize, text: &str, top: Option<usize>) {
        let (entries, errs) = split(text);
        for (line, msg) in &errs {
            let at = At {
                file,
                line: *line,
                top: top.unwrap_or(*line),
            };
            self.error(at, msg);
        }
        if !errs.is_empty() {
            self.fatal = true;
            return;
        }
        for l in &entries {
            let at = At {
                file,
                line: l.line,
                top: top.unwrap_or(l.line),
            };
            let args: Vec<&str> = l.toks.iter().skip(1).map(|t| t.text.as_str()).collect();
            match (l.directive(), args.as_slice()) {
                (Some("$INCLUDE"), [name] | [name, _]) => self.include(name, args.get(1), at),
                (Some("$ORIGIN"), [name]) => match self.resolve(name) {
                    Ok(origin) => self.set_origin(origin, at),
                    Err(e) => self.error(at, format!("$ORIGIN {name}: {e}")),
                },
                (Some("$TTL"), [ttl]) => match bad_ttl(ttl) {
                    Some(msg) => self.error(at, format!("$TTL {ttl}: {msg}")),
                    None => self.emit(&text[l.start..l.end], at, None),
                },
                (Some(d @ ("$INCLUDE" | "$ORIGIN" | "$TTL")), _) => {
                    let usage = match d {
                        "$INCLUDE" => "$INCLUDE FILE [ORIGIN]",
                        "$ORIGIN" => "$ORIGIN NAME",
                        _ => "$TTL TTL",
                    };
                    self.error(at, format!("expected `{usage}` on one line"));
                }
                (Some(d), _) => self.error(
                    at,
                    format!("unknown directive {d} (known: $ORIGIN, $TTL, $INCLUDE)"),
                ),
                (None, _) => self.record(text, l, at),
            }
        }
    }

    fn record(&mut self, text: &str, l: &Logical, at: At) {
        // hickory's lexer treats a `$` at the start of any word as a directive.
        if let Some(t) = l.toks.iter().find(|t| !t.quoted && t.text.starts_with('$')) {
            let msg = format!(
                "`{}`: directives must start a line; quote the word if it is data",
                t.text
            );
            let d = self.diag(Some(at), msg);
            return self.diags.push(d);
        }
        // RFC 2181 §8: a TTL is 0..2^31-1; the tokens before the type are TTL and class.
        // A token there that starts like a number is a TTL, however broken: hickory would
        // take `-5` for a record type ("record type string unknown").
        let fields = l.toks.iter().skip(usize::from(!l.blank_owner));
        let ttls = fields.take_while(|t| {
            parse_ttl(&t.text).is_ok()
                || DNSClass::from_str(&t.text.to_ascii_uppercase()).is_ok()
                || looks_like_ttl(&t.text)
        });
        if let Some(msg) = ttls.filter_map(|t| bad_ttl(&t.text)).next() {
            let d = self.diag(Some(at), msg);
            return self.diags.push(d);
        }
        let owner_type = self.owner_type(l);
        if let Some((owner, ty)) = &owner_type
            && ty == "DNAME"
        {
            let msg = "DNAME records are not supported: gslbd does not synthesise CNAMEs \
                       from them (RFC 6672); use CNAME records for each name";
            let d = self.diag(Some(at), msg).key(format!("{owner} DNAME"));
            return self.diags.push(d);
        }
        let key = owner_type
            .and_then(|(o, ty)| Some((LowerName::new(&o), RecordType::from_str(&ty).ok()?)));
        self.emit(&text[l.start..l.end], at, key);
    }

    /// Splices in an included file, which must lie inside the zones folder.
    fn include(&mut self, name: &str, origin: Option<&&str>, at: At) {
        if let Err(msg) = self.try_include(name, origin, at) {
            self.error(at, format!("$INCLUDE {name}: {msg}"));
        }
    }

    fn try_include(&mut self, name: &str, origin: Option<&&str>, at: At) -> Result<(), String> {
        let parent = self.files[0].parent().filter(|p| !p.as_os_str().is_empty());
        let dir = (parent.unwrap_or(Path::new(".")).canonicalize())
            .map_err(|e| format!("cannot resolve the zones folder: {e}"))?;
        let path = dir.join(name).canonicalize().map_err(|e| e.to_string())?;
        // Zone files may come from less trusted hands than the server: never let
        // them read arbitrary files (`/etc/passwd`, `../secrets`).
        if !path.starts_with(&dir) || !path.is_file() {
            let dir = dir.display();
            return Err(format!(
                "only files inside the zones folder {dir} may be included"
            ));
        }
        if self.stack.contains(&path) {
            return Err("includes itself (a loop)".into());
        }
        let text =
            crate::files::read_regular_to_string(&path).map_err(|e| format!("cannot read: {e}"))?;
        let saved = self.origin.clone();
        if let Some(o) = origin {
            let o = self.resolve(o).map_err(|e| format!("origin {o}: {e}"))?;
            self.set_origin(o, at);
        }
        self.files.push(path.clone());
        self.stack.push(path);
        self.file(self.files.len() - 1, &text, Some(at.top));
        self.stack.pop();
        // RFC 1035 §5.1: "a $INCLUDE entry never changes the relative origin of
        // the parent file" (hickory would let the included file's $ORIGIN leak).
        self.set_origin(saved, at);
        Ok(())
    }
}

/// A word that starts like a number: in the TTL's place it can only be meant as one
/// (record types and classes start with a letter).
fn looks_like_ttl(word: &str) -> bool {
    let digits = word.strip_prefix(['-', '+']).unwrap_or(word);
    digits.starts_with(|c: char| c.is_ascii_digit())
}

/// Why `ttl` is refused: 2^31 or more (RFC 2181 §8), negative, too large to read, or not
/// a TTL at all although it starts like one (`5x`).
fn bad_ttl(ttl: &str) -> Option<String> {
    const RANGE: &str = "RFC 2181 §8: a TTL must be 0..2147483647";
    match parse_ttl(ttl) {
        Ok(v) if v > i32::MAX as u32 => Some(format!("TTL {ttl} ({v}) is out of range: {RANGE}")),
        Ok(_) => None,
        Err(_) if !looks_like_ttl(ttl) => None,
        Err(_) if ttl.starts_with('-') => Some(format!("TTL {ttl} is negative: {RANGE}")),
        Err(_)
            if ttl
                .trim_start_matches('+')
                .bytes()
                .all(|b| b.is_ascii_digit()) =>
        {
            Some(format!("TTL {ttl} is out of range: {RANGE}"))
        }
        Err(_) => Some(format!(
            "TTL {ttl} is not a TTL: expected seconds (300) or a duration with the units \
             s, m, h, d, w (1h30m), at most 2147483647 seconds"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_owner_origin_and_type() {
        let text = "@ 300 IN NS ns1\n  1h IN A 1.2.3.4\n$ORIGIN sub\nwww in 300 aaaa ::1\nx.org. CNAME y\n";
        let ex = expand(
            text,
            Path::new("ex.com.zone"),
            &Name::from_str("ex.com.").unwrap(),
        );
        let got: Vec<String> = (ex.pieces.iter())
            .map(|p| {
                p.key
                    .as_ref()
                    .map_or("-".into(), |(n, t)| format!("{n} {t} {}", p.at.line))
            })
            .collect();
        assert_eq!(
            got,
            [
                "ex.com. NS 1",
                "ex.com. A 2",
                "-",
                "www.sub.ex.com. AAAA 4",
                "x.org. CNAME 5"
            ]
        );
        assert!(ex.text.contains("$ORIGIN sub.ex.com.\n"), "{}", ex.text);
    }
}
