//! Placeholder until the real parser lands.
use super::model::MetricFamily;
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("text format parsing error in line {line}: {message}")]
pub struct TextParseError {
    pub line: usize,
    pub message: String,
}
pub fn parse_text(body: &[u8]) -> Result<Vec<MetricFamily>, TextParseError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Vec::new());
    }
    Err(TextParseError {
        line: 1,
        message: "placeholder".into(),
    })
}
