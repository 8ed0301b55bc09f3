//! Content negotiation for scrapes: which format (`Accept`) and whether
//! to compress (`Accept-Encoding`). Header parsing, so it happens in the
//! front; the loop gets the outcome in `Event::Scrape`.

use crate::contract::ScrapeFormat;
use crate::wire::escape::Escaping;

/// The reference's `expfmt.Negotiate` (prometheus/common 0.67), without
/// OpenMetrics, which it never offers. Entries are tried by quality (ties
/// in header order, a concrete type before `*`): protobuf (delimited,
/// text or compact text) or text 0.0.4 (or text without a version) match;
/// text is the fallback.
///
/// The escaping scheme is the last valid `escaping=` seen on the way,
/// matching entry or not: Prometheus 3 puts it on its OpenMetrics and
/// text 1.0.0 entries, which 1.11 then honours in a text 0.0.4 answer.
/// Without one it is `underscores`.
pub(crate) fn negotiate(accept: Option<&str>) -> (ScrapeFormat, Escaping) {
    let mut escaping = Escaping::Underscores;
    for entry in parse_accept(accept.unwrap_or("")) {
        if let Some(e) = entry.param("escaping").and_then(Escaping::from_token) {
            escaping = e;
        }
        if entry.media == "application/vnd.google.protobuf"
            && entry.param("proto") == Some("io.prometheus.client.MetricFamily")
        {
            match entry.param("encoding") {
                Some("delimited") => return (ScrapeFormat::Protobuf, escaping),
                Some("text") => return (ScrapeFormat::ProtoText, escaping),
                Some("compact-text") => return (ScrapeFormat::ProtoCompact, escaping),
                _ => {}
            }
        }
        if entry.media == "text/plain" && matches!(entry.param("version"), None | Some("0.0.4")) {
            return (ScrapeFormat::Text, escaping);
        }
    }
    (ScrapeFormat::Text, escaping)
}

/// One entry of `Accept`, as goautoneg splits it. The parameters stay
/// unparsed until asked for: a hostile megabyte of entries costs one
/// small struct each and no allocation.
struct AcceptEntry<'a> {
    media: &'a str,
    q: f32,
    /// `k=v;k=v` after the media type.
    params: &'a str,
}

impl<'a> AcceptEntry<'a> {
    /// Parameter `name`; the last one wins, as in goautoneg's map.
    fn param(&self, name: &str) -> Option<&'a str> {
        params(self.params)
            .filter(|(k, _)| *k == name)
            .last()
            .map(|(_, v)| v)
    }

    fn is_wildcard_type(&self) -> bool {
        self.media.starts_with("*/") || self.media == "*"
    }
}

/// goautoneg's `ParseAccept`: entries split on `,`, parameters on `;`,
/// both case-sensitive and unquoted; an unparsable `q` is 0; sorted by
/// quality with a stable sort, a concrete type ahead of `*`.
fn parse_accept(header: &str) -> Vec<AcceptEntry<'_>> {
    let mut entries: Vec<AcceptEntry<'_>> = header
        .split(',')
        .filter_map(|raw| {
            let (media, params) = raw.split_once(';').unwrap_or((raw, ""));
            let media = media.trim();
            if !media.contains('/') && media != "*" {
                return None;
            }
            let mut entry = AcceptEntry {
                media,
                q: 1.0,
                params,
            };
            if let Some(q) = entry.param("q") {
                entry.q = q.parse().unwrap_or(0.0);
            }
            Some(entry)
        })
        .collect();
    entries.sort_by(|a, b| {
        b.q.total_cmp(&a.q)
            .then(a.is_wildcard_type().cmp(&b.is_wildcard_type()))
    });
    entries
}

/// `k=v` pairs of `;`-separated parameters, trimmed; pieces without
/// exactly one `=` are skipped, as goautoneg does.
fn params(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split(';').filter_map(|p| {
        let (k, v) = p.split_once('=')?;
        (!v.contains('=')).then(|| (k.trim(), v.trim()))
    })
}

/// promhttp's test: a `gzip` entry in Accept-Encoding.
pub(crate) fn gzip_accepted(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|ae| {
        ae.split(',').any(|part| {
            let p = part.trim();
            p == "gzip" || p.starts_with("gzip;")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Prometheus sends (scrape/scrape.go `acceptHeader`, checked
    /// against its `TestAcceptHeader`), and what 1.11 answers.
    const PROM3_UTF8: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    const PROM3_LEGACY: &str = "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=underscores;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    const PROM3_PROTO_FIRST: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    const PROM2: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    #[test]
    fn escaping_negotiated_as_1_11_does() {
        use Escaping::*;
        use ScrapeFormat::*;
        for (accept, want) in [
            (None, (Text, Underscores)),
            (Some(PROM2), (Text, Underscores)),
            (Some(PROM3_UTF8), (Text, AllowUtf8)),
            (Some(PROM3_LEGACY), (Text, Underscores)),
            (Some(PROM3_PROTO_FIRST), (Protobuf, Underscores)),
            (
                Some("text/plain;version=1.0.0;escaping=allow-utf-8"),
                (Text, AllowUtf8),
            ),
            (Some("text/plain;version=1.0.0"), (Text, Underscores)),
            (Some("text/plain;escaping=dots"), (Text, Dots)),
            (Some("text/plain;escaping=values"), (Text, Values)),
            (Some("text/plain;escaping=bogus"), (Text, Underscores)),
            (
                Some(
                    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;escaping=allow-utf-8",
                ),
                (Protobuf, AllowUtf8),
            ),
            // goautoneg: the last of a repeated parameter wins.
            (
                Some("text/plain;escaping=dots;escaping=values"),
                (Text, Values),
            ),
            // A concrete type goes ahead of */* even with a lower q.
            (
                Some("*/*;q=0.9,text/plain;escaping=dots;q=0.1"),
                (Text, Dots),
            ),
        ] {
            assert_eq!(negotiate(accept), want, "{accept:?}");
        }
        assert_eq!(
            Protobuf.content_type(Underscores),
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores"
        );
    }

    #[test]
    fn negotiation_like_the_reference() {
        let om = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(Some(om)).0, ScrapeFormat::Text);
        assert_eq!(negotiate(None).0, ScrapeFormat::Text);
        let proto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3";
        assert_eq!(negotiate(Some(proto)).0, ScrapeFormat::Protobuf);
        let text_first = "text/plain;q=0.9,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5";
        assert_eq!(negotiate(Some(text_first)).0, ScrapeFormat::Text);
        let mf = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily";
        assert_eq!(
            negotiate(Some(&format!("{mf};encoding=text"))).0,
            ScrapeFormat::ProtoText
        );
        let compact = format!("{mf};encoding=compact-text;q=0.8,text/plain;q=0.5");
        assert_eq!(negotiate(Some(&compact)).0, ScrapeFormat::ProtoCompact);
        let unknown = format!("{mf};encoding=json");
        assert_eq!(negotiate(Some(&unknown)).0, ScrapeFormat::Text);
        assert!(gzip_accepted(Some("deflate, gzip;q=1.0")));
        assert!(!gzip_accepted(Some("identity")));
        assert!(!gzip_accepted(None));
    }
}
