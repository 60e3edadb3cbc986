//! The store: every group's latest push, the per-name consistency index, and the rendered
//! text each scrape copies.
//!
//! [`Store`] is a cheap-to-clone handle (an `Arc` around a lock and the state). A push is
//! parsed by the caller, prepared here without the lock ([`prepare`]), then checked against
//! the index and committed under the write lock ([`state`]). Checks cost in proportion to the
//! push, never to everything stored: the index knows, per metric name, its type and which
//! groups carry it. Nothing in here knows about HTTP.
//!
//! The lock is a `parking_lot::RwLock` rather than a Tokio lock: no `.await` happens while it
//! is held, and every critical section is short (index look-ups and pointer moves; rendering
//! happens before the lock is taken).

mod member;
pub mod persist;
pub mod prepare;
mod state;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;

use crate::exposition::model::{Label, MetricFamily, MetricKind};
use crate::exposition::names::{EscapingScheme, NameRules};
use crate::exposition::negotiate::ScrapeFormat;
use crate::grouping::GroupingKey;
use bytes::Bytes;
use member::LabelHasher;
use persist::{Journal, Op, OpenError, PersistOptions, Ticket, Undo};
use state::{Chunks, State};

pub use persist::{PersistError, PersistHealth};

/// Figures about the store for the gateway's own metrics and readiness.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreStats {
    pub groups: usize,
    /// Pushed series stored in total (not the two time gauges per group).
    pub series: usize,
    /// `None` when the store keeps everything in memory only.
    pub persistence: Option<PersistHealth>,
    /// Groups removed because their TTL ran out, since start.
    pub expired: u64,
}

pub use state::{GroupSnapshot, GroupSummary, StoredFamily};

/// A metric family the gateway exposes about itself. Pushes must agree with its type, and
/// its help text wins over a pushed one.
#[derive(Debug, Clone)]
pub struct ReservedFamily {
    pub name: &'static str,
    pub kind: MetricKind,
    pub help: &'static str,
}

/// How the store behaves; built from the command line by the caller.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// `false` with `--push.disable-consistency-check`: pushes are applied unchecked.
    pub consistency_check: bool,
    /// The gateway's own metric families, sorted by name.
    pub reserved: Vec<ReservedFamily>,
    /// Which metric and label names a push may use (`--push.enable-utf8-names`).
    pub names: NameRules,
    /// Opt-in limits on what pushes may store.
    pub limits: Limits,
    /// `--push.group-ttl`: groups without their own TTL expire this long after their last
    /// successful push; zero means never (upstream's behaviour).
    pub group_ttl: Duration,
}

/// Limits on what pushes may store; 0 means unlimited (the default, as upstream).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// `--push.max-groups`
    pub max_groups: usize,
    /// `--push.max-series`: pushed series stored in total (not the two time gauges).
    pub max_series: usize,
    /// `--push.max-series-per-push`
    pub max_series_per_push: usize,
    /// `--push.max-label-length`: bytes of a label name or value.
    pub max_label_length: usize,
}

/// A push over one of the [`Limits`]; nothing stored changes, not even the failure time.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    #[error("the gateway already holds its limit of {limit} groups (--push.max-groups); delete groups or raise the limit")]
    Groups { limit: usize },
    #[error("the push would bring the stored series to {would_be}, over the limit of {limit} (--push.max-series); delete groups or raise the limit")]
    Series { limit: usize, would_be: usize },
    #[error("the push holds {pushed} series, over the limit of {limit} per push (--push.max-series-per-push)")]
    SeriesPerPush { limit: usize, pushed: usize },
    #[error("a label name or value {place} is {length} bytes long, over the limit of {limit} bytes (--push.max-label-length)")]
    LabelLength {
        limit: usize,
        length: usize,
        place: String,
    },
}

impl LimitError {
    /// The `reason` label of `pushgateway_push_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            LimitError::Groups { .. } => "max_groups",
            LimitError::Series { .. } => "max_series",
            LimitError::SeriesPerPush { .. } => "max_series_per_push",
            LimitError::LabelLength { .. } => "max_label_length",
        }
    }
}

impl Limits {
    /// The checks that depend only on the push (its size and label lengths).
    fn check_push(&self, key: &GroupingKey, families: &[MetricFamily]) -> Result<(), LimitError> {
        if self.max_series_per_push > 0 {
            let pushed: usize = families.iter().map(|f| f.metrics.len()).sum();
            if pushed > self.max_series_per_push {
                return Err(LimitError::SeriesPerPush {
                    limit: self.max_series_per_push,
                    pushed,
                });
            }
        }
        let limit = self.max_label_length;
        if limit > 0 {
            let too_long = |label: &Label| label.name.len().max(label.value.len()) > limit;
            let error = |label: &Label, place: String| LimitError::LabelLength {
                limit,
                length: label.name.len().max(label.value.len()),
                place,
            };
            if let Some(label) = key.labels().iter().find(|l| too_long(l)) {
                return Err(error(label, "in the grouping key".into()));
            }
            for family in families {
                let labels = family.metrics.iter().flat_map(|m| m.labels.iter());
                if let Some(label) = labels.into_iter().find(|l| too_long(l)) {
                    return Err(error(label, format!("in metric family {:?}", family.name)));
                }
            }
        }
        Ok(())
    }
}

/// PUT replaces the whole group; POST replaces only the families it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushMode {
    Replace,
    Merge,
}

/// Why a push was refused. Each of these sets the group's `push_failure_time_seconds`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    #[error("pushed metrics must not have timestamps (metric family {family:?} has one)")]
    Timestamp { family: String },
    #[error("invalid metric name {0:?}")]
    InvalidName(String),
    #[error("invalid label name {label:?} in metric family {family:?}")]
    InvalidLabelName { family: String, label: String },
    #[error("metric family {family:?} is a {kind} but holds a {value_kind} value")]
    ValueMismatch {
        family: String,
        kind: MetricKind,
        value_kind: MetricKind,
    },
    #[error("label {label:?} is reserved in metric family {family:?}")]
    ReservedLabel { family: String, label: String },
    #[error("metric family {family:?} has a series with two labels named {label:?}")]
    DuplicateLabel { family: String, label: String },
    #[error("series {series} is pushed more than once")]
    DuplicateInPush { series: String },
    #[error("series {series} is already pushed to group {group}")]
    DuplicateAcrossGroups { series: String, group: String },
    #[error("metric family {family:?} is pushed as {pushed} but is {existing} {location}")]
    TypeClash {
        family: String,
        pushed: MetricKind,
        existing: MetricKind,
        location: String,
    },
    #[error("metric family {family:?} collides with {existing_kind} {existing:?}: both would expose series named {series:?}")]
    SuffixCollision {
        family: String,
        existing: String,
        existing_kind: String,
        series: String,
    },
    #[error("the stored metrics are inconsistent ({0}); delete the offending group first")]
    StoreInconsistent(String),
}

impl ValidationError {
    /// The `reason` label of `pushgateway_push_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            ValidationError::Timestamp { .. } => "timestamp",
            ValidationError::InvalidName(_) => "invalid_metric_name",
            ValidationError::InvalidLabelName { .. } => "invalid_label_name",
            ValidationError::ValueMismatch { .. } => "value_mismatch",
            ValidationError::ReservedLabel { .. } => "reserved_label",
            ValidationError::DuplicateLabel { .. } => "duplicate_label",
            ValidationError::DuplicateInPush { .. } => "duplicate_in_push",
            ValidationError::DuplicateAcrossGroups { .. } => "duplicate_across_groups",
            ValidationError::TypeClash { .. } => "type_clash",
            ValidationError::SuffixCollision { .. } => "suffix_collision",
            ValidationError::StoreInconsistent(_) => "store_inconsistent",
        }
    }
}

/// Why a push failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PushError {
    /// Refused; only the group's failure time changed.
    #[error(transparent)]
    Rejected(#[from] ValidationError),
    /// Valid, but could not be made durable, so it was not applied.
    #[error(transparent)]
    NotDurable(#[from] PersistError),
    /// Over a limit; nothing changed.
    #[error(transparent)]
    OverLimit(#[from] LimitError),
}

/// What a push to a store did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// Checked and applied.
    Applied,
    /// Applied without a check (`--push.disable-consistency-check`).
    AppliedUnchecked,
}

/// The scrape could not be served because unchecked pushes left the store inconsistent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the stored metrics are inconsistent: {0}")]
pub struct Inconsistent(pub String);

/// The shared handle to the gateway's state.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    state: Arc<RwLock<State>>,
    options: StoreOptions,
    /// Keys the label-set hashes; random per store so nobody can aim for collisions.
    hasher: LabelHasher,
    /// Present when the store persists its changes.
    journal: Option<Journal>,
    /// Woken when a group's deadline becomes the earliest (see [`Store::run_expiry`]).
    expiry_changed: tokio::sync::Notify,
    /// Groups removed because their TTL ran out.
    expired: AtomicU64,
}

/// Seconds since the Unix epoch, with sub-second precision.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Waits until a change is durable (at once for a memory-only store).
async fn durable(ticket: Option<Ticket>) -> Result<(), PersistError> {
    match ticket {
        None => Ok(()),
        Some(ticket) => ticket.await.unwrap_or(Err(PersistError::Stopped)),
    }
}

/// Pushes of at least this many series are freed on a blocking thread of the runtime.
const FREE_OFF_THE_REQUEST_SERIES: usize = 10_000;

/// Frees the parsed families of an applied push. Those of a large push (hundreds of
/// thousands of allocations) are freed on one of the runtime's blocking threads, so the
/// answer does not wait for it; small ones, or outside a runtime, are freed here.
fn free_off_the_request(parsed: Vec<MetricFamily>) {
    let series: usize = parsed.iter().map(|f| f.metrics.len()).sum();
    if series < FREE_OFF_THE_REQUEST_SERIES {
        return;
    }
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn_blocking(move || drop(parsed));
    }
}

impl Store {
    /// A store that keeps everything in memory only.
    pub fn new(options: StoreOptions) -> Store {
        let mut state = State::new(LabelHasher::random());
        state.set_default_ttl(options.group_ttl.as_secs_f64());
        Store::build(options, state, None)
    }

    /// A store that persists every change to `persistence.path` before acknowledging it,
    /// starting from what the file holds.
    pub fn open(options: StoreOptions, persistence: &PersistOptions) -> Result<Store, OpenError> {
        let state = Arc::new(RwLock::new(State::new(LabelHasher::random())));
        let journal = persist::open(persistence, state.clone(), &options)?;
        state
            .write()
            .set_default_ttl(options.group_ttl.as_secs_f64());
        let hasher = state.read().hasher();
        Ok(Store::with_state(options, state, hasher, Some(journal)))
    }

    fn build(options: StoreOptions, state: State, journal: Option<Journal>) -> Store {
        let hasher = state.hasher();
        Store::with_state(options, Arc::new(RwLock::new(state)), hasher, journal)
    }

    fn with_state(
        mut options: StoreOptions,
        state: Arc<RwLock<State>>,
        hasher: LabelHasher,
        journal: Option<Journal>,
    ) -> Store {
        options.reserved.sort_by_key(|r| r.name);
        Store {
            shared: Arc::new(Shared {
                state,
                options,
                hasher,
                journal,
                expiry_changed: tokio::sync::Notify::new(),
                expired: AtomicU64::new(0),
            }),
        }
    }

    /// Records `op` (already applied, `undo` takes it back) when persisting.
    fn log(&self, op: impl FnOnce() -> Op, undo: Option<Undo>, wait: bool) -> Option<Ticket> {
        let journal = self.shared.journal.as_ref()?;
        journal.enqueue(op(), undo?, wait)
    }

    /// What undoing a change to group `key` needs, captured before the change (only when
    /// persisting).
    fn before(&self, state: &State, key: &GroupingKey) -> Option<Undo> {
        self.shared.journal.as_ref()?;
        Some(Undo::Group {
            key: key.clone(),
            before: state.group_contents(key),
            inconsistent: state.inconsistency().map(str::to_string),
        })
    }

    /// Applies a push of parsed families to group `key`, and returns once it is durable.
    ///
    /// On a validation error nothing stored changes except the group's failure time (and the
    /// group is created, holding only its two time gauges, if it did not exist). If the push
    /// cannot be persisted, it is not applied either.
    pub async fn push(
        &self,
        key: GroupingKey,
        families: Vec<MetricFamily>,
        mode: PushMode,
    ) -> Result<PushOutcome, PushError> {
        self.push_with_ttl(key, families, mode, None).await
    }

    /// Like [`Store::push`], setting the group's own TTL when `ttl` is given (zero: the group
    /// never expires); without it the group keeps the TTL it has.
    pub async fn push_with_ttl(
        &self,
        key: GroupingKey,
        families: Vec<MetricFamily>,
        mode: PushMode,
        ttl: Option<Duration>,
    ) -> Result<PushOutcome, PushError> {
        let ttl = ttl.map(|ttl| ttl.as_secs_f64());
        let (result, ticket) = self.apply_push(key, families, mode, ttl);
        durable(ticket).await?;
        result
    }

    fn apply_push(
        &self,
        key: GroupingKey,
        families: Vec<MetricFamily>,
        mode: PushMode,
        ttl: Option<f64>,
    ) -> (Result<PushOutcome, PushError>, Option<Ticket>) {
        let options = &self.shared.options;
        if let Err(error) = options.limits.check_push(&key, &families) {
            return (Err(error.into()), None);
        }
        let now = unix_now();
        let prepared =
            prepare::prepare_push(&key, families, &self.shared.hasher, now, options.names);
        // The parsed series, freed only once the lock is released (declared before it, so
        // dropped after it, or handed to `free_off_the_request`): freeing a large push
        // takes a while.
        let mut parsed: Vec<MetricFamily> = Vec::new();
        let mut state = self.shared.state.write();
        let undo = self.before(&state, &key);
        // Problems inside the push itself (timestamps, duplicates, bad names) are refused even
        // with the consistency check off: such a push could never be scraped.
        let refusal = match &prepared {
            Err(error) => Some(error.clone()),
            Ok(_) if !options.consistency_check => None,
            Ok(prepared) => match state.inconsistency() {
                Some(problem) => Some(ValidationError::StoreInconsistent(problem.to_string())),
                None => state.check(&key, prepared, mode, &options.reserved).err(),
            },
        };
        if let Some(error) = refusal {
            state.record_failure(&key, now);
            self.wake_expiry(&mut state);
            // A failure time is not worth waiting for: the answer is the refusal anyway.
            self.log(|| Op::Failure { key, time: now }, undo, false);
            return (Err(error.into()), None);
        }
        let Ok(prepared) = prepared else {
            unreachable!("refused above")
        };
        if let Err(error) = self.check_store_limits(&state, &key, &prepared, mode) {
            return (Err(error.into()), None);
        }
        let unchecked_problem = (!options.consistency_check)
            .then(|| state.check(&key, &prepared, mode, &options.reserved).err())
            .flatten();
        parsed.reserve_exact(prepared.len());
        let families: Vec<(Arc<str>, member::Member)> = prepared
            .into_iter()
            .map(|p| {
                parsed.push(p.family);
                (p.name, p.member)
            })
            .collect();
        let logged = self.shared.journal.is_some().then(|| families.clone());
        state.commit(key.clone(), families, mode, now, ttl);
        self.wake_expiry(&mut state);
        let outcome = if options.consistency_check {
            PushOutcome::Applied
        } else {
            match unchecked_problem {
                Some(problem) => state.mark_inconsistent(problem.to_string()),
                None => state.recheck_if_inconsistent(&options.reserved),
            }
            PushOutcome::AppliedUnchecked
        };
        let ticket = self.log(
            || Op::Push {
                key,
                mode,
                time: now,
                families: logged.unwrap_or_default(),
                ttl,
            },
            undo,
            true,
        );
        drop(state);
        free_off_the_request(parsed);
        (Ok(outcome), ticket)
    }

    /// The limits on what the whole store holds, from running counts (cost: the push's own
    /// families).
    fn check_store_limits(
        &self,
        state: &State,
        key: &GroupingKey,
        prepared: &[prepare::PreparedFamily],
        mode: PushMode,
    ) -> Result<(), LimitError> {
        let limits = &self.shared.options.limits;
        if limits.max_groups > 0
            && !state.has_group(key)
            && state.group_count() >= limits.max_groups
        {
            return Err(LimitError::Groups {
                limit: limits.max_groups,
            });
        }
        if limits.max_series > 0 {
            let pushed: usize = prepared.iter().map(|p| p.member.hashes.len()).sum();
            let names: Vec<&str> = prepared.iter().map(|p| &*p.name).collect();
            let replaced = state.series_replaced(key, &names, mode);
            let would_be = state.series_count() - replaced + pushed;
            if would_be > limits.max_series && pushed > replaced {
                return Err(LimitError::Series {
                    limit: limits.max_series,
                    would_be,
                });
            }
        }
        Ok(())
    }

    /// Removes a group (a group that does not exist is not an error), and returns once that
    /// is durable.
    pub async fn delete(&self, key: &GroupingKey) -> Result<(), PersistError> {
        let ticket = {
            let mut state = self.shared.state.write();
            let undo = self.before(&state, key);
            state.delete(key);
            state.recheck_if_inconsistent(&self.shared.options.reserved);
            self.log(|| Op::Delete { key: key.clone() }, undo, true)
        };
        durable(ticket).await
    }

    /// Removes, in one atomic and durable step, the groups `select` picks from the current
    /// keys; returns how many.
    pub async fn delete_where(
        &self,
        select: impl FnOnce(&[GroupingKey]) -> Vec<GroupingKey>,
    ) -> Result<usize, PersistError> {
        let (count, ticket) = {
            let mut state = self.shared.state.write();
            let keys = select(&state.group_keys());
            self.remove_groups(&mut state, keys)
        };
        durable(ticket).await?;
        Ok(count)
    }

    fn remove_groups(&self, state: &mut State, keys: Vec<GroupingKey>) -> (usize, Option<Ticket>) {
        if keys.is_empty() {
            return (0, None);
        }
        let undo = self.shared.journal.as_ref().map(|_| {
            Undo::Many(
                keys.iter()
                    .filter_map(|key| self.before(state, key))
                    .collect(),
            )
        });
        for key in &keys {
            state.delete(key);
        }
        state.recheck_if_inconsistent(&self.shared.options.reserved);
        let count = keys.len();
        let ticket = self.log(|| Op::DeleteMany { keys }, undo, true);
        (count, ticket)
    }

    /// Removes the groups whose TTL has run out; returns how many.
    pub async fn expire_due(&self) -> Result<usize, PersistError> {
        let now_ms = (unix_now() * 1000.0) as u64;
        let (count, ticket) = {
            let mut state = self.shared.state.write();
            let keys = state.take_expired(now_ms);
            for key in &keys {
                tracing::debug!(group = %key, "Group expired");
            }
            self.remove_groups(&mut state, keys)
        };
        durable(ticket).await?;
        self.shared
            .expired
            .fetch_add(count as u64, Ordering::Relaxed);
        Ok(count)
    }

    /// Removes groups as their TTLs run out, for ever: sleeps until the earliest deadline,
    /// and is woken early when a push sets an earlier one. Costs nothing per group while
    /// sleeping, and nothing per scrape.
    pub async fn run_expiry(self) {
        loop {
            let next = self.shared.state.read().next_deadline();
            let woken = self.shared.expiry_changed.notified();
            match next {
                None => woken.await,
                Some(deadline_ms) => {
                    let wait = (deadline_ms as f64 / 1000.0 - unix_now()).max(0.0);
                    tokio::select! {
                        _ = woken => continue,
                        _ = tokio::time::sleep(Duration::from_secs_f64(wait)) => {}
                    }
                }
            }
            if let Err(error) = self.expire_due().await {
                tracing::warn!(%error, "Could not remove expired groups; retrying in a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    fn wake_expiry(&self, state: &mut State) {
        if state.take_earliest_changed() {
            self.shared.expiry_changed.notify_one();
        }
    }

    /// Removes every group at once, and returns once that is durable.
    pub async fn wipe(&self) -> Result<(), PersistError> {
        let ticket = {
            let mut state = self.shared.state.write();
            let mut empty = State::new(self.shared.hasher);
            empty.set_default_ttl(self.shared.options.group_ttl.as_secs_f64());
            let before = std::mem::replace(&mut *state, empty);
            self.log(|| Op::Wipe, Some(Undo::Wipe(Box::new(before))), true)
        };
        durable(ticket).await
    }

    /// Writes what is queued and leaves the persistence file compact; the store keeps
    /// answering reads, but changes after this are refused. Nothing to do in memory-only mode.
    pub fn close(&self) {
        if let Some(journal) = &self.shared.journal {
            journal.close();
        }
    }

    /// The exposition of every stored family in `format`, merged with the gateway's own
    /// families `own` (sorted by name), as chunks that share the stored bytes, and the total
    /// length. Names that break the legacy rules are escaped by `escaping` (only the families
    /// and groups that have such names are rewritten). The lock is held only while the chunk
    /// list is built.
    pub fn render_chunks(
        &self,
        own: &[MetricFamily],
        format: ScrapeFormat,
        escaping: EscapingScheme,
    ) -> Result<(Vec<Bytes>, usize), Inconsistent> {
        let mut chunks = Chunks::default();
        {
            let state = self.shared.state.read();
            if let Some(problem) = state.inconsistency() {
                return Err(Inconsistent(problem.to_string()));
            }
            let reserved = &self.shared.options.reserved;
            state.render(own, reserved, format, escaping, &mut chunks);
        }
        Ok(chunks.finish())
    }

    /// Like [`Store::render_chunks`], appended to one buffer, with names as stored.
    pub fn render(
        &self,
        own: &[MetricFamily],
        format: ScrapeFormat,
        out: &mut Vec<u8>,
    ) -> Result<(), Inconsistent> {
        let (chunks, len) = self.render_chunks(own, format, EscapingScheme::AllowUtf8)?;
        out.reserve(len);
        for chunk in chunks {
            out.extend_from_slice(&chunk);
        }
        Ok(())
    }

    /// What one group holds, with its families rebuilt from the stored text or protobuf
    /// (costs a parse of the group's series: for the API and UI, not the hot paths).
    pub fn group(&self, key: &GroupingKey) -> Option<GroupSnapshot> {
        self.shared.state.read().group_snapshot(key)
    }

    /// Every group's key, times and TTL, in grouping-key order (nothing is decoded).
    pub fn group_summaries(&self) -> Vec<GroupSummary> {
        self.shared.state.read().group_summaries()
    }

    /// The keys of every group, in grouping-key order (cheap: nothing is decoded).
    pub fn group_keys(&self) -> Vec<GroupingKey> {
        self.shared.state.read().group_keys()
    }

    /// Every group, in grouping-key order.
    pub fn groups(&self) -> Vec<GroupSnapshot> {
        self.shared.state.read().all_group_snapshots()
    }

    /// Counts for the gateway's own metrics (cheap: running counts).
    pub fn stats(&self) -> StoreStats {
        let (groups, series) = {
            let state = self.shared.state.read();
            (state.group_count(), state.series_count())
        };
        StoreStats {
            groups,
            series,
            persistence: self.shared.journal.as_ref().map(Journal::health),
            expired: self.shared.expired.load(Ordering::Relaxed),
        }
    }

    /// Why the store cannot take changes right now, if it cannot: persisting is failing, or
    /// unchecked pushes left it inconsistent.
    pub fn unready_reason(&self) -> Option<String> {
        if let Some(failing) = self
            .shared
            .journal
            .as_ref()
            .and_then(|journal| journal.health().failing)
        {
            return Some(format!("persistence is failing: {failing}"));
        }
        self.inconsistency()
            .map(|problem| format!("the stored metrics are inconsistent: {problem}"))
    }

    /// Whether unchecked pushes have left the store inconsistent, and why.
    pub fn inconsistency(&self) -> Option<String> {
        self.shared.state.read().inconsistency().map(str::to_string)
    }

    /// The name rules pushes are held to.
    pub fn name_rules(&self) -> NameRules {
        self.shared.options.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::model::Label;
    use crate::exposition::text_parse::parse_text;

    fn store(check: bool) -> Store {
        Store::new(StoreOptions {
            consistency_check: check,
            reserved: vec![ReservedFamily {
                name: "own_gauge",
                kind: MetricKind::Gauge,
                help: "Own.",
            }],
            names: NameRules::Legacy,
            limits: Limits::default(),
            group_ttl: Duration::ZERO,
        })
    }

    fn key(pairs: &[(&str, &str)]) -> GroupingKey {
        GroupingKey::new(pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect())
    }

    fn push(
        store: &Store,
        k: &GroupingKey,
        body: &str,
        mode: PushMode,
    ) -> Result<PushOutcome, ValidationError> {
        block(store.push(k.clone(), parse_text(body.as_bytes()).unwrap(), mode)).map_err(|error| {
            match error {
                PushError::Rejected(error) => error,
                PushError::NotDurable(error) => panic!("memory-only store: {error}"),
                PushError::OverLimit(error) => panic!("no limits set: {error}"),
            }
        })
    }

    fn block<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn text(store: &Store) -> String {
        let mut out = Vec::new();
        store.render(&[], ScrapeFormat::Text, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn type_clash_with_other_groups_and_own_metrics() {
        let s = store(true);
        let a = key(&[("job", "a")]);
        let b = key(&[("job", "b")]);
        push(&s, &a, "# TYPE m counter\nm 1\n", PushMode::Replace).unwrap();
        let before = text(&s);
        assert!(matches!(
            push(&s, &b, "# TYPE m gauge\nm 1\n", PushMode::Replace),
            Err(ValidationError::TypeClash { .. })
        ));
        assert!(matches!(
            push(
                &s,
                &b,
                "# TYPE own_gauge counter\nown_gauge 1\n",
                PushMode::Replace
            ),
            Err(ValidationError::TypeClash { .. })
        ));
        // Only b's failure time (and its creation) changed.
        let after = text(&s);
        assert!(after.contains("push_failure_time_seconds{instance=\"\",job=\"b\"}"));
        assert!(after.contains("push_time_seconds{instance=\"\",job=\"b\"} 0\n"));
        assert_eq!(
            before
                .lines()
                .filter(|l| l.starts_with("m{"))
                .collect::<Vec<_>>(),
            after
                .lines()
                .filter(|l| l.starts_with("m{"))
                .collect::<Vec<_>>()
        );
        // The only holder may change the type with PUT.
        push(&s, &a, "# TYPE m gauge\nm 1\n", PushMode::Replace).unwrap();
    }

    #[test]
    fn duplicates_across_groups_of_different_shapes() {
        let s = store(true);
        push(
            &s,
            &key(&[("job", "a")]),
            "x{foo=\"bar\"} 1\n",
            PushMode::Replace,
        )
        .unwrap();
        assert!(matches!(
            push(
                &s,
                &key(&[("job", "a"), ("foo", "bar")]),
                "x 1\n",
                PushMode::Replace
            ),
            Err(ValidationError::DuplicateAcrossGroups { .. })
        ));
        // Another value is a different series.
        push(
            &s,
            &key(&[("job", "a"), ("foo", "baz")]),
            "x 1\n",
            PushMode::Replace,
        )
        .unwrap();
    }

    #[test]
    fn delete_and_wipe_clean_the_index() {
        let s = store(true);
        let a = key(&[("job", "a")]);
        push(&s, &a, "# TYPE m counter\nm 1\n", PushMode::Replace).unwrap();
        block(s.delete(&a)).unwrap();
        assert_eq!(text(&s), "");
        // With the old holder gone, another type is fine.
        push(&s, &a, "# TYPE m gauge\nm 1\n", PushMode::Replace).unwrap();
        block(s.wipe()).unwrap();
        assert_eq!(text(&s), "");
        assert!(s.groups().is_empty());
    }

    #[test]
    fn post_merges_and_put_replaces() {
        let s = store(true);
        let a = key(&[("job", "a")]);
        push(&s, &a, "m 1\nn 2\n", PushMode::Replace).unwrap();
        push(&s, &a, "m 3\n", PushMode::Merge).unwrap();
        let names: Vec<String> = s
            .group(&a)
            .unwrap()
            .families
            .iter()
            .map(|f| f.family.name.clone())
            .collect();
        assert_eq!(names, vec!["m", "n"]);
        push(&s, &a, "o 1\n", PushMode::Replace).unwrap();
        let names: Vec<String> = s
            .group(&a)
            .unwrap()
            .families
            .iter()
            .map(|f| f.family.name.clone())
            .collect();
        assert_eq!(names, vec!["o"]);
    }

    #[test]
    fn limits_refuse_without_changing_anything_and_series_are_counted() {
        let s = Store::new(StoreOptions {
            consistency_check: true,
            reserved: Vec::new(),
            names: NameRules::Legacy,
            limits: Limits {
                max_groups: 2,
                max_series: 5,
                max_series_per_push: 4,
                max_label_length: 8,
            },
            group_ttl: Duration::ZERO,
        });
        let try_push = |job: &str, body: &str, mode| {
            block(s.push(
                key(&[("job", job)]),
                parse_text(body.as_bytes()).unwrap(),
                mode,
            ))
        };
        try_push("a", "m{x=\"1\"} 1\nm{x=\"2\"} 1\nn 1\n", PushMode::Replace).unwrap();
        assert_eq!((s.stats().groups, s.stats().series), (1, 3));
        // A refusal must leave the store exactly as it was, failure times included.
        let refused = |result: Result<PushOutcome, PushError>, before: &str, reason: &str| {
            match result {
                Err(PushError::OverLimit(error)) => assert_eq!(error.reason(), reason),
                other => panic!("expected {reason}, got {other:?}"),
            }
            assert_eq!(text(&s), before, "{reason} changed the store");
        };
        let before = text(&s);
        refused(
            try_push("b", "o 1\no{y=\"a\"} 1\no{y=\"b\"} 1\n", PushMode::Replace),
            &before,
            "max_series",
        );
        refused(
            try_push(
                "b",
                "p 1\np{y=\"a\"} 1\np{y=\"b\"} 1\np{y=\"c\"} 1\np{y=\"d\"} 1\n",
                PushMode::Replace,
            ),
            &before,
            "max_series_per_push",
        );
        refused(
            try_push("b", "q{y=\"123456789\"} 1\n", PushMode::Replace),
            &before,
            "max_label_length",
        );
        refused(
            try_push("toolongjobname", "q 1\n", PushMode::Replace),
            &before,
            "max_label_length",
        );
        // Replacing a's 3 series by 4 is within the limit of 5 stored.
        try_push(
            "a",
            "m{x=\"1\"} 1\nm{x=\"2\"} 1\nm{x=\"3\"} 1\nm{x=\"4\"} 1\n",
            PushMode::Replace,
        )
        .unwrap();
        assert_eq!(s.stats().series, 4);
        try_push("b", "o 1\n", PushMode::Replace).unwrap();
        let before = text(&s);
        refused(
            try_push("c", "o 1\n", PushMode::Replace),
            &before,
            "max_groups",
        );
        // POST replaces only the named family: 4 of m replaced by 1 leaves 2 series in all.
        try_push("a", "m 2\n", PushMode::Merge).unwrap();
        assert_eq!(s.stats().series, 2);
        assert!(
            !text(&s).contains("job=\"c\""),
            "a refused push created a group"
        );
        block(s.delete(&key(&[("job", "a")]))).unwrap();
        assert_eq!((s.stats().groups, s.stats().series), (1, 1));
        block(s.wipe()).unwrap();
        assert_eq!((s.stats().groups, s.stats().series), (0, 0));
    }

    #[test]
    fn unchecked_mode_marks_and_clears_inconsistency() {
        let s = store(false);
        let a = key(&[("job", "a")]);
        let b = key(&[("job", "b")]);
        assert_eq!(
            push(&s, &a, "# TYPE m counter\nm 1\n", PushMode::Replace),
            Ok(PushOutcome::AppliedUnchecked)
        );
        push(&s, &b, "# TYPE m gauge\nm 1\n", PushMode::Replace).unwrap();
        assert!(s.inconsistency().is_some());
        assert!(s.render(&[], ScrapeFormat::Text, &mut Vec::new()).is_err());
        block(s.delete(&b)).unwrap();
        assert_eq!(s.inconsistency(), None);
    }
}
