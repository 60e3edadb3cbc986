//! The rules for metric and label names (the legacy, pre-UTF-8 rules that upstream applies
//! unless `--push.enable-utf8-names` is given).

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
}
