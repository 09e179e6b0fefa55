//! Signed URLs: a token in front of the path, `/t/<token>/vod/title/...`, that authorises every
//! path under a prefix until an expiry, optionally for one client address.
//!
//! The token rides in the path, not the query, so that the relative URLs inside playlists and
//! MPDs (`seg_00001.m4s`, `../720p/index.m3u8` within the prefix) carry it to every segment
//! without rewriting a playlist: the player resolves them against `/t/<token>/vod/title/...`.
//! The edge takes the token off before anything else sees the path, so it is never part of
//! a cache key, an access log line or an origin request.
//!
//! ```text
//! token   = base64url(payload) "." base64url(mac)
//! payload = expires u64 (Unix seconds) | key id u8 | prefix length u16 | bound u8   (big-endian)
//! mac     = HMAC-SHA256(key, "meridian-url-1\n" prefix "\n" expires "\n" client-or-empty)
//! ```
//!
//! The prefix is the first `prefix length` bytes of the path after the token, taken after the
//! path is normalised (so `..` cannot climb out of it). Two keys may be valid at once
//! (rotation: sign with the new one while the old one's tokens expire).

use std::net::IpAddr;

use data_encoding::BASE64URL_NOPAD;
use ring::hmac;

/// One signing key, as configured.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub id: u8,
    /// The secret, base64url (at least 32 bytes once decoded).
    pub secret: String,
}

/// The `[signed_urls]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Paths that need a valid token (by prefix); a token on any other path is still checked.
    pub required_prefixes: Vec<String>,
    pub keys: Vec<KeyConfig>,
}

/// Why a request's token was refused (its 403 says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Malformed,
    UnknownKey,
    Expired,
    OutsidePrefix,
    BadSignature,
}

impl Refusal {
    pub fn text(self) -> &'static str {
        match self {
            Refusal::Missing => "this path needs a signed URL (/t/<token>/...)",
            Refusal::Malformed => "the URL's token is malformed",
            Refusal::UnknownKey => "the URL's token was signed with a key this edge does not have",
            Refusal::Expired => "the URL's token has expired",
            Refusal::OutsidePrefix => "the path is outside the prefix the token was signed for",
            Refusal::BadSignature => "the URL's token does not match its path, expiry or client",
        }
    }
}

/// Checks (and signs) tokens with the configured keys.
#[derive(Debug)]
pub struct SignedUrls {
    required: Vec<String>,
    keys: Vec<(u8, hmac::Key)>,
}

/// The key for `secret` (base64url); errors say what is wrong.
pub fn key_from_secret(secret: &str) -> Result<hmac::Key, String> {
    let bytes = BASE64URL_NOPAD
        .decode(secret.trim_end_matches('=').as_bytes())
        .map_err(|e| format!("not base64url: {e}"))?;
    if bytes.len() < 32 {
        return Err(format!("{} bytes; a secret needs at least 32", bytes.len()));
    }
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
}

impl SignedUrls {
    /// `None` when nothing is configured (no keys, nothing required).
    pub fn new(config: &Config) -> Result<Option<Self>, String> {
        if config.keys.is_empty() && config.required_prefixes.is_empty() {
            return Ok(None);
        }
        if config.keys.is_empty() {
            return Err("required_prefixes needs at least one key".into());
        }
        let mut keys = Vec::new();
        for key in &config.keys {
            if keys.iter().any(|(id, _)| *id == key.id) {
                return Err(format!("key id {} appears twice", key.id));
            }
            let k = key_from_secret(&key.secret).map_err(|e| format!("key {}: {e}", key.id))?;
            keys.push((key.id, k));
        }
        Ok(Some(Self {
            required: config.required_prefixes.clone(),
            keys,
        }))
    }

    /// The path to serve for `path` (its token taken off, `normalize` applied to the rest),
    /// or why not. A path without a token passes unless it needs one.
    pub fn check(
        &self,
        path: &str,
        client: IpAddr,
        now: u64,
        normalize: impl Fn(&str) -> String,
    ) -> Result<Checked, Refusal> {
        let Some(after) = path.strip_prefix("/t/") else {
            let path = normalize(path);
            return if self.required.iter().any(|p| path.starts_with(p.as_str())) {
                Err(Refusal::Missing)
            } else {
                Ok(Checked { path, opened: None })
            };
        };
        let (token, rest) = after.split_at(after.find('/').ok_or(Refusal::Malformed)?);
        let rest = normalize(rest);
        let (payload, mac) = token.split_once('.').ok_or(Refusal::Malformed)?;
        let payload = BASE64URL_NOPAD
            .decode(payload.as_bytes())
            .map_err(|_| Refusal::Malformed)?;
        let mac = BASE64URL_NOPAD
            .decode(mac.as_bytes())
            .map_err(|_| Refusal::Malformed)?;
        let [e0, e1, e2, e3, e4, e5, e6, e7, kid, l0, l1, bound] = payload[..] else {
            return Err(Refusal::Malformed);
        };
        let expires = u64::from_be_bytes([e0, e1, e2, e3, e4, e5, e6, e7]);
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let key = self
            .keys
            .iter()
            .find(|(id, _)| *id == kid)
            .map(|(_, k)| k)
            .ok_or(Refusal::UnknownKey)?;
        if expires < now {
            return Err(Refusal::Expired);
        }
        let prefix = rest.get(..len).ok_or(Refusal::OutsidePrefix)?;
        let client = (bound == 1).then_some(client);
        let message = message(prefix, expires, client);
        hmac::verify(key, message.as_bytes(), &mac).map_err(|_| Refusal::BadSignature)?;
        let opened = Opened {
            token: format!("/t/{token}"),
            prefix: prefix.to_owned(),
        };
        Ok(Checked {
            path: rest,
            opened: Some(opened),
        })
    }
}

/// A request path that passed [`SignedUrls::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The path without its token, normalised: what keys, logs and the origin see.
    pub path: String,
    /// What its token opened, when it had one.
    pub opened: Option<Opened>,
}

/// A valid token and the prefix it opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// `/t/<token>`, as the viewer sent it: put back in front of paths under `prefix` (drain
    /// redirects, origin URLs a manifest names absolutely).
    pub token: String,
    pub prefix: String,
}

fn message(prefix: &str, expires: u64, client: Option<IpAddr>) -> String {
    let client = client.map(|c| c.to_string()).unwrap_or_default();
    format!("meridian-url-1\n{prefix}\n{expires}\n{client}")
}

/// A token for every path under `prefix` until `expires` (Unix seconds), for `client` only if
/// given: what `meridian-sign` prints, put in front of the prefix as `/t/<token><prefix>`.
pub fn sign(
    key: &hmac::Key,
    key_id: u8,
    prefix: &str,
    expires: u64,
    client: Option<IpAddr>,
) -> String {
    let mut payload = Vec::with_capacity(12);
    payload.extend_from_slice(&expires.to_be_bytes());
    payload.push(key_id);
    payload.extend_from_slice(&(prefix.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    payload.push(u8::from(client.is_some()));
    let mac = hmac::sign(key, message(prefix, expires, client).as_bytes());
    format!(
        "{}.{}",
        BASE64URL_NOPAD.encode(&payload),
        BASE64URL_NOPAD.encode(mac.as_ref())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";

    fn urls(required: &[&str]) -> SignedUrls {
        SignedUrls::new(&Config {
            required_prefixes: required.iter().map(|s| s.to_string()).collect(),
            keys: vec![KeyConfig {
                id: 1,
                secret: SECRET.into(),
            }],
        })
        .unwrap()
        .unwrap()
    }

    fn normal(p: &str) -> String {
        crate::key::normalize_path(p).unwrap_or_else(|| p.to_owned())
    }

    #[test]
    fn a_token_opens_its_prefix_until_it_expires_and_nothing_else() {
        let key = key_from_secret(SECRET).unwrap();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let token = sign(&key, 1, "/vod/a/", 1000, None);
        let urls = urls(&["/vod/"]);
        let check = |path: &str, now| urls.check(path, client, now, normal).map(|c| c.path);
        assert_eq!(
            check(&format!("/t/{token}/vod/a/seg_1.m4s"), 999),
            Ok("/vod/a/seg_1.m4s".into())
        );
        assert_eq!(
            check(&format!("/t/{token}/vod/a/seg_1.m4s"), 1001),
            Err(Refusal::Expired)
        );
        assert_eq!(
            check(&format!("/t/{token}/vod/b/seg_1.m4s"), 999),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            check(&format!("/t/{token}/vod/a/../b/seg_1.m4s"), 999),
            Err(Refusal::BadSignature),
            "normalised before the prefix is checked"
        );
        assert_eq!(check("/vod/a/seg_1.m4s", 999), Err(Refusal::Missing));
        assert_eq!(check("/other/x", 999), Ok("/other/x".into()));
        assert_eq!(check("/t/garbage/vod/a/x", 999), Err(Refusal::Malformed));
        let other_key = sign(&key, 9, "/vod/a/", 1000, None);
        assert_eq!(
            check(&format!("/t/{other_key}/vod/a/x"), 999),
            Err(Refusal::UnknownKey)
        );
        let bound = sign(&key, 1, "/vod/a/", 1000, Some(client));
        assert!(check(&format!("/t/{bound}/vod/a/x"), 999).is_ok());
        assert_eq!(
            urls.check(&format!("/t/{token}/vod/a/x"), client, 999, normal)
                .map(|c| c.opened),
            Ok(Some(Opened {
                token: format!("/t/{token}"),
                prefix: "/vod/a/".into()
            }))
        );
        let elsewhere: IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(
            urls.check(&format!("/t/{bound}/vod/a/x"), elsewhere, 999, normal),
            Err(Refusal::BadSignature)
        );
    }
}
