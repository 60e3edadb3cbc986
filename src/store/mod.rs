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

pub mod prepare;
mod state;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;

use crate::exposition::model::{MetricFamily, MetricKind};
use crate::exposition::negotiate::ScrapeFormat;
use crate::grouping::GroupingKey;
use state::State;

pub use state::{GroupSnapshot, StoredFamily};

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
    state: RwLock<State>,
    options: StoreOptions,
}

/// Seconds since the Unix epoch, with sub-second precision.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Store {
    pub fn new(options: StoreOptions) -> Store {
        let mut options = options;
        options.reserved.sort_by_key(|r| r.name);
        Store {
            shared: Arc::new(Shared {
                state: RwLock::new(State::default()),
                options,
            }),
        }
    }

    /// Applies a push of parsed families to group `key`.
    ///
    /// On a validation error nothing stored changes except the group's failure time (and the
    /// group is created, holding only its two time gauges, if it did not exist).
    pub fn push(
        &self,
        key: GroupingKey,
        families: Vec<MetricFamily>,
        mode: PushMode,
    ) -> Result<PushOutcome, ValidationError> {
        let options = &self.shared.options;
        let prepared = prepare::prepare_push(&key, families);
        let now = unix_now();
        let mut state = self.shared.state.write();
        // Problems inside the push itself (timestamps, duplicates, bad names) are refused even
        // with the consistency check off: such a push could never be scraped.
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                state.record_failure(&key, now);
                return Err(error);
            }
        };
        if options.consistency_check {
            if let Some(problem) = state.inconsistency().map(str::to_string) {
                state.record_failure(&key, now);
                return Err(ValidationError::StoreInconsistent(problem));
            }
            if let Err(error) = state.check(&key, &prepared, mode, &options.reserved) {
                state.record_failure(&key, now);
                return Err(error);
            }
            state.commit(key, prepared, mode, now);
            Ok(PushOutcome::Applied)
        } else {
            let problem = state.check(&key, &prepared, mode, &options.reserved).err();
            state.commit(key, prepared, mode, now);
            if let Some(problem) = problem {
                state.mark_inconsistent(problem.to_string());
            } else {
                state.recheck_if_inconsistent(&options.reserved);
            }
            Ok(PushOutcome::AppliedUnchecked)
        }
    }

    /// Removes a group; a group that does not exist is not an error.
    pub fn delete(&self, key: &GroupingKey) {
        let mut state = self.shared.state.write();
        state.delete(key);
        state.recheck_if_inconsistent(&self.shared.options.reserved);
    }

    /// Removes every group at once.
    pub fn wipe(&self) {
        *self.shared.state.write() = State::default();
    }

    /// Appends the exposition of every stored family in `format`, merged with the gateway's
    /// own families `own` (sorted by name), to `out`.
    pub fn render(
        &self,
        own: &[MetricFamily],
        format: ScrapeFormat,
        out: &mut Vec<u8>,
    ) -> Result<(), Inconsistent> {
        let state = self.shared.state.read();
        if let Some(problem) = state.inconsistency() {
            return Err(Inconsistent(problem.to_string()));
        }
        state.render(own, &self.shared.options.reserved, format, out);
        Ok(())
    }

    /// A copy of what one group holds (cheap: the families are shared, not cloned).
    pub fn group(&self, key: &GroupingKey) -> Option<GroupSnapshot> {
        self.shared.state.read().group_snapshot(key)
    }

    /// Every group, in grouping-key order.
    pub fn groups(&self) -> Vec<GroupSnapshot> {
        self.shared.state.read().all_group_snapshots()
    }

    /// Whether unchecked pushes have left the store inconsistent, and why.
    pub fn inconsistency(&self) -> Option<String> {
        self.shared.state.read().inconsistency().map(str::to_string)
    }
}
