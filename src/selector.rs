//! Prometheus series selectors applied to grouping keys: `{job="backup"}`,
//! `{job=~"etl-.*",instance!="a"}`, with `=`, `!=`, `=~` and `!~`, for listing and deleting
//! groups by matcher.
//!
//! Parsing is left to the `promql-parser` crate (GreptimeDB's PromQL parser), so a selector
//! means here exactly what it means to Prometheus: regular expressions are anchored, a label
//! a group does not have matches as the empty string, and a selector whose every matcher
//! matches the empty string (`{job=~".*"}`) is refused: matching everything must be spelled
//! out (`{job=~".+"}`). Several selectors are OR-ed, as several `match[]` are in Prometheus'
//! API. Nothing here knows about HTTP or the store.

use promql_parser::label::Matcher;
use promql_parser::parser::{self, Expr};

use crate::grouping::GroupingKey;

/// Why a selector was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SelectorError {
    #[error("at least one match[] selector is required, e.g. match[]={{job=\"backup\"}}; to select every group, spell it out: {{job=~\".+\"}}")]
    Missing,
    #[error("invalid selector {selector:?}: {reason}")]
    Invalid { selector: String, reason: String },
}

/// One selector: alternatives of matchers that must all hold (`or` inside the braces makes
/// several alternatives).
#[derive(Debug, Clone)]
struct Selector {
    alternatives: Vec<Vec<Matcher>>,
}

impl Selector {
    fn parse(text: &str) -> Result<Selector, SelectorError> {
        let invalid = |reason: String| SelectorError::Invalid {
            selector: text.to_string(),
            reason,
        };
        if text.trim().is_empty() {
            return Err(invalid("the selector is empty".into()));
        }
        let selector = match parser::parse(text).map_err(invalid)? {
            Expr::VectorSelector(selector) => selector,
            other => {
                return Err(invalid(format!(
                    "expected a series selector such as {{job=\"backup\"}}, not {}",
                    describe(&other)
                )))
            }
        };
        if selector.name.is_some() {
            return Err(invalid(
                "groups have no metric name; select them by grouping labels only".into(),
            ));
        }
        if selector.offset.is_some() || selector.at.is_some() {
            return Err(invalid("offset and @ do not apply to groups".into()));
        }
        let matchers = selector.matchers;
        let alternatives = if matchers.or_matchers.is_empty() {
            vec![matchers.matchers]
        } else {
            matchers.or_matchers
        };
        Ok(Selector { alternatives })
    }

    fn matches(&self, key: &GroupingKey) -> bool {
        self.alternatives.iter().any(|all| {
            all.iter()
                .all(|matcher| matcher.is_match(key.get(&matcher.name).unwrap_or("")))
        })
    }
}

fn describe(expr: &Expr) -> &'static str {
    match expr {
        Expr::Aggregate(_) => "an aggregation",
        Expr::Unary(_) | Expr::Binary(_) => "an expression",
        Expr::Paren(_) => "a parenthesised expression",
        Expr::Subquery(_) => "a subquery",
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => "a literal",
        Expr::MatrixSelector(_) => "a range selector",
        Expr::Call(_) => "a function call",
        _ => "something else",
    }
}

/// The selectors of one request (`match[]` given one or more times), OR-ed.
#[derive(Debug, Clone)]
pub struct GroupSelection {
    selectors: Vec<Selector>,
}

impl GroupSelection {
    /// Parses every selector; at least one is required.
    pub fn parse<'a>(
        selectors: impl IntoIterator<Item = &'a str>,
    ) -> Result<GroupSelection, SelectorError> {
        let selectors = selectors
            .into_iter()
            .map(Selector::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if selectors.is_empty() {
            return Err(SelectorError::Missing);
        }
        Ok(GroupSelection { selectors })
    }

    /// Whether any selector matches the group's labels.
    pub fn matches(&self, key: &GroupingKey) -> bool {
        self.selectors.iter().any(|selector| selector.matches(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::model::Label;

    fn key(pairs: &[(&str, &str)]) -> GroupingKey {
        GroupingKey::new(pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect())
    }

    fn selects(selectors: &[&str], pairs: &[(&str, &str)]) -> bool {
        GroupSelection::parse(selectors.iter().copied())
            .unwrap()
            .matches(&key(pairs))
    }

    #[test]
    fn each_operator_with_prometheus_meaning() {
        let etl = [("job", "etl-daily"), ("instance", "a")];
        assert!(selects(&[r#"{job="etl-daily"}"#], &etl));
        assert!(!selects(&[r#"{job="etl"}"#], &etl));
        assert!(selects(&[r#"{job!="backup",job=~".+"}"#], &etl));
        // Regular expressions are anchored.
        assert!(selects(&[r#"{job=~"etl-.*"}"#], &etl));
        assert!(!selects(&[r#"{job=~"etl"}"#], &etl));
        assert!(!selects(&[r#"{job=~"etl-.*",instance!="a"}"#], &etl));
        assert!(selects(&[r#"{job!~"backup|web",instance="a"}"#], &etl));
        // A label the group lacks matches as "".
        assert!(selects(&[r#"{job=~".+",region=""}"#], &etl));
        assert!(!selects(&[r#"{region="eu"}"#], &etl));
    }

    #[test]
    fn several_selectors_and_or_alternatives_are_or_ed() {
        let backup = [("job", "backup")];
        assert!(selects(&[r#"{job="web"}"#, r#"{job="backup"}"#], &backup));
        assert!(selects(&[r#"{job="web" or job="backup"}"#], &backup));
        assert!(!selects(&[r#"{job="web" or job="db"}"#], &backup));
    }

    #[test]
    fn bad_selectors_are_refused_with_the_reason() {
        let refused = |text: &str| GroupSelection::parse([text]).unwrap_err().to_string();
        assert!(refused("").contains("empty"));
        assert!(refused(r#"{job=~".*"}"#).contains("invalid selector"));
        // As in Prometheus: a selector every matcher of which matches "" selects too much.
        assert!(refused(r#"{job!="backup"}"#).contains("non-empty matcher"));
        assert!(refused("{job=").contains("invalid selector"));
        assert!(refused(r#"up{job="a"}"#).contains("no metric name"));
        assert!(refused(r#"sum({job="a"})"#).contains("aggregation"));
        assert!(refused(r#"{job="a"}[5m]"#).contains("range selector"));
        assert!(refused(r#"{job="a"} offset 5m"#).contains("offset"));
        assert_eq!(
            GroupSelection::parse(std::iter::empty()).unwrap_err(),
            SelectorError::Missing
        );
    }

    proptest::proptest! {
        /// Whatever the text, parsing returns without panicking.
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,64}") {
            let _ = GroupSelection::parse([text.as_str()]);
        }
    }
}
