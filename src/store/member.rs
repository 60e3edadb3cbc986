//! How one group's copy of one metric family is kept in memory.
//!
//! The rendered text lines are the primary form: a text or OpenMetrics scrape copies them as
//! they are, and they are lossless for everything the text format can say. Only a family
//! that carries what text cannot (native histograms, exemplars, created timestamps, float
//! counts, a unit) also keeps its protobuf `metric` fields. Parsed series are not kept at
//! all; the JSON API and the rarer protobuf scrape rebuild them from the text (with our own
//! fast parser) or the protobuf when asked. For duplicate checks, each member keeps the
//! sorted hashes of its series' label sets. This is what keeps the cost per stored series
//! close to the size of its text line.
//!
//! Names that break the legacy rules (with `--push.enable-utf8-names`) are written quoted in
//! the text lines; a member records whether it has any ([`Member::legacy_names`]), so a scrape
//! that must escape names rewrites only those members and copies the rest.

use std::borrow::Cow;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use siphasher::sip::SipHasher13;

use bytes::Bytes;

use crate::exposition::model::{Exemplar, Label, Metric, MetricFamily, MetricKind, MetricValue};
use crate::exposition::names::{
    escape_label_name, is_valid_label_name, is_valid_metric_name, EscapingScheme, NameRules,
};
use crate::exposition::protobuf::{decode_metric_fields, encode_metric_fields};
use crate::exposition::text_parse::parse_text_with;
use crate::exposition::text_write::write_metric_name;

/// One group's copy of one family.
#[derive(Debug, Clone)]
pub struct Member {
    pub kind: MetricKind,
    pub help: Option<Arc<str>>,
    pub unit: Option<Arc<str>>,
    /// Sample lines, no header.
    pub text: Bytes,
    /// Protobuf `metric` fields, only when `text` would lose something.
    pub proto: Option<Bytes>,
    /// Sorted hashes of every series' label set (shared: undo records and snapshots clone
    /// members).
    pub hashes: Arc<[u64]>,
    /// Unix seconds of the push that stored this copy.
    pub pushed_at: f64,
    /// Whether the family name and every label name follow the legacy rules (see
    /// [`names_are_legacy`]): then no escaping scheme changes this copy.
    pub legacy_names: bool,
}

/// Whether the name of `family` and every label name of its series and their exemplars
/// follow the legacy rules.
pub fn names_are_legacy(family: &MetricFamily) -> bool {
    fn legacy(labels: &[Label]) -> bool {
        labels.iter().all(|l| is_valid_label_name(&l.name))
    }
    let exemplar_legacy = |e: &Option<Box<Exemplar>>| e.as_ref().is_none_or(|e| legacy(&e.labels));
    is_valid_metric_name(&family.name)
        && family.metrics.iter().all(|metric| {
            legacy(&metric.labels)
                && match &metric.value {
                    MetricValue::Counter(counter) => exemplar_legacy(&counter.exemplar),
                    MetricValue::Histogram(histogram) => {
                        histogram
                            .buckets
                            .iter()
                            .all(|b| exemplar_legacy(&b.exemplar))
                            && histogram.exemplars.iter().all(|e| legacy(&e.labels))
                    }
                    _ => true,
                }
        })
}

/// Calls `each` with the labels of every exemplar of `metric`.
fn for_each_exemplar_labels(metric: &mut Metric, mut each: impl FnMut(&mut Vec<Label>)) {
    match &mut metric.value {
        MetricValue::Counter(counter) => {
            if let Some(exemplar) = &mut counter.exemplar {
                each(&mut exemplar.labels);
            }
        }
        MetricValue::Histogram(histogram) => {
            for bucket in &mut histogram.buckets {
                if let Some(exemplar) = &mut bucket.exemplar {
                    each(&mut exemplar.labels);
                }
            }
            for exemplar in &mut histogram.exemplars {
                each(&mut exemplar.labels);
            }
        }
        _ => {}
    }
}

/// Escapes every label name in `labels` by `scheme`.
fn escape_label_names(labels: &mut [Label], scheme: EscapingScheme) {
    for label in labels {
        if let Cow::Owned(escaped) = escape_label_name(&label.name, scheme) {
            label.name = escaped.into();
        }
    }
}

/// The keyed hash of label sets. Keys are random per store, so nobody can aim for
/// collisions; they are kept in the persistence file with the hashes made with them, and the
/// byte layout fed to the hash is fixed here (not left to `std::hash::Hash`), so a restored
/// store, even one restored by a later build, agrees with the hashes it reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelHasher {
    pub keys: (u64, u64),
}

impl LabelHasher {
    /// A hasher with fresh random keys.
    pub fn random() -> LabelHasher {
        // RandomState draws its keys from the OS; two of its outputs make ours.
        let seed = std::collections::hash_map::RandomState::new();
        LabelHasher {
            keys: (seed.hash_one(1u8), seed.hash_one(2u8)),
        }
    }
}

impl BuildHasher for LabelHasher {
    type Hasher = SipHasher13;

    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.keys.0, self.keys.1)
    }
}

/// Hashes a label set (names and values, in order) with the store's keyed hasher.
pub fn label_hash<'a>(hasher: &LabelHasher, labels: impl IntoIterator<Item = &'a Label>) -> u64 {
    let mut state = hasher.build_hasher();
    for label in labels {
        hash_label(&mut state, label);
    }
    state.finish()
}

/// Appends what [`label_hash`] feeds the hasher for one label: its name, `0xff`, its value,
/// `0xff`. SipHash reads its input as one stream however it is split, so hashing these bytes
/// for every label of a set in one go ([`hash_bytes`]) gives the set's [`label_hash`].
pub fn write_hash_input(out: &mut Vec<u8>, label: &Label) {
    out.extend_from_slice(label.name.as_bytes());
    out.push(0xff);
    out.extend_from_slice(label.value.as_bytes());
    out.push(0xff);
}

/// The store's keyed hash of `bytes`, laid out by [`write_hash_input`].
pub fn hash_bytes(hasher: &LabelHasher, bytes: &[u8]) -> u64 {
    let mut state = hasher.build_hasher();
    state.write(bytes);
    state.finish()
}

/// Feeds one label to a label-set hash: its name, `0xff`, its value, `0xff`.
fn hash_label(state: &mut SipHasher13, label: &Label) {
    state.write(label.name.as_bytes());
    state.write_u8(0xff);
    state.write(label.value.as_bytes());
    state.write_u8(0xff);
}

/// Whether the text lines of `family` say everything about it, so no protobuf copy is needed.
pub fn text_is_lossless(family: &MetricFamily) -> bool {
    if family.unit.is_some() {
        return false;
    }
    family.metrics.iter().all(|metric| match &metric.value {
        MetricValue::Counter(counter) => counter.created.is_none() && counter.exemplar.is_none(),
        MetricValue::Gauge(_) | MetricValue::Untyped(_) => true,
        MetricValue::Summary(summary) => summary.created.is_none(),
        MetricValue::Histogram(histogram) => {
            histogram.native.is_none()
                && histogram.created.is_none()
                && histogram.exemplars.is_empty()
                && histogram.sample_count_float.is_none()
                && histogram
                    .buckets
                    .iter()
                    .all(|b| b.cumulative_count_float.is_none() && b.exemplar.is_none())
                // The text writer adds a +Inf bucket when there is none.
                && histogram.buckets.iter().any(|b| b.upper_bound == f64::INFINITY)
        }
    })
}

impl Member {
    /// The family's series, rebuilt from the protobuf copy or by parsing the text lines.
    pub fn decode(&self, name: &str) -> MetricFamily {
        let metrics = match &self.proto {
            Some(proto) => decode_metric_fields(proto, self.kind, name).unwrap_or_default(),
            None => {
                let mut body = Vec::with_capacity(self.text.len() + name.len() + 32);
                body.extend_from_slice(b"# TYPE ");
                write_metric_name(&mut body, name);
                body.push(b' ');
                body.extend_from_slice(self.kind.as_text().as_bytes());
                body.push(b'\n');
                body.extend_from_slice(&self.text);
                // The text was written by us from a valid family, so it parses (the UTF-8
                // rules read legacy text exactly as the legacy rules do, and quoted names
                // too); an empty result would only hide a bug, never break a caller.
                parse_text_with(&body, NameRules::Utf8)
                    .ok()
                    .and_then(|families| families.into_iter().next())
                    .map(|family| family.metrics)
                    .unwrap_or_default()
            }
        };
        MetricFamily {
            name: name.to_string(),
            help: self.help.as_deref().map(str::to_string),
            kind: self.kind,
            metrics,
            unit: self.unit.as_deref().map(str::to_string),
        }
    }

    /// The family's series with every label name (of series and exemplars) escaped by
    /// `scheme` (see [`escape_label_name`]); the family keeps its stored name.
    pub fn decode_escaped(&self, name: &str, scheme: EscapingScheme) -> MetricFamily {
        let mut family = self.decode(name);
        if !self.legacy_names {
            for metric in &mut family.metrics {
                escape_label_names(&mut metric.labels, scheme);
                for_each_exemplar_labels(metric, |labels| escape_label_names(labels, scheme));
            }
        }
        family
    }

    /// The protobuf `metric` fields: the kept copy, or encoded from the text when asked.
    pub fn proto_fields(&self, name: &str) -> Cow<'_, [u8]> {
        match &self.proto {
            Some(proto) => Cow::Borrowed(&proto[..]),
            None => {
                let family = self.decode(name);
                let mut out = Vec::with_capacity(self.text.len());
                encode_metric_fields(&family.metrics, &mut out);
                Cow::Owned(out)
            }
        }
    }

    /// Whether this copy holds a series with exactly this label-set hash.
    pub fn contains_hash(&self, hash: u64) -> bool {
        self.hashes.binary_search(&hash).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::model::{Bucket, Counter, Histogram, Timestamp};

    fn histogram_family(with_inf: bool) -> MetricFamily {
        let mut buckets = vec![Bucket {
            upper_bound: 1.0,
            cumulative_count: 1,
            ..Bucket::default()
        }];
        if with_inf {
            buckets.push(Bucket {
                upper_bound: f64::INFINITY,
                cumulative_count: 2,
                ..Bucket::default()
            });
        }
        MetricFamily {
            name: "h".into(),
            help: Some("help".into()),
            kind: MetricKind::Histogram,
            metrics: vec![Metric {
                labels: vec![Label::new("job", "j")],
                value: MetricValue::Histogram(Box::new(Histogram {
                    sample_count: 2,
                    sample_sum: 1.5,
                    buckets,
                    ..Histogram::default()
                })),
                timestamp_ms: None,
            }],
            unit: None,
        }
    }

    #[test]
    fn hashing_the_input_in_one_go_is_the_label_hash() {
        let hasher = LabelHasher::random();
        let labels = [
            Label::new("instance", ""),
            Label::new("job", "a longer value than eight bytes"),
            Label::new("é", "\u{0}\u{ff}"),
        ];
        for n in 0..=labels.len() {
            let mut input = Vec::new();
            for label in &labels[..n] {
                write_hash_input(&mut input, label);
            }
            assert_eq!(
                hash_bytes(&hasher, &input),
                label_hash(&hasher, &labels[..n])
            );
        }
    }

    #[test]
    fn lossless_only_when_text_says_everything() {
        assert!(text_is_lossless(&histogram_family(true)));
        assert!(!text_is_lossless(&histogram_family(false)));
        let mut counter = histogram_family(true);
        counter.kind = MetricKind::Counter;
        counter.metrics[0].value = MetricValue::Counter(Counter {
            value: 1.0,
            created: Some(Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            exemplar: None,
        });
        assert!(!text_is_lossless(&counter));
        let mut with_unit = histogram_family(true);
        with_unit.unit = Some("seconds".into());
        assert!(!text_is_lossless(&with_unit));
    }

    #[test]
    fn utf8_names_decode_and_escape() {
        let mut family = histogram_family(true);
        family.name = "my.h".into();
        family.metrics[0].labels.push(Label::new("my.label", "v"));
        assert!(!names_are_legacy(&family));
        assert!(names_are_legacy(&histogram_family(true)));
        let mut text = Vec::new();
        for metric in &family.metrics {
            crate::exposition::text_write::write_series(&mut text, &family.name, metric);
        }
        let member = Member {
            kind: family.kind,
            help: Some(Arc::from("help")),
            unit: None,
            text: Bytes::from(text),
            proto: None,
            hashes: Arc::new([]),
            pushed_at: 0.0,
            legacy_names: false,
        };
        assert_eq!(member.decode("my.h"), family);
        let escaped = member.decode_escaped("my.h", EscapingScheme::Underscores);
        assert_eq!(escaped.name, "my.h");
        assert_eq!(
            escaped.metrics[0].labels,
            vec![Label::new("job", "j"), Label::new("my_label", "v")]
        );
    }

    #[test]
    fn exemplar_label_names_count_and_are_escaped() {
        let mut family = histogram_family(true);
        family.kind = MetricKind::Counter;
        family.metrics[0].value = MetricValue::Counter(Counter {
            value: 1.0,
            created: None,
            exemplar: Some(Box::new(Exemplar {
                labels: vec![Label::new("trace.id", "t")],
                value: 1.0,
                timestamp: None,
            })),
        });
        assert!(!names_are_legacy(&family));
        let mut proto = Vec::new();
        encode_metric_fields(&family.metrics, &mut proto);
        let member = Member {
            kind: family.kind,
            help: None,
            unit: None,
            text: Bytes::new(),
            proto: Some(Bytes::from(proto)),
            hashes: Arc::new([]),
            pushed_at: 0.0,
            legacy_names: false,
        };
        let escaped = member.decode_escaped("h", EscapingScheme::Underscores);
        let MetricValue::Counter(counter) = &escaped.metrics[0].value else {
            panic!("a counter");
        };
        assert_eq!(
            counter.exemplar.as_ref().unwrap().labels,
            vec![Label::new("trace_id", "t")]
        );
    }

    #[test]
    fn decodes_from_text_or_protobuf_to_the_same_family() {
        let family = histogram_family(true);
        let mut text = Vec::new();
        for metric in &family.metrics {
            crate::exposition::text_write::write_series(&mut text, &family.name, metric);
        }
        let mut proto = Vec::new();
        encode_metric_fields(&family.metrics, &mut proto);
        let from_text = Member {
            kind: family.kind,
            help: Some(Arc::from("help")),
            unit: None,
            text: Bytes::from(text),
            proto: None,
            hashes: Arc::new([]),
            pushed_at: 0.0,
            legacy_names: true,
        };
        let from_proto = Member {
            proto: Some(Bytes::from(proto)),
            ..from_text.clone()
        };
        assert_eq!(from_text.decode("h"), family);
        assert_eq!(from_proto.decode("h"), family);
        assert_eq!(from_text.proto_fields("h"), from_proto.proto_fields("h"));
    }
}
