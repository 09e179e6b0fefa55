//! The purges this router took and those its peers copied to it, numbered per router and kept
//! in a file of JSON lines, so that an edge that missed some (it was down, or a push failed)
//! gets exactly those later, from any router that holds them.
//!
//! Each line is `{"purge": {"origin", "seq", "url"}}` or, once a router's log grew past
//! `purge_log_keep`, `{"dropped": {"origin", "through"}}`: purges up to `through` are gone, and
//! an edge that had not applied them all must empty its store. The file is written before a
//! purge is acknowledged (synced), and compacted when the router starts.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

pub use topology::purges::{Applied, Entry};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    /// The log's first line: a random id drawn when it was started. The purges this router
    /// takes are numbered under `<name>@<id>`, so that a router whose log was lost (a new
    /// instance) never reuses a number an edge has already applied.
    Started {
        id: String,
    },
    Purge(Entry),
    Dropped {
        origin: String,
        through: u64,
    },
}

/// What an edge is missing, from this router's log.
#[derive(Debug, Default, PartialEq)]
pub struct Missing {
    pub entries: Vec<Entry>,
    /// Routers whose purges this log holds only after a number the edge had not applied all
    /// of: the first purge still held.
    pub reset: BTreeMap<String, u64>,
    /// True when `entries` is all of it (not cut at the most one push carries).
    pub complete: bool,
}

/// The log could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("purge log {}: {problem}", path.display())]
pub struct LogError {
    pub path: PathBuf,
    pub problem: String,
}

#[derive(Debug, Default)]
struct Logs {
    started: Option<String>,
    by_origin: BTreeMap<String, BTreeMap<u64, String>>,
    dropped: BTreeMap<String, u64>,
}

/// The log.
#[derive(Debug)]
pub struct PurgeLog {
    me: String,
    keep: usize,
    path: PathBuf,
    state: Mutex<(Logs, std::fs::File)>,
}

impl PurgeLog {
    /// Opens (or creates) the log of router `me` at `path`, keeping `keep` purges per router's
    /// log.
    pub fn open(path: &Path, me: &str, keep: usize) -> Result<Self, LogError> {
        let fail = |problem: String| LogError {
            path: path.to_owned(),
            problem,
        };
        let mut logs = Logs::default();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(fail(format!("cannot read it: {e}"))),
        };
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Line>(line) {
                Ok(Line::Started { id }) => logs.started = Some(id),
                Ok(Line::Purge(entry)) => logs.insert(entry),
                Ok(Line::Dropped { origin, through }) => {
                    let mark = logs.dropped.entry(origin).or_default();
                    *mark = (*mark).max(through);
                }
                // A crash while appending cuts the last line short: that purge was never
                // acknowledged, so it is dropped.
                Err(_) if n + 1 == lines.len() && !text.ends_with('\n') => {
                    tracing::warn!(file = %path.display(), "purge log: a cut-off last line dropped");
                }
                Err(e) => {
                    return Err(fail(format!(
                        "line {}: not a purge log line ({e}); fix or remove the line",
                        n + 1
                    )));
                }
            }
        }
        logs.trim(keep);
        let started = match &logs.started {
            Some(id) => id.clone(),
            None => {
                let mut bytes = [0u8; 6];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
                    .map_err(|_| fail("no random numbers to name a new log with".into()))?;
                let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                logs.started = Some(id.clone());
                id
            }
        };
        // Written anew, whole: the file holds what is kept and no more.
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".new");
        let temporary = PathBuf::from(temporary);
        let write = || -> std::io::Result<std::fs::File> {
            let mut file = std::fs::File::create(&temporary)?;
            for line in logs.lines() {
                file.write_all(&line)?;
            }
            file.sync_all()?;
            std::fs::rename(&temporary, path)?;
            std::fs::OpenOptions::new().append(true).open(path)
        };
        let file = write().map_err(|e| fail(format!("cannot write it: {e}")))?;
        Ok(Self {
            me: format!("{me}@{started}"),
            keep,
            path: path.to_owned(),
            state: Mutex::new((logs, file)),
        })
    }

    /// Numbers and records a new purge of `url` taken by this router.
    pub fn take(&self, url: &str) -> Result<Entry, LogError> {
        let mut state = self.lock();
        let seq = state.0.last(&self.me) + 1;
        let entry = Entry {
            origin: self.me.clone(),
            seq,
            url: url.to_owned(),
        };
        self.append(&mut state, entry.clone())?;
        Ok(entry)
    }

    /// Records a purge a peer copied to this router; false if it was already here.
    pub fn record(&self, entry: Entry) -> Result<bool, LogError> {
        let mut state = self.lock();
        let known = state
            .0
            .by_origin
            .get(&entry.origin)
            .is_some_and(|log| log.contains_key(&entry.seq))
            || state
                .0
                .dropped
                .get(&entry.origin)
                .is_some_and(|&d| entry.seq <= d);
        if known {
            return Ok(false);
        }
        self.append(&mut state, entry)?;
        Ok(true)
    }

    /// What an edge that applied `applied` is missing, at most `most` purges of it.
    pub fn missing(&self, applied: &BTreeMap<String, Applied>, most: usize) -> Missing {
        let state = self.lock();
        let none = Applied::default();
        let mut missing = Missing {
            complete: true,
            ..Missing::default()
        };
        for (origin, &through) in &state.0.dropped {
            if applied.get(origin).unwrap_or(&none).through < through {
                missing.reset.insert(origin.clone(), through + 1);
            }
        }
        for (origin, log) in &state.0.by_origin {
            let done = applied.get(origin).unwrap_or(&none);
            for (&seq, url) in log.range(done.through + 1..) {
                if done.has(seq) {
                    continue;
                }
                if missing.entries.len() == most {
                    missing.complete = false;
                    return missing;
                }
                missing.entries.push(Entry {
                    origin: origin.clone(),
                    seq,
                    url: url.clone(),
                });
            }
        }
        missing
    }

    /// The name this router's purges are numbered under: `<name>@<its log's id>`.
    pub fn origin(&self) -> &str {
        &self.me
    }

    /// How many purges are held, per router.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let state = self.lock();
        state
            .0
            .by_origin
            .iter()
            .map(|(origin, log)| (origin.clone(), log.len()))
            .collect()
    }

    fn append(&self, state: &mut (Logs, std::fs::File), entry: Entry) -> Result<(), LogError> {
        let mut line = serde_json::to_vec(&Line::Purge(entry.clone())).unwrap_or_default();
        line.push(b'\n');
        state
            .1
            .write_all(&line)
            .and_then(|()| state.1.sync_data())
            .map_err(|e| LogError {
                path: self.path.clone(),
                problem: format!("cannot write it: {e}"),
            })?;
        let origin = entry.origin.clone();
        state.0.insert(entry);
        if let Some(through) = state.0.trim_one(&origin, self.keep) {
            let mut line =
                serde_json::to_vec(&Line::Dropped { origin, through }).unwrap_or_default();
            line.push(b'\n');
            // Lost, it is written again at the next start's compaction from the kept entries.
            let _ = state.1.write_all(&line);
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Logs, std::fs::File)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Logs {
    fn insert(&mut self, entry: Entry) {
        self.by_origin
            .entry(entry.origin)
            .or_default()
            .insert(entry.seq, entry.url);
    }

    /// The highest number `origin`'s log has reached.
    fn last(&self, origin: &str) -> u64 {
        let held = self
            .by_origin
            .get(origin)
            .and_then(|log| log.keys().next_back().copied())
            .unwrap_or(0);
        held.max(self.dropped.get(origin).copied().unwrap_or(0))
    }

    fn trim(&mut self, keep: usize) {
        let origins: Vec<String> = self.by_origin.keys().cloned().collect();
        for origin in origins {
            while self.trim_one(&origin, keep).is_some() {}
        }
    }

    /// Drops `origin`'s oldest purge if it holds more than `keep`; returns the new mark.
    fn trim_one(&mut self, origin: &str, keep: usize) -> Option<u64> {
        let log = self.by_origin.get_mut(origin)?;
        if log.len() <= keep {
            return None;
        }
        let (seq, _) = log.pop_first()?;
        let mark = self.dropped.entry(origin.to_owned()).or_default();
        *mark = (*mark).max(seq);
        Some(*mark)
    }

    fn lines(&self) -> Vec<Vec<u8>> {
        let started = self.started.clone().map(|id| Line::Started { id });
        let dropped = self.dropped.iter().map(|(origin, &through)| Line::Dropped {
            origin: origin.clone(),
            through,
        });
        let purges = self.by_origin.iter().flat_map(|(origin, log)| {
            log.iter().map(|(&seq, url)| {
                Line::Purge(Entry {
                    origin: origin.clone(),
                    seq,
                    url: url.clone(),
                })
            })
        });
        started
            .into_iter()
            .chain(dropped)
            .chain(purges)
            .map(|line| {
                let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
                bytes.push(b'\n');
                bytes
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(origin: &str, seq: u64) -> Entry {
        Entry {
            origin: origin.into(),
            seq,
            url: format!("http://cdn.test/{origin}/{seq}"),
        }
    }

    #[test]
    fn numbers_survive_a_restart_and_copies_are_taken_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("purges.jsonl");
        let log = PurgeLog::open(&path, "a", 10).expect("open");
        assert_eq!(log.take("http://cdn.test/x").expect("take").seq, 1);
        assert_eq!(log.take("http://cdn.test/y").expect("take").seq, 2);
        assert!(log.record(entry("b", 1)).expect("record"));
        assert!(!log.record(entry("b", 1)).expect("again"));
        let origin = log.origin().to_owned();
        assert!(origin.starts_with("a@"), "{origin}");
        drop(log);
        let log = PurgeLog::open(&path, "a", 10).expect("reopen");
        assert_eq!(log.origin(), origin, "the same log, the same numbering");
        assert_eq!(log.take("http://cdn.test/z").expect("take").seq, 3);
        assert_eq!(log.counts()["b"], 1);
    }

    #[test]
    fn an_edge_gets_what_it_has_not_applied_and_a_reset_past_the_kept_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PurgeLog::open(&dir.path().join("p"), "a", 3).expect("open");
        for n in 1..=5 {
            log.take(&format!("http://cdn.test/{n}")).expect("take");
        }
        let a = log.origin().to_owned();
        let mut applied = BTreeMap::new();
        applied.insert(
            a.clone(),
            Applied {
                through: 3,
                also: [5].into(),
            },
        );
        let missing = log.missing(&applied, 100);
        assert_eq!(
            missing.entries,
            vec![Entry {
                origin: a.clone(),
                seq: 4,
                url: "http://cdn.test/4".into()
            }]
        );
        assert!(missing.reset.is_empty() && missing.complete);
        let fresh = log.missing(&BTreeMap::new(), 2);
        assert_eq!(fresh.reset.get(&a), Some(&3), "purges 1 and 2 were dropped");
        assert_eq!((fresh.entries.len(), fresh.complete), (2, false));
    }

    #[test]
    fn a_lost_log_numbers_its_purges_afresh() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p");
        let first = PurgeLog::open(&path, "a", 10).expect("open");
        first.take("http://cdn.test/x").expect("take");
        let origin = first.origin().to_owned();
        drop(first);
        std::fs::remove_file(&path).expect("lose it");
        let second = PurgeLog::open(&path, "a", 10).expect("open again");
        assert_ne!(
            second.origin(),
            origin,
            "a number an edge applied is never reused"
        );
    }

    #[test]
    fn a_bad_line_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p");
        std::fs::write(
            &path,
            "{\"purge\":{\"origin\":\"a\",\"seq\":1,\"url\":\"u\"}}\nnonsense\n",
        )
        .expect("write");
        let error = PurgeLog::open(&path, "a", 10).expect_err("bad line");
        assert!(error.to_string().contains("line 2"), "{error}");
    }
}
