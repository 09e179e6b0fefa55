//! Response bodies sent with `sendfile(2)` from sealed in-memory files, on plain-TCP HTTP/1
//! connections: the kernel hands the file's pages to the socket, with no copy into it.
//!
//! **Why sealed files.** `sendfile` does not copy: the socket keeps references to the file's
//! pages until the bytes are acknowledged, and a receiver on the same host (loopback, a veth
//! into a container) keeps them in its receive queue until it reads them. A page rewritten in
//! place meanwhile would reach a viewer as other bytes, and nothing the sender can observe
//! (its send queue draining) says that every reference is gone. So the only files sent this way
//! are [`SealedFile`]s: a `memfd` written once and sealed against every write, shrink and grow.
//! Its pages never change; when its last owner drops it, the kernel frees them only after the
//! last socket reference goes.
//!
//! **How it meets hyper.** hyper owns the connection and writes what bodies yield. A
//! [`FileSends`] handle, one per connection, is put into the request's extensions when the
//! connection is plain TCP and the request HTTP/1. A body made by [`body`] yields, for each
//! piece of the file, a *placeholder*: a slice of a private static buffer, of the piece's length,
//! and queues the piece on the handle at that moment. The connection's stream ([`ZeroCopyIo`])
//! recognises a placeholder by its address and sends the queued piece from the file in its
//! place. hyper is set to queue bodies as they are (`writev(true)`: its queued strategy never
//! copies a body into its own buffer), writes an HTTP/1 connection's bodies in the order it
//! polls them, and passes what is left of a placeholder when a write was short; the stream
//! checks that each placeholder matches the piece at the front of the queue and fails the
//! connection otherwise, so a mistake is a cut response, never wrong bytes.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::Frame;
use nix::fcntl::{FcntlArg, SealFlag};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::socket::MsgFlags;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The largest piece one placeholder stands for.
const PIECE: usize = 256 * 1024;

/// Placeholders are slices of this buffer, and nothing else ever points into it.
static PLACEHOLDERS: [u8; PIECE] = [0; PIECE];

fn placeholder(len: usize) -> Bytes {
    Bytes::from_static(&PLACEHOLDERS[..len])
}

fn is_placeholder(slice: &[u8]) -> bool {
    let base = PLACEHOLDERS.as_ptr() as usize;
    let at = slice.as_ptr() as usize;
    !slice.is_empty() && at >= base && at + slice.len() <= base + PIECE
}

/// A body's bytes in a sealed `memfd`: they can never change (see the module doc).
#[derive(Debug)]
pub struct SealedFile {
    fd: OwnedFd,
    len: u64,
}

impl SealedFile {
    /// A sealed copy of `bytes`. Fails when the process is out of file descriptors or memory.
    pub fn new(bytes: &[u8]) -> io::Result<Self> {
        let fd = memfd_create(
            "meridian-body",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )?;
        let mut file = std::fs::File::from(fd);
        file.write_all(bytes)?;
        nix::fcntl::fcntl(
            &file,
            FcntlArg::F_ADD_SEALS(
                SealFlag::F_SEAL_WRITE
                    | SealFlag::F_SEAL_SHRINK
                    | SealFlag::F_SEAL_GROW
                    | SealFlag::F_SEAL_SEAL,
            ),
        )?;
        Ok(Self {
            fd: file.into(),
            len: bytes.len() as u64,
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A piece of a sealed file a placeholder stands for, not yet sent.
struct Piece {
    file: Arc<SealedFile>,
    at: u64,
    left: usize,
}

/// One connection's pieces to send in place of placeholders, in the order its bodies yield
/// them. Present in a request's extensions only when its response may use [`body`].
#[derive(Clone, Default)]
pub struct FileSends(Arc<Mutex<VecDeque<Piece>>>);

impl std::fmt::Debug for FileSends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FileSends")
            .field(&self.queue().len())
            .finish()
    }
}

impl FileSends {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Piece>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A body of `file`'s bytes from `start` to `end`, sent from the file on `sends`' connection.
pub fn body(sends: FileSends, file: Arc<SealedFile>, start: u64, end: u64) -> crate::Body {
    use http_body_util::BodyExt;
    FileBody {
        sends,
        file: file.clone(),
        at: start.min(file.len),
        end: end.min(file.len),
    }
    .boxed_unsync()
}

struct FileBody {
    sends: FileSends,
    file: Arc<SealedFile>,
    at: u64,
    end: u64,
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.at >= self.end {
            return Poll::Ready(None);
        }
        let len = (self.end - self.at).min(PIECE as u64) as usize;
        // Queued as hyper takes the placeholder: hyper writes what it polled, in order.
        self.sends.queue().push_back(Piece {
            file: self.file.clone(),
            at: self.at,
            left: len,
        });
        self.at += len as u64;
        Poll::Ready(Some(Ok(Frame::data(placeholder(len)))))
    }

    fn is_end_stream(&self) -> bool {
        self.at >= self.end
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.end - self.at)
    }
}

/// A plain TCP connection's stream that sends placeholders' pieces from their files.
pub(crate) struct ZeroCopyIo {
    stream: TcpStream,
    sends: FileSends,
    metrics: crate::connection::Metrics,
}

impl ZeroCopyIo {
    pub fn new(stream: TcpStream, sends: FileSends, metrics: crate::connection::Metrics) -> Self {
        Self {
            stream,
            sends,
            metrics,
        }
    }

    /// Runs a non-blocking socket call once the socket is writable, again while it would block.
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        mut call: impl FnMut() -> nix::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            let sent = self.stream.try_io(Interest::WRITABLE, || {
                loop {
                    match call() {
                        Err(nix::errno::Errno::EINTR) => continue,
                        other => return other.map_err(io::Error::from),
                    }
                }
            });
            match sent {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    /// Sends the front piece in place of `slice`, what is left of its placeholder.
    fn poll_piece(&self, cx: &mut Context<'_>, slice: &[u8]) -> Poll<io::Result<usize>> {
        let (file, at) = {
            let queue = self.sends.queue();
            match queue.front() {
                Some(piece) if piece.left == slice.len() => (piece.file.clone(), piece.at),
                _ => {
                    return Poll::Ready(Err(io::Error::other(
                        "a zero-copy placeholder does not match the piece queued for it",
                    )));
                }
            }
        };
        let mut offset = at as i64;
        let sent = ready!(self.poll_send(cx, || {
            nix::sys::sendfile::sendfile(
                self.stream.as_fd(),
                file.fd.as_fd(),
                Some(&mut offset),
                slice.len(),
            )
        }))?;
        if sent == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "a sealed body file ended early",
            )));
        }
        self.metrics.wrote_zero_copy(sent);
        let mut queue = self.sends.queue();
        if let Some(piece) = queue.front_mut() {
            piece.at += sent as u64;
            piece.left -= sent;
            if piece.left == 0 {
                queue.pop_front();
            }
        }
        Poll::Ready(Ok(sent))
    }
}

impl AsyncRead for ZeroCopyIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ZeroCopyIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let Some(first) = bufs.iter().position(|b| is_placeholder(b)) else {
            return Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        };
        if first == 0 {
            return self.poll_piece(cx, &bufs[0]);
        }
        // The bytes before a placeholder (a response's header): held back (MSG_MORE) so that
        // they leave in one segment with the piece's first bytes.
        let fd = self.stream.as_raw_fd();
        let before = &bufs[..first];
        self.poll_send(cx, || {
            nix::sys::socket::sendmsg::<()>(
                fd,
                before,
                &[],
                MsgFlags::from_bits_retain(libc::MSG_MORE),
                None,
            )
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_file_cannot_be_written_again() {
        let sealed = SealedFile::new(b"segment bytes").expect("memfd");
        assert_eq!(sealed.len(), 13);
        let mut file = std::fs::File::from(sealed.fd.try_clone().expect("dup"));
        assert!(
            file.write_all(b"other").is_err(),
            "a sealed file took a write"
        );
        let mut read = Vec::new();
        use std::io::{Read, Seek};
        file.seek(std::io::SeekFrom::Start(0)).expect("seek");
        file.read_to_end(&mut read).expect("read");
        assert_eq!(read, b"segment bytes");
    }

    #[test]
    fn only_slices_of_the_placeholder_buffer_are_placeholders() {
        assert!(is_placeholder(&placeholder(10)));
        assert!(is_placeholder(&placeholder(PIECE)[5..]));
        assert!(!is_placeholder(&[0u8; 16]));
        assert!(!is_placeholder(&placeholder(0)));
        let copied = placeholder(64).to_vec();
        assert!(!is_placeholder(&copied));
    }
}
