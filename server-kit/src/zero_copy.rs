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
//! [`FileSends`] handle, one per connection, is put into every request's extensions when the
//! connection is plain TCP and the request HTTP/1 (never HTTP/2, never TLS). A body made by
//! [`body`] yields, for each piece of the file, a *placeholder*: a slice of a private static
//! buffer, of the piece's length, starting at an offset that moves on with every piece, and
//! queues the piece on the handle at that moment. The connection's stream ([`ZeroCopyIo`])
//! recognises a placeholder by its address and sends the queued piece from the file in its
//! place. hyper is set to queue bodies as they are (`writev(true)`: its queued strategy never
//! copies a body into its own buffer), buffers every frame it polls at once, writes an HTTP/1
//! connection's bodies in the order it polls them, and passes what is left of a placeholder
//! when a write was short. The stream checks both ends of that: a placeholder must be exactly
//! what is left of the piece at the front of the queue (its address included, so a piece left
//! over from another body never matches), and a write while a piece is queued must carry its
//! placeholder (a copied placeholder, whose zeros would go out, does not). Otherwise it fails
//! the connection: a mistake is a cut response, never wrong bytes.
//!
//! **File descriptors.** Each sealed file holds one; at most a quarter of the process's limit
//! are open at once (past it, [`SealedFile::new`] fails and the body is copied instead).

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
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
/// Where successive pieces' placeholders start: this many places, a page apart.
const STARTS: usize = 64;
const STRIDE: usize = 4096;

/// Placeholders are slices of this buffer, and nothing else ever points into it.
static PLACEHOLDERS: [u8; PIECE + STARTS * STRIDE] = [0; PIECE + STARTS * STRIDE];

/// The placeholder of a piece of `len` bytes at start `start` (below `STARTS`).
fn placeholder(start: usize, len: usize) -> Bytes {
    let at = (start % STARTS) * STRIDE;
    Bytes::from_static(&PLACEHOLDERS[at..at + len])
}

fn is_placeholder(slice: &[u8]) -> bool {
    let base = PLACEHOLDERS.as_ptr() as usize;
    let at = slice.as_ptr() as usize;
    !slice.is_empty() && at >= base && at + slice.len() <= base + PLACEHOLDERS.len()
}

/// Sealed files open now, and how many may be (a quarter of the file descriptor limit).
static OPEN_FILES: AtomicUsize = AtomicUsize::new(0);

fn max_open_files() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _)| soft);
        usize::try_from(soft / 4).unwrap_or(usize::MAX)
    })
}

/// A body's bytes in a sealed `memfd`: they can never change (see the module doc).
#[derive(Debug)]
pub struct SealedFile {
    fd: OwnedFd,
    len: u64,
}

impl SealedFile {
    /// A sealed copy of `bytes`. Fails when a quarter of the process's file descriptors are
    /// sealed files already, or it is out of descriptors or memory.
    pub fn new(bytes: &[u8]) -> io::Result<Self> {
        if OPEN_FILES.fetch_add(1, Ordering::Relaxed) >= max_open_files() {
            OPEN_FILES.fetch_sub(1, Ordering::Relaxed);
            return Err(io::Error::other(
                "a quarter of the file descriptor limit are sealed bodies already",
            ));
        }
        Self::create(bytes).inspect_err(|_| {
            OPEN_FILES.fetch_sub(1, Ordering::Relaxed);
        })
    }

    fn create(bytes: &[u8]) -> io::Result<Self> {
        let flags = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
        // Not executable, where the kernel knows the flag (6.3 and later; a kernel set to
        // refuse executable memfds refuses memfds without it).
        let fd = match memfd_create(
            "meridian-body",
            flags | MFdFlags::from_bits_retain(libc::MFD_NOEXEC_SEAL),
        ) {
            Err(nix::errno::Errno::EINVAL) => memfd_create("meridian-body", flags)?,
            other => other?,
        };
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

impl Drop for SealedFile {
    fn drop(&mut self) {
        OPEN_FILES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A piece of a sealed file a placeholder stands for, not yet sent.
struct Piece {
    file: Arc<SealedFile>,
    at: u64,
    left: usize,
    /// Where what is left of its placeholder starts.
    placeholder: usize,
}

/// One connection's pieces to send in place of placeholders, in the order its bodies yield
/// them, and the start the next one's placeholder gets. Present in the extensions of every
/// HTTP/1 request on plain TCP.
#[derive(Clone, Default)]
pub struct FileSends(Arc<Mutex<Queue>>);

#[derive(Default)]
struct Queue {
    pieces: VecDeque<Piece>,
    next_start: usize,
}

impl std::fmt::Debug for FileSends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FileSends")
            .field(&self.queue().pieces.len())
            .finish()
    }
}

impl FileSends {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A body of `file`'s bytes from `start` to `end`, sent from the file on `sends`' connection.
pub fn body(sends: FileSends, file: Arc<SealedFile>, start: u64, end: u64) -> crate::Body {
    use http_body_util::BodyExt;
    let end = end.min(file.len);
    FileBody {
        sends,
        file: file.clone(),
        at: start.min(end),
        end,
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
        let placeholder = {
            let mut queue = self.sends.queue();
            let start = queue.next_start;
            queue.next_start = (start + 1) % STARTS;
            let placeholder = placeholder(start, len);
            queue.pieces.push_back(Piece {
                file: self.file.clone(),
                at: self.at,
                left: len,
                placeholder: placeholder.as_ptr() as usize,
            });
            placeholder
        };
        self.at += len as u64;
        Poll::Ready(Some(Ok(Frame::data(placeholder))))
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
            match queue.pieces.front() {
                Some(piece)
                    if piece.left == slice.len()
                        && piece.placeholder == slice.as_ptr() as usize =>
                {
                    (piece.file.clone(), piece.at)
                }
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
        if let Some(piece) = queue.pieces.front_mut() {
            piece.at += sent as u64;
            piece.left -= sent;
            piece.placeholder += sent;
            if piece.left == 0 {
                queue.pieces.pop_front();
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
            // A piece is queued only as its placeholder is buffered, so a write without one
            // while a piece waits means the placeholder was copied: its zeros must not go out.
            if !self.sends.queue().pieces.is_empty() {
                return Poll::Ready(Err(io::Error::other(
                    "a zero-copy placeholder was copied before it was written",
                )));
            }
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

    /// A connected pair on loopback: the client end, and the server end as a zero-copy stream.
    async fn pair(sends: &FileSends) -> (TcpStream, ZeroCopyIo) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let io = ZeroCopyIo::new(server, sends.clone(), crate::connection::Metrics::default());
        (client, io)
    }

    /// Writes `bufs` as hyper does: vectored, again with what is left after a short write.
    async fn write_all(io: &mut ZeroCopyIo, mut bufs: Vec<Bytes>) -> io::Result<()> {
        use bytes::Buf;
        use tokio::io::AsyncWriteExt;
        while !bufs.is_empty() {
            let slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
            let mut n = io.write_vectored(&slices).await?;
            while n > 0 {
                let first = bufs[0].len().min(n);
                bufs[0].advance(first);
                n -= first;
                if bufs[0].is_empty() {
                    bufs.remove(0);
                }
            }
        }
        Ok(())
    }

    async fn next_data(body: &mut crate::Body) -> Bytes {
        use http_body_util::BodyExt;
        body.frame()
            .await
            .expect("a frame")
            .expect("no error")
            .into_data()
            .expect("data")
    }

    #[tokio::test]
    async fn placeholders_go_out_as_the_files_bytes_and_any_mistake_fails_the_write() {
        use tokio::io::AsyncReadExt;
        let sends = FileSends::default();
        let (mut client, mut io) = pair(&sends).await;
        let file = Arc::new(SealedFile::new(b"0123456789").expect("memfd"));
        let mut body = body(sends.clone(), file.clone(), 2, 8);
        let data = next_data(&mut body).await;
        assert!(is_placeholder(&data));
        write_all(&mut io, vec![Bytes::from_static(b"head:"), data])
            .await
            .expect("sent");
        let mut got = [0u8; 11];
        client.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"head:234567");

        // A copied placeholder: its zeros never go out.
        let mut copied = self::body(sends.clone(), file.clone(), 0, 4);
        let data = Bytes::copy_from_slice(&next_data(&mut copied).await);
        assert!(write_all(&mut io, vec![data]).await.is_err());

        // A piece left over from one body is not sent in place of another's placeholder of
        // the same length.
        let sends = FileSends::default();
        let (_client, mut io) = pair(&sends).await;
        let mut left_over = self::body(sends.clone(), file.clone(), 0, 4);
        let mut next = self::body(sends.clone(), file, 4, 8);
        let _ = next_data(&mut left_over).await;
        let data = next_data(&mut next).await;
        assert!(write_all(&mut io, vec![data]).await.is_err());
    }

    #[test]
    fn only_slices_of_the_placeholder_buffer_are_placeholders() {
        assert!(is_placeholder(&placeholder(0, 10)));
        assert!(is_placeholder(&placeholder(STARTS - 1, PIECE)[5..]));
        assert!(!is_placeholder(&[0u8; 16]));
        assert!(!is_placeholder(&placeholder(3, 0)));
        let copied = placeholder(1, 64).to_vec();
        assert!(!is_placeholder(&copied));
        // Successive pieces of one length start at different places.
        assert_ne!(placeholder(0, 100).as_ptr(), placeholder(1, 100).as_ptr());
    }
}
