//! A line-aware splitter for zone master files (RFC 1035 §5.1). hickory's parser
//! reports no positions, so this walks the text into *logical records* (one entry,
//! possibly continued over several lines by parentheses) and remembers where each
//! starts. [`expand`] then follows `$ORIGIN` and blank owners to name each
//! record's owner and type the way hickory will, and splices in `$INCLUDE`d files
//! (confined to the zones folder) so that hickory never opens a file itself.
//!
//! The tokenizer deliberately mirrors hickory's lexer rather than the RFC where
//! they differ (`\` escapes only inside quotes, `(` special only at the start of a
//! token), so that record boundaries agree with what the parser sees.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hickory_proto::rr::{DNSClass, LowerName, Name, RecordType};
use hickory_proto::serialize::txt::parse_ttl;

use crate::diag::{Diagnostic, Diagnostics};

/// One token: a bare word, or the unescaped contents of a quoted string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tok {
    pub(super) text: String,
    pub(super) quoted: bool,
}

/// One entry of the file: a record or a `$` directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Logical {
    /// 1-based line the entry starts on.
    pub(super) line: usize,
    /// Byte range in the text: from the start of its first line (so a blank owner
    /// keeps its leading white space) to just past the terminating newline.
    pub(super) start: usize,
    pub(super) end: usize,
    /// The line began with white space: the owner is the previous record's.
    pub(super) blank_owner: bool,
    pub(super) toks: Vec<Tok>,
}

impl Logical {
    /// The directive name (`$ORIGIN`, …) when this entry is one.
    pub(super) fn directive(&self) -> Option<&str> {
        match self.toks.first() {
            Some(t) if !self.blank_owner && !t.quoted && t.text.starts_with('$') => Some(&t.text),
            _ => None,
        }
    }
}

/// Splits `text` into logical entries, skipping blank and comment-only lines.
/// Returns structural errors (unbalanced parentheses, unterminated quotes) as
/// `(line, message)`; entries after such an error are unreliable.
pub(super) fn split(text: &str) -> (Vec<Logical>, Vec<(usize, String)>) {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    let mut cur: Option<Logical> = None;
    let mut tok: Option<String> = None;
    let (mut line, mut paren_line, mut quote_line, mut line_start) = (1, 0, 0, 0);
    let (mut in_paren, mut in_quote, mut in_comment) = (false, false, false);
    let mut line_blank = text.starts_with([' ', '\t']);
    let mut chars = text.char_indices().peekable();

    while let Some((i, c)) = chars.next() {
        if in_quote {
            match c {
                '"' => {
                    in_quote = false;
                    push_tok(&mut cur, &mut tok, true);
                }
                // `\X` is X; `\DDD` is left undecoded (these tokens only name owners,
                // types and files, where it does not occur in practice).
                '\\' => {
                    if let Some((_, d)) = chars.next() {
                        line += usize::from(d == '\n');
                        tok.get_or_insert_with(String::new).push(d);
                    }
                }
                _ => {
                    line += usize::from(c == '\n');
                    tok.get_or_insert_with(String::new).push(c);
                }
            }
            continue;
        }
        if in_comment && c != '\n' {
            continue;
        }
        in_comment = false;
        // A bare word ends at white space, a comment or a closing parenthesis.
        if tok.is_some() && (c.is_whitespace() || c == ';' || c == ')') {
            push_tok(&mut cur, &mut tok, false);
        }
        match c {
            '\n' => {
                line += 1;
                line_blank = matches!(chars.peek(), Some((_, ' ' | '\t')));
                line_start = i + 1;
                if !in_paren && let Some(mut l) = cur.take() {
                    l.end = i + 1;
                    out.push(l);
                }
            }
            ';' => in_comment = true,
            _ if c.is_whitespace() => {}
            _ if tok.is_some() => tok.get_or_insert_with(String::new).push(c),
            '(' => {
                open(&mut cur, line, line_start, line_blank);
                if in_paren {
                    errs.push((
                        line,
                        "nested '(' (parentheses do not nest in zone files)".into(),
                    ));
                }
                in_paren = true;
                paren_line = line;
            }
            ')' if !in_paren => errs.push((line, "')' without a matching '('".into())),
            ')' => in_paren = false,
            '"' => {
                open(&mut cur, line, line_start, line_blank);
                if in_paren {
                    // hickory's lexer does not recognise quotes inside parentheses: it
                    // would split "a b" into two strings, or read a ';' in it as a comment.
                    errs.push((
                        line,
                        "quoted string inside parentheses is not supported; \
                         put the quoted strings on one line without parentheses"
                            .into(),
                    ));
                }
                in_quote = true;
                quote_line = line;
                tok = Some(String::new());
            }
            _ => {
                open(&mut cur, line, line_start, line_blank);
                tok = Some(c.to_string());
            }
        }
    }
    if in_quote {
        errs.push((quote_line, "unterminated quoted string".into()));
    } else if tok.is_some() {
        push_tok(&mut cur, &mut tok, false);
    }
    if in_paren {
        errs.push((paren_line, "'(' is never closed".into()));
    }
    if let Some(mut l) = cur.take() {
        l.end = text.len();
        out.push(l);
    }
    (out, errs)
}

fn open(cur: &mut Option<Logical>, line: usize, start: usize, blank_owner: bool) {
    cur.get_or_insert(Logical {
        line,
        start,
        end: start,
        blank_owner,
        toks: Vec::new(),
    });
}

fn push_tok(cur: &mut Option<Logical>, tok: &mut Option<String>, quoted: bool) {
    if let (Some(l), Some(text)) = (cur.as_mut(), tok.take()) {
        l.toks.push(Tok { text, quoted });
    }
}

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
                (Some("$TTL"), [_]) => self.emit(&text[l.start..l.end], at, None),
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
        let text = fs::read_to_string(&path).map_err(|e| format!("cannot read: {e}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn words(l: &Logical) -> Vec<&str> {
        l.toks.iter().map(|t| t.text.as_str()).collect()
    }

    #[test]
    fn splits_comments_quotes_and_parentheses() {
        let text = "; header\n$TTL 1h\n@ IN SOA ns1 host. ( 1 ; serial\n  2 3\n 4 5 )\n\
                    \tIN TXT \"a;b (\" \"q\\\"x\" ; note\nwww A 1.2.3.4";
        let (ls, errs) = split(text);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(ls.iter().map(|l| l.line).collect::<Vec<_>>(), [2, 3, 6, 7]);
        assert_eq!(ls[0].directive(), Some("$TTL"));
        assert_eq!(
            words(&ls[1]),
            ["@", "IN", "SOA", "ns1", "host.", "1", "2", "3", "4", "5"]
        );
        assert_eq!(words(&ls[2]), ["IN", "TXT", "a;b (", "q\"x"]);
        assert!(ls[2].blank_owner && !ls[1].blank_owner);
        assert_eq!(&text[ls[3].start..ls[3].end], "www A 1.2.3.4");
        assert_eq!(
            &text[ls[1].start..ls[1].end],
            "@ IN SOA ns1 host. ( 1 ; serial\n  2 3\n 4 5 )\n"
        );
    }

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
