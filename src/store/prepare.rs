//! Turning the families of one push into what the store keeps, before any lock is taken.
//!
//! Everything that depends only on the push itself happens here: rejecting timestamps,
//! checking that each value fits its family's type, adding the grouping labels (and
//! `instance=""`), sorting, finding duplicate series inside the push, and rendering each
//! family's text lines once so scrapes only copy bytes. The checks against what other groups
//! hold live in [`super::state`].
//!
//! A large push is mostly this work, so it avoids copying labels: the group's labels are
//! merged into each series' own labels by reference ([`SeriesLabels`]) as the series are
//! sorted, hashed and written, never cloned into them. Series are sorted by one contiguous
//! byte key each whose order is the order of their label sets.

use std::cmp::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::member::{label_hash, names_are_legacy, text_is_lossless, LabelHasher, Member};
use super::ValidationError;
use crate::exposition::model::{Label, Metric, MetricFamily, MetricValue};
use crate::exposition::names::{is_valid_label_name, needs_quoting, NameRules};
use crate::exposition::protobuf::encode_metric_fields;
use crate::exposition::text_write::{write_label_pairs_of, write_series_with_pairs};
use crate::grouping::GroupingKey;

/// The names of the two gauges the gateway keeps per group; pushed families with these names
/// are dropped, as upstream does.
pub const PUSH_TIME: &str = "push_time_seconds";
pub const PUSH_FAILURE_TIME: &str = "push_failure_time_seconds";
pub const PUSH_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway succeeded.";
pub const PUSH_FAILURE_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway failed.";

/// One family ready to be stored: labels sanitized and sorted, series sorted, text rendered.
#[derive(Debug, Clone)]
pub struct PreparedFamily {
    pub name: Arc<str>,
    /// The parsed family, needed only while checking the push. Its series keep the pushed
    /// order, and each keeps only its own labels (grouping-key values written over them,
    /// sorted by name): the group's other labels are added by reference, see
    /// [`PreparedFamily::series`].
    pub family: MetricFamily,
    /// What every series carries unless it names the label itself
    /// ([`group_series_labels`]).
    group_labels: Arc<[Label]>,
    /// Per series in sorted order: its index in `family.metrics` and its label-set hash.
    sorted: Vec<(u32, u64)>,
    /// What the store keeps.
    pub member: Member,
}

impl PreparedFamily {
    /// Every series in sorted order, with its full label set and that set's hash.
    pub fn series(&self) -> impl Iterator<Item = (SeriesLabels<'_>, u64)> + '_ {
        self.sorted.iter().map(|&(index, hash)| {
            let own = &self.family.metrics[index as usize].labels;
            (SeriesLabels::new(own, &self.group_labels), hash)
        })
    }
}

/// The full label set of one pushed series, as the store sees it, without copying any label:
/// the series' own labels (sanitized and sorted by name) merged with the group's labels that
/// the series does not name itself. Both lists are sorted by name, so the merge is too.
#[derive(Debug, Clone, Copy)]
pub struct SeriesLabels<'a> {
    own: &'a [Label],
    group: &'a [Label],
}

impl<'a> SeriesLabels<'a> {
    pub fn new(own: &'a [Label], group: &'a [Label]) -> SeriesLabels<'a> {
        SeriesLabels { own, group }
    }

    /// The labels in name order.
    pub fn iter(self) -> impl Iterator<Item = &'a Label> + Clone {
        let (mut own, mut group) = (self.own, self.group);
        std::iter::from_fn(move || match (own.split_first(), group.split_first()) {
            (Some((o, own_rest)), Some((g, group_rest))) => match o.name.cmp(&g.name) {
                Ordering::Less => {
                    own = own_rest;
                    Some(o)
                }
                Ordering::Equal => {
                    own = own_rest;
                    group = group_rest;
                    Some(o)
                }
                Ordering::Greater => {
                    group = group_rest;
                    Some(g)
                }
            },
            (Some((o, own_rest)), None) => {
                own = own_rest;
                Some(o)
            }
            (None, Some((g, group_rest))) => {
                group = group_rest;
                Some(g)
            }
            (None, None) => None,
        })
    }

    /// The value of label `name`, if the series has it.
    pub fn get(self, name: &str) -> Option<&'a str> {
        let find = |labels: &'a [Label]| {
            labels
                .binary_search_by(|l| l.name.as_str().cmp(name))
                .ok()
                .map(|i| labels[i].value.as_str())
        };
        find(self.own).or_else(|| find(self.group))
    }

    /// Appends a byte string whose order among others of its kind is the order of the label
    /// sets (`Vec<Label>`'s, label by label, name then value): each string ends in a `0`,
    /// and the bytes `0` and `1` inside one are written as `1 1` and `1 2`.
    fn write_sort_key(self, out: &mut Vec<u8>) {
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
        for label in self.iter() {
            put(out, &label.name);
            put(out, &label.value);
        }
    }
}

/// The labels every series of the group carries: the grouping key plus `instance=""` when
/// the key has no `instance`, sorted by name.
pub fn group_series_labels(key: &GroupingKey) -> Vec<Label> {
    let mut labels: Vec<Label> = key.labels().to_vec();
    if key.get("instance").is_none() {
        labels.push(Label::new("instance", ""));
        labels.sort();
    }
    labels
}

/// Checks and converts the families of a push to group `key`.
///
/// `Err` carries the first problem found; a timestamp anywhere is reported before anything
/// else, as upstream does. Metric and label names must follow `names`.
pub fn prepare_push(
    key: &GroupingKey,
    families: Vec<MetricFamily>,
    hasher: &LabelHasher,
    now: f64,
    names: NameRules,
) -> Result<Vec<PreparedFamily>, ValidationError> {
    if let Some(family) = families
        .iter()
        .find(|f| f.metrics.iter().any(|m| m.timestamp_ms.is_some()))
    {
        return Err(ValidationError::Timestamp {
            family: family.name.clone(),
        });
    }
    let group_labels: Arc<[Label]> = group_series_labels(key).into();
    let mut prepared: Vec<PreparedFamily> = Vec::with_capacity(families.len());
    for family in families {
        if family.name == PUSH_TIME || family.name == PUSH_FAILURE_TIME {
            continue;
        }
        let family = prepare_family(key, &group_labels, family, hasher, now, names)?;
        // Two families of one name in a push (possible in protobuf): the last one wins.
        prepared.retain(|p| p.name != family.name);
        prepared.push(family);
    }
    Ok(prepared)
}

fn prepare_family(
    key: &GroupingKey,
    group_labels: &Arc<[Label]>,
    mut family: MetricFamily,
    hasher: &LabelHasher,
    now: f64,
    names: NameRules,
) -> Result<PreparedFamily, ValidationError> {
    if !names.is_valid_metric_name(&family.name) {
        return Err(ValidationError::InvalidName(family.name.clone()));
    }
    for metric in &mut family.metrics {
        if !metric.value.fits(family.kind) {
            return Err(ValidationError::ValueMismatch {
                family: family.name.clone(),
                kind: family.kind,
                value_kind: metric.value.kind(),
            });
        }
        for label in &metric.labels {
            if !names.is_valid_pushed_label_name(&label.name) {
                return Err(ValidationError::InvalidLabelName {
                    family: family.name.clone(),
                    label: label.name.clone(),
                });
            }
            let reserved = match &metric.value {
                MetricValue::Summary(_) => label.name == "quantile",
                MetricValue::Histogram(_) => label.name == "le",
                _ => false,
            };
            if reserved {
                return Err(ValidationError::ReservedLabel {
                    family: family.name.clone(),
                    label: label.name.clone(),
                });
            }
        }
        sanitize_own_labels(key, &mut metric.labels);
        // The group's labels are added only where a series lacks them, so two labels of one
        // name can only come from the series itself.
        if let Some(pair) = metric.labels.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(ValidationError::DuplicateLabel {
                family: family.name.clone(),
                label: pair[0].name.clone(),
            });
        }
    }
    let labels_of =
        |index: u32| SeriesLabels::new(&family.metrics[index as usize].labels, group_labels);

    // Sort the series by their label sets, compared as one contiguous key each.
    let count = family.metrics.len();
    let mut keys: Vec<u8> = Vec::with_capacity(count * 32);
    let mut key_ends: Vec<usize> = Vec::with_capacity(count);
    for index in 0..count as u32 {
        labels_of(index).write_sort_key(&mut keys);
        key_ends.push(keys.len());
    }
    let sort_key = |index: u32| {
        let index = index as usize;
        let start = if index == 0 { 0 } else { key_ends[index - 1] };
        &keys[start..key_ends[index]]
    };
    // Series of one push often share a long start (the group's labels, a common label): a
    // comparison first looks at the 8 bytes after the part every key shares, as a number.
    let shared = (1..count as u32).fold(count.min(1) * sort_key(0).len(), |shared, index| {
        let (first, other) = (&sort_key(0)[..shared], sort_key(index));
        first.iter().zip(other).take_while(|(a, b)| a == b).count()
    });
    let head = |index: u32| {
        let rest = &sort_key(index)[shared..];
        let mut bytes = [0u8; 8];
        let n = rest.len().min(8);
        bytes[..n].copy_from_slice(&rest[..n]);
        // Zero padding sorts a shorter key first, as the full comparison would.
        u64::from_be_bytes(bytes)
    };
    let mut order: Vec<(u64, u32)> = (0..count as u32).map(|i| (head(i), i)).collect();
    // Equal keys are duplicates, refused below, so the order among them cannot matter.
    order.sort_unstable_by(|&(head_a, a), &(head_b, b)| {
        head_a
            .cmp(&head_b)
            .then_with(|| sort_key(a)[shared..].cmp(&sort_key(b)[shared..]))
    });
    if let Some(pair) = order
        .windows(2)
        .find(|w| w[0].0 == w[1].0 && sort_key(w[0].1) == sort_key(w[1].1))
    {
        return Err(ValidationError::DuplicateInPush {
            series: series_display(&family.name, labels_of(pair[0].1).iter()),
        });
    }
    drop((keys, key_ends));
    let order: Vec<u32> = order.into_iter().map(|(_, index)| index).collect();

    let quote_name = needs_quoting(&family.name);
    let mut text = Vec::with_capacity(count * 64);
    let mut pairs = Vec::with_capacity(128);
    let mut sorted: Vec<(u32, u64)> = Vec::with_capacity(count);
    for &index in &order {
        let labels = labels_of(index);
        pairs.clear();
        write_label_pairs_of(&mut pairs, labels.iter());
        let metric = &family.metrics[index as usize];
        write_series_with_pairs(&mut text, &family.name, quote_name, metric, &pairs);
        sorted.push((index, label_hash(hasher, labels.iter())));
    }
    let proto = (!text_is_lossless(&family)).then(|| {
        // Rare (native histograms, exemplars, units…): only here are the full label sets
        // gathered into each series.
        let metrics: Vec<Metric> = order
            .iter()
            .map(|&index| Metric {
                labels: labels_of(index).iter().cloned().collect(),
                ..family.metrics[index as usize].clone()
            })
            .collect();
        let mut proto = Vec::with_capacity(text.len());
        encode_metric_fields(&metrics, &mut proto);
        Bytes::from(proto)
    });
    let mut hashes: Vec<u64> = sorted.iter().map(|&(_, hash)| hash).collect();
    hashes.sort_unstable();
    let legacy_names =
        names_are_legacy(&family) && group_labels.iter().all(|l| is_valid_label_name(&l.name));
    let member = Member {
        kind: family.kind,
        help: family.help.as_deref().map(Arc::from),
        unit: family.unit.as_deref().map(Arc::from),
        text: Bytes::from(text),
        proto,
        hashes: hashes.into(),
        pushed_at: now,
        legacy_names,
    };
    Ok(PreparedFamily {
        name: family.name.as_str().into(),
        family,
        group_labels: Arc::clone(group_labels),
        sorted,
        member,
    })
}

/// Writes the grouping key's values over the series' labels of the same names and sorts
/// them by name. The key's other labels (and `instance=""`) are not added here: see
/// [`SeriesLabels`].
fn sanitize_own_labels(key: &GroupingKey, labels: &mut [Label]) {
    for label in labels.iter_mut() {
        if let Some(value) = key.get(&label.name) {
            if label.value != value {
                label.value = value.to_string();
            }
        }
    }
    if !labels.is_sorted() {
        labels.sort();
    }
}

/// `name{a="b",c="d"}`, for error messages.
pub fn series_display<'a>(name: &str, labels: impl IntoIterator<Item = &'a Label>) -> String {
    let mut out = String::from(name);
    out.push('{');
    for (i, label) in labels.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&label.name);
        out.push_str("=\"");
        out.push_str(&label.value.escape_debug().to_string());
        out.push('"');
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::model::{Metric, MetricKind};

    /// `prepare_push` with a fresh hasher, a fixed time and the legacy name rules.
    fn prepare(
        key: &GroupingKey,
        families: Vec<MetricFamily>,
    ) -> Result<Vec<PreparedFamily>, ValidationError> {
        prepare_with(key, families, NameRules::Legacy)
    }

    fn prepare_with(
        key: &GroupingKey,
        families: Vec<MetricFamily>,
        names: NameRules,
    ) -> Result<Vec<PreparedFamily>, ValidationError> {
        prepare_push(key, families, &LabelHasher::random(), 1.0, names)
    }

    fn key(pairs: &[(&str, &str)]) -> GroupingKey {
        GroupingKey::new(pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect())
    }

    fn gauge(name: &str, labels: &[(&str, &str)], value: f64) -> MetricFamily {
        MetricFamily {
            name: name.into(),
            help: None,
            kind: MetricKind::Gauge,
            metrics: vec![Metric {
                labels: labels.iter().map(|(n, v)| Label::new(*n, *v)).collect(),
                value: MetricValue::Gauge(value),
                timestamp_ms: None,
            }],
            unit: None,
        }
    }

    #[test]
    fn grouping_labels_overwrite_and_instance_is_added() {
        let k = key(&[("job", "j"), ("zone", "eu")]);
        let prepared = prepare(
            &k,
            vec![gauge(
                "m",
                &[("job", "other"), ("x", "y"), ("zone", "us")],
                1.0,
            )],
        )
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&prepared[0].member.text).unwrap(),
            "m{instance=\"\",job=\"j\",x=\"y\",zone=\"eu\"} 1\n"
        );
        // A body instance label is kept when the key has none.
        let prepared = prepare(&k, vec![gauge("m", &[("instance", "i2")], 1.0)]).unwrap();
        assert_eq!(
            prepared[0].family.metrics[0].labels[0],
            Label::new("instance", "i2")
        );
    }

    #[test]
    fn utf8_names_follow_the_rules() {
        let k = key(&[("job", "j")]);
        let dotted = || gauge("my.metric", &[("my.label", "v")], 1.0);
        assert!(matches!(
            prepare(&k, vec![dotted()]),
            Err(ValidationError::InvalidName(_))
        ));
        assert!(matches!(
            prepare(&k, vec![gauge("m", &[("my.label", "v")], 1.0)]),
            Err(ValidationError::InvalidLabelName { .. })
        ));
        let prepared = prepare_with(&k, vec![dotted()], NameRules::Utf8).unwrap();
        assert_eq!(
            std::str::from_utf8(&prepared[0].member.text).unwrap(),
            "{\"my.metric\",instance=\"\",job=\"j\",\"my.label\"=\"v\"} 1\n"
        );
        assert!(!prepared[0].member.legacy_names);
        let legacy = prepare_with(&k, vec![gauge("m", &[], 1.0)], NameRules::Utf8).unwrap();
        assert!(legacy[0].member.legacy_names);
        // `__` label names are Prometheus' own: refused under the UTF-8 rules (the legacy
        // rules keep accepting them, as before), and so are empty names.
        for bad in ["__x", "__name__", ""] {
            assert!(matches!(
                prepare_with(&k, vec![gauge("m", &[(bad, "v")], 1.0)], NameRules::Utf8),
                Err(ValidationError::InvalidLabelName { .. })
            ));
        }
        assert!(prepare(&k, vec![gauge("m", &[("__x", "v")], 1.0)]).is_ok());
        assert!(matches!(
            prepare_with(&k, vec![gauge("", &[], 1.0)], NameRules::Utf8),
            Err(ValidationError::InvalidName(_))
        ));
    }

    #[test]
    fn rejects_timestamps_first() {
        let mut family = gauge("m", &[], 1.0);
        family.metrics[0].timestamp_ms = Some(5);
        let bad_name = gauge("1bad", &[], 1.0);
        assert!(matches!(
            prepare(&key(&[("job", "j")]), vec![bad_name, family]),
            Err(ValidationError::Timestamp { .. })
        ));
    }

    #[test]
    fn duplicate_series_in_push_after_sanitizing() {
        // Two series that differ only in `job`, which the key overwrites.
        let mut family = gauge("m", &[("job", "a")], 1.0);
        family.metrics.push(family.metrics[0].clone());
        family.metrics[1].labels[0].value = "b".into();
        assert!(matches!(
            prepare(&key(&[("job", "j")]), vec![family]),
            Err(ValidationError::DuplicateInPush { .. })
        ));
    }

    /// The way series were prepared before labels were merged by reference: every group
    /// label cloned into every series, series sorted as `Vec<Label>`s.
    fn reference_text_and_hashes(
        key: &GroupingKey,
        family: &MetricFamily,
        hasher: &LabelHasher,
    ) -> Option<(Vec<u8>, Vec<u64>)> {
        let group_labels = group_series_labels(key);
        let mut metrics = family.metrics.clone();
        for metric in &mut metrics {
            for label in &mut metric.labels {
                if let Some(value) = key.get(&label.name) {
                    label.value = value.to_string();
                }
            }
            for group_label in &group_labels {
                if !metric.labels.iter().any(|l| l.name == group_label.name) {
                    metric.labels.push(group_label.clone());
                }
            }
            metric.labels.sort();
        }
        metrics.sort_by(|a, b| a.labels.cmp(&b.labels));
        if metrics.windows(2).any(|w| w[0].labels == w[1].labels) {
            return None;
        }
        let mut text = Vec::new();
        for metric in &metrics {
            crate::exposition::text_write::write_series(&mut text, &family.name, metric);
        }
        let mut hashes: Vec<u64> = metrics
            .iter()
            .map(|m| label_hash(hasher, &m.labels))
            .collect();
        hashes.sort_unstable();
        Some((text, hashes))
    }

    #[test]
    fn merged_labels_give_what_cloned_labels_gave() {
        let hasher = LabelHasher::random();
        let names = ["a", "instance", "job", "zone", "ab", "b"];
        let values = [
            "", "x", "x\u{0}", "x\u{1}y", "xy", "\u{0}", "j", "\"q\"\n", "é",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let keys = [
            key(&[("job", "j")]),
            key(&[("instance", "i"), ("job", "j")]),
            key(&[("job", "j"), ("zone", "x")]),
        ];
        let (mut compared, mut duplicates) = (0, 0);
        for round in 0..400 {
            let k = &keys[round % keys.len()];
            let mut family = gauge("m", &[], 0.0);
            family.metrics.clear();
            for i in 0..(1 + next(12)) {
                let mut labels: Vec<Label> = Vec::new();
                for _ in 0..next(4) {
                    let name = names[next(names.len())];
                    if labels.iter().all(|l| l.name != name) {
                        labels.push(Label::new(name, values[next(values.len())]));
                    }
                }
                family.metrics.push(Metric {
                    labels,
                    value: MetricValue::Gauge(i as f64 + 0.5),
                    timestamp_ms: None,
                });
            }
            let expected = reference_text_and_hashes(k, &family, &hasher);
            let got = prepare_push(k, vec![family], &hasher, 1.0, NameRules::Legacy);
            match (expected, got) {
                (Some((text, hashes)), Ok(prepared)) => {
                    assert_eq!(prepared[0].member.text, text);
                    assert_eq!(&prepared[0].member.hashes[..], &hashes[..]);
                    let mut series: Vec<u64> = prepared[0].series().map(|(_, h)| h).collect();
                    series.sort_unstable();
                    assert_eq!(series, hashes);
                    compared += 1;
                }
                (None, Err(ValidationError::DuplicateInPush { .. })) => duplicates += 1,
                (expected, got) => panic!("{expected:?} against {got:?}"),
            }
        }
        assert!(compared > 100 && duplicates > 10, "{compared} {duplicates}");
    }

    #[test]
    fn value_must_fit_kind_and_push_time_is_dropped() {
        let mut family = gauge("m", &[], 1.0);
        family.kind = MetricKind::Counter;
        assert!(matches!(
            prepare(&key(&[("job", "j")]), vec![family]),
            Err(ValidationError::ValueMismatch { .. })
        ));
        let prepared = prepare(&key(&[("job", "j")]), vec![gauge(PUSH_TIME, &[], 5.0)]).unwrap();
        assert!(prepared.is_empty());
    }
}
