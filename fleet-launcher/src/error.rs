//! The launcher's one error type. Every variant names who failed (an input file, the run
//! folder, a child process, an edge's admin API, the operator's request) and its message ends
//! with what to do about it, because a person reads it: on the terminal of `meridian-local`, or
//! as the body of a control API answer under a button of the fleet page.
//!
//! The message is complete on its own: the underlying cause is part of it (as text, for the
//! HTTP client's errors whose useful part is deep in their source chain) rather than a
//! `source()` that a reader of the control API would never see.

use std::io;
use std::path::PathBuf;

use http::StatusCode;

/// What went wrong while planning, starting or acting on the local fleet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The run folder cannot be created or resolved.
    #[error(
        "run folder {}: {cause}; pass --run-dir a folder meridian-local may create and write",
        path.display()
    )]
    RunDir { path: PathBuf, cause: io::Error },

    /// An input the plan reads (topology, media root, GeoIP database) is not there.
    #[error(
        "{what} {}: {cause}; pass --{flag} one that exists (relative paths start at the working folder)",
        path.display()
    )]
    Input {
        what: &'static str,
        flag: &'static str,
        path: PathBuf,
        cause: io::Error,
    },

    /// The topology file does not parse or does not validate.
    #[error("{0}; fix the file, or pass --topology another one")]
    Topology(Box<topology::Error>),

    /// An edge's URL in the topology is not one the launcher can listen on.
    #[error(
        "topology edge {edge}: {url:?} {problem}; write it as http://<IPv4 address>:<port>, e.g. http://127.0.1.1:8080"
    )]
    EdgeUrl {
        edge: String,
        url: String,
        problem: String,
    },

    /// `--loopback-block` was given but an edge is not in 127.0.0.0/16, so it cannot be moved.
    #[error(
        "--loopback-block {block}: edge {edge} is at {address}, outside 127.0.0.0/16; only a topology on 127.0.x.y addresses can be moved (to 127.{block}.x.y): drop the flag or change the topology"
    )]
    OutsideBlock {
        block: u8,
        edge: String,
        address: String,
    },

    /// No loopback block has all of the fleet's addresses free (`--loopback-block auto`).
    #[error(
        "--loopback-block auto: no block 127.1-255.x.y has every address of this fleet free (last taken: {taken}); stop an older fleet, or give --loopback-block N"
    )]
    NoFreeBlock { taken: String },

    /// A file the launcher writes (an edge's config, the router's, a log) cannot be written.
    #[error("cannot write {}: {cause}; is the run folder (--run-dir) writable?", path.display())]
    Write { path: PathBuf, cause: io::Error },

    /// A child's program cannot be started.
    #[error(
        "cannot start {name} from {}: {cause}; build it (cargo build -p origin -p edge -p geo-router) or point --bin-dir at the folder that holds it",
        program.display()
    )]
    Spawn {
        name: String,
        program: PathBuf,
        cause: io::Error,
    },

    /// A program the chosen origin needs (nginx, ffmpeg) is not installed.
    #[error(
        "{name} is not installed (not on PATH): the --origin nginx fleet needs it; apt-get install {package}, or run with --origin meridian"
    )]
    MissingProgram {
        name: &'static str,
        package: &'static str,
    },

    /// A child exited, or stayed silent, before printing all of its `listening` lines.
    #[error(
        "{name} did not become ready: {why}, still missing {missing:?}. An address that is taken shows as \"Address in use\" in its log: stop what holds it, or move this fleet with --loopback-block. Its log ({}):\n{log}",
        log_path.display()
    )]
    NotReady {
        name: String,
        why: String,
        missing: Vec<String>,
        log_path: PathBuf,
        log: String,
    },

    /// The operator named an edge the fleet does not have.
    #[error("no edge named {name:?}; this fleet's edges are: {}", known.join(", "))]
    NoSuchEdge { name: String, known: Vec<String> },

    /// The operator asked to kill an edge that is not running.
    #[error("{name} is not running; `meridian-local restore {name}` starts it again")]
    NotRunning { name: String },

    /// An edge's admin API could not be reached.
    #[error(
        "{name}'s admin API at {url} did not answer: {cause}; if the edge is down, `meridian-local restore {name}` starts it"
    )]
    EdgeUnreachable {
        name: String,
        url: String,
        cause: String,
    },

    /// An edge's admin API answered, but refused.
    #[error(
        "{name}'s admin API answered {status} to {method} {url}: {body}; its log in the run folder says why"
    )]
    EdgeRefused {
        name: String,
        method: http::Method,
        url: String,
        status: StatusCode,
        body: String,
    },
}

impl Error {
    /// The status the control API answers with for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::NoSuchEdge { .. } => StatusCode::NOT_FOUND,
            Error::NotRunning { .. } => StatusCode::CONFLICT,
            Error::EdgeUnreachable { .. } | Error::EdgeRefused { .. } => StatusCode::BAD_GATEWAY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error and its sources as one line (`a: b: c`), for causes whose `Display` alone is terse.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        text.push_str(": ");
        text.push_str(&source.to_string());
        next = source.source();
    }
    text
}
