//! Content negotiation for scrapes: which format (`Accept`) and whether
//! to compress (`Accept-Encoding`). Header parsing, so it happens in the
//! front; the loop gets the outcome in `Event::Scrape`.

use crate::contract::ScrapeFormat;

/// The reference's `expfmt.Negotiate` without OpenMetrics: the first
/// acceptable entry by quality wins; delimited protobuf if asked for,
/// text 0.0.4 otherwise. OpenMetrics requests get text 0.0.4, exactly as
/// the reference answers them, so pushed counters keep their names.
pub(crate) fn negotiate(accept: Option<&str>) -> ScrapeFormat {
    let Some(accept) = accept else {
        return ScrapeFormat::Text;
    };
    let mut entries: Vec<(f64, &str)> = accept
        .split(',')
        .map(|e| {
            let q = e
                .split(';')
                .skip(1)
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(1.0);
            (q, e)
        })
        .collect();
    entries.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (q, e) in entries {
        if q <= 0.0 {
            continue;
        }
        if super::is_protobuf(Some(e)) {
            return ScrapeFormat::Protobuf;
        }
        let media = e.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("text/plain") {
            return ScrapeFormat::Text;
        }
    }
    ScrapeFormat::Text
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

    #[test]
    fn negotiation_like_the_reference() {
        let om = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(Some(om)), ScrapeFormat::Text);
        assert_eq!(negotiate(None), ScrapeFormat::Text);
        let proto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3";
        assert_eq!(negotiate(Some(proto)), ScrapeFormat::Protobuf);
        let text_first = "text/plain;q=0.9,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5";
        assert_eq!(negotiate(Some(text_first)), ScrapeFormat::Text);
        assert!(gzip_accepted(Some("deflate, gzip;q=1.0")));
        assert!(!gzip_accepted(Some("identity")));
        assert!(!gzip_accepted(None));
    }
}
