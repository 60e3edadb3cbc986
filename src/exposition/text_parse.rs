//! Parser for the Prometheus text exposition format, version 0.0.4.
//!
//! This module owns one job: turning a pushed request body in the text format into
//! [`MetricFamily`] values of our data model. It knows nothing about HTTP, grouping keys or
//! the store; checks that belong to the gateway (timestamps, consistency with other pushes,
//! label sorting, duplicate series) are left to the layers above.
//!
//! It is written by hand rather than with a parser crate for two reasons. Every push goes
//! through it, so it is our hot path: it works directly on the bytes, one line at a time,
//! borrows names from the body instead of copying them, and allocates per label and per
//! series, never per byte. And clients rely on the behaviour of the upstream Pushgateway,
//! which uses the Go `expfmt.TextParser` of `prometheus/common`: we accept what it accepts and
//! reject what it rejects, with its error messages and the 1-based line number of the
//! offending line, so that the answer a client gets for a bad push reads the same.
//!
//! A large body is parsed as parts on several threads, cut at comment lines, whenever the
//! parts cannot have affected each other (no name of a part resolves to a family of an
//! earlier part); otherwise, or on any error, it is parsed in one pass.
//!
//! Where the upstream parser is silently lossy this one is a little stricter (a summary line
//! without `quantile`, a bucket without `le`, a negative count, a repeated label are errors),
//! and where it is needlessly picky it is a little laxer (blanks may trail a sample line).
//!
//! Under [`NameRules::Utf8`] (`--push.enable-utf8-names`) it also reads the quoted names of
//! the UTF-8 extension of the format: a metric name as the first item inside the braces
//! (`{"my.metric", "label.with.dots"="v", legacy="x"} 1`), a label name anywhere a label
//! name goes, and a metric name on a `# HELP` or `# TYPE` line (`# HELP "my.metric" help`).
//! Quoted names use the escapes of label values (`\\`, `\"`, `\n`) and may be any non-empty
//! UTF-8; unquoted names keep the legacy character rules. A quoted metric name before the
//! braces (`"my.metric" 1`) is not part of the format. Under [`NameRules::Legacy`] every
//! quoted name is an error that points at the flag.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use compact_str::CompactString;

use super::model::{
    Bucket, Histogram, Label, Metric, MetricFamily, MetricKind, MetricValue, Quantile, Summary,
};
use super::names::NameRules;
use crate::parallel::available_threads;

/// A body that is not valid text exposition format.
///
/// Displays exactly like the upstream Go parser's error, which the Pushgateway returns to
/// the client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("text format parsing error in line {line}: {message}")]
pub struct TextParseError {
    /// The 1-based number of the offending line.
    pub line: usize,
    pub message: String,
}

/// Parses a body in the text exposition format 0.0.4, with the legacy name rules.
///
/// Families are returned in the order in which their names first appear (in a sample or on
/// a `# HELP`/`# TYPE` line); families that end up without any sample are dropped. The
/// labels of each metric keep their input order.
pub fn parse_text(body: &[u8]) -> Result<Vec<MetricFamily>, TextParseError> {
    parse_text_with(body, NameRules::Legacy)
}

/// Like [`parse_text`], with the given name rules: [`NameRules::Utf8`] also accepts quoted
/// metric and label names (see the module documentation).
pub fn parse_text_with(body: &[u8], names: NameRules) -> Result<Vec<MetricFamily>, TextParseError> {
    if body.len() >= PARALLEL_BODY_BYTES {
        if let Some(families) = parse_in_parts(body, names) {
            return Ok(families);
        }
    }
    parse_lines(body, names, false).map(Parser::finish)
}

/// Bodies of at least this many bytes are cut into parts parsed on several threads.
const PARALLEL_BODY_BYTES: usize = 512 * 1024;

/// Parses a large body as parts on several threads, when that gives what one pass over
/// the whole body gives; `None` when it may not (or a part has an error, whose exact
/// message and line number the caller gets by parsing the whole body).
///
/// The body is cut at comment lines (where families tend to start), one part per thread.
/// Lines interact only through the families their names resolve to, so the parts agree
/// with one pass when no name a part resolves, nor that name without a `_count`, `_sum`
/// or `_bucket` suffix, is a family of an earlier part: then each part's families are new
/// to the parts before it, in the same order of first appearance.
fn parse_in_parts(body: &[u8], names: NameRules) -> Option<Vec<MetricFamily>> {
    let parts = cut_at_comments(body, available_threads());
    if parts.len() < 2 {
        return None;
    }
    let parsed: Vec<Option<Parser<'_>>> = std::thread::scope(|scope| {
        let others: Vec<_> = parts[1..]
            .iter()
            .map(|part| scope.spawn(move || parse_lines(part, names, true).ok()))
            .collect();
        let first = parse_lines(parts[0], names, true).ok();
        std::iter::once(first)
            .chain(others.into_iter().map(|other| {
                other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }))
            .collect()
    });
    let parsers: Vec<Parser<'_>> = parsed.into_iter().collect::<Option<_>>()?;
    {
        let mut earlier: HashSet<&[u8]> = HashSet::new();
        for parser in &parsers {
            let clash = |name: &[u8]| earlier.contains(name);
            let resolved_earlier = parser.resolved.iter().any(|name| {
                clash(name)
                    || [&b"_count"[..], b"_sum", b"_bucket"]
                        .iter()
                        .any(|suffix| name.strip_suffix(*suffix).is_some_and(clash))
            });
            if resolved_earlier {
                return None;
            }
            earlier.extend(parser.families.iter().map(|f| f.name.as_bytes()));
        }
    }
    Some(parsers.into_iter().flat_map(Parser::finish).collect())
}

/// Cuts `body` into up to `parts` pieces of about equal size, each but the first starting
/// at a comment line.
fn cut_at_comments(body: &[u8], parts: usize) -> Vec<&[u8]> {
    let mut cuts = vec![0];
    for i in 1..parts {
        let mut from = (body.len() / parts * i).max(*cuts.last().unwrap_or(&0));
        while let Some(at) = find_newline(&body[from..]) {
            let line_start = from + at + 1;
            if body.get(line_start) == Some(&b'#') {
                cuts.push(line_start);
                break;
            }
            from = line_start;
        }
    }
    cuts.push(body.len());
    cuts.dedup();
    cuts.windows(2).map(|w| &body[w[0]..w[1]]).collect()
}

/// Parses every line of `body`, recording the names it resolves if `record`.
fn parse_lines(body: &[u8], names: NameRules, record: bool) -> Result<Parser<'_>, TextParseError> {
    let mut parser = Parser {
        rules: names,
        record_resolved: record,
        ..Parser::default()
    };
    let mut rest = body;
    let mut number = 0;
    while !rest.is_empty() {
        number += 1;
        let (text, terminated, next) = match find_newline(rest) {
            Some(at) => {
                let (text, tail) = rest.split_at(at);
                (text, true, tail.get(1..).unwrap_or_default())
            }
            None => (rest, false, &rest[rest.len()..]),
        };
        let mut line = Line {
            bytes: text,
            pos: 0,
            terminated,
        };
        parser
            .parse_line(&mut line)
            .map_err(|message| TextParseError {
                line: number,
                message,
            })?;
        rest = next;
    }
    Ok(parser)
}

/// The message for input that ends anywhere but at the start of a line.
const UNEXPECTED_EOF: &str = "unexpected end of input stream";

/// Up to this many families, a name is looked up by a scan rather than a hash.
const SCANNED_FAMILIES: usize = 8;

/// The most label slots reserved for a sample ahead of reading its labels.
const LABEL_CAPACITY_HINT_CAP: usize = 32;

/// Label sets up to this size are checked for duplicate names by a linear scan.
const LINEAR_DUPLICATE_CHECK: usize = 16;

/// How a sample line relates to the family it was filed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The line carries the family's own name.
    Plain,
    /// `<family>_count` of a summary or histogram.
    Count,
    /// `<family>_sum` of a summary or histogram.
    Sum,
    /// `<family>_bucket` of a histogram.
    Bucket,
}

/// A family while it is being built.
struct FamilyState {
    name: String,
    help: Option<String>,
    /// `None` until a `# TYPE` line or the first sample sets it.
    kind: Option<MetricKind>,
    metrics: Vec<Metric>,
    /// Summaries and histograms: the index in `metrics` of each label set (sorted by name).
    by_labels: HashMap<Vec<Label>, usize>,
}

impl FamilyState {
    /// The summary or histogram metric for `labels`, created with `empty` if it is new.
    fn merged_metric(
        &mut self,
        labels: Vec<Label>,
        empty: impl FnOnce() -> MetricValue,
    ) -> &mut Metric {
        // The lines of one summary or histogram usually follow each other with their labels
        // in the same order: the same list as the last metric's is the same label set.
        if let Some(last) = self.metrics.len().checked_sub(1) {
            if self.metrics[last].labels == labels {
                return &mut self.metrics[last];
            }
        }
        let mut key = labels.clone();
        key.sort_unstable();
        let index = match self.by_labels.entry(key) {
            Entry::Occupied(entry) => *entry.get(),
            Entry::Vacant(entry) => {
                self.metrics.push(Metric {
                    labels,
                    value: empty(),
                    timestamp_ms: None,
                });
                *entry.insert(self.metrics.len() - 1)
            }
        };
        &mut self.metrics[index]
    }
}

/// One sample line, read but not yet filed.
struct Sample<'a> {
    family: usize,
    role: Role,
    labels: Vec<Label>,
    /// The value of the `quantile` (summaries) or `le` (histograms) label, if present.
    special: Option<f64>,
    value: f64,
    value_text: &'a [u8],
    timestamp_ms: Option<i64>,
}

/// One line of the body, without its `\n`.
///
/// `terminated` tells whether a `\n` followed it. The Go parser reads byte by byte and
/// treats running out of input anywhere but at the start of a line as an error; here that
/// is [`Line::next_byte`] reaching the end of an unterminated line.
struct Line<'a> {
    bytes: &'a [u8],
    pos: usize,
    terminated: bool,
}

impl<'a> Line<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// The byte at the cursor, where the Go parser would read its next byte: `\n` at the end
    /// of a terminated line, and the premature-end error at the end of an unterminated one.
    fn next_byte(&self) -> Result<u8, String> {
        match self.peek() {
            Some(byte) => Ok(byte),
            None => self.end().map(|()| b'\n'),
        }
    }

    /// Fails unless the line ended with a newline.
    fn end(&self) -> Result<(), String> {
        if self.terminated {
            Ok(())
        } else {
            Err(UNEXPECTED_EOF.to_owned())
        }
    }

    fn bump(&mut self) {
        self.pos += 1;
    }

    fn skip_blanks(&mut self) {
        while let Some(b' ' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, mut keep: impl FnMut(u8) -> bool) -> &'a [u8] {
        let bytes = self.bytes;
        let start = self.pos.min(bytes.len());
        let len = bytes[start..]
            .iter()
            .position(|&b| !keep(b))
            .unwrap_or(bytes.len() - start);
        self.pos = start + len;
        &bytes[start..start + len]
    }

    /// A token up to the next blank or the end of the line.
    fn take_token(&mut self) -> &'a [u8] {
        self.take_while(|b| !is_blank(b))
    }

    fn take_metric_name(&mut self) -> &'a [u8] {
        match self.peek() {
            Some(b) if is_metric_name_start(b) => self.take_while(is_metric_name_char),
            _ => &[],
        }
    }

    fn take_label_name(&mut self) -> &'a [u8] {
        match self.peek() {
            Some(b) if is_label_name_start(b) => self.take_while(is_label_name_char),
            _ => &[],
        }
    }

    fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.pos..).unwrap_or_default()
    }
}

#[derive(Default)]
struct Parser<'a> {
    rules: NameRules,
    families: Vec<FamilyState>,
    /// Each family's name as first seen (borrowed from the body, all but quoted names with
    /// escapes), by family index.
    names: Vec<Cow<'a, [u8]>>,
    /// Family index by name, filled only once there are more than [`SCANNED_FAMILIES`]:
    /// a scan of `names` finds a family of a small push faster than hashing its name.
    by_name: HashMap<Cow<'a, [u8]>, usize>,
    /// The last name looked up and where it led. A name's resolution never changes once
    /// made (see [`Parser::resolve`]), so consecutive lines of one series skip the hash.
    last_lookup: Option<(Cow<'a, [u8]>, usize, Role)>,
    /// Label names of the current sample, for the duplicate check (reused across lines).
    label_names: Vec<Cow<'a, [u8]>>,
    /// The same names as a set, once there are too many for a linear scan.
    label_name_set: HashSet<Cow<'a, [u8]>>,
    /// How many labels the last sample with braces had.
    labels_last_time: usize,
    /// Whether to keep every name passed to [`Parser::resolve`] in `resolved`.
    record_resolved: bool,
    /// The names resolved, when `record_resolved` (see [`parse_in_parts`]).
    resolved: Vec<Cow<'a, [u8]>>,
}

impl<'a> Parser<'a> {
    fn parse_line(&mut self, line: &mut Line<'a>) -> Result<(), String> {
        line.skip_blanks();
        match line.peek() {
            // A blank line, or blanks at the very end of the body.
            None => Ok(()),
            Some(b'#') => {
                line.bump();
                self.parse_comment(line)
            }
            Some(_) => {
                let sample = self.parse_sample(line)?;
                self.add_sample(sample)
            }
        }
    }

    /// Everything after a `#`: `HELP`, `TYPE`, or an ordinary comment. Out of line: samples
    /// are what a body is made of.
    #[inline(never)]
    fn parse_comment(&mut self, line: &mut Line<'a>) -> Result<(), String> {
        line.skip_blanks();
        if line.next_byte()? == b'\n' {
            return Ok(());
        }
        let keyword = line.take_token();
        if line.next_byte()? == b'\n' {
            return Ok(());
        }
        let is_help = match keyword {
            b"HELP" => true,
            b"TYPE" => false,
            _ => {
                line.pos = line.bytes.len();
                return line.end();
            }
        };
        line.skip_blanks();
        line.next_byte()?;
        let name = if line.peek() == Some(b'"') {
            self.read_quoted_name_in_comment(line)?
        } else {
            Cow::Borrowed(line.take_metric_name())
        };
        match line.next_byte()? {
            // `# HELP` or `# HELP name` alone: an ordinary comment.
            b'\n' => return Ok(()),
            b' ' | b'\t' => {}
            _ => return Err("invalid metric name in comment".to_owned()),
        }
        let (index, _) = self.lookup(name);
        line.skip_blanks();
        if line.next_byte()? == b'\n' {
            return Ok(());
        }
        let family = &mut self.families[index];
        if is_help {
            if family.help.is_some() {
                return Err(format!(
                    "second HELP line for metric name {}",
                    quote(family.name.as_bytes())
                ));
            }
            family.help = Some(read_help(line)?);
        } else {
            if family.kind.is_some() {
                return Err(format!(
                    "second TYPE line for metric name {}, or TYPE reported after samples",
                    quote(family.name.as_bytes())
                ));
            }
            let word = trim_end_blanks(line.rest());
            line.end()?;
            let kind = kind_from_text(word)
                .ok_or_else(|| format!("unknown metric type {}", quote(word)))?;
            family.kind = Some(kind);
        }
        Ok(())
    }

    /// The quoted metric name of a `# HELP` or `# TYPE` line, from its opening quote.
    #[cold]
    #[inline(never)]
    fn read_quoted_name_in_comment(&self, line: &mut Line<'a>) -> Result<Cow<'a, [u8]>, String> {
        if self.rules == NameRules::Legacy {
            return Err(needs_utf8_names(line, "invalid metric name in comment"));
        }
        line.bump();
        let name = read_quoted(line, "metric name")?;
        if let Err(why) = self.check_quoted_name(&name) {
            return Err(format!(
                "invalid metric name {} in comment: {why}",
                quote(&name)
            ));
        }
        Ok(name)
    }

    /// Reads a sample line: name, optional labels, value, optional timestamp.
    fn parse_sample(&mut self, line: &mut Line<'a>) -> Result<Sample<'a>, String> {
        let name = line.take_metric_name();
        // `Some(closed)` if there are braces, `closed` once their `}` has been read.
        let (family, role, braces) = if name.is_empty() {
            let (family, role, closed) = self.parse_name_in_braces(line)?;
            (family, role, Some(closed))
        } else {
            let mut next = line.next_byte()?;
            let (family, role) = self.lookup(Cow::Borrowed(name));
            if is_blank(next) {
                line.skip_blanks();
                next = line.next_byte()?;
            }
            let braces = next == b'{';
            if braces {
                line.bump();
            }
            (family, role, braces.then_some(false))
        };
        let kind = *self.families[family]
            .kind
            .get_or_insert(MetricKind::Untyped);
        let mut labels = Vec::new();
        let mut special = None;
        if let Some(closed) = braces {
            if !closed {
                // Series of a body tend to have as many labels as the one before; the cap
                // keeps one huge label set from inflating every later sample.
                labels.reserve_exact(self.labels_last_time);
                self.parse_labels(line, family, kind, &mut labels, &mut special)?;
            }
            self.labels_last_time = labels.len().min(LABEL_CAPACITY_HINT_CAP);
            line.skip_blanks();
            line.next_byte()?;
        }

        let value_text = line.take_token();
        let next = line.next_byte()?;
        let value = parse_float(value_text)
            .ok_or_else(|| format!("expected float as value, got {}", quote(value_text)))?;

        let mut timestamp_ms = None;
        if next != b'\n' {
            line.skip_blanks();
            if line.next_byte()? != b'\n' {
                let text = line.take_token();
                line.next_byte()?;
                timestamp_ms = Some(parse_int(text).ok_or_else(|| {
                    format!("expected integer as timestamp, got {}", quote(text))
                })?);
                let rest = line.rest();
                line.end()?;
                if rest.iter().any(|&b| !is_blank(b)) {
                    return Err(format!("spurious string after timestamp: {}", quote(rest)));
                }
            }
        }
        Ok(Sample {
            family,
            role,
            labels,
            special,
            value,
            value_text,
            timestamp_ms,
        })
    }

    /// The start of a sample line without a bare metric name, which must be `{` and the
    /// quoted metric name (UTF-8 rules only). Returns its family, and whether the `}` came
    /// right after the name (else a `,` did, and the labels follow).
    #[cold]
    #[inline(never)]
    fn parse_name_in_braces(&mut self, line: &mut Line<'a>) -> Result<(usize, Role, bool), String> {
        let utf8 = self.rules == NameRules::Utf8;
        let invalid = |line: &Line<'a>| {
            let message = format!("invalid metric name {}", quote(bad_name(line.rest())));
            if utf8 {
                format!(
                    "{message}: a name that breaks the legacy rules goes quoted, as the \
                     first item inside the braces: {{\"my.metric\"}} 1"
                )
            } else {
                message
            }
        };
        let start = line.pos;
        if utf8 && line.peek() == Some(b'"') {
            line.bump();
            let Ok(name) = read_quoted(line, "metric name") else {
                line.pos = start;
                return Err(invalid(line));
            };
            return Err(format!(
                "quoted metric name {} must go inside the braces, as in {{{}}} 1",
                quote(&name),
                String::from_utf8_lossy(&line.bytes[start..line.pos])
            ));
        }
        if line.peek() != Some(b'{') {
            return Err(invalid(line));
        }
        line.bump();
        line.skip_blanks();
        if line.peek() != Some(b'"') {
            line.pos = start;
            return Err(invalid(line));
        }
        if !utf8 {
            return Err(needs_utf8_names(line, "invalid metric name"));
        }
        line.bump();
        let name = read_quoted(line, "metric name")?;
        if let Err(why) = self.check_quoted_name(&name) {
            return Err(format!("invalid metric name {}: {why}", quote(&name)));
        }
        line.skip_blanks();
        let closed = match line.next_byte()? {
            b'}' => true,
            b',' => false,
            b'=' => {
                return Err(format!(
                    "missing metric name: the first item inside the braces, {}, is a label",
                    quote(&name)
                ))
            }
            other => {
                return Err(format!(
                    "expected ',' or '}}' after metric name {}, found {}",
                    quote(&name),
                    quote_byte(other)
                ))
            }
        };
        line.bump();
        let (family, role) = self.lookup(name);
        Ok((family, role, closed))
    }

    /// Why a quoted name read from the body is not one, if it is not.
    fn check_quoted_name(&self, name: &[u8]) -> Result<(), &'static str> {
        match std::str::from_utf8(name) {
            Err(_) => Err("names must be valid UTF-8"),
            Ok(name) if !self.rules.is_valid_metric_name(name) => Err("names must not be empty"),
            Ok(_) => Ok(()),
        }
    }

    /// Reads the label pairs after `{`, up to and including the `}`.
    fn parse_labels(
        &mut self,
        line: &mut Line<'a>,
        family: usize,
        kind: MetricKind,
        labels: &mut Vec<Label>,
        special: &mut Option<f64>,
    ) -> Result<(), String> {
        self.label_names.clear();
        loop {
            line.skip_blanks();
            if line.next_byte()? == b'}' {
                line.bump();
                return Ok(());
            }
            let quoted = line.peek() == Some(b'"');
            let name = if quoted {
                self.read_quoted_label_name(line, family)?
            } else {
                let name = line.take_label_name();
                if name.is_empty() {
                    return Err(format!(
                        "invalid label name for metric {}",
                        quote(self.families[family].name.as_bytes())
                    ));
                }
                Cow::Borrowed(name)
            };
            let mut next = line.next_byte()?;
            if is_blank(next) {
                line.skip_blanks();
                next = line.next_byte()?;
            }
            if next != b'=' {
                return Err(self.no_equals_error(family, &name, quoted, next));
            }
            line.bump();
            if *name == *b"__name__" {
                return Err("label name \"__name__\" is reserved".to_owned());
            }
            if self.is_duplicate_label(copy(&name)) {
                return Err(format!(
                    "duplicate label name {} for metric {}",
                    quote(&name),
                    quote(self.families[family].name.as_bytes())
                ));
            }

            line.skip_blanks();
            let next = line.next_byte()?;
            if next != b'"' {
                return Err(format!(
                    "expected '\"' at start of label value, found {}",
                    quote_byte(next)
                ));
            }
            line.bump();
            let value = match read_quoted(line, "label value")? {
                Cow::Borrowed(bytes) => std::str::from_utf8(bytes)
                    .map(CompactString::from)
                    .map_err(|_| bytes.to_vec()),
                Cow::Owned(bytes) => String::from_utf8(bytes)
                    .map(CompactString::from)
                    .map_err(|e| e.into_bytes()),
            }
            .map_err(|bytes| format!("invalid label value {}", quote(&bytes)))?;

            let special_name = match (kind, &*name) {
                (MetricKind::Summary, b"quantile") => Some("quantile"),
                (kind, b"le") if kind.is_histogram() => Some("le"),
                _ => None,
            };
            if let Some(special_name) = special_name {
                *special = Some(parse_float(value.as_bytes()).ok_or_else(|| {
                    format!(
                        "expected float as value for '{special_name}' label, got {}",
                        quote(value.as_bytes())
                    )
                })?);
            }

            line.skip_blanks();
            let closed = match line.next_byte()? {
                b',' => false,
                b'}' => true,
                _ => {
                    return Err(format!(
                        "unexpected end of label value {}",
                        quote(value.as_bytes())
                    ))
                }
            };
            line.bump();
            if special_name.is_none() {
                labels.push(Label {
                    name: CompactString::from(text(&name)),
                    value,
                });
            }
            if closed {
                return Ok(());
            }
        }
    }

    /// A quoted label name, from its opening quote. Kept out of [`Parser::parse_labels`],
    /// whose every line should stay lean.
    #[cold]
    #[inline(never)]
    fn read_quoted_label_name(
        &self,
        line: &mut Line<'a>,
        family: usize,
    ) -> Result<Cow<'a, [u8]>, String> {
        let context = || {
            format!(
                "invalid label name for metric {}",
                quote(self.families[family].name.as_bytes())
            )
        };
        if self.rules == NameRules::Legacy {
            return Err(needs_utf8_names(line, &context()));
        }
        line.bump();
        let name = read_quoted(line, "label name")?;
        if let Err(why) = self.check_quoted_name(&name) {
            return Err(format!("{}: {} ({why})", context(), quote(&name)));
        }
        Ok(name)
    }

    /// The error for a label name followed by `next` instead of `=`.
    #[cold]
    #[inline(never)]
    fn no_equals_error(&self, family: usize, name: &[u8], quoted: bool, next: u8) -> String {
        if quoted && (next == b',' || next == b'}') {
            return format!(
                "multiple metric names for metric {}: {} stands alone inside the braces",
                quote(self.families[family].name.as_bytes()),
                quote(name)
            );
        }
        format!("expected '=' after label name, found {}", quote_byte(next))
    }

    /// Records `name` as a label of the current sample; true if it was already there.
    fn is_duplicate_label(&mut self, name: Cow<'a, [u8]>) -> bool {
        let names = &mut self.label_names;
        let duplicate = if names.len() < LINEAR_DUPLICATE_CHECK {
            names.contains(&name)
        } else {
            if names.len() == LINEAR_DUPLICATE_CHECK {
                self.label_name_set.clear();
                self.label_name_set.extend(names.iter().map(copy));
            }
            !self.label_name_set.insert(copy(&name))
        };
        if !duplicate {
            names.push(name);
        }
        duplicate
    }

    /// Files a sample into its family.
    fn add_sample(&mut self, sample: Sample<'a>) -> Result<(), String> {
        let family = &mut self.families[sample.family];
        let kind = family.kind.unwrap_or(MetricKind::Untyped);
        let count = |family: &FamilyState| {
            let value = sample.value;
            if value.is_finite() && value >= 0.0 {
                Ok(value as u64)
            } else {
                Err(format!(
                    "count for metric {} must be a non-negative number, got {}",
                    quote(family.name.as_bytes()),
                    quote(sample.value_text)
                ))
            }
        };
        let missing = |family: &FamilyState, label: &str| {
            format!(
                "missing \"{label}\" label for {} metric {}",
                kind.as_text(),
                quote(family.name.as_bytes())
            )
        };
        let simple = match kind {
            MetricKind::Counter => Some(MetricValue::counter(sample.value)),
            MetricKind::Gauge => Some(MetricValue::Gauge(sample.value)),
            MetricKind::Untyped => Some(MetricValue::Untyped(sample.value)),
            MetricKind::Summary | MetricKind::Histogram | MetricKind::GaugeHistogram => None,
        };
        if let Some(value) = simple {
            family.metrics.push(Metric {
                labels: sample.labels,
                value,
                timestamp_ms: sample.timestamp_ms,
            });
            return Ok(());
        }

        if kind == MetricKind::Summary {
            let update = match sample.role {
                Role::Count => SummaryUpdate::Count(count(family)?),
                Role::Sum => SummaryUpdate::Sum(sample.value),
                Role::Plain | Role::Bucket => SummaryUpdate::Quantile(Quantile {
                    quantile: sample.special.ok_or_else(|| missing(family, "quantile"))?,
                    value: sample.value,
                }),
            };
            let metric =
                family.merged_metric(sample.labels, || MetricValue::Summary(Box::default()));
            metric.timestamp_ms = metric.timestamp_ms.or(sample.timestamp_ms);
            if let MetricValue::Summary(summary) = &mut metric.value {
                update.apply(summary);
            }
        } else {
            let update = match sample.role {
                Role::Count => HistogramUpdate::Count(count(family)?),
                Role::Sum => HistogramUpdate::Sum(sample.value),
                Role::Plain | Role::Bucket => HistogramUpdate::Bucket(Bucket {
                    upper_bound: sample.special.ok_or_else(|| missing(family, "le"))?,
                    cumulative_count: count(family)?,
                    ..Bucket::default()
                }),
            };
            let metric =
                family.merged_metric(sample.labels, || MetricValue::Histogram(Box::default()));
            metric.timestamp_ms = metric.timestamp_ms.or(sample.timestamp_ms);
            if let MetricValue::Histogram(histogram) = &mut metric.value {
                update.apply(histogram);
            }
        }
        Ok(())
    }

    /// The family a name (of a sample or on a `# HELP`/`# TYPE` line) belongs to, created if
    /// need be.
    fn lookup(&mut self, name: Cow<'a, [u8]>) -> (usize, Role) {
        if let Some((last, index, role)) = &self.last_lookup {
            if *last == name {
                return (*index, *role);
            }
        }
        let (index, role) = self.resolve(copy(&name));
        self.last_lookup = Some((name, index, role));
        (index, role)
    }

    /// Upstream's `setOrCreateCurrentMF`: the family of that name if there is one, else the
    /// summary or histogram whose `_count`, `_sum` (or, for histograms, `_bucket`) this is,
    /// else a new family.
    ///
    /// Once resolved, a name resolves the same way for the rest of the body: families are
    /// never removed, a type once set never changes, and a family named like this one can
    /// only be created by resolving this very name.
    fn resolve(&mut self, name: Cow<'a, [u8]>) -> (usize, Role) {
        if self.record_resolved {
            self.resolved.push(copy(&name));
        }
        if let Some(index) = self.family_index(&name) {
            return (index, Role::Plain);
        }
        let suffixes: [(&[u8], Role); 3] = [
            (b"_count", Role::Count),
            (b"_sum", Role::Sum),
            (b"_bucket", Role::Bucket),
        ];
        for (suffix, role) in suffixes {
            let Some(base) = name.strip_suffix(suffix) else {
                continue;
            };
            if let Some(index) = self.family_index(base).filter(|_| !base.is_empty()) {
                let fits = match self.families[index].kind {
                    Some(MetricKind::Summary) => role != Role::Bucket,
                    Some(kind) => kind.is_histogram(),
                    None => false,
                };
                if fits {
                    return (index, role);
                }
            }
            break;
        }
        let index = self.families.len();
        self.families.push(FamilyState {
            name: text(&name).to_owned(),
            help: None,
            kind: None,
            metrics: Vec::new(),
            by_labels: HashMap::new(),
        });
        self.names.push(name.clone());
        if self.names.len() > SCANNED_FAMILIES {
            if self.by_name.is_empty() {
                let names = self.names.iter().cloned().enumerate();
                self.by_name
                    .extend(names.map(|(index, name)| (name, index)));
            } else {
                self.by_name.insert(name, index);
            }
        }
        (index, Role::Plain)
    }

    /// The family named exactly `name`, if there is one.
    fn family_index(&self, name: &[u8]) -> Option<usize> {
        if self.by_name.is_empty() {
            self.names.iter().position(|known| **known == *name)
        } else {
            self.by_name.get(name).copied()
        }
    }

    fn finish(self) -> Vec<MetricFamily> {
        self.families
            .into_iter()
            .filter(|family| !family.metrics.is_empty())
            .map(|family| MetricFamily {
                name: family.name,
                help: family.help,
                kind: family.kind.unwrap_or(MetricKind::Untyped),
                metrics: family.metrics,
                unit: None,
            })
            .collect()
    }
}

enum SummaryUpdate {
    Count(u64),
    Sum(f64),
    Quantile(Quantile),
}

impl SummaryUpdate {
    fn apply(self, summary: &mut Summary) {
        match self {
            SummaryUpdate::Count(count) => summary.sample_count = count,
            SummaryUpdate::Sum(sum) => summary.sample_sum = sum,
            SummaryUpdate::Quantile(quantile) => summary.quantiles.push(quantile),
        }
    }
}

enum HistogramUpdate {
    Count(u64),
    Sum(f64),
    Bucket(Bucket),
}

impl HistogramUpdate {
    fn apply(self, histogram: &mut Histogram) {
        match self {
            HistogramUpdate::Count(count) => histogram.sample_count = count,
            HistogramUpdate::Sum(sum) => histogram.sample_sum = sum,
            HistogramUpdate::Bucket(bucket) => histogram.buckets.push(bucket),
        }
    }
}

/// Reads a label value, or a quoted name, after its opening quote, up to and including the
/// closing quote, resolving the escapes `\\`, `\"` and `\n`. `what` names it in the error
/// for a line that ends inside it.
///
/// The common case, no escapes, is inlined at every use; the rest is not.
#[inline(always)]
fn read_quoted<'a>(line: &mut Line<'a>, what: &str) -> Result<Cow<'a, [u8]>, String> {
    let bytes = line.rest();
    let plain = bytes
        .iter()
        .position(|&b| b == b'"' || b == b'\\')
        .unwrap_or(bytes.len());
    if bytes.get(plain) == Some(&b'"') {
        line.pos += plain + 1;
        return Ok(Cow::Borrowed(&bytes[..plain]));
    }
    read_escaped(line, what, plain)
}

/// [`read_quoted`] from the first backslash, or the end of the line, which is `plain` bytes
/// past the opening quote.
#[inline(never)]
fn read_escaped<'a>(
    line: &mut Line<'a>,
    what: &str,
    plain: usize,
) -> Result<Cow<'a, [u8]>, String> {
    let bytes = line.rest();
    let start = line.pos;
    let mut value = bytes[..plain].to_vec();
    let mut i = plain;
    loop {
        match bytes.get(i) {
            None => {
                line.pos = start + i;
                line.end()?;
                return Err(format!(
                    "{what} {} contains unescaped new-line",
                    quote(&value)
                ));
            }
            Some(b'"') => {
                line.pos = start + i + 1;
                return Ok(Cow::Owned(value));
            }
            Some(b'\\') => {
                match escaped_byte(line, bytes.get(i + 1).copied())? {
                    b'"' => value.push(b'"'),
                    b'\\' => value.push(b'\\'),
                    b'n' => value.push(b'\n'),
                    other => return Err(invalid_escape(other)),
                }
                i += 2;
            }
            Some(&b) => {
                value.push(b);
                i += 1;
            }
        }
    }
}

/// Reads the rest of a `# HELP` line, resolving the escapes `\\`, `\n` and `\"`.
fn read_help(line: &mut Line<'_>) -> Result<String, String> {
    let bytes = line.rest();
    let Some(first) = bytes.iter().position(|&b| b == b'\\') else {
        line.end()?;
        return Ok(String::from_utf8_lossy(bytes).into_owned());
    };
    let mut text = bytes[..first].to_vec();
    let mut i = first;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' {
            match escaped_byte(line, bytes.get(i + 1).copied())? {
                b'\\' => text.push(b'\\'),
                b'n' => text.push(b'\n'),
                b'"' => text.push(b'"'),
                other => return Err(invalid_escape(other)),
            }
            i += 2;
        } else {
            text.push(b);
            i += 1;
        }
    }
    line.end()?;
    Ok(match String::from_utf8(text) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// The byte after a backslash; a backslash ending the line escapes its newline.
fn escaped_byte(line: &Line<'_>, byte: Option<u8>) -> Result<u8, String> {
    match byte {
        Some(byte) => Ok(byte),
        None => line.end().map(|()| b'\n'),
    }
}

fn invalid_escape(byte: u8) -> String {
    format!("invalid escape sequence '\\{}'", char::from(byte))
}

/// Go's `strconv.ParseFloat`, as upstream calls it: decimal notation with optional exponent,
/// and case-insensitive `inf`, `infinity` (optionally signed) and `nan` (unsigned). Hex
/// floats, underscores and out-of-range values are rejected.
fn parse_float(text: &[u8]) -> Option<f64> {
    if let Some(value) = parse_short_decimal(text) {
        return Some(value);
    }
    let text = std::str::from_utf8(text).ok()?;
    let value: f64 = text.parse().ok()?;
    let unsigned = text.strip_prefix(['+', '-']);
    let first = unsigned.unwrap_or(text).bytes().next()?;
    let word = first.is_ascii_alphabetic();
    if (value.is_nan() && unsigned.is_some()) || (value.is_infinite() && !word) {
        return None;
    }
    Some(value)
}

/// `-?digits(.digits)?` with at most 15 digits in all, which is what most values look like:
/// `m / 10^k` of exact operands is the correctly rounded value, as the full parse gives it.
/// `None` for anything else.
fn parse_short_decimal(text: &[u8]) -> Option<f64> {
    const POWERS: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (int_part, fraction) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &text[text.len()..]),
    };
    let digits = int_part.len() + fraction.len();
    let has_point = int_part.len() < text.len();
    if int_part.is_empty() || (has_point && fraction.is_empty()) || digits > 15 {
        return None;
    }
    let mut mantissa: u64 = 0;
    for &b in int_part.iter().chain(fraction) {
        if !b.is_ascii_digit() {
            return None;
        }
        mantissa = mantissa * 10 + u64::from(b - b'0');
    }
    let value = mantissa as f64 / POWERS[fraction.len()];
    Some(if negative { -value } else { value })
}

/// Go's `strconv.ParseInt(text, 10, 64)`.
fn parse_int(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// The word of a `# TYPE` line, case-insensitively as upstream (which also spells the gauge
/// histogram `gauge_histogram`).
fn kind_from_text(word: &[u8]) -> Option<MetricKind> {
    const KINDS: [(&[u8], MetricKind); 7] = [
        (b"counter", MetricKind::Counter),
        (b"gauge", MetricKind::Gauge),
        (b"histogram", MetricKind::Histogram),
        (b"summary", MetricKind::Summary),
        (b"untyped", MetricKind::Untyped),
        (b"gaugehistogram", MetricKind::GaugeHistogram),
        (b"gauge_histogram", MetricKind::GaugeHistogram),
    ];
    KINDS
        .iter()
        .find(|(text, _)| word.eq_ignore_ascii_case(text))
        .map(|&(_, kind)| kind)
}

/// The bytes to name in an `invalid metric name` error: the token where a name was expected.
fn bad_name(rest: &[u8]) -> &[u8] {
    let token = |stop: &dyn Fn(u8) -> bool| {
        let end = rest.iter().position(|&b| stop(b)).unwrap_or(rest.len());
        &rest[..end]
    };
    match token(&|b| is_blank(b) || b == b'{') {
        [] => token(&is_blank),
        name => name,
    }
}

fn trim_end_blanks(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|&b| !is_blank(b))
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

/// `Cow::clone`, with the copying of an owned name (a quoted name with escapes, which is
/// rare) kept out of line: every use in the hot path would otherwise carry an allocation.
#[inline(always)]
fn copy<'a>(name: &Cow<'a, [u8]>) -> Cow<'a, [u8]> {
    match name {
        Cow::Borrowed(bytes) => Cow::Borrowed(bytes),
        Cow::Owned(bytes) => copy_owned(bytes),
    }
}

#[cold]
#[inline(never)]
fn copy_owned(bytes: &[u8]) -> Cow<'static, [u8]> {
    Cow::Owned(bytes.to_vec())
}

/// Names are checked to be ASCII (bare) or UTF-8 (quoted) before they get here.
fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// The error for a quoted name at the cursor under the legacy rules: `context` and a
/// pointer to the flag that allows it.
#[cold]
fn needs_utf8_names(line: &mut Line<'_>, context: &str) -> String {
    line.bump();
    match read_quoted(line, "name") {
        Ok(name) => format!(
            "{context}: quoted names like {} need --push.enable-utf8-names",
            quote(&name)
        ),
        Err(_) => format!("{context}: quoted names need --push.enable-utf8-names"),
    }
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_label_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_label_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_metric_name_start(b: u8) -> bool {
    is_label_name_start(b) || b == b':'
}

fn is_metric_name_char(b: u8) -> bool {
    is_label_name_char(b) || b == b':'
}

/// The index of the first `\n`, eight bytes at a time.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const NEWLINES: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ NEWLINES;
        // Nonzero iff some byte of x is zero; its lowest set bit marks the first such byte.
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| offset + i)
}

/// Quotes bytes the way Go's `%q` does, for error messages.
fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_escaped(&mut out, c, '"');
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

/// Quotes one byte the way Go's `%q` does for a `byte`.
fn quote_byte(byte: u8) -> String {
    let mut out = String::from("'");
    push_escaped(&mut out, char::from(byte), '\'');
    out.push('\'');
    out
}

fn push_escaped(out: &mut String, c: char, quote: char) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if u32::from(c) < 0x20 || c == '\x7f' => {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        c if c.is_control() => {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::names::{label_needs_quoting, needs_quoting};
    use proptest::prelude::*;

    use MetricKind::{Counter, Gauge, GaugeHistogram, Untyped};

    // ---- family lookup past the scanned few -------------------------------------------

    #[test]
    fn families_resolve_alike_before_and_after_the_lookup_switches_to_hashing() {
        // More families than SCANNED_FAMILIES, then lines that must find earlier ones: a
        // sample of the second family, and the suffixed lines of a histogram declared
        // before the switch.
        let mut body = String::from("# TYPE early histogram\n");
        for i in 0..SCANNED_FAMILIES + 4 {
            body.push_str(&format!("# TYPE f{i} gauge\nf{i}{{a=\"1\"}} {i}\n"));
        }
        body.push_str("f1{a=\"2\"} 7\n");
        body.push_str("early_bucket{le=\"1\"} 1\nearly_bucket{le=\"+Inf\"} 2\n");
        body.push_str("early_sum 3\nearly_count 2\n");
        let families = parse(&body);
        assert_eq!(families.len(), SCANNED_FAMILIES + 5);
        assert_eq!(families[0].name, "early");
        assert_eq!(families[0].metrics.len(), 1);
        let f1 = families.iter().find(|f| f.name == "f1").expect("f1");
        assert_eq!(f1.metrics.len(), 2);
        assert!(families.iter().all(|f| !f.name.ends_with("_count")));
    }

    #[test]
    fn type_words_are_case_insensitive() {
        for (word, kind) in [
            ("counter", Some(Counter)),
            ("COUNTER", Some(Counter)),
            ("Gauge", Some(Gauge)),
            ("gauge_histogram", Some(GaugeHistogram)),
            ("GAUGEHISTOGRAM", Some(GaugeHistogram)),
            ("uNtYpEd", Some(Untyped)),
            ("gauges", None),
            ("", None),
        ] {
            assert_eq!(kind_from_text(word.as_bytes()), kind, "{word:?}");
        }
    }

    // ---- helpers ----------------------------------------------------------------------

    #[track_caller]
    fn parse(body: &str) -> Vec<MetricFamily> {
        match parse_text(body.as_bytes()) {
            Ok(families) => families,
            Err(e) => panic!("{body:?} failed: {e}"),
        }
    }

    #[track_caller]
    fn assert_error(body: impl AsRef<[u8]>, line: usize, fragment: &str) {
        let body = body.as_ref();
        match parse_text(body) {
            Ok(families) => panic!(
                "{:?} parsed, to {families:?}",
                String::from_utf8_lossy(body)
            ),
            Err(e) => {
                assert_eq!(e.line, line, "wrong line for {e}");
                assert!(
                    e.message.contains(fragment),
                    "{:?} does not contain {fragment:?}",
                    e.message
                );
            }
        }
    }

    fn family(
        name: &str,
        help: Option<&str>,
        kind: MetricKind,
        metrics: Vec<Metric>,
    ) -> MetricFamily {
        MetricFamily {
            name: name.to_owned(),
            help: help.map(str::to_owned),
            kind,
            metrics,
            unit: None,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs.iter().map(|&(n, v)| Label::new(n, v)).collect()
    }

    fn metric(pairs: &[(&str, &str)], value: MetricValue) -> Metric {
        Metric {
            labels: labels(pairs),
            value,
            timestamp_ms: None,
        }
    }

    fn at(metric: Metric, timestamp_ms: i64) -> Metric {
        Metric {
            timestamp_ms: Some(timestamp_ms),
            ..metric
        }
    }

    fn summary(pairs: &[(&str, &str)], count: u64, sum: f64, quantiles: &[(f64, f64)]) -> Metric {
        metric(
            pairs,
            MetricValue::Summary(Box::new(Summary {
                sample_count: count,
                sample_sum: sum,
                quantiles: quantiles
                    .iter()
                    .map(|&(quantile, value)| Quantile { quantile, value })
                    .collect(),
                created: None,
            })),
        )
    }

    fn histogram(pairs: &[(&str, &str)], count: u64, sum: f64, buckets: &[(f64, u64)]) -> Metric {
        metric(
            pairs,
            MetricValue::Histogram(Box::new(Histogram {
                sample_count: count,
                sample_sum: sum,
                buckets: buckets
                    .iter()
                    .map(|&(upper_bound, cumulative_count)| Bucket {
                        upper_bound,
                        cumulative_count,
                        ..Bucket::default()
                    })
                    .collect(),
                ..Histogram::default()
            })),
        )
    }

    fn untyped(pairs: &[(&str, &str)], value: f64) -> Metric {
        metric(pairs, MetricValue::Untyped(value))
    }

    /// The one value of a one-sample body.
    #[track_caller]
    fn single_value(body: &str) -> f64 {
        let families = parse(body);
        assert_eq!(families.len(), 1, "{families:?}");
        assert_eq!(families[0].metrics.len(), 1, "{families:?}");
        match families[0].metrics[0].value.simple_value() {
            Some(v) => v,
            None => panic!("not a simple value: {:?}", families[0].metrics[0].value),
        }
    }

    // ---- accepted bodies ----------------------------------------------------------------

    #[test]
    fn empty_and_blank_bodies_have_no_families() {
        for body in ["", "\n", "\n\n", "   ", " \t \n\t\n  ", "\n   \n\t"] {
            assert_eq!(parse(body), vec![], "{body:?}");
        }
    }

    #[test]
    fn readme_example() {
        let body = "# TYPE some_metric counter\nsome_metric{label=\"val1\"} 42\n\
                    # TYPE another_metric gauge\n# HELP another_metric Just an example.\n\
                    another_metric 2398.283\n";
        assert_eq!(
            parse(body),
            vec![
                family(
                    "some_metric",
                    None,
                    Counter,
                    vec![metric(&[("label", "val1")], MetricValue::counter(42.0))],
                ),
                family(
                    "another_metric",
                    Some("Just an example."),
                    Gauge,
                    vec![metric(&[], MetricValue::Gauge(2398.283))],
                ),
            ]
        );
    }

    #[test]
    fn minimal_untyped_samples_and_timestamps() {
        let body = "\nminimal_metric 1.234\nanother_metric -3e3 103948\n# Even that:\n\
                    no_labels{} 3\n# HELP line for non-existing metric will be ignored.\n";
        assert_eq!(
            parse(body),
            vec![
                family("minimal_metric", None, Untyped, vec![untyped(&[], 1.234)]),
                family(
                    "another_metric",
                    None,
                    Untyped,
                    vec![at(untyped(&[], -3e3), 103948)],
                ),
                family("no_labels", None, Untyped, vec![untyped(&[], 3.0)]),
            ]
        );
    }

    #[test]
    fn whitespace_variants_and_escapes() {
        let body = "\n# A normal comment.\n#\n# TYPE name counter\n\
            name{labelname=\"val1\",basename=\"basevalue\"} 42\n\
            name {labelname=\"val2\",basename=\"base\\\"v\\\\al\\nue\"} 0.23 1234567890\n\
            # HELP name two-line\\n doc  str\\\\ing\n\n \
            # HELP  name2  \tdoc str\"ing 2\n  #    TYPE    name2 gauge\n\
            name2{labelname=\"val2\"\t,basename   =   \"basevalue2\"\t\t} +Inf 54321\n\
            name2{ labelname = \"val1\" , }-Inf\n";
        assert_eq!(
            parse(body),
            vec![
                family(
                    "name",
                    Some("two-line\n doc  str\\ing"),
                    Counter,
                    vec![
                        metric(
                            &[("labelname", "val1"), ("basename", "basevalue")],
                            MetricValue::counter(42.0),
                        ),
                        at(
                            metric(
                                &[("labelname", "val2"), ("basename", "base\"v\\al\nue")],
                                MetricValue::counter(0.23),
                            ),
                            1234567890,
                        ),
                    ],
                ),
                family(
                    "name2",
                    Some("doc str\"ing 2"),
                    Gauge,
                    vec![
                        at(
                            metric(
                                &[("labelname", "val2"), ("basename", "basevalue2")],
                                MetricValue::Gauge(f64::INFINITY),
                            ),
                            54321,
                        ),
                        metric(
                            &[("labelname", "val1")],
                            MetricValue::Gauge(f64::NEG_INFINITY)
                        ),
                    ],
                ),
            ]
        );
    }

    #[test]
    fn python_trailing_whitespace_line_is_fine() {
        let expected = vec![family("a", None, Untyped, vec![untyped(&[], 1.0)])];
        assert_eq!(parse("a 1\n    "), expected);
        assert_eq!(parse("a 1\n\t \t"), expected);
        assert_eq!(parse("a 1\n\n  \n   "), expected);
    }

    #[test]
    fn blanks_may_trail_a_sample() {
        let expected = vec![family("a", None, Untyped, vec![at(untyped(&[], 1.0), 5)])];
        assert_eq!(parse("a 1 5 \t\n"), expected);
        assert_eq!(
            parse("a 1 \t\n"),
            vec![family("a", None, Untyped, vec![untyped(&[], 1.0)])]
        );
    }

    #[test]
    fn labels_in_all_shapes() {
        let body = "a{} 1\na{x=\"1\",} 2\na{ x = \"1\" , y=\"\" } 3\na {x=\"1\"}4\na{x=\"1\"}\t5\n";
        assert_eq!(
            parse(body),
            vec![family(
                "a",
                None,
                Untyped,
                vec![
                    untyped(&[], 1.0),
                    untyped(&[("x", "1")], 2.0),
                    untyped(&[("x", "1"), ("y", "")], 3.0),
                    untyped(&[("x", "1")], 4.0),
                    untyped(&[("x", "1")], 5.0),
                ],
            )]
        );
    }

    #[test]
    fn label_value_escapes_and_unicode() {
        let body = "a{x=\"q\\\"b\\\\n\\nl\",y=\"Björn 佖佥\",z=\"{}=,# \"} 1\n";
        assert_eq!(
            parse(body),
            vec![family(
                "a",
                None,
                Untyped,
                vec![untyped(
                    &[("x", "q\"b\\n\nl"), ("y", "Björn 佖佥"), ("z", "{}=,# ")],
                    1.0,
                )],
            )]
        );
    }

    #[test]
    fn labels_keep_input_order_and_many_labels_are_fine() {
        let names: Vec<String> = (0..40).map(|i| format!("l{}", 40 - i)).collect();
        let pairs: Vec<String> = names.iter().map(|n| format!("{n}=\"v\"")).collect();
        let families = parse(&format!("a{{{}}} 1\n", pairs.join(",")));
        let got: Vec<&str> = families[0].metrics[0]
            .labels
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(got, names);
    }

    #[test]
    fn special_values() {
        assert!(single_value("a NaN\n").is_nan());
        assert!(single_value("a nan\n").is_nan());
        assert_eq!(single_value("a +Inf\n"), f64::INFINITY);
        assert_eq!(single_value("a -Inf\n"), f64::NEG_INFINITY);
        assert_eq!(single_value("a Inf\n"), f64::INFINITY);
        assert_eq!(single_value("a inf\n"), f64::INFINITY);
        assert_eq!(single_value("a -infinity\n"), f64::NEG_INFINITY);
        assert_eq!(single_value("a +InFiNiTy\n"), f64::INFINITY);
    }

    #[test]
    fn decimal_values() {
        for (text, value) in [
            ("0", 0.0),
            ("-0", 0.0),
            ("42", 42.0),
            ("+42", 42.0),
            ("08", 8.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("-3e3", -3000.0),
            ("1.7560473e+06", 1756047.3),
            ("1E-2", 0.01),
            ("1e-400", 0.0),
            ("1.7976931348623157e308", f64::MAX),
        ] {
            assert_eq!(single_value(&format!("a {text}\n")), value, "{text}");
        }
    }

    /// A body of more than [`PARALLEL_BODY_BYTES`]: `families` blocks of `# TYPE` and
    /// samples, each block shaped by `block`.
    fn large_body(families: usize, block: impl Fn(usize, &mut String)) -> String {
        let mut body = String::new();
        let mut f = 0;
        while body.len() < PARALLEL_BODY_BYTES * 2 || f < families {
            block(f, &mut body);
            f += 1;
        }
        body
    }

    #[test]
    fn large_bodies_parse_in_parts_as_in_one_pass() {
        let one_pass = |body: &str| {
            parse_lines(body.as_bytes(), NameRules::Legacy, false)
                .map(Parser::finish)
                .map_err(|e| e.to_string())
        };
        let in_parts = |body: &str| {
            parse_text_with(body.as_bytes(), NameRules::Legacy).map_err(|e| e.to_string())
        };
        let series = |f: usize, out: &mut String, name: &str| {
            for i in 0..2_000 {
                let _ = writeln!(out, "{name}{{s=\"{i}\",f=\"{f}\"}} {i}.5");
            }
        };
        let bodies = [
            // Separate families: parsed in parts.
            large_body(4, |f, out| {
                let _ = writeln!(out, "# TYPE g{f} gauge");
                series(f, out, &format!("g{f}"));
            }),
            // One family throughout, typed once: a later part meets it again.
            large_body(4, |f, out| {
                if f == 0 {
                    out.push_str("# TYPE g gauge\n");
                }
                out.push_str("# a comment\n");
                series(f, out, "g");
            }),
            // Summaries whose `_count` lines come in a later block.
            large_body(4, |f, out| {
                let _ = writeln!(out, "# TYPE s{f} summary");
                let _ = writeln!(out, "s{f}{{quantile=\"0.5\"}} 1");
                if f > 0 {
                    let _ = writeln!(out, "s{}_count 3", f - 1);
                }
                series(f, out, &format!("u{f}"));
            }),
            // An untyped `x_count` first, its summary `x` typed later.
            large_body(4, |f, out| {
                match f {
                    0 => out.push_str("x_count 1\n"),
                    3 => out.push_str("# TYPE x summary\nx_count 2\n"),
                    _ => {}
                }
                let _ = writeln!(out, "# HELP h{f} help");
                series(f, out, &format!("h{f}"));
            }),
            // An error late in the body.
            large_body(4, |f, out| {
                let _ = writeln!(out, "# HELP e{f} help");
                series(f, out, &format!("e{f}"));
                if f == 15 {
                    out.push_str("# TYPE e0 counter\n");
                }
            }),
        ];
        for body in &bodies {
            assert!(cut_at_comments(body.as_bytes(), 4).len() > 1);
            assert_eq!(in_parts(body), one_pass(body));
        }
        assert!(in_parts(&bodies[4]).is_err());
        // The first body really is parsed in parts.
        assert!(parse_in_parts(bodies[0].as_bytes(), NameRules::Legacy).is_some());
        assert!(parse_in_parts(bodies[1].as_bytes(), NameRules::Legacy).is_none());
    }

    #[test]
    fn short_decimals_parse_as_the_full_parser_does() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..100_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = 1 + (x % 17) as usize;
            let mut text = if i % 3 == 0 {
                "-".to_string()
            } else {
                String::new()
            };
            let all: String = (0..digits)
                .map(|d| char::from(b'0' + ((x >> (d * 3)) % 10) as u8))
                .collect();
            let point = (x >> 60) as usize % (digits + 1);
            text.push_str(&all[..point.max(1)]);
            if point > 0 && point < digits {
                text.push('.');
                text.push_str(&all[point..]);
            }
            let full: f64 = text.parse().unwrap();
            match parse_short_decimal(text.as_bytes()) {
                Some(fast) => assert_eq!(fast.to_bits(), full.to_bits(), "{text}"),
                None => assert!(text.trim_start_matches('-').len() > 15, "{text}"),
            }
            assert_eq!(
                parse_float(text.as_bytes()).unwrap().to_bits(),
                full.to_bits()
            );
        }
        for text in ["", "-", ".", "1.", ".5", "1.2.3", "+1", "1e5", "0x1", "1_0"] {
            assert_eq!(parse_short_decimal(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn name_may_run_straight_into_its_value() {
        // As upstream: a name ends at the first byte that cannot continue it.
        assert_eq!(
            parse("a-1\nb+2 7\n"),
            vec![
                family("a", None, Untyped, vec![untyped(&[], -1.0)]),
                family("b", None, Untyped, vec![at(untyped(&[], 2.0), 7)]),
            ]
        );
    }

    #[test]
    fn metric_names_with_colons_and_underscores() {
        let families = parse("_:a:b_1 1\n:x 2\n");
        let names: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["_:a:b_1", ":x"]);
    }

    #[test]
    fn timestamps_are_kept() {
        assert_eq!(
            parse("a 1 -2\nb 1 +3\nc 1 9223372036854775807\n")
                .iter()
                .map(|f| f.metrics[0].timestamp_ms)
                .collect::<Vec<_>>(),
            [Some(-2), Some(3), Some(i64::MAX)]
        );
    }

    #[test]
    fn help_before_and_after_type() {
        let body = "# HELP a first\n# TYPE a gauge\na 1\n# TYPE b counter\n# HELP b second\nb 2\n";
        assert_eq!(
            parse(body),
            vec![
                family(
                    "a",
                    Some("first"),
                    Gauge,
                    vec![metric(&[], MetricValue::Gauge(1.0))]
                ),
                family(
                    "b",
                    Some("second"),
                    Counter,
                    vec![metric(&[], MetricValue::counter(2.0))],
                ),
            ]
        );
    }

    #[test]
    fn help_after_samples_is_fine() {
        assert_eq!(
            parse("a 1\n# HELP a late\n"),
            vec![family("a", Some("late"), Untyped, vec![untyped(&[], 1.0)])]
        );
    }

    #[test]
    fn help_text_escapes_and_verbatim_rest() {
        let families = parse("# HELP a x\\\\y\\nz \\\"q\\\" {}\t\"# end  \na 1\n");
        assert_eq!(
            families[0].help.as_deref(),
            Some("x\\y\nz \"q\" {}\t\"# end  ")
        );
    }

    #[test]
    fn help_with_invalid_utf8_is_made_valid() {
        let families = parse_text(b"# HELP a bad \xbd byte\na 1\n").unwrap_or_default();
        assert_eq!(families[0].help.as_deref(), Some("bad \u{fffd} byte"));
    }

    #[test]
    fn help_without_keyword_separator() {
        // `#HELP` needs no blank after the `#`.
        let families = parse("#HELP a doc\na 1\n");
        assert_eq!(families[0].help.as_deref(), Some("doc"));
    }

    #[test]
    fn ordinary_and_incomplete_comments_are_ignored() {
        let body = "#\n# \n#foo\n# some comment\n# HELP\n# HELP \n# TYPE\n# HELP a\n\
                    # TYPE a\n# HELP a   \n# TYPE a \t\n# help a lower case\n# HELPER a x\n";
        assert_eq!(parse(body), vec![]);
        // None of those set anything, so these are no second HELP/TYPE.
        let families = parse(&format!("{body}# HELP a doc\n# TYPE a counter\na 1\n"));
        assert_eq!(
            families,
            vec![family(
                "a",
                Some("doc"),
                Counter,
                vec![metric(&[], MetricValue::counter(1.0))]
            )]
        );
    }

    #[test]
    fn type_words() {
        for (word, kind) in [
            ("counter", Counter),
            ("gauge", Gauge),
            ("untyped", Untyped),
            ("summary", MetricKind::Summary),
            ("histogram", MetricKind::Histogram),
            ("gaugehistogram", GaugeHistogram),
            ("gauge_histogram", GaugeHistogram),
            ("COUNTER", Counter),
            ("Gauge", Gauge),
            ("gauge \t", Gauge),
        ] {
            let sample = if kind.is_compound() {
                "a_count 1"
            } else {
                "a 1"
            };
            let families = parse(&format!("# TYPE a {word}\n{sample}\n"));
            assert_eq!(families.len(), 1, "{word:?}");
            assert_eq!(
                (families[0].name.as_str(), families[0].kind),
                ("a", kind),
                "{word:?}"
            );
        }
    }

    #[test]
    fn families_keep_order_of_first_appearance_and_empty_ones_are_dropped() {
        let body = "# TYPE b gauge\n# HELP c nothing\na 1\nb 2\n# TYPE d counter\n";
        let names: Vec<String> = parse(body).into_iter().map(|f| f.name).collect();
        assert_eq!(names, ["b", "a"]);
    }

    #[test]
    fn samples_of_a_family_need_not_be_contiguous() {
        let body = "# TYPE a counter\na{x=\"1\"} 1\nb 2\na{x=\"2\"} 3\nb 4\n";
        assert_eq!(
            parse(body),
            vec![
                family(
                    "a",
                    None,
                    Counter,
                    vec![
                        metric(&[("x", "1")], MetricValue::counter(1.0)),
                        metric(&[("x", "2")], MetricValue::counter(3.0)),
                    ],
                ),
                family(
                    "b",
                    None,
                    Untyped,
                    vec![untyped(&[], 2.0), untyped(&[], 4.0)]
                ),
            ]
        );
    }

    #[test]
    fn duplicate_series_are_kept() {
        assert_eq!(parse("a 1\na 2\n")[0].metrics.len(), 2);
    }

    #[test]
    fn full_histogram() {
        let body = "\n# HELP request_duration_microseconds The response latency.\n\
            # TYPE request_duration_microseconds histogram\n\
            request_duration_microseconds_bucket{le=\"100\"} 123\n\
            request_duration_microseconds_bucket{le=\"120\"} 412\n\
            request_duration_microseconds_bucket{le=\"144\"} 592\n\
            request_duration_microseconds_bucket{le=\"172.8\"} 1524\n\
            request_duration_microseconds_bucket{le=\"+Inf\"} 2693\n\
            request_duration_microseconds_sum 1.7560473e+06\n\
            request_duration_microseconds_count 2693\n";
        assert_eq!(
            parse(body),
            vec![family(
                "request_duration_microseconds",
                Some("The response latency."),
                MetricKind::Histogram,
                vec![histogram(
                    &[],
                    2693,
                    1756047.3,
                    &[
                        (100.0, 123),
                        (120.0, 412),
                        (144.0, 592),
                        (172.8, 1524),
                        (f64::INFINITY, 2693),
                    ],
                )],
            )]
        );
    }

    #[test]
    fn histograms_merge_by_label_set() {
        let body = "# TYPE h histogram\n\
            h_bucket{a=\"1\",b=\"2\",le=\"1\"} 1 100\n\
            h_bucket{le=\"1\",a=\"2\"} 5\n\
            h_bucket{b=\"2\",le=\"+Inf\",a=\"1\"} 3 200\n\
            h_sum{b=\"2\",a=\"1\"} 7.5\n\
            h_count{a=\"1\",b=\"2\"} 3.9\n\
            h{a=\"2\",le=\"+Inf\"} 6\n\
            h_count{a=\"2\"} 6\n";
        assert_eq!(
            parse(body),
            vec![family(
                "h",
                None,
                MetricKind::Histogram,
                vec![
                    at(
                        histogram(
                            &[("a", "1"), ("b", "2")],
                            3,
                            7.5,
                            &[(1.0, 1), (f64::INFINITY, 3)],
                        ),
                        100,
                    ),
                    histogram(&[("a", "2")], 6, 0.0, &[(1.0, 5), (f64::INFINITY, 6)]),
                ],
            )]
        );
    }

    #[test]
    fn gauge_histogram() {
        let body = "# TYPE g gaugehistogram\ng_bucket{le=\"1\"} 2\ng_bucket{le=\"+Inf\"} 3\n\
                    g_sum 4\ng_count 3\n";
        assert_eq!(
            parse(body),
            vec![family(
                "g",
                None,
                GaugeHistogram,
                vec![histogram(&[], 3, 4.0, &[(1.0, 2), (f64::INFINITY, 3)])],
            )]
        );
    }

    #[test]
    fn full_summary_mixed_with_other_families() {
        // Upstream's "evil summary", but where upstream keeps the last timestamp of a merged
        // metric, we keep the first.
        let body = "\n# TYPE my_summary summary\n\
            my_summary{n1=\"val1\",quantile=\"0.5\"} 110\n\
            decoy -1 -2\n\
            my_summary{n1=\"val1\",quantile=\"0.9\"} 140 1\n\
            my_summary_count{n1=\"val1\"} 42\n\
            my_summary_sum{n1=\"val1\"} 4711 2\n\
            fake_sum{n1=\"val1\"} 2001\n\
            # TYPE another_summary summary\n\
            another_summary_count{n2=\"val2\",n1=\"val1\"} 20\n\
            my_summary_count{n2=\"val2\",n1=\"val1\"} 5 5\n\
            another_summary{n1=\"val1\",n2=\"val2\",quantile=\".3\"} -1.2\n\
            my_summary_sum{n1=\"val2\"} 08 15\n\
            my_summary{n1=\"val3\", quantile=\"0.2\"} 4711\n  \
            my_summary{n1=\"val1\",n2=\"val2\",quantile=\"-12.34\",} 12\n\
            # some\n# funny comments\n# HELP\n# HELP\n# HELP my_summary\n# HELP my_summary\n";
        assert_eq!(
            parse(body),
            vec![
                family(
                    "my_summary",
                    None,
                    MetricKind::Summary,
                    vec![
                        at(
                            summary(&[("n1", "val1")], 42, 4711.0, &[(0.5, 110.0), (0.9, 140.0)]),
                            1,
                        ),
                        at(
                            summary(&[("n2", "val2"), ("n1", "val1")], 5, 0.0, &[(-12.34, 12.0)]),
                            5,
                        ),
                        at(summary(&[("n1", "val2")], 0, 8.0, &[]), 15),
                        summary(&[("n1", "val3")], 0, 0.0, &[(0.2, 4711.0)]),
                    ],
                ),
                family("decoy", None, Untyped, vec![at(untyped(&[], -1.0), -2)]),
                family(
                    "fake_sum",
                    None,
                    Untyped,
                    vec![untyped(&[("n1", "val1")], 2001.0)]
                ),
                family(
                    "another_summary",
                    None,
                    MetricKind::Summary,
                    vec![summary(
                        &[("n2", "val2"), ("n1", "val1")],
                        20,
                        0.0,
                        &[(0.3, -1.2)],
                    )],
                ),
            ]
        );
    }

    #[test]
    fn counts_are_truncated() {
        let body = "# TYPE h histogram\nh_bucket{le=\"1\"} 123.9\nh_count 2693.9\n\
                    # TYPE s summary\ns_count 1e3\n";
        let families = parse(body);
        assert_eq!(
            families[0].metrics,
            vec![histogram(&[], 2693, 0.0, &[(1.0, 123)])]
        );
        assert_eq!(families[1].metrics, vec![summary(&[], 1000, 0.0, &[])]);
    }

    #[test]
    fn quantile_and_le_are_dropped_from_every_line_of_their_family() {
        let body = "# TYPE s summary\ns_count{quantile=\"0.5\",x=\"1\"} 2\ns_sum{x=\"1\",quantile=\"1\"} 3\n\
                    # TYPE h histogram\nh_sum{le=\"7\"} 4\nh_count{le=\"7\"} 1\n";
        assert_eq!(
            parse(body),
            vec![
                family(
                    "s",
                    None,
                    MetricKind::Summary,
                    vec![summary(&[("x", "1")], 2, 3.0, &[])]
                ),
                family(
                    "h",
                    None,
                    MetricKind::Histogram,
                    vec![histogram(&[], 1, 4.0, &[])]
                ),
            ]
        );
    }

    #[test]
    fn quantile_and_le_are_plain_labels_elsewhere() {
        let body = "# TYPE s summary\ns{le=\"x\",quantile=\"0.5\"} 1\n\
                    # TYPE h histogram\nh_bucket{quantile=\"x\",le=\"1\"} 1\n\
                    c{le=\"x\",quantile=\"y\"} 1\n";
        assert_eq!(
            parse(body),
            vec![
                family(
                    "s",
                    None,
                    MetricKind::Summary,
                    vec![summary(&[("le", "x")], 0, 0.0, &[(0.5, 1.0)])],
                ),
                family(
                    "h",
                    None,
                    MetricKind::Histogram,
                    vec![histogram(&[("quantile", "x")], 0, 0.0, &[(1.0, 1)])],
                ),
                family(
                    "c",
                    None,
                    Untyped,
                    vec![untyped(&[("le", "x"), ("quantile", "y")], 1.0)]
                ),
            ]
        );
    }

    #[test]
    fn histogram_line_with_the_family_name_is_a_bucket() {
        assert_eq!(
            parse("# TYPE h histogram\nh{le=\"2\"} 3\n"),
            vec![family(
                "h",
                None,
                MetricKind::Histogram,
                vec![histogram(&[], 0, 0.0, &[(2.0, 3)])]
            )]
        );
    }

    #[test]
    fn suffixed_names_need_a_typed_base() {
        // No base at all, a base without a type, an untyped, counter or summary base for
        // `_bucket`: all separate families.
        let body = "x_count 1\n# HELP y doc\ny_count 2\nz 3\nz_sum 4\n# TYPE c counter\nc 0\n\
                    c_count 5\n# TYPE s summary\ns_bucket 6\n_count 7\n";
        let names: Vec<(String, MetricKind)> =
            parse(body).into_iter().map(|f| (f.name, f.kind)).collect();
        assert_eq!(
            names,
            [
                ("x_count", Untyped),
                ("y_count", Untyped),
                ("z", Untyped),
                ("z_sum", Untyped),
                ("c", Counter),
                ("c_count", Untyped),
                ("s_bucket", Untyped),
                ("_count", Untyped),
            ]
            .map(|(n, k)| (n.to_owned(), k))
        );
    }

    #[test]
    fn help_and_type_lines_resolve_names_like_samples() {
        // The HELP of `s_count` is the HELP of summary `s`.
        assert_eq!(
            parse("# TYPE s summary\n# HELP s_count doc\ns_count 1\n"),
            vec![family(
                "s",
                Some("doc"),
                MetricKind::Summary,
                vec![summary(&[], 1, 0.0, &[])]
            )]
        );
        // Once a family `s_count` exists, it wins over the `_count` of summary `s`.
        assert_eq!(
            parse("# HELP s_count doc\n# TYPE s summary\ns_count 3\n"),
            vec![family(
                "s_count",
                Some("doc"),
                Untyped,
                vec![untyped(&[], 3.0)]
            )]
        );
        assert_error(
            "# TYPE s summary\n# HELP s doc\n# HELP s_sum other\n",
            3,
            "second HELP line for metric name \"s\"",
        );
        assert_error(
            "# TYPE h histogram\n# TYPE h_bucket counter\n",
            2,
            "second TYPE line for metric name \"h\"",
        );
    }

    #[test]
    fn first_error_on_an_unterminated_line_wins_over_the_end() {
        assert_error(
            "metric{label=\"\\t\"} 3.14",
            1,
            "invalid escape sequence '\\t'",
        );
        assert_error(
            "metric{@=\"bla\"} 3.14",
            1,
            "invalid label name for metric \"metric\"",
        );
        assert_error("1a", 1, "invalid metric name \"1a\"");
        assert_error("# HELP a x\n# HELP a y", 2, "second HELP line");
        assert_error("# TYPE a gauge\n# TYPE a gauge", 2, "second TYPE line");
    }

    // ---- errors -------------------------------------------------------------------------

    #[test]
    fn error_display() {
        let e = parse_text(b"a 1\nb x\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "text format parsing error in line 2: expected float as value, got \"x\""
        );
    }

    #[test]
    fn missing_final_newline() {
        assert_error(
            "\nbla 3.14\nblubber 42",
            3,
            "unexpected end of input stream",
        );
        for body in [
            "a 1",
            "a",
            "a ",
            "a{",
            "a{b",
            "a{b=",
            "a{b=\"c",
            "a{b=\"c\"",
            "a{b=\"c\"}",
            "a 1 ",
            "a 1 2",
            "a 1 2 ",
            "a 1 2 x",
            "a{b=\"c\\",
            "#",
            "# ",
            "# foo",
            "# HELP",
            "# HELP a",
            "# HELP a ",
            "# HELP a doc",
            "# HELP a doc\\n",
            "# TYPE a counter",
            "# TYPE a ",
            "  a 1",
        ] {
            assert_error(body, 1, "unexpected end of input stream");
        }
    }

    #[test]
    fn crlf_is_rejected() {
        assert_error("a 1\r\n", 1, "expected float as value, got \"1\\r\"");
        assert_error(
            "a{b=\"c\"} 1\r\n",
            1,
            "expected float as value, got \"1\\r\"",
        );
        assert_error(
            "a 1 5\r\n",
            1,
            "expected integer as timestamp, got \"5\\r\"",
        );
        assert_error(
            "# TYPE a counter\r\na 1\r\n",
            1,
            "unknown metric type \"counter\\r\"",
        );
        assert_error("\r\n", 1, "invalid metric name \"\\r\"");
    }

    #[test]
    fn invalid_values() {
        for text in [
            "blubb", "1_2", "0x1p-3", "0x1P-3", "0X1", "0x1", "0b1", "0B1", "0o1", "0O1", "+nan",
            "-NaN", "1e400", "-1e400", "1,5", "--1", "1e", ".", "+", "infin", "∞", "1\x0b",
        ] {
            assert_error(
                format!("a {text}\n"),
                1,
                &format!("expected float as value, got {}", quote(text.as_bytes())),
            );
        }
        assert_error(b"a \xff\n", 1, "expected float as value, got \"\\xff\"");
    }

    #[test]
    fn missing_value() {
        for body in ["a\n", "a \n", "a{}\n", "a{} \n", "a{b=\"c\"}\t\n"] {
            assert_error(body, 1, "expected float as value, got \"\"");
        }
    }

    #[test]
    fn invalid_timestamps() {
        assert_error(
            "a{label=\"bla\"} 3.14 2.72\n",
            1,
            "expected integer as timestamp, got \"2.72\"",
        );
        assert_error("a 1 x\n", 1, "expected integer as timestamp, got \"x\"");
        assert_error(
            "a 1 9223372036854775808\n",
            1,
            "expected integer as timestamp",
        );
        assert_error("a 1 1e3\n", 1, "expected integer as timestamp");
        assert_error(
            "a 1 # comment\n",
            1,
            "expected integer as timestamp, got \"#\"",
        );
    }

    #[test]
    fn spurious_string_after_timestamp() {
        assert_error(
            "a{label=\"bla\"} 3.14 2 3\n",
            1,
            "spurious string after timestamp: \" 3\"",
        );
        assert_error(
            "a 1 2\tx \n",
            1,
            "spurious string after timestamp: \"\\tx \"",
        );
    }

    #[test]
    fn invalid_metric_names() {
        assert_error("1a 5\n", 1, "invalid metric name \"1a\"");
        assert_error(
            "@invalidmetric{label=\"bla\"} 3.14 2\n",
            1,
            "invalid metric name \"@invalidmetric\"",
        );
        assert_error(
            "{label=\"bla\"} 3.14 2\n",
            1,
            "invalid metric name \"{label=\\\"bla\\\"}\"",
        );
        assert_error("a 1\n\n  \u{e9}x 2\n", 3, "invalid metric name \"\u{e9}x\"");
    }

    #[test]
    fn invalid_metric_names_in_comments() {
        for body in [
            "# TYPE met-ric\n",
            "# HELP a{b} x\n",
            "# HELP 1a x\n",
            "# TYPE a\r counter\n",
        ] {
            assert_error(body, 1, "invalid metric name in comment");
        }
    }

    #[test]
    fn second_help_and_type() {
        assert_error(
            "\n# HELP metric one\n# HELP metric two\n",
            3,
            "second HELP line for metric name \"metric\"",
        );
        assert_error(
            "\n# TYPE metric counter\n# TYPE metric untyped\n",
            3,
            "second TYPE line for metric name \"metric\", or TYPE reported after samples",
        );
        assert_error(
            "\nmetric 4.12\n# TYPE metric counter\n",
            3,
            "second TYPE line for metric name \"metric\", or TYPE reported after samples",
        );
    }

    #[test]
    fn unknown_type() {
        assert_error("\n# TYPE metric bla\n", 2, "unknown metric type \"bla\"");
        assert_error(
            "# TYPE metric counter gauge\n",
            1,
            "unknown metric type \"counter gauge\"",
        );
        assert_error("# TYPE metric gauge-histogram\n", 1, "unknown metric type");
    }

    #[test]
    fn invalid_help_escapes() {
        assert_error("# HELP a tab\\there\n", 1, "invalid escape sequence '\\t'");
        assert_error("# HELP a x\\\n", 1, "invalid escape sequence '\\\n'");
    }

    #[test]
    fn invalid_labels() {
        let cases: &[(&str, &str)] = &[
            (
                "metric{@=\"bla\"} 3.14\n",
                "invalid label name for metric \"metric\"",
            ),
            (
                "metric{,} 3.14\n",
                "invalid label name for metric \"metric\"",
            ),
            (
                "metric{a=\"b\",,} 3.14\n",
                "invalid label name for metric \"metric\"",
            ),
            (
                "metric{1a=\"b\"} 3.14\n",
                "invalid label name for metric \"metric\"",
            ),
            (
                "metric{a:b=\"c\"} 3.14\n",
                "expected '=' after label name, found ':'",
            ),
            (
                "metric{label+=\"bla\"} 3.14\n",
                "expected '=' after label name, found '+'",
            ),
            (
                "metric{a} 3.14\n",
                "expected '=' after label name, found '}'",
            ),
            ("metric{a\n", "expected '=' after label name, found '\\n'"),
            (
                "metric{label=bla} 3.14\n",
                "expected '\"' at start of label value, found 'b'",
            ),
            (
                "metric{label=} 3.14\n",
                "expected '\"' at start of label value, found '}'",
            ),
            (
                "metric{label=\"bla\"+} 3.14\n",
                "unexpected end of label value \"bla\"",
            ),
            (
                "metric{label=\"bla\" x=\"y\"} 3.14\n",
                "unexpected end of label value \"bla\"",
            ),
            (
                "metric{label=\"bla\"\n",
                "unexpected end of label value \"bla\"",
            ),
            (
                "metric{label=\"\\t\"} 3.14\n",
                "invalid escape sequence '\\t'",
            ),
            ("metric{label=\"a\\\n", "invalid escape sequence '\\\n'"),
            (
                "metric{__name__=\"bla\"} 3.14\n",
                "label name \"__name__\" is reserved",
            ),
            ("metric{\n", "invalid label name for metric \"metric\""),
        ];
        for &(body, fragment) in cases {
            assert_error(body, 1, fragment);
        }
    }

    #[test]
    fn unescaped_newline_in_label_value() {
        assert_error(
            "\nmetric{label=\"new\nline\"} 3.14\n",
            2,
            "label value \"new\" contains unescaped new-line",
        );
        assert_error(
            "metric{l=\"a\\\"b\n",
            1,
            "label value \"a\\\"b\" contains unescaped new-line",
        );
    }

    #[test]
    fn invalid_utf8_label_value() {
        assert_error(
            b"metric{l=\"\xbd\"} 3.14\n",
            1,
            "invalid label value \"\\xbd\"",
        );
        assert_error(
            b"metric{l=\"ok\\n\xc3\"} 3.14\n",
            1,
            "invalid label value \"ok\\n\\xc3\"",
        );
    }

    #[test]
    fn duplicate_labels() {
        assert_error(
            "metric{label=\"bla\",label=\"bla\"} 3.14\n",
            1,
            "duplicate label name \"label\" for metric \"metric\"",
        );
        assert_error(
            "metric{ a = \"1\" , b=\"2\",a=\"3\"} 3.14\n",
            1,
            "duplicate label name \"a\"",
        );
        let many: Vec<String> = (0..30).map(|i| format!("l{i}=\"v\"")).collect();
        assert_error(
            format!("m{{{},l17=\"w\"}} 1\n", many.join(",")),
            1,
            "duplicate label name \"l17\" for metric \"m\"",
        );
        assert_error(
            "# TYPE s summary\ns{quantile=\"0.5\",quantile=\"0.9\"} 1\n",
            2,
            "duplicate label name \"quantile\"",
        );
        assert_error(
            "# TYPE h histogram\nh_bucket{le=\"1\",le=\"2\"} 1\n",
            2,
            "duplicate label name \"le\" for metric \"h\"",
        );
    }

    #[test]
    fn invalid_quantile_and_le() {
        assert_error(
            "\n# TYPE metric summary\nmetric{quantile=\"bla\"} 3.14\n",
            3,
            "expected float as value for 'quantile' label, got \"bla\"",
        );
        assert_error(
            "# TYPE metric summary\nmetric{quantile=\"0x1p-3\"} 3.14\n",
            2,
            "expected float as value for 'quantile' label",
        );
        assert_error(
            "# TYPE metric summary\nmetric_count{quantile=\"\"} 3\n",
            2,
            "expected float as value for 'quantile' label, got \"\"",
        );
        assert_error(
            "\n# TYPE metric histogram\nmetric_bucket{le=\"bla\"} 3.14\n",
            3,
            "expected float as value for 'le' label, got \"bla\"",
        );
        assert_error(
            "# TYPE metric gaugehistogram\nmetric_bucket{le=\"0x1p-3\"} 3.14\n",
            2,
            "expected float as value for 'le' label",
        );
    }

    #[test]
    fn missing_quantile_or_le() {
        assert_error(
            "# TYPE s summary\ns{a=\"b\"} 1\n",
            2,
            "missing \"quantile\" label for summary metric \"s\"",
        );
        assert_error(
            "# TYPE h histogram\nh_bucket 1\n",
            2,
            "missing \"le\" label for histogram metric \"h\"",
        );
        assert_error(
            "# TYPE h gaugehistogram\nh 1\n",
            2,
            "missing \"le\" label for gaugehistogram metric \"h\"",
        );
    }

    #[test]
    fn counts_must_be_non_negative_numbers() {
        for (line, fragment) in [
            ("s_count -1", "got \"-1\""),
            ("s_count NaN", "got \"NaN\""),
            ("s_count +Inf", "got \"+Inf\""),
            ("h_count -0.5", "got \"-0.5\""),
            ("h_bucket{le=\"1\"} -1", "got \"-1\""),
            ("h_bucket{le=\"1\"} NaN", "got \"NaN\""),
            ("h_bucket{le=\"+Inf\"} Inf", "got \"Inf\""),
        ] {
            let body = format!("# TYPE s summary\n# TYPE h histogram\n{line}\n");
            let name = &line[..1];
            assert_error(
                body,
                3,
                &format!("count for metric \"{name}\" must be a non-negative number, {fragment}"),
            );
        }
        // Sums and quantile values may be anything.
        let families = parse("# TYPE s summary\ns_sum -1\ns{quantile=\"0.5\"} NaN\ns_count -0\n");
        assert_eq!(families[0].metrics.len(), 1);
    }

    #[test]
    fn errors_count_lines_from_one_across_blanks_and_comments() {
        assert_error(
            "\n\n# comment\n  \na 1\nb 2\n\t\nc d\n",
            8,
            "expected float as value, got \"d\"",
        );
    }

    #[test]
    fn large_bodies_parse_completely() {
        let mut body = String::new();
        for i in 0..100_000 {
            body.push_str(&format!(
                "metric_{}{{instance=\"host-{i}\",job=\"batch\"}} {i}.5 {i}\n",
                i % 100
            ));
        }
        let families = parse(&body);
        assert_eq!(families.len(), 100);
        assert_eq!(
            families.iter().map(|f| f.metrics.len()).sum::<usize>(),
            100_000
        );

        let mut body = String::from("# TYPE h histogram\n");
        for i in 0..20_000 {
            for le in ["0.1", "1", "10", "+Inf"] {
                body.push_str(&format!("h_bucket{{i=\"{i}\",le=\"{le}\"}} {i}\n"));
            }
            body.push_str(&format!("h_sum{{i=\"{i}\"}} 1\nh_count{{i=\"{i}\"}} {i}\n"));
        }
        let families = parse(&body);
        assert_eq!(families[0].metrics.len(), 20_000);
    }

    #[test]
    fn one_huge_label_set_does_not_inflate_later_samples() {
        let pairs: Vec<String> = (0..5000).map(|i| format!("l{i}=\"v\"")).collect();
        let mut body = format!("big{{{}}} 1\n", pairs.join(","));
        for i in 0..1000 {
            body.push_str(&format!("small{{a=\"{i}\"}} 1\n"));
        }
        let families = parse(&body);
        assert_eq!(families[0].metrics[0].labels.len(), 5000);
        assert!(families[1]
            .metrics
            .iter()
            .all(|m| m.labels.capacity() <= LABEL_CAPACITY_HINT_CAP));
    }

    #[test]
    fn find_newline_agrees_with_a_plain_search() {
        let data: Vec<u8> = (0..200u32)
            .map(|i| {
                if i % 37 == 36 {
                    b'\n'
                } else {
                    (i % 251) as u8 | 0x80
                }
            })
            .collect();
        for start in 0..data.len() {
            for end in start..data.len().min(start + 40) {
                let slice = &data[start..end];
                assert_eq!(find_newline(slice), slice.iter().position(|&b| b == b'\n'));
            }
        }
        assert_eq!(find_newline(b"\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\n"), Some(8));
        assert_eq!(find_newline(b"abcdefg\x0a"), Some(7));
        assert_eq!(find_newline(b""), None);
    }

    #[test]
    fn quoting_follows_go() {
        assert_eq!(
            quote(b"a\"b\\c\n\r\t\x01\x7f\xff\xc3\xa9"),
            "\"a\\\"b\\\\c\\n\\r\\t\\x01\\x7f\\xff\u{e9}\""
        );
        assert_eq!(quote_byte(b'\''), "'\\''");
        assert_eq!(quote_byte(b'"'), "'\"'");
        assert_eq!(quote_byte(b'\n'), "'\\n'");
        assert_eq!(quote_byte(0x85), "'\\u0085'");
    }

    // ---- UTF-8 names --------------------------------------------------------------------

    #[track_caller]
    fn parse_utf8(body: &str) -> Vec<MetricFamily> {
        match parse_text_with(body.as_bytes(), NameRules::Utf8) {
            Ok(families) => families,
            Err(e) => panic!("{body:?} failed: {e}"),
        }
    }

    #[track_caller]
    fn assert_utf8_error(body: impl AsRef<[u8]>, line: usize, fragment: &str) {
        let body = body.as_ref();
        match parse_text_with(body, NameRules::Utf8) {
            Ok(families) => panic!(
                "{:?} parsed, to {families:?}",
                String::from_utf8_lossy(body)
            ),
            Err(e) => {
                assert_eq!(e.line, line, "wrong line for {e}");
                assert!(
                    e.message.contains(fragment),
                    "{:?} does not contain {fragment:?}",
                    e.message
                );
            }
        }
    }

    #[test]
    fn utf8_metric_name_inside_braces() {
        assert_eq!(
            parse_utf8(
                "{\"my.metric.name\", \"label.with.dots\"=\"v\", legacy=\"x\"} 1\n\
                 {\"a.b\"} 2\n{\"c.d\",x=\"y\"} 3 123\n{ \"e.f\" , x=\"y\" } 4\n\
                 {\"g.h\",} 5\n{\"i.j\"}6\n\t{\"k.l\" }\t7\t\n"
            ),
            vec![
                family(
                    "my.metric.name",
                    None,
                    Untyped,
                    vec![untyped(&[("label.with.dots", "v"), ("legacy", "x")], 1.0)],
                ),
                family("a.b", None, Untyped, vec![untyped(&[], 2.0)]),
                family(
                    "c.d",
                    None,
                    Untyped,
                    vec![at(untyped(&[("x", "y")], 3.0), 123)],
                ),
                family("e.f", None, Untyped, vec![untyped(&[("x", "y")], 4.0)]),
                family("g.h", None, Untyped, vec![untyped(&[], 5.0)]),
                family("i.j", None, Untyped, vec![untyped(&[], 6.0)]),
                family("k.l", None, Untyped, vec![untyped(&[], 7.0)]),
            ]
        );
    }

    #[test]
    fn utf8_quoted_label_names() {
        assert_eq!(
            parse_utf8(
                "m{\"a.b\"=\"1\", c=\"2\" ,\"d e\" = \"3\",\"a:b\"=\"4\",\"ключ\"=\"значение\"} 1\n"
            ),
            vec![family(
                "m",
                None,
                Untyped,
                vec![untyped(
                    &[
                        ("a.b", "1"),
                        ("c", "2"),
                        ("d e", "3"),
                        ("a:b", "4"),
                        ("ключ", "значение")
                    ],
                    1.0
                )],
            )]
        );
    }

    #[test]
    fn utf8_quoted_names_in_help_and_type() {
        let body = "# HELP \"my.metric\" some help\n# TYPE \"my.metric\" counter\n\
                    {\"my.metric\",\"x.y\"=\"z\"} 1\n# TYPE \"g.g\"\tgauge\n# HELP \"g.g\"\n\
                    {\"g.g\"} 2\n";
        assert_eq!(
            parse_utf8(body),
            vec![
                family(
                    "my.metric",
                    Some("some help"),
                    Counter,
                    vec![metric(&[("x.y", "z")], MetricValue::counter(1.0))],
                ),
                family(
                    "g.g",
                    None,
                    Gauge,
                    vec![metric(&[], MetricValue::Gauge(2.0))]
                ),
            ]
        );
    }

    #[test]
    fn utf8_quoted_names_resolve_like_bare_ones() {
        // A quoted legacy-valid name is the bare name.
        let body = "# TYPE up gauge\n{\"up\"} 1\nup{\"job\"=\"a\"} 2\n# HELP \"up\" Up.\n";
        assert_eq!(
            parse_utf8(body),
            vec![family(
                "up",
                Some("Up."),
                Gauge,
                vec![
                    metric(&[], MetricValue::Gauge(1.0)),
                    metric(&[("job", "a")], MetricValue::Gauge(2.0)),
                ],
            )]
        );
        // `quantile` and `le` are special however they are written.
        let body = "# TYPE \"s.x\" summary\n{\"s.x\",\"quantile\"=\"0.5\"} 1\n\
                    {\"s.x_sum\"} 2\n{\"s.x_count\"} 3\n{\"s.x\",a=\"b\",quantile=\"0.9\"} 4\n\
                    # TYPE \"h.x\" histogram\n{\"h.x_bucket\",\"le\"=\"1\"} 1\n\
                    {\"h.x_bucket\",le=\"+Inf\"} 2\n{\"h.x_sum\"} 3\n{\"h.x_count\"} 2\n\
                    {\"h.x\",le=\"5\"} 2\n";
        assert_eq!(
            parse_utf8(body),
            vec![
                family(
                    "s.x",
                    None,
                    MetricKind::Summary,
                    vec![
                        summary(&[], 3, 2.0, &[(0.5, 1.0)]),
                        summary(&[("a", "b")], 0, 0.0, &[(0.9, 4.0)]),
                    ],
                ),
                family(
                    "h.x",
                    None,
                    MetricKind::Histogram,
                    vec![histogram(
                        &[],
                        2,
                        3.0,
                        &[(1.0, 1), (f64::INFINITY, 2), (5.0, 2)]
                    )],
                ),
            ]
        );
        // Suffixes only resolve to a typed base, as for bare names.
        let names: Vec<String> = parse_utf8("{\"c.x\"} 1\n{\"c.x_count\"} 2\n")
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["c.x", "c.x_count"]);
    }

    #[test]
    fn utf8_quoted_names_with_escapes_and_unicode() {
        let body = "# HELP \"a\\\"b\\\\c\\nd\" Escaped.\n{\"a\\\"b\\\\c\\nd\"} 1\n\
                    {\"ünïcode_😱\",\"x\\ny\"=\"v\",\"q\\\"\"=\"w\"} 2\n{\"{}=, #\"} 3\n";
        assert_eq!(
            parse_utf8(body),
            vec![
                family(
                    "a\"b\\c\nd",
                    Some("Escaped."),
                    Untyped,
                    vec![untyped(&[], 1.0)]
                ),
                family(
                    "ünïcode_😱",
                    None,
                    Untyped,
                    vec![untyped(&[("x\ny", "v"), ("q\"", "w")], 2.0)],
                ),
                family("{}=, #", None, Untyped, vec![untyped(&[], 3.0)]),
            ]
        );
    }

    #[test]
    fn utf8_duplicate_and_reserved_label_names() {
        assert_utf8_error(
            "m{a=\"1\",\"a\"=\"2\"} 1\n",
            1,
            "duplicate label name \"a\" for metric \"m\"",
        );
        assert_utf8_error(
            "{\"m.m\",\"x\\ny\"=\"1\",\"x\\ny\"=\"2\"} 1\n",
            1,
            "duplicate label name \"x\\ny\" for metric \"m.m\"",
        );
        // Past the linear scan, with escaped (owned) names.
        let many: Vec<String> = (0..30).map(|i| format!("\"l.\\\\{i}\"=\"v\"")).collect();
        assert_utf8_error(
            format!("{{\"m.m\",{},\"l.\\\\17\"=\"w\"}} 1\n", many.join(",")),
            1,
            "duplicate label name \"l.\\\\17\" for metric \"m.m\"",
        );
        assert_utf8_error(
            "m{\"__name__\"=\"x\"} 1\n",
            1,
            "label name \"__name__\" is reserved",
        );
    }

    #[test]
    fn utf8_other_errors_work_for_quoted_names() {
        assert_utf8_error(
            "# TYPE \"s.x\" summary\n{\"s.x\",a=\"b\"} 1\n",
            2,
            "missing \"quantile\" label for summary metric \"s.x\"",
        );
        assert_utf8_error(
            "# TYPE \"s.x\" summary\n{\"s.x_count\"} -1\n",
            2,
            "count for metric \"s.x\" must be a non-negative number, got \"-1\"",
        );
        assert_utf8_error(
            "# HELP \"a.b\" one\n# HELP \"a.b\" two\n",
            2,
            "second HELP line for metric name \"a.b\"",
        );
        assert_utf8_error(
            "{\"a.b\"} 1\n# TYPE \"a.b\" gauge\n",
            2,
            "second TYPE line for metric name \"a.b\"",
        );
        assert_utf8_error("{\"a.b\"} x\n", 1, "expected float as value, got \"x\"");
        assert_utf8_error("{\"a.b\"} 1 x\n", 1, "expected integer as timestamp");
        assert_utf8_error(
            "{\"a.b\",\"c.d\"=\"\\xff\"} 1\n",
            1,
            "invalid escape sequence '\\x'",
        );
    }

    #[test]
    fn utf8_quoted_metric_name_must_be_inside_braces() {
        for body in ["\"my.metric\" 1\n", "\"my.metric\"{a=\"b\"} 1\n"] {
            assert_utf8_error(
                body,
                1,
                "quoted metric name \"my.metric\" must go inside the braces, as in \
                 {\"my.metric\"} 1",
            );
        }
        assert_utf8_error(
            "\"my.metric 1\n",
            1,
            "invalid metric name \"\\\"my.metric\": a name that breaks the legacy rules goes \
             quoted, as the first item inside the braces",
        );
    }

    #[test]
    fn utf8_metric_name_only_first_and_only_once() {
        assert_utf8_error(
            "m{\"a.b\"} 1\n",
            1,
            "multiple metric names for metric \"m\": \"a.b\" stands alone inside the braces",
        );
        assert_utf8_error(
            "m {\"a.b\", x=\"y\"} 1\n",
            1,
            "multiple metric names for metric \"m\"",
        );
        assert_utf8_error(
            "{\"a.b\",\"c.d\"} 1\n",
            1,
            "multiple metric names for metric \"a.b\": \"c.d\"",
        );
        assert_utf8_error(
            "{\"a.b\",x=\"y\", \"c.d\" } 1\n",
            1,
            "multiple metric names for metric \"a.b\"",
        );
        assert_utf8_error(
            "m{x=\"1\",\"a.b\"} 1\n",
            1,
            "multiple metric names for metric \"m\"",
        );
        assert_utf8_error(
            "{\"a.b\"=\"c\"} 1\n",
            1,
            "missing metric name: the first item inside the braces, \"a.b\", is a label",
        );
        assert_utf8_error(
            "{\"a.b\" x} 1\n",
            1,
            "expected ',' or '}' after metric name \"a.b\", found 'x'",
        );
        assert_utf8_error(
            "{\"a.b\"\n",
            1,
            "expected ',' or '}' after metric name \"a.b\", found '\\n'",
        );
        assert_utf8_error(
            "m{\"a.b\" x} 1\n",
            1,
            "expected '=' after label name, found 'x'",
        );
    }

    #[test]
    fn utf8_brace_first_without_quoted_name() {
        for (body, shown) in [
            ("{a=\"b\"} 1\n", "\"{a=\\\"b\\\"}\""),
            ("{} 1\n", "\"{}\""),
            ("{abc} 1\n", "\"{abc}\""),
            ("1a 5\n", "\"1a\""),
        ] {
            assert_utf8_error(
                body,
                1,
                &format!(
                    "invalid metric name {shown}: a name that breaks the legacy rules goes \
                     quoted, as the first item inside the braces: {{\"my.metric\"}} 1"
                ),
            );
        }
    }

    #[test]
    fn utf8_empty_and_invalid_quoted_names() {
        assert_utf8_error(
            "{\"\"} 1\n",
            1,
            "invalid metric name \"\": names must not be empty",
        );
        assert_utf8_error(
            "m{\"\"=\"v\"} 1\n",
            1,
            "invalid label name for metric \"m\": \"\" (names must not be empty)",
        );
        assert_utf8_error(
            "# TYPE \"\" counter\n",
            1,
            "invalid metric name \"\" in comment: names must not be empty",
        );
        assert_utf8_error(
            b"{\"a\xff\"} 1\n",
            1,
            "invalid metric name \"a\\xff\": names must be valid UTF-8",
        );
        assert_utf8_error(
            b"m{\"\xc3\"=\"v\"} 1\n",
            1,
            "invalid label name for metric \"m\": \"\\xc3\" (names must be valid UTF-8)",
        );
        assert_utf8_error(
            b"# HELP \"\xff\" x\n",
            1,
            "invalid metric name \"\\xff\" in comment: names must be valid UTF-8",
        );
        for body in [
            "# HELP \"a.b\"x help\n",
            "# TYPE \"a.b\"counter\n",
            "# HELP a\"b\" x\n",
        ] {
            assert_utf8_error(body, 1, "invalid metric name in comment");
        }
    }

    #[test]
    fn utf8_bad_escapes_and_newlines_in_quoted_names() {
        assert_utf8_error("{\"a\\tb\"} 1\n", 1, "invalid escape sequence '\\t'");
        assert_utf8_error("m{\"a\\tb\"=\"c\"} 1\n", 1, "invalid escape sequence '\\t'");
        assert_utf8_error("# HELP \"a\\tb\" x\n", 1, "invalid escape sequence '\\t'");
        assert_utf8_error(
            "a 1\n{\"a.b\n\"} 1\n",
            2,
            "metric name \"a.b\" contains unescaped new-line",
        );
        assert_utf8_error(
            "m{\"a\\\"b\n",
            1,
            "label name \"a\\\"b\" contains unescaped new-line",
        );
        assert_utf8_error(
            "# TYPE \"a.b\n",
            1,
            "metric name \"a.b\" contains unescaped new-line",
        );
    }

    #[test]
    fn utf8_missing_final_newline() {
        for body in [
            "{\"a.b\"} 1",
            "{\"a.b\"",
            "{\"a.b",
            "{\"a.b\\",
            "{\"a.b\",",
            "{\"a.b\",x=\"y\"}",
            "m{\"a.b\"",
            "m{\"a.b\"=\"c\"} 1",
            "# HELP \"a.b\"",
            "# HELP \"a.b\" x",
            "# TYPE \"a.b\" counter",
            "# HELP \"a.b",
        ] {
            assert_utf8_error(body, 1, "unexpected end of input stream");
        }
    }

    #[test]
    fn utf8_rules_change_nothing_for_legacy_bodies() {
        for body in [
            "# TYPE some_metric counter\nsome_metric{label=\"val1\"} 42\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n\
             h_sum 3\nh_count 2\n",
            "a{} 1\na{x=\"1\",} 2\na{ x = \"1\" , y=\"\" } 3\na {x=\"1\"}4\n",
            "# HELP a x \\\\ \\n y\n# comment\n\na 1 2\n",
        ] {
            assert_eq!(parse_utf8(body), parse(body), "{body:?}");
        }
    }

    #[test]
    fn legacy_rules_reject_quoted_names() {
        let flag = "need --push.enable-utf8-names";
        for (body, line, message) in [
            (
                "{\"a.b\"} 1\n",
                1,
                "invalid metric name: quoted names like \"a.b\" need",
            ),
            (
                "a 1\n\n{ \"up\", x=\"y\"} 1\n",
                3,
                "invalid metric name: quoted names like \"up\" need",
            ),
            (
                "{\"a.b\"=\"c\"} 1\n",
                1,
                "invalid metric name: quoted names like \"a.b\" need",
            ),
            (
                "m{\"a.b\"=\"c\"} 1\n",
                1,
                "invalid label name for metric \"m\": quoted names like \"a.b\" need",
            ),
            (
                "m{x=\"1\", \"job\"=\"c\"} 1\n",
                1,
                "invalid label name for metric \"m\": quoted names like \"job\" need",
            ),
            (
                "# HELP \"a.b\" x\n",
                1,
                "invalid metric name in comment: quoted names like \"a.b\" need",
            ),
            (
                "\n# TYPE \"a\\\"b\" counter\n",
                2,
                "invalid metric name in comment: quoted names like \"a\\\"b\" need",
            ),
            (
                "# HELP \"a.b\"\n",
                1,
                "invalid metric name in comment: quoted names like \"a.b\" need",
            ),
            // Malformed quoted names still point at the flag.
            (
                "m{\"a\\tb\"=\"c\"} 1\n",
                1,
                "invalid label name for metric \"m\": quoted names need",
            ),
            ("{\"a.b", 1, "invalid metric name: quoted names need"),
            (
                "# TYPE \"a.b\n",
                1,
                "invalid metric name in comment: quoted names need",
            ),
        ] {
            assert_error(body, line, message);
            assert_error(body, line, flag);
        }
        // A quoted name before the braces is invalid under any rules; the legacy message
        // stays as it was.
        assert_error("\"a.b\" 1\n", 1, "invalid metric name \"\\\"a.b\\\"\"");
        assert_eq!(
            parse_text(b"\"a.b\" 1\n").unwrap_err().message,
            "invalid metric name \"\\\"a.b\\\"\""
        );
        // Quotes in label values and help texts are no names.
        assert_eq!(
            parse("# HELP m \"quoted\" help\nm{a=\"\\\"b\\\"\"} 1\n")[0]
                .help
                .as_deref(),
            Some("\"quoted\" help")
        );
    }

    #[test]
    fn legacy_rules_are_the_default() {
        assert_eq!(NameRules::default(), NameRules::Legacy);
        let body = b"{\"a.b\"} 1\n";
        assert_eq!(parse_text(body), parse_text_with(body, NameRules::Legacy));
        assert!(parse_text_with(body, NameRules::Utf8).is_ok());
    }

    // ---- properties ---------------------------------------------------------------------

    /// Checks what must hold of any result, good or bad, under either rules; and that the
    /// UTF-8 rules only add to what the legacy rules accept.
    fn check_invariants(body: &[u8]) -> Result<(), TestCaseError> {
        let legacy = parse_text(body);
        check_result(body, &legacy, NameRules::Legacy)?;
        let utf8 = parse_text_with(body, NameRules::Utf8);
        check_result(body, &utf8, NameRules::Utf8)?;
        if let Ok(families) = legacy {
            prop_assert_eq!(utf8, Ok(families));
        }
        Ok(())
    }

    fn check_result(
        body: &[u8],
        result: &Result<Vec<MetricFamily>, TextParseError>,
        rules: NameRules,
    ) -> Result<(), TestCaseError> {
        match result {
            Ok(families) => {
                let mut names = HashSet::new();
                for family in families {
                    prop_assert!(!family.metrics.is_empty());
                    prop_assert!(rules.is_valid_metric_name(&family.name), "{family:?}");
                    prop_assert!(
                        names.insert(family.name.clone()),
                        "two families {}",
                        family.name
                    );
                    for metric in &family.metrics {
                        prop_assert!(metric.value.fits(family.kind), "{family:?}");
                        for label in &metric.labels {
                            prop_assert!(rules.is_valid_label_name(&label.name), "{family:?}");
                            prop_assert!(label.name != "__name__", "{family:?}");
                        }
                    }
                }
            }
            Err(e) => {
                let lines = body.iter().filter(|&&b| b == b'\n').count() + 1;
                prop_assert!(e.line >= 1 && e.line <= lines, "{e} in {lines} lines");
                prop_assert!(!e.message.is_empty());
            }
        }
        Ok(())
    }

    const TOKENS: &[&[u8]] = &[
        b"#",
        b"# ",
        b" ",
        b"  ",
        b"\t",
        b"\n",
        b"\n",
        b"\n",
        b"HELP",
        b"TYPE",
        b"HELP ",
        b"TYPE ",
        b"a",
        b"m",
        b"m_",
        b"x:y",
        b"_",
        b"1",
        b"0",
        b"2.5",
        b"-3e2",
        b"NaN",
        b"+Inf",
        b"-Inf",
        b"{",
        b"}",
        b"=",
        b"\"",
        b"\\",
        b"\\n",
        b"\\\"",
        b",",
        b"_count",
        b"_sum",
        b"_bucket",
        b"le",
        b"quantile",
        b"counter",
        b"gauge",
        b"summary",
        b"histogram",
        b"gaugehistogram",
        b"untyped",
        b"__name__",
        b"\r",
        b"\xc3\xa9",
        b"\xff",
        b"le=\"1\"",
        b"quantile=\"0.5\"",
        b"m{",
        b"m_bucket{",
        b"m_count ",
        b"# TYPE m summary\n",
        b"# TYPE m histogram\n",
        // UTF-8 names.
        b".",
        b"\"a.b\"",
        b"\"m\"",
        b"{\"",
        b"{\"m.x\"",
        b"\"=\"",
        b"\",\"",
        b"\"}",
        b"\"le\"",
        b"# HELP \"",
        b"# TYPE \"m\" summary\n",
        b"# TYPE \"m.x\" histogram\n",
        b"{\"m_count\"}",
        b"{\"m.x_bucket\",",
        b"\xe2\x82\xac",
        b"\xf0\x9f\x98\x80",
        b"\xd0\xb6",
        b"\xe2\x82",
    ];

    fn token_body() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(TOKENS), 0..96)
            .prop_map(|tokens| tokens.concat())
    }

    fn label_name() -> BoxedStrategy<String> {
        "[a-zA-Z_][a-zA-Z0-9_]{0,6}"
            .prop_filter("reserved", |n| n != "__name__")
            .boxed()
    }

    /// Any name under the UTF-8 rules: legacy ones, ones with dots, and anything at all.
    fn utf8_name() -> BoxedStrategy<String> {
        prop_oneof![
            "[a-zA-Z_][a-zA-Z0-9_]{0,6}",
            "[a-z.]{1,6}",
            "[^\\u{0}]{1,6}",
            any::<String>(),
        ]
        .prop_filter("valid", |n| !n.is_empty() && n != "__name__")
        .boxed()
    }

    fn label_set(label_name: BoxedStrategy<String>) -> impl Strategy<Value = Vec<Label>> {
        prop::collection::btree_map(label_name, any::<String>(), 0..5)
            .prop_map(|map| {
                map.into_iter()
                    .map(|(n, v)| Label::new(n, v))
                    .collect::<Vec<_>>()
            })
            .prop_shuffle()
    }

    fn sample_value() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("NaN never equals itself", |v| !v.is_nan()),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            (-1000i32..1000).prop_map(f64::from),
        ]
    }

    fn simple_family() -> impl Strategy<Value = MetricFamily> {
        family_named("[a-zA-Z_:][a-zA-Z0-9_:]{0,10}".boxed(), label_name())
    }

    fn family_named(
        name: BoxedStrategy<String>,
        label_name: BoxedStrategy<String>,
    ) -> impl Strategy<Value = MetricFamily> {
        (
            name,
            proptest::option::of(
                any::<String>().prop_filter("leading blanks are skipped", |h| {
                    !h.starts_with([' ', '\t']) && !h.is_empty()
                }),
            ),
            prop_oneof![Just(Counter), Just(Gauge), Just(Untyped)],
            prop::collection::vec(
                (
                    label_set(label_name),
                    sample_value(),
                    proptest::option::of(any::<i64>()),
                ),
                0..4,
            ),
        )
            .prop_map(|(name, help, kind, metrics)| MetricFamily {
                name,
                help,
                kind,
                metrics: metrics
                    .into_iter()
                    .map(|(labels, value, timestamp_ms)| Metric {
                        labels,
                        value: match kind {
                            Counter => MetricValue::counter(value),
                            Gauge => MetricValue::Gauge(value),
                            _ => MetricValue::Untyped(value),
                        },
                        timestamp_ms,
                    })
                    .collect(),
                unit: None,
            })
    }

    /// A string in double quotes, with the escapes of label values.
    fn quoted(text: &str) -> String {
        let text = text
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        format!("\"{text}\"")
    }

    /// A name as the text format writes it: bare if it can be, else quoted.
    fn written_name(name: &str, needs_quoting: fn(&str) -> bool) -> Cow<'_, str> {
        if needs_quoting(name) {
            Cow::Owned(quoted(name))
        } else {
            Cow::Borrowed(name)
        }
    }

    /// A minimal text-format writer for counters, gauges and untyped families, quoting
    /// names that break the legacy rules.
    fn write_text(families: &[MetricFamily]) -> String {
        let mut out = String::new();
        for family in families {
            let name = written_name(&family.name, needs_quoting);
            if let Some(help) = &family.help {
                let help = help.replace('\\', "\\\\").replace('\n', "\\n");
                let _ = writeln!(out, "# HELP {name} {help}");
            }
            let _ = writeln!(out, "# TYPE {name} {}", family.kind.as_text());
            for metric in &family.metrics {
                let mut items = Vec::new();
                if needs_quoting(&family.name) {
                    items.push(name.to_string());
                } else {
                    out.push_str(&name);
                }
                for label in &metric.labels {
                    items.push(format!(
                        "{}={}",
                        written_name(&label.name, label_needs_quoting),
                        quoted(&label.value)
                    ));
                }
                if !items.is_empty() {
                    out.push('{');
                    out.push_str(&items.join(","));
                    out.push('}');
                }
                let value = metric.value.simple_value().unwrap_or(f64::NAN);
                if value == f64::INFINITY {
                    out.push_str(" +Inf");
                } else if value == f64::NEG_INFINITY {
                    out.push_str(" -Inf");
                } else {
                    let _ = write!(out, " {value:?}");
                }
                if let Some(timestamp) = metric.timestamp_ms {
                    let _ = write!(out, " {timestamp}");
                }
                out.push('\n');
            }
        }
        out
    }

    /// Writes `families` (under unique names) and checks that they parse back as they were.
    fn check_round_trip(
        families: Vec<MetricFamily>,
        rules: NameRules,
    ) -> Result<(), TestCaseError> {
        // Unique names: a single-digit suffix per family.
        let families: Vec<MetricFamily> = families
            .into_iter()
            .enumerate()
            .map(|(i, family)| MetricFamily {
                name: format!("{}_{i}", family.name),
                ..family
            })
            .collect();
        let text = write_text(&families);
        let expected: Vec<MetricFamily> = families
            .into_iter()
            .filter(|f| !f.metrics.is_empty())
            .collect();
        match parse_text_with(text.as_bytes(), rules) {
            Ok(parsed) => prop_assert_eq!(parsed, expected, "text: {:?}", text),
            Err(e) => return Err(TestCaseError::fail(format!("{e} in {text:?}"))),
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
            check_invariants(&body)?;
        }

        #[test]
        fn token_soup_never_panics(body in token_body()) {
            check_invariants(&body)?;
        }

        #[test]
        fn written_families_parse_back_equal(families in prop::collection::vec(simple_family(), 0..6)) {
            check_round_trip(families, NameRules::Legacy)?;
        }

        #[test]
        fn written_utf8_families_parse_back_equal(
            families in prop::collection::vec(family_named(utf8_name(), utf8_name()), 0..6),
        ) {
            check_round_trip(families, NameRules::Utf8)?;
        }
    }
}
