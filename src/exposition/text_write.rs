//! Writing the text exposition format 0.0.4.
//!
//! The output matches what Prometheus' Go libraries write, byte for byte where it matters to
//! people comparing the two gateways: numbers are formatted like Go's
//! `strconv.FormatFloat(v, 'g', -1, 64)` (`1e+06`, `0.0001`, `1.5e-07`), labels are written in
//! the order given (the store sorts them), and `le`/`quantile` come last.
//!
//! The writer is split so the store can keep one family's series lines per group
//! ([`write_series`]) and write the `# HELP`/`# TYPE` header once per merged family
//! ([`write_header`]) at scrape time. A series' label pairs can also be written first, on
//! their own ([`write_label_pairs_of`]), and handed to [`write_series_with_pairs`]: the
//! store renders a push that way without building each series' full label list. Numbers
//! and escapes are written without allocating, since every pushed sample passes through here.
//!
//! Names that break the legacy rules (possible with `--push.enable-utf8-names`) are written
//! as quoted strings, as the UTF-8 extension of the format has them: the metric name becomes
//! the first item inside the braces (`{"my.metric",job="x"} 1`), a label name is quoted where
//! it stands (`"label.name"="v"`), and `# HELP`/`# TYPE` lines quote the name
//! (`# TYPE "my.metric" gauge`). Legacy names are written bare, byte for byte as before.

use super::model::{Exemplar, Label, Metric, MetricFamily, MetricKind, MetricValue};
use super::names::{label_needs_quoting, needs_quoting};

/// Appends `value` formatted as Go's `strconv.FormatFloat(value, 'g', -1, 64)` does.
///
/// Called for every sample of every push, so it works in stack buffers and allocates nothing.
pub fn write_float(out: &mut Vec<u8>, value: f64) {
    if value.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 { b"+Inf" } else { b"-Inf" });
        return;
    }
    if value == 0.0 {
        // Go keeps the sign of negative zero.
        out.extend_from_slice(if value.is_sign_negative() {
            b"-0"
        } else {
            b"0"
        });
        return;
    }
    if value.fract() == 0.0 && value.abs() < 1e6 {
        // Fast path for small integers, which is what most counters hold.
        write_int(out, value as i64);
        return;
    }
    let mut digit_buf = [0u8; 40];
    let (negative, digits, exp) = match short_decimal(value, &mut digit_buf) {
        Some(found) => found,
        None => shortest_digits(value, &mut digit_buf),
    };
    write_decimal(out, negative, digits, exp);
}

/// `value`'s shortest digits (`d.ddd`, no trailing zeros) and the power of ten of the
/// first, when it is a decimal of at most 15 significant digits: the smallest `k` for which
/// `m / 10^k` (exact operands, so correctly rounded) is `value` gives them. Up to 15 digits,
/// no two decimals of one length read back as the same double, so these are the digits any
/// shortest-round-trip formatter picks. Most pushed values are such decimals, and this is
/// much cheaper than the general search.
fn short_decimal(value: f64, buf: &mut [u8; 40]) -> Option<(bool, &[u8], i32)> {
    const POWERS: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let abs = value.abs();
    for (k, &power) in POWERS.iter().enumerate() {
        let scaled = abs * power;
        if scaled >= 1e15 {
            return None;
        }
        let m = scaled.round();
        if m / power == abs {
            let mut int_buf = [0u8; 20];
            let mut at = int_buf.len();
            let mut rest = m as u64;
            loop {
                at -= 1;
                int_buf[at] = b'0' + (rest % 10) as u8;
                rest /= 10;
                if rest == 0 {
                    break;
                }
            }
            let written = &int_buf[at..];
            let exp = written.len() as i32 - 1 - k as i32;
            let kept = written.len() - written.iter().rev().take_while(|&&d| d == b'0').count();
            buf[..kept].copy_from_slice(&written[..kept]);
            return Some((value < 0.0, &buf[..kept], exp));
        }
    }
    None
}

/// `value`'s shortest round-trip digits (`d.ddd`, no trailing zeros), the power of ten of
/// the first, and the sign, for any finite non-zero `value`.
fn shortest_digits(value: f64, digit_buf: &mut [u8; 40]) -> (bool, &[u8], i32) {
    // Ryu finds them: the shortest digits that read back as `value`, and of two equally
    // close candidates the even one, as Go's `strconv.FormatFloat` picks (Rust's `{:e}`
    // rounds such ties up: 1.6582067800885622e+15 would come out as …623e+15). The text is
    // taken apart into digits and an exponent: `7.3`, `100.0`, `0.0001`, `1.5e-7`.
    let mut ryu = ryu::Buffer::new();
    let text = ryu.format_finite(value).as_bytes();
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let at_e = text.iter().position(|&b| b == b'e').unwrap_or(text.len());
    let (mantissa, exp_text) = (&text[..at_e], text.get(at_e + 1..).unwrap_or_default());
    let point = mantissa
        .iter()
        .position(|&b| b == b'.')
        .unwrap_or(mantissa.len());
    let mut n_digits = 0;
    for &b in mantissa.iter().filter(|b| **b != b'.') {
        digit_buf[n_digits] = b;
        n_digits += 1;
    }
    let leading_zeros = digit_buf[..n_digits]
        .iter()
        .take_while(|&&d| d == b'0')
        .count();
    let trailing_zeros = digit_buf[leading_zeros..n_digits]
        .iter()
        .rev()
        .take_while(|&&d| d == b'0')
        .count();
    // The exponent of the first significant digit: `value` = d.ddd × 10^exp.
    let exp = point as i32 - 1 - leading_zeros as i32 + parse_exponent(exp_text);
    let digits = &digit_buf[leading_zeros..n_digits - trailing_zeros];
    (negative, digits, exp)
}

/// Appends a decimal given by its sign, significant digits and the power of ten of the
/// first one, laid out as Go's `'g'` format with the shortest precision does: plain from
/// 1e-4 up to 1e6, else `d.ddde±XX`.
fn write_decimal(out: &mut Vec<u8>, negative: bool, digits: &[u8], exp: i32) {
    if digits.is_empty() {
        return;
    }
    if negative {
        out.push(b'-');
    }
    if !(-4..6).contains(&exp) {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let abs = exp.unsigned_abs();
        if abs < 10 {
            out.push(b'0');
        }
        write_int(out, i64::from(abs));
    } else if exp < 0 {
        out.extend_from_slice(b"0.");
        for _ in 0..(-exp - 1) {
            out.push(b'0');
        }
        out.extend_from_slice(digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', int_len - digits.len()));
        } else {
            out.extend_from_slice(&digits[..int_len]);
            out.push(b'.');
            out.extend_from_slice(&digits[int_len..]);
        }
    }
}

/// The exponent after the `e` of Ryu or `{:e}`: an optional `-` and decimal digits.
fn parse_exponent(text: &[u8]) -> i32 {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let magnitude = digits
        .iter()
        .fold(0i32, |acc, &d| acc * 10 + i32::from(d - b'0'));
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// Appends `value` in decimal, as `value.to_string()` spells it.
pub fn write_int(out: &mut Vec<u8>, value: i64) {
    let mut buf = [0u8; 20];
    let mut rest = value.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[at..]);
}

/// Formats a float the way [`write_float`] does, as a `String`.
pub fn format_float(value: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_float(&mut out, value);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends a label value with `\`, `"` and newline escaped.
pub fn write_escaped_label_value(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    // Copy the runs between escapes whole: most values have none.
    let mut copied = 0;
    for (at, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\\' => b"\\\\",
            b'"' => b"\\\"",
            b'\n' => b"\\n",
            _ => continue,
        };
        out.extend_from_slice(&bytes[copied..at]);
        out.extend_from_slice(escaped);
        copied = at + 1;
    }
    out.extend_from_slice(&bytes[copied..]);
}

/// Appends HELP text with `\` and newline escaped.
pub fn write_escaped_help(out: &mut Vec<u8>, help: &str) {
    for &b in help.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

/// Appends `"text"`, with `\\`, `"` and newline escaped as in label values.
fn write_quoted(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    write_escaped_label_value(out, text);
    out.push(b'"');
}

/// Appends a metric name as it stands on a `# HELP` or `# TYPE` line: quoted when it breaks
/// the legacy rules.
pub fn write_metric_name(out: &mut Vec<u8>, name: &str) {
    if needs_quoting(name) {
        write_quoted(out, name);
    } else {
        out.extend_from_slice(name.as_bytes());
    }
}

/// Appends a label name: quoted when it breaks the legacy rules.
pub fn write_label_name(out: &mut Vec<u8>, name: &str) {
    if label_needs_quoting(name) {
        write_quoted(out, name);
    } else {
        out.extend_from_slice(name.as_bytes());
    }
}

/// Appends the `# HELP` (when there is help) and `# TYPE` lines of a family.
pub fn write_header(out: &mut Vec<u8>, name: &str, help: Option<&str>, kind: MetricKind) {
    if let Some(help) = help {
        out.extend_from_slice(b"# HELP ");
        write_metric_name(out, name);
        out.push(b' ');
        write_escaped_help(out, help);
        out.push(b'\n');
    }
    out.extend_from_slice(b"# TYPE ");
    write_metric_name(out, name);
    out.push(b' ');
    let type_word = match kind {
        // The 0.0.4 text format has no gauge histogram; Go's writer calls it a histogram.
        MetricKind::GaugeHistogram => "histogram",
        other => other.as_text(),
    };
    out.extend_from_slice(type_word.as_bytes());
    out.push(b'\n');
}

/// Appends `{a="b",extra="1"}`, or nothing when there are no labels. `extra` is the `le` or
/// `quantile` label, always written last.
pub fn write_labels(out: &mut Vec<u8>, labels: &[Label], extra: Option<(&str, f64)>) {
    if labels.is_empty() && extra.is_none() {
        return;
    }
    out.push(b'{');
    write_label_pairs(out, labels, extra, true);
    out.push(b'}');
}

/// Appends the series name and labels of a sample: `name_suffix{labels,extra}`, or
/// `{"name_suffix",labels,extra}` when `quote_name` (the family name breaks the legacy rules,
/// see [`needs_quoting`]; the caller works it out once per series).
pub fn write_sample_name_and_labels(
    out: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    quote_name: bool,
    labels: &[Label],
    extra: Option<(&str, f64)>,
) {
    if quote_name {
        out.extend_from_slice(b"{\"");
        write_escaped_label_value(out, name);
        write_escaped_label_value(out, suffix);
        out.push(b'"');
        write_label_pairs(out, labels, extra, false);
        out.push(b'}');
    } else {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(suffix.as_bytes());
        write_labels(out, labels, extra);
    }
}

/// Appends `a="b",extra="1"` (no braces), with a leading comma unless `first`.
fn write_label_pairs(
    out: &mut Vec<u8>,
    labels: &[Label],
    extra: Option<(&str, f64)>,
    mut first: bool,
) {
    for label in labels {
        if !first {
            out.push(b',');
        }
        first = false;
        write_label_pair(out, &label.name, &label.value);
    }
    write_extra_pair(out, extra, first);
}

/// Appends the `le` or `quantile` pair of a bucket or quantile line, if any, with a leading
/// comma unless `first`.
fn write_extra_pair(out: &mut Vec<u8>, extra: Option<(&str, f64)>, first: bool) {
    if let Some((extra_name, extra_value)) = extra {
        if !first {
            out.push(b',');
        }
        out.extend_from_slice(extra_name.as_bytes());
        out.extend_from_slice(b"=\"");
        write_float(out, extra_value);
        out.push(b'"');
    }
}

/// Appends `name="value"` for every label, comma-separated, without braces: the label part
/// of a series line, as [`write_series_with_pairs`] takes it.
pub fn write_label_pairs_of<'a>(out: &mut Vec<u8>, labels: impl IntoIterator<Item = &'a Label>) {
    for (i, label) in labels.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_label_pair(out, &label.name, &label.value);
    }
}

/// Appends one label as it stands inside the braces: `name="value"`, the name quoted when
/// it breaks the legacy rules and the value escaped.
pub fn write_label_pair(out: &mut Vec<u8>, name: &str, value: &str) {
    write_label_name(out, name);
    out.extend_from_slice(b"=\"");
    write_escaped_label_value(out, value);
    out.push(b'"');
}

/// Appends one sample line, `name{pairs,extra} value[ timestamp]`, with the labels already
/// written as `pairs` (see [`write_label_pairs_of`]). Byte for byte what
/// [`write_sample_name_and_labels`] writes for the same labels, followed by the value.
#[allow(clippy::too_many_arguments)]
fn write_sample(
    out: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    quote_name: bool,
    pairs: &[u8],
    extra: Option<(&str, f64)>,
    value: f64,
    timestamp_ms: Option<i64>,
) {
    if quote_name {
        out.extend_from_slice(b"{\"");
        write_escaped_label_value(out, name);
        write_escaped_label_value(out, suffix);
        out.push(b'"');
        if !pairs.is_empty() {
            out.push(b',');
            out.extend_from_slice(pairs);
        }
        write_extra_pair(out, extra, false);
        out.push(b'}');
    } else {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(suffix.as_bytes());
        if !pairs.is_empty() || extra.is_some() {
            out.push(b'{');
            out.extend_from_slice(pairs);
            write_extra_pair(out, extra, pairs.is_empty());
            out.push(b'}');
        }
    }
    out.push(b' ');
    write_float(out, value);
    if let Some(ts) = timestamp_ms {
        out.push(b' ');
        write_int(out, ts);
    }
    out.push(b'\n');
}

/// One exposed sample of a metric: summaries and histograms expose several.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// `""`, `"_sum"`, `"_count"` or `"_bucket"`.
    pub suffix: &'static str,
    /// The `quantile` or `le` label, written last.
    pub extra: Option<(&'static str, f64)>,
    pub value: f64,
    pub exemplar: Option<&'a Exemplar>,
}

/// Calls `each` for every sample of `metric` in exposition order: quantiles or buckets (with a
/// `+Inf` bucket added when missing), then `_sum` and `_count`. Shared by the text and
/// OpenMetrics writers, which differ only in how they spell a sample.
pub fn for_each_sample<'a>(metric: &'a Metric, mut each: impl FnMut(Sample<'a>)) {
    let plain = |suffix, value| Sample {
        suffix,
        extra: None,
        value,
        exemplar: None,
    };
    match &metric.value {
        MetricValue::Counter(counter) => each(Sample {
            exemplar: counter.exemplar.as_deref(),
            ..plain("", counter.value)
        }),
        MetricValue::Gauge(v) | MetricValue::Untyped(v) => each(plain("", *v)),
        MetricValue::Summary(summary) => {
            for q in &summary.quantiles {
                each(Sample {
                    extra: Some(("quantile", q.quantile)),
                    ..plain("", q.value)
                });
            }
            each(plain("_sum", summary.sample_sum));
            each(plain("_count", summary.sample_count as f64));
        }
        MetricValue::Histogram(histogram) => {
            let mut saw_inf = false;
            for bucket in &histogram.buckets {
                saw_inf |= bucket.upper_bound == f64::INFINITY;
                each(Sample {
                    extra: Some(("le", bucket.upper_bound)),
                    exemplar: bucket.exemplar.as_deref(),
                    ..plain("_bucket", bucket.count())
                });
            }
            if !saw_inf {
                each(Sample {
                    extra: Some(("le", f64::INFINITY)),
                    ..plain("_bucket", histogram.count())
                });
            }
            each(plain("_sum", histogram.sample_sum));
            each(plain("_count", histogram.count()));
        }
    }
}

/// Appends the sample lines of one metric of family `name` (no header).
pub fn write_series(out: &mut Vec<u8>, name: &str, metric: &Metric) {
    let mut pairs = Vec::with_capacity(64);
    write_label_pairs_of(&mut pairs, &metric.labels);
    write_series_with_pairs(out, name, needs_quoting(name), metric, &pairs);
}

/// Appends the sample lines of one metric of family `name` (no header), with its labels
/// given as `pairs` already written by [`write_label_pairs_of`] (the labels of `metric`
/// itself are not read): a series' labels are written once however many samples it has,
/// and the store writes labels it never gathers into one list. `quote_name` is
/// [`needs_quoting`] of `name`, which the caller works out once per family.
pub fn write_series_with_pairs(
    out: &mut Vec<u8>,
    name: &str,
    quote_name: bool,
    metric: &Metric,
    pairs: &[u8],
) {
    for_each_sample(metric, |sample| {
        write_sample(
            out,
            name,
            sample.suffix,
            quote_name,
            pairs,
            sample.extra,
            sample.value,
            metric.timestamp_ms,
        )
    });
}

/// Appends a whole family: header, then every metric in the order held.
pub fn write_family(out: &mut Vec<u8>, family: &MetricFamily) {
    write_header(out, &family.name, family.help.as_deref(), family.kind);
    for metric in &family.metrics {
        write_series(out, &family.name, metric);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::model::{Bucket, Histogram, Quantile, Summary};

    #[test]
    fn floats_match_go_formatting() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (3.25, "3.25"),
            (2398.283, "2398.283"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (-2.5e10, "-2.5e+10"),
            (1.7644765e9, "1.7644765e+09"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (0.1, "0.1"),
            (100.5, "100.5"),
            (999999.5, "999999.5"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ];
        for (value, expected) in cases {
            assert_eq!(format_float(*value), *expected, "formatting {value:?}");
        }
    }

    /// The formatting through `{:e}` as first written (allocating), kept as the reference
    /// the allocation-free [`write_float`] must agree with.
    fn reference_float(value: f64) -> String {
        if value.is_nan() || value.is_infinite() || value == 0.0 {
            return format_float(value);
        }
        if value.fract() == 0.0 && value.abs() < 1e6 {
            return (value as i64).to_string();
        }
        let sci = format!("{value:e}");
        let (mantissa, exp) = sci.split_once('e').unwrap();
        let exp: i32 = exp.parse().unwrap();
        let (negative, mantissa) = match mantissa.strip_prefix('-') {
            Some(m) => (true, m),
            None => (false, mantissa),
        };
        let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
        let mut out = String::from(if negative { "-" } else { "" });
        if !(-4..6).contains(&exp) {
            out.push_str(&digits[..1]);
            if digits.len() > 1 {
                out.push('.');
                out.push_str(&digits[1..]);
            }
            out.push_str(&format!(
                "e{}{:02}",
                if exp < 0 { '-' } else { '+' },
                exp.abs()
            ));
        } else if exp < 0 {
            out.push_str("0.");
            out.push_str(&"0".repeat((-exp - 1) as usize));
            out.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.push_str(&"0".repeat(int_len - digits.len()));
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
        out
    }

    #[test]
    fn floats_agree_with_the_reference_formatting() {
        // A xorshift walk over bit patterns, plus decimal-looking values near the fast path.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let value = match i % 4 {
                0 => f64::from_bits(x),
                1 => (x % 10_000_000) as f64 / 10.0,
                2 => -((x % 100_000) as f64) * 1e-3,
                // 1 to 17 significant digits at exponents from -40 to 39.
                _ => {
                    let digits = 1 + (x >> 8) % 17;
                    let mantissa = (x >> 16) % 10u64.pow(digits as u32);
                    let exp = (x % 80) as i32 - 40;
                    format!("{mantissa}e{exp}").parse().unwrap()
                }
            };
            let (ours, reference) = (format_float(value), reference_float(value));
            if ours != reference {
                // Only a tie between two shortest candidates may differ: `{:e}` rounds it
                // up, Go (and we) to even. Both must read back as the value.
                assert_eq!(
                    ours.len(),
                    reference.len(),
                    "{value:e}: {ours} vs {reference}"
                );
                assert_eq!(ours.parse::<f64>().ok(), Some(value), "{value:e}: {ours}");
                assert_eq!(reference.parse::<f64>().ok(), Some(value));
                let last_digit = |text: &str| {
                    let mantissa = text.split('e').next().unwrap_or(text);
                    mantissa.bytes().last().map(|b| b - b'0')
                };
                assert_eq!(
                    last_digit(&ours).map(|d| d % 2),
                    Some(0),
                    "{value:e}: {ours}"
                );
            }
        }
        // Checked against Go's strconv.FormatFloat(v, 'g', -1, 64).
        for (value, go) in [
            (1.6582067800885623e15, "1.6582067800885622e+15"),
            (2.3311589051479613e14, "2.3311589051479612e+14"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
        ] {
            assert_eq!(format_float(value), go);
        }
        for value in [
            i64::MIN as f64,
            999_999.0,
            -999_999.0,
            1e21,
            1e-5,
            123.456e-300,
        ] {
            assert_eq!(format_float(value), reference_float(value), "{value:e}");
        }
        let mut out = Vec::new();
        write_int(&mut out, i64::MIN);
        assert_eq!(out, i64::MIN.to_string().as_bytes());
    }

    #[test]
    fn escapes_label_values_and_help() {
        let family = MetricFamily {
            name: "m".into(),
            help: Some("a \\ b\nc \"q\"".into()),
            kind: MetricKind::Gauge,
            metrics: vec![Metric {
                labels: vec![Label::new("l", "x\\y\"z\nw")],
                value: MetricValue::Gauge(1.0),
                timestamp_ms: None,
            }],
            unit: None,
        };
        let mut out = Vec::new();
        write_family(&mut out, &family);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# HELP m a \\\\ b\\nc \"q\"\n# TYPE m gauge\nm{l=\"x\\\\y\\\"z\\nw\"} 1\n"
        );
    }

    #[test]
    fn utf8_names_are_quoted() {
        let family = MetricFamily {
            name: "my.metric".into(),
            help: Some("Dotted \"help\".".into()),
            kind: MetricKind::Summary,
            metrics: vec![Metric {
                labels: vec![
                    Label::new("a:b", "1"),
                    Label::new("job", "j"),
                    Label::new("label \"x\"", "2"),
                ],
                value: MetricValue::Summary(Box::new(Summary {
                    sample_count: 7,
                    sample_sum: 2.0,
                    quantiles: vec![Quantile {
                        quantile: 0.5,
                        value: 0.25,
                    }],
                    created: None,
                })),
                timestamp_ms: None,
            }],
            unit: None,
        };
        let mut out = Vec::new();
        write_family(&mut out, &family);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                "# HELP \"my.metric\" Dotted \"help\".\n",
                "# TYPE \"my.metric\" summary\n",
                "{\"my.metric\",\"a:b\"=\"1\",job=\"j\",\"label \\\"x\\\"\"=\"2\",quantile=\"0.5\"} 0.25\n",
                "{\"my.metric_sum\",\"a:b\"=\"1\",job=\"j\",\"label \\\"x\\\"\"=\"2\"} 2\n",
                "{\"my.metric_count\",\"a:b\"=\"1\",job=\"j\",\"label \\\"x\\\"\"=\"2\"} 7\n",
            )
        );
        // A quoted name without labels still gets its braces.
        let mut out = Vec::new();
        write_series(
            &mut out,
            "ünï",
            &Metric {
                labels: vec![],
                value: MetricValue::Gauge(1.0),
                timestamp_ms: None,
            },
        );
        assert_eq!(String::from_utf8(out).unwrap(), "{\"ünï\"} 1\n");
    }

    #[test]
    fn histogram_gets_inf_bucket_and_summary_quantiles() {
        let labels = vec![Label::new("job", "j")];
        let family = MetricFamily {
            name: "h".into(),
            help: None,
            kind: MetricKind::Histogram,
            metrics: vec![Metric {
                labels: labels.clone(),
                value: MetricValue::Histogram(Box::new(Histogram {
                    sample_count: 3,
                    sample_sum: 1.5,
                    buckets: vec![Bucket {
                        upper_bound: 0.5,
                        cumulative_count: 2,
                        ..Bucket::default()
                    }],
                    ..Histogram::default()
                })),
                timestamp_ms: None,
            }],
            unit: None,
        };
        let mut out = Vec::new();
        write_family(&mut out, &family);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# TYPE h histogram\nh_bucket{job=\"j\",le=\"0.5\"} 2\nh_bucket{job=\"j\",le=\"+Inf\"} 3\nh_sum{job=\"j\"} 1.5\nh_count{job=\"j\"} 3\n"
        );
        let summary = Metric {
            labels,
            value: MetricValue::Summary(Box::new(Summary {
                sample_count: 7,
                sample_sum: 2.0,
                quantiles: vec![Quantile {
                    quantile: 0.5,
                    value: 0.25,
                }],
                created: None,
            })),
            timestamp_ms: Some(12),
        };
        let mut out = Vec::new();
        write_series(&mut out, "s", &summary);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "s{job=\"j\",quantile=\"0.5\"} 0.25 12\ns_sum{job=\"j\"} 2 12\ns_count{job=\"j\"} 7 12\n"
        );
    }
}
