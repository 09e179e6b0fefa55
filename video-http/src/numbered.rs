//! Which media segments a DASH MPD names through `SegmentTemplate` with `$Number$`: for a
//! segment's path, its number and the path of the one after it. Prefetch reads an MPD the edge
//! holds with this, so it fetches only what the MPD names.
//!
//! Paths are relative to the MPD's folder, as the templates write them. Handled: templates on
//! an `AdaptationSet` or a `Representation`, `$RepresentationID$`, `$Bandwidth$`, `$Number$`
//! with or without a width (`$Number%05d$`), `$$`, `startNumber`, and for a static MPD the
//! segment count from the period's (or the presentation's) duration. Left out (nothing is
//! named): `SegmentTimeline`, `$Time$`, `BaseURL` (a segment's place then depends on it), and
//! templates that name absolute URLs.

/// One template made concrete for one representation: `{prefix}{number}{suffix}`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Numbered {
    prefix: String,
    /// The number's width, zero-padded (0: as it is).
    width: usize,
    suffix: String,
    first: u64,
    /// The last number (`None` in a dynamic MPD: the live edge moves).
    last: Option<u64>,
}

/// The numbered segments of one MPD.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Segments {
    numbered: Vec<Numbered>,
}

/// A segment an MPD names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// Its template (an index into the MPD's list).
    template: usize,
    pub number: u64,
}

impl Segments {
    /// The numbered segments `mpd` names; none if it does not parse.
    pub fn of(mpd: &str) -> Self {
        let Ok(doc) = roxmltree::Document::parse(mpd) else {
            return Self::default();
        };
        let root = doc.root_element();
        if !root.has_tag_name("MPD") || has_child(root, "BaseURL") {
            return Self::default();
        }
        let dynamic = root.attribute("type") == Some("dynamic");
        let presentation = root
            .attribute("mediaPresentationDuration")
            .and_then(seconds);
        let mut numbered = Vec::new();
        for period in children(root, "Period") {
            if has_child(period, "BaseURL") {
                continue;
            }
            let duration = period
                .attribute("duration")
                .and_then(seconds)
                .or(presentation);
            for set in children(period, "AdaptationSet") {
                if has_child(set, "BaseURL") {
                    continue;
                }
                let shared = children(set, "SegmentTemplate").next();
                for rep in children(set, "Representation") {
                    let Some(template) = children(rep, "SegmentTemplate").next().or(shared) else {
                        continue;
                    };
                    if has_child(rep, "BaseURL") || has_child(template, "SegmentTimeline") {
                        continue;
                    }
                    let last = match dynamic {
                        true => None,
                        false => match count(template, duration) {
                            Some(n) => Some(n),
                            None => continue,
                        },
                    };
                    if let Some(n) = concrete(template, rep, last) {
                        numbered.push(n);
                    }
                }
            }
        }
        Self { numbered }
    }

    /// Which segment `path` (relative to the MPD's folder) is, if the MPD names it.
    pub fn find(&self, path: &str) -> Option<Named> {
        self.numbered.iter().enumerate().find_map(|(i, n)| {
            let digits = path.strip_prefix(&n.prefix)?.strip_suffix(&n.suffix)?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let number: u64 = digits.parse().ok()?;
            // Written as the template writes it: padded to its width, no more.
            let canonical = format!("{number:0width$}", width = n.width);
            let named = canonical == digits
                && number >= n.first
                && n.last.is_none_or(|last| number <= last);
            named.then_some(Named {
                template: i,
                number,
            })
        })
    }

    /// The path of the segment after `named` in its representation, if the MPD names one.
    pub fn next(&self, named: &Named) -> Option<String> {
        let n = self.numbered.get(named.template)?;
        let number = named.number.checked_add(1)?;
        if n.last.is_some_and(|last| number > last) {
            return None;
        }
        Some(format!(
            "{}{number:0width$}{}",
            n.prefix,
            n.suffix,
            width = n.width
        ))
    }

    /// True when the MPD's segments have a last number (a static MPD): prefetch may run ahead
    /// of the player only there.
    pub fn bounded(&self, named: &Named) -> bool {
        self.numbered
            .get(named.template)
            .is_some_and(|n| n.last.is_some())
    }
}

fn children<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    name: &'static str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    node.children().filter(move |c| c.has_tag_name(name))
}

fn has_child(node: roxmltree::Node<'_, '_>, name: &'static str) -> bool {
    children(node, name).next().is_some()
}

/// The last segment number of a template over `duration` seconds.
fn count(template: roxmltree::Node<'_, '_>, duration: Option<f64>) -> Option<u64> {
    let timescale: f64 = template
        .attribute("timescale")
        .map_or(Some(1.0), |t| t.parse().ok())?;
    let each: f64 = template.attribute("duration")?.parse().ok()?;
    let first = start_number(template)?;
    let segments = (duration? * timescale / each).ceil();
    if !(1.0..1e9).contains(&segments) {
        return None;
    }
    first.checked_add(segments as u64 - 1)
}

fn start_number(template: roxmltree::Node<'_, '_>) -> Option<u64> {
    template
        .attribute("startNumber")
        .map_or(Some(1), |n| n.parse().ok())
}

/// A template's `media` for one representation, split at its `$Number$`.
fn concrete(
    template: roxmltree::Node<'_, '_>,
    rep: roxmltree::Node<'_, '_>,
    last: Option<u64>,
) -> Option<Numbered> {
    let media = template.attribute("media")?;
    if media.contains("://") || media.starts_with('/') {
        return None;
    }
    let mut parts = media.split('$');
    let mut out = String::new();
    let mut number: Option<(String, usize)> = None;
    // Text and identifiers alternate; `$$` is an empty identifier, a `$`.
    out.push_str(parts.next()?);
    while let Some(id) = parts.next() {
        let text = parts.next()?;
        match id {
            "" => out.push('$'),
            "RepresentationID" => out.push_str(plain(rep.attribute("id")?)?),
            "Bandwidth" => out.push_str(plain(rep.attribute("bandwidth")?)?),
            _ if id == "Number" || id.starts_with("Number%0") => {
                if number.is_some() {
                    return None;
                }
                let width = match id.strip_prefix("Number%0") {
                    None => 0,
                    Some(w) => w.strip_suffix('d')?.parse().ok().filter(|&w| w <= 20)?,
                };
                number = Some((std::mem::take(&mut out), width));
            }
            _ => return None,
        }
        out.push_str(text);
    }
    let (prefix, width) = number?;
    // A bare `$Number$` would name any all-digit file in the folder.
    if prefix.is_empty() && out.is_empty() {
        return None;
    }
    Some(Numbered {
        prefix,
        width,
        suffix: out,
        first: start_number(template)?,
        last,
    })
}

/// An identifier as it may go into a path: nothing that would make a separator, a dot
/// segment, an escape, a query or a fragment of it.
fn plain(id: &str) -> Option<&str> {
    let bad = id.is_empty()
        || id == "."
        || id.contains("..")
        || id.contains(['/', '\\', '%', '?', '#', ':']);
    (!bad).then_some(id)
}

/// An ISO 8601 duration of the form MPDs use (`PT1H2M3.5S`, `P1DT2H`), in seconds.
fn seconds(text: &str) -> Option<f64> {
    let rest = text.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut total = 0.0;
    if !days.is_empty() {
        total += days.strip_suffix('D')?.parse::<f64>().ok()? * 86_400.0;
    }
    let mut number = String::new();
    for c in time.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'H' | 'M' | 'S' => {
                let value: f64 = number.parse().ok()?;
                number.clear();
                total += value
                    * match c {
                        'H' => 3600.0,
                        'M' => 60.0,
                        _ => 1.0,
                    };
            }
            _ => return None,
        }
    }
    let named = !days.is_empty() || !time.is_empty();
    (named && number.is_empty() && total.is_finite()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MPD: &str = r#"<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT24.000S">
  <Period id="0">
    <AdaptationSet contentType="video">
      <SegmentTemplate timescale="1000" duration="2000" startNumber="0" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/seg_$Number%05d$.m4s"/>
      <Representation id="720p" bandwidth="699440"/>
      <Representation id="480p" bandwidth="403680"/>
    </AdaptationSet>
    <AdaptationSet contentType="audio">
      <Representation id="audio" bandwidth="66670">
        <SegmentTemplate duration="4" media="a-$Bandwidth$-$Number$.m4s"/>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>"#;

    #[test]
    fn names_the_numbered_segments_of_each_representation() {
        let s = Segments::of(MPD);
        let seg3 = s.find("720p/seg_00003.m4s").expect("named");
        assert_eq!(seg3.number, 3);
        assert!(s.bounded(&seg3));
        assert_eq!(s.next(&seg3).as_deref(), Some("720p/seg_00004.m4s"));
        // 24 s of 2 s segments from 0: the last is 11.
        let last = s.find("480p/seg_00011.m4s").expect("named");
        assert_eq!(s.next(&last), None);
        assert_eq!(s.find("480p/seg_00012.m4s"), None);
        // 24 s of 4 s segments from 1 (the default): 1..=6.
        let audio = s.find("a-66670-6.m4s").expect("named");
        assert_eq!(s.next(&audio), None);
        assert_eq!(
            s.next(&s.find("a-66670-1.m4s").unwrap()).as_deref(),
            Some("a-66670-2.m4s")
        );
        for not in [
            "720p/seg_3.m4s",
            "720p/seg_000003.m4s",
            "1080p/seg_00003.m4s",
            "720p/seg_0000x.m4s",
            "720p/init.mp4",
            "a-66670-0.m4s",
            "../720p/seg_00003.m4s",
        ] {
            assert_eq!(s.find(not), None, "{not}");
        }
    }

    #[test]
    fn live_mpds_have_no_last_number_and_what_is_not_handled_names_nothing() {
        let live = MPD.replace("type=\"static\"", "type=\"dynamic\"");
        let s = Segments::of(&live);
        let far = s.find("720p/seg_99999.m4s").expect("named");
        assert!(!s.bounded(&far));
        assert_eq!(s.next(&far).as_deref(), Some("720p/seg_100000.m4s"));
        for mpd in [
            MPD.replace(
                "<Period id=\"0\">",
                "<BaseURL>http://x/</BaseURL><Period id=\"0\">",
            ),
            MPD.replace("$Number%05d$", "$Time$"),
            MPD.replace(
                "media=\"$RepresentationID$",
                "media=\"http://x/$RepresentationID$",
            ),
            MPD.replace("$Number%05d$", "$Number%05d$-$Number$"),
            // Identifiers that would leave the folder or change the path's meaning.
            MPD.replace("id=\"720p\"", "id=\"../720p\""),
            MPD.replace("id=\"720p\"", "id=\"a/720p\""),
            MPD.replace("id=\"720p\"", "id=\"720p%2F\""),
            "<MPD".to_owned(),
            "not xml at all".to_owned(),
        ] {
            assert_eq!(Segments::of(&mpd).find("720p/seg_00003.m4s"), None, "{mpd}");
        }
        // The guards themselves: each of these would otherwise name what is looked up.
        let absolute = MPD.replace(
            "media=\"$RepresentationID$",
            "media=\"http://x/$RepresentationID$",
        );
        assert_eq!(
            Segments::of(&absolute).find("http://x/720p/seg_00003.m4s"),
            None
        );
        let twice = MPD.replace("$Number%05d$", "$Number%05d$-$Number$");
        assert_eq!(Segments::of(&twice).find("720p/seg_00003-3.m4s"), None);
        let climbing = MPD.replace("id=\"720p\"", "id=\"..\"");
        assert_eq!(Segments::of(&climbing).find("../seg_00003.m4s"), None);
        let bare = MPD.replace("$RepresentationID$/seg_$Number%05d$.m4s", "$Number$");
        assert_eq!(Segments::of(&bare).find("3"), None);
    }

    #[test]
    fn durations_read_as_mpds_write_them() {
        assert_eq!(seconds("PT24.000S"), Some(24.0));
        assert_eq!(seconds("PT1H2M3.5S"), Some(3723.5));
        assert_eq!(seconds("P1DT1S"), Some(86_401.0));
        for bad in ["24S", "PTxS", "PT1", "PT1Q", "PT", "P"] {
            assert_eq!(seconds(bad), None, "{bad}");
        }
    }
}
