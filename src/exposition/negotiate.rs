//! Choosing formats from HTTP headers: the push body's `Content-Type` and the scrape's
//! `Accept` header (with q-values, as Prometheus sends it).

use super::names::EscapingScheme;

/// A format the scrape can be served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrapeFormat {
    /// Text exposition format 0.0.4.
    Text,
    /// Length-delimited protobuf `MetricFamily` messages.
    Protobuf,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl ScrapeFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            ScrapeFormat::Text => "text/plain; version=0.0.4; charset=utf-8",
            ScrapeFormat::Protobuf => {
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
            }
            ScrapeFormat::OpenMetrics => super::openmetrics::CONTENT_TYPE,
        }
    }
}

/// A push body's format, from its `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushFormat {
    Text,
    Protobuf,
    /// The protobuf media type with parameters we cannot read (another message or encoding).
    UnsupportedProtobuf(String),
}

const PROTOBUF_MEDIA_TYPE: &str = "application/vnd.google.protobuf";
const METRIC_FAMILY_PROTO: &str = "io.prometheus.client.MetricFamily";

/// A media type split into its lower-cased type and its parameters (names lower-cased,
/// values unquoted).
struct MediaType<'a> {
    essence: String,
    params: Vec<(String, &'a str)>,
}

fn parse_media_type(text: &str) -> MediaType<'_> {
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|part| {
            let (name, value) = part.split_once('=')?;
            Some((
                name.trim().to_ascii_lowercase(),
                value.trim().trim_matches('"'),
            ))
        })
        .collect();
    MediaType { essence, params }
}

impl MediaType<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// Upstream reads protobuf only for the delimited `MetricFamily` media type and treats every
/// other body as text (curl sends `application/x-www-form-urlencoded`).
pub fn push_format(content_type: Option<&str>) -> PushFormat {
    let Some(content_type) = content_type else {
        return PushFormat::Text;
    };
    // Only the protobuf media type changes anything: the common text pushes are told apart
    // without parsing their parameters.
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case(PROTOBUF_MEDIA_TYPE) {
        return PushFormat::Text;
    }
    let media = parse_media_type(content_type);
    if media.essence != PROTOBUF_MEDIA_TYPE {
        return PushFormat::Text;
    }
    if media.param("proto") == Some(METRIC_FAMILY_PROTO)
        && media.param("encoding") == Some("delimited")
    {
        PushFormat::Protobuf
    } else {
        PushFormat::UnsupportedProtobuf(content_type.to_string())
    }
}

/// What a scrape will be served as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub format: ScrapeFormat,
    /// The `escaping=` the chosen `Accept` entry asked for (an unknown value is ignored, as
    /// upstream does).
    pub escaping: Option<EscapingScheme>,
}

impl Negotiated {
    /// How names that break the legacy rules are served: as asked, else `underscores`, the
    /// default of upstream's encoder (a scraper that does not ask for UTF-8 gets legacy
    /// names).
    pub fn escaping_scheme(&self) -> EscapingScheme {
        self.escaping.unwrap_or(EscapingScheme::Underscores)
    }

    /// The response's `Content-Type`.
    ///
    /// With `utf8_names` (`--push.enable-utf8-names`) the text and protobuf formats always
    /// name the scheme applied (`; escaping=underscores` by default), as upstream 1.11 does;
    /// upstream offers no OpenMetrics, which names it only when asked. Without the flag every
    /// stored name is legacy-valid, escaping changes nothing, and the scheme is named only
    /// when the scraper asked for one (as the gateway always did).
    pub fn content_type(&self, utf8_names: bool) -> String {
        let named = match self.format {
            ScrapeFormat::Text | ScrapeFormat::Protobuf if utf8_names => {
                Some(self.escaping_scheme())
            }
            _ => self.escaping,
        };
        match named {
            Some(scheme) => format!(
                "{}; escaping={}",
                self.format.content_type(),
                scheme.as_param()
            ),
            None => self.format.content_type().to_string(),
        }
    }
}

/// Picks the scrape format from `Accept`: the highest q-value among the formats we serve,
/// the earlier one on a tie; text when nothing matches or there is no header.
pub fn scrape_format(accept: Option<&str>) -> ScrapeFormat {
    negotiate_scrape(accept).format
}

/// Like [`scrape_format`], also reporting the requested name escaping.
pub fn negotiate_scrape(accept: Option<&str>) -> Negotiated {
    let text = Negotiated {
        format: ScrapeFormat::Text,
        escaping: None,
    };
    let Some(accept) = accept else {
        return text;
    };
    let mut best: Option<(f32, Negotiated)> = None;
    for item in accept.split(',') {
        let media = parse_media_type(item);
        let quality = media
            .param("q")
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let format = match media.essence.as_str() {
            PROTOBUF_MEDIA_TYPE
                if media.param("proto") == Some(METRIC_FAMILY_PROTO)
                    && media.param("encoding") == Some("delimited") =>
            {
                ScrapeFormat::Protobuf
            }
            "text/plain" => ScrapeFormat::Text,
            "application/openmetrics-text"
                if matches!(media.param("version"), None | Some("1.0.0") | Some("0.0.1")) =>
            {
                ScrapeFormat::OpenMetrics
            }
            _ => continue,
        };
        let escaping = media.param("escaping").and_then(EscapingScheme::from_param);
        if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
            best = Some((quality, Negotiated { format, escaping }));
        }
    }
    best.map(|(_, negotiated)| negotiated).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_formats() {
        assert_eq!(push_format(None), PushFormat::Text);
        assert_eq!(
            push_format(Some("application/x-www-form-urlencoded")),
            PushFormat::Text
        );
        assert_eq!(
            push_format(Some("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited")),
            PushFormat::Protobuf
        );
        assert_eq!(
            push_format(Some("Application/Vnd.Google.Protobuf;Encoding=delimited; PROTO=\"io.prometheus.client.MetricFamily\"")),
            PushFormat::Protobuf
        );
        assert!(matches!(
            push_format(Some("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text")),
            PushFormat::UnsupportedProtobuf(_)
        ));
    }

    #[test]
    fn escaping_and_content_type() {
        let plain = negotiate_scrape(Some("text/plain;version=0.0.4"));
        assert_eq!(plain.escaping, None);
        assert_eq!(plain.escaping_scheme(), EscapingScheme::Underscores);
        assert_eq!(
            plain.content_type(false),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(
            plain.content_type(true),
            "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
        );
        let utf8 = negotiate_scrape(Some("text/plain;version=0.0.4;escaping=allow-utf-8"));
        assert_eq!(utf8.escaping, Some(EscapingScheme::AllowUtf8));
        assert_eq!(
            utf8.content_type(false),
            "text/plain; version=0.0.4; charset=utf-8; escaping=allow-utf-8"
        );
        let proto = negotiate_scrape(Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;escaping=dots"));
        assert_eq!(proto.escaping_scheme(), EscapingScheme::Dots);
        assert!(proto.content_type(true).ends_with("; escaping=dots"));
        // Unknown schemes are ignored.
        let unknown = negotiate_scrape(Some("text/plain;escaping=bogus"));
        assert_eq!(unknown.escaping, None);
        // OpenMetrics (which upstream does not serve) names a scheme only when asked.
        let om = negotiate_scrape(Some("application/openmetrics-text;version=1.0.0"));
        assert_eq!(
            om.content_type(true),
            ScrapeFormat::OpenMetrics.content_type()
        );
        let om = negotiate_scrape(Some(
            "application/openmetrics-text;version=1.0.0;escaping=values",
        ));
        assert!(om.content_type(true).ends_with("; escaping=values"));
    }

    #[test]
    fn scrape_formats() {
        assert_eq!(scrape_format(None), ScrapeFormat::Text);
        assert_eq!(scrape_format(Some("*/*")), ScrapeFormat::Text);
        let prometheus_with_native_histograms = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(
            scrape_format(Some(prometheus_with_native_histograms)),
            ScrapeFormat::Protobuf
        );
        assert_eq!(
            scrape_format(Some("text/plain;version=0.0.4;q=0.9,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5")),
            ScrapeFormat::Text
        );
        assert_eq!(
            scrape_format(Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0")),
            ScrapeFormat::Text
        );
    }
}
