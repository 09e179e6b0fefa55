//! DNS over UDP on threads of their own: each owns one socket on the DNS address (the first
//! bound by `main`, the others beside it with `SO_REUSEPORT`, so the kernel spreads clients over
//! them), reads up to [`BATCH`] queries with one `recvmmsg`, answers them, and sends the answers
//! with one `sendmmsg`. A blocking thread per socket, not a task: a query needs no waiting, and
//! the batch is what saves the system calls.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, MsgFlags, MultiHeaders, SockFlag, SockType, SockaddrStorage, sockopt,
};

use super::DnsHandler;
use super::answers::Answers;

/// Queries read, and answers sent, per system call.
const BATCH: usize = 64;
/// The largest datagram read whole (hickory's server reads as much).
const DATAGRAM: usize = 4096;
/// How often a thread waiting for queries looks whether it should stop.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// Binds a UDP socket at `addr` with `SO_REUSEPORT`, so more may be bound beside it.
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket::socket(family, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    // Only SO_REUSEPORT is set: an IPv6 wildcard keeps the system's dual-stack default, as the
    // TCP listener beside it does.
    socket::setsockopt(&fd, sockopt::ReusePort, &true)?;
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(UdpSocket::from(fd))
}

/// The threads serving UDP; [`Udp::stop`] ends them.
#[derive(Debug)]
pub struct Udp {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Udp {
    /// Serves `first` and `threads - 1` more sockets bound beside it.
    pub fn start(
        first: UdpSocket,
        threads: usize,
        handler: Arc<DnsHandler>,
    ) -> std::io::Result<Self> {
        let addr = first.local_addr()?;
        let mut sockets = vec![first];
        for _ in 1..threads.max(1) {
            sockets.push(bind(addr)?);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut started = Vec::new();
        for socket in &sockets {
            socket.set_read_timeout(Some(STOP_CHECK))?;
        }
        for (n, socket) in sockets.into_iter().enumerate() {
            let (flag, handler) = (stop.clone(), handler.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("dns-udp-{n}"))
                .spawn(move || serve(&socket, &mut Answers::new(handler), &flag));
            match spawned {
                Ok(thread) => started.push(thread),
                Err(error) => {
                    // The threads already started stop within STOP_CHECK.
                    stop.store(true, Ordering::Relaxed);
                    return Err(error);
                }
            }
        }
        Ok(Self {
            stop,
            threads: started,
        })
    }

    /// Stops the threads and waits for them (each within [`STOP_CHECK`]).
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

fn serve(socket: &UdpSocket, answers: &mut Answers, stop: &AtomicBool) {
    let fd = socket.as_raw_fd();
    // Nothing here is allocated per batch: at a steady rate most batches hold one query, and
    // an allocation per batch is then one per query.
    let mut buffers = vec![[0u8; DATAGRAM]; BATCH].into_boxed_slice();
    let mut outs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(512)).collect();
    let mut received: Vec<(usize, Option<SocketAddr>)> = Vec::with_capacity(BATCH);
    let mut replies = Replies::default();
    let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    while !stop.load(Ordering::Relaxed) {
        received.clear();
        {
            let mut slices: [[IoSliceMut; 1]; BATCH] =
                std::array::from_fn(|_| [IoSliceMut::new(&mut [])]);
            for (slice, buffer) in slices.iter_mut().zip(buffers.iter_mut()) {
                slice[0] = IoSliceMut::new(&mut buffer[..]);
            }
            match socket::recvmmsg(
                fd,
                &mut recv_headers,
                slices.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(messages) => {
                    received.extend(messages.map(|m| (m.bytes, socket_addr(m.address))))
                }
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(error) => {
                    tracing::warn!(%error, "reading DNS queries failed");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
        }
        answers.refresh();
        replies.clear();
        for (i, &(len, src)) in received.iter().enumerate() {
            let Some(src) = src else { continue };
            if answers.answer(&buffers[i][..len.min(DATAGRAM)], src, &mut outs[i]) {
                replies.push(i, src);
            }
        }
        send(fd, &mut send_headers, &outs, &replies);
    }
}

/// The answers of one batch to send: which buffer each is in, and where it goes.
#[derive(Default)]
struct Replies {
    outs: Vec<usize>,
    to: Vec<Option<SockaddrStorage>>,
}

impl Replies {
    fn clear(&mut self) {
        self.outs.clear();
        self.to.clear();
    }

    fn push(&mut self, out: usize, to: SocketAddr) {
        self.outs.push(out);
        self.to.push(Some(SockaddrStorage::from(to)));
    }
}

/// Sends each reply, in as few `sendmmsg` calls as the kernel takes them; one that cannot be
/// sent is dropped (as UDP may drop it anyway) and the rest still go.
fn send(fd: i32, headers: &mut MultiHeaders<SockaddrStorage>, outs: &[Vec<u8>], replies: &Replies) {
    let mut at = 0;
    while at < replies.outs.len() {
        let rest = &replies.outs[at..];
        let slices: [[IoSlice; 1]; BATCH] =
            std::array::from_fn(|k| [IoSlice::new(rest.get(k).map_or(&[], |&i| &outs[i][..]))]);
        match socket::sendmmsg(
            fd,
            headers,
            slices[..rest.len()].iter(),
            &replies.to[at..],
            [],
            MsgFlags::empty(),
        ) {
            Ok(sent) => at += sent.count().max(1),
            Err(Errno::EINTR) => {}
            Err(error) => {
                tracing::debug!(%error, "a DNS answer could not be sent");
                at += 1;
            }
        }
    }
}

fn socket_addr(address: Option<SockaddrStorage>) -> Option<SocketAddr> {
    let address = address?;
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    address.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}
