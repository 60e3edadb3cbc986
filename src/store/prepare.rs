//! Turning the families of one push into what the store keeps, before any lock is taken.
//!
//! Everything that depends only on the push itself happens here: rejecting timestamps,
//! checking that each value fits its family's type, adding the grouping labels (and
//! `instance=""`), sorting, finding duplicate series inside the push, and rendering each
//! family's text lines once so scrapes only copy bytes. The checks against what other groups
//! hold live in [`super::state`].
//!
//! A large push is mostly this work, so its families are prepared on several threads, and
//! no label is copied into a series: the group's labels are merged with each series' own
//! labels by reference ([`SeriesLabels`]), and written once per push in the three forms a
//! series needs (sort key, label text, hash input). One pass per series writes those three;
//! series are then sorted by their keys, contiguous byte strings whose order is the order
//! of the label sets, and their text lines are written in that order.

use std::cmp::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::member::{
    hash_bytes, names_are_legacy, text_is_lossless, write_hash_input, LabelHasher, Member,
};
use super::ValidationError;
use crate::exposition::model::{Label, Metric, MetricFamily, MetricValue};
use crate::exposition::names::{is_valid_label_name, needs_quoting, NameRules};
use crate::exposition::protobuf::encode_metric_fields;
use crate::exposition::text_write::{write_label_pair, write_series_with_pairs};
use crate::grouping::GroupingKey;
use crate::parallel::available_threads;

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

    /// Calls `each` with every label in name order, and for the group's labels their index
    /// in the group's list.
    fn walk(self, mut each: impl FnMut(&'a Label, Option<usize>)) {
        let (mut own, mut group_index) = (self.own, 0);
        loop {
            match (own.split_first(), self.group.get(group_index)) {
                (Some((o, rest)), Some(g)) => match o.name.cmp(&g.name) {
                    Ordering::Less => {
                        each(o, None);
                        own = rest;
                    }
                    Ordering::Equal => {
                        // The series names this label itself: its own copy is the one.
                        each(o, None);
                        own = rest;
                        group_index += 1;
                    }
                    Ordering::Greater => {
                        each(g, Some(group_index));
                        group_index += 1;
                    }
                },
                (Some((o, rest)), None) => {
                    each(o, None);
                    own = rest;
                }
                (None, Some(g)) => {
                    each(g, Some(group_index));
                    group_index += 1;
                }
                (None, None) => return,
            }
        }
    }
}

/// Series `index`'s part of `bytes`, where series end at `ends`.
fn slice<'a>(bytes: &'a [u8], ends: &[usize], index: u32) -> &'a [u8] {
    let index = index as usize;
    let start = if index == 0 { 0 } else { ends[index - 1] };
    &bytes[start..ends[index]]
}

/// The group's labels written once per push, as every series that lacks them needs them:
/// their sort-key parts, their `name="value"` text and their hash input.
///
/// All of them live in one buffer: for label `i`, part `3i` is its key part, `3i + 1` its
/// pair and `3i + 2` its hash input.
struct GroupForms {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl GroupForms {
    fn new(group_labels: &[Label]) -> GroupForms {
        // Room for each form of each name and value and the few bytes around them.
        let room: usize = group_labels
            .iter()
            .map(|label| 3 * (label.name.len() + label.value.len() + 8))
            .sum();
        let mut forms = GroupForms {
            bytes: Vec::with_capacity(room),
            ends: Vec::with_capacity(3 * group_labels.len()),
        };
        for label in group_labels {
            label.write_order_key(&mut forms.bytes);
            forms.ends.push(forms.bytes.len());
            write_label_pair(&mut forms.bytes, &label.name, &label.value);
            forms.ends.push(forms.bytes.len());
            write_hash_input(&mut forms.bytes, label);
            forms.ends.push(forms.bytes.len());
        }
        forms
    }

    fn key(&self, label: usize) -> &[u8] {
        slice(&self.bytes, &self.ends, 3 * label as u32)
    }

    fn pair(&self, label: usize) -> &[u8] {
        slice(&self.bytes, &self.ends, 3 * label as u32 + 1)
    }

    fn hash_input(&self, label: usize) -> &[u8] {
        slice(&self.bytes, &self.ends, 3 * label as u32 + 2)
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
    let families: Vec<MetricFamily> = families
        .into_iter()
        .filter(|f| f.name != PUSH_TIME && f.name != PUSH_FAILURE_TIME)
        .collect();
    let forms = GroupForms::new(&group_labels);
    let prepare = |family| prepare_family(key, &group_labels, &forms, family, hasher, now, names);
    let series: usize = families.iter().map(|f| f.metrics.len()).sum();
    let results: Vec<Result<PreparedFamily, ValidationError>> =
        if series >= PARALLEL_SERIES && families.len() > 1 && available_threads() > 1 {
            in_parallel(families, available_threads(), prepare)
        } else {
            // One by one, stopping at the first problem.
            let mut results = Vec::with_capacity(families.len());
            for family in families {
                let result = prepare(family);
                let failed = result.is_err();
                results.push(result);
                if failed {
                    break;
                }
            }
            results
        };
    let mut prepared: Vec<PreparedFamily> = Vec::with_capacity(results.len());
    for result in results {
        // The first problem in push order, whichever way the families were prepared.
        let family = result?;
        // Two families of one name in a push (possible in protobuf): the last one wins.
        prepared.retain(|p| p.name != family.name);
        prepared.push(family);
    }
    Ok(prepared)
}

/// Pushes of at least this many series (in two families or more) are prepared on several
/// threads.
const PARALLEL_SERIES: usize = 20_000;

/// `prepare` applied to every family, on up to `threads` threads (this one included), the
/// results in the order of `families`. Families go to threads by size, largest first, each
/// to the thread with the fewest series so far.
fn in_parallel<T: Send>(
    families: Vec<MetricFamily>,
    threads: usize,
    prepare: impl Fn(MetricFamily) -> T + Sync,
) -> Vec<T> {
    let threads = threads.min(families.len());
    let mut by_size: Vec<(usize, MetricFamily)> = families.into_iter().enumerate().collect();
    by_size.sort_by_key(|(_, f)| std::cmp::Reverse(f.metrics.len()));
    let mut shares: Vec<(usize, Vec<(usize, MetricFamily)>)> =
        (0..threads).map(|_| (0, Vec::new())).collect();
    for (index, family) in by_size {
        let share = shares
            .iter_mut()
            .min_by_key(|(load, _)| *load)
            .expect("at least one thread");
        share.0 += family.metrics.len().max(1);
        share.1.push((index, family));
    }
    let work = |share: Vec<(usize, MetricFamily)>| -> Vec<(usize, T)> {
        share
            .into_iter()
            .map(|(index, family)| (index, prepare(family)))
            .collect()
    };
    let mut shares = shares.into_iter().map(|(_, share)| share);
    let own = shares.next().unwrap_or_default();
    let mut done: Vec<(usize, T)> = std::thread::scope(|scope| {
        let others: Vec<_> = shares.map(|share| scope.spawn(|| work(share))).collect();
        let mut done = work(own);
        for other in others {
            match other.join() {
                Ok(results) => done.extend(results),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        done
    });
    done.sort_unstable_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, result)| result).collect()
}

fn prepare_family(
    key: &GroupingKey,
    group_labels: &Arc<[Label]>,
    forms: &GroupForms,
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
                    label: label.name.to_string(),
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
                    label: label.name.to_string(),
                });
            }
        }
        sanitize_own_labels(key, &mut metric.labels);
        // The group's labels are added only where a series lacks them, so two labels of one
        // name can only come from the series itself.
        if let Some(pair) = metric.labels.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(ValidationError::DuplicateLabel {
                family: family.name.clone(),
                label: pair[0].name.to_string(),
            });
        }
    }
    let labels_of =
        |index: u32| SeriesLabels::new(&family.metrics[index as usize].labels, group_labels);

    // One pass over the series in pushed order writes each one's sort key and label text
    // and hashes its labels, copying the group's labels from `forms`.
    let count = family.metrics.len();
    // Room for every series' key and pairs, so that a large push writes them without
    // growing (and copying, and faulting in) its buffers on the way.
    let label_bytes = |labels: &[Label]| -> usize {
        labels
            .iter()
            .map(|l| l.name.len() + l.value.len() + 4)
            .sum()
    };
    let group_bytes = label_bytes(group_labels);
    let label_room: usize = family
        .metrics
        .iter()
        .map(|metric| label_bytes(&metric.labels) + group_bytes)
        .sum();
    let Scratch {
        mut keys,
        mut key_ends,
        mut pairs,
        mut pair_ends,
        mut hash_input,
        mut order,
        mut hashes,
        mut small_text,
    } = Scratch::take(count, label_room);
    for index in 0..count as u32 {
        hash_input.clear();
        let mut first = true;
        labels_of(index).walk(|label, group_index| {
            if !first {
                pairs.push(b',');
            }
            first = false;
            match group_index {
                Some(i) => {
                    keys.extend_from_slice(forms.key(i));
                    pairs.extend_from_slice(forms.pair(i));
                    hash_input.extend_from_slice(forms.hash_input(i));
                }
                None => {
                    label.write_order_key(&mut keys);
                    write_label_pair(&mut pairs, &label.name, &label.value);
                    write_hash_input(&mut hash_input, label);
                }
            }
        });
        key_ends.push(keys.len());
        pair_ends.push(pairs.len());
        hashes.push(hash_bytes(hasher, &hash_input));
    }
    let sort_key = |index: u32| slice(&keys, &key_ends, index);

    // Sort the series by their keys. Series of one push often share a long start (the
    // group's labels, a common label): a comparison first looks at the 8 bytes after the
    // part every key shares, as a number.
    let shared = (1..count as u32).fold(count.min(1) * sort_key(0).len(), |shared, index| {
        common_prefix_len(&sort_key(0)[..shared], sort_key(index))
    });
    let head = |index: u32| {
        let rest = &sort_key(index)[shared..];
        let mut bytes = [0u8; 8];
        let n = rest.len().min(8);
        bytes[..n].copy_from_slice(&rest[..n]);
        // Zero padding sorts a shorter key first, as the full comparison would.
        u64::from_be_bytes(bytes)
    };
    order.extend((0..count as u32).map(|i| (head(i), i)));
    // By head (ties by index, put right below); equal keys are duplicates, refused below,
    // so the order among them cannot matter.
    order.sort_unstable();
    let mut run_start = 0;
    while run_start < order.len() {
        let head = order[run_start].0;
        // Runs are short (most heads are unique): a forward scan beats a binary search.
        let run_end = run_start
            + order[run_start..]
                .iter()
                .take_while(|&&(h, _)| h == head)
                .count();
        if run_end - run_start > 1 {
            order[run_start..run_end].sort_unstable_by(|&(_, a), &(_, b)| {
                sort_key(a)[shared..].cmp(&sort_key(b)[shared..])
            });
        }
        run_start = run_end;
    }
    if let Some(pair) = order
        .windows(2)
        .find(|w| w[0].0 == w[1].0 && sort_key(w[0].1) == sort_key(w[1].1))
    {
        return Err(ValidationError::DuplicateInPush {
            series: series_display(&family.name, labels_of(pair[0].1).iter()),
        });
    }
    let order_indices = || order.iter().map(|&(_, index)| index);

    let quote_name = needs_quoting(&family.name);
    // Every line holds the name with a suffix, the series' pairs, maybe an `le` or
    // `quantile` pair, and a value of at most 24 characters.
    let lines_of = |metric: &Metric| match &metric.value {
        MetricValue::Histogram(histogram) => histogram.buckets.len() + 3,
        MetricValue::Summary(summary) => summary.quantiles.len() + 2,
        _ => 1,
    };
    let text_room: usize = family
        .metrics
        .iter()
        .enumerate()
        .map(|(index, metric)| {
            let series_pairs = slice(&pairs, &pair_ends, index as u32).len();
            let extra = if lines_of(metric) > 1 { 8 + 24 } else { 4 };
            lines_of(metric) * (family.name.len() + series_pairs + extra + 24)
        })
        .sum();
    // A small family is written in this thread's buffer and copied out at its exact size
    // (one allocation); a large one is written where it will be kept.
    let small = text_room <= SMALL_TEXT_BYTES;
    let mut text = if small {
        std::mem::take(&mut small_text)
    } else {
        Vec::with_capacity(text_room)
    };
    let mut sorted: Vec<(u32, u64)> = Vec::with_capacity(count);
    for index in order_indices() {
        let metric = &family.metrics[index as usize];
        let series_pairs = slice(&pairs, &pair_ends, index);
        write_series_with_pairs(&mut text, &family.name, quote_name, metric, series_pairs);
        sorted.push((index, hashes[index as usize]));
    }
    let proto = (!text_is_lossless(&family)).then(|| {
        // Rare (native histograms, exemplars, units…): only here are the full label sets
        // gathered into each series.
        let metrics: Vec<Metric> = order_indices()
            .map(|index| Metric {
                labels: labels_of(index).iter().cloned().collect(),
                ..family.metrics[index as usize].clone()
            })
            .collect();
        let mut proto = Vec::with_capacity(text.len());
        encode_metric_fields(&metrics, &mut proto);
        Bytes::from(proto)
    });
    hashes.sort_unstable();
    let sorted_hashes: Arc<[u64]> = Arc::from(&hashes[..]);
    let text = if small {
        let stored = Bytes::copy_from_slice(&text);
        small_text = text;
        stored
    } else {
        Bytes::from(text)
    };
    Scratch {
        keys,
        key_ends,
        pairs,
        pair_ends,
        hash_input,
        order,
        hashes,
        small_text,
    }
    .give_back();
    let legacy_names =
        names_are_legacy(&family) && group_labels.iter().all(|l| is_valid_label_name(&l.name));
    let member = Member {
        kind: family.kind,
        help: family.help.as_deref().map(Arc::from),
        unit: family.unit.as_deref().map(Arc::from),
        text,
        proto,
        hashes: sorted_hashes,
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

/// The working buffers of [`prepare_family`], kept per thread between pushes: a small
/// push would otherwise spend a good part of its time allocating and freeing them.
#[derive(Default)]
struct Scratch {
    /// Each series' sort key, one after the other, ending at `key_ends`.
    keys: Vec<u8>,
    key_ends: Vec<usize>,
    /// Each series' label pairs as written in the text format, ending at `pair_ends`.
    pairs: Vec<u8>,
    pair_ends: Vec<usize>,
    /// The bytes one series' label-set hash is taken over.
    hash_input: Vec<u8>,
    /// (first bytes of the sort key past the shared start, series index), sorted.
    order: Vec<(u64, u32)>,
    /// Each series' label-set hash, by series index (sorted at the end).
    hashes: Vec<u64>,
    /// The lines of a family of at most [`SMALL_TEXT_BYTES`].
    small_text: Vec<u8>,
}

/// See [`Scratch::small_text`].
const SMALL_TEXT_BYTES: usize = 16 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// Buffers larger than this (in bytes, all together) are freed rather than kept for the
/// next push, so one large push does not pin its working memory to a thread.
const SCRATCH_KEPT_BYTES: usize = 256 * 1024;

impl Scratch {
    /// This thread's buffers, empty, with room for `series` series.
    /// `label_bytes` is about how long the keys and label pairs of all series will be.
    fn take(series: usize, label_bytes: usize) -> Scratch {
        let mut scratch = SCRATCH.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
        scratch.keys.reserve(label_bytes);
        scratch.key_ends.reserve(series);
        scratch.pairs.reserve(label_bytes);
        scratch.pair_ends.reserve(series);
        scratch.hash_input.reserve(256);
        scratch.order.reserve(series);
        scratch.hashes.reserve(series);
        scratch.small_text.reserve(SMALL_TEXT_BYTES);
        scratch
    }

    /// Keeps the buffers for this thread's next push, emptied, unless they grew large.
    fn give_back(mut self) {
        let bytes = self.keys.capacity()
            + self.pairs.capacity()
            + self.hash_input.capacity()
            + (self.key_ends.capacity() + self.pair_ends.capacity()) * size_of::<usize>()
            + self.order.capacity() * size_of::<(u64, u32)>()
            + self.hashes.capacity() * size_of::<u64>()
            + self.small_text.capacity();
        if bytes > SCRATCH_KEPT_BYTES {
            return;
        }
        self.keys.clear();
        self.key_ends.clear();
        self.pairs.clear();
        self.pair_ends.clear();
        self.hash_input.clear();
        self.order.clear();
        self.hashes.clear();
        self.small_text.clear();
        SCRATCH.with(|cell| *cell.borrow_mut() = self);
    }
}

/// Writes the grouping key's values over the series' labels of the same names and sorts
/// them by name. The key's other labels (and `instance=""`) are not added here: see
/// [`SeriesLabels`].
fn sanitize_own_labels(key: &GroupingKey, labels: &mut [Label]) {
    for label in labels.iter_mut() {
        if let Some(value) = key.get(&label.name) {
            if label.value != value {
                label.value = value.into();
            }
        }
    }
    if !labels.is_sorted() {
        labels.sort();
    }
}

/// How many bytes `a` and `b` share at their start, compared 8 at a time.
fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    let len = a.len().min(b.len());
    let mut at = 0;
    while at + 8 <= len {
        let x = u64::from_ne_bytes(a[at..at + 8].try_into().expect("8 bytes"));
        let y = u64::from_ne_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        if x != y {
            break;
        }
        at += 8;
    }
    at + a[at..len]
        .iter()
        .zip(&b[at..len])
        .take_while(|(x, y)| x == y)
        .count()
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
    use crate::store::member::label_hash;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn common_prefix_len_counts_the_shared_start(
            shared in prop::collection::vec(any::<u8>(), 0..20),
            a in prop::collection::vec(0u8..3, 0..12),
            b in prop::collection::vec(0u8..3, 0..12),
        ) {
            let (a, b) = ([&shared[..], &a[..]].concat(), [&shared[..], &b[..]].concat());
            let expected = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            prop_assert_eq!(common_prefix_len(&a, &b), expected);
        }
    }

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
                    label.value = value.into();
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
