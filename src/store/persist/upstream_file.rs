//! Reading the persistence file of the Go Pushgateway, so a store can move over from it.
//!
//! # The format
//!
//! With `--persistence.file`, the Go Pushgateway writes its whole store as one value of
//! Go's `encoding/gob`: a `map[string]MetricGroup` keyed by grouping key, where
//! `MetricGroup { Labels map[string]string; Metrics map[string]TimestampedMetricFamily }`
//! and `TimestampedMetricFamily { Timestamp time.Time; GobbableMetricFamily
//! *GobbableMetricFamily }` (upstream `storage/interface.go`). Two of those types encode
//! themselves (gob's `GobEncoder`), so on the wire they are plain byte strings:
//!
//! * `time.Time` writes its `MarshalBinary` form: a version byte (1, or 2 when the zone
//!   offset has seconds), 8 bytes of seconds since 1 January of year 1 UTC, 4 bytes of
//!   nanoseconds and 2 bytes of zone offset in minutes (plus 1 byte of offset seconds in
//!   version 2), all big-endian;
//! * `GobbableMetricFamily` writes `proto.Marshal` of an `io.prometheus.client.MetricFamily`:
//!   one protobuf message, not length-delimited.
//!
//! A gob stream is a series of messages, each a byte count followed by a type id. A negative
//! id defines type `-id` (its body is a `wireType`: a struct, map, slice, array or
//! self-encoding type, with field names and the ids of their parts); a positive id is a
//! value of that type. Numbers use gob's own encoding: an unsigned number below 128 is one
//! byte, a larger one is its byte count negated and then its big-endian bytes; a signed
//! number is folded into an unsigned one (the low bit is the sign). A struct is a run of
//! (field number delta, value) pairs ended by a zero delta, leaving zero-valued fields out;
//! a top-level value that is not a struct is preceded by a zero delta of its own.
//!
//! # Why a hand-written decoder
//!
//! No maintained Rust crate reads gob, and this file has a single shape. What is here is a
//! small, general decoder for the self-describing part of gob (so it follows the type
//! definitions the file carries instead of hard-coding type ids, which depend on what else
//! the Go process had encoded) followed by a check that the value has the shape above.
//! Unknown struct fields are ignored, as Go's decoder ignores them. Following the
//! definitions also copes with extra ones: Debian's 1.5.1 build, for one, defines the Go
//! structs behind the protobuf messages too, although their values travel as bytes.
//!
//! # Supported and not
//!
//! Supported: signed integers, strings, byte slices, arrays, slices, maps, structs, and
//! values of types that encode themselves (`GobEncoder`, `BinaryMarshaler`,
//! `TextMarshaler`), which come back as raw bytes. Booleans, unsigned numbers, floats and
//! complex numbers are read past but not kept (the store's shape has none). Not supported:
//! interface values (an error; the Pushgateway never writes one), and a stream holding more
//! than one value (only the first is read; the Pushgateway writes exactly one). Strings the
//! store's shape needs (label names and values, metric names) must be UTF-8.
//!
//! The input is untrusted: truncated or hostile bytes return an error, never a panic. A
//! length or count is checked against the bytes left before anything is allocated for it
//! (every element takes at least one byte), and values may nest at most 32 levels, so a
//! recursive type cannot exhaust the stack.
//!
//! The grouping-key strings that key the top-level map are not read: the group's `Labels`
//! say the same thing. Families keep everything the Go gateway stored, including its own
//! `push_time_seconds` and `push_failure_time_seconds`; what to do with them is the
//! caller's choice. Nothing here knows about HTTP or the live store.

use std::collections::HashMap;
use std::rc::Rc;

use crate::exposition::model::MetricFamily;
use crate::exposition::protobuf::{decode_family, ProtobufError};

/// How deeply values may nest. The Pushgateway's store nests 4 levels and a type definition
/// 4; anything far deeper is hostile.
const MAX_DEPTH: usize = 32;

/// One grouping key's worth of the Go Pushgateway's store.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamGroup {
    /// The grouping labels, sorted by name (an empty value is kept: `@base64/=` makes one).
    pub labels: Vec<(String, String)>,
    /// The group's families, sorted by name.
    pub families: Vec<UpstreamFamily>,
}

/// One stored family with the time of the push that last set it.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamFamily {
    /// Seconds since the Unix epoch. A file without a timestamp yields Go's zero time,
    /// 1 January of year 1 (-62135596800).
    pub pushed_at: f64,
    pub family: MetricFamily,
}

/// Why a file could not be read. Offsets count bytes from the start of the file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpstreamFileError {
    #[error("the file ends early, at byte {offset}")]
    Truncated { offset: usize },
    #[error("invalid gob at byte {offset}: {reason}")]
    Malformed { offset: usize, reason: &'static str },
    #[error("gob type id {id} used at byte {offset} is not defined")]
    UnknownType { offset: usize, id: i64 },
    #[error("unsupported gob value at byte {offset}: {what}")]
    Unsupported { offset: usize, what: &'static str },
    #[error("gob values nest deeper than {MAX_DEPTH} levels at byte {offset}")]
    TooDeep { offset: usize },
    #[error("not a Pushgateway store: {0}")]
    Shape(String),
    #[error("family {family:?} of group {group}: invalid push time: {reason}")]
    Timestamp {
        group: String,
        family: String,
        reason: &'static str,
    },
    #[error("family {family:?} of group {group}: {source}")]
    Family {
        group: String,
        family: String,
        #[source]
        source: ProtobufError,
    },
}

type Result<T> = std::result::Result<T, UpstreamFileError>;

/// A cheap check that `bytes` starts like the Go Pushgateway's persistence file: a gob type
/// definition of a map named `GroupingKeyToMetricGroup`. It reads only the first message.
pub fn looks_like_upstream_file(bytes: &[u8]) -> bool {
    let mut reader = Reader::new(bytes);
    let Ok(length) = reader.uint() else {
        return false;
    };
    if length > reader.remaining() as u64 {
        return false;
    }
    let start = reader.pos;
    reader.end = start + length as usize;
    let is_definition = matches!(reader.int(), Ok(id) if id <= -FIRST_USER_ID);
    // A wireType whose first field present is MapT, the fourth: delta 4.
    let is_map = reader.byte() == Ok(4);
    let body = &bytes[start..reader.end];
    is_definition
        && is_map
        && body
            .windows(b"GroupingKeyToMetricGroup".len())
            .any(|window| window == b"GroupingKeyToMetricGroup")
}

/// Reads a whole persistence file of the Go Pushgateway. Groups come sorted by labels.
pub fn read_upstream_file(bytes: &[u8]) -> Result<Vec<UpstreamGroup>> {
    let value = Decoder::new().first_value(bytes)?;
    let mut groups = groups_from_value(value)?;
    groups.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(groups)
}

// ---------------------------------------------------------------------------------------
// The gob decoder.

/// Ids of the types every gob stream knows without being told. User types start above 64.
const BOOL: i64 = 1;
const INT: i64 = 2;
const UINT: i64 = 3;
const FLOAT: i64 = 4;
const BYTES: i64 = 5;
const STRING: i64 = 6;
const COMPLEX: i64 = 7;
const INTERFACE: i64 = 8;
/// The types that describe types. Go numbers them 16 to 23; `gobEncoderType` has no fixed
/// number in Go, so 24 is ours. A stream may not redefine any id below 64.
const WIRE_TYPE: i64 = 16;
const ARRAY_TYPE: i64 = 17;
const COMMON_TYPE: i64 = 18;
const SLICE_TYPE: i64 = 19;
const STRUCT_TYPE: i64 = 20;
const FIELD_TYPE: i64 = 21;
const FIELD_SLICE: i64 = 22;
const MAP_TYPE: i64 = 23;
const GOB_ENCODER_TYPE: i64 = 24;
const FIRST_USER_ID: i64 = 64;

/// Seconds from 1 January of year 1 (where Go's `time.Time` counts from) to 1970.
const GO_SECONDS_BEFORE_UNIX_EPOCH: i64 = 62_135_596_800;

#[derive(Debug, Clone)]
enum GobType {
    Bool,
    Int,
    Uint,
    Float,
    Complex,
    Bytes,
    String,
    Interface,
    Array {
        elem: i64,
        len: u64,
    },
    Slice {
        elem: i64,
    },
    Map {
        key: i64,
        elem: i64,
    },
    Struct {
        fields: Rc<[Field]>,
    },
    /// A type that encodes itself (GobEncoder, BinaryMarshaler, TextMarshaler): a byte string.
    SelfEncoded,
}

#[derive(Debug)]
struct Field {
    name: Rc<str>,
    id: i64,
}

/// A decoded value. Byte strings borrow from the input.
#[derive(Debug)]
enum Value<'a> {
    Int(i64),
    /// A boolean, unsigned, float or complex number: read past, never needed by the store.
    OtherScalar,
    /// A `[]byte` or a self-encoded value.
    Bytes(&'a [u8]),
    String(&'a [u8]),
    List(Vec<Value<'a>>),
    Map(Vec<(Value<'a>, Value<'a>)>),
    /// The fields present on the wire, by name, in order.
    Struct(Vec<(Rc<str>, Value<'a>)>),
}

/// A position in the input, limited to the current message when inside one.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    end: usize,
    /// Running out inside a message means a broken message; outside, a truncated file.
    in_message: bool,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader {
            bytes,
            pos: 0,
            end: bytes.len(),
            in_message: false,
        }
    }

    fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// Running out of input.
    fn short(&self) -> UpstreamFileError {
        if !self.in_message {
            UpstreamFileError::Truncated { offset: self.end }
        } else {
            UpstreamFileError::Malformed {
                offset: self.pos,
                reason: "a value runs past the end of its message",
            }
        }
    }

    fn byte(&mut self) -> Result<u8> {
        if self.pos >= self.end {
            return Err(self.short());
        }
        let byte = self.bytes[self.pos];
        self.pos += 1;
        Ok(byte)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.short());
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    /// gob's unsigned number: one byte below 128, else the negated byte count (at most 8)
    /// and that many big-endian bytes.
    fn uint(&mut self) -> Result<u64> {
        let at = self.pos;
        let first = self.byte()?;
        if first < 0x80 {
            return Ok(u64::from(first));
        }
        let count = usize::from(first.wrapping_neg());
        if count > 8 {
            return Err(UpstreamFileError::Malformed {
                offset: at,
                reason: "an unsigned number longer than 8 bytes",
            });
        }
        let digits = self.take(count)?;
        Ok(digits
            .iter()
            .fold(0u64, |acc, &digit| (acc << 8) | u64::from(digit)))
    }

    /// gob's signed number: the unsigned form shifted left, the low bit meaning "complement".
    fn int(&mut self) -> Result<i64> {
        let folded = self.uint()?;
        let magnitude = (folded >> 1) as i64;
        Ok(if folded & 1 == 1 {
            !magnitude
        } else {
            magnitude
        })
    }

    /// A count of elements or bytes still to come; each takes at least one byte, so a count
    /// beyond what is left is an error before anything is allocated.
    fn count(&mut self) -> Result<usize> {
        let at = self.pos;
        let count = self.uint()?;
        if count > self.remaining() as u64 {
            return Err(if !self.in_message {
                UpstreamFileError::Truncated { offset: self.end }
            } else {
                UpstreamFileError::Malformed {
                    offset: at,
                    reason: "a length exceeds its message",
                }
            });
        }
        Ok(count as usize)
    }

    fn type_id(&mut self) -> Result<i64> {
        let at = self.pos;
        let id = self.int()?;
        if i32::try_from(id).is_err() {
            return Err(UpstreamFileError::Malformed {
                offset: at,
                reason: "a type id out of range",
            });
        }
        Ok(id)
    }
}

/// The types known so far in the stream.
struct Decoder {
    types: HashMap<i64, GobType>,
}

fn struct_type(fields: &[(&str, i64)]) -> GobType {
    GobType::Struct {
        fields: fields
            .iter()
            .map(|&(name, id)| Field {
                name: name.into(),
                id,
            })
            .collect(),
    }
}

impl Decoder {
    fn new() -> Decoder {
        let common = ("CommonType", COMMON_TYPE);
        let types = HashMap::from([
            (BOOL, GobType::Bool),
            (INT, GobType::Int),
            (UINT, GobType::Uint),
            (FLOAT, GobType::Float),
            (BYTES, GobType::Bytes),
            (STRING, GobType::String),
            (COMPLEX, GobType::Complex),
            (INTERFACE, GobType::Interface),
            (
                WIRE_TYPE,
                struct_type(&[
                    ("ArrayT", ARRAY_TYPE),
                    ("SliceT", SLICE_TYPE),
                    ("StructT", STRUCT_TYPE),
                    ("MapT", MAP_TYPE),
                    ("GobEncoderT", GOB_ENCODER_TYPE),
                    ("BinaryMarshalerT", GOB_ENCODER_TYPE),
                    ("TextMarshalerT", GOB_ENCODER_TYPE),
                ]),
            ),
            (
                ARRAY_TYPE,
                struct_type(&[common, ("Elem", INT), ("Len", INT)]),
            ),
            (COMMON_TYPE, struct_type(&[("Name", STRING), ("Id", INT)])),
            (SLICE_TYPE, struct_type(&[common, ("Elem", INT)])),
            (STRUCT_TYPE, struct_type(&[common, ("Field", FIELD_SLICE)])),
            (FIELD_TYPE, struct_type(&[("Name", STRING), ("Id", INT)])),
            (FIELD_SLICE, GobType::Slice { elem: FIELD_TYPE }),
            (
                MAP_TYPE,
                struct_type(&[common, ("Key", INT), ("Elem", INT)]),
            ),
            (GOB_ENCODER_TYPE, struct_type(&[common])),
        ]);
        Decoder { types }
    }

    fn lookup(&self, id: i64, offset: usize) -> Result<GobType> {
        self.types
            .get(&id)
            .cloned()
            .ok_or(UpstreamFileError::UnknownType { offset, id })
    }

    /// Reads messages until the first value, learning type definitions on the way.
    fn first_value<'a>(&mut self, bytes: &'a [u8]) -> Result<Value<'a>> {
        let mut stream = Reader::new(bytes);
        loop {
            let length = stream.count()?;
            if length == 0 {
                return Err(UpstreamFileError::Malformed {
                    offset: stream.pos,
                    reason: "an empty message",
                });
            }
            let mut message = Reader {
                bytes,
                pos: stream.pos,
                end: stream.pos + length,
                in_message: true,
            };
            stream.pos += length;
            let id_at = message.pos;
            let id = message.type_id()?;
            if id < 0 {
                self.define(&mut message, -id, id_at)?;
            }
            let value = if id >= 0 {
                Some(self.top_level_value(&mut message, id, id_at)?)
            } else {
                None
            };
            if message.remaining() != 0 {
                return Err(UpstreamFileError::Malformed {
                    offset: message.pos,
                    reason: "extra bytes at the end of a message",
                });
            }
            if let Some(value) = value {
                return Ok(value);
            }
        }
    }

    fn top_level_value<'a>(
        &self,
        message: &mut Reader<'a>,
        id: i64,
        id_at: usize,
    ) -> Result<Value<'a>> {
        if let GobType::Struct { .. } = self.lookup(id, id_at)? {
            return self.value(message, id, 0);
        }
        // Anything else travels as the single field of an implicit struct: a zero delta.
        let at = message.pos;
        if message.uint()? != 0 {
            return Err(UpstreamFileError::Malformed {
                offset: at,
                reason: "a top-level value that is not a struct must start with a zero byte",
            });
        }
        self.value(message, id, 0)
    }

    /// Reads a `wireType` and records it as type `id`.
    fn define(&mut self, message: &mut Reader<'_>, id: i64, id_at: usize) -> Result<()> {
        if id < FIRST_USER_ID {
            return Err(UpstreamFileError::Malformed {
                offset: id_at,
                reason: "a type definition for a reserved type id",
            });
        }
        if self.types.contains_key(&id) {
            return Err(UpstreamFileError::Malformed {
                offset: id_at,
                reason: "a type id defined twice",
            });
        }
        let at = message.pos;
        let wire = self.value(message, WIRE_TYPE, 0)?;
        let malformed = |reason| UpstreamFileError::Malformed { offset: at, reason };
        let Value::Struct(mut kinds) = wire else {
            return Err(malformed("a type definition is not a struct"));
        };
        let (Some((kind, Value::Struct(body))), true) = (kinds.pop(), kinds.is_empty()) else {
            return Err(malformed(
                "a type definition must describe exactly one type",
            ));
        };
        let int = |name: &str| match struct_field(&body, name) {
            None => Ok(0),
            Some(Value::Int(value)) => Ok(*value),
            Some(_) => Err(malformed("a type id is not an integer")),
        };
        let gob_type = match &*kind {
            "ArrayT" => {
                let len = u64::try_from(int("Len")?)
                    .map_err(|_| malformed("an array type with a negative length"))?;
                GobType::Array {
                    elem: int("Elem")?,
                    len,
                }
            }
            "SliceT" => GobType::Slice { elem: int("Elem")? },
            "MapT" => GobType::Map {
                key: int("Key")?,
                elem: int("Elem")?,
            },
            "StructT" => {
                let fields = match struct_field(&body, "Field") {
                    None => Vec::new(),
                    Some(Value::List(fields)) => fields
                        .iter()
                        .map(|field| match field {
                            Value::Struct(parts) => {
                                let name = match struct_field(parts, "Name") {
                                    Some(Value::String(name)) => String::from_utf8_lossy(name),
                                    _ => "".into(),
                                };
                                let id = match struct_field(parts, "Id") {
                                    Some(Value::Int(id)) => *id,
                                    None => 0,
                                    Some(_) => {
                                        return Err(malformed("a field id is not an integer"))
                                    }
                                };
                                Ok(Field {
                                    name: name.into(),
                                    id,
                                })
                            }
                            _ => Err(malformed("a struct field is not described by a struct")),
                        })
                        .collect::<Result<Vec<_>>>()?,
                    Some(_) => return Err(malformed("a struct's fields are not a list")),
                };
                GobType::Struct {
                    fields: fields.into(),
                }
            }
            _ => GobType::SelfEncoded,
        };
        self.types.insert(id, gob_type);
        Ok(())
    }

    fn value<'a>(&self, r: &mut Reader<'a>, id: i64, depth: usize) -> Result<Value<'a>> {
        let at = r.pos;
        if depth > MAX_DEPTH {
            return Err(UpstreamFileError::TooDeep { offset: at });
        }
        Ok(match self.lookup(id, at)? {
            GobType::Int => Value::Int(r.int()?),
            // Booleans, unsigned numbers and floats all travel as one unsigned number.
            GobType::Bool | GobType::Uint | GobType::Float => {
                r.uint()?;
                Value::OtherScalar
            }
            GobType::Complex => {
                r.uint()?;
                r.uint()?;
                Value::OtherScalar
            }
            GobType::Bytes | GobType::SelfEncoded => {
                let length = r.count()?;
                Value::Bytes(r.take(length)?)
            }
            GobType::String => {
                let length = r.count()?;
                Value::String(r.take(length)?)
            }
            GobType::Interface => {
                return Err(UpstreamFileError::Unsupported {
                    offset: at,
                    what: "interface values",
                })
            }
            GobType::Array { elem, len } => {
                let count = r.count()?;
                if count as u64 != len {
                    return Err(UpstreamFileError::Malformed {
                        offset: at,
                        reason: "an array's length differs from its type's",
                    });
                }
                self.list(r, elem, count, depth)?
            }
            GobType::Slice { elem } => {
                let count = r.count()?;
                self.list(r, elem, count, depth)?
            }
            GobType::Map { key, elem } => {
                let count = r.count()?;
                let mut entries = Vec::with_capacity(count);
                for _ in 0..count {
                    let k = self.value(r, key, depth + 1)?;
                    let v = self.value(r, elem, depth + 1)?;
                    entries.push((k, v));
                }
                Value::Map(entries)
            }
            GobType::Struct { fields } => {
                let mut present = Vec::new();
                let mut number: usize = 0; // one past the last field read
                loop {
                    let delta_at = r.pos;
                    let delta = r.uint()?;
                    if delta == 0 {
                        break;
                    }
                    if delta > (fields.len() - number) as u64 {
                        return Err(UpstreamFileError::Malformed {
                            offset: delta_at,
                            reason: "a struct field number out of range",
                        });
                    }
                    number += delta as usize;
                    let field = &fields[number - 1];
                    present.push((field.name.clone(), self.value(r, field.id, depth + 1)?));
                }
                Value::Struct(present)
            }
        })
    }

    fn list<'a>(
        &self,
        r: &mut Reader<'a>,
        elem: i64,
        count: usize,
        depth: usize,
    ) -> Result<Value<'a>> {
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(self.value(r, elem, depth + 1)?);
        }
        Ok(Value::List(items))
    }
}

fn struct_field<'v, 'a>(fields: &'v [(Rc<str>, Value<'a>)], name: &str) -> Option<&'v Value<'a>> {
    fields
        .iter()
        .find(|(field, _)| &**field == name)
        .map(|(_, value)| value)
}

// ---------------------------------------------------------------------------------------
// From gob values to the store's shape.

fn shape(what: impl Into<String>) -> UpstreamFileError {
    UpstreamFileError::Shape(what.into())
}

fn utf8(value: &Value<'_>, what: &str) -> Result<String> {
    match value {
        Value::String(bytes) => String::from_utf8(bytes.to_vec())
            .map_err(|_| shape(format!("{what} is not valid UTF-8"))),
        _ => Err(shape(format!("{what} is not a string"))),
    }
}

fn groups_from_value(value: Value<'_>) -> Result<Vec<UpstreamGroup>> {
    let Value::Map(entries) = value else {
        return Err(shape("the stored value is not a map of groups"));
    };
    entries
        .iter()
        .map(|(_grouping_key, group)| group_from_value(group))
        .collect()
}

fn group_from_value(group: &Value<'_>) -> Result<UpstreamGroup> {
    let Value::Struct(fields) = group else {
        return Err(shape("a group is not a struct"));
    };
    // An empty map is a zero value, which gob leaves out.
    let mut labels = match struct_field(fields, "Labels") {
        None => Vec::new(),
        Some(Value::Map(pairs)) => pairs
            .iter()
            .map(|(name, value)| Ok((utf8(name, "a label name")?, utf8(value, "a label value")?)))
            .collect::<Result<Vec<_>>>()?,
        Some(_) => return Err(shape("a group's labels are not a map")),
    };
    labels.sort();
    if labels.windows(2).any(|pair| pair[0].0 == pair[1].0) {
        return Err(shape("a group names a label twice"));
    }
    let group_name = render_labels(&labels);
    let mut families = match struct_field(fields, "Metrics") {
        None => Vec::new(),
        Some(Value::Map(entries)) => entries
            .iter()
            .map(|(name, family)| family_from_value(&group_name, name, family))
            .collect::<Result<Vec<_>>>()?,
        Some(_) => return Err(shape("a group's metrics are not a map")),
    };
    families.sort_by(|a, b| a.family.name.cmp(&b.family.name));
    Ok(UpstreamGroup { labels, families })
}

fn family_from_value(group: &str, name: &Value<'_>, family: &Value<'_>) -> Result<UpstreamFamily> {
    let name = utf8(name, "a metric name")?;
    let Value::Struct(fields) = family else {
        return Err(shape(format!(
            "family {name:?} of group {group} is not a struct"
        )));
    };
    let pushed_at = match struct_field(fields, "Timestamp") {
        // Go's zero time is left out; it is year 1.
        None => -(GO_SECONDS_BEFORE_UNIX_EPOCH as f64),
        Some(Value::Bytes(bytes)) => {
            unix_seconds(bytes).map_err(|reason| UpstreamFileError::Timestamp {
                group: group.to_string(),
                family: name.clone(),
                reason,
            })?
        }
        Some(_) => return Err(shape(format!("the push time of {name:?} is not a time"))),
    };
    let message = match struct_field(fields, "GobbableMetricFamily") {
        Some(Value::Bytes(bytes)) => bytes,
        None => {
            return Err(shape(format!(
                "family {name:?} of group {group} has no data"
            )))
        }
        Some(_) => {
            return Err(shape(format!(
                "family {name:?} of group {group} is not protobuf bytes"
            )))
        }
    };
    let family = decode_family(message).map_err(|source| UpstreamFileError::Family {
        group: group.to_string(),
        family: name.clone(),
        source,
    })?;
    Ok(UpstreamFamily { pushed_at, family })
}

/// Go's `time.Time.MarshalBinary` form, as Unix seconds.
fn unix_seconds(bytes: &[u8]) -> std::result::Result<f64, &'static str> {
    let expected_len = match bytes.first() {
        None => return Err("no data"),
        Some(1) => 15,
        Some(2) => 16,
        Some(_) => return Err("unknown version"),
    };
    if bytes.len() != expected_len {
        return Err("wrong length");
    }
    let mut seconds = [0u8; 8];
    seconds.copy_from_slice(&bytes[1..9]);
    let mut nanos = [0u8; 4];
    nanos.copy_from_slice(&bytes[9..13]);
    let seconds = i64::from_be_bytes(seconds)
        .checked_sub(GO_SECONDS_BEFORE_UNIX_EPOCH)
        .ok_or("out of range")?;
    Ok(seconds as f64 + f64::from(i32::from_be_bytes(nanos)) / 1e9)
}

/// `{job="a",instance="b"}`, for error messages.
fn render_labels(labels: &[(String, String)]) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}={value:?}"))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::text_write::write_family;
    use proptest::prelude::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    const GO_PUSHGATEWAY: &str = "/usr/bin/prometheus-pushgateway";

    /// A file written by the real Go Pushgateway, with the Unix seconds just before the
    /// first push and just after the last.
    struct Fixture {
        bytes: Vec<u8>,
        pushed_from: f64,
        pushed_until: f64,
    }

    /// Runs the Go Pushgateway once per test process. `None` (with a message) when it is
    /// not installed, except in CI, where `.ci/run` installs it and its absence fails.
    fn fixture() -> Option<&'static Fixture> {
        static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
        FIXTURE
            .get_or_init(|| {
                if !Path::new(GO_PUSHGATEWAY).exists() {
                    if std::env::var_os("CI").is_some() {
                        panic!(
                            "{GO_PUSHGATEWAY} is missing (apt-get install prometheus-pushgateway)"
                        );
                    }
                    eprintln!(
                        "skipping: {GO_PUSHGATEWAY} is not installed \
                         (apt-get install prometheus-pushgateway)"
                    );
                    return None;
                }
                Some(run_go_pushgateway())
            })
            .as_ref()
    }

    fn unix_now() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    }

    /// The child is killed (SIGKILL, by its own handle) if the test fails half-way.
    struct Running(Child);

    impl Drop for Running {
        fn drop(&mut self) {
            if let Ok(None) = self.0.try_wait() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }

    /// One HTTP/1.1 request; returns the status code and the body.
    fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Content-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < limit, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn scratch_dir() -> PathBuf {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "pushgateway-rs-upstream-file-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn run_go_pushgateway() -> Fixture {
        let dir = scratch_dir();
        let file = dir.join("f");
        let port = free_port();
        let child = Command::new(GO_PUSHGATEWAY)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--persistence.file={}", file.display()))
            .arg("--persistence.interval=1s")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .expect("start the Go Pushgateway");
        let mut running = Running(child);
        wait_until(
            "the Go Pushgateway to be ready",
            Duration::from_secs(20),
            || matches!(http(port, "GET", "/-/ready", ""), Ok((200, _))),
        );

        let pushed_from = unix_now();
        let push = |method: &str, path: &str, body: &str| {
            let (status, text) = http(port, method, path, body).unwrap();
            assert!(
                (200..300).contains(&status),
                "{method} {path}: {status} {text}"
            );
        };
        push(
            "PUT",
            "/metrics/job/batch/instance/db1",
            "# HELP jobs_processed_total Jobs processed.\n\
             # TYPE jobs_processed_total counter\n\
             jobs_processed_total{queue=\"high\"} 42\n\
             jobs_processed_total{queue=\"low\"} 7\n\
             # HELP queue_depth Current depth.\n\
             # TYPE queue_depth gauge\n\
             queue_depth -3.25\n",
        );
        push(
            "POST",
            "/metrics/job/batch/instance/db1/region/eu",
            "# TYPE request_seconds summary\n\
             request_seconds{quantile=\"0.5\"} 0.125\n\
             request_seconds{quantile=\"0.99\"} 0.875\n\
             request_seconds_sum 12.5\n\
             request_seconds_count 100\n\
             # HELP payload_bytes Payload sizes.\n\
             # TYPE payload_bytes histogram\n\
             payload_bytes_bucket{le=\"100\"} 3\n\
             payload_bytes_bucket{le=\"1000\"} 5\n\
             payload_bytes_bucket{le=\"+Inf\"} 6\n\
             payload_bytes_sum 2500\n\
             payload_bytes_count 6\n",
        );
        push(
            "PUT",
            "/metrics/job/empty/shard@base64/=",
            "untyped_thing 1e+06\n",
        );
        push("PUT", "/metrics/job/doomed", "doomed_gauge 1\n");
        push("DELETE", "/metrics/job/doomed", "");
        // The write queue is asynchronous: wait until the delete shows before stopping.
        wait_until("the delete to apply", Duration::from_secs(10), || {
            matches!(http(port, "GET", "/metrics", ""), Ok((200, body))
                if body.contains("untyped_thing") && !body.contains("doomed"))
        });
        let pushed_until = unix_now();

        // SIGTERM: the gateway persists once more on its way out.
        let pid = libc::pid_t::try_from(running.0.id()).unwrap();
        // SAFETY: kill(2) with the id of a child we started and have not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let mut exited = false;
        wait_until(
            "the Go Pushgateway to exit",
            Duration::from_secs(20),
            || {
                exited = matches!(running.0.try_wait(), Ok(Some(_)));
                exited
            },
        );
        let bytes = std::fs::read(&file).unwrap_or_else(|error| {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            panic!("no persistence file ({error}); gateway log:\n{log}")
        });
        let _ = std::fs::remove_dir_all(&dir);
        Fixture {
            bytes,
            pushed_from,
            pushed_until,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn render(family: &MetricFamily) -> String {
        let mut out = Vec::new();
        write_family(&mut out, family);
        String::from_utf8(out).unwrap()
    }

    /// The gauge value of a group's `push_time_seconds` or `push_failure_time_seconds`.
    fn gauge(group: &UpstreamGroup, name: &str) -> f64 {
        let family = group
            .families
            .iter()
            .find(|f| f.family.name == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(family.family.metrics.len(), 1);
        family.family.metrics[0].value.simple_value().unwrap()
    }

    #[test]
    fn reads_every_group_label_and_value_the_go_pushgateway_wrote() {
        let Some(fixture) = fixture() else { return };
        assert!(looks_like_upstream_file(&fixture.bytes));
        let groups = read_upstream_file(&fixture.bytes).unwrap();
        let keys: Vec<_> = groups.iter().map(|g| g.labels.clone()).collect();
        assert_eq!(
            keys,
            vec![
                labels(&[("instance", "db1"), ("job", "batch")]),
                labels(&[("instance", "db1"), ("job", "batch"), ("region", "eu")]),
                labels(&[("job", "empty"), ("shard", "")]),
            ]
        );

        let names = |group: &UpstreamGroup| -> Vec<String> {
            group
                .families
                .iter()
                .map(|f| f.family.name.clone())
                .collect()
        };
        assert_eq!(
            names(&groups[0]),
            [
                "jobs_processed_total",
                "push_failure_time_seconds",
                "push_time_seconds",
                "queue_depth"
            ]
        );
        assert_eq!(
            names(&groups[1]),
            [
                "payload_bytes",
                "push_failure_time_seconds",
                "push_time_seconds",
                "request_seconds"
            ]
        );
        assert_eq!(
            names(&groups[2]),
            [
                "push_failure_time_seconds",
                "push_time_seconds",
                "untyped_thing"
            ]
        );

        // Upstream adds the grouping labels to every series it stores.
        let pushed: Vec<String> = groups
            .iter()
            .flat_map(|g| g.families.iter())
            .filter(|f| !f.family.name.starts_with("push_"))
            .map(|f| render(&f.family))
            .collect();
        assert_eq!(
            pushed,
            [
                "# HELP jobs_processed_total Jobs processed.\n\
                 # TYPE jobs_processed_total counter\n\
                 jobs_processed_total{instance=\"db1\",job=\"batch\",queue=\"high\"} 42\n\
                 jobs_processed_total{instance=\"db1\",job=\"batch\",queue=\"low\"} 7\n",
                "# HELP queue_depth Current depth.\n\
                 # TYPE queue_depth gauge\n\
                 queue_depth{instance=\"db1\",job=\"batch\"} -3.25\n",
                "# HELP payload_bytes Payload sizes.\n\
                 # TYPE payload_bytes histogram\n\
                 payload_bytes_bucket{instance=\"db1\",job=\"batch\",region=\"eu\",le=\"100\"} 3\n\
                 payload_bytes_bucket{instance=\"db1\",job=\"batch\",region=\"eu\",le=\"1000\"} 5\n\
                 payload_bytes_bucket{instance=\"db1\",job=\"batch\",region=\"eu\",le=\"+Inf\"} 6\n\
                 payload_bytes_sum{instance=\"db1\",job=\"batch\",region=\"eu\"} 2500\n\
                 payload_bytes_count{instance=\"db1\",job=\"batch\",region=\"eu\"} 6\n",
                "# TYPE request_seconds summary\n\
                 request_seconds{instance=\"db1\",job=\"batch\",region=\"eu\",quantile=\"0.5\"} 0.125\n\
                 request_seconds{instance=\"db1\",job=\"batch\",region=\"eu\",quantile=\"0.99\"} 0.875\n\
                 request_seconds_sum{instance=\"db1\",job=\"batch\",region=\"eu\"} 12.5\n\
                 request_seconds_count{instance=\"db1\",job=\"batch\",region=\"eu\"} 100\n",
                "# TYPE untyped_thing untyped\n\
                 untyped_thing{instance=\"\",job=\"empty\",shard=\"\"} 1e+06\n",
            ]
        );

        for group in &groups {
            let push_time = gauge(group, "push_time_seconds");
            assert!(
                (fixture.pushed_from - 1.0..=fixture.pushed_until + 1.0).contains(&push_time),
                "{push_time} not within the test's pushes"
            );
            assert_eq!(gauge(group, "push_failure_time_seconds"), 0.0);
            for family in &group.families {
                // Every family of one push carries that push's time.
                assert!(
                    (family.pushed_at - push_time).abs() < 0.01,
                    "{}: pushed_at {} but push_time_seconds {push_time}",
                    family.family.name,
                    family.pushed_at
                );
            }
        }
    }

    #[test]
    fn every_truncation_of_a_real_file_is_an_error() {
        let Some(fixture) = fixture() else { return };
        for len in 0..fixture.bytes.len() {
            assert!(
                read_upstream_file(&fixture.bytes[..len]).is_err(),
                "a prefix of {len} bytes was accepted"
            );
        }
        assert!(!looks_like_upstream_file(&fixture.bytes[..4]));
    }

    #[test]
    fn a_prefix_ending_between_messages_names_the_end_of_the_file() {
        let Some(fixture) = fixture() else { return };
        // The first byte is the length of the first message (a map type definition).
        let first = usize::from(fixture.bytes[0]) + 1;
        assert_eq!(
            read_upstream_file(&fixture.bytes[..first]),
            Err(UpstreamFileError::Truncated { offset: first })
        );
    }

    #[test]
    fn rejects_what_is_not_gob() {
        assert!(!looks_like_upstream_file(b""));
        assert!(!looks_like_upstream_file(b"# TYPE x counter\nx 1\n"));
        assert_eq!(
            read_upstream_file(b""),
            Err(UpstreamFileError::Truncated { offset: 0 })
        );
        assert!(read_upstream_file(b"# TYPE x counter\nx 1\n").is_err());
    }

    /// Type 65 is `[]T65`: a slice of itself. A value nesting deeper than the limit must
    /// stop with an error rather than recurse until the stack overflows.
    #[test]
    fn a_self_referencing_type_cannot_nest_without_bound() {
        // wireType{SliceT: sliceType{CommonType{}, Elem: 65}}: field deltas 2, 2, 2.
        let definition = [0xff, 0x81, 0x02, 0x02, 0xff, 0x82, 0x00, 0x00];
        let mut bytes = vec![definition.len() as u8];
        bytes.extend_from_slice(&definition);
        // The value: id 65, the singleton zero, then 1000 nested slices of one element.
        let mut value = vec![0xff, 0x82, 0x00];
        value.extend(std::iter::repeat_n(0x01, 1000));
        value.push(0x00);
        bytes.extend_from_slice(&[0xfe, (value.len() >> 8) as u8, value.len() as u8]);
        bytes.extend_from_slice(&value);
        assert!(matches!(
            read_upstream_file(&bytes),
            Err(UpstreamFileError::TooDeep { .. })
        ));
    }

    #[test]
    fn a_huge_count_is_rejected_before_allocating() {
        // A map type of string to string (id 65), then a value claiming 2^62 entries.
        let definition = [0xff, 0x81, 0x04, 0x02, 0x0c, 0x01, 0x0c, 0x00, 0x00];
        let mut bytes = vec![definition.len() as u8];
        bytes.extend_from_slice(&definition);
        let value = [0xff, 0x82, 0x00, 0xf8, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x00];
        bytes.push(value.len() as u8);
        bytes.extend_from_slice(&value);
        let result = read_upstream_file(&bytes);
        assert!(
            matches!(result, Err(UpstreamFileError::Malformed { offset: 14, .. })),
            "{result:?}"
        );
    }

    #[test]
    fn go_time_binary_form() {
        // 2023-11-14T22:13:20.5Z is 1_700_000_000.5 Unix seconds.
        let mut time = vec![1];
        time.extend_from_slice(&(1_700_000_000 + GO_SECONDS_BEFORE_UNIX_EPOCH).to_be_bytes());
        time.extend_from_slice(&500_000_000i32.to_be_bytes());
        time.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(unix_seconds(&time), Ok(1_700_000_000.5));
        let mut version2 = time.clone();
        version2[0] = 2;
        version2.push(0);
        assert_eq!(unix_seconds(&version2), Ok(1_700_000_000.5));
        assert!(unix_seconds(&time[..14]).is_err());
        assert!(unix_seconds(&[]).is_err());
        assert!(unix_seconds(&version2[..15]).is_err());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = looks_like_upstream_file(&bytes);
            let _ = read_upstream_file(&bytes);
        }

        #[test]
        fn random_values_after_a_real_type_header_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            // The map[string]string definition from above, then arbitrary messages.
            let mut bytes = vec![9, 0xff, 0x81, 0x04, 0x02, 0x0c, 0x01, 0x0c, 0x00, 0x00];
            bytes.extend_from_slice(&tail);
            let _ = read_upstream_file(&bytes);
        }

        #[test]
        fn mutated_real_files_never_panic(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        ) {
            if let Some(fixture) = fixture() {
                let mut bytes = fixture.bytes.clone();
                for (position, byte) in flips {
                    let len = bytes.len();
                    bytes[position % len] = byte;
                }
                let _ = read_upstream_file(&bytes);
            }
        }
    }
}
