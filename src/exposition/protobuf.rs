//! The protobuf exposition format: length-delimited `io.prometheus.client.MetricFamily`
//! messages, the default push format of the Go, Java and Rust client libraries.
//!
//! Decoding turns messages into our [`model`](super::model) without losing anything the
//! gateway keeps (native histogram fields, exemplars, created timestamps, float counts);
//! encoding is the exact inverse, so a family pushed as protobuf comes back identical.
//! Checking the content (timestamps, types, duplicates) is not done here.

use prost::Message;

use super::model::{
    Bucket, BucketSpan, Counter, Exemplar, Histogram, Label, Metric, MetricFamily, MetricKind,
    MetricValue, NativeBuckets, Quantile, Summary, Timestamp,
};
use super::proto;

/// Why a protobuf body could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtobufError {
    #[error("invalid protobuf in metric family #{index} (at byte {offset}): {reason}")]
    Decode {
        index: usize,
        offset: usize,
        reason: String,
    },
    #[error("metric family #{index} has no name")]
    MissingName { index: usize },
    #[error("metric family {name:?} has unknown type {value}")]
    UnknownType { name: String, value: i32 },
    #[error("a metric of family {name:?} carries no value")]
    MissingValue { name: String },
}

/// Decodes a body of length-delimited `MetricFamily` messages.
pub fn decode_delimited(mut body: &[u8]) -> Result<Vec<MetricFamily>, ProtobufError> {
    let total = body.len();
    let mut families = Vec::new();
    let mut index = 0;
    while !body.is_empty() {
        let offset = total - body.len();
        let message = proto::MetricFamily::decode_length_delimited(&mut body).map_err(|error| {
            ProtobufError::Decode {
                index,
                offset,
                reason: error.to_string(),
            }
        })?;
        families.push(family_from_proto(message, index)?);
        index += 1;
    }
    Ok(families)
}

/// Decodes one `MetricFamily` message that is not length-delimited: the bytes Go's
/// `proto.Marshal` returns (the upstream persistence file stores families this way).
pub fn decode_family(bytes: &[u8]) -> Result<MetricFamily, ProtobufError> {
    let message = proto::MetricFamily::decode(bytes).map_err(|error| ProtobufError::Decode {
        index: 0,
        offset: 0,
        reason: error.to_string(),
    })?;
    family_from_proto(message, 0)
}

/// Encodes families as length-delimited messages, appending to `out`.
pub fn encode_delimited(families: &[MetricFamily], out: &mut Vec<u8>) {
    for family in families {
        let message = family_to_proto(family);
        // Encoding into a Vec cannot run out of space.
        let _ = message.encode_length_delimited(out);
    }
}

/// Encodes only the `metric` fields (tag 4) of a family: what one group contributes to a
/// merged family. Concatenating these after a family header yields a valid message, since
/// protobuf merges repeated fields by appending.
pub fn encode_metric_fields(metrics: &[Metric], out: &mut Vec<u8>) {
    for metric in metrics {
        let message = metric_to_proto(metric);
        prost::encoding::message::encode(4, &message, out);
    }
}

/// Decodes metric fields written by [`encode_metric_fields`] back into metrics of a family
/// of `kind` named `name`.
pub fn decode_metric_fields(
    fields: &[u8],
    kind: MetricKind,
    name: &str,
) -> Result<Vec<Metric>, ProtobufError> {
    let message = proto::MetricFamily::decode(fields).map_err(|error| ProtobufError::Decode {
        index: 0,
        offset: 0,
        reason: error.to_string(),
    })?;
    message
        .metric
        .into_iter()
        .map(|metric| metric_from_proto(metric, kind, name))
        .collect()
}

/// Appends a length-delimited `MetricFamily` made of a header (name, help, type) and
/// pre-encoded metric fields from [`encode_metric_fields`].
pub fn write_family_message(
    out: &mut Vec<u8>,
    name: &str,
    help: Option<&str>,
    kind: MetricKind,
    metric_fields: &[&[u8]],
) {
    let header = proto::MetricFamily {
        name: Some(name.to_string()),
        help: help.map(str::to_string),
        r#type: Some(kind_to_proto(kind) as i32),
        metric: Vec::new(),
        unit: None,
    };
    let body_len = header.encoded_len() + metric_fields.iter().map(|f| f.len()).sum::<usize>();
    prost::encoding::encode_varint(body_len as u64, out);
    let _ = header.encode(out);
    for fields in metric_fields {
        out.extend_from_slice(fields);
    }
}

fn kind_from_proto(value: i32) -> Option<MetricKind> {
    Some(match proto::MetricType::try_from(value).ok()? {
        proto::MetricType::Counter => MetricKind::Counter,
        proto::MetricType::Gauge => MetricKind::Gauge,
        proto::MetricType::Summary => MetricKind::Summary,
        proto::MetricType::Untyped => MetricKind::Untyped,
        proto::MetricType::Histogram => MetricKind::Histogram,
        proto::MetricType::GaugeHistogram => MetricKind::GaugeHistogram,
    })
}

fn kind_to_proto(kind: MetricKind) -> proto::MetricType {
    match kind {
        MetricKind::Counter => proto::MetricType::Counter,
        MetricKind::Gauge => proto::MetricType::Gauge,
        MetricKind::Summary => proto::MetricType::Summary,
        MetricKind::Untyped => proto::MetricType::Untyped,
        MetricKind::Histogram => proto::MetricType::Histogram,
        MetricKind::GaugeHistogram => proto::MetricType::GaugeHistogram,
    }
}

fn family_from_proto(
    message: proto::MetricFamily,
    index: usize,
) -> Result<MetricFamily, ProtobufError> {
    let name = match message.name {
        Some(name) if !name.is_empty() => name,
        _ => return Err(ProtobufError::MissingName { index }),
    };
    // proto2's enum default is its first value, COUNTER, as Go's GetType() reports.
    let type_value = message.r#type.unwrap_or(0);
    let kind = kind_from_proto(type_value).ok_or_else(|| ProtobufError::UnknownType {
        name: name.clone(),
        value: type_value,
    })?;
    let metrics = message
        .metric
        .into_iter()
        .map(|metric| metric_from_proto(metric, kind, &name))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MetricFamily {
        name,
        help: message.help,
        kind,
        metrics,
        unit: message.unit,
    })
}

fn labels_from_proto(pairs: Vec<proto::LabelPair>) -> Vec<Label> {
    pairs
        .into_iter()
        .map(|pair| {
            Label::new(
                pair.name.unwrap_or_default(),
                pair.value.unwrap_or_default(),
            )
        })
        .collect()
}

fn labels_to_proto(labels: &[Label]) -> Vec<proto::LabelPair> {
    labels
        .iter()
        .map(|label| proto::LabelPair {
            name: Some(label.name.to_string()),
            value: Some(label.value.to_string()),
        })
        .collect()
}

fn timestamp_from_proto(ts: proto::Timestamp) -> Timestamp {
    Timestamp {
        seconds: ts.seconds,
        nanos: ts.nanos,
    }
}

fn timestamp_to_proto(ts: &Timestamp) -> proto::Timestamp {
    proto::Timestamp {
        seconds: ts.seconds,
        nanos: ts.nanos,
    }
}

fn exemplar_from_proto(exemplar: proto::Exemplar) -> Exemplar {
    Exemplar {
        labels: labels_from_proto(exemplar.label),
        value: exemplar.value.unwrap_or_default(),
        timestamp: exemplar.timestamp.map(timestamp_from_proto),
    }
}

fn exemplar_to_proto(exemplar: &Exemplar) -> proto::Exemplar {
    proto::Exemplar {
        label: labels_to_proto(&exemplar.labels),
        value: Some(exemplar.value),
        timestamp: exemplar.timestamp.as_ref().map(timestamp_to_proto),
    }
}

/// Picks the value field that matches the family's type; failing that, whichever value is
/// present (so the type mismatch is reported by the store's checks, as upstream does).
fn metric_from_proto(
    metric: proto::Metric,
    kind: MetricKind,
    name: &str,
) -> Result<Metric, ProtobufError> {
    let proto::Metric {
        label,
        gauge,
        counter,
        summary,
        untyped,
        histogram,
        timestamp_ms,
    } = metric;
    let counter = counter.map(|c| {
        MetricValue::Counter(Counter {
            value: c.value.unwrap_or_default(),
            created: c.created_timestamp.map(timestamp_from_proto),
            exemplar: c.exemplar.map(|e| Box::new(exemplar_from_proto(e))),
        })
    });
    let gauge = gauge.map(|g| MetricValue::Gauge(g.value.unwrap_or_default()));
    let untyped = untyped.map(|u| MetricValue::Untyped(u.value.unwrap_or_default()));
    let summary = summary.map(|s| {
        MetricValue::Summary(Box::new(Summary {
            sample_count: s.sample_count.unwrap_or_default(),
            sample_sum: s.sample_sum.unwrap_or_default(),
            quantiles: s
                .quantile
                .into_iter()
                .map(|q| Quantile {
                    quantile: q.quantile.unwrap_or_default(),
                    value: q.value.unwrap_or_default(),
                })
                .collect(),
            created: s.created_timestamp.map(timestamp_from_proto),
        }))
    });
    let histogram = histogram.map(|h| MetricValue::Histogram(Box::new(histogram_from_proto(h))));
    let candidates = [counter, gauge, untyped, summary, histogram];
    let mut present: Vec<MetricValue> = candidates.into_iter().flatten().collect();
    let chosen = match present.iter().position(|v| v.fits(kind)) {
        Some(i) => present.swap_remove(i),
        None if !present.is_empty() => present.swap_remove(0),
        None => {
            return Err(ProtobufError::MissingValue {
                name: name.to_string(),
            })
        }
    };
    Ok(Metric {
        labels: labels_from_proto(label),
        value: chosen,
        timestamp_ms,
    })
}

fn spans_from_proto(spans: Vec<proto::BucketSpan>) -> Vec<BucketSpan> {
    spans
        .into_iter()
        .map(|s| BucketSpan {
            offset: s.offset.unwrap_or_default(),
            length: s.length.unwrap_or_default(),
        })
        .collect()
}

fn spans_to_proto(spans: &[BucketSpan]) -> Vec<proto::BucketSpan> {
    spans
        .iter()
        .map(|s| proto::BucketSpan {
            offset: Some(s.offset),
            length: Some(s.length),
        })
        .collect()
}

fn histogram_from_proto(h: proto::Histogram) -> Histogram {
    let has_native = h.schema.is_some()
        || h.zero_threshold.is_some()
        || h.zero_count.is_some()
        || h.zero_count_float.is_some()
        || !h.negative_span.is_empty()
        || !h.positive_span.is_empty()
        || !h.negative_delta.is_empty()
        || !h.positive_delta.is_empty()
        || !h.negative_count.is_empty()
        || !h.positive_count.is_empty();
    let native = has_native.then(|| {
        Box::new(NativeBuckets {
            schema: h.schema,
            zero_threshold: h.zero_threshold,
            zero_count: h.zero_count,
            zero_count_float: h.zero_count_float,
            negative_spans: spans_from_proto(h.negative_span),
            negative_deltas: h.negative_delta,
            negative_counts: h.negative_count,
            positive_spans: spans_from_proto(h.positive_span),
            positive_deltas: h.positive_delta,
            positive_counts: h.positive_count,
        })
    });
    Histogram {
        sample_count: h.sample_count.unwrap_or_default(),
        sample_count_float: h.sample_count_float,
        sample_sum: h.sample_sum.unwrap_or_default(),
        buckets: h
            .bucket
            .into_iter()
            .map(|b| Bucket {
                upper_bound: b.upper_bound.unwrap_or_default(),
                cumulative_count: b.cumulative_count.unwrap_or_default(),
                cumulative_count_float: b.cumulative_count_float,
                exemplar: b.exemplar.map(|e| Box::new(exemplar_from_proto(e))),
            })
            .collect(),
        created: h.created_timestamp.map(timestamp_from_proto),
        native,
        exemplars: h.exemplars.into_iter().map(exemplar_from_proto).collect(),
    }
}

fn histogram_to_proto(h: &Histogram) -> proto::Histogram {
    let native = h.native.as_deref().cloned().unwrap_or_default();
    proto::Histogram {
        sample_count: Some(h.sample_count),
        sample_count_float: h.sample_count_float,
        sample_sum: Some(h.sample_sum),
        bucket: h
            .buckets
            .iter()
            .map(|b| proto::Bucket {
                cumulative_count: Some(b.cumulative_count),
                cumulative_count_float: b.cumulative_count_float,
                upper_bound: Some(b.upper_bound),
                exemplar: b.exemplar.as_deref().map(exemplar_to_proto),
            })
            .collect(),
        created_timestamp: h.created.as_ref().map(timestamp_to_proto),
        schema: native.schema,
        zero_threshold: native.zero_threshold,
        zero_count: native.zero_count,
        zero_count_float: native.zero_count_float,
        negative_span: spans_to_proto(&native.negative_spans),
        negative_delta: native.negative_deltas,
        negative_count: native.negative_counts,
        positive_span: spans_to_proto(&native.positive_spans),
        positive_delta: native.positive_deltas,
        positive_count: native.positive_counts,
        exemplars: h.exemplars.iter().map(exemplar_to_proto).collect(),
    }
}

fn metric_to_proto(metric: &Metric) -> proto::Metric {
    let mut message = proto::Metric {
        label: labels_to_proto(&metric.labels),
        timestamp_ms: metric.timestamp_ms,
        ..proto::Metric::default()
    };
    match &metric.value {
        MetricValue::Counter(c) => {
            message.counter = Some(proto::Counter {
                value: Some(c.value),
                exemplar: c.exemplar.as_deref().map(exemplar_to_proto),
                created_timestamp: c.created.as_ref().map(timestamp_to_proto),
            })
        }
        MetricValue::Gauge(v) => message.gauge = Some(proto::Gauge { value: Some(*v) }),
        MetricValue::Untyped(v) => message.untyped = Some(proto::Untyped { value: Some(*v) }),
        MetricValue::Summary(s) => {
            message.summary = Some(proto::Summary {
                sample_count: Some(s.sample_count),
                sample_sum: Some(s.sample_sum),
                quantile: s
                    .quantiles
                    .iter()
                    .map(|q| proto::Quantile {
                        quantile: Some(q.quantile),
                        value: Some(q.value),
                    })
                    .collect(),
                created_timestamp: s.created.as_ref().map(timestamp_to_proto),
            })
        }
        MetricValue::Histogram(h) => message.histogram = Some(histogram_to_proto(h)),
    }
    message
}

fn family_to_proto(family: &MetricFamily) -> proto::MetricFamily {
    proto::MetricFamily {
        name: Some(family.name.clone()),
        help: family.help.clone(),
        r#type: Some(kind_to_proto(family.kind) as i32),
        metric: family.metrics.iter().map(metric_to_proto).collect(),
        unit: family.unit.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::text_parse::parse_text;
    use proptest::prelude::*;

    fn native_histogram_message() -> proto::MetricFamily {
        proto::MetricFamily {
            name: Some("rpc_latency_seconds".into()),
            help: Some("RPC latency.".into()),
            r#type: Some(proto::MetricType::Histogram as i32),
            unit: None,
            metric: vec![proto::Metric {
                label: vec![proto::LabelPair {
                    name: Some("service".into()),
                    value: Some("a".into()),
                }],
                histogram: Some(proto::Histogram {
                    sample_count: Some(7),
                    sample_sum: Some(1.25),
                    schema: Some(3),
                    zero_threshold: Some(1e-128),
                    zero_count: Some(1),
                    negative_span: vec![proto::BucketSpan {
                        offset: Some(-2),
                        length: Some(1),
                    }],
                    negative_delta: vec![1],
                    positive_span: vec![
                        proto::BucketSpan {
                            offset: Some(0),
                            length: Some(2),
                        },
                        proto::BucketSpan {
                            offset: Some(3),
                            length: Some(1),
                        },
                    ],
                    positive_delta: vec![2, -1, 1],
                    created_timestamp: Some(proto::Timestamp {
                        seconds: 1_700_000_000,
                        nanos: 5,
                    }),
                    exemplars: vec![proto::Exemplar {
                        label: vec![proto::LabelPair {
                            name: Some("trace_id".into()),
                            value: Some("abc".into()),
                        }],
                        value: Some(0.5),
                        timestamp: Some(proto::Timestamp {
                            seconds: 1_700_000_001,
                            nanos: 0,
                        }),
                    }],
                    ..proto::Histogram::default()
                }),
                ..proto::Metric::default()
            }],
        }
    }

    fn float_histogram_and_counter_messages() -> Vec<proto::MetricFamily> {
        vec![
            proto::MetricFamily {
                name: Some("float_hist".into()),
                help: None,
                r#type: Some(proto::MetricType::GaugeHistogram as i32),
                unit: Some("seconds".into()),
                metric: vec![proto::Metric {
                    histogram: Some(proto::Histogram {
                        sample_count: Some(0),
                        sample_count_float: Some(2.5),
                        sample_sum: Some(3.0),
                        schema: Some(-1),
                        zero_threshold: Some(0.0),
                        zero_count_float: Some(0.5),
                        positive_span: vec![proto::BucketSpan {
                            offset: Some(1),
                            length: Some(2),
                        }],
                        positive_count: vec![1.0, 1.0],
                        ..proto::Histogram::default()
                    }),
                    ..proto::Metric::default()
                }],
            },
            proto::MetricFamily {
                name: Some("requests_total".into()),
                help: Some("Requests.".into()),
                r#type: Some(proto::MetricType::Counter as i32),
                unit: None,
                metric: vec![proto::Metric {
                    counter: Some(proto::Counter {
                        value: Some(12.0),
                        exemplar: Some(proto::Exemplar {
                            label: vec![],
                            value: Some(1.0),
                            timestamp: None,
                        }),
                        created_timestamp: Some(proto::Timestamp {
                            seconds: 1,
                            nanos: 2,
                        }),
                    }),
                    ..proto::Metric::default()
                }],
            },
        ]
    }

    fn encode_messages(messages: &[proto::MetricFamily]) -> Vec<u8> {
        let mut out = Vec::new();
        for message in messages {
            message.encode_length_delimited(&mut out).unwrap();
        }
        out
    }

    fn decode_messages(mut body: &[u8]) -> Vec<proto::MetricFamily> {
        let mut out = Vec::new();
        while !body.is_empty() {
            out.push(proto::MetricFamily::decode_length_delimited(&mut body).unwrap());
        }
        out
    }

    #[test]
    fn native_and_float_histograms_and_counter_extras_round_trip_exactly() {
        let mut messages = vec![native_histogram_message()];
        messages.extend(float_histogram_and_counter_messages());
        let body = encode_messages(&messages);
        let families = decode_delimited(&body).unwrap();
        assert!(
            matches!(&families[0].metrics[0].value, MetricValue::Histogram(h) if h.native.is_some())
        );
        let mut out = Vec::new();
        encode_delimited(&families, &mut out);
        assert_eq!(decode_messages(&out), messages);
    }

    #[test]
    fn text_to_protobuf_and_back_for_every_type() {
        let text = "# HELP c A counter.\n# TYPE c counter\nc{a=\"1\"} 1\n# TYPE g gauge\ng -2.5\n# TYPE u untyped\nu NaN\n# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n";
        let families = parse_text(text.as_bytes()).unwrap();
        let mut body = Vec::new();
        encode_delimited(&families, &mut body);
        let decoded = decode_delimited(&body).unwrap();
        // NaN != NaN, so compare the text renderings.
        let render = |families: &[MetricFamily]| {
            let mut out = Vec::new();
            for family in families {
                crate::exposition::text_write::write_family(&mut out, family);
            }
            String::from_utf8(out).unwrap()
        };
        assert_eq!(render(&decoded), render(&families));
        assert_eq!(render(&decoded), text);
    }

    #[test]
    fn header_plus_metric_fields_equals_a_whole_message() {
        let families =
            parse_text(b"# HELP m Help.\n# TYPE m gauge\nm{a=\"1\"} 1\nm{a=\"2\"} 2\n").unwrap();
        let family = &families[0];
        let mut first = Vec::new();
        encode_metric_fields(&family.metrics[..1], &mut first);
        let mut second = Vec::new();
        encode_metric_fields(&family.metrics[1..], &mut second);
        let mut merged = Vec::new();
        write_family_message(
            &mut merged,
            "m",
            Some("Help."),
            MetricKind::Gauge,
            &[&first, &second],
        );
        let mut whole = Vec::new();
        encode_delimited(&families, &mut whole);
        assert_eq!(merged, whole);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            decode_delimited(&[0x05, 0x0a]),
            Err(ProtobufError::Decode { .. })
        ));
        let nameless = encode_messages(&[proto::MetricFamily::default()]);
        assert_eq!(
            decode_delimited(&nameless),
            Err(ProtobufError::MissingName { index: 0 })
        );
        let mut unknown = native_histogram_message();
        unknown.r#type = Some(42);
        assert!(matches!(
            decode_delimited(&encode_messages(&[unknown])),
            Err(ProtobufError::UnknownType { .. })
        ));
        let mut valueless = native_histogram_message();
        valueless.metric[0].histogram = None;
        assert!(matches!(
            decode_delimited(&encode_messages(&[valueless])),
            Err(ProtobufError::MissingValue { .. })
        ));
        // A family without a type is a counter, as proto2's default says.
        let mut untyped = native_histogram_message();
        untyped.r#type = None;
        untyped.metric[0].histogram = None;
        untyped.metric[0].counter = Some(proto::Counter {
            value: Some(1.0),
            ..Default::default()
        });
        assert_eq!(
            decode_delimited(&encode_messages(&[untyped])).unwrap()[0].kind,
            MetricKind::Counter
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_delimited(&bytes);
        }

        #[test]
        fn mutated_valid_bodies_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut body = encode_messages(&[native_histogram_message()]);
            for (position, byte) in flips {
                let len = body.len();
                body[position % len] = byte;
            }
            let _ = decode_delimited(&body);
        }
    }
}
