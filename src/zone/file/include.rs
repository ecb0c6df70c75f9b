//! Expands a zone file into the text hickory parses, keeping a position for every
//! entry: follows `$ORIGIN` and blank owners to name each record's owner and type the way
//! hickory will, and splices in `$INCLUDE`d files (confined to the zones folder) so that
//! hickory never opens a file itself.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::serialize::txt::parse_ttl;

use super::lines::{Logical, split};
use crate::diag::{Diagnostic, Diagnostics};
use crate::zone::names::NameMap;
use crate::zone::{Key, Node};

/// About this many entries make one chunk of text for hickory (see [`Chunk`]). The unit
/// tests cut tiny chunks, so every test of loading crosses chunk boundaries.
const CHUNK: usize = if cfg!(test) { 2 } else { 2048 };

/// Splits the zone file `path` (content `text`) into positioned entries, splicing
/// in `$INCLUDE`d files; `origin` is the initial origin.
pub(super) fn expand(text: &str, path: &Path, origin: &Name) -> Expander {
    // Room for an entry a line, at once: growing by doubling copies, and touches pages
    // twice. Room never written to costs no memory.
    let lines = text.bytes().filter(|b| *b == b'\n').count() + 1;
    let mut ex = Expander {
        files: vec![path.to_path_buf()],
        stack: path.canonicalize().into_iter().collect(),
        origin: origin.clone(),
        class_in: true,
        pieces: Vec::with_capacity(lines),
        owners: NameMap::with_capacity(lines, text.len()),
        ..Expander::default()
    };
    ex.file(0, text, None);
    ex
}

/// Where an entry came from: `files[file]` line `line`, and `top`, the line in
/// the zone file itself (the `$INCLUDE` line for included entries).
#[derive(Debug, Clone, Copy)]
pub(super) struct At {
    file: u32,
    pub(super) line: u32,
    pub(super) top: u32,
}

/// One entry of the text handed to hickory.
#[derive(Debug)]
pub(super) struct Piece {
    /// The entry is `start..end` of the text of `files[src]`, or of `synth` when `src` is
    /// [`SYNTH`].
    src: u32,
    start: u32,
    end: u32,
    pub(super) at: At,
    /// Owner (index in `Expander::owners`) and type, for records.
    pub(super) key: Option<(u32, RecordType)>,
}

/// The `src` of a piece that the expansion wrote.
const SYNTH: u32 = u32::MAX;

/// Where hickory may start parsing anew: the entry `first` (of `pieces`), with the text
/// `context` before it (the `$ORIGIN` and `$TTL` in force). hickory parses a whole zone
/// into a map of 600 bytes a record, so a large zone is parsed a chunk at a time. A chunk
/// starts only at an entry hickory reads the same whatever came before: it names its
/// owner, and its TTL and class are its own or come from `$TTL` and the default class.
#[derive(Debug)]
pub(super) struct Chunk {
    pub(super) first: usize,
    pub(super) context: String,
}

/// Splices `$INCLUDE`s, normalises `$ORIGIN`, and rejects what hickory would
/// mishandle, keeping a position for every entry.
#[derive(Default)]
pub(super) struct Expander {
    files: Vec<PathBuf>,
    /// Canonical paths of the files being expanded, to catch `$INCLUDE` loops.
    stack: Vec<PathBuf>,
    /// The text of each file but the zone file itself (whose text is the caller's):
    /// the entries point into them.
    texts: Vec<String>,
    /// The `$ORIGIN` lines the expansion wrote (only absolute ones reach hickory).
    synth: String,
    /// The entries for hickory, in order: no `$INCLUDE`, only absolute `$ORIGIN`s.
    pub(super) pieces: Vec<Piece>,
    /// The owners of the records (lower-case wire names), once each: the nodes the
    /// records will be gathered into.
    pub(super) owners: NameMap<Node>,
    /// Where chunks after the first start.
    pub(super) chunks: Vec<Chunk>,
    /// The current origin for relative names; always absolute.
    origin: Name,
    /// The last stated owner, reused by entries that start with white space.
    owner: Option<Name>,
    /// The last `$TTL` entry: hickory's default TTL.
    ttl: Option<String>,
    /// hickory's class for records that state none (the last one stated) is IN.
    class_in: bool,
    /// The last record entry named no type: hickory read its owner and TTL and kept the
    /// TTL for the next record, so the next entry cannot start a chunk.
    typeless: bool,
    pub(super) diags: Diagnostics,
    /// The splitter failed somewhere: entry boundaries cannot be trusted.
    pub(super) fatal: bool,
    /// A directive or `$INCLUDE` was dropped, so the zone-level checks would
    /// only add follow-on errors (a rejected record alone does not count).
    pub(super) incomplete: bool,
}

impl Expander {
    /// A diagnostic at `at`, or about the zone file as a whole when `None`.
    pub(super) fn diag(&self, at: Option<At>, msg: impl Into<String>) -> Diagnostic {
        let file = &self.files[at.map_or(0, |a| a.file as usize)];
        let d = Diagnostic::new(file, msg);
        match at {
            Some(at) => d.at_line(at.line as usize),
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

    /// The `$INCLUDE`d files and their text.
    pub(super) fn included(&self) -> impl Iterator<Item = (&Path, &str)> {
        (self.files.iter().zip(&self.texts))
            .skip(1)
            .map(|(p, t)| (p.as_path(), t.as_str()))
    }

    /// The text of an entry, `top` being the zone file's.
    pub(super) fn text<'a>(&'a self, top: &'a str, p: &Piece) -> &'a str {
        let text = match p.src {
            SYNTH => &self.synth,
            0 => top,
            i => &self.texts[i as usize],
        };
        &text[p.start as usize..p.end as usize]
    }

    fn emit(&mut self, src: usize, l: &Logical, at: At, key: Option<(u32, RecordType)>) {
        self.pieces.push(Piece {
            src: src as u32,
            // Texts of 4 GiB and more are refused before they are expanded.
            start: l.start as u32,
            end: l.end as u32,
            at,
            key,
        });
    }

    fn set_origin(&mut self, origin: Name, at: At) {
        let start = self.synth.len();
        self.synth.push_str(&format!("$ORIGIN {origin}\n"));
        let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(self.synth.len())) else {
            self.error(at, "more than 4 GiB of $ORIGIN lines are not supported");
            self.fatal = true;
            return;
        };
        self.pieces.push(Piece {
            src: SYNTH,
            start,
            end,
            at,
            key: None,
        });
        self.origin = origin;
    }

    /// Expands `files[file]`, whose content is `text`; `top` is the zone file's
    /// `$INCLUDE` line when this is an included file.
    fn file(&mut self, file: usize, text: &str, top: Option<usize>) {
        if u32::try_from(text.len()).is_err() {
            let at = top.map(|line| at(0, line, None));
            let d = self.diag(at, "a zone file of 4 GiB or more is not supported");
            self.diags.push(d);
            self.fatal = true;
            return;
        }
        // The structure first: after an error, entry boundaries cannot be trusted, and
        // the file's entries are not looked at. (Two passes, so that the entries of a
        // large file are never held all at once.)
        let errs = split(text, |_| {});
        for (line, msg) in &errs {
            let at = at(file, *line, top);
            self.error(at, msg);
        }
        if !errs.is_empty() {
            self.fatal = true;
            return;
        }
        split(text, |l| self.entry(file, text, top, &l));
    }

    fn entry(&mut self, file: usize, text: &str, top: Option<usize>, l: &Logical) {
        let at = at(file, l.line, top);
        let args: Vec<&str> = l.toks.iter().skip(1).map(|t| t.text.as_str()).collect();
        match (l.directive(), args.as_slice()) {
            (Some("$INCLUDE"), [name] | [name, _]) => self.include(name, args.get(1), at),
            (Some("$ORIGIN"), [name]) => match self.resolve(name) {
                Ok(origin) => self.set_origin(origin, at),
                Err(e) => self.error(at, format!("$ORIGIN {name}: {e}")),
            },
            (Some("$TTL"), [ttl]) => match bad_ttl(ttl) {
                Some(msg) => self.error(at, format!("$TTL {ttl}: {msg}")),
                None => {
                    self.ttl = Some(format!("{}\n", text[l.start..l.end].trim_end()));
                    self.emit(file, l, at, None);
                }
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
            (None, _) => self.record(file, l, at),
        }
    }

    fn record(&mut self, file: usize, l: &Logical, at: At) {
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
        let ttls: Vec<&str> = fields
            .take_while(|t| {
                parse_ttl(&t.text).is_ok()
                    || DNSClass::from_str(&t.text.to_ascii_uppercase()).is_ok()
                    || looks_like_ttl(&t.text)
            })
            .map(|t| t.text.as_str())
            .collect();
        if let Some(msg) = ttls.iter().find_map(|t| bad_ttl(t)) {
            let d = self.diag(Some(at), msg);
            return self.diags.push(d);
        }
        // What hickory reads before the type: a TTL, else a class (the last one counts).
        let has_ttl = ttls.iter().any(|t| parse_ttl(t).is_ok());
        let class = (ttls.iter().rev())
            .filter(|t| parse_ttl(t).is_err())
            .find_map(|t| DNSClass::from_str(&t.to_ascii_uppercase()).ok());
        let owner_type = self.owner_type(l);
        if let Some((owner, ty)) = &owner_type
            && ty == "DNAME"
        {
            let msg = "DNAME records are not supported: gslbd does not synthesise CNAMEs \
                       from them (RFC 6672); use CNAME records for each name";
            let d = self.diag(Some(at), msg).key(format!("{owner} DNAME"));
            return self.diags.push(d);
        }
        let key = owner_type.and_then(|(o, ty)| {
            let owner = self
                .owners
                .index_or_insert_with(Key::of(&o).bytes(), Node::default);
            Some((owner as u32, RecordType::from_str(&ty).ok()?))
        });
        let pieces = self.pieces.len();
        let since = self.chunks.last().map_or(0, |c| c.first);
        if pieces - since >= CHUNK
            && !l.blank_owner
            && !self.typeless
            && (has_ttl || self.ttl.is_some())
            && (class.is_some() || self.class_in)
        {
            let ttl = self.ttl.as_deref().unwrap_or_default();
            self.chunks.push(Chunk {
                first: pieces,
                context: format!("$ORIGIN {}\n{ttl}", self.origin),
            });
        }
        if let Some(class) = class {
            self.class_in = class == DNSClass::IN;
        }
        self.typeless = key.is_none();
        self.emit(file, l, at, key);
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
        // Kept: its entries point into it.
        let file = self.files.len() - 1;
        self.texts.resize(file + 1, String::new());
        self.file(file, &text, Some(at.top as usize));
        self.texts[file] = text;
        self.stack.pop();
        // RFC 1035 §5.1: "a $INCLUDE entry never changes the relative origin of
        // the parent file" (hickory would let the included file's $ORIGIN leak).
        self.set_origin(saved, at);
        Ok(())
    }
}

/// The position of line `line` of `files[file]`, included at the zone file's line `top`.
fn at(file: usize, line: usize, top: Option<usize>) -> At {
    At {
        file: file as u32,
        line: line as u32,
        top: top.unwrap_or(line) as u32,
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
                p.key.as_ref().map_or("-".into(), |(n, t)| {
                    let n = crate::zone::store::from_wire(ex.owners.key(*n as usize));
                    format!("{n} {t} {}", p.at.line)
                })
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
        let origin = ex.text(text, &ex.pieces[2]);
        assert_eq!(origin, "$ORIGIN sub.ex.com.\n");
    }
}
