//! Purges the fleet's routers send (`POST /purges` on the admin listener).
//!
//! Each router numbers the purges it takes (1, 2, 3, ...) and copies them to its peers; a
//! purge is named by the router it came from and its number. An edge records which of each
//! router's purges it has applied ([`Applied`], kept in the state file), so that a router can
//! send it exactly the ones it missed while it was down, and nothing twice.
//!
//! An edge of a fleet (`await_purges = true`) serves nothing from its store after a start until
//! a majority of the configured routers have each sent it every purge they hold that it had not
//! applied (a push marked `complete`). A purge a majority of routers recorded is held by at
//! least one router of any majority, so none is missed; until then `/status` says
//! `ready: false`, the routers send it no viewers, and a viewer who comes anyway is served from
//! the origin.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

pub use topology::purges::{Applied, Entry, Push};

/// Whether the edge has been brought up to date since it started.
#[derive(Debug)]
pub struct Sync {
    awaits: bool,
    heard_from: Mutex<BTreeSet<String>>,
    synced: AtomicBool,
}

impl Sync {
    /// `awaits`: the edge is one of a fleet whose routers keep a purge log.
    pub fn new(awaits: bool) -> Self {
        Self {
            awaits,
            heard_from: Mutex::new(BTreeSet::new()),
            synced: AtomicBool::new(!awaits),
        }
    }

    /// True when the store may serve: no routers to wait for, or a majority has reported in.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }

    /// Notes a complete push from `router` of a fleet of `routers` routers.
    pub fn complete_from(&self, router: &str, routers: usize) {
        if !self.awaits {
            return;
        }
        let mut heard = self.heard_from.lock().unwrap_or_else(|e| e.into_inner());
        heard.insert(router.to_owned());
        if heard.len() > routers / 2 && !self.synced.swap(true, Ordering::Relaxed) {
            tracing::info!(
                routers = heard.len(),
                "purges brought up to date by a majority of routers: serving from the store"
            );
        }
    }

    /// For `/status`: whether it waits, and whom it heard from.
    pub fn to_json(&self, applied: &BTreeMap<String, Applied>) -> serde_json::Value {
        let heard = self.heard_from.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::json!({
            "synced": self.synced(),
            "awaits_routers": self.awaits,
            "heard_from": *heard,
            "applied": applied,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_majority_of_complete_pushes_syncs() {
        let sync = Sync::new(true);
        assert!(!sync.synced());
        sync.complete_from("a", 3);
        sync.complete_from("a", 3);
        assert!(
            !sync.synced(),
            "one router twice is not a majority of three"
        );
        sync.complete_from("b", 3);
        assert!(sync.synced());
        assert!(Sync::new(false).synced());
    }
}
