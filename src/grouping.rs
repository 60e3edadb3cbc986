//! The grouping key: which group a push, delete or query names, read from the URL path.
//!
//! A push path looks like `job/<job>{/<label>/<value>}` (after `/metrics/`), where `job` may
//! be written `job@base64` and any label `<label>@base64` to carry a URL-safe base64 value
//! (with any amount of `=` padding; a lone `=` is the empty value). The path arrives already
//! percent-decoded, as Go's router hands it to upstream, so `%2F` splits a segment and a
//! literal `+` stays a `+`.
//!
//! With `--push.enable-utf8-names` a label name may be written escaped in the `values`
//! scheme (`U__` and then the name, `__` for `_`, `_<hex>_` for any other code point:
//! `U__my_2e_label` is `my.label`), alone or before `@base64`; without the flag such a name
//! is taken literally, as before.

use std::fmt;
use std::sync::Arc;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

use crate::exposition::model::Label;
use crate::exposition::names::{unescape_values, NameRules};

/// The labels that identify a group, sorted by name; `job` is always present.
///
/// Keys order as their label lists do (by name, then value, pair after pair), but compare
/// as one byte string written when the key is built: the store looks keys up in ordered
/// maps of thousands of groups on every push, and one `memcmp` per comparison is much
/// cheaper than walking two label lists.
#[derive(Clone)]
pub struct GroupingKey(Arc<KeyData>);

struct KeyData {
    labels: Box<[Label]>,
    /// [`ordered_bytes`] of `labels`.
    ordered: Box<[u8]>,
}

/// The order key of `labels` ([`Label::write_order_key`] of each in turn).
fn ordered_bytes(labels: &[Label]) -> Box<[u8]> {
    let mut out = Vec::with_capacity(
        labels
            .iter()
            .map(|l| l.name.len() + l.value.len() + 2)
            .sum(),
    );
    for label in labels {
        label.write_order_key(&mut out);
    }
    out.into()
}

impl PartialEq for GroupingKey {
    fn eq(&self, other: &GroupingKey) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.ordered == other.0.ordered
    }
}

impl Eq for GroupingKey {}

impl std::hash::Hash for GroupingKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.ordered.hash(state);
    }
}

impl PartialOrd for GroupingKey {
    fn partial_cmp(&self, other: &GroupingKey) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for GroupingKey {
    fn cmp(&self, other: &GroupingKey) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return std::cmp::Ordering::Equal;
        }
        self.0.ordered.cmp(&other.0.ordered)
    }
}

impl GroupingKey {
    /// Builds a key from labels in any order; the last value of a repeated name wins.
    pub fn new(mut labels: Vec<Label>) -> GroupingKey {
        // Stable sort keeps input order among equal names so the dedup keeps the last one.
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        let mut deduped: Vec<Label> = Vec::with_capacity(labels.len());
        for label in labels {
            match deduped.last_mut() {
                Some(last) if last.name == label.name => *last = label,
                _ => deduped.push(label),
            }
        }
        let ordered = ordered_bytes(&deduped);
        GroupingKey(Arc::new(KeyData {
            labels: deduped.into(),
            ordered,
        }))
    }

    pub fn labels(&self) -> &[Label] {
        &self.0.labels
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        let labels = self.labels();
        labels
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| labels[i].value.as_str())
    }

    /// The label names of this key, which is the key's "shape".
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.labels().iter().map(|l| l.name.as_str())
    }
}

impl fmt::Debug for GroupingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.labels().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

impl fmt::Display for GroupingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Why a push path does not name a group.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GroupingError {
    #[error("job name is required")]
    EmptyJob,
    #[error("odd number of components in label string {0:?}")]
    OddComponents(String),
    #[error("improper label name {0:?}")]
    ImproperLabelName(String),
    #[error("invalid base64 encoding in job name {0:?}")]
    BadJobBase64(String),
    #[error("invalid base64 encoding for label {name}={value:?}")]
    BadLabelBase64 { name: String, value: String },
    #[error("{0} is not valid UTF-8 after base64 decoding")]
    NotUtf8(String),
}

/// URL-safe base64 that ignores padding and tolerates non-zero trailing bits, like Go's
/// `base64.RawURLEncoding` after upstream strips every trailing `=`.
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

fn decode_base64(encoded: &str) -> Option<Vec<u8>> {
    LENIENT_URL_SAFE.decode(encoded.trim_end_matches('=')).ok()
}

/// Parses the part of a push path after `/metrics/`, e.g. `job/backup/instance/db1`, with
/// the legacy name rules.
///
/// Returns `Ok(None)` when the path is not a push path at all (it does not start with
/// `job/` or `job@base64/`, or the job segment is missing), so the caller can answer 404.
pub fn parse_push_path(path: &str) -> Result<Option<GroupingKey>, GroupingError> {
    parse_push_path_with(path, NameRules::Legacy)
}

/// Like [`parse_push_path`], with the given name rules: [`NameRules::Utf8`] decodes `U__`
/// label names and accepts any label name not starting with `__`.
pub fn parse_push_path_with(
    path: &str,
    names: NameRules,
) -> Result<Option<GroupingKey>, GroupingError> {
    let (job_is_base64, rest) = if let Some(rest) = path.strip_prefix("job/") {
        (false, rest)
    } else if let Some(rest) = path.strip_prefix("job@base64/") {
        (true, rest)
    } else {
        return Ok(None);
    };
    let (job_segment, label_string) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, ""),
    };
    if job_segment.is_empty() {
        return Ok(None);
    }
    let job = if job_is_base64 {
        let bytes = decode_base64(job_segment)
            .ok_or_else(|| GroupingError::BadJobBase64(job_segment.into()))?;
        String::from_utf8(bytes).map_err(|_| GroupingError::NotUtf8("job name".into()))?
    } else {
        job_segment.to_string()
    };
    if job.is_empty() {
        return Err(GroupingError::EmptyJob);
    }
    let mut labels = split_labels(label_string, names)?;
    labels.push(Label::new("job", job));
    Ok(Some(GroupingKey::new(labels)))
}

/// Splits `/name/value/name@base64/value…` into labels.
fn split_labels(label_string: &str, names: NameRules) -> Result<Vec<Label>, GroupingError> {
    if label_string.len() <= 1 {
        return Ok(Vec::new());
    }
    let components: Vec<&str> = label_string.split('/').collect();
    // The string starts with '/', so a well-formed one has an odd number of parts.
    if components.len().is_multiple_of(2) {
        return Err(GroupingError::OddComponents(label_string.into()));
    }
    let mut labels = Vec::with_capacity(components.len() / 2);
    for pair in components[1..].chunks(2) {
        let (raw_name, raw_value) = (pair[0], pair[1]);
        let (name, value) = match raw_name.strip_suffix("@base64") {
            Some(name) => {
                let bytes =
                    decode_base64(raw_value).ok_or_else(|| GroupingError::BadLabelBase64 {
                        name: name.into(),
                        value: raw_value.into(),
                    })?;
                let value = String::from_utf8(bytes)
                    .map_err(|_| GroupingError::NotUtf8(format!("label {name}")))?;
                (name, value)
            }
            None => (raw_name, raw_value.to_string()),
        };
        let name = match names {
            NameRules::Legacy => Some(name.to_string()),
            NameRules::Utf8 => unescape_values(name),
        };
        let name = match name {
            Some(name) if names.is_valid_label_name(&name) && !name.starts_with("__") => name,
            // Named as written in the path, as upstream does.
            _ => {
                return Err(GroupingError::ImproperLabelName(
                    raw_name_of(raw_name).into(),
                ))
            }
        };
        labels.push(Label::new(name, value));
    }
    Ok(labels)
}

/// A label name segment without its `@base64` suffix.
fn raw_name_of(segment: &str) -> &str {
    segment.strip_suffix("@base64").unwrap_or(segment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(pairs: &[(&str, &str)]) -> GroupingKey {
        GroupingKey::new(pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect())
    }

    /// Label lists with few distinct bytes (0, 1 and 2 among them), so that shared starts,
    /// prefixes and the escaped bytes all come up often.
    fn label_list() -> impl Strategy<Value = Vec<Label>> {
        let text = prop::collection::vec(
            prop::sample::select(vec!['\0', '\u{1}', '\u{2}', 'a', 'b']),
            0..4,
        )
        .prop_map(|chars| chars.into_iter().collect::<String>());
        prop::collection::vec((text.clone(), text), 0..4).prop_map(|pairs| {
            let mut labels: Vec<Label> = pairs.into_iter().map(|(n, v)| Label::new(n, v)).collect();
            labels.sort_by(|a, b| a.name.cmp(&b.name));
            labels.dedup_by(|a, b| a.name == b.name);
            labels
        })
    }

    proptest! {
        #[test]
        fn keys_order_and_equal_as_their_label_lists(a in label_list(), b in label_list()) {
            let (key_a, key_b) = (GroupingKey::new(a.clone()), GroupingKey::new(b.clone()));
            prop_assert_eq!(key_a.cmp(&key_b), a.cmp(&b), "{:?} vs {:?}", a, b);
            prop_assert_eq!(key_a == key_b, a == b);
            prop_assert_eq!(key_a.labels(), &a[..]);
        }
    }

    #[test]
    fn plain_job_and_labels() {
        assert_eq!(
            parse_push_path("job/some_job/instance/some_instance").unwrap(),
            Some(key(&[("job", "some_job"), ("instance", "some_instance")]))
        );
        assert_eq!(
            parse_push_path("job/a").unwrap(),
            Some(key(&[("job", "a")]))
        );
        assert_eq!(
            parse_push_path("job/a/").unwrap(),
            Some(key(&[("job", "a")]))
        );
    }

    #[test]
    fn base64_with_any_padding() {
        // "a/b" is YS9i in base64.
        for encoded in ["YS9i", "YS9i=", "YS9i==", "YS9i==="] {
            assert_eq!(
                parse_push_path(&format!("job/j/path@base64/{encoded}")).unwrap(),
                Some(key(&[("job", "j"), ("path", "a/b")]))
            );
        }
        // "ab" is YWI (needs one '=' of padding when padded).
        assert_eq!(
            parse_push_path("job@base64/YWI/x@base64/YWI=").unwrap(),
            Some(key(&[("job", "ab"), ("x", "ab")]))
        );
        // URL-safe alphabet: "~~~" is "fn5+" in standard base64 and "fn5-" URL-safe.
        assert_eq!(
            parse_push_path("job/j/v@base64/fn5-").unwrap(),
            Some(key(&[("job", "j"), ("v", "~~~")]))
        );
        assert_eq!(
            parse_push_path("job/j/v@base64/=").unwrap(),
            Some(key(&[("job", "j"), ("v", "")]))
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse_push_path("job@base64/="),
            Err(GroupingError::EmptyJob)
        );
        assert!(matches!(
            parse_push_path("job/a/b"),
            Err(GroupingError::OddComponents(_))
        ));
        assert!(matches!(
            parse_push_path("job/a/b/c/"),
            Err(GroupingError::OddComponents(_))
        ));
        assert_eq!(
            parse_push_path("job/a/__x/y"),
            Err(GroupingError::ImproperLabelName("__x".into()))
        );
        assert_eq!(
            parse_push_path("job/a/1x/y"),
            Err(GroupingError::ImproperLabelName("1x".into()))
        );
        assert!(matches!(
            parse_push_path("job/a/l@base64/!!!"),
            Err(GroupingError::BadLabelBase64 { .. })
        ));
        assert!(matches!(
            parse_push_path("job@base64/!!"),
            Err(GroupingError::BadJobBase64(_))
        ));
    }

    #[test]
    fn utf8_label_names_are_unescaped_only_with_the_flag() {
        let utf8 = |path: &str| parse_push_path_with(path, NameRules::Utf8);
        assert_eq!(
            utf8("job/j/U__my_2e_label/v").unwrap(),
            Some(key(&[("job", "j"), ("my.label", "v")]))
        );
        assert_eq!(
            utf8("job/j/U___1f60a__2e_x@base64/YS9i").unwrap(),
            Some(key(&[("job", "j"), ("😊.x", "a/b")]))
        );
        assert_eq!(
            utf8("job/j/U__a__b/v/plain/w").unwrap(),
            Some(key(&[("job", "j"), ("a_b", "v"), ("plain", "w")]))
        );
        // Not escaped: taken as it is, any UTF-8 name works.
        assert_eq!(
            utf8("job/j/ünï.x/v").unwrap(),
            Some(key(&[("job", "j"), ("ünï.x", "v")]))
        );
        for bad in ["U___2e", "U____5f_x", "__x", "U______x"] {
            assert_eq!(
                utf8(&format!("job/j/{bad}/v")),
                Err(GroupingError::ImproperLabelName(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            utf8("job/j/U___2e@base64/YQ"),
            Err(GroupingError::ImproperLabelName("U___2e".into()))
        );
        // Without the flag the escaped name is a legacy name of its own, and a dotted name
        // is refused.
        assert_eq!(
            parse_push_path("job/j/U__my_2e_label/v").unwrap(),
            Some(key(&[("job", "j"), ("U__my_2e_label", "v")]))
        );
        assert_eq!(
            parse_push_path("job/j/my.label/v"),
            Err(GroupingError::ImproperLabelName("my.label".into()))
        );
    }

    #[test]
    fn not_a_push_path() {
        assert_eq!(parse_push_path("job/"), Ok(None));
        assert_eq!(parse_push_path("other/x"), Ok(None));
    }

    #[test]
    fn plus_stays_literal_and_last_label_wins() {
        assert_eq!(
            parse_push_path("job/a+b/x/1/x/2").unwrap(),
            Some(key(&[("job", "a+b"), ("x", "2")]))
        );
        // The job segment wins over a `job` label later in the path.
        assert_eq!(
            parse_push_path("job/a/job/b").unwrap(),
            Some(key(&[("job", "a")]))
        );
    }
}
