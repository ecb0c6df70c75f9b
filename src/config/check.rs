//! The validation context: collects diagnostics with positions and key paths, and holds
//! the checks shared by every section (integers in range, durations, probe timing,
//! lists of region names).

use std::collections::HashMap;
use std::ops::{Range, RangeInclusive};
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::keypath::join;
use super::raw::{Int, Str, StrList};
use crate::diag::{Diagnostic, Diagnostics, LineIndex};
use crate::model::{Pos, ProbeTiming, RegionId};

/// The longest duration accepted anywhere: longer is a typo (`"5d"` for `"5s"`), not a plan.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// What validation needs to know about the text, and what it found wrong so far.
pub(crate) struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    lines: LineIndex,
    /// Every problem found so far.
    pub(crate) diags: Diagnostics,
}

impl<'a> Ctx<'a> {
    /// A context for `text` read from `file`.
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Self {
        Ctx {
            file,
            text,
            lines: LineIndex::new(text),
            diags: Diagnostics::default(),
        }
    }

    /// Reports `message` at the start of `span` under `key`.
    pub(crate) fn error(&mut self, span: &Range<usize>, key: &str, message: impl Into<String>) {
        let (line, col) = self.lines.line_col(self.text, span.start);
        let mut d = Diagnostic::new(self.file, message).at(line, col);
        if !key.is_empty() {
            d = d.key(key);
        }
        self.diags.push(d);
    }

    /// The 1-based position of `span`'s start.
    pub(crate) fn pos(&self, span: &Range<usize>) -> Pos {
        let (line, col) = self.lines.line_col(self.text, span.start);
        Pos { line, col }
    }

    /// An integer that must lie in `range`; `why` names the rule, when there is one.
    pub(crate) fn int<T: TryFrom<i64>>(
        &mut self,
        value: &Int,
        key: &str,
        range: RangeInclusive<i64>,
        why: &str,
    ) -> Option<T> {
        let v = *value.get_ref();
        if range.contains(&v) {
            return T::try_from(v).ok();
        }
        let why = if why.is_empty() {
            String::new()
        } else {
            format!(" ({why})")
        };
        let msg = format!(
            "must be between {} and {}{why}, got {v}",
            range.start(),
            range.end()
        );
        self.error(&value.span(), key, msg);
        None
    }

    /// A humantime duration (`"500ms"`, `"2s"`, `"1m"`), more than zero and at most a day.
    pub(crate) fn duration(&mut self, value: &Str, key: &str) -> Option<Duration> {
        let text = value.get_ref();
        let msg = match humantime::parse_duration(text) {
            Ok(d) if d.is_zero() => format!("duration \"{text}\" must be greater than zero"),
            Ok(d) if d > MAX_DURATION => format!("duration \"{text}\" is too long (at most 1 day)"),
            Ok(d) => return Some(d),
            Err(e) => format!(
                "invalid duration \"{text}\" (expected e.g. \"500ms\", \"2s\", \"1m\"): {e}"
            ),
        };
        self.error(&value.span(), key, msg);
        None
    }

    /// Probe timing from the keys given, falling back to `base` for the others. `key` is
    /// the path of the table that holds them and `span` its position, for the
    /// timeout-versus-interval check when neither key is written there.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn timing(
        &mut self,
        interval: Option<&Str>,
        timeout: Option<&Str>,
        rise: Option<&Int>,
        fall: Option<&Int>,
        base: ProbeTiming,
        key: &str,
        span: &Range<usize>,
    ) -> ProbeTiming {
        let mut t = base;
        let mut ok = true;
        if let Some(v) = interval {
            t.interval = self.duration(v, &join(key, "interval")).unwrap_or_else(|| {
                ok = false;
                base.interval
            });
        }
        if let Some(v) = timeout {
            t.timeout = self.duration(v, &join(key, "timeout")).unwrap_or_else(|| {
                ok = false;
                base.timeout
            });
        }
        if let Some(v) = rise {
            t.rise = self
                .int(v, &join(key, "rise"), 1..=100, "")
                .unwrap_or(base.rise);
        }
        if let Some(v) = fall {
            t.fall = self
                .int(v, &join(key, "fall"), 1..=100, "")
                .unwrap_or(base.fall);
        }
        // Only judge the pair where this table set one of them: an inherited bad pair is
        // reported once, at [defaults].
        let own = timeout.is_some() || interval.is_some();
        if ok && own && t.timeout >= t.interval {
            let (at, name) = match (timeout, interval) {
                (Some(v), _) => (v.span(), "timeout"),
                (None, Some(v)) => (v.span(), "interval"),
                (None, None) => (span.clone(), ""),
            };
            // Say where a value not written here comes from: confusing otherwise when
            // only `interval = "2s"` is written and the 2s timeout is inherited.
            let from = if key == "defaults.probe" {
                "gslbd's default"
            } else {
                "inherited from [defaults] probe"
            };
            let shown = |d: std::time::Duration, own: bool, name: &str| {
                let d = humantime::format_duration(d);
                if own {
                    format!("{d}")
                } else {
                    format!("{d}, {from}; set `{name}` here to change it")
                }
            };
            let msg = format!(
                "probe timeout ({}) must be shorter than its interval ({})",
                shown(t.timeout, timeout.is_some(), "timeout"),
                shown(t.interval, interval.is_some(), "interval"),
            );
            self.error(&at, &join_opt(key, name), msg);
        }
        t
    }

    /// Resolves a list of region names: every name defined, none twice, the list not
    /// empty, and (with `among`) every name one of the record's candidates. `None` when
    /// anything was wrong, after reporting it.
    pub(crate) fn region_list(
        &mut self,
        list: &StrList,
        key: &str,
        names: &RegionNames,
        among: Option<&[RegionId]>,
    ) -> Option<Vec<RegionId>> {
        if list.get_ref().is_empty() {
            self.error(&list.span(), key, "must list at least one region");
            return None;
        }
        let mut ids = Vec::new();
        let mut ok = true;
        for item in list.get_ref() {
            match self.region(item, key, names, among) {
                Some(id) if ids.contains(&id) => {
                    let msg = format!("region \"{}\" is listed twice", item.get_ref());
                    self.error(&item.span(), key, msg);
                    ok = false;
                }
                Some(id) => ids.push(id),
                None => ok = false,
            }
        }
        ok.then_some(ids)
    }

    /// Resolves one region name (see [`Ctx::region_list`]).
    pub(crate) fn region(
        &mut self,
        name: &Str,
        key: &str,
        names: &RegionNames,
        among: Option<&[RegionId]>,
    ) -> Option<RegionId> {
        let Some(id) = names.id(name.get_ref()) else {
            let msg = format!(
                "region \"{}\" is not defined ({})",
                name.get_ref(),
                names.known()
            );
            self.error(&name.span(), key, msg);
            return None;
        };
        if let Some(among) = among.filter(|among| !among.contains(&id)) {
            let list: Vec<&str> = among.iter().map(|&id| names.name(id)).collect();
            let msg = format!(
                "region \"{}\" is not one of this record's regions ({})",
                name.get_ref(),
                list.join(", ")
            );
            self.error(&name.span(), key, msg);
            return None;
        }
        Some(id)
    }
}

/// `key.name`, or `key` alone when `name` is empty.
fn join_opt(key: &str, name: &str) -> String {
    if name.is_empty() {
        key.to_owned()
    } else {
        join(key, name)
    }
}

/// The defined region names in file order, so that a name's index is its [`RegionId`].
#[derive(Debug, Default)]
pub(crate) struct RegionNames(pub(crate) Vec<String>, HashMap<String, RegionId>);

impl RegionNames {
    /// The names in file order; looked up by hash, since every record names some (a
    /// linear search per name was 50,000 records x 10,000 regions).
    pub(crate) fn new(names: Vec<String>) -> Self {
        let ids = (names.iter().enumerate())
            .filter_map(|(i, n)| Some((n.clone(), RegionId(u16::try_from(i).ok()?))))
            .collect();
        RegionNames(names, ids)
    }

    /// The id of `name`, when defined.
    pub(crate) fn id(&self, name: &str) -> Option<RegionId> {
        self.1.get(name).copied()
    }

    /// The name of `id`.
    pub(crate) fn name(&self, id: RegionId) -> &str {
        &self.0[id.index()]
    }

    /// `known: a, b, c`, sorted so the list is easy to scan.
    pub(crate) fn known(&self) -> String {
        if self.0.is_empty() {
            return "no region is defined".into();
        }
        let mut names: Vec<&str> = self.0.iter().map(String::as_str).collect();
        names.sort_unstable();
        format!("known: {}", names.join(", "))
    }
}

/// The span of an optional spanned value, else `fallback`.
pub(crate) fn span_or<T>(value: Option<&Spanned<T>>, fallback: &Range<usize>) -> Range<usize> {
    value.map_or_else(|| fallback.clone(), Spanned::span)
}
