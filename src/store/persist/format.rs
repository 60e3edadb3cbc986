//! The bytes of the persistence file: a magic string, then checksummed, versioned frames.
//!
//! ```text
//! file  = MAGIC frame*
//! frame = len:u32le crc32:u32le version:u8 payload      (len counts version + payload;
//!                                                        the CRC-32 covers them too)
//! payload = postcard encoding of Vec<Record>
//! ```
//!
//! A file always starts with a snapshot (a `Header` record, one `Group` record per group,
//! then `SnapshotEnd`), followed by the log: one frame per group commit, holding the
//! records of every change in it (`Push`, `Failure`, `Delete`, `Wipe`). Replaying the file in
//! order rebuilds the store. Each frame is written with one `write` and made durable with one
//! `fsync`, so a crash leaves at most the last frame incomplete.
//!
//! The payload is encoded with `postcard` (a compact, documented, stable serde format); the
//! framing and checksums are ours because they decide what a crash leaves behind. What a
//! store member keeps is written as it is (its rendered text, its protobuf copy if any, the
//! hashes of its label sets), so a restart copies bytes and parses nothing.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::exposition::model::{Label, MetricKind};
use crate::grouping::GroupingKey;
use crate::store::member::Member;
use crate::store::state::GroupContents;
use crate::store::PushMode;

/// The first bytes of every file we write.
pub const MAGIC: &[u8; 8] = b"PGWRS\x00\x01\n";

/// The version byte of every frame this build writes (and the only one it reads).
pub const FRAME_VERSION: u8 = 1;

const FRAME_HEADER: usize = 8;

/// One change, or one part of a snapshot.
#[derive(Debug, Serialize, Deserialize)]
pub enum Record<'a> {
    /// First record of a file: the keys the label-set hashes in it were made with, and
    /// whether what follows may be inconsistent (written by a gateway running with
    /// `--push.disable-consistency-check`, or already inconsistent), so a restart checks it.
    Header {
        hash_keys: (u64, u64),
        written_at: f64,
        unchecked: bool,
    },
    /// A group's whole contents (snapshot).
    #[serde(borrow)]
    Group(GroupRecord<'a>),
    /// The snapshot is complete; the log follows.
    SnapshotEnd {
        groups: u64,
    },
    /// An accepted push; `ttl` is the group's own TTL if the push set one.
    Push {
        #[serde(borrow)]
        key: Vec<LabelRecord<'a>>,
        replace: bool,
        time: f64,
        #[serde(borrow)]
        families: Vec<FamilyRecord<'a>>,
        ttl: Option<f64>,
    },
    /// A refused push: only the group's failure time changes.
    Failure {
        #[serde(borrow)]
        key: Vec<LabelRecord<'a>>,
        time: f64,
    },
    Delete {
        #[serde(borrow)]
        key: Vec<LabelRecord<'a>>,
    },
    /// Several groups removed in one step (by a matcher, or expired).
    DeleteMany {
        #[serde(borrow)]
        keys: Vec<Vec<LabelRecord<'a>>>,
    },
    Wipe,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct GroupRecord<'a> {
    #[serde(borrow)]
    pub key: Vec<LabelRecord<'a>>,
    pub push_time: f64,
    pub failure_time: f64,
    pub ttl: Option<f64>,
    #[serde(borrow)]
    pub families: Vec<FamilyRecord<'a>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LabelRecord<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// One group's copy of one family, as [`Member`] keeps it.
#[derive(Debug, Serialize, Deserialize)]
pub struct FamilyRecord<'a> {
    pub name: &'a str,
    pub kind: u8,
    pub help: Option<&'a str>,
    pub unit: Option<&'a str>,
    #[serde(with = "serde_bytes")]
    pub text: &'a [u8],
    #[serde(borrow, with = "serde_bytes")]
    pub proto: Option<&'a [u8]>,
    /// The sorted label-set hashes, 8 bytes little-endian each.
    #[serde(borrow, with = "serde_bytes")]
    pub hashes: Cow<'a, [u8]>,
    pub pushed_at: f64,
    /// Whether every name in the family follows the legacy rules (no escaping needed).
    pub legacy_names: bool,
}

/// Why bytes could not be turned back into records.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame version {0} is not one this build reads (written by a newer version?)")]
    Version(u8),
    #[error("frame contents do not decode: {0}")]
    Payload(String),
    #[error("unknown metric type code {0}")]
    Kind(u8),
    #[error("label-set hashes are {0} bytes, not a multiple of 8")]
    Hashes(usize),
}

/// What the bytes at an offset hold.
#[derive(Debug)]
pub enum FrameRead<'a> {
    /// A whole, intact frame and the offset after it.
    Frame { payload: &'a [u8], next: usize },
    /// The end of the data (the end of the file, or only zeros up to it).
    End,
    /// An incomplete or damaged last frame, as a crash during its write leaves it.
    Torn(String),
    /// A damaged frame with intact data after it: not something a crash does.
    Corrupt(String),
}

/// Reads the frame starting at `offset` of `data` (the whole file).
pub fn read_frame(data: &[u8], offset: usize) -> FrameRead<'_> {
    let rest = &data[offset.min(data.len())..];
    // Zeros to the end are log space allocated ahead of use (or what a crash leaves when the
    // file's size was updated but its data was not): nothing was written there.
    let zeros_to_end = |from: usize| rest.get(from..).unwrap_or(&[]).iter().all(|b| *b == 0);
    if zeros_to_end(0) {
        return FrameRead::End;
    }
    if rest.len() < FRAME_HEADER {
        return FrameRead::Torn(format!("{} bytes of a frame header", rest.len()));
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if len == 0 {
        return FrameRead::Corrupt("a frame of length 0".into());
    }
    if len > rest.len() - FRAME_HEADER {
        return FrameRead::Torn(format!(
            "a frame of {len} bytes with only {} left in the file",
            rest.len() - FRAME_HEADER
        ));
    }
    let body = &rest[FRAME_HEADER..FRAME_HEADER + len];
    if crc32fast::hash(body) != crc {
        let end = FRAME_HEADER + len;
        return if zeros_to_end(end) {
            FrameRead::Torn("the last frame's checksum does not match".into())
        } else {
            FrameRead::Corrupt("a frame's checksum does not match".into())
        };
    }
    FrameRead::Frame {
        payload: body,
        next: offset + FRAME_HEADER + len,
    }
}

/// Decodes the records of an intact frame.
pub fn decode_payload(payload: &[u8]) -> Result<Vec<Record<'_>>, DecodeError> {
    match payload.split_first() {
        Some((&FRAME_VERSION, records)) => {
            postcard::from_bytes(records).map_err(|e| DecodeError::Payload(e.to_string()))
        }
        Some((&version, _)) => Err(DecodeError::Version(version)),
        None => Err(DecodeError::Payload("empty frame".into())),
    }
}

/// Appends one frame holding `records` to `out`.
pub fn encode_frame(records: &[Record<'_>], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    out.push(FRAME_VERSION);
    let buffer = std::mem::take(out);
    // Serializing plain structs into a Vec cannot fail.
    *out = postcard::to_extend(records, buffer).unwrap_or_else(|_| unreachable!());
    let body = &out[start + FRAME_HEADER..];
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn kind_code(kind: MetricKind) -> u8 {
    match kind {
        MetricKind::Counter => 0,
        MetricKind::Gauge => 1,
        MetricKind::Summary => 2,
        MetricKind::Untyped => 3,
        MetricKind::Histogram => 4,
        MetricKind::GaugeHistogram => 5,
    }
}

fn kind_from_code(code: u8) -> Result<MetricKind, DecodeError> {
    Ok(match code {
        0 => MetricKind::Counter,
        1 => MetricKind::Gauge,
        2 => MetricKind::Summary,
        3 => MetricKind::Untyped,
        4 => MetricKind::Histogram,
        5 => MetricKind::GaugeHistogram,
        other => return Err(DecodeError::Kind(other)),
    })
}

pub fn key_record(key: &GroupingKey) -> Vec<LabelRecord<'_>> {
    key.labels()
        .iter()
        .map(|label| LabelRecord {
            name: &label.name,
            value: &label.value,
        })
        .collect()
}

pub fn key_from_record(labels: &[LabelRecord<'_>]) -> GroupingKey {
    GroupingKey::new(
        labels
            .iter()
            .map(|label| Label::new(label.name, label.value))
            .collect(),
    )
}

pub fn family_record<'a>(name: &'a str, member: &'a Member) -> FamilyRecord<'a> {
    let mut hashes = Vec::with_capacity(member.hashes.len() * 8);
    for hash in member.hashes.iter() {
        hashes.extend_from_slice(&hash.to_le_bytes());
    }
    FamilyRecord {
        name,
        kind: kind_code(member.kind),
        help: member.help.as_deref(),
        unit: member.unit.as_deref(),
        text: &member.text,
        proto: member.proto.as_deref(),
        hashes: Cow::Owned(hashes),
        pushed_at: member.pushed_at,
        legacy_names: member.legacy_names,
    }
}

pub fn family_from_record(record: &FamilyRecord<'_>) -> Result<(Arc<str>, Member), DecodeError> {
    if !record.hashes.len().is_multiple_of(8) {
        return Err(DecodeError::Hashes(record.hashes.len()));
    }
    let hashes: Arc<[u64]> = record
        .hashes
        .chunks_exact(8)
        .map(|chunk| {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(chunk);
            u64::from_le_bytes(bytes)
        })
        .collect();
    let member = Member {
        kind: kind_from_code(record.kind)?,
        help: record.help.map(Arc::from),
        unit: record.unit.map(Arc::from),
        text: Bytes::copy_from_slice(record.text),
        proto: record.proto.map(Bytes::copy_from_slice),
        hashes,
        pushed_at: record.pushed_at,
        legacy_names: record.legacy_names,
    };
    Ok((Arc::from(record.name), member))
}

pub fn group_record<'a>(key: &'a GroupingKey, contents: &'a GroupContents) -> GroupRecord<'a> {
    GroupRecord {
        key: key_record(key),
        push_time: contents.push_time,
        failure_time: contents.failure_time,
        ttl: contents.ttl,
        families: contents
            .families
            .iter()
            .map(|(name, member)| family_record(name, member))
            .collect(),
    }
}

pub fn contents_from_record(record: &GroupRecord<'_>) -> Result<GroupContents, DecodeError> {
    Ok(GroupContents {
        push_time: record.push_time,
        failure_time: record.failure_time,
        ttl: record.ttl,
        families: record
            .families
            .iter()
            .map(family_from_record)
            .collect::<Result<_, _>>()?,
    })
}

pub fn mode_from_replace(replace: bool) -> PushMode {
    if replace {
        PushMode::Replace
    } else {
        PushMode::Merge
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_frame() -> Vec<u8> {
        let member = Member {
            kind: MetricKind::Histogram,
            help: Some(Arc::from("help")),
            unit: None,
            text: Bytes::from_static(b"h_bucket{le=\"+Inf\"} 1\n"),
            proto: Some(Bytes::from_static(&[1, 2, 3])),
            hashes: Arc::from(vec![1u64, u64::MAX]),
            pushed_at: 12.5,
            legacy_names: true,
        };
        let key = GroupingKey::new(vec![Label::new("job", "j")]);
        let records = vec![
            Record::Push {
                key: key_record(&key),
                replace: true,
                time: 12.5,
                families: vec![family_record("h", &member)],
                ttl: Some(60.0),
            },
            Record::Wipe,
        ];
        let mut out = Vec::new();
        encode_frame(&records, &mut out);
        out
    }

    #[test]
    fn frames_round_trip() {
        let frame = sample_frame();
        let FrameRead::Frame { payload, next } = read_frame(&frame, 0) else {
            panic!("frame not read back");
        };
        assert_eq!(next, frame.len());
        let records = decode_payload(payload).unwrap();
        let Record::Push { key, families, .. } = &records[0] else {
            panic!("not a push: {records:?}");
        };
        assert_eq!(key_from_record(key).get("job"), Some("j"));
        let (name, member) = family_from_record(&families[0]).unwrap();
        assert_eq!(&*name, "h");
        assert_eq!(&member.hashes[..], &[1, u64::MAX]);
        assert_eq!(member.proto.as_deref(), Some(&[1u8, 2, 3][..]));
        assert!(matches!(records[1], Record::Wipe));
        assert!(matches!(read_frame(&frame, next), FrameRead::End));
    }

    #[test]
    fn a_cut_last_frame_is_torn_at_every_length() {
        let frame = sample_frame();
        for cut in 1..frame.len() {
            match read_frame(&frame[..cut], 0) {
                FrameRead::Torn(_) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn damage_before_intact_data_is_corruption_and_at_the_end_is_torn() {
        let mut two = sample_frame();
        two.extend_from_slice(&sample_frame());
        let mut damaged = two.clone();
        damaged[12] ^= 0x40;
        assert!(matches!(read_frame(&damaged, 0), FrameRead::Corrupt(_)));
        let first_len = sample_frame().len();
        let mut last_damaged = two.clone();
        last_damaged[first_len + 12] ^= 0x40;
        assert!(matches!(
            read_frame(&last_damaged, first_len),
            FrameRead::Torn(_)
        ));
        // Space allocated ahead: zeros after the last frame are the end of the log.
        let mut zero_tail = sample_frame();
        zero_tail.extend_from_slice(&[0; 100]);
        let first = sample_frame().len();
        assert!(matches!(read_frame(&zero_tail, first), FrameRead::End));
        // A frame whose data never reached the disk: its header, then zeros.
        let mut header_only = sample_frame();
        let len = header_only.len();
        header_only[8..].iter_mut().for_each(|b| *b = 0);
        assert!(matches!(read_frame(&header_only, 0), FrameRead::Torn(_)));
        assert_eq!(header_only.len(), len);
    }

    proptest::proptest! {
        /// Whatever the bytes, reading frames and decoding them returns, without panicking.
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let mut offset = 0;
            while let FrameRead::Frame { payload, next } = read_frame(&data, offset) {
                if let Ok(records) = decode_payload(payload) {
                    for record in &records {
                        if let Record::Push { families, .. } = record {
                            for family in families {
                                let _ = family_from_record(family);
                            }
                        }
                    }
                }
                offset = next;
            }
        }

        /// A valid frame with one byte changed is never read back as different records.
        #[test]
        fn a_changed_byte_is_always_noticed(position in 0usize..1000, flip in 1u8..=255) {
            let frame = sample_frame();
            let mut damaged = frame.clone();
            let position = position % frame.len();
            damaged[position] ^= flip;
            match read_frame(&damaged, 0) {
                FrameRead::Frame { payload, .. } => {
                    // Only a change that keeps length and checksum intact could get here.
                    proptest::prop_assert_eq!(payload, &frame[8..]);
                }
                FrameRead::End => proptest::prop_assert!(false, "a damaged frame read as the end"),
                FrameRead::Torn(_) | FrameRead::Corrupt(_) => {}
            }
        }
    }

    #[test]
    fn unknown_versions_and_garbage_payloads_are_errors() {
        let mut frame = sample_frame();
        frame[8] = 9;
        let crc = crc32fast::hash(&frame[8..]);
        frame[4..8].copy_from_slice(&crc.to_le_bytes());
        let FrameRead::Frame { payload, .. } = read_frame(&frame, 0) else {
            panic!("checksum was fixed");
        };
        assert_eq!(
            decode_payload(payload).unwrap_err(),
            DecodeError::Version(9)
        );
        assert!(decode_payload(&[FRAME_VERSION, 0xff, 0xff, 0xff]).is_err());
    }
}
