//! The views routers exchange (`GET /view`), signed and sequenced.
//!
//! A view is what one router's own probes see down, with the router's name, an epoch (when its
//! process started, in Unix milliseconds) and a sequence number that grows with each of its
//! probe rounds. It is sent with an HMAC-SHA256 over its JSON, keyed by the fleet's
//! `peer_secret`: a view that does not verify is dropped, and so is one whose (epoch, sequence)
//! is not newer than the last taken from that peer, so a frozen peer, a replay or a cache in
//! between can only age out, never count as fresh.

use ring::hmac;
use serde::{Deserialize, Serialize};

/// One router's own verdicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub router: String,
    /// When the router's process started (Unix ms): a restarted router's sequence starts over.
    pub epoch: u64,
    /// Its probe rounds so far.
    pub seq: u64,
    /// Names of the edges its own probes see down.
    pub down: Vec<String>,
}

/// A view and its MAC, as `/view` sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Signed {
    pub view: View,
    /// HMAC-SHA256 of the view's JSON, lowercase hex.
    pub mac: String,
}

/// Why a peer's view was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejected {
    #[error("its MAC does not verify: the peer has another peer_secret, or the view was altered")]
    BadMac,
    #[error("it names router {0:?}, not the peer it came from")]
    WrongRouter(String),
    #[error("it is not newer than the last one taken (a frozen peer or a replay)")]
    Stale,
}

/// The key of the fleet's `peer_secret`.
pub fn key(secret: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes())
}

fn bytes(view: &View) -> Vec<u8> {
    // Field order is the struct's: the same view is the same bytes on every router.
    serde_json::to_vec(view).unwrap_or_default()
}

/// `view`, signed with `key`.
pub fn sign(key: &hmac::Key, view: View) -> Signed {
    let mac = mac(key, &bytes(&view));
    Signed { view, mac }
}

/// The HMAC-SHA256 of `message`, lowercase hex (views and the purges routers copy each other).
pub fn mac(key: &hmac::Key, message: &[u8]) -> String {
    let tag = hmac::sign(key, message);
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `mac` (lowercase hex) is the HMAC of `message`.
pub fn mac_verifies(key: &hmac::Key, message: &[u8], mac: &str) -> bool {
    let bytes: Option<Vec<u8>> = (0..mac.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(mac.get(i..i + 2)?, 16).ok())
        .collect();
    bytes.is_some_and(|bytes| hmac::verify(key, message, &bytes).is_ok())
}

/// The view of `signed` if its MAC verifies, it names `expected` (the router the peer URL is
/// configured as, when known), and it is newer than `last` (the last taken from that peer).
pub fn verify(
    key: &hmac::Key,
    signed: Signed,
    expected: Option<&str>,
    last: Option<(u64, u64)>,
) -> Result<View, Rejected> {
    if !mac_verifies(key, &bytes(&signed.view), &signed.mac) {
        return Err(Rejected::BadMac);
    }
    if let Some(expected) = expected
        && signed.view.router != expected
    {
        return Err(Rejected::WrongRouter(signed.view.router));
    }
    if last.is_some_and(|last| (signed.view.epoch, signed.view.seq) <= last) {
        return Err(Rejected::Stale);
    }
    Ok(signed.view)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(seq: u64) -> View {
        View {
            router: "b".into(),
            epoch: 1000,
            seq,
            down: vec!["us-east-1".into()],
        }
    }

    #[test]
    fn a_signed_view_verifies_and_an_altered_or_stale_one_does_not() {
        let k = key("a shared secret of the fleet");
        let signed = sign(&k, view(5));
        assert_eq!(
            verify(&k, signed.clone(), Some("b"), Some((1000, 4))),
            Ok(view(5))
        );
        assert_eq!(
            verify(&k, signed.clone(), Some("b"), Some((1000, 5))),
            Err(Rejected::Stale),
            "the same view again is not fresh"
        );
        assert_eq!(
            verify(&k, signed.clone(), Some("c"), None),
            Err(Rejected::WrongRouter("b".into()))
        );
        let mut altered = signed.clone();
        altered.view.down.clear();
        assert_eq!(verify(&k, altered, None, None), Err(Rejected::BadMac));
        assert_eq!(
            verify(&key("another secret"), signed, None, None),
            Err(Rejected::BadMac)
        );
        // A restarted peer starts a new epoch, whose first rounds are newer.
        let restarted = sign(
            &k,
            View {
                epoch: 2000,
                ..view(1)
            },
        );
        assert!(verify(&k, restarted, None, Some((1000, 9))).is_ok());
    }
}
