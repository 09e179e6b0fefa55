//! What an edge keeps across restarts beside its store: the operator's drain switch and how far
//! it has applied each router's purge log. One small JSON file, replaced whole (written,
//! synced, renamed) so that a crash leaves the old one or the new one, never half of each.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::purges::Applied;

/// The state itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct State {
    /// The operator's drain: a drained edge that restarts comes back drained.
    pub draining: bool,
    /// Per router whose log the purges came from: which of its purges this edge has applied.
    pub purges: BTreeMap<String, Applied>,
}

/// The state file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error(
    "edge state file {}: {error}; it holds the drain switch and the purges applied: fix or delete it (deleted, the edge starts not draining and the routers send it every purge they hold again)",
    path.display()
)]
pub struct StateError {
    pub path: PathBuf,
    pub error: String,
}

/// The file and what it holds now.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    state: Mutex<State>,
}

impl StateFile {
    /// Reads the file at `path`; a missing one is the empty state.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let fail = |error: String| StateError {
            path: path.to_owned(),
            error,
        };
        let state = match std::fs::read_to_string(path) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|e| fail(format!("not a state file: {e}")))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(fail(e.to_string())),
        };
        Ok(Self {
            path: path.to_owned(),
            state: Mutex::new(state),
        })
    }

    /// A copy of the state now.
    pub fn get(&self) -> State {
        self.lock().clone()
    }

    /// Changes the state and writes it, under one lock so that writes do not cross.
    pub fn update<T>(&self, change: impl FnOnce(&mut State) -> T) -> Result<T, StateError> {
        let mut state = self.lock();
        let out = change(&mut state);
        self.write(&state).map_err(|e| StateError {
            path: self.path.clone(),
            error: format!("cannot write it: {e}"),
        })?;
        Ok(out)
    }

    fn write(&self, state: &State) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".new");
        let temporary = PathBuf::from(temporary);
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &self.path)?;
        if let Some(folder) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(folder)?.sync_all()?;
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_reopen_and_names_the_file_when_it_is_not_json() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("edge.state");
        let file = StateFile::open(&path).expect("missing is empty");
        assert_eq!(file.get(), State::default());
        file.update(|s| {
            s.draining = true;
            s.purges.entry("r1".into()).or_default().mark(1);
        })
        .expect("write");
        let again = StateFile::open(&path).expect("reopen");
        assert!(again.get().draining);
        assert!(again.get().purges["r1"].has(1));
        std::fs::write(&path, "{ not json").expect("spoil");
        let error = StateFile::open(&path).expect_err("spoiled");
        assert!(error.to_string().contains("edge.state"), "{error}");
    }
}
