//! The store file: opened once, locked against other processes, allocated to its full size,
//! and read and written with positioned I/O (`pread`/`pwrite`), never through a mapping.
//!
//! Why not a memory map: a read of a mapped page that the disk cannot deliver, or that lies
//! past the end of a file truncated under the edge, is SIGBUS, which kills the process with
//! every viewer on it. `pread` returns an error or a short count instead, which the store turns
//! into "drop this object and fetch it again". A hot body costs one copy out of the page cache
//! (about 0.1 ms per MiB); the page cache is still what keeps hot objects in memory.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The open store file.
#[derive(Debug)]
pub struct StoreFile {
    file: nix::fcntl::Flock<File>,
    len: u64,
}

/// What opening the file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// The file had this size already: its contents are the store's to recover.
    Existing,
    /// The file was new or had another size: it starts empty.
    Fresh { old_len: u64 },
}

/// Where the PID of the process holding a store file is written: `<store>.owner` (not a
/// `.pid` file: it outlives a crashed holder, and only the lock says whether it is current).
pub fn pid_file(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".owner");
    std::path::PathBuf::from(name)
}

impl StoreFile {
    /// Opens (or creates) the file at `path` with exactly `len` bytes and locks it against other
    /// processes (an exclusive `flock`, held while it is open). A file of another size is
    /// emptied and allocated again.
    pub fn open(path: &Path, len: u64) -> std::io::Result<(Self, Opened)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        // Two processes writing one store would corrupt each other's records. The holder's PID
        // is written beside the file under the lock, so the refusal can name it.
        let pid_path = pid_file(path);
        let file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|(_, errno)| {
                let holder = std::fs::read_to_string(&pid_path)
                    .ok()
                    .and_then(|p| p.trim().parse::<u32>().ok())
                    .map(|pid| format!("process {pid} (per {})", pid_path.display()))
                    .unwrap_or_else(|| "another process".to_owned());
                std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!(
                        "{holder} has this store file open ({errno}); stop it, or give each edge its own `store` file"
                    ),
                )
            })?;
        std::fs::write(&pid_path, format!("{}\n", std::process::id()))?;
        let old_len = file.metadata()?.len();
        let opened = if old_len == len {
            Opened::Existing
        } else {
            file.set_len(0)?;
            Opened::Fresh { old_len }
        };
        let store = Self { file, len };
        if opened != Opened::Existing {
            store.allocate()?;
        }
        Ok((store, opened))
    }

    /// Allocates the whole file on disk (`posix_fallocate`), so that a full disk is an error
    /// here and not a failed write later.
    pub fn allocate(&self) -> std::io::Result<()> {
        nix::fcntl::posix_fallocate(&*self.file, 0, self.len as i64).map_err(std::io::Error::from)
    }

    /// The file's size now (smaller than the store's capacity if somebody truncated it).
    pub fn current_len(&self) -> std::io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Reads exactly `buf.len()` bytes at `offset`; a short read (past the file's end) is an
    /// `UnexpectedEof` error.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if offset + buf.len() as u64 > self.len {
            return Err(std::io::Error::other("store read out of bounds"));
        }
        self.file.read_exact_at(buf, offset)
    }

    /// Reads `len` bytes at `offset` into a new buffer.
    pub fn read_vec(&self, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len as usize];
        self.read(offset, &mut buf)?;
        Ok(buf)
    }

    /// Writes all of `bytes` at `offset`. Refused past the end of a file truncated under the
    /// store: such a write would extend it with a hole, and records that were cut would read
    /// as zeros instead of failing. The store's background check drops what was cut and
    /// allocates the file again (`Store::check_some`). Writes within it (marking records dead)
    /// go ahead.
    pub fn write(&self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        if offset + bytes.len() as u64 > self.len {
            return Err(std::io::Error::other("store write out of bounds"));
        }
        if self.current_len()? < offset + bytes.len() as u64 {
            return Err(std::io::Error::other(
                "the store file was truncated under the edge; writes wait for its check",
            ));
        }
        self.file.write_all_at(bytes, offset)
    }

    /// For benchmarks: drops the file's pages from the page cache, so that the next reads go
    /// to the disk.
    pub fn drop_cache(&self) {
        let _ = self.file.sync_data();
        let _ = nix::fcntl::posix_fadvise(
            &*self.file,
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        );
    }

    /// Writes the file's dirty pages to the disk (on clean shutdown; a crash of the process
    /// relies on the page cache, which outlives it).
    pub fn flush(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}
