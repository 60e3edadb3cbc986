//! The JSON API under `/api/v1`: `GET status`, `GET metrics`, and `OPTIONS` on any path, with
//! the CORS headers upstream sends.
//!
//! The shapes are upstream's (`api/v1/api.go`), key for key: every value is a string (numbers
//! formatted like Go's `fmt.Sprint`), objects that are Go maps have their keys sorted, and
//! `<`, `>`, `&` are escaped as Go's `encoding/json` does. Groups come in grouping-key order
//! (upstream's order is random). The admin endpoint lives in [`super::admin`].
//!
//! Native histograms are listed as upstream 1.8+ lists them: `buckets` is an array of
//! `[boundary_rule, "lower", "upper", "count"]` (rule 0 = `(lower, upper]`, 1 = `[lower,
//! upper)`, 3 = the closed zero bucket), negative buckets first, empty buckets left out.
//! Bucket bounds use the same table of fractions as Prometheus' Go code, so the strings match
//! upstream's to the last digit.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::errors::ApiError;
use super::AppState;
use crate::config::Flags;
use crate::exposition::model::{
    BucketSpan, Histogram, Label, Metric, MetricFamily, MetricValue, NativeBuckets, Summary,
};
use crate::exposition::text_write::format_float;
use crate::selector::{GroupSelection, SelectorError};
use crate::store::prepare::{PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP, PUSH_TIME, PUSH_TIME_HELP};
use crate::store::{GroupSnapshot, GroupSummary};
use percent_encoding::percent_decode_str;

/// What `/api/v1/status` reports besides the build: the flags and when the gateway started.
#[derive(Debug, Clone)]
pub struct ApiInfo {
    /// Flag name → value as text, as upstream's kingpin prints it.
    pub flags: BTreeMap<String, String>,
    pub start_time: SystemTime,
}

impl ApiInfo {
    /// The flags as `/api/v1/status` shows them. Durations are printed the way Go's
    /// `time.Duration` prints itself (`5m0s`), as upstream's flag library does.
    pub fn from_flags(flags: &Flags, start_time: SystemTime) -> ApiInfo {
        let mut shown: BTreeMap<String, String> = flags
            .as_pairs()
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect();
        shown.insert(
            "persistence.interval".into(),
            go_duration(flags.persistence_interval),
        );
        ApiInfo {
            flags: shown,
            start_time,
        }
    }
}

impl Default for ApiInfo {
    fn default() -> Self {
        ApiInfo {
            flags: BTreeMap::new(),
            start_time: SystemTime::now(),
        }
    }
}

/// The headers upstream sets on every `/api/v1` answer (but not on the admin endpoint).
const CORS_HEADERS: [(HeaderName, &str); 5] = [
    (
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        "Accept, Authorization, Content-Type, Origin",
    ),
    (
        header::ACCESS_CONTROL_ALLOW_METHODS,
        "GET, POST, DELETE, OPTIONS",
    ),
    (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
    (header::ACCESS_CONTROL_EXPOSE_HEADERS, "Date"),
    (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
];

fn with_cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in CORS_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// `GET /api/v1/status`.
pub async fn status(State(app): State<AppState>, method: Method) -> Response {
    let api = &app.api;
    let data = StatusData {
        build_information: build_information(),
        flags: &api.flags,
        start_time: system_time_rfc3339(api.start_time),
    };
    let response = respond(&data);
    app.telemetry
        .count_request("api/v1/status", method.as_str(), response.status().as_u16());
    response
}

/// `GET /api/v1/metrics`: every group with its families, in grouping-key order.
pub async fn metrics(State(app): State<AppState>, method: Method) -> Response {
    let groups = app.store.groups();
    let data: Vec<BTreeMap<&str, GroupField<'_>>> = groups.iter().map(group_json).collect();
    let response = respond(&data);
    app.telemetry.count_request(
        "api/v1/metrics",
        method.as_str(),
        response.status().as_u16(),
    );
    response
}

/// `GET /api/v1/groups?match[]=SELECTOR…` (ours): the groups whose grouping labels match
/// any selector, with their times and TTL, without their metrics.
pub async fn groups(State(app): State<AppState>, method: Method, uri: Uri) -> Response {
    let response = match selection(&uri) {
        Ok(selection) => {
            let summaries = app.store.group_summaries();
            let data: Vec<GroupListing<'_>> = summaries
                .iter()
                .filter(|group| selection.matches(&group.key))
                .map(GroupListing::from)
                .collect();
            respond(&data)
        }
        Err(error) => bad_data(&error.to_string()),
    };
    app.telemetry
        .count_request("api/v1/groups", method.as_str(), response.status().as_u16());
    response
}

/// The `match[]` selectors of a request's query.
pub(crate) fn selection(uri: &Uri) -> Result<GroupSelection, SelectorError> {
    let values = query_values(uri.query().unwrap_or(""), "match[]");
    GroupSelection::parse(values.iter().map(String::as_str))
}

/// Every value of parameter `name` in a URL query (`+` is a space; names may be
/// percent-encoded, as `match%5B%5D`).
fn query_values(query: &str, name: &str) -> Vec<String> {
    let decode = |text: &str| {
        percent_decode_str(&text.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key) == name).then(|| decode(value))
        })
        .collect()
}

/// One group in the listing of `/api/v1/groups`.
#[derive(Serialize)]
struct GroupListing<'a> {
    labels: LabelsJson<'a>,
    push_time_seconds: f64,
    push_failure_time_seconds: f64,
    /// The TTL in force; 0: the group never expires.
    ttl_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
}

impl<'a> From<&'a GroupSummary> for GroupListing<'a> {
    fn from(group: &'a GroupSummary) -> GroupListing<'a> {
        GroupListing {
            labels: labels_json(group.key.labels()),
            push_time_seconds: group.push_time,
            push_failure_time_seconds: group.failure_time,
            ttl_seconds: group.ttl,
            expires_at: group.expires_at.map(unix_seconds_rfc3339),
        }
    }
}

/// 400 in the API's envelope, naming the problem.
pub(crate) fn bad_data(message: &str) -> Response {
    let body = serde_json::json!({
        "status": "error",
        "errorType": "bad_data",
        "error": message,
    });
    with_cors(
        (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response(),
    )
}

/// `OPTIONS /api/v1/<anything>`: 200 with the CORS headers and nothing else.
pub async fn options(State(app): State<AppState>) -> Response {
    app.telemetry
        .count_request("api/v1/options", "options", 200);
    with_cors(StatusCode::OK.into_response())
}

/// Any method other than `GET` and `OPTIONS` on `status` or `metrics` (including `HEAD`).
pub async fn get_only() -> Response {
    ApiError::MethodNotAllowed {
        message: "Method Not Allowed",
        allow: "GET, OPTIONS",
    }
    .into_response()
}

/// Any other path under `/api/v1`: `OPTIONS` is answered as everywhere in the API, anything
/// else is 404.
pub async fn other_path(state: State<AppState>, method: Method) -> Response {
    if method == Method::OPTIONS {
        options(state).await
    } else {
        ApiError::NotFound.into_response()
    }
}

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    status: &'a str,
    data: T,
}

#[derive(Serialize)]
struct StatusData<'a> {
    build_information: BTreeMap<&'static str, &'static str>,
    flags: &'a BTreeMap<String, String>,
    start_time: String,
}

/// Upstream's `version.Info` keys, from the values baked in at build time.
pub(crate) fn build_information() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("branch", option_env!("PUSHGATEWAY_BRANCH").unwrap_or("")),
        (
            "buildDate",
            option_env!("PUSHGATEWAY_BUILD_DATE").unwrap_or(""),
        ),
        (
            "buildUser",
            option_env!("PUSHGATEWAY_BUILD_USER").unwrap_or(""),
        ),
        (
            "goVersion",
            option_env!("PUSHGATEWAY_RUSTC").unwrap_or("rust"),
        ),
        (
            "revision",
            option_env!("PUSHGATEWAY_REVISION").unwrap_or(""),
        ),
        ("version", env!("CARGO_PKG_VERSION")),
    ])
}

/// 200 with `{"status":"success","data":…}` and the CORS headers.
pub(crate) fn respond<T: Serialize>(data: &T) -> Response {
    let body = match serde_json::to_string(&Envelope {
        status: "success",
        data,
    }) {
        Ok(body) => go_html_escape(body),
        Err(error) => {
            tracing::error!(%error, "Could not encode the API answer as JSON");
            let body = serde_json::json!({
                "status": "error",
                "errorType": "internal",
                "error": error.to_string(),
            });
            let response = (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            );
            return with_cors(response.into_response());
        }
    };
    with_cors(
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
    )
}

/// Go's `encoding/json` escapes `<`, `>`, `&` and the two Unicode line separators inside
/// strings. They can only occur inside strings in JSON, so replacing them everywhere is safe.
fn go_html_escape(json: String) -> String {
    if !json.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 32);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// One value of a group object: its grouping labels, whether the last push succeeded, or a
/// family (keyed by the family's name, so a family named `labels` replaces the labels, as
/// upstream's map does).
#[derive(Serialize)]
#[serde(untagged)]
enum GroupField<'a> {
    Labels(BTreeMap<&'a str, &'a str>),
    Success(bool),
    Seconds(f64),
    Family(FamilyJson<'a>),
}

#[derive(Serialize)]
struct FamilyJson<'a> {
    time_stamp: String,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    help: &'a str,
    metrics: Vec<MetricJson<'a>>,
}

type LabelsJson<'a> = BTreeMap<&'a str, &'a str>;

/// One series. Fields are declared in alphabetical order: upstream encodes a Go map here.
#[derive(Serialize)]
#[serde(untagged)]
enum MetricJson<'a> {
    Value {
        labels: LabelsJson<'a>,
        value: String,
    },
    Summary {
        count: String,
        labels: LabelsJson<'a>,
        quantiles: BTreeMap<String, String>,
        sum: String,
    },
    ClassicHistogram {
        buckets: BTreeMap<String, String>,
        count: String,
        labels: LabelsJson<'a>,
        sum: String,
    },
    NativeHistogram {
        buckets: Vec<(u8, String, String, String)>,
        count: String,
        labels: LabelsJson<'a>,
        sum: String,
    },
}

fn group_json(group: &GroupSnapshot) -> BTreeMap<&str, GroupField<'_>> {
    let mut out = BTreeMap::new();
    out.insert(
        "labels",
        GroupField::Labels(labels_json(group.summary.key.labels())),
    );
    out.insert(
        "last_push_successful",
        GroupField::Success(group.summary.failure_time <= group.summary.push_time),
    );
    // Ours: the TTL in force, only for a group that will expire (a pushed family of this
    // name would take the key, as any family name does).
    if group.summary.expires_at.is_some() {
        out.insert("group_ttl_seconds", GroupField::Seconds(group.summary.ttl));
    }
    for stored in &group.families {
        let family: &MetricFamily = &stored.family;
        out.insert(
            family.name.as_str(),
            GroupField::Family(FamilyJson {
                time_stamp: unix_seconds_rfc3339(stored.pushed_at),
                kind: family.kind.as_upper(),
                help: family.help.as_deref().unwrap_or(""),
                metrics: family.metrics.iter().map(metric_json).collect(),
            }),
        );
    }
    // The two time gauges are stamped when they are set: push_time_seconds by every
    // successful push (or by the failed push that created the group), and
    // push_failure_time_seconds by every failed push. While no push has failed, upstream
    // stamps the latter with the group's first push; we do not keep that time and use the
    // last push instead.
    let mut series_labels = labels_json(group.summary.key.labels());
    series_labels.entry("instance").or_insert("");
    let push_stamp = if group.summary.push_time > 0.0 {
        group.summary.push_time
    } else {
        group.summary.failure_time
    };
    let failure_stamp = if group.summary.failure_time > 0.0 {
        group.summary.failure_time
    } else {
        push_stamp
    };
    for (name, help, value, stamp) in [
        (
            PUSH_TIME,
            PUSH_TIME_HELP,
            group.summary.push_time,
            push_stamp,
        ),
        (
            PUSH_FAILURE_TIME,
            PUSH_FAILURE_TIME_HELP,
            group.summary.failure_time,
            failure_stamp,
        ),
    ] {
        out.insert(
            name,
            GroupField::Family(FamilyJson {
                time_stamp: unix_seconds_rfc3339(stamp),
                kind: "GAUGE",
                help,
                metrics: vec![MetricJson::Value {
                    labels: series_labels.clone(),
                    value: format_float(value),
                }],
            }),
        );
    }
    out
}

fn labels_json(labels: &[Label]) -> LabelsJson<'_> {
    labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect()
}

fn metric_json(metric: &Metric) -> MetricJson<'_> {
    let labels = labels_json(&metric.labels);
    match &metric.value {
        MetricValue::Counter(counter) => MetricJson::Value {
            labels,
            value: format_float(counter.value),
        },
        MetricValue::Gauge(value) | MetricValue::Untyped(value) => MetricJson::Value {
            labels,
            value: format_float(*value),
        },
        MetricValue::Summary(summary) => summary_json(labels, summary),
        MetricValue::Histogram(histogram) => histogram_json(labels, histogram),
    }
}

fn summary_json<'a>(labels: LabelsJson<'a>, summary: &Summary) -> MetricJson<'a> {
    MetricJson::Summary {
        count: summary.sample_count.to_string(),
        labels,
        quantiles: summary
            .quantiles
            .iter()
            .map(|q| (format_float(q.quantile), format_float(q.value)))
            .collect(),
        sum: format_float(summary.sample_sum),
    }
}

fn histogram_json<'a>(labels: LabelsJson<'a>, histogram: &Histogram) -> MetricJson<'a> {
    let sum = format_float(histogram.sample_sum);
    // Upstream treats a histogram as native when it has spans, whatever else it carries.
    if let Some(native) = histogram
        .native
        .as_deref()
        .filter(|n| !n.positive_spans.is_empty() || !n.negative_spans.is_empty())
    {
        let (count, buckets) = native_buckets(histogram, native);
        return MetricJson::NativeHistogram {
            buckets,
            count,
            labels,
            sum,
        };
    }
    let buckets = histogram
        .buckets
        .iter()
        .map(|b| {
            let count = match b.cumulative_count_float {
                Some(count) if count > 0.0 => format_float(count),
                _ => b.cumulative_count.to_string(),
            };
            (format_float(b.upper_bound), count)
        })
        .collect();
    let count = match histogram.sample_count_float {
        Some(count) if count > 0.0 => format_float(count),
        _ => histogram.sample_count.to_string(),
    };
    MetricJson::ClassicHistogram {
        buckets,
        count,
        labels,
        sum,
    }
}

// ---------------------------------------------------------------------------------------
// Native histogram buckets

/// The count and the `[rule, lower, upper, count]` buckets of a native histogram: negative
/// buckets from the most negative up, the zero bucket, then positive buckets, leaving out
/// empty ones. A histogram with a float count (or float zero count) is a float histogram
/// and uses the absolute float bucket counts; otherwise the integer deltas are summed.
pub(crate) fn native_buckets(
    histogram: &Histogram,
    native: &NativeBuckets,
) -> (String, Vec<(u8, String, String, String)>) {
    let schema = native.schema.unwrap_or(0);
    let zero_threshold = native.zero_threshold.unwrap_or(0.0);
    let is_float = histogram.sample_count_float.unwrap_or(0.0) > 0.0
        || native.zero_count_float.unwrap_or(0.0) > 0.0;
    let mut out = Vec::new();
    let (count, zero_count) = if is_float {
        (
            format_float(histogram.sample_count_float.unwrap_or(0.0)),
            native
                .zero_count_float
                .filter(|c| *c != 0.0)
                .map(format_float),
        )
    } else {
        (
            histogram.sample_count.to_string(),
            native.zero_count.filter(|c| *c != 0).map(|c| c.to_string()),
        )
    };
    let bucket_counts = |spans: &[BucketSpan], deltas: &[i64], counts: &[f64]| {
        if is_float {
            float_buckets(spans, counts)
        } else {
            integer_buckets(spans, deltas)
        }
    };
    let negative = bucket_counts(
        &native.negative_spans,
        &native.negative_deltas,
        &native.negative_counts,
    );
    for (index, count) in negative.into_iter().rev() {
        let lower = -bucket_bound(index, schema);
        let upper = -bucket_bound(index.wrapping_sub(1), schema);
        out.push(api_bucket(lower, upper, lower < 0.0, upper > 0.0, count));
    }
    if let Some(zero_count) = zero_count {
        out.push(api_bucket(
            -zero_threshold,
            zero_threshold,
            true,
            true,
            zero_count,
        ));
    }
    let positive = bucket_counts(
        &native.positive_spans,
        &native.positive_deltas,
        &native.positive_counts,
    );
    for (index, count) in positive {
        let lower = bucket_bound(index.wrapping_sub(1), schema);
        let upper = bucket_bound(index, schema);
        out.push(api_bucket(lower, upper, lower < 0.0, upper > 0.0, count));
    }
    (count, out)
}

/// `[rule, lower, upper, count]`: rule 0 is `(]`, 1 is `[)`, 2 is `()` and 3 is `[]`.
fn api_bucket(
    lower: f64,
    upper: f64,
    lower_inclusive: bool,
    upper_inclusive: bool,
    count: String,
) -> (u8, String, String, String) {
    let rule = match (lower_inclusive, upper_inclusive) {
        (false, true) => 0,
        (true, false) => 1,
        (false, false) => 2,
        (true, true) => 3,
    };
    (rule, format_float(lower), format_float(upper), count)
}

/// Walks spans: the first bucket's index is the first span's offset, each further bucket is
/// one higher, and each further span adds its offset to the index after its predecessor.
/// Stops early if there are fewer counts than the spans announce.
fn span_indexes(spans: &[BucketSpan], available: usize) -> Vec<i32> {
    let mut indexes = Vec::with_capacity(available);
    let mut index: i32 = 0;
    for span in spans {
        index = index.wrapping_add(span.offset);
        for _ in 0..span.length {
            if indexes.len() == available {
                return indexes;
            }
            indexes.push(index);
            index = index.wrapping_add(1);
        }
    }
    indexes
}

/// (index, absolute count) of each non-empty bucket of an integer histogram (counts are
/// deltas to the previous bucket).
fn integer_buckets(spans: &[BucketSpan], deltas: &[i64]) -> Vec<(i32, String)> {
    let mut count: i64 = 0;
    span_indexes(spans, deltas.len())
        .into_iter()
        .zip(deltas)
        .filter_map(|(index, delta)| {
            count = count.wrapping_add(*delta);
            // Go converts the running count to uint64 for output.
            (count != 0).then(|| (index, (count as u64).to_string()))
        })
        .collect()
}

/// (index, count) of each non-empty bucket of a float histogram (counts are absolute).
fn float_buckets(spans: &[BucketSpan], counts: &[f64]) -> Vec<(i32, String)> {
    span_indexes(spans, counts.len())
        .into_iter()
        .zip(counts)
        .filter(|(_, count)| **count != 0.0)
        .map(|(index, count)| (index, format_float(*count)))
        .collect()
}

/// The upper bound of bucket `index` in `schema`: 2^(index / 2^schema). The bucket just
/// below the one for infinite observations ends at `f64::MAX` rather than +Inf.
fn bucket_bound(index: i32, schema: i32) -> f64 {
    if schema < 0 {
        // Schemas below -4 do not exist; saturate rather than overflow.
        let exp = (index as i64).saturating_mul(1i64 << schema.unsigned_abs().min(62));
        if exp == 1024 {
            return f64::MAX;
        }
        return ldexp(1.0, exp);
    }
    if schema > MAX_SCHEMA {
        // Prometheus has no such schema (upstream fails the request); compute the bound
        // directly rather than refuse.
        let schema = schema.min(52);
        let per_octave = 1i64 << schema;
        let index = index as i64;
        let fraction_index = index.rem_euclid(per_octave);
        let frac = ((fraction_index as f64) / (per_octave as f64) - 1.0).exp2();
        return ldexp(frac, index.div_euclid(per_octave) + 1);
    }
    let fraction_index = (index & ((1 << schema) - 1)) as usize;
    let frac = bound_fractions()[fraction_index << (MAX_SCHEMA - schema)];
    let exp = (index >> schema) as i64 + 1;
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    ldexp(frac, exp)
}

const MAX_SCHEMA: i32 = 8;

/// The fractions in [0.5, 1) where the buckets of schema 8 start; schema `s` uses every
/// 2^(8-s)-th of them.
///
/// Prometheus' Go libraries use a fixed table rather than computing 2^(i/256)/2 exactly, and
/// that table is not correctly rounded (0.7071067811865475 for √½, not …476). It was made by
/// the procedure below, which client_golang documents next to its copy: schema `s` takes the
/// even entries from schema `s-1` and makes each odd entry by multiplying its predecessor by
/// 2^(2^-s), computed with Go's `math.Exp2`. We repeat that procedure (with a port of Go's
/// `exp2`) so the bounds, and the strings the API shows, are the same as upstream's.
fn bound_fractions() -> &'static [f64] {
    static TABLE: OnceLock<Vec<f64>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut previous: Vec<f64> = vec![0.5];
        for schema in 1..=MAX_SCHEMA {
            let factor = go_exp2(go_exp2(-(schema as f64)));
            let size = 1usize << schema;
            let mut bounds = Vec::with_capacity(size);
            bounds.push(0.5);
            for j in 0..size - 1 {
                let next = if (j + 1) % 2 == 0 {
                    previous[j / 2 + 1]
                } else {
                    bounds[j] * factor
                };
                bounds.push(next);
            }
            previous = bounds;
        }
        previous
    })
}

/// Go's `math.Exp2` (pure-Go version, from FreeBSD's `exp`): reduce to 2^n · e^r and
/// evaluate e^r with a rational approximation. Only used for the nine factors above, where
/// bit-exact agreement with Go matters.
fn go_exp2(x: f64) -> f64 {
    const LN2_HI: f64 = 0.6931471803691238;
    const LN2_LO: f64 = 1.9082149292705877e-10;
    const P1: f64 = 0.16666666666666666;
    const P2: f64 = -0.0027777777777015593;
    const P3: f64 = 6.613756321437934e-05;
    const P4: f64 = -1.6533902205465252e-06;
    const P5: f64 = 4.1381367970572385e-08;
    let n: i64 = if x > 0.0 {
        (x + 0.5) as i64
    } else if x < 0.0 {
        (x - 0.5) as i64
    } else {
        0
    };
    let t = x - n as f64;
    let hi = t * LN2_HI;
    let lo = -t * LN2_LO;
    let r = hi - lo;
    let rr = r * r;
    let c = r - rr * (P1 + rr * (P2 + rr * (P3 + rr * (P4 + rr * P5))));
    let y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi);
    ldexp(y, n)
}

/// `x · 2^exp` with a single rounding, like Go's `math.Ldexp`.
fn ldexp(x: f64, exp: i64) -> f64 {
    // 2^k for a k where that is a normal number.
    fn pow2(k: i64) -> f64 {
        f64::from_bits(((k + 1023) as u64) << 52)
    }
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    if exp > 1023 {
        let rest = exp - 1023;
        if rest > 1023 {
            return x * f64::INFINITY;
        }
        return x * pow2(1023) * pow2(rest);
    }
    if exp >= -1022 {
        return x * pow2(exp);
    }
    // Scale within the normal range first (exactly), then round once into the subnormals.
    // Below 2^-1085 everything rounds to zero.
    if exp < -1085 {
        return x * 0.0;
    }
    x * pow2(exp + 64) * pow2(-64)
}

// ---------------------------------------------------------------------------------------
// Times

/// A Unix time in seconds as Go's `time.Time` marshals to JSON (RFC 3339 with nanoseconds,
/// trailing zeros dropped), in UTC. Stored push times are floats, so microseconds are the
/// finest digits shown.
pub(crate) fn unix_seconds_rfc3339(seconds: f64) -> String {
    let micros = if seconds.is_finite() {
        (seconds * 1e6).round() as i64
    } else {
        0
    };
    rfc3339(
        micros.div_euclid(1_000_000),
        (micros.rem_euclid(1_000_000) * 1000) as u32,
    )
}

pub(crate) fn system_time_rfc3339(time: SystemTime) -> String {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => rfc3339(since.as_secs() as i64, since.subsec_nanos()),
        Err(before) => {
            let before = before.duration();
            let mut seconds = -(before.as_secs() as i64);
            let mut nanos = before.subsec_nanos();
            if nanos > 0 {
                seconds -= 1;
                nanos = 1_000_000_000 - nanos;
            }
            rfc3339(seconds, nanos)
        }
    }
}

fn rfc3339(seconds: i64, nanos: u32) -> String {
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A duration as Go's `time.Duration.String` writes it: `5m0s`, `1h30m0s`, `1.5s`, `500ms`.
pub fn go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    let with_fraction = |whole: u128, rest: u128, digits: usize| {
        if rest == 0 {
            whole.to_string()
        } else {
            let fraction = format!("{rest:0digits$}");
            format!("{whole}.{}", fraction.trim_end_matches('0'))
        }
    };
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", with_fraction(nanos / 1_000, nanos % 1_000, 3));
    }
    if nanos < 1_000_000_000 {
        return format!(
            "{}ms",
            with_fraction(nanos / 1_000_000, nanos % 1_000_000, 6)
        );
    }
    let seconds = nanos / 1_000_000_000;
    let second_text = with_fraction(seconds % 60, nanos % 1_000_000_000, 9);
    let (hours, minutes) = (seconds / 3600, seconds / 60 % 60);
    if hours > 0 {
        format!("{hours}h{minutes}m{second_text}s")
    } else if minutes > 0 {
        format!("{minutes}m{second_text}s")
    } else {
        format!("{second_text}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(offset: i32, length: u32) -> BucketSpan {
        BucketSpan { offset, length }
    }

    fn bucket(rule: u8, lower: &str, upper: &str, count: &str) -> (u8, String, String, String) {
        (rule, lower.into(), upper.into(), count.into())
    }

    #[test]
    fn bound_fractions_are_prometheus_table() {
        let table = bound_fractions();
        assert_eq!(table.len(), 256);
        // Values upstream shows, which are not the correctly rounded 2^(i/256)/2.
        assert_eq!(table[0], 0.5);
        assert_eq!(table[1], 0.5013556375251013);
        assert_eq!(table[6], 0.5081891574554764);
        assert_eq!(table[64], 0.5946035575013605);
        assert_eq!(table[128], 0.7071067811865475);
        assert_eq!(table[192], 0.8408964152537144);
        assert_eq!(table[255], 0.9972960560854698);
        assert!(table.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn bucket_bounds_at_the_edges() {
        assert_eq!(bucket_bound(0, 0), 1.0);
        assert_eq!(bucket_bound(-1, 0), 0.5);
        assert_eq!(bucket_bound(1, 3), 1.0905077326652577);
        assert_eq!(bucket_bound(-1, 2), 0.8408964152537144);
        assert_eq!(bucket_bound(1, -1), 4.0);
        assert_eq!(bucket_bound(-1, -2), 1.0 / 16.0);
        // The last finite bucket ends at f64::MAX; the one after it at +Inf.
        assert_eq!(bucket_bound(1024, 0), f64::MAX);
        assert_eq!(bucket_bound(1025, 0), f64::INFINITY);
        assert_eq!(bucket_bound(512, -1), f64::MAX);
        assert_eq!(bucket_bound(1024 * 256, 8), f64::MAX);
        // Down into the subnormals, then zero.
        assert_eq!(bucket_bound(-1074, 0), 5e-324);
        assert_eq!(bucket_bound(-1073, 0), 1e-323);
        assert_eq!(bucket_bound(-1080, 0), 0.0);
        assert_eq!(bucket_bound(i32::MIN, -4), 0.0);
        assert_eq!(bucket_bound(i32::MAX, -4), f64::INFINITY);
    }

    #[test]
    fn ldexp_rounds_once() {
        assert_eq!(ldexp(0.75, 2), 3.0);
        assert_eq!(ldexp(0.5, 1024), 2f64.powi(1023));
        assert_eq!(ldexp(0.75, 1025), f64::INFINITY);
        // 1.5 times the smallest subnormal is a tie: to even, which is 2 times.
        assert_eq!(ldexp(0.75, -1073), 1e-323);
        // 0.5 · 2^-1074 is halfway to zero: ties to even gives zero.
        assert_eq!(ldexp(0.5, -1074), 0.0);
        assert_eq!(ldexp(0.75, -1074), 5e-324);
    }

    #[test]
    fn integer_native_histogram() {
        let histogram = Histogram {
            sample_count: 5,
            sample_sum: 2.5,
            native: Some(Box::new(NativeBuckets {
                schema: Some(2),
                zero_threshold: Some(1e-128),
                zero_count: Some(1),
                positive_spans: vec![span(-1, 3)],
                positive_deltas: vec![1, 1, -1],
                negative_spans: vec![span(0, 1)],
                negative_deltas: vec![1],
                ..Default::default()
            })),
            ..Default::default()
        };
        let (count, buckets) = native_buckets(&histogram, histogram.native.as_deref().unwrap());
        assert_eq!(count, "5");
        assert_eq!(
            buckets,
            vec![
                bucket(1, "-1", "-0.8408964152537144", "1"),
                bucket(3, "-1e-128", "1e-128", "1"),
                bucket(0, "0.7071067811865475", "0.8408964152537144", "1"),
                bucket(0, "0.8408964152537144", "1", "2"),
                bucket(0, "1", "1.189207115002721", "1"),
            ]
        );
    }

    #[test]
    fn float_native_histogram_skips_empty_buckets() {
        let histogram = Histogram {
            sample_count_float: Some(3.5),
            sample_sum: -1.0,
            native: Some(Box::new(NativeBuckets {
                schema: Some(0),
                zero_threshold: Some(0.001),
                zero_count_float: Some(0.5),
                positive_spans: vec![span(0, 2), span(1, 1)],
                positive_counts: vec![1.5, 0.0, 2.0],
                negative_spans: vec![span(-1, 1)],
                negative_counts: vec![0.25],
                ..Default::default()
            })),
            ..Default::default()
        };
        let (count, buckets) = native_buckets(&histogram, histogram.native.as_deref().unwrap());
        assert_eq!(count, "3.5");
        assert_eq!(
            buckets,
            vec![
                bucket(1, "-0.5", "-0.25", "0.25"),
                bucket(3, "-0.001", "0.001", "0.5"),
                bucket(0, "0.5", "1", "1.5"),
                bucket(0, "4", "8", "2"),
            ]
        );
    }

    #[test]
    fn spans_with_gaps_empty_spans_and_missing_counts() {
        assert_eq!(span_indexes(&[span(2, 0), span(3, 2)], 9), vec![5, 6]);
        assert_eq!(span_indexes(&[span(-2, 2), span(2, 1)], 9), vec![-2, -1, 2]);
        assert_eq!(span_indexes(&[span(0, 3)], 1), vec![0]);
        // Deltas run across spans; a zero running count is left out.
        assert_eq!(
            integer_buckets(&[span(0, 2), span(1, 2)], &[2, -2, 3, -1]),
            vec![
                (0, "2".to_string()),
                (3, "3".to_string()),
                (4, "2".to_string())
            ]
        );
        // No zero bucket without zero observations.
        let histogram = Histogram {
            native: Some(Box::new(NativeBuckets {
                zero_threshold: Some(1e-128),
                zero_count: Some(0),
                positive_spans: vec![span(0, 0)],
                ..Default::default()
            })),
            ..Default::default()
        };
        let (count, buckets) = native_buckets(&histogram, histogram.native.as_deref().unwrap());
        assert_eq!((count.as_str(), buckets.len()), ("0", 0));
    }

    #[test]
    fn histogram_without_spans_is_classic() {
        let histogram = Histogram {
            sample_count: 2,
            sample_sum: 1.0,
            buckets: vec![crate::exposition::model::Bucket {
                upper_bound: 1e-7,
                cumulative_count: 123_456_789,
                ..Default::default()
            }],
            native: Some(Box::new(NativeBuckets {
                zero_count: Some(3),
                ..Default::default()
            })),
            ..Default::default()
        };
        let json = serde_json::to_string(&histogram_json(BTreeMap::new(), &histogram)).unwrap();
        assert_eq!(
            json,
            r#"{"buckets":{"1e-07":"123456789"},"count":"2","labels":{},"sum":"1"}"#
        );
    }

    #[test]
    fn times_are_go_rfc3339() {
        assert_eq!(unix_seconds_rfc3339(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(
            unix_seconds_rfc3339(1_795_545_107.859475),
            "2026-11-24T18:31:47.859475Z"
        );
        assert_eq!(
            unix_seconds_rfc3339(951_782_400.5),
            "2000-02-29T00:00:00.5Z"
        );
        assert_eq!(unix_seconds_rfc3339(-1.0), "1969-12-31T23:59:59Z");
        assert_eq!(
            system_time_rfc3339(UNIX_EPOCH + Duration::new(4_102_444_799, 123_456_789)),
            "2099-12-31T23:59:59.123456789Z"
        );
    }

    #[test]
    fn durations_as_go_prints_them() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(5400), "1h30m0s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(7 * 86400), "168h0m0s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(1500), "1.5µs"),
            (Duration::from_nanos(15), "15ns"),
        ];
        for (duration, text) in cases {
            assert_eq!(go_duration(duration), text, "{duration:?}");
        }
    }

    #[test]
    fn html_characters_are_escaped_like_go() {
        let raw = String::from("{\"a\":\"<b>&\u{2028}\"}");
        assert_eq!(
            go_html_escape(raw),
            "{\"a\":\"\\u003cb\\u003e\\u0026\\u2028\"}"
        );
        assert_eq!(go_html_escape("plain".into()), "plain");
    }
}
