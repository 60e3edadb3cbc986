//! The metric data model every wire format reads into and writes from.
//!
//! It mirrors the `io.prometheus.client.MetricFamily` message closely enough that the text
//! format and (later) the protobuf format convert to and from it without loss, but it is our
//! own type: the store keeps it, and no parser or encoder owns it. Nothing here knows about
//! HTTP or the store.

use std::fmt;

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
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
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
    Counter(f64),
    Gauge(f64),
    Untyped(f64),
    Summary(Box<Summary>),
    Histogram(Box<Histogram>),
}

impl MetricValue {
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

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    pub sample_count: u64,
    pub sample_sum: f64,
    pub quantiles: Vec<Quantile>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantile {
    pub quantile: f64,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    pub sample_count: u64,
    pub sample_sum: f64,
    /// Classic buckets in the order they were given, cumulative counts.
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub upper_bound: f64,
    pub cumulative_count: u64,
}
