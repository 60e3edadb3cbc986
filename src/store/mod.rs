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

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;

use crate::exposition::model::{MetricFamily, MetricKind};
use crate::exposition::names::{EscapingScheme, NameRules};
use crate::exposition::negotiate::ScrapeFormat;
use crate::grouping::GroupingKey;
use bytes::Bytes;
use member::LabelHasher;
use persist::{Journal, Op, OpenError, PersistOptions, Ticket, Undo};
use state::{Chunks, State};

pub use persist::PersistError;

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
    /// Which metric and label names a push may use (`--push.enable-utf8-names`).
    pub names: NameRules,
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

/// Why a push failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PushError {
    /// Refused; only the group's failure time changed.
    #[error(transparent)]
    Rejected(#[from] ValidationError),
    /// Valid, but could not be made durable, so it was not applied.
    #[error(transparent)]
    NotDurable(#[from] PersistError),
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
        Store::build(options, State::new(LabelHasher::random()), None)
    }

    /// A store that persists every change to `persistence.path` before acknowledging it,
    /// starting from what the file holds.
    pub fn open(options: StoreOptions, persistence: &PersistOptions) -> Result<Store, OpenError> {
        let state = Arc::new(RwLock::new(State::new(LabelHasher::random())));
        let journal = persist::open(persistence, state.clone(), &options)?;
        {
            let mut state = state.write();
            if !options.consistency_check {
                state.recheck_all(&options.reserved);
            }
        }
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
        let (result, ticket) = self.apply_push(key, families, mode);
        durable(ticket).await?;
        Ok(result?)
    }

    fn apply_push(
        &self,
        key: GroupingKey,
        families: Vec<MetricFamily>,
        mode: PushMode,
    ) -> (Result<PushOutcome, ValidationError>, Option<Ticket>) {
        let options = &self.shared.options;
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
            // A failure time is not worth waiting for: the answer is the refusal anyway.
            self.log(|| Op::Failure { key, time: now }, undo, false);
            return (Err(error), None);
        }
        let Ok(prepared) = prepared else {
            unreachable!("refused above")
        };
        let unchecked_problem = (!options.consistency_check)
            .then(|| state.check(&key, &prepared, mode, &options.reserved).err())
            .flatten();
        let families: Vec<(Arc<str>, member::Member)> = prepared
            .into_iter()
            .map(|p| {
                parsed.push(p.family);
                (p.name, p.member)
            })
            .collect();
        let logged = self.shared.journal.is_some().then(|| families.clone());
        state.commit(key.clone(), families, mode, now);
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
            },
            undo,
            true,
        );
        drop(state);
        free_off_the_request(parsed);
        (Ok(outcome), ticket)
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

    /// Removes every group at once, and returns once that is durable.
    pub async fn wipe(&self) -> Result<(), PersistError> {
        let ticket = {
            let mut state = self.shared.state.write();
            let before = std::mem::replace(&mut *state, State::new(self.shared.hasher));
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

    /// The keys of every group, in grouping-key order (cheap: nothing is decoded).
    pub fn group_keys(&self) -> Vec<GroupingKey> {
        self.shared.state.read().group_keys()
    }

    /// Every group, in grouping-key order.
    pub fn groups(&self) -> Vec<GroupSnapshot> {
        self.shared.state.read().all_group_snapshots()
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
