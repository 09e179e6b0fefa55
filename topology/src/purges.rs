//! What routers and edges say to each other about purges (the JSON of an edge's
//! `POST /purges` and of the `purges` part of its `/status`), shared so that both sides read
//! and write the same thing.
//!
//! Each router numbers the purges it takes (1, 2, 3, ...); a purge is named by the router it
//! came from (`origin`) and its number.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One purge: a URL, or a prefix of URLs when it ends with `*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The router that took it.
    pub origin: String,
    /// Its number in that router's log, from 1.
    pub seq: u64,
    /// `http://host/path`, or `http://host/prefix*`.
    pub url: String,
}

/// What a router sends.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Push {
    /// The sending router.
    pub router: String,
    /// How many routers the fleet has (a majority of them must have brought the edge up to
    /// date before it serves from its store).
    pub routers_configured: usize,
    /// True when these are all the purges the router holds that the edge had not applied.
    pub complete: bool,
    /// Routers whose log the sender holds only from a number on (older purges were dropped
    /// from it): when the edge has not applied everything before it, it cannot know what it
    /// missed, so it empties its store.
    #[serde(default)]
    pub reset: BTreeMap<String, u64>,
    pub entries: Vec<Entry>,
}

/// Which purges of one router's log an edge has applied: all up to `through`, and `also`
/// some after it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Applied {
    pub through: u64,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub also: BTreeSet<u64>,
}

impl Applied {
    pub fn has(&self, seq: u64) -> bool {
        seq <= self.through || self.also.contains(&seq)
    }

    pub fn mark(&mut self, seq: u64) {
        if self.has(seq) {
            return;
        }
        self.also.insert(seq);
        while self.also.remove(&(self.through + 1)) {
            self.through += 1;
        }
    }

    /// Counts everything before `first` as applied (the store was emptied).
    pub fn skip_to(&mut self, first: u64) {
        if self.through + 1 < first {
            self.through = first - 1;
            self.also.retain(|&s| s > self.through);
        }
        self.mark_contiguous();
    }

    fn mark_contiguous(&mut self) {
        while self.also.remove(&(self.through + 1)) {
            self.through += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_keeps_a_run_and_the_ones_after_a_gap() {
        let mut a = Applied::default();
        a.mark(1);
        a.mark(3);
        assert_eq!((a.through, a.also.len()), (1, 1));
        assert!(a.has(3) && !a.has(2));
        a.mark(2);
        assert_eq!((a.through, a.also.len()), (3, 0));
        a.mark(9);
        a.skip_to(10);
        assert_eq!((a.through, a.also.len()), (9, 0));
    }
}
