//! The metric data model every wire format reads into and writes from.
//!
//! It mirrors the `io.prometheus.client.MetricFamily` message closely enough that the text
//! format and (later) the protobuf format convert to and from it without loss, but it is our
//! own type: the store keeps it, and no parser or encoder owns it. Nothing here knows about
//! HTTP or the store.

use std::fmt;

use compact_str::CompactString;

/// The type of a metric family, as declared by `# TYPE` or the protobuf `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricKind {
    Counter,
    Gauge,
    Summary,
    Untyped,
    Histogram,
    GaugeHistogram,
}

impl MetricKind {
    /// The name used on a `# TYPE` line of the text format.
    pub fn as_text(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Summary => "summary",
            MetricKind::Untyped => "untyped",
            MetricKind::Histogram => "histogram",
            MetricKind::GaugeHistogram => "gaugehistogram",
        }
    }

    /// The upper-case name upstream uses in its error messages (`COUNTER`, `GAUGE`…).
    pub fn as_upper(self) -> &'static str {
        match self {
            MetricKind::Counter => "COUNTER",
            MetricKind::Gauge => "GAUGE",
            MetricKind::Summary => "SUMMARY",
            MetricKind::Untyped => "UNTYPED",
            MetricKind::Histogram => "HISTOGRAM",
            MetricKind::GaugeHistogram => "GAUGE_HISTOGRAM",
        }
    }

    /// Parses the word after `# TYPE name`.
    pub fn from_text(word: &str) -> Option<MetricKind> {
        Some(match word {
            "counter" => MetricKind::Counter,
            "gauge" => MetricKind::Gauge,
            "summary" => MetricKind::Summary,
            "untyped" => MetricKind::Untyped,
            "histogram" => MetricKind::Histogram,
            "gaugehistogram" => MetricKind::GaugeHistogram,
            _ => return None,
        })
    }

    /// Summaries and histograms expose several series names (`_sum`, `_count`…) per sample.
    pub fn is_compound(self) -> bool {
        matches!(
            self,
            MetricKind::Summary | MetricKind::Histogram | MetricKind::GaugeHistogram
        )
    }

    pub fn is_histogram(self) -> bool {
        matches!(self, MetricKind::Histogram | MetricKind::GaugeHistogram)
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_upper())
    }
}

/// One label pair.
///
/// Names and values are [`CompactString`]s: up to 24 bytes are kept inline, and most label
/// names and values are that short, so parsing a series allocates nothing per label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    pub name: CompactString,
    pub value: CompactString,
}

impl Label {
    pub fn new(name: impl Into<CompactString>, value: impl Into<CompactString>) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }

    /// Appends this label's part of an order key: a byte string whose order among others
    /// is the order of the label lists they were written from (label by label, name then
    /// value), so that comparing two lists costs one byte comparison. Name and value each
    /// end in a `0`, and the bytes `0` and `1` inside them are written as `1 1` and `1 2`,
    /// so no part is a prefix of another unless its text is, and byte order is kept.
    pub fn write_order_key(&self, out: &mut Vec<u8>) {
        fn put(out: &mut Vec<u8>, text: &str) {
            let bytes = text.as_bytes();
            if bytes.iter().all(|&b| b > 1) {
                out.extend_from_slice(bytes);
            } else {
                for &b in bytes {
                    if b > 1 {
                        out.push(b);
                    } else {
                        out.extend_from_slice(&[1, b + 1]);
                    }
                }
            }
            out.push(0);
        }
        put(out, &self.name);
        put(out, &self.value);
    }
}

/// All samples sharing one metric name, with its help and type.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily {
    pub name: String,
    /// `None` when the push carried no `# HELP` line.
    pub help: Option<String>,
    pub kind: MetricKind,
    pub metrics: Vec<Metric>,
    /// The unit, when a protobuf push names one.
    pub unit: Option<String>,
}

/// One series (or, for summaries and histograms, one set of series sharing labels).
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Label pairs without `le`/`quantile`, which live inside the value.
    pub labels: Vec<Label>,
    pub value: MetricValue,
    /// Milliseconds since the epoch; the gateway rejects pushes that carry one.
    pub timestamp_ms: Option<i64>,
}

/// The value of a series; its variant must agree with the family's [`MetricKind`].
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    Counter(Counter),
    Gauge(f64),
    Untyped(f64),
    Summary(Box<Summary>),
    Histogram(Box<Histogram>),
}

impl MetricValue {
    /// A plain counter value, with no created timestamp or exemplar.
    pub fn counter(value: f64) -> MetricValue {
        MetricValue::Counter(Counter {
            value,
            created: None,
            exemplar: None,
        })
    }

    /// The single value of a counter, gauge or untyped series.
    pub fn simple_value(&self) -> Option<f64> {
        match self {
            MetricValue::Counter(counter) => Some(counter.value),
            MetricValue::Gauge(v) | MetricValue::Untyped(v) => Some(*v),
            MetricValue::Summary(_) | MetricValue::Histogram(_) => None,
        }
    }

    /// The kind of family this value belongs in (a histogram value fits both histogram kinds).
    pub fn kind(&self) -> MetricKind {
        match self {
            MetricValue::Counter(_) => MetricKind::Counter,
            MetricValue::Gauge(_) => MetricKind::Gauge,
            MetricValue::Untyped(_) => MetricKind::Untyped,
            MetricValue::Summary(_) => MetricKind::Summary,
            MetricValue::Histogram(_) => MetricKind::Histogram,
        }
    }

    /// Whether this value may appear in a family of `kind`.
    pub fn fits(&self, kind: MetricKind) -> bool {
        match self {
            MetricValue::Histogram(_) => kind.is_histogram(),
            other => other.kind() == kind,
        }
    }
}

/// A point in time as protobuf's `google.protobuf.Timestamp` carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: i32,
}

/// An exemplar: a sample of one traced event behind a counter or bucket.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exemplar {
    pub labels: Vec<Label>,
    pub value: f64,
    pub timestamp: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Counter {
    pub value: f64,
    /// When the counter started counting, if the pusher said (protobuf only).
    pub created: Option<Timestamp>,
    pub exemplar: Option<Box<Exemplar>>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    pub sample_count: u64,
    pub sample_sum: f64,
    pub quantiles: Vec<Quantile>,
    pub created: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantile {
    pub quantile: f64,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    pub sample_count: u64,
    /// Set instead of `sample_count` by float histograms (protobuf only).
    pub sample_count_float: Option<f64>,
    pub sample_sum: f64,
    /// Classic buckets in the order they were given, cumulative counts.
    pub buckets: Vec<Bucket>,
    pub created: Option<Timestamp>,
    /// The sparse buckets of a native histogram (protobuf only).
    pub native: Option<Box<NativeBuckets>>,
    /// Exemplars of a native histogram.
    pub exemplars: Vec<Exemplar>,
}

impl Histogram {
    /// The observation count, whichever of the integer or float fields carries it.
    pub fn count(&self) -> f64 {
        match self.sample_count_float {
            Some(count) if count > 0.0 => count,
            _ => self.sample_count as f64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bucket {
    pub upper_bound: f64,
    pub cumulative_count: u64,
    /// Set instead of `cumulative_count` by float histograms (protobuf only).
    pub cumulative_count_float: Option<f64>,
    pub exemplar: Option<Box<Exemplar>>,
}

impl Bucket {
    /// The cumulative count, whichever of the integer or float fields carries it.
    pub fn count(&self) -> f64 {
        match self.cumulative_count_float {
            Some(count) if count > 0.0 => count,
            _ => self.cumulative_count as f64,
        }
    }
}

/// The fields of a native (sparse, exponential) histogram, as the protobuf format has them.
/// Presence of the optional ones is kept so a push comes back out exactly as it went in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NativeBuckets {
    pub schema: Option<i32>,
    pub zero_threshold: Option<f64>,
    pub zero_count: Option<u64>,
    pub zero_count_float: Option<f64>,
    pub negative_spans: Vec<BucketSpan>,
    pub negative_deltas: Vec<i64>,
    pub negative_counts: Vec<f64>,
    pub positive_spans: Vec<BucketSpan>,
    pub positive_deltas: Vec<i64>,
    pub positive_counts: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketSpan {
    pub offset: i32,
    pub length: u32,
}
