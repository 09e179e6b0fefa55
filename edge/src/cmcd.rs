//! Common Media Client Data (CTA-5004): what a player says about itself with each request, in
//! the `CMCD` query parameter (percent-encoded) or in the `CMCD-Object`, `CMCD-Request`,
//! `CMCD-Session` and `CMCD-Status` headers. The edge reads the session id (`sid`, for the
//! access log) and the next object the player will ask for (`nor`, for prefetch).
//!
//! What a player sends is input, never an order: callers check a `nor` against what the edge
//! itself holds (see `prefetch`) before acting on it.

use http::HeaderMap;

/// The headers CMCD data may come in.
const HEADERS: [&str; 4] = ["cmcd-object", "cmcd-request", "cmcd-session", "cmcd-status"];

/// The longest CMCD text read, per source: a player's is a few hundred bytes.
const MAX_LEN: usize = 4096;

/// One request's CMCD data: its keys and their values as sent (strings unquoted).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cmcd {
    pairs: Vec<(String, String)>,
}

impl Cmcd {
    /// The CMCD data of a request with `query` and `headers` (empty when it sent none).
    pub fn of(query: Option<&str>, headers: &HeaderMap) -> Self {
        let mut pairs = Vec::new();
        if let Some(value) = query.and_then(|q| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| name.eq_ignore_ascii_case("CMCD"))
                .map(|(_, value)| value)
        }) && value.len() <= MAX_LEN * 3
        {
            let text = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
            parse(&text, &mut pairs);
        }
        for name in HEADERS {
            if let Some(text) = headers.get(name).and_then(|v| v.to_str().ok()) {
                parse(text, &mut pairs);
            }
        }
        Self { pairs }
    }

    /// The value of `key` (the first sent; `"true"` for a key sent alone, CMCD's booleans).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The session id, if it is of a sane length.
    pub fn session(&self) -> Option<&str> {
        self.get("sid").filter(|s| !s.is_empty() && s.len() <= 64)
    }

    /// The next object the player will ask for: a path relative to this request's (as CMCD
    /// says), percent-decoded.
    pub fn next_object(&self) -> Option<String> {
        let nor = self.get("nor").filter(|s| !s.is_empty())?;
        // CMCD 1 percent-encodes the value itself; CMCD 2 does not.
        if self.get("v").is_some_and(|v| v != "1") {
            return Some(nor.to_owned());
        }
        let decoded = percent_encoding::percent_decode_str(nor)
            .decode_utf8()
            .ok()?;
        Some(decoded.into_owned())
    }
}

/// Appends the pairs of one CMCD text (`key=value,key,key="string"`, or CMCD 2's inner lists,
/// `nor=("a.m4s" "b.m4s")`, of which the first item is kept) to `pairs`. A string may hold
/// commas and escaped quotes; parameters (`;r=0-99`) are passed over; what does not parse ends
/// the text.
fn parse(text: &str, pairs: &mut Vec<(String, String)>) {
    if text.len() > MAX_LEN {
        return;
    }
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let key_end = rest.find(['=', ',', ';']).unwrap_or(rest.len());
        let key = rest[..key_end].trim();
        rest = &rest[key_end..];
        let value = match rest.strip_prefix('=') {
            None => "true".to_owned(),
            Some(after) => {
                let after = after.trim_start();
                let parsed = match after.strip_prefix('(') {
                    Some(list) => inner_list(list),
                    None => item(after),
                };
                let Some((value, left)) = parsed else {
                    return;
                };
                rest = left;
                value
            }
        };
        let Some(left) = parameters(rest) else {
            return;
        };
        rest = left;
        // Structured-field keys: custom ones are reverse-domain names (`com.example-x`).
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.*".contains(&b))
        {
            return;
        }
        pairs.push((key.to_owned(), value));
        rest = rest.trim_start();
        match rest.strip_prefix(',') {
            Some(next) => rest = next.trim_start(),
            None if rest.is_empty() => {}
            None => return,
        }
    }
}

/// One value (a quoted string, or a token or number up to a delimiter) and what follows it.
fn item(s: &str) -> Option<(String, &str)> {
    if let Some(quoted) = s.strip_prefix('"') {
        let (value, used) = unquote(quoted)?;
        return Some((value, &quoted[used..]));
    }
    let end = s.find([',', ';', ' ', '(', ')']).unwrap_or(s.len());
    Some((s[..end].to_owned(), &s[end..]))
}

/// An inner list after its `(`: its first item (empty for `()`) and what follows the `)`.
fn inner_list(mut s: &str) -> Option<(String, &str)> {
    let mut first = None;
    loop {
        s = s.trim_start_matches(' ');
        if let Some(after) = s.strip_prefix(')') {
            return Some((first.unwrap_or_default(), after));
        }
        let (value, left) = item(s)?;
        if value.is_empty() && left.len() == s.len() {
            return None;
        }
        first.get_or_insert(value);
        s = parameters(left)?;
    }
}

/// Passes over `;name` and `;name=value` parameters; `None` when one does not parse.
fn parameters(mut s: &str) -> Option<&str> {
    while let Some(after) = s.strip_prefix(';') {
        let end = after.find(['=', ',', ';', ' ', ')']).unwrap_or(after.len());
        s = &after[end..];
        if let Some(value) = s.strip_prefix('=') {
            s = item(value)?.1;
        }
    }
    Some(s)
}

/// A quoted string's value (after its opening quote) and the bytes it took, closing quote
/// included; `None` when it is not closed.
fn unquote(s: &str) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, i + 1)),
            '\\' => value.push(chars.next()?.1),
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn reads_the_query_parameter_and_the_headers() {
        // As hls.js sends it in the query: percent-encoded, strings quoted.
        let q = "a=1&CMCD=bl%3D2000%2Cbr%3D3200%2Cnor%3D%22seg_00002.m4s%22%2Cot%3Dv%2Csid%3D%22abc%22%2Csu";
        let cmcd = Cmcd::of(Some(q), &HeaderMap::new());
        assert_eq!(cmcd.get("bl"), Some("2000"));
        assert_eq!(cmcd.get("ot"), Some("v"));
        assert_eq!(cmcd.get("su"), Some("true"));
        assert_eq!(cmcd.session(), Some("abc"));
        assert_eq!(cmcd.next_object().as_deref(), Some("seg_00002.m4s"));
        // As dash.js sends it in headers; a nor is itself percent-encoded.
        let cmcd = Cmcd::of(
            None,
            &headers(&[
                ("cmcd-request", "bl=4000,nor=\"..%2F720p%2Fseg%2010.m4s\""),
                ("cmcd-session", "cid=\"x,y\",sid=\"s-1\""),
            ]),
        );
        assert_eq!(cmcd.next_object().as_deref(), Some("../720p/seg 10.m4s"));
        assert_eq!(cmcd.get("cid"), Some("x,y"));
        assert_eq!(cmcd.session(), Some("s-1"));
        assert_eq!(
            Cmcd::of(Some("CMCD=br%3D300"), &HeaderMap::new()).session(),
            None
        );
    }

    #[test]
    fn reads_cmcd_2_lists_and_parameters() {
        // hls.js with `cmcd: { version: 2 }`: lists, parameters, values not percent-encoded.
        let text =
            "bl=(2000),br=(3200;x),nor=(\"seg%5.m4s\";r=\"0-99\" \"b.m4s\"),ot=v;p=1,sid=\"s\",v=2";
        let cmcd = Cmcd::of(None, &headers(&[("cmcd-request", text)]));
        assert_eq!(cmcd.get("bl"), Some("2000"));
        assert_eq!(cmcd.get("br"), Some("3200"));
        assert_eq!(cmcd.next_object().as_deref(), Some("seg%5.m4s"));
        assert_eq!(cmcd.get("ot"), Some("v"));
        assert_eq!(cmcd.session(), Some("s"));
        assert_eq!(cmcd.get("v"), Some("2"));
        let empty = Cmcd::of(None, &headers(&[("cmcd-request", "nor=(),v=2")]));
        assert_eq!(empty.next_object(), None);
    }

    #[test]
    fn what_does_not_parse_is_left_out_and_never_panics() {
        for text in [
            "nor=\"unclosed",
            "=1",
            "a b=1",
            "bl=1 x",
            "\"",
            ",,,",
            "nor=\"\\",
            "é=1",
        ] {
            // What comes before the bad part is kept; the bad part is not.
            let cmcd = Cmcd::of(None, &headers(&[("cmcd-request", &format!("bl=7,{text}"))]));
            // (A header that is not visible ASCII is not read at all.)
            let kept = text.is_ascii().then_some("7");
            assert_eq!(cmcd.get("bl"), kept, "{text}");
            assert_eq!(cmcd.next_object(), None, "{text}");
        }
        let cmcd = Cmcd::of(None, &headers(&[("cmcd-request", "bl=1,nor=\"a\\\"b\"")]));
        assert_eq!(cmcd.next_object().as_deref(), Some("a\"b"));
        for text in ["nor=(", "nor=(\"a\"", "nor=(a;r=\")", "nor=(()"] {
            let cmcd = Cmcd::of(None, &headers(&[("cmcd-request", text)]));
            assert_eq!(cmcd.next_object(), None, "{text}");
        }
        let cmcd = Cmcd::of(
            None,
            &headers(&[("cmcd-request", "nor=a;,com.example-x.y_z=1,sid=\"s\"")]),
        );
        assert_eq!(cmcd.next_object().as_deref(), Some("a"));
        assert_eq!(cmcd.get("com.example-x.y_z"), Some("1"));
        assert_eq!(cmcd.session(), Some("s"));
        let long = format!("nor=\"{}\"", "a".repeat(MAX_LEN));
        assert_eq!(
            Cmcd::of(None, &headers(&[("cmcd-request", &long)])).next_object(),
            None
        );
    }
}
