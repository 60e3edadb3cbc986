//! Writing OpenMetrics 1.0.0 text, which upstream does not offer (its issue #400).
//!
//! The difference from the 0.0.4 text format that matters to users is naming: an
//! OpenMetrics counter family `foo` exposes `foo_total`. A pushed counter whose name already
//! ends in `_total` becomes such a family and keeps its series name. A counter named without
//! `_total` would be renamed by that rule, and Prometheus would store it under a different
//! name than it does when scraping the Go gateway; so such a counter is declared `unknown`
//! instead, which keeps its name (and `rate()` works the same). The same fallback applies when
//! the shortened name is taken by another family. Exemplars and `_created` samples, which the
//! 0.0.4 format cannot carry, are written here. Numbers and `le`/`quantile` values are
//! written exactly as in the text format (`1`, not `1.0`): both are valid OpenMetrics, and
//! Prometheus 2 keeps `le` as the string it reads, so bucket series stay identical to a
//! scrape of the Go gateway.

use super::model::{Exemplar, Label, Metric, MetricKind, MetricValue, Timestamp};
use super::names::needs_quoting;
use super::text_write::{
    for_each_sample, write_escaped_help, write_escaped_label_value, write_float, write_label_name,
    write_metric_name, write_sample_name_and_labels,
};

/// The OpenMetrics media type, as served.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How a family is declared in OpenMetrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OmFamily<'a> {
    /// The family name on the `# TYPE` line.
    pub name: &'a str,
    pub om_type: &'static str,
}

/// Works out the OpenMetrics family for a stored family `name` of `kind`. `name_taken` says
/// whether another family already uses a given name.
pub fn om_family(name: &str, kind: MetricKind, name_taken: impl Fn(&str) -> bool) -> OmFamily<'_> {
    let om_type = match kind {
        MetricKind::Counter => match name.strip_suffix("_total") {
            Some(base) if !base.is_empty() && !name_taken(base) => {
                return OmFamily {
                    name: base,
                    om_type: "counter",
                }
            }
            _ => "unknown",
        },
        MetricKind::Gauge => "gauge",
        MetricKind::Summary => "summary",
        MetricKind::Untyped => "unknown",
        MetricKind::Histogram => "histogram",
        MetricKind::GaugeHistogram => "gaugehistogram",
    };
    OmFamily { name, om_type }
}

/// Appends `# TYPE`, `# UNIT` (when given) and `# HELP` (when given).
pub fn write_header(
    out: &mut Vec<u8>,
    family: OmFamily<'_>,
    help: Option<&str>,
    unit: Option<&str>,
) {
    out.extend_from_slice(b"# TYPE ");
    write_metric_name(out, family.name);
    out.push(b' ');
    out.extend_from_slice(family.om_type.as_bytes());
    out.push(b'\n');
    if let Some(unit) = unit.filter(|u| !u.is_empty() && family.name.ends_with(&format!("_{u}"))) {
        out.extend_from_slice(b"# UNIT ");
        write_metric_name(out, family.name);
        out.push(b' ');
        out.extend_from_slice(unit.as_bytes());
        out.push(b'\n');
    }
    if let Some(help) = help {
        out.extend_from_slice(b"# HELP ");
        write_metric_name(out, family.name);
        out.push(b' ');
        write_escaped_help_om(out, help);
        out.push(b'\n');
    }
}

/// OpenMetrics escapes `"` in help too.
fn write_escaped_help_om(out: &mut Vec<u8>, help: &str) {
    let mut plain = Vec::with_capacity(help.len());
    write_escaped_help(&mut plain, help);
    for b in plain {
        if b == b'"' {
            out.extend_from_slice(b"\\\"");
        } else {
            out.push(b);
        }
    }
}

/// The closing line every OpenMetrics exposition ends with.
pub fn write_eof(out: &mut Vec<u8>) {
    out.extend_from_slice(b"# EOF\n");
}

fn write_timestamp_seconds(out: &mut Vec<u8>, ts: &Timestamp) {
    write_float(out, ts.seconds as f64 + f64::from(ts.nanos) / 1e9);
}

fn write_exemplar(out: &mut Vec<u8>, exemplar: &Exemplar) {
    out.extend_from_slice(b" # {");
    for (i, label) in exemplar.labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_label_name(out, &label.name);
        out.extend_from_slice(b"=\"");
        write_escaped_label_value(out, &label.value);
        out.push(b'"');
    }
    out.extend_from_slice(b"} ");
    write_float(out, exemplar.value);
    if let Some(ts) = &exemplar.timestamp {
        out.push(b' ');
        write_timestamp_seconds(out, ts);
    }
}

#[allow(clippy::too_many_arguments)]
fn write_sample(
    out: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    quote_name: bool,
    labels: &[Label],
    extra: Option<(&str, f64)>,
    value: f64,
    exemplar: Option<&Exemplar>,
) {
    write_sample_name_and_labels(out, name, suffix, quote_name, labels, extra);
    out.push(b' ');
    write_float(out, value);
    if let Some(exemplar) = exemplar {
        write_exemplar(out, exemplar);
    }
    out.push(b'\n');
}

fn write_created(
    out: &mut Vec<u8>,
    name: &str,
    quote_name: bool,
    labels: &[Label],
    created: Option<&Timestamp>,
) {
    if let Some(ts) = created {
        write_sample_name_and_labels(out, name, "_created", quote_name, labels, None);
        out.push(b' ');
        write_timestamp_seconds(out, ts);
        out.push(b'\n');
    }
}

/// Appends the samples of one metric of a family declared as `family`: the text format's
/// samples, with an OpenMetrics counter's value as `_total`, a gauge histogram's sum and count
/// as `_gsum`/`_gcount`, exemplars, and a `_created` sample when known.
pub fn write_series(out: &mut Vec<u8>, family: OmFamily<'_>, metric: &Metric) {
    let name = family.name;
    let quote_name = needs_quoting(name);
    for_each_sample(metric, |sample| {
        let suffix = match (family.om_type, sample.suffix) {
            ("counter", "") => "_total",
            ("gaugehistogram", "_sum") => "_gsum",
            ("gaugehistogram", "_count") => "_gcount",
            (_, suffix) => suffix,
        };
        write_sample(
            out,
            name,
            suffix,
            quote_name,
            &metric.labels,
            sample.extra,
            sample.value,
            sample.exemplar,
        );
    });
    let created = match &metric.value {
        MetricValue::Counter(counter) if family.om_type == "counter" => counter.created.as_ref(),
        MetricValue::Summary(summary) => summary.created.as_ref(),
        MetricValue::Histogram(histogram) => histogram.created.as_ref(),
        _ => None,
    };
    write_created(out, name, quote_name, &metric.labels, created);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::model::{Bucket, Counter, Histogram};

    fn render(name: &str, kind: MetricKind, metric: &Metric) -> String {
        let family = om_family(name, kind, |_| false);
        let mut out = Vec::new();
        write_header(&mut out, family, Some("Help \"q\"."), None);
        write_series(&mut out, family, metric);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn counters_keep_their_series_name() {
        let metric = Metric {
            labels: vec![Label::new("job", "j")],
            value: MetricValue::Counter(Counter {
                value: 3.0,
                created: Some(Timestamp {
                    seconds: 10,
                    nanos: 500_000_000,
                }),
                exemplar: Some(Box::new(Exemplar {
                    labels: vec![Label::new("trace_id", "abc")],
                    value: 1.0,
                    timestamp: Some(Timestamp {
                        seconds: 12,
                        nanos: 0,
                    }),
                })),
            }),
            timestamp_ms: None,
        };
        assert_eq!(
            render("requests_total", MetricKind::Counter, &metric),
            "# TYPE requests counter\n# HELP requests Help \\\"q\\\".\nrequests_total{job=\"j\"} 3 # {trace_id=\"abc\"} 1 12\nrequests_created{job=\"j\"} 10.5\n"
        );
        assert_eq!(
            render("requests", MetricKind::Counter, &metric),
            "# TYPE requests unknown\n# HELP requests Help \\\"q\\\".\nrequests{job=\"j\"} 3 # {trace_id=\"abc\"} 1 12\n"
        );
        let taken = om_family("a_total", MetricKind::Counter, |n| n == "a");
        assert_eq!(
            taken,
            OmFamily {
                name: "a_total",
                om_type: "unknown"
            }
        );
    }

    #[test]
    fn utf8_names_are_quoted() {
        let metric = Metric {
            labels: vec![Label::new("my.label", "v")],
            value: MetricValue::Counter(Counter {
                value: 3.0,
                created: None,
                exemplar: Some(Box::new(Exemplar {
                    labels: vec![Label::new("trace.id", "abc")],
                    value: 1.0,
                    timestamp: None,
                })),
            }),
            timestamp_ms: None,
        };
        assert_eq!(
            render("my.requests_total", MetricKind::Counter, &metric),
            "# TYPE \"my.requests\" counter\n# HELP \"my.requests\" Help \\\"q\\\".\n{\"my.requests_total\",\"my.label\"=\"v\"} 3 # {\"trace.id\"=\"abc\"} 1\n"
        );
    }

    #[test]
    fn histogram_gets_inf_bucket() {
        let metric = Metric {
            labels: vec![],
            value: MetricValue::Histogram(Box::new(Histogram {
                sample_count: 2,
                sample_sum: 0.5,
                buckets: vec![Bucket {
                    upper_bound: 1.0,
                    cumulative_count: 1,
                    ..Bucket::default()
                }],
                ..Histogram::default()
            })),
            timestamp_ms: None,
        };
        assert_eq!(
            render("h", MetricKind::Histogram, &metric),
            "# TYPE h histogram\n# HELP h Help \\\"q\\\".\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n"
        );
    }
}
