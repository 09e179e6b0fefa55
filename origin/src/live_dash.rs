//! Live DASH: a dynamic MPD for a simulated live channel, built from the title's VOD MPD.
//!
//! The channel is the one [`crate::live`] makes for HLS: live segment `k` repeats VOD segment
//! `k mod N`, covers `[k·d, (k+1)·d)` seconds after the Unix epoch and exists once that interval
//! is over. DASH plays it as one period on one continuous timeline from the epoch: segment `k`
//! is served as `dash_<k>.m4s`, the VOD segment with its decode times moved `k div N` loops
//! later ([`crate::mp4::shift`]). One period per loop with the VOD timestamps would have avoided
//! rewriting segments, but dash.js (4.7) appended the segments of a period added by an MPD
//! update at the previous period's times and stalled at the second loop point.
//!
//! Everything here is pure: the caller passes the time, so tests control it.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// The parts of a VOD MPD a live one repeats: its adaptation sets, each with its
/// `SegmentTemplate` cut out so that every period can write its own.
#[derive(Debug, Clone, PartialEq)]
pub struct VodMpd {
    sets: Vec<AdaptationSet>,
    /// The representation IDs, in document order.
    pub representations: Vec<String>,
    /// The duration of one segment, from the templates (all must agree).
    pub segment_duration: Duration,
}

#[derive(Debug, Clone, PartialEq)]
struct AdaptationSet {
    /// Source text from `<AdaptationSet` to the template, and from after it to `</AdaptationSet>`.
    head: String,
    tail: String,
    initialization: String,
    /// The live `media` template: the VOD one with its file name replaced.
    media: String,
}

/// Why a VOD MPD cannot be looped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MpdError {
    #[error("not XML: {0}")]
    Xml(String),
    #[error("no Period")]
    NoPeriod,
    #[error("no AdaptationSet")]
    NoAdaptationSet,
    #[error(
        "an AdaptationSet has no SegmentTemplate of its own with duration, timescale, initialization and media"
    )]
    Template,
    #[error("the adaptation sets' segment durations differ")]
    MixedDurations,
}

impl VodMpd {
    /// Reads the first period of a static MPD whose adaptation sets each carry one
    /// number-based `SegmentTemplate` (what `testdata/make-media.py` writes).
    pub fn parse(text: &str) -> Result<Self, MpdError> {
        let doc = roxmltree::Document::parse(text).map_err(|e| MpdError::Xml(e.to_string()))?;
        let period = doc
            .descendants()
            .find(|n| n.has_tag_name("Period"))
            .ok_or(MpdError::NoPeriod)?;
        let mut sets = Vec::new();
        let mut representations = Vec::new();
        let mut segment_duration = None;
        for set in period
            .children()
            .filter(|n| n.has_tag_name("AdaptationSet"))
        {
            let template = set
                .children()
                .find(|n| n.has_tag_name("SegmentTemplate"))
                .ok_or(MpdError::Template)?;
            let number = |name: &str| template.attribute(name).and_then(|v| v.parse::<u64>().ok());
            let (Some(duration), Some(timescale), Some(initialization), Some(media)) = (
                number("duration"),
                number("timescale").or(Some(1)),
                template.attribute("initialization"),
                template.attribute("media"),
            ) else {
                return Err(MpdError::Template);
            };
            if timescale == 0 || !media.contains("$Number") {
                return Err(MpdError::Template);
            }
            let this = Duration::from_nanos(duration * 1_000_000_000 / timescale);
            match segment_duration {
                None => segment_duration = Some(this),
                Some(d) if d != this => return Err(MpdError::MixedDurations),
                Some(_) => {}
            }
            let media = match media.rsplit_once('/') {
                Some((dir, _)) => format!("{dir}/dash_$Number$.m4s"),
                None => "dash_$Number$.m4s".to_owned(),
            };
            let (set_range, template_range) = (set.range(), template.range());
            sets.push(AdaptationSet {
                head: text[set_range.start..template_range.start].to_owned(),
                tail: text[template_range.end..set_range.end].to_owned(),
                initialization: initialization.to_owned(),
                media,
            });
            representations.extend(
                set.children()
                    .filter(|n| n.has_tag_name("Representation"))
                    .filter_map(|n| n.attribute("id"))
                    .map(str::to_owned),
            );
        }
        if sets.is_empty() {
            return Err(MpdError::NoAdaptationSet);
        }
        Ok(Self {
            sets,
            representations,
            segment_duration: segment_duration.ok_or(MpdError::Template)?,
        })
    }
}

/// Seconds as an MPD duration (`PT12.345S`).
fn seconds(d: Duration) -> String {
    format!("PT{}.{:03}S", d.as_secs(), d.subsec_millis())
}

/// Escapes text for an XML attribute value.
fn attr(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

/// The file name of live DASH segment `k` (relative to its representation's folder).
pub fn segment_name(k: u64) -> String {
    format!("dash_{k}.m4s")
}

/// The live DASH segment number a file name names, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("dash_")?.strip_suffix(".m4s")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The dynamic MPD once `completed` segments of `interval` exist, with a time-shift window of
/// `window` segments, made at `now`. `None` before the first segment.
pub fn mpd(
    vod: &VodMpd,
    completed: u64,
    window: usize,
    interval: Duration,
    now: SystemTime,
) -> Option<String> {
    if completed == 0 {
        return None;
    }
    let ms = interval.as_millis();
    let mut out = String::with_capacity(2048);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" \
         type=\"dynamic\" availabilityStartTime=\"1970-01-01T00:00:00Z\" publishTime=\"{}\" \
         minimumUpdatePeriod=\"{}\" timeShiftBufferDepth=\"{}\" suggestedPresentationDelay=\"{}\" \
         minBufferTime=\"{}\">\n  <Period id=\"0\" start=\"PT0S\">\n",
        humantime::format_rfc3339_seconds(now),
        seconds(interval),
        seconds(interval.saturating_mul(window as u32)),
        seconds(interval.saturating_mul(3)),
        seconds(interval.saturating_mul(2)),
    );
    for set in &vod.sets {
        let _ = writeln!(
            out,
            "    {}<SegmentTemplate timescale=\"1000\" duration=\"{ms}\" startNumber=\"0\" \
             initialization=\"{}\" media=\"{}\"/>{}",
            set.head,
            attr(&set.initialization),
            attr(&set.media),
            set.tail,
        );
    }
    out.push_str("  </Period>\n");
    // The player's clock must agree with the live edge: this is when the MPD was made (an edge
    // keeps it for under an interval). Without one, dash.js asks a public time server.
    let _ = writeln!(
        out,
        "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" value=\"{}\"/>",
        humantime::format_rfc3339_millis(now)
    );
    out.push_str("</MPD>\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT6.000S">
  <Period id="0" start="PT0.000S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4">
      <SegmentTemplate timescale="1000" duration="2000" startNumber="0" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/seg_$Number%05d$.m4s"/>
      <Representation id="720p" bandwidth="1"/>
    </AdaptationSet>
    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4">
      <SegmentTemplate timescale="48000" duration="96000" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/seg_$Number%05d$.m4s"/>
      <Representation id="audio" bandwidth="1"/>
    </AdaptationSet>
  </Period>
</MPD>
"#;

    #[test]
    fn reads_the_adaptation_sets_of_our_packager_output() {
        let vod = VodMpd::parse(VOD).expect("parses");
        assert_eq!(vod.representations, ["720p", "audio"]);
        assert_eq!(vod.segment_duration, Duration::from_secs(2));
        assert_eq!(vod.sets[0].media, "$RepresentationID$/dash_$Number$.m4s");
    }

    #[test]
    fn refuses_what_it_cannot_loop() {
        assert!(matches!(VodMpd::parse("<MPD"), Err(MpdError::Xml(_))));
        assert_eq!(VodMpd::parse("<MPD/>"), Err(MpdError::NoPeriod));
        assert_eq!(
            VodMpd::parse("<MPD><Period/></MPD>"),
            Err(MpdError::NoAdaptationSet)
        );
        assert_eq!(
            VodMpd::parse("<MPD><Period><AdaptationSet/></Period></MPD>"),
            Err(MpdError::Template)
        );
        let mixed = VOD.replace("duration=\"96000\"", "duration=\"48000\"");
        assert_eq!(VodMpd::parse(&mixed), Err(MpdError::MixedDurations));
    }

    fn live(completed: u64) -> roxmltree::Document<'static> {
        let vod = VodMpd::parse(VOD).expect("parses");
        let text = mpd(
            &vod,
            completed,
            4,
            Duration::from_secs(2),
            SystemTime::UNIX_EPOCH + Duration::from_secs(2 * completed),
        )
        .expect("an MPD");
        roxmltree::Document::parse(Box::leak(text.into_boxed_str())).expect("well-formed XML")
    }

    #[test]
    fn one_period_on_the_epoch_timeline() {
        let doc = live(7);
        let mpd = doc.root_element();
        assert_eq!(mpd.attribute("type"), Some("dynamic"));
        assert_eq!(
            mpd.attribute("availabilityStartTime"),
            Some("1970-01-01T00:00:00Z")
        );
        assert_eq!(mpd.attribute("timeShiftBufferDepth"), Some("PT8.000S"));
        assert_eq!(mpd.attribute("publishTime"), Some("1970-01-01T00:00:14Z"));
        let periods: Vec<_> = mpd
            .children()
            .filter(|n| n.has_tag_name("Period"))
            .collect();
        assert_eq!(periods.len(), 1);
        assert_eq!(periods[0].attribute("start"), Some("PT0S"));
        let templates: Vec<_> = periods[0]
            .descendants()
            .filter(|n| n.has_tag_name("SegmentTemplate"))
            .collect();
        assert_eq!(templates.len(), 2, "one per adaptation set");
        for t in templates {
            assert_eq!(t.attribute("startNumber"), Some("0"));
            assert_eq!(t.attribute("duration"), Some("2000"));
            assert_eq!(
                t.attribute("media"),
                Some("$RepresentationID$/dash_$Number$.m4s")
            );
        }
        // The adaptation sets keep what they said about themselves.
        assert!(
            periods[0]
                .descendants()
                .any(|n| n.attribute("id") == Some("720p"))
        );
        assert!(mpd.children().any(|n| n.has_tag_name("UTCTiming")
            && n.attribute("value") == Some("1970-01-01T00:00:14.000Z")));
    }

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(
            parse_segment_name(&segment_name(897_848_912)),
            Some(897_848_912)
        );
        assert_eq!(parse_segment_name("dash_.m4s"), None);
        assert_eq!(parse_segment_name("dash_1x.m4s"), None);
        assert_eq!(parse_segment_name("live_1.m4s"), None);
    }

    #[test]
    fn nothing_before_the_first_segment() {
        let vod = VodMpd::parse(VOD).expect("parses");
        assert!(mpd(&vod, 0, 4, Duration::from_secs(2), SystemTime::UNIX_EPOCH).is_none());
        assert!(
            live(1)
                .root_element()
                .children()
                .any(|n| n.has_tag_name("Period"))
        );
    }
}
