//! The groups, the per-name index over them, and the checks a push must pass against what
//! other groups hold.
//!
//! `groups` holds each group's times and the names of its families. `names` is the
//! consistency and scrape index and holds the data: for every metric name, per group that
//! carries it, a [`Member`] (type, help, rendered lines, label-set hashes). A scrape walks `names` in order and copies bytes; a push looks up only the names it
//! carries. `shapes` counts the distinct sets of grouping-label names, which bounds the
//! groups a pushed series could collide with (a series can only duplicate one in a group whose
//! grouping labels it carries with the same values).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;

use super::member::{label_hash, LabelHasher, Member};
use super::prepare::{
    group_series_labels, series_display, PreparedFamily, PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP,
    PUSH_TIME, PUSH_TIME_HELP,
};
use super::{PushMode, ReservedFamily, ValidationError};
use crate::exposition::model::{Label, Metric, MetricFamily, MetricKind, MetricValue};
use crate::exposition::names::{escape_name, is_valid_label_name, EscapingScheme};
use crate::exposition::negotiate::ScrapeFormat;
use crate::exposition::openmetrics;
use crate::exposition::protobuf::{encode_metric_fields, write_family_message};
use crate::exposition::text_write::{
    write_header, write_label_pairs_of, write_series, write_series_with_pairs,
};
use crate::grouping::GroupingKey;

/// One family of a group, rebuilt from what the store keeps when a reader asks for it.
#[derive(Debug, Clone)]
pub struct StoredFamily {
    pub family: Arc<MetricFamily>,
    /// Unix seconds of the push that stored this family.
    pub pushed_at: f64,
}

/// What a group holds, shared cheaply with readers outside the lock.
#[derive(Debug, Clone)]
pub struct GroupSnapshot {
    /// The group's key, times and TTL.
    pub summary: GroupSummary,
    /// Pushed families by name, without the two time gauges.
    pub families: Vec<StoredFamily>,
}

/// A group's key and times, without its families (cheap to list).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSummary {
    pub key: GroupingKey,
    pub push_time: f64,
    pub failure_time: f64,
    /// The TTL in force in seconds (0 = never expires).
    pub ttl: f64,
    /// Unix seconds when the group expires, if it does.
    pub expires_at: Option<f64>,
}

/// A group's whole contents, detached from the index: what an undo restores, a snapshot
/// writes and a restart reads back.
#[derive(Debug, Clone, Default)]
pub struct GroupContents {
    pub push_time: f64,
    pub failure_time: f64,
    /// The group's own TTL in seconds (`Pushgateway-Group-TTL`; 0 = never expires), or
    /// `None` to follow `--push.group-ttl`.
    pub ttl: Option<f64>,
    /// The pushed families (not the two time gauges, which are derived from the times).
    pub families: Vec<(Arc<str>, Member)>,
}

#[derive(Debug)]
struct Group {
    /// The names of the pushed families (their data lives in `State::names`).
    families: Vec<Arc<str>>,
    push_time: f64,
    failure_time: f64,
    /// The group's own TTL in seconds, if a push set one.
    ttl: Option<f64>,
    /// When the group expires (Unix milliseconds).
    deadline: Option<u64>,
    /// Where the group is filed in `State::expiry`: at its deadline or earlier (a push only
    /// moves a deadline later, and the group is re-filed when the earlier time comes).
    filed: Option<u64>,
    /// The label pairs of the group's two time gauges, written once: every push renders
    /// the gauges again.
    time_gauge_pairs: Box<[u8]>,
}

impl Group {
    /// A new, empty group `key`.
    fn new(key: &GroupingKey) -> Group {
        let mut time_gauge_pairs = Vec::with_capacity(64);
        write_label_pairs_of(&mut time_gauge_pairs, &group_series_labels(key));
        Group {
            families: Vec::new(),
            push_time: 0.0,
            failure_time: 0.0,
            ttl: None,
            deadline: None,
            filed: None,
            time_gauge_pairs: time_gauge_pairs.into(),
        }
    }
}

#[derive(Debug)]
struct NameEntry {
    name: Arc<str>,
    members: BTreeMap<GroupingKey, Member>,
}

impl NameEntry {
    /// The type this name has in groups other than `key`, or in `key` itself when `key` keeps
    /// the family through the push.
    fn kind_besides(
        &self,
        key: &GroupingKey,
        key_keeps_it: bool,
    ) -> Option<(MetricKind, &GroupingKey)> {
        self.members
            .iter()
            .find(|(group, _)| key_keeps_it || *group != key)
            .map(|(group, member)| (member.kind, group))
    }
}

#[derive(Debug)]
pub(super) struct State {
    groups: BTreeMap<GroupingKey, Group>,
    names: BTreeMap<Arc<str>, NameEntry>,
    shapes: HashMap<Vec<String>, usize>,
    inconsistent: Option<String>,
    /// Pushed series stored in total (members' series; the time gauges keep no hashes).
    series: usize,
    /// `--push.group-ttl` in seconds (0 = groups without their own TTL never expire).
    default_ttl: f64,
    /// Every group that will expire, by the time it is filed at (its deadline or earlier):
    /// the first entry is the next time to look.
    expiry: BTreeSet<(u64, GroupingKey)>,
    /// Set when a change made some group's deadline the earliest; taken by the store to wake
    /// the expiry task.
    earliest_changed: bool,
    /// The store's label-set hasher (the same keys as the pushes were prepared with).
    hasher: LabelHasher,
}

/// What a name resolves to once a push is applied, for the suffix checks.
struct Resolved<'a> {
    state: &'a State,
    key: &'a GroupingKey,
    pushed: &'a [PreparedFamily],
    mode: PushMode,
    reserved: &'a [ReservedFamily],
}

impl Resolved<'_> {
    /// The type `name` will have after the push.
    fn kind_of(&self, name: &str) -> Option<MetricKind> {
        if let Some(family) = self.pushed.iter().find(|f| &*f.name == name) {
            return Some(family.member.kind);
        }
        if let Some(reserved) = reserved_family(self.reserved, name) {
            return Some(reserved.kind);
        }
        let entry = self.state.names.get(name)?;
        let key_keeps_it = self.mode == PushMode::Merge;
        entry
            .kind_besides(self.key, key_keeps_it)
            .map(|(kind, _)| kind)
    }
}

/// A scrape body as a list of byte chunks: small writes gather in `buf`, and each group's
/// stored lines are shared (a reference count, not a copy), so a large scrape is assembled
/// without copying its bulk and can be streamed as it is.
#[derive(Debug)]
pub struct Chunks {
    pub buf: Vec<u8>,
    chunks: Vec<Bytes>,
    len: usize,
    /// Shorter stored bytes are copied rather than shared ([`SHARE_AT_LEAST`]).
    share_at_least: usize,
}

impl Default for Chunks {
    fn default() -> Chunks {
        Chunks {
            buf: Vec::new(),
            chunks: Vec::new(),
            len: 0,
            share_at_least: SHARE_AT_LEAST,
        }
    }
}

/// Stored bytes shorter than this are copied into the running buffer instead of shared: a
/// group's two time gauges and small families would otherwise each become a body frame of
/// their own, and with many small groups the per-frame cost outweighs a short copy.
const SHARE_AT_LEAST: usize = 2048;

impl Chunks {
    /// Appends stored bytes, without copying them unless they are short.
    pub fn share(&mut self, bytes: &Bytes) {
        if bytes.len() < self.share_at_least {
            self.buf.extend_from_slice(bytes);
            return;
        }
        self.flush();
        self.len += bytes.len();
        self.chunks.push(bytes.clone());
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            self.len += buf.len();
            self.chunks.push(Bytes::from(buf));
        }
    }

    /// The chunks in order, and their total length.
    pub fn finish(mut self) -> (Vec<Bytes>, usize) {
        self.flush();
        (self.chunks, self.len)
    }
}

/// The shared name of a time gauge, so each group does not allocate its own.
/// The empty hash list of a time gauge (shared, not allocated per push).
fn no_hashes() -> Arc<[u64]> {
    use std::sync::OnceLock;
    static EMPTY: OnceLock<Arc<[u64]>> = OnceLock::new();
    EMPTY.get_or_init(|| Arc::new([])).clone()
}

/// The name and help of time gauge `name` (shared, not allocated per push).
fn time_gauge(name: &'static str) -> (Arc<str>, Arc<str>) {
    use std::sync::OnceLock;
    static PUSH: OnceLock<(Arc<str>, Arc<str>)> = OnceLock::new();
    static FAILURE: OnceLock<(Arc<str>, Arc<str>)> = OnceLock::new();
    let (cell, help) = if name == PUSH_TIME {
        (&PUSH, PUSH_TIME_HELP)
    } else {
        (&FAILURE, PUSH_FAILURE_TIME_HELP)
    };
    cell.get_or_init(|| (Arc::from(name), Arc::from(help)))
        .clone()
}

fn reserved_family<'a>(reserved: &'a [ReservedFamily], name: &str) -> Option<&'a ReservedFamily> {
    reserved
        .binary_search_by(|r| r.name.cmp(name))
        .ok()
        .map(|i| &reserved[i])
}

fn strip_series_suffix(name: &str) -> Option<(&str, &'static str)> {
    for suffix in ["_count", "_sum", "_bucket"] {
        if let Some(base) = name.strip_suffix(suffix) {
            return Some((base, suffix));
        }
    }
    None
}

impl State {
    pub(super) fn inconsistency(&self) -> Option<&str> {
        self.inconsistent.as_deref()
    }

    pub(super) fn mark_inconsistent(&mut self, problem: String) {
        self.inconsistent = Some(problem);
    }

    pub(super) fn new(hasher: LabelHasher) -> State {
        State {
            groups: BTreeMap::new(),
            names: BTreeMap::new(),
            shapes: HashMap::new(),
            inconsistent: None,
            series: 0,
            default_ttl: 0.0,
            expiry: BTreeSet::new(),
            earliest_changed: false,
            hasher,
        }
    }

    /// Checks a prepared push against the other groups and the gateway's own metrics.
    pub(super) fn check(
        &self,
        key: &GroupingKey,
        pushed: &[PreparedFamily],
        mode: PushMode,
        reserved: &[ReservedFamily],
    ) -> Result<(), ValidationError> {
        let resolved = Resolved {
            state: self,
            key,
            pushed,
            mode,
            reserved,
        };
        for family in pushed {
            self.check_type(key, family, reserved)?;
            check_suffixes(&resolved, &family.name, family.member.kind)?;
            self.check_duplicates_elsewhere(key, family)?;
        }
        Ok(())
    }

    fn check_type(
        &self,
        key: &GroupingKey,
        family: &PreparedFamily,
        reserved: &[ReservedFamily],
    ) -> Result<(), ValidationError> {
        let pushed_kind = family.member.kind;
        let clash = |existing: MetricKind, location: String| ValidationError::TypeClash {
            family: family.name.to_string(),
            pushed: pushed_kind,
            existing,
            location,
        };
        if let Some(own) = reserved_family(reserved, &family.name) {
            if own.kind != pushed_kind {
                return Err(clash(own.kind, "in the gateway's own metrics".into()));
            }
        }
        if let Some(entry) = self.names.get(&*family.name) {
            // The pushed family replaces this group's own copy, so only other groups count.
            if let Some((kind, group)) = entry.kind_besides(key, false) {
                if kind != pushed_kind {
                    return Err(clash(kind, format!("in group {group}")));
                }
            }
        }
        Ok(())
    }

    /// A pushed series duplicates a stored one only in a group whose grouping labels the
    /// series carries with the same values; look those groups up by shape.
    fn check_duplicates_elsewhere(
        &self,
        key: &GroupingKey,
        family: &PreparedFamily,
    ) -> Result<(), ValidationError> {
        if self.shapes.len() == 1
            && self.shapes.keys().next().map(Vec::len) == Some(key.labels().len())
        {
            // Every group has the same grouping-label names as this one, and every series
            // carries its own group's values for them: no other group can hold it.
            let same_shape = self
                .shapes
                .keys()
                .next()
                .is_some_and(|shape| shape.iter().map(String::as_str).eq(key.names()));
            if same_shape {
                return Ok(());
            }
        }
        for (labels, hash) in family.series() {
            if let Some(group) = self.find_duplicate(key, &family.name, |n| labels.get(n), hash) {
                return Err(ValidationError::DuplicateAcrossGroups {
                    series: series_display(&family.name, labels.iter()),
                    group: group.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Finds another group than `key` holding series `name{labels}`, given by the value of
    /// each of its labels (`label`) and the hash of its label set (`hash`).
    fn find_duplicate<'a>(
        &self,
        key: &GroupingKey,
        name: &str,
        label: impl Fn(&str) -> Option<&'a str>,
        hash: u64,
    ) -> Option<&GroupingKey> {
        'shapes: for shape in self.shapes.keys() {
            let mut candidate = Vec::with_capacity(shape.len());
            for label_name in shape {
                match label(label_name) {
                    Some(value) => candidate.push(Label::new(label_name.as_str(), value)),
                    None => continue 'shapes,
                }
            }
            let candidate = GroupingKey::new(candidate);
            if &candidate == key {
                continue;
            }
            let member = self
                .names
                .get(name)
                .and_then(|entry| entry.members.get_key_value(&candidate));
            if let Some((group_key, member)) = member {
                if member.contains_hash(hash) {
                    return Some(group_key);
                }
            }
        }
        None
    }

    /// Sets the failure time of a group, creating it (with push time 0) if needed.
    pub(super) fn record_failure(&mut self, key: &GroupingKey, now: f64) {
        self.ensure_group(key);
        if let Some(group) = self.groups.get_mut(key) {
            group.failure_time = now;
        }
        self.refresh_time_gauges(key);
        self.refresh_deadline(key);
    }

    /// Works out group `key`'s deadline (its TTL after its last successful push, or after its
    /// creation by a failed one) and files it no later than that.
    ///
    /// The common case, a push moving a deadline later, touches nothing but the group: the
    /// group stays filed at the earlier time and is re-filed when that time comes
    /// ([`State::take_expired`]), at most once per TTL. So keeping TTLs costs a push almost
    /// nothing, however many groups there are.
    fn refresh_deadline(&mut self, key: &GroupingKey) {
        let Some(group) = self.groups.get_mut(key) else {
            return;
        };
        let ttl = group.ttl.unwrap_or(self.default_ttl);
        let since = if group.push_time > 0.0 {
            group.push_time
        } else {
            group.failure_time
        };
        group.deadline = (ttl > 0.0).then(|| ((since + ttl) * 1000.0).ceil() as u64);
        let file_at = match (group.deadline, group.filed) {
            (Some(deadline), Some(filed)) if filed <= deadline => return,
            (deadline, _) => deadline,
        };
        if let Some(filed) = group.filed.take() {
            self.expiry.remove(&(filed, key.clone()));
        }
        if let Some(at) = file_at {
            group.filed = Some(at);
            self.expiry.insert((at, key.clone()));
            if self.expiry.first().map(|(first, _)| *first) == Some(at) {
                self.earliest_changed = true;
            }
        }
    }

    /// Sets `--push.group-ttl` and files every group again.
    pub(super) fn set_default_ttl(&mut self, seconds: f64) {
        self.default_ttl = seconds;
        self.expiry.clear();
        let keys: Vec<GroupingKey> = self.groups.keys().cloned().collect();
        for key in &keys {
            if let Some(group) = self.groups.get_mut(key) {
                group.filed = None;
            }
            self.refresh_deadline(key);
        }
    }

    /// The earliest time (Unix milliseconds) a group may expire at, if any group will.
    pub(super) fn next_deadline(&self) -> Option<u64> {
        self.expiry.first().map(|(at, _)| *at)
    }

    /// The groups whose deadline is at or before `now_ms`. Groups filed by then whose
    /// deadline moved later are filed again at their deadline.
    pub(super) fn take_expired(&mut self, now_ms: u64) -> Vec<GroupingKey> {
        let due: Vec<GroupingKey> = self
            .expiry
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .map(|(_, key)| key.clone())
            .collect();
        let mut expired = Vec::new();
        for key in due {
            let deadline = self.groups.get(&key).and_then(|group| group.deadline);
            match deadline {
                Some(deadline) if deadline <= now_ms => expired.push(key),
                _ => {
                    if let Some(group) = self.groups.get_mut(&key) {
                        if let Some(filed) = group.filed.take() {
                            self.expiry.remove(&(filed, key.clone()));
                        }
                    }
                    self.refresh_deadline(&key);
                }
            }
        }
        expired
    }

    /// Whether a change since the last call made some deadline the earliest.
    pub(super) fn take_earliest_changed(&mut self) -> bool {
        std::mem::take(&mut self.earliest_changed)
    }

    fn ensure_group(&mut self, key: &GroupingKey) {
        if !self.groups.contains_key(key) {
            self.groups.insert(key.clone(), Group::new(key));
            let shape: Vec<String> = key.names().map(str::to_string).collect();
            *self.shapes.entry(shape).or_insert(0) += 1;
        }
    }

    /// Applies a push that passed the checks (or that is applied unchecked).
    pub(super) fn commit(
        &mut self,
        key: GroupingKey,
        pushed: Vec<(Arc<str>, Member)>,
        mode: PushMode,
        now: f64,
        ttl: Option<f64>,
    ) {
        self.ensure_group(&key);
        let mut names = match (mode, self.groups.get_mut(&key)) {
            (PushMode::Replace, Some(group)) => std::mem::take(&mut group.families),
            (PushMode::Merge, Some(group)) => group.families.clone(),
            (_, None) => Vec::new(),
        };
        if mode == PushMode::Replace {
            for name in names.drain(..) {
                if !pushed.iter().any(|(pushed_name, _)| *pushed_name == name) {
                    self.remove_member(&name, &key);
                }
            }
        }
        for (name, member) in pushed {
            if !names.contains(&name) {
                names.push(name.clone());
            }
            self.insert_member(&name, &key, member);
        }
        if let Some(group) = self.groups.get_mut(&key) {
            group.families = names;
            group.push_time = now;
            if ttl.is_some() {
                group.ttl = ttl;
            }
        }
        self.refresh_time_gauges(&key);
        self.refresh_deadline(&key);
    }

    fn insert_member(&mut self, name: &Arc<str>, key: &GroupingKey, member: Member) {
        self.series += member.hashes.len();
        match self.names.get_mut(&**name) {
            Some(entry) => {
                if let Some(old) = entry.members.insert(key.clone(), member) {
                    self.series -= old.hashes.len();
                }
            }
            None => {
                let mut members = BTreeMap::new();
                members.insert(key.clone(), member);
                self.names.insert(
                    name.clone(),
                    NameEntry {
                        name: name.clone(),
                        members,
                    },
                );
            }
        }
    }

    /// Removes a group and its entries in the index.
    pub(super) fn delete(&mut self, key: &GroupingKey) {
        let Some(group) = self.groups.remove(key) else {
            return;
        };
        if let Some(filed) = group.filed {
            self.expiry.remove(&(filed, key.clone()));
        }
        for name in &group.families {
            self.remove_member(name, key);
        }
        self.remove_member(PUSH_TIME, key);
        self.remove_member(PUSH_FAILURE_TIME, key);
        let shape: Vec<String> = key.names().map(str::to_string).collect();
        if let Some(count) = self.shapes.get_mut(&shape) {
            *count -= 1;
            if *count == 0 {
                self.shapes.remove(&shape);
            }
        }
    }

    fn remove_member(&mut self, name: &str, key: &GroupingKey) {
        if let Some(entry) = self.names.get_mut(name) {
            if let Some(old) = entry.members.remove(key) {
                self.series -= old.hashes.len();
            }
            if entry.members.is_empty() {
                self.names.remove(name);
            }
        }
    }

    /// Re-renders the group's `push_time_seconds` and `push_failure_time_seconds` lines.
    fn refresh_time_gauges(&mut self, key: &GroupingKey) {
        let Some(group) = self.groups.get(key) else {
            return;
        };
        let times = [
            (PUSH_TIME, group.push_time),
            (PUSH_FAILURE_TIME, group.failure_time),
        ];
        let pushed_at = group.push_time;
        let legacy_names = key.names().all(is_valid_label_name);
        let mut lines = Vec::with_capacity(2);
        let mut line =
            Vec::with_capacity(PUSH_FAILURE_TIME.len() + group.time_gauge_pairs.len() + 32);
        for (name, value) in times {
            // Only the value is read: the labels are the group's, written once.
            let metric = Metric {
                labels: Vec::new(),
                value: MetricValue::Gauge(value),
                timestamp_ms: None,
            };
            line.clear();
            write_series_with_pairs(&mut line, name, false, &metric, &group.time_gauge_pairs);
            lines.push((name, Bytes::copy_from_slice(&line)));
        }
        for (name, text) in lines {
            let (name, help) = time_gauge(name);
            let member = Member {
                kind: MetricKind::Gauge,
                help: Some(help),
                unit: None,
                text,
                proto: None,
                hashes: no_hashes(),
                pushed_at,
                legacy_names,
            };
            self.insert_member(&name, key, member);
        }
    }

    /// Writes every family, merged across groups and with the gateway's own, in name order.
    ///
    /// Within a family, groups follow grouping-key order and each group's series are sorted
    /// by labels. Help comes from the gateway's own metric of that name, else from the first
    /// group (in grouping-key order) that pushed help for it.
    ///
    /// Names that break the legacy rules are escaped by `escaping`, as upstream's encoder
    /// does: only members with such names are decoded and written again, every other member
    /// is shared as stored. Families keep the order of their stored names, and two names that
    /// escape alike are not merged (nor are they upstream).
    pub(super) fn render(
        &self,
        own: &[MetricFamily],
        reserved: &[ReservedFamily],
        format: ScrapeFormat,
        escaping: EscapingScheme,
        out: &mut Chunks,
    ) {
        let mut own = own.iter().peekable();
        let mut stored = self.names.iter().peekable();
        loop {
            let take_own = match (own.peek(), stored.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(o), Some((name, _))) => o.name.as_str() <= &***name,
            };
            let (own_family, entry) = if take_own {
                let family = own.next();
                let name = family.map(|f| f.name.as_str()).unwrap_or_default();
                (
                    family,
                    stored
                        .next_if(|(stored_name, _)| &***stored_name == name)
                        .map(|(_, e)| e),
                )
            } else {
                (None, stored.next().map(|(_, e)| e))
            };
            let members = entry.map(|e| &e.members);
            let (name, help, kind) = match (own_family, members.and_then(|m| m.iter().next())) {
                (Some(family), _) => (family.name.as_str(), family.help.as_deref(), family.kind),
                (None, Some((_, first))) => {
                    let Some((name, _)) = entry.and_then(|e| self.names.get_key_value(&*e.name))
                    else {
                        continue;
                    };
                    let help = match reserved_family(reserved, name) {
                        Some(own) => Some(own.help),
                        None => members
                            .into_iter()
                            .flat_map(|m| m.values())
                            .find_map(|m| m.help.as_deref()),
                    };
                    (&**name, help, first.kind)
                }
                (None, None) => continue,
            };
            let members = members.into_iter().flat_map(|m| m.values());
            // The name as served; `name` stays the stored one, to decode members by.
            let served = escape_name(name, escaping);
            let rewrite =
                |member: &Member| escaping != EscapingScheme::AllowUtf8 && !member.legacy_names;
            match format {
                ScrapeFormat::Text => {
                    write_header(&mut out.buf, &served, help, kind);
                    for metric in own_family.map(|f| f.metrics.as_slice()).unwrap_or_default() {
                        write_series(&mut out.buf, &served, metric);
                    }
                    for member in members {
                        if rewrite(member) {
                            for metric in &member.decode_escaped(name, escaping).metrics {
                                write_series(&mut out.buf, &served, metric);
                            }
                        } else {
                            out.share(&member.text);
                        }
                    }
                }
                ScrapeFormat::Protobuf => {
                    let mut own_fields = Vec::new();
                    if let Some(family) = own_family {
                        encode_metric_fields(&family.metrics, &mut own_fields);
                    }
                    let member_fields: Vec<_> = members
                        .map(|m| {
                            if rewrite(m) {
                                let family = m.decode_escaped(name, escaping);
                                let mut fields = Vec::with_capacity(m.text.len());
                                encode_metric_fields(&family.metrics, &mut fields);
                                Cow::Owned(fields)
                            } else {
                                m.proto_fields(name)
                            }
                        })
                        .collect();
                    let mut fields: Vec<&[u8]> = vec![&own_fields];
                    fields.extend(member_fields.iter().map(|f| &f[..]));
                    write_family_message(&mut out.buf, &served, help, kind, &fields);
                }
                ScrapeFormat::OpenMetrics => {
                    let taken = |candidate: &str| {
                        self.names.contains_key(candidate)
                            || reserved_family(reserved, candidate).is_some()
                    };
                    let family = openmetrics::om_family(&served, kind, taken);
                    let members: Vec<&Member> = members.collect();
                    let unit = members.iter().find_map(|m| m.unit.as_deref());
                    openmetrics::write_header(&mut out.buf, family, help, unit);
                    for metric in own_family.map(|f| f.metrics.as_slice()).unwrap_or_default() {
                        openmetrics::write_series(&mut out.buf, family, metric);
                    }
                    for member in members {
                        // Text lines are valid OpenMetrics lines, except for what only the
                        // protobuf copy holds and the gauge histogram's _gsum/_gcount.
                        if member.proto.is_none()
                            && kind != MetricKind::GaugeHistogram
                            && !rewrite(member)
                        {
                            out.share(&member.text);
                        } else {
                            for metric in &member.decode_escaped(name, escaping).metrics {
                                openmetrics::write_series(&mut out.buf, family, metric);
                            }
                        }
                    }
                }
            }
        }
        if format == ScrapeFormat::OpenMetrics {
            openmetrics::write_eof(&mut out.buf);
        }
    }

    /// What group `key` holds, as detached contents (members are shared, not copied).
    pub(super) fn group_contents(&self, key: &GroupingKey) -> Option<GroupContents> {
        let group = self.groups.get(key)?;
        let families = group
            .families
            .iter()
            .filter_map(|name| {
                let member = self.names.get(&**name)?.members.get(key)?;
                Some((name.clone(), member.clone()))
            })
            .collect();
        Some(GroupContents {
            push_time: group.push_time,
            failure_time: group.failure_time,
            ttl: group.ttl,
            families,
        })
    }

    /// Every group's contents, in grouping-key order.
    pub(super) fn all_group_contents(&self) -> Vec<(GroupingKey, GroupContents)> {
        self.groups
            .keys()
            .filter_map(|key| Some((key.clone(), self.group_contents(key)?)))
            .collect()
    }

    /// Makes group `key` hold exactly `contents`, or removes it for `None`.
    pub(super) fn set_group(&mut self, key: &GroupingKey, contents: Option<GroupContents>) {
        self.delete(key);
        let Some(contents) = contents else {
            return;
        };
        self.ensure_group(key);
        let mut names = Vec::with_capacity(contents.families.len());
        for (name, member) in contents.families {
            self.insert_member(&name, key, member);
            names.push(name);
        }
        if let Some(group) = self.groups.get_mut(key) {
            group.families = names;
            group.push_time = contents.push_time;
            group.failure_time = contents.failure_time;
            group.ttl = contents.ttl;
        }
        self.refresh_time_gauges(key);
        self.refresh_deadline(key);
    }

    pub(super) fn set_inconsistency(&mut self, problem: Option<String>) {
        self.inconsistent = problem;
    }

    pub(super) fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub(super) fn has_group(&self, key: &GroupingKey) -> bool {
        self.groups.contains_key(key)
    }

    /// Pushed series stored in total.
    pub(super) fn series_count(&self) -> usize {
        self.series
    }

    /// How many stored series of group `key` a push of families `names` would replace.
    pub(super) fn series_replaced(
        &self,
        key: &GroupingKey,
        names: &[&str],
        mode: PushMode,
    ) -> usize {
        let Some(group) = self.groups.get(key) else {
            return 0;
        };
        group
            .families
            .iter()
            .filter(|name| mode == PushMode::Replace || names.contains(&&***name))
            .filter_map(|name| self.names.get(&**name)?.members.get(key))
            .map(|member| member.hashes.len())
            .sum()
    }

    pub(super) fn hasher(&self) -> LabelHasher {
        self.hasher
    }

    pub(super) fn group_snapshot(&self, key: &GroupingKey) -> Option<GroupSnapshot> {
        let group = self.groups.get(key)?;
        let mut families: Vec<StoredFamily> = group
            .families
            .iter()
            .filter_map(|name| {
                let member = self.names.get(&**name)?.members.get(key)?;
                Some(StoredFamily {
                    family: Arc::new(member.decode(name)),
                    pushed_at: member.pushed_at,
                })
            })
            .collect();
        families.sort_by(|a, b| a.family.name.cmp(&b.family.name));
        Some(GroupSnapshot {
            summary: self.summary(key, group),
            families,
        })
    }

    fn summary(&self, key: &GroupingKey, group: &Group) -> GroupSummary {
        GroupSummary {
            key: key.clone(),
            push_time: group.push_time,
            failure_time: group.failure_time,
            ttl: group.ttl.unwrap_or(self.default_ttl),
            expires_at: group.deadline.map(|ms| ms as f64 / 1000.0),
        }
    }

    pub(super) fn group_summaries(&self) -> Vec<GroupSummary> {
        self.groups
            .iter()
            .map(|(key, group)| self.summary(key, group))
            .collect()
    }

    pub(super) fn group_keys(&self) -> Vec<GroupingKey> {
        self.groups.keys().cloned().collect()
    }

    pub(super) fn all_group_snapshots(&self) -> Vec<GroupSnapshot> {
        self.groups
            .keys()
            .filter_map(|key| self.group_snapshot(key))
            .collect()
    }

    /// After a change while the store is marked inconsistent, checks everything again and
    /// clears the mark when the problem is gone. Only unchecked pushes lead here.
    pub(super) fn recheck_if_inconsistent(&mut self, reserved: &[ReservedFamily]) {
        if self.inconsistent.is_some() {
            self.inconsistent = self.find_any_inconsistency(reserved);
        }
    }

    /// Checks everything from scratch (after a restore of a store pushed to unchecked).
    pub(super) fn recheck_all(&mut self, reserved: &[ReservedFamily]) {
        self.inconsistent = self.find_any_inconsistency(reserved);
    }

    fn find_any_inconsistency(&self, reserved: &[ReservedFamily]) -> Option<String> {
        for (name, entry) in &self.names {
            let mut kinds = entry.members.values().map(|m| m.kind);
            let first = kinds.next()?;
            if kinds.any(|k| k != first) {
                return Some(format!(
                    "metric family {name:?} is pushed with different types"
                ));
            }
            if let Some(own) = reserved_family(reserved, name) {
                if own.kind != first {
                    return Some(format!(
                        "metric family {name:?} clashes with the gateway's own"
                    ));
                }
            }
            let kind_of = |n: &str| {
                self.names
                    .get(n)
                    .and_then(|e| e.members.values().next())
                    .map(|m| m.kind)
            };
            if let Some((base, suffix)) = strip_series_suffix(name) {
                match kind_of(base) {
                    Some(MetricKind::Summary) if suffix != "_bucket" => {
                        return Some(format!("{name:?} collides with summary {base:?}"))
                    }
                    Some(k) if k.is_histogram() => {
                        return Some(format!("{name:?} collides with histogram {base:?}"))
                    }
                    _ => {}
                }
            }
        }
        for (key, group) in &self.groups {
            for name in &group.families {
                let Some(member) = self.names.get(&**name).and_then(|e| e.members.get(key)) else {
                    continue;
                };
                if member.hashes.windows(2).any(|w| w[0] == w[1]) {
                    return Some(format!("group {key} holds a series of {name:?} twice"));
                }
                for metric in &member.decode(name).metrics {
                    let labels = &metric.labels;
                    let label = |n: &str| {
                        labels
                            .binary_search_by(|l| l.name.as_str().cmp(n))
                            .ok()
                            .map(|i| labels[i].value.as_str())
                    };
                    let hash = label_hash(&self.hasher, labels);
                    if let Some(other) = self.find_duplicate(key, name, label, hash) {
                        return Some(format!(
                            "series {} is held by groups {key} and {other}",
                            series_display(name, &metric.labels)
                        ));
                    }
                }
            }
        }
        None
    }
}

/// `foo_count`/`foo_sum`/`foo_bucket` must not meet a summary or histogram `foo`, whichever
/// of the two is pushed.
fn check_suffixes(
    resolved: &Resolved<'_>,
    name: &str,
    kind: MetricKind,
) -> Result<(), ValidationError> {
    let collision = |existing: &str, existing_kind: MetricKind, series: &str| {
        ValidationError::SuffixCollision {
            family: name.to_string(),
            existing: existing.to_string(),
            existing_kind: existing_kind.as_text().to_string(),
            series: series.to_string(),
        }
    };
    if let Some((base, suffix)) = strip_series_suffix(name) {
        if let Some(base_kind) = resolved.kind_of(base) {
            let collides = match base_kind {
                MetricKind::Summary => suffix != "_bucket",
                k => k.is_histogram(),
            };
            if collides {
                return Err(collision(base, base_kind, name));
            }
        }
    }
    if kind.is_compound() {
        let suffixes: &[&str] = if kind.is_histogram() {
            &["_count", "_sum", "_bucket"]
        } else {
            &["_count", "_sum"]
        };
        let mut series = String::with_capacity(name.len() + "_bucket".len());
        for suffix in suffixes {
            series.clear();
            series.push_str(name);
            series.push_str(suffix);
            if let Some(other_kind) = resolved.kind_of(&series) {
                return Err(collision(&series, other_kind, &series));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::names::NameRules;
    use crate::exposition::text_parse::parse_text_with;
    use crate::store::prepare::prepare_push;

    fn key(job: &str) -> GroupingKey {
        GroupingKey::new(vec![Label::new("job", job)])
    }

    fn push(state: &mut State, job: &str, body: &str) {
        let families = parse_text_with(body.as_bytes(), NameRules::Utf8).unwrap();
        let prepared =
            prepare_push(&key(job), families, &state.hasher, 1.0, NameRules::Utf8).unwrap();
        let families = prepared.into_iter().map(|p| (p.name, p.member)).collect();
        state.commit(key(job), families, PushMode::Replace, 1.0, None);
    }

    fn push_at(state: &mut State, job: &str, now: f64, ttl: Option<f64>) {
        let families = parse_text_with(b"m 1\n", NameRules::Legacy).unwrap();
        let prepared =
            prepare_push(&key(job), families, &state.hasher, now, NameRules::Legacy).unwrap();
        let families = prepared.into_iter().map(|p| (p.name, p.member)).collect();
        state.commit(key(job), families, PushMode::Replace, now, ttl);
    }

    #[test]
    fn expiry_files_groups_no_later_than_their_deadline() {
        let mut state = State::new(LabelHasher::random());
        state.set_default_ttl(10.0);
        push_at(&mut state, "a", 100.0, None);
        push_at(&mut state, "b", 105.0, None);
        assert_eq!(state.next_deadline(), Some(110_000));
        // A later push moves a's deadline to 130 s but leaves it filed at 110 s.
        push_at(&mut state, "a", 120.0, None);
        assert_eq!(state.next_deadline(), Some(110_000));
        // At 112 s nothing has expired; a is filed again at its deadline.
        assert!(state.take_expired(112_000).is_empty());
        assert_eq!(state.next_deadline(), Some(115_000));
        assert_eq!(state.take_expired(115_000), vec![key("b")]);
        state.delete(&key("b"));
        assert_eq!(state.next_deadline(), Some(130_000));
        // A shorter TTL of its own files a group earlier at once; 0 takes it out.
        push_at(&mut state, "a", 121.0, Some(2.0));
        assert_eq!(state.next_deadline(), Some(123_000));
        push_at(&mut state, "a", 122.0, Some(0.0));
        assert_eq!(state.next_deadline(), None);
        assert!(state.take_expired(u64::MAX).is_empty());
        assert!(state.take_earliest_changed());
    }

    /// The chunks of a text scrape, and its lines without the push-time gauges.
    fn render(state: &State, escaping: EscapingScheme) -> (Vec<Bytes>, String) {
        // Share even the shortest stored bytes, so the test can see what was shared.
        let mut chunks = Chunks {
            share_at_least: 0,
            ..Chunks::default()
        };
        state.render(&[], &[], ScrapeFormat::Text, escaping, &mut chunks);
        let (chunks, _) = chunks.finish();
        let bytes: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.contains("push_")).collect();
        (chunks, lines.join("\n"))
    }

    #[test]
    fn only_members_with_utf8_names_are_rewritten() {
        let mut state = State::new(LabelHasher::random());
        push(&mut state, "a", "m 1\n{\"m.x\"} 2\n");
        push(&mut state, "b", "m{\"l.b\"=\"v\"} 3\n");
        let stored = |name: &str, job: &str| state.names[name].members[&key(job)].text.clone();
        let shared = |chunks: &[Bytes], text: &Bytes| {
            chunks
                .iter()
                .any(|c| c.as_ptr() == text.as_ptr() && c.len() == text.len())
        };

        let (chunks, text) = render(&state, EscapingScheme::Underscores);
        assert_eq!(
            text,
            "# TYPE m untyped\nm{instance=\"\",job=\"a\"} 1\nm{instance=\"\",job=\"b\",l_b=\"v\"} 3\n# TYPE m_x untyped\nm_x{instance=\"\",job=\"a\"} 2"
        );
        // Group a's `m` is shared as stored; group b's `m` and `m.x` are written anew.
        assert!(shared(&chunks, &stored("m", "a")));
        assert!(!shared(&chunks, &stored("m", "b")));
        assert!(!shared(&chunks, &stored("m.x", "a")));

        let (chunks, text) = render(&state, EscapingScheme::AllowUtf8);
        assert_eq!(
            text,
            "# TYPE m untyped\nm{instance=\"\",job=\"a\"} 1\nm{instance=\"\",job=\"b\",\"l.b\"=\"v\"} 3\n# TYPE \"m.x\" untyped\n{\"m.x\",instance=\"\",job=\"a\"} 2"
        );
        for (name, job) in [("m", "a"), ("m", "b"), ("m.x", "a")] {
            assert!(shared(&chunks, &stored(name, job)), "{name} {job}");
        }
    }
}
