//! Helpers for Meridian's integration tests, so that a test reads like its scenario:
//! start the real binary, wait for its `listening` lines, talk HTTP to it, signal it, see it exit.
//!
//! - [`ServerProcess`]: a child process of one of our binaries. Readiness is its stdout line
//!   `listening <kind> <address>`, never a sleep. Dropping it kills it by PID and reaps it.
//! - [`http`]: a small HTTP client (hyper) returning status, headers and the whole body, plus
//!   access to a streaming response for tests that read slowly.
//! - [`doc_example`] and [`temp_file`]: for unit tests that parse the example in a module's docs
//!   or load a file.

pub mod http;
pub mod origin;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use server_kit::listener;

/// How long a server may take to print its listening lines before the test fails.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running server binary, killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    pid: Pid,
    listeners: HashMap<String, String>,
    exit: Receiver<ExitStatus>,
    exited: Option<ExitStatus>,
    stderr: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Starts `binary` with `args` and waits until it has printed a `listening` line for every
    /// kind in `kinds`. Panics, with the server's stderr, if it exits or times out first.
    pub fn start(binary: &str, args: &[&str], kinds: &[&str]) -> Self {
        let mut command = Command::new(binary);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "warn");
        }
        Self::spawn(command, kinds)
    }

    /// Like [`ServerProcess::start`] for a prepared command (extra environment, working folder).
    pub fn spawn(mut command: Command, kinds: &[&str]) -> Self {
        let name = command.get_program().to_string_lossy().into_owned();
        let mut child: Child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let pid = Pid::from_raw(child.id() as i32);

        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut s) = sink.lock() {
                        s.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            });
        }
        let (line_tx, line_rx) = channel::<String>();
        if let Some(pipe) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    // The test may have stopped listening; keep draining so the child never
                    // blocks on a full pipe.
                    let _ = line_tx.send(line);
                }
            });
        }
        let (exit_tx, exit) = channel();
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = exit_tx.send(status);
            }
        });

        let mut process = Self {
            name,
            pid,
            listeners: HashMap::new(),
            exit,
            exited: None,
            stderr,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        while !kinds.iter().all(|k| process.listeners.contains_key(*k)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match line_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some((kind, addr)) = listener::parse_announcement(&line) {
                        process.listeners.insert(kind.to_owned(), addr.to_owned());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{} not ready within {READY_TIMEOUT:?}; stderr:\n{}",
                        process.name,
                        process.stderr()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = process.wait_exit(Duration::from_secs(5));
                    panic!(
                        "{} exited ({status:?}) before it was ready; stderr:\n{}",
                        process.name,
                        process.stderr()
                    )
                }
            }
        }
        process
    }

    /// The address printed for a listener kind (`http://127.0.0.1:40123`, `127.0.0.1:5353`).
    pub fn addr(&self, kind: &str) -> &str {
        self.listeners
            .get(kind)
            .unwrap_or_else(|| panic!("{} printed no `listening {kind}` line", self.name))
    }

    /// The process's PID.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Sends a signal to this process (by PID).
    pub fn signal(&self, signal: Signal) {
        if self.exited.is_none() {
            let _ = signal::kill(self.pid, signal);
        }
    }

    /// Waits for the process to exit; panics if it has not within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        match self.exit.recv_timeout(timeout) {
            Ok(status) => {
                self.exited = Some(status);
                status
            }
            Err(_) => panic!(
                "{} did not exit within {timeout:?}; stderr:\n{}",
                self.name,
                self.stderr()
            ),
        }
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.exited.is_none() {
            if let Ok(status) = self.exit.try_recv() {
                self.exited = Some(status);
                return;
            }
            let _ = signal::kill(self.pid, Signal::SIGKILL);
            let _ = self.exit.recv_timeout(Duration::from_secs(10));
        }
    }
}

pub use nix::sys::signal::Signal as Sig;

/// The path of the workspace's `testdata/` folder.
pub fn testdata() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// The first fenced `lang` block in the `//!` docs of a Rust source file, as the docs show it, so
/// that a test can parse the example its module's docs give:
/// `doc_example(include_str!("config.rs"), "toml")`. Panics if there is none.
pub fn doc_example(source: &str, lang: &str) -> String {
    let fence = format!("//! ```{lang}");
    let example: String = source
        .lines()
        .skip_while(|l| l.trim_end() != fence)
        .skip(1)
        .take_while(|l| l.trim_end() != "//! ```")
        .map(|l| {
            let l = l.trim_start().strip_prefix("//!").unwrap_or(l);
            format!("{}\n", l.strip_prefix(' ').unwrap_or(l))
        })
        .collect();
    assert!(!example.is_empty(), "no ```{lang} block in these docs");
    example
}

/// Writes `text` to a file named `name` in a new temporary folder, and returns the folder (removed
/// when dropped) and the file's path.
pub fn temp_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot make a temporary folder: {e}"));
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    (dir, path)
}

/// Runs a binary to completion (for `--check-config` and the like) and returns its exit status,
/// stdout and stderr.
pub fn run_to_end(binary: &str, args: &[&str]) -> (ExitStatus, String, String) {
    let output = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {binary}: {e}"));
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
