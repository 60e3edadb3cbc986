//! The rules for metric and label names.
//!
//! By default the gateway applies the legacy, pre-UTF-8 rules (the free functions
//! [`is_valid_metric_name`] and [`is_valid_label_name`]); with `--push.enable-utf8-names`
//! (upstream 1.11) any non-empty UTF-8 string is a valid name, see [`NameRules`]. Names that
//! break the legacy rules are written as quoted strings in the text formats
//! ([`needs_quoting`]), or escaped into legacy names for scrapers that ask for it
//! ([`escape_name`]).

use std::borrow::Cow;
use std::fmt::Write as _;

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_valid_metric_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.first() {
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' || *b == b':' => {}
        _ => return false,
    }
    bytes[1..]
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub fn is_valid_label_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.first() {
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' => {}
        _ => return false,
    }
    bytes[1..]
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// Which names the gateway accepts: upstream's `model.NameValidationScheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameRules {
    /// The legacy character rules, and no quoted names in the text format.
    #[default]
    Legacy,
    /// Any non-empty UTF-8 string (`--push.enable-utf8-names`).
    Utf8,
}

impl NameRules {
    pub fn is_valid_metric_name(&self, name: &str) -> bool {
        match self {
            NameRules::Legacy => is_valid_metric_name(name),
            // A `&str` is valid UTF-8 already.
            NameRules::Utf8 => !name.is_empty(),
        }
    }

    pub fn is_valid_label_name(&self, name: &str) -> bool {
        match self {
            NameRules::Legacy => is_valid_label_name(name),
            NameRules::Utf8 => !name.is_empty(),
        }
    }

    /// Whether a label name may be pushed (in a body or in the URL path): a valid name
    /// that, under the UTF-8 rules, does not start with `__`, which Prometheus reserves for
    /// its own labels (upstream's registry refuses such names). The legacy rules keep
    /// accepting `__` names in bodies, as the gateway always has; the URL path refuses them
    /// under both rules.
    pub fn is_valid_pushed_label_name(&self, name: &str) -> bool {
        self.is_valid_label_name(name) && !(*self == NameRules::Utf8 && name.starts_with("__"))
    }
}

/// Whether the text formats must write the metric name `name` as a quoted string (inside the
/// braces): false for legacy-valid metric names.
pub fn needs_quoting(name: &str) -> bool {
    !is_valid_metric_name(name)
}

/// Whether the text formats must write the label name `name` as a quoted string: false for
/// legacy-valid label names.
///
/// Upstream's writer applies the metric-name test to label names too and so writes a label
/// name with a colon bare, which no parser (its own included) reads back; quoting it is
/// what the format allows.
pub fn label_needs_quoting(name: &str) -> bool {
    !is_valid_label_name(name)
}

/// How names that break the legacy rules are served to a scraper that asks for it with the
/// `escaping=` parameter of its `Accept` header (upstream's `model.EscapingScheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapingScheme {
    /// `allow-utf-8`: names are served as they are.
    AllowUtf8,
    /// `underscores`: every invalid character becomes `_`.
    Underscores,
    /// `dots`: `.` becomes `_dot_`, `_` becomes `__`, other invalid characters `__`.
    Dots,
    /// `values`: `U__` and then the name with `_` doubled and every other invalid character
    /// written as `_<hex code point>_`; reversible with [`unescape_values`].
    Values,
}

impl EscapingScheme {
    /// The scheme for an `escaping=` parameter value.
    pub fn from_param(param: &str) -> Option<Self> {
        match param {
            "allow-utf-8" => Some(EscapingScheme::AllowUtf8),
            "underscores" => Some(EscapingScheme::Underscores),
            "dots" => Some(EscapingScheme::Dots),
            "values" => Some(EscapingScheme::Values),
            _ => None,
        }
    }

    /// The `escaping=` parameter value for this scheme.
    pub fn as_param(&self) -> &'static str {
        match self {
            EscapingScheme::AllowUtf8 => "allow-utf-8",
            EscapingScheme::Underscores => "underscores",
            EscapingScheme::Dots => "dots",
            EscapingScheme::Values => "values",
        }
    }
}

/// Whether `c` may stand at character position `index` of a legacy metric name.
fn is_legacy_char(c: char, index: usize) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (c.is_ascii_digit() && index > 0)
}

/// Whether `c` may stand at character position `index` of a legacy label name.
fn is_legacy_label_char(c: char, index: usize) -> bool {
    c != ':' && is_legacy_char(c, index)
}

/// Escapes a metric or label name into a legacy-valid one, like upstream's
/// `model.EscapeName`.
///
/// Names that are legacy-valid already (and the empty name) are returned unchanged by every
/// scheme. That is how names reach a scraper upstream: `EscapeMetricFamily` only calls
/// `EscapeName` for names that are not legacy-valid (`EscapeName` itself would double the
/// underscores of a valid name under [`EscapingScheme::Dots`]).
pub fn escape_name(name: &str, scheme: EscapingScheme) -> Cow<'_, str> {
    if name.is_empty() || is_valid_metric_name(name) || scheme == EscapingScheme::AllowUtf8 {
        return Cow::Borrowed(name);
    }
    Cow::Owned(escape_chars(name, scheme, is_legacy_char))
}

/// Like [`escape_name`], for a label name: the result is a legacy-valid *label* name, so a
/// colon is escaped too.
///
/// Upstream escapes label names with the metric-name function and so serves a label name
/// with a colon (`a:b`) unchanged, which is not a valid label name; here it becomes `a_b`
/// (`underscores`), `a__b` (`dots`) or `U__a_3a_b` (`values`).
pub fn escape_label_name(name: &str, scheme: EscapingScheme) -> Cow<'_, str> {
    if name.is_empty() || is_valid_label_name(name) || scheme == EscapingScheme::AllowUtf8 {
        return Cow::Borrowed(name);
    }
    Cow::Owned(escape_chars(name, scheme, is_legacy_label_char))
}

/// The escaping of a name that breaks the rules `is_legal` (a character and its position).
fn escape_chars(name: &str, scheme: EscapingScheme, is_legal: fn(char, usize) -> bool) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    match scheme {
        EscapingScheme::AllowUtf8 => out.push_str(name),
        EscapingScheme::Underscores => {
            for (i, c) in name.chars().enumerate() {
                out.push(if is_legal(c, i) { c } else { '_' });
            }
        }
        EscapingScheme::Dots => {
            for (i, c) in name.chars().enumerate() {
                match c {
                    '_' => out.push_str("__"),
                    '.' => out.push_str("_dot_"),
                    c if is_legal(c, i) => out.push(c),
                    _ => out.push_str("__"),
                }
            }
        }
        EscapingScheme::Values => {
            out.push_str("U__");
            for (i, c) in name.chars().enumerate() {
                match c {
                    '_' => out.push_str("__"),
                    c if is_legal(c, i) => out.push(c),
                    c => {
                        let _ = write!(out, "_{:x}_", u32::from(c));
                    }
                }
            }
        }
    }
    out
}

/// Reverses [`EscapingScheme::Values`] (upstream's `model.UnescapeName` for it): a name
/// starting with `U__` is decoded, any other is returned as it is. `None` if the encoding is
/// malformed: a lone `_`, a code that is not 1 to 6 hex digits closed by `_`, or a code
/// that is no Unicode scalar value.
///
/// Upstream returns a malformed name unchanged instead, and takes at most five hex digits,
/// which fails on the six its own escaping writes for code points from `U+100000`.
pub fn unescape_values(name: &str) -> Option<String> {
    let Some(escaped) = name.strip_prefix("U__") else {
        return Some(name.to_owned());
    };
    let mut out = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        let first = chars.next()?;
        if first == '_' {
            out.push('_');
            continue;
        }
        let mut code = first.to_digit(16)?;
        let mut digits = 1;
        loop {
            let c = chars.next()?;
            if c == '_' {
                break;
            }
            digits += 1;
            if digits > 6 {
                return None;
            }
            code = code * 16 + c.to_digit(16)?;
        }
        out.push(char::from_u32(code)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        for ok in ["a", "_a", ":a", "a:b_c9", "A"] {
            assert!(is_valid_metric_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a b", "é"] {
            assert!(!is_valid_metric_name(bad), "{bad}");
        }
    }

    #[test]
    fn label_names() {
        for ok in ["a", "_a", "__x", "a9_"] {
            assert!(is_valid_label_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a:b", "a-b", "ü"] {
            assert!(!is_valid_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn rules() {
        let legacy = NameRules::default();
        assert_eq!(legacy, NameRules::Legacy);
        assert!(legacy.is_valid_metric_name("a:b"));
        assert!(!legacy.is_valid_metric_name("a.b"));
        assert!(!legacy.is_valid_label_name("a:b"));
        assert!(legacy.is_valid_label_name("a_b"));
        let utf8 = NameRules::Utf8;
        for ok in [
            "a",
            "a.b",
            "ünïcode",
            "0starts",
            "a b",
            "\"",
            "\n",
            "😱",
            "__name__",
        ] {
            assert!(utf8.is_valid_metric_name(ok), "{ok:?}");
            assert!(utf8.is_valid_label_name(ok), "{ok:?}");
        }
        assert!(!utf8.is_valid_metric_name(""));
        assert!(!utf8.is_valid_label_name(""));
    }

    #[test]
    fn quoting() {
        for bare in ["a", "a:b", "_x", "http_requests_total"] {
            assert!(!needs_quoting(bare), "{bare}");
        }
        for quoted in ["", "a.b", "0starts", "ünïcode", "a b", "a-b"] {
            assert!(needs_quoting(quoted), "{quoted}");
            assert!(label_needs_quoting(quoted), "{quoted}");
        }
        for bare in ["a", "_x", "le", "a_b9"] {
            assert!(!label_needs_quoting(bare), "{bare}");
        }
        assert!(label_needs_quoting("a:b"));
        assert!(label_needs_quoting(":"));
    }

    #[test]
    fn escaping_params() {
        for scheme in [
            EscapingScheme::AllowUtf8,
            EscapingScheme::Underscores,
            EscapingScheme::Dots,
            EscapingScheme::Values,
        ] {
            assert_eq!(EscapingScheme::from_param(scheme.as_param()), Some(scheme));
        }
        assert_eq!(
            EscapingScheme::from_param("allow-utf-8"),
            Some(EscapingScheme::AllowUtf8)
        );
        for bad in ["", "allow-utf8", "Values", "none", "underscore"] {
            assert_eq!(EscapingScheme::from_param(bad), None, "{bad}");
        }
    }

    /// Input, then the expected `underscores`, `dots` and `values` escapings.
    const ESCAPINGS: &[(&str, &str, &str, &str)] = &[
        ("", "", "", ""),
        ("my.metric", "my_metric", "my_dot_metric", "U__my_2e_metric"),
        ("a_b.c", "a_b_c", "a__b_dot_c", "U__a__b_2e_c"),
        ("ünïcode", "_n_code", "__n__code", "U___fc_n_ef_code"),
        ("0starts", "_starts", "__starts", "U___30_starts"),
        (
            "mysystem.prod.west.cpu.load_total",
            "mysystem_prod_west_cpu_load_total",
            "mysystem_dot_prod_dot_west_dot_cpu_dot_load__total",
            "U__mysystem_2e_prod_2e_west_2e_cpu_2e_load__total",
        ),
        (
            "http.status:sum",
            "http_status:sum",
            "http_dot_status:sum",
            "U__http_2e_status:sum",
        ),
        (
            "label with 😱",
            "label_with__",
            "label__with____",
            "U__label_20_with_20__1f631_",
        ),
        ("花火", "__", "____", "U___82b1__706b_"),
        ("a\u{10ffff}", "a_", "a__", "U__a_10ffff_"),
        // Legacy-valid names stay as they are, underscores and all.
        (
            "no:escaping_required",
            "no:escaping_required",
            "no:escaping_required",
            "no:escaping_required",
        ),
        ("U__x", "U__x", "U__x", "U__x"),
    ];

    #[test]
    fn escape_name_schemes() {
        for &(name, underscores, dots, values) in ESCAPINGS {
            assert_eq!(escape_name(name, EscapingScheme::AllowUtf8), name);
            assert_eq!(
                escape_name(name, EscapingScheme::Underscores),
                underscores,
                "{name}"
            );
            assert_eq!(escape_name(name, EscapingScheme::Dots), dots, "{name}");
            assert_eq!(escape_name(name, EscapingScheme::Values), values, "{name}");
        }
        assert!(matches!(
            escape_name("a_b", EscapingScheme::Dots),
            Cow::Borrowed("a_b")
        ));
        assert!(matches!(
            escape_name("a.b", EscapingScheme::AllowUtf8),
            Cow::Borrowed("a.b")
        ));
    }

    #[test]
    fn label_names_escape_colons_too() {
        for (name, underscores, dots, values) in [
            ("a:b", "a_b", "a__b", "U__a_3a_b"),
            ("my.label", "my_label", "my_dot_label", "U__my_2e_label"),
            ("ok_name", "ok_name", "ok_name", "ok_name"),
        ] {
            assert_eq!(escape_label_name(name, EscapingScheme::AllowUtf8), name);
            assert_eq!(
                escape_label_name(name, EscapingScheme::Underscores),
                underscores
            );
            assert_eq!(escape_label_name(name, EscapingScheme::Dots), dots);
            assert_eq!(escape_label_name(name, EscapingScheme::Values), values);
            let escaped = escape_label_name(name, EscapingScheme::Values);
            assert_eq!(unescape_values(&escaped).as_deref(), Some(name));
        }
        for &(name, ..) in ESCAPINGS.iter().filter(|e| !e.0.is_empty()) {
            for scheme in [
                EscapingScheme::Underscores,
                EscapingScheme::Dots,
                EscapingScheme::Values,
            ] {
                let escaped = escape_label_name(name, scheme);
                assert!(
                    is_valid_label_name(&escaped),
                    "{name} {scheme:?}: {escaped}"
                );
            }
        }
    }

    #[test]
    fn pushed_label_names() {
        assert!(NameRules::Legacy.is_valid_pushed_label_name("__x"));
        assert!(!NameRules::Legacy.is_valid_pushed_label_name("a.b"));
        assert!(NameRules::Utf8.is_valid_pushed_label_name("a.b"));
        assert!(NameRules::Utf8.is_valid_pushed_label_name("_x"));
        assert!(!NameRules::Utf8.is_valid_pushed_label_name("__x"));
        assert!(!NameRules::Utf8.is_valid_pushed_label_name(""));
    }

    #[test]
    fn escaped_names_are_legacy_valid() {
        for &(name, ..) in ESCAPINGS.iter().filter(|e| !e.0.is_empty()) {
            for scheme in [
                EscapingScheme::Underscores,
                EscapingScheme::Dots,
                EscapingScheme::Values,
            ] {
                let escaped = escape_name(name, scheme);
                assert!(
                    is_valid_metric_name(&escaped),
                    "{name} {scheme:?}: {escaped}"
                );
            }
        }
    }

    #[test]
    fn unescape_values_decodes() {
        // A legacy-valid name that happens to start with `U__` is not escaped, and so does
        // not survive the round trip (upstream has the same ambiguity).
        for &(name, _, _, values) in ESCAPINGS.iter().filter(|e| !e.0.starts_with("U__")) {
            assert_eq!(unescape_values(values).as_deref(), Some(name), "{values}");
        }
        for (escaped, name) in [
            ("U__", ""),
            ("U__a", "a"),
            ("U____", "_"),
            ("U___2E_", "."),
            ("U___002e_", "."),
            ("U___0_", "\0"),
            ("plain", "plain"),
            ("U_x", "U_x"),
            ("u__x_2e_", "u__x_2e_"),
            ("U__ü", "ü"),
        ] {
            assert_eq!(unescape_values(escaped).as_deref(), Some(name), "{escaped}");
        }
    }

    #[test]
    fn unescape_values_rejects_malformed() {
        for bad in [
            "U___",
            "U__a_",
            "U__a___",
            "U___2e",
            "U___2g_",
            "U___x_",
            "U___0000002e_",
            "U___110000_",
            "U___d800_",
            "U___ü_",
        ] {
            assert_eq!(unescape_values(bad), None, "{bad}");
        }
    }

    #[test]
    fn values_escaping_round_trips() {
        let names = [
            "my.metric",
            "a_b.c",
            "ünïcode",
            "0starts",
            "_",
            "__",
            "U__x.y",
            "a\u{10ffff}b",
            "\0",
            "tab\there",
            "\"quoted\"",
            "ab_2e_",
            "x_",
        ];
        for name in names {
            let escaped = escape_name(name, EscapingScheme::Values);
            assert_eq!(
                unescape_values(&escaped).as_deref(),
                Some(name),
                "{escaped}"
            );
        }
        for code in (0..=0x10ffffu32).step_by(97).filter_map(char::from_u32) {
            let name = format!("a{code}_{code}");
            let escaped = escape_name(&name, EscapingScheme::Values);
            assert!(is_valid_metric_name(&escaped), "{escaped}");
            assert_eq!(unescape_values(&escaped), Some(name));
        }
    }
}
