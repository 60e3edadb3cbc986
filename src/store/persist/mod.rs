//! Durable state: every accepted change is on disk (fsync) before its request is answered.
//!
//! ## The design, and why
//! The gateway's state is small next to the traffic that changes it, every change is a
//! whole-group or whole-family replacement, and scrapes read everything. So the file is one
//! append-only log that starts with a snapshot ([`format`] describes the bytes): a restart
//! replays it in order, and *compaction* writes the current state as a fresh snapshot to a
//! temporary file, fsyncs it and renames it over the old one, which drops the log. An
//! embedded database (redb, fjall) would add its own write path, page cache and fsync per
//! transaction for data we already hold in memory in the form scrapes need; what we need
//! from disk is only "replay this after a crash", which a checksummed log does with one
//! sequential write per commit.
//!
//! ## How a change becomes durable
//! A change is checked and applied in memory under the store's write lock, and in the same
//! critical section it is queued here with an *undo* (the group's previous contents), so the
//! queue's order is the order of application. One writer thread takes everything queued,
//! writes it as one frame and fsyncs once (group commit: concurrent pushes share the fsync),
//! then answers every waiting request. If the write or fsync fails, the writer undoes, newest
//! first, everything applied but not yet durable, and those requests get an error: nothing a
//! client was told failed stays in memory. After a failure the next commit first writes a
//! whole fresh snapshot (the log's tail after a failed fsync cannot be trusted), so the
//! gateway recovers by itself once the disk has room again.
//!
//! Compaction runs when `--persistence.interval` has passed since the last one and something
//! changed, when the log has grown past twice the snapshot (and at least 64 MiB), after an
//! I/O error, and at shutdown. Its snapshot includes the changes queued at that moment, so it
//! also serves as their commit.
//!
//! ## Reading a file at start-up
//! Our own file is replayed. A damaged *last* frame is what a crash during its write leaves:
//! it was never acknowledged, so it is dropped (and logged) and the file is truncated there.
//! Damage with intact data after it is not something a crash does: start-up stops with the
//! file and byte offset, unless `--persistence.start-from-readable` is given, in which case
//! the readable part is used and the original file is first copied aside. A file written by
//! the Go Pushgateway is recognised and imported (the original is copied aside too). Anything
//! else stops start-up: a file we cannot read is never overwritten.

pub mod format;
pub mod upstream_file;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::oneshot;

use super::member::{LabelHasher, Member};
use super::prepare::{prepare_push, PUSH_FAILURE_TIME, PUSH_TIME};
use super::state::{GroupContents, State};
use super::{unix_now, PushMode, StoreOptions};
use crate::exposition::model::Label;
use crate::grouping::GroupingKey;
use format::{FrameRead, Record};
use upstream_file::UpstreamGroup;

/// Where and how to persist; built from the command line by the caller.
#[derive(Debug, Clone)]
pub struct PersistOptions {
    pub path: PathBuf,
    /// The longest time between compactions.
    pub interval: Duration,
    /// Start from the readable part of a corrupt file instead of refusing to start.
    pub start_from_readable: bool,
}

/// A change could not be made durable; it was not applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PersistError {
    #[error("could not write the persistence file {path}: {message}; the change was not applied")]
    Io { path: String, message: String },
    #[error("the gateway is shutting down; the change was not persisted")]
    Stopped,
}

/// The persistence file could not be read (or first written) at start-up.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot read the persistence file {path}: {message}")]
    Unreadable { path: String, message: String },
    #[error("the persistence file {path} is corrupt at byte offset {offset}: {reason}; nothing was changed. Restore it from a backup, or pass --persistence.start-from-readable to start from the {offset} readable bytes before the damage (the file is copied aside first)")]
    Corrupt {
        path: String,
        offset: usize,
        reason: String,
    },
    #[error("the persistence file {path} was written neither by this gateway nor by the Go Pushgateway ({reason}); it was left untouched")]
    Unrecognised { path: String, reason: String },
    #[error("cannot write the persistence file {path}: {message}")]
    Write { path: String, message: String },
}

/// A change as the log records it.
pub(super) enum Op {
    Push {
        key: GroupingKey,
        mode: PushMode,
        time: f64,
        families: Vec<(Arc<str>, Member)>,
        ttl: Option<f64>,
    },
    Failure {
        key: GroupingKey,
        time: f64,
    },
    Delete {
        key: GroupingKey,
    },
    DeleteMany {
        keys: Vec<GroupingKey>,
    },
    Wipe,
}

/// How to take a change back if it cannot be made durable.
pub(super) enum Undo {
    Group {
        key: GroupingKey,
        before: Option<GroupContents>,
        inconsistent: Option<String>,
    },
    Wipe(Box<State>),
    /// Several undos, applied newest first.
    Many(Vec<Undo>),
}

impl Undo {
    fn apply(self, state: &mut State) {
        match self {
            Undo::Group {
                key,
                before,
                inconsistent,
            } => {
                state.set_group(&key, before);
                state.set_inconsistency(inconsistent);
            }
            Undo::Wipe(before) => *state = *before,
            Undo::Many(undos) => {
                for undo in undos.into_iter().rev() {
                    undo.apply(state);
                }
            }
        }
    }
}

/// What a request waits on until its change is durable.
pub(super) type Ticket = oneshot::Receiver<Result<(), PersistError>>;

struct Entry {
    op: Op,
    /// Taken when the change is undone.
    undo: Option<Undo>,
    reply: Option<oneshot::Sender<Result<(), PersistError>>>,
}

#[derive(Default)]
struct Queue {
    entries: Vec<Entry>,
    closing: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    health: Mutex<PersistHealth>,
}

/// How persisting is going, for readiness and the gateway's own metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersistHealth {
    /// Unix seconds of the last successful write (commit or compaction).
    pub last_success: f64,
    /// Failed writes since start.
    pub failures: u64,
    /// The last write failed, and why; cleared by the next success.
    pub failing: Option<String>,
}

/// The store's side of persistence: queue changes, close at shutdown.
pub(super) struct Journal {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Journal {
    /// Queues an applied change. Call with the store's write lock held, so the queue's order
    /// is the order of application.
    pub(super) fn enqueue(&self, op: Op, undo: Undo, wait: bool) -> Option<Ticket> {
        let (reply, ticket) = if wait {
            let (sender, receiver) = oneshot::channel();
            (Some(sender), Some(receiver))
        } else {
            (None, None)
        };
        let mut queue = self.shared.queue.lock();
        if queue.closing {
            // The writer is gone: the dropped sender tells the waiter.
            return ticket;
        }
        queue.entries.push(Entry {
            op,
            undo: Some(undo),
            reply,
        });
        drop(queue);
        self.shared.wake.notify_one();
        ticket
    }

    pub(super) fn health(&self) -> PersistHealth {
        self.shared.health.lock().clone()
    }

    /// Writes what is queued, compacts, and stops the writer.
    pub(super) fn close(&self) {
        self.shared.queue.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
    }
}

/// Reads the file at `options.path` into a state (or starts an empty one), makes sure the
/// file is ready for appending, and starts the writer.
pub(super) fn open(
    options: &PersistOptions,
    state: Arc<RwLock<State>>,
    store_options: &StoreOptions,
) -> Result<Journal, OpenError> {
    let path = &options.path;
    let shown = path.display().to_string();
    let loaded = match fs::read(path) {
        Ok(data) if data.is_empty() => Loaded::fresh(),
        Ok(data) if data.starts_with(format::MAGIC) => replay(&data, options)?,
        Ok(data) if upstream_file::looks_like_upstream_file(&data) => {
            let groups = upstream_file::read_upstream_file(&data).map_err(|error| {
                OpenError::Unrecognised {
                    path: shown.clone(),
                    reason: format!("it starts like a Go Pushgateway file, but {error}"),
                }
            })?;
            let aside = copy_aside(path, "go-pushgateway")?;
            let count = groups.len();
            let imported = import_upstream(groups, store_options);
            tracing::info!(
                file = %shown,
                groups = count,
                original = %aside.display(),
                "Imported the Go Pushgateway's persistence file (the original is kept)"
            );
            Loaded {
                state: Some(imported),
                append_at: None,
                unchecked: false,
            }
        }
        Ok(_) => {
            return Err(OpenError::Unrecognised {
                path: shown,
                reason: "its first bytes are neither ours nor a Go gob stream".into(),
            })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Loaded::fresh(),
        Err(error) => {
            return Err(OpenError::Unreadable {
                path: shown,
                message: error.to_string(),
            })
        }
    };
    let unchecked_mode = !store_options.consistency_check;
    let groups;
    {
        let mut current = state.write();
        if let Some(loaded_state) = loaded.state {
            *current = loaded_state;
        }
        if unchecked_mode || loaded.unchecked {
            current.recheck_all(&store_options.reserved);
        }
        groups = current.group_count();
    }
    // A file about to receive unchecked pushes must say so in its header: rewrite it first.
    let append_at = loaded
        .append_at
        .filter(|_| loaded.unchecked || !unchecked_mode);
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue::default()),
        wake: Condvar::new(),
        health: Mutex::new(PersistHealth {
            last_success: unix_now(),
            ..PersistHealth::default()
        }),
    });
    let mut writer = Writer {
        path: path.clone(),
        file: None,
        len: 0,
        allocated: 0,
        state,
        shared: shared.clone(),
        interval: options.interval,
        unchecked_mode,
        last_compaction: Instant::now(),
        changed_since_compaction: false,
        log_bytes: 0,
        snapshot_bytes: 0,
        needs_compaction: true,
        retry_at: Instant::now(),
        retry_delay: FIRST_RETRY_DELAY,
    };
    match append_at {
        Some(len) => writer.reopen(len).map_err(|error| OpenError::Write {
            path: shown.clone(),
            message: error.to_string(),
        })?,
        None => writer.compact_now().map_err(|error| OpenError::Write {
            path: shown.clone(),
            message: error.to_string(),
        })?,
    }
    tracing::info!(file = %shown, groups, "Persistence ready");
    let handle = std::thread::Builder::new()
        .name("persistence".into())
        .spawn(move || writer.run())
        .map_err(|error| OpenError::Write {
            path: shown,
            message: format!("cannot start the writer thread: {error}"),
        })?;
    Ok(Journal {
        shared,
        writer: Mutex::new(Some(handle)),
    })
}

/// Builds a state from the Go Pushgateway's groups. Each family goes through the same
/// preparation as a push (with the time it was pushed); one we would refuse is skipped with
/// a warning rather than failing the import. The whole result is then checked once, since
/// upstream may have stored what its own checks would refuse now.
fn import_upstream(groups: Vec<UpstreamGroup>, options: &StoreOptions) -> State {
    let hasher = LabelHasher::random();
    let mut state = State::new(hasher);
    for group in groups {
        let key = GroupingKey::new(
            group
                .labels
                .into_iter()
                .map(|(name, value)| Label::new(name, value))
                .collect(),
        );
        let mut contents = GroupContents::default();
        for upstream in group.families {
            let family = upstream.family;
            let first_value = || family.metrics.first().and_then(|m| m.value.simple_value());
            if family.name == PUSH_TIME {
                contents.push_time = first_value().unwrap_or(0.0);
                continue;
            }
            if family.name == PUSH_FAILURE_TIME {
                contents.failure_time = first_value().unwrap_or(0.0);
                continue;
            }
            let name = family.name.clone();
            match prepare_push(
                &key,
                vec![family],
                &hasher,
                upstream.pushed_at,
                options.names,
            ) {
                Ok(prepared) => contents
                    .families
                    .extend(prepared.into_iter().map(|p| (p.name, p.member))),
                Err(error) => tracing::warn!(
                    group = %key,
                    family = name,
                    %error,
                    "Skipped a family of the Go Pushgateway's file that this gateway refuses"
                ),
            }
        }
        state.set_group(&key, Some(contents));
    }
    state.recheck_all(&options.reserved);
    if let Some(problem) = state.inconsistency() {
        tracing::warn!(problem, "The imported metrics are inconsistent; pushes are refused until the offending group is deleted");
    }
    state
}

/// What start-up read: a state (`None`: start empty) and, for our own intact file, the
/// length to keep appending at (`None`: write a fresh snapshot first).
struct Loaded {
    state: Option<State>,
    append_at: Option<u64>,
    /// The file may hold pushes applied without the consistency check.
    unchecked: bool,
}

impl Loaded {
    fn fresh() -> Loaded {
        Loaded {
            state: None,
            append_at: None,
            unchecked: false,
        }
    }
}

/// Copies the file aside as `<path>.<suffix>-<unix seconds>` before it is rewritten.
fn copy_aside(path: &Path, suffix: &str) -> Result<PathBuf, OpenError> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".{suffix}-{}", unix_now() as u64));
    let aside = PathBuf::from(aside);
    fs::copy(path, &aside).map_err(|error| OpenError::Write {
        path: aside.display().to_string(),
        message: format!("cannot keep a copy of the original file: {error}"),
    })?;
    Ok(aside)
}

/// Replays our own file.
fn replay(data: &[u8], options: &PersistOptions) -> Result<Loaded, OpenError> {
    let shown = options.path.display().to_string();
    let corrupt = |offset: usize, reason: String| OpenError::Corrupt {
        path: shown.clone(),
        offset,
        reason,
    };
    let mut state: Option<State> = None;
    let mut snapshot_complete = false;
    let mut unchecked = false;
    let mut offset = format::MAGIC.len();
    let mut damage: Option<(usize, String)> = None;
    loop {
        match format::read_frame(data, offset) {
            FrameRead::End => break,
            FrameRead::Frame { payload, next } => {
                let applied = format::decode_payload(payload)
                    .map_err(|error| error.to_string())
                    .and_then(|records| {
                        for record in records {
                            if let Record::Header {
                                unchecked: true, ..
                            } = record
                            {
                                unchecked = true;
                            }
                            apply_record(&mut state, &mut snapshot_complete, record)?;
                        }
                        Ok(())
                    });
                if let Err(reason) = applied {
                    damage = Some((offset, reason));
                    break;
                }
                offset = next;
            }
            FrameRead::Torn(reason) if snapshot_complete => {
                tracing::warn!(
                    file = %shown,
                    offset,
                    dropped_bytes = data.len() - offset,
                    reason,
                    "Dropped an incomplete last record (a crash during its write; it was never acknowledged)"
                );
                return Ok(Loaded {
                    state,
                    append_at: Some(offset as u64),
                    unchecked,
                });
            }
            FrameRead::Torn(reason) | FrameRead::Corrupt(reason) => {
                damage = Some((offset, reason));
                break;
            }
        }
    }
    if damage.is_none() && !snapshot_complete {
        damage = Some((offset, "the file ends inside its snapshot".into()));
    }
    match damage {
        None => Ok(Loaded {
            state,
            append_at: Some(offset as u64),
            unchecked,
        }),
        Some((offset, reason)) if options.start_from_readable => {
            let aside = copy_aside(&options.path, "corrupt")?;
            tracing::warn!(
                file = %shown,
                offset,
                reason,
                original = %aside.display(),
                "Starting from the readable part of a corrupt persistence file"
            );
            Ok(Loaded {
                state,
                append_at: None,
                unchecked,
            })
        }
        Some((offset, reason)) => Err(corrupt(offset, reason)),
    }
}

fn apply_record(
    state: &mut Option<State>,
    snapshot_complete: &mut bool,
    record: Record<'_>,
) -> Result<(), String> {
    let Some(current) = state.as_mut() else {
        return match record {
            Record::Header { hash_keys, .. } => {
                *state = Some(State::new(LabelHasher { keys: hash_keys }));
                Ok(())
            }
            _ => Err("the file does not start with a header record".into()),
        };
    };
    match record {
        Record::Header { .. } => return Err("a second header record".into()),
        Record::Group(group) => {
            let contents = format::contents_from_record(&group).map_err(|e| e.to_string())?;
            current.set_group(&format::key_from_record(&group.key), Some(contents));
        }
        Record::SnapshotEnd { groups } => {
            if groups != current.group_count() as u64 {
                return Err(format!(
                    "the snapshot says {groups} groups but holds {}",
                    current.group_count()
                ));
            }
            *snapshot_complete = true;
        }
        Record::Push {
            key,
            replace,
            time,
            families,
            ttl,
        } => {
            let families = families
                .iter()
                .map(format::family_from_record)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            current.commit(
                format::key_from_record(&key),
                families,
                format::mode_from_replace(replace),
                time,
                ttl,
            );
        }
        Record::Failure { key, time } => {
            current.record_failure(&format::key_from_record(&key), time);
        }
        Record::Delete { key } => current.delete(&format::key_from_record(&key)),
        Record::DeleteMany { keys } => {
            for key in &keys {
                current.delete(&format::key_from_record(key));
            }
        }
        Record::Wipe => *current = State::new(current.hasher()),
    }
    Ok(())
}

/// Compact when the log has grown past this many bytes and twice the snapshot.
const MIN_LOG_BYTES_FOR_COMPACTION: u64 = 64 << 20;
/// After a failed write the writer retries (with a whole snapshot) after this long, doubling
/// up to [`LAST_RETRY_DELAY`] while the failures go on.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);
const LAST_RETRY_DELAY: Duration = Duration::from_secs(30);
/// Log space is allocated ahead in zero-filled chunks of this size. Writing into blocks that
/// already belong to the file lets `fdatasync` skip the file-system journal (no size or
/// extent change): about ten times faster per commit than appending on ext4. Commits wait
/// while a chunk is written and synced, so chunks are kept small: with 16 MiB chunks the
/// p99 of small pushes with persistence on was about 40 ms, with 2 MiB about 15 ms
/// (BENCHMARKS.md, workload 7).
const PREALLOCATE_BYTES: u64 = 2 << 20;
/// Groups go into snapshot frames of about this size.
const SNAPSHOT_FRAME_BYTES: usize = 1 << 20;

/// The one thread that writes the file.
struct Writer {
    path: PathBuf,
    /// Open for appending at `len`; `None` until the first snapshot is written.
    file: Option<File>,
    /// Bytes of the file known to be good: the log continues here.
    len: u64,
    /// The file's size: zeros from `len` up to here are space allocated ahead.
    allocated: u64,
    state: Arc<RwLock<State>>,
    shared: Arc<Shared>,
    interval: Duration,
    /// Pushes are applied without the consistency check (`--push.disable-consistency-check`).
    unchecked_mode: bool,
    last_compaction: Instant,
    changed_since_compaction: bool,
    log_bytes: u64,
    snapshot_bytes: u64,
    /// Set after an I/O error: the next commit writes a whole snapshot.
    needs_compaction: bool,
    /// While failing: when to try again, and how long the wait after the next failure is.
    retry_at: Instant,
    retry_delay: Duration,
}

impl Writer {
    fn io_error(&self, error: std::io::Error) -> PersistError {
        PersistError::Io {
            path: self.path.display().to_string(),
            message: error.to_string(),
        }
    }

    /// Opens our intact file for appending at `len` (dropping a torn tail beyond it).
    fn reopen(&mut self, len: u64) -> std::io::Result<()> {
        let file = OpenOptions::new().write(true).open(&self.path)?;
        let on_disk = file.metadata()?.len();
        if on_disk != len {
            file.set_len(len)?;
            file.sync_all()?;
        }
        self.file = Some(file);
        self.len = len;
        self.allocated = len;
        self.snapshot_bytes = len;
        self.log_bytes = 0;
        self.needs_compaction = false;
        Ok(())
    }

    /// When the writer must act without new changes: a retry after a failure, a compaction
    /// that is due by time or by log size. `None`: only new changes wake it.
    fn next_deadline(&self) -> Option<Instant> {
        if self.needs_compaction {
            return Some(self.retry_at);
        }
        if self.log_bytes > MIN_LOG_BYTES_FOR_COMPACTION.max(2 * self.snapshot_bytes) {
            return Some(Instant::now());
        }
        self.changed_since_compaction
            .then(|| self.last_compaction + self.interval)
    }

    fn run(mut self) {
        loop {
            let closing = {
                let mut queue = self.shared.queue.lock();
                loop {
                    if !queue.entries.is_empty() || queue.closing {
                        break;
                    }
                    match self.next_deadline() {
                        Some(deadline) if Instant::now() >= deadline => break,
                        Some(deadline) => {
                            self.shared.wake.wait_until(&mut queue, deadline);
                        }
                        None => self.shared.wake.wait(&mut queue),
                    }
                }
                queue.closing
            };
            if closing {
                self.close();
                return;
            }
            let due = self.next_deadline().is_some_and(|d| Instant::now() >= d);
            if due {
                // A compaction, or the retry after a failure (a whole fresh snapshot).
                self.compact();
                continue;
            }
            let entries = std::mem::take(&mut self.shared.queue.lock().entries);
            if entries.is_empty() {
                continue;
            }
            if self.needs_compaction {
                // Failing, and the next retry is not due yet: refuse at once rather than
                // attempting a whole snapshot for every change.
                let message = self
                    .shared
                    .health
                    .lock()
                    .failing
                    .clone()
                    .unwrap_or_default();
                let error = PersistError::Io {
                    path: self.path.display().to_string(),
                    message: format!("still failing, retrying shortly ({message})"),
                };
                self.undo_and_answer(entries, error);
            } else {
                self.append(entries);
            }
        }
    }

    /// At shutdown: leaves the file as one snapshot (the queue is closed, so nothing can
    /// arrive after what `compact` takes).
    fn close(&mut self) {
        let queued = !self.shared.queue.lock().entries.is_empty();
        if self.log_bytes == 0 && !self.needs_compaction && !queued {
            return;
        }
        self.compact();
        if self.needs_compaction {
            tracing::error!(file = %self.path.display(), "Could not write the final snapshot; the file keeps every acknowledged change");
        } else {
            tracing::info!(file = %self.path.display(), bytes = self.len, "Persistence file compacted at shutdown");
        }
    }

    /// Writes queued changes as one frame and fsyncs.
    fn append(&mut self, entries: Vec<Entry>) {
        let mut frame = Vec::new();
        {
            let records: Vec<Record<'_>> = entries.iter().map(|e| op_record(&e.op)).collect();
            format::encode_frame(&records, &mut frame);
        }
        self.allocate_ahead(frame.len() as u64);
        let result = match self.file.as_ref() {
            Some(file) => file
                .write_all_at(&frame, self.len)
                .and_then(|()| file.sync_data()),
            None => Err(std::io::Error::other("the file is not open")),
        };
        match result {
            Ok(()) => {
                self.len += frame.len() as u64;
                self.log_bytes += frame.len() as u64;
                self.changed_since_compaction = true;
                self.succeeded();
                answer(entries, Ok(()));
            }
            Err(error) => {
                let error = self.io_error(error);
                if let Some(file) = self.file.as_ref() {
                    // Best effort; the next commit rewrites the whole file anyway.
                    let _ = file.set_len(self.len);
                }
                self.allocated = self.len;
                self.fail(entries, error);
            }
        }
    }

    /// Makes sure `needed` bytes after the log's end are allocated, zero-filled and durable.
    /// If the disk cannot give that much, the space is given back and the frame is simply
    /// appended (slower, but it may still fit).
    fn allocate_ahead(&mut self, needed: u64) {
        if self.len + needed <= self.allocated {
            return;
        }
        let Some(file) = self.file.as_ref() else {
            return;
        };
        let target = self.len + needed.max(PREALLOCATE_BYTES);
        let zeros = vec![0u8; 1 << 20];
        let mut at = self.allocated.max(self.len);
        let mut result = Ok(());
        while at < target && result.is_ok() {
            let chunk = (target - at).min(zeros.len() as u64) as usize;
            result = file.write_all_at(&zeros[..chunk], at);
            at += chunk as u64;
        }
        match result.and_then(|()| file.sync_all()) {
            Ok(()) => self.allocated = target,
            Err(error) => {
                tracing::debug!(%error, "Could not allocate log space ahead; appending instead");
                let _ = file.set_len(self.len);
                self.allocated = self.len;
            }
        }
    }

    /// Writes the whole state (including what is queued now) as a fresh file.
    fn compact(&mut self) {
        let (entries, groups, hasher, unchecked) = {
            let state = self.state.read();
            let entries = std::mem::take(&mut self.shared.queue.lock().entries);
            let unchecked = self.unchecked_mode || state.inconsistency().is_some();
            (
                entries,
                state.all_group_contents(),
                state.hasher(),
                unchecked,
            )
        };
        match self.write_snapshot_of(&groups, hasher, unchecked) {
            Ok(()) => answer(entries, Ok(())),
            Err(error) => {
                let error = self.io_error(error);
                self.fail(entries, error);
            }
        }
    }

    /// Writes the current state as a fresh file (at start-up).
    fn compact_now(&mut self) -> std::io::Result<()> {
        let (groups, hasher, unchecked) = {
            let state = self.state.read();
            let unchecked = self.unchecked_mode || state.inconsistency().is_some();
            (state.all_group_contents(), state.hasher(), unchecked)
        };
        self.write_snapshot_of(&groups, hasher, unchecked)
    }

    fn write_snapshot_of(
        &mut self,
        groups: &[(GroupingKey, GroupContents)],
        hasher: LabelHasher,
        unchecked: bool,
    ) -> std::io::Result<()> {
        let mut temporary = self.path.as_os_str().to_owned();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let written =
            write_snapshot_file(&temporary, groups, hasher, unchecked).and_then(|(file, len)| {
                fs::rename(&temporary, &self.path)?;
                sync_directory(&self.path)?;
                Ok((file, len))
            });
        match written {
            Ok((file, len)) => {
                self.file = Some(file);
                self.len = len;
                self.allocated = len;
                self.snapshot_bytes = len;
                self.log_bytes = 0;
                self.last_compaction = Instant::now();
                self.changed_since_compaction = false;
                self.needs_compaction = false;
                self.succeeded();
                Ok(())
            }
            Err(error) => {
                let _ = fs::remove_file(&temporary);
                self.needs_compaction = true;
                Err(error)
            }
        }
    }

    /// Undoes everything applied but not durable (the failed entries and all queued after
    /// them), newest first, and answers their requests with `error`.
    fn succeeded(&mut self) {
        self.retry_delay = FIRST_RETRY_DELAY;
        let mut health = self.shared.health.lock();
        health.last_success = unix_now();
        if let Some(problem) = health.failing.take() {
            tracing::info!(previous = problem, "Persisting works again");
        }
    }

    fn fail(&mut self, entries: Vec<Entry>, error: PersistError) {
        tracing::error!(%error, retry_in = ?self.retry_delay, "Persisting failed; undoing the changes that were not written");
        self.needs_compaction = true;
        self.retry_at = Instant::now() + self.retry_delay;
        self.retry_delay = (self.retry_delay * 2).min(LAST_RETRY_DELAY);
        {
            let mut health = self.shared.health.lock();
            health.failures += 1;
            health.failing = Some(error.to_string());
        }
        self.undo_and_answer(entries, error);
    }

    /// Undoes `entries` and everything queued after them, newest first, and answers their
    /// requests with `error`.
    fn undo_and_answer(&mut self, entries: Vec<Entry>, error: PersistError) {
        let mut all = entries;
        {
            let mut state = self.state.write();
            all.extend(std::mem::take(&mut self.shared.queue.lock().entries));
            for entry in all.iter_mut().rev() {
                if let Some(undo) = entry.undo.take() {
                    undo.apply(&mut state);
                }
            }
        }
        answer(all, Err(error));
    }
}

/// Sends each waiting request its answer.
fn answer(entries: Vec<Entry>, result: Result<(), PersistError>) {
    for entry in entries {
        if let Some(reply) = entry.reply {
            let _ = reply.send(result.clone());
        }
    }
}

fn op_record(op: &Op) -> Record<'_> {
    match op {
        Op::Push {
            key,
            mode,
            time,
            families,
            ttl,
        } => Record::Push {
            key: format::key_record(key),
            replace: *mode == PushMode::Replace,
            time: *time,
            families: families
                .iter()
                .map(|(name, member)| format::family_record(name, member))
                .collect(),
            ttl: *ttl,
        },
        Op::Failure { key, time } => Record::Failure {
            key: format::key_record(key),
            time: *time,
        },
        Op::Delete { key } => Record::Delete {
            key: format::key_record(key),
        },
        Op::DeleteMany { keys } => Record::DeleteMany {
            keys: keys.iter().map(format::key_record).collect(),
        },
        Op::Wipe => Record::Wipe,
    }
}

/// Writes a complete snapshot to `path`, fsynced; returns the open file and its length.
fn write_snapshot_file(
    path: &Path,
    groups: &[(GroupingKey, GroupContents)],
    hasher: LabelHasher,
    unchecked: bool,
) -> std::io::Result<(File, u64)> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let mut buffer = Vec::with_capacity(SNAPSHOT_FRAME_BYTES * 2);
    buffer.extend_from_slice(format::MAGIC);
    format::encode_frame(
        &[Record::Header {
            hash_keys: hasher.keys,
            written_at: unix_now(),
            unchecked,
        }],
        &mut buffer,
    );
    let mut len = 0u64;
    let mut pending: Vec<Record<'_>> = Vec::new();
    let mut pending_bytes = 0;
    for (key, contents) in groups {
        pending_bytes += contents
            .families
            .iter()
            .map(|(_, m)| {
                m.text.len() + m.proto.as_ref().map_or(0, |p| p.len()) + m.hashes.len() * 8
            })
            .sum::<usize>();
        pending.push(Record::Group(format::group_record(key, contents)));
        if pending_bytes >= SNAPSHOT_FRAME_BYTES {
            format::encode_frame(&pending, &mut buffer);
            pending.clear();
            pending_bytes = 0;
            file.write_all(&buffer)?;
            len += buffer.len() as u64;
            buffer.clear();
        }
    }
    pending.push(Record::SnapshotEnd {
        groups: groups.len() as u64,
    });
    format::encode_frame(&pending, &mut buffer);
    file.write_all(&buffer)?;
    len += buffer.len() as u64;
    file.sync_all()?;
    Ok((file, len))
}

/// Makes a rename in the file's directory durable.
fn sync_directory(path: &Path) -> std::io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory)?.sync_all()
}
