//! A line-aware splitter for zone master files (RFC 1035 §5.1). hickory's parser
//! reports no positions, so this walks the text into *logical records* (one entry,
//! possibly continued over several lines by parentheses) and remembers where each
//! starts. `include.rs` then follows `$ORIGIN` and blank owners and splices in
//! `$INCLUDE`d files.
//!
//! The tokenizer deliberately mirrors hickory's lexer rather than the RFC where
//! they differ (`\` escapes only inside quotes, `(` special only at the start of a
//! token), so that record boundaries agree with what the parser sees.

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

/// Splits `text` into logical entries, skipping blank and comment-only lines, and hands
/// each to `entry` as it is read (a zone of millions of records is never held as
/// entries all at once). Returns structural errors (unbalanced parentheses, unterminated
/// quotes) as `(line, message)`; entries after such an error are unreliable.
pub(super) fn split(text: &str, mut entry: impl FnMut(Logical)) -> Vec<(usize, String)> {
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
                    entry(l);
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
        entry(l);
    }
    errs
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
        let mut ls = Vec::new();
        let errs = split(text, |l| ls.push(l));
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
}
