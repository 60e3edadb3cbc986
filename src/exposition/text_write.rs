//! Writing the text exposition format 0.0.4.
//!
//! The output matches what Prometheus' Go libraries write, byte for byte where it matters to
//! people comparing the two gateways: numbers are formatted like Go's
//! `strconv.FormatFloat(v, 'g', -1, 64)` (`1e+06`, `0.0001`, `1.5e-07`), labels are written in
//! the order given (the store sorts them), and `le`/`quantile` come last.
//!
//! The writer is split so the store can keep one family's series lines per group
//! ([`write_series`]) and write the `# HELP`/`# TYPE` header once per merged family
//! ([`write_header`]) at scrape time.

use super::model::{Exemplar, Label, Metric, MetricFamily, MetricKind, MetricValue};

/// Appends `value` formatted as Go's `strconv.FormatFloat(value, 'g', -1, 64)` does.
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
        out.extend_from_slice((value as i64).to_string().as_bytes());
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{value:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: Vec<u8> = mantissa.bytes().filter(|b| *b != b'.').collect();
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
        out.extend_from_slice(abs.to_string().as_bytes());
    } else if exp < 0 {
        out.extend_from_slice(b"0.");
        for _ in 0..(-exp - 1) {
            out.push(b'0');
        }
        out.extend_from_slice(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.extend_from_slice(&digits);
            out.extend(std::iter::repeat_n(b'0', int_len - digits.len()));
        } else {
            out.extend_from_slice(&digits[..int_len]);
            out.push(b'.');
            out.extend_from_slice(&digits[int_len..]);
        }
    }
}

/// Formats a float the way [`write_float`] does, as a `String`.
pub fn format_float(value: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_float(&mut out, value);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends a label value with `\`, `"` and newline escaped.
pub fn write_escaped_label_value(out: &mut Vec<u8>, value: &str) {
    for &b in value.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
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

/// Appends the `# HELP` (when there is help) and `# TYPE` lines of a family.
pub fn write_header(out: &mut Vec<u8>, name: &str, help: Option<&str>, kind: MetricKind) {
    if let Some(help) = help {
        out.extend_from_slice(b"# HELP ");
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        write_escaped_help(out, help);
        out.push(b'\n');
    }
    out.extend_from_slice(b"# TYPE ");
    out.extend_from_slice(name.as_bytes());
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
    let mut first = true;
    for label in labels {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(label.name.as_bytes());
        out.extend_from_slice(b"=\"");
        write_escaped_label_value(out, &label.value);
        out.push(b'"');
    }
    if let Some((extra_name, extra_value)) = extra {
        if !first {
            out.push(b',');
        }
        out.extend_from_slice(extra_name.as_bytes());
        out.extend_from_slice(b"=\"");
        write_float(out, extra_value);
        out.push(b'"');
    }
    out.push(b'}');
}

/// Appends one sample line: `name{labels,extra} value[ timestamp]`.
fn write_sample(
    out: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    labels: &[Label],
    extra: Option<(&str, f64)>,
    value: f64,
    timestamp_ms: Option<i64>,
) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    write_labels(out, labels, extra);
    out.push(b' ');
    write_float(out, value);
    if let Some(ts) = timestamp_ms {
        out.push(b' ');
        out.extend_from_slice(ts.to_string().as_bytes());
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
    for_each_sample(metric, |sample| {
        write_sample(
            out,
            name,
            sample.suffix,
            &metric.labels,
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
