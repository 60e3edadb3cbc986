//! Turning the families of one push into what the store keeps, before any lock is taken.
//!
//! Everything that depends only on the push itself happens here: rejecting timestamps,
//! checking that each value fits its family's type, adding the grouping labels (and
//! `instance=""`), sorting, finding duplicate series inside the push, and rendering each
//! family's text lines once so scrapes only copy bytes. The checks against what other groups
//! hold live in [`super::state`].

use std::sync::Arc;

use bytes::Bytes;

use super::member::{label_hash, names_are_legacy, text_is_lossless, LabelHasher, Member};
use super::ValidationError;
use crate::exposition::model::{Label, MetricFamily, MetricValue};
use crate::exposition::names::NameRules;
use crate::exposition::protobuf::encode_metric_fields;
use crate::exposition::text_write::write_series;
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
    /// The parsed family, needed only while checking the push.
    pub family: MetricFamily,
    /// What the store keeps.
    pub member: Member,
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
    let group_labels = group_series_labels(key);
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
    group_labels: &[Label],
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
        metric.labels = sanitize_labels(key, group_labels, std::mem::take(&mut metric.labels));
        if let Some(pair) = metric.labels.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(ValidationError::DuplicateLabel {
                family: family.name.clone(),
                label: pair[0].name.clone(),
            });
        }
    }
    family.metrics.sort_by(|a, b| a.labels.cmp(&b.labels));
    if let Some(pair) = family
        .metrics
        .windows(2)
        .find(|w| w[0].labels == w[1].labels)
    {
        return Err(ValidationError::DuplicateInPush {
            series: series_display(&family.name, &pair[0].labels),
        });
    }
    let mut text = Vec::with_capacity(family.metrics.len() * 64);
    for metric in &family.metrics {
        write_series(&mut text, &family.name, metric);
    }
    let proto = (!text_is_lossless(&family)).then(|| {
        let mut proto = Vec::with_capacity(text.len());
        encode_metric_fields(&family.metrics, &mut proto);
        Bytes::from(proto)
    });
    let mut hashes: Vec<u64> = family
        .metrics
        .iter()
        .map(|metric| label_hash(hasher, &metric.labels))
        .collect();
    hashes.sort_unstable();
    let member = Member {
        kind: family.kind,
        help: family.help.as_deref().map(Arc::from),
        unit: family.unit.as_deref().map(Arc::from),
        text: Bytes::from(text),
        proto,
        hashes: hashes.into(),
        pushed_at: now,
        legacy_names: names_are_legacy(&family),
    };
    Ok(PreparedFamily {
        name: family.name.as_str().into(),
        family,
        member,
    })
}

/// Overwrites body labels that the grouping key also names, adds the key's other labels and
/// `instance=""` if no `instance` is left, and sorts by name.
fn sanitize_labels(
    key: &GroupingKey,
    group_labels: &[Label],
    mut labels: Vec<Label>,
) -> Vec<Label> {
    for label in &mut labels {
        if let Some(value) = key.get(&label.name) {
            if label.value != value {
                label.value = value.to_string();
            }
        }
    }
    for group_label in group_labels {
        if !labels.iter().any(|l| l.name == group_label.name) {
            labels.push(group_label.clone());
        }
    }
    labels.sort();
    labels
}

/// `name{a="b",c="d"}`, for error messages.
pub fn series_display(name: &str, labels: &[Label]) -> String {
    let mut out = String::from(name);
    out.push('{');
    for (i, label) in labels.iter().enumerate() {
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
