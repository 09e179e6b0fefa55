//! Request coalescing: one origin fetch per object, however many viewers ask at once.
//!
//! The first request for a key that is neither stored nor in flight becomes the *leader*: it
//! starts a [`Fill`] in a task of its own (so the fetch finishes for the others and for the
//! store even if the leader's viewer leaves). Every later request for the key, until the object
//! is stored, joins that fill as a *waiter*; once the origin's headers are in, only while the
//! response is fresh (a response already received is reused as a stored one would be, so one
//! that is stale, not storable or an error is fetched again: [`Fill::joinable`]). Each waiter streams the body from its first byte,
//! then follows new bytes as they arrive, so every viewer gets bytes as soon as the origin sends
//! them.
//!
//! **Memory per fill is bounded, whatever the object's size.** A body up to 1 MiB is kept in
//! memory until the fill ends (and then stored whole). A larger storable one *writes through*:
//! its bytes go into the store as they arrive ([`crate::store::Writer`]), and the fill keeps in
//! memory only what is not yet written, its first 256 KiB and its last [`WINDOW`] (8 MiB) bytes; a waiter further behind
//! reads from the store's copy ([`crate::store::PendingBody`]) on the blocking pool. Should
//! storing stop halfway (a disk error, a body longer than it may be), the fill *spills*: nobody
//! new joins it, memory keeps the window only, and a waiter that falls behind that ends with
//! an error (its player asks again, and that request fetches on its own).
//!
//! A fill that fails after its headers ends every waiter's body with an error, never a clean
//! end: hyper then resets the stream (HTTP/2) or closes the connection before the promised
//! length (HTTP/1.1), so no viewer mistakes a truncated segment for a complete one.
//! The model is pingora's cache lock, with the body shared instead of re-read from the cache.
//!
//! A response that will not be stored (not storable, or over `max_object_size`) is shared, with
//! the requests that came before its headers, from memory only while it is small (up to 1 MiB,
//! a `no-store` live playlist) and not one viewer's
//! (`private`, `Set-Cookie`, `Vary: *`). Otherwise the fill *passes* the origin's body to one
//! viewer, who streams it with hyper's backpressure (a bounded buffer per stream, whatever the
//! object's size); the other waiters are released to fetch on their own (see `proxy::miss`),
//! and a key passed for what its successful response says is remembered as pass-through for a
//! while, so later requests do not queue behind a fill that will not be shared (Varnish's
//! hit-for-miss).
//!
//! This module is the shared state of one fill; `leader` ([`Filler`]) is the task that drives
//! it (the origin fetch, and storing the object once it is complete).

mod leader;

pub use leader::{FillRequest, Filler, Revalidating};

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use server_kit::Body;
use tokio::sync::watch;

use crate::error::EdgeError;
use crate::store::PendingBody;

/// How many of the last bytes received a fill keeps in memory once the store has them: waiters
/// close behind the origin read them from there, the others from the store. Large enough to
/// hold a whole segment (most are 1 to 8 MiB): a crowd joining a segment's fill shares its
/// bytes in memory, as it would before write-through, instead of each copying them out of the
/// store (1,000 waiters of a 4 MiB fill read 3.7 GB that way, and fell behind the origin).
pub const WINDOW: u64 = 8 << 20;

/// The body's first bytes a fill keeps in memory whatever else it lets go: a waiter that joins
/// late gets its first bytes at once.
const HEAD: u64 = 256 << 10;

/// The response headers a fill got from the origin.
#[derive(Debug, Clone)]
pub struct FillHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub content_length: Option<u64>,
    /// The response's corrected initial age, in seconds (what its `Age` becomes).
    pub age: u64,
    /// The request headers the leader fetched with: a waiter whose own differ in a field the
    /// response varies on must not be given this response.
    pub request_headers: HeaderMap,
    /// False for a passed response: one viewer gets its body, [`Fill::claim`] says who.
    pub shared: bool,
    /// Until when the response is fresh (None: not at all), which is how long a request that
    /// arrives after these headers may still be given it (see [`Fill::joinable`]).
    pub fresh_until: Option<std::time::SystemTime>,
}

/// One origin fetch shared by every request for its key.
#[derive(Debug)]
pub struct Fill {
    progress: watch::Sender<u64>,
    /// A waiter of a spilled fill moved on (the leader may read on).
    readers_moved: tokio::sync::Notify,
    data: Mutex<FillData>,
}

#[derive(Debug, Default)]
struct FillData {
    head: Option<Result<Arc<FillHead>, EdgeError>>,
    /// The body's bytes kept in memory, each chunk with its position in the body.
    chunks: VecDeque<(u64, Bytes)>,
    received: u64,
    /// What memory may let go of (see the module doc).
    keep: Keep,
    /// The store's copy of the body, and how much of it is written.
    copy: Option<PendingBody>,
    stored: u64,
    /// The origin's body arrived whole (before the fill ends: see `Fill::all_received`).
    all_received: bool,
    /// Each waiter's next byte (by the number of its body), for a spilled fill's pace.
    readers: HashMap<u64, u64>,
    next_reader: u64,
    end: Option<Result<(), EdgeError>>,
    /// A passed response's body, until its one viewer takes it.
    passed: Option<Passed>,
    /// A passed response's viewer has claimed it.
    claimed: bool,
}

/// Which bytes a fill keeps in memory.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// All of them (a body up to 1 MiB).
    #[default]
    All,
    /// Those the store does not have yet, and the last `WINDOW`.
    Unstored,
    /// The last `WINDOW` only (storing stopped).
    Window,
}

impl FillData {
    fn is_passed(&self) -> bool {
        matches!(&self.head, Some(Ok(head)) if !head.shared)
    }

    /// Drops the chunks memory need not keep.
    fn trim(&mut self) {
        let recent = self.received.saturating_sub(WINDOW);
        let keep_from = match self.keep {
            Keep::All => return,
            Keep::Unstored => self.stored.min(recent),
            // Nor what a waiter still has to read, unless it was left behind.
            Keep::Window => self
                .readers
                .values()
                .copied()
                .filter(|&at| at != LEFT_BEHIND)
                .fold(recent, u64::min),
        };
        // The body's first bytes stay: a late joiner starts from memory at once, and reads the
        // rest from the store while it sends them.
        let first = self.chunks.partition_point(|(start, _)| *start < HEAD);
        while let Some((start, chunk)) = self.chunks.get(first) {
            if start + chunk.len() as u64 > keep_from {
                break;
            }
            self.chunks.remove(first);
        }
    }

    /// Where the bytes from `at` are: in memory (a chunk from `at`), in the store (how many may
    /// be read there), or lost to this waiter.
    fn locate(&self, at: u64) -> Source {
        let i = self.chunks.partition_point(|(start, _)| *start <= at);
        if let Some((start, chunk)) = i.checked_sub(1).and_then(|i| self.chunks.get(i))
            && at < start + chunk.len() as u64
        {
            return Source::Memory(chunk.slice((at - start) as usize..));
        }
        match &self.copy {
            Some(copy) if at < self.stored => {
                // Up to the next bytes memory has, which are sent from there.
                let next = self.chunks.get(i).map_or(u64::MAX, |(start, _)| *start);
                let len = (self.stored - at).min(next - at).min(crate::store::CHUNK);
                Source::Store(copy.clone(), len)
            }
            _ => Source::Lost,
        }
    }
}

/// The place of a waiter left behind by a spilled fill (`Fill::keep_pace`).
const LEFT_BEHIND: u64 = u64::MAX;

/// See [`FillData::locate`].
enum Source {
    /// Bytes from the position (empty: none received yet).
    Memory(Bytes),
    Store(PendingBody, u64),
    Lost,
}

/// The error of a body asked of a passed response by anyone but the viewer it went to.
fn passed_elsewhere() -> EdgeError {
    EdgeError::Internal("this response was passed to another viewer".into())
}

/// The origin's body of a response that is not shared, and how long it may stall.
#[derive(Debug)]
struct Passed {
    body: hyper::body::Incoming,
    idle_timeout: std::time::Duration,
}

impl Default for Fill {
    fn default() -> Self {
        Self {
            progress: watch::Sender::new(0),
            readers_moved: tokio::sync::Notify::new(),
            data: Mutex::new(FillData::default()),
        }
    }
}

impl Fill {
    fn lock(&self) -> std::sync::MutexGuard<'_, FillData> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self) {
        self.progress.send_modify(|v| *v += 1);
    }

    /// Leader: the origin's headers arrived (or the fetch failed before them).
    pub fn set_head(&self, head: Result<FillHead, EdgeError>) {
        let failed = head.is_err();
        {
            let mut data = self.lock();
            if let Err(error) = &head {
                data.end = Some(Err(error.clone()));
            }
            data.head = Some(head.map(Arc::new));
        }
        if failed {
            tracing::debug!("fill failed before headers");
        }
        self.notify();
    }

    /// Leader: the origin's headers of a response that is not shared, with its body for the
    /// one viewer that claims it. The fill ends here for everyone else.
    pub fn set_passed(
        &self,
        mut head: FillHead,
        body: hyper::body::Incoming,
        idle_timeout: std::time::Duration,
    ) {
        head.shared = false;
        {
            let mut data = self.lock();
            data.head = Some(Ok(Arc::new(head)));
            data.passed = Some(Passed { body, idle_timeout });
            data.end = Some(Ok(()));
        }
        self.notify();
    }

    /// May a request that arrives at `now` share this fill? Before the origin's headers, yes: it
    /// waits for the one fetch. After them, only while the response is fresh: a response
    /// already received is reused as a stored one would be (RFC 9111 §4), so a stale one, an
    /// error or one passed to a single viewer is fetched again. Never once it spilled.
    pub fn joinable(&self, now: std::time::SystemTime) -> bool {
        let data = self.lock();
        data.keep != Keep::Window
            && match &data.head {
                None => true,
                Some(Err(_)) => false,
                Some(Ok(head)) => head.shared && head.fresh_until.is_some_and(|t| now < t),
            }
    }

    /// May this caller answer from the fill? Always for a shared one; for a passed response,
    /// only the first caller (the others fetch on their own).
    pub fn claim(&self) -> bool {
        let mut data = self.lock();
        !data.is_passed() || !std::mem::replace(&mut data.claimed, true)
    }

    /// Leader: a body chunk arrived; `last` when it completes the body (see
    /// [`Fill::all_received`]).
    pub fn push(&self, chunk: Bytes, last: bool) {
        // An empty chunk would read as "nothing yet" to waiters; it carries nothing anyway.
        if chunk.is_empty() {
            return;
        }
        {
            let mut data = self.lock();
            data.all_received |= last;
            let at = data.received;
            data.received += chunk.len() as u64;
            data.chunks.push_back((at, chunk));
            data.trim();
        }
        self.notify();
    }

    /// Leader: the body is being written to the store, which waiters may read from `copy`.
    pub fn write_through(&self, copy: PendingBody) {
        let mut data = self.lock();
        data.copy = Some(copy);
        data.keep = Keep::Unstored;
    }

    /// Leader: the store has the body's first `bytes`.
    pub fn stored(&self, bytes: u64) {
        let mut data = self.lock();
        data.stored = bytes;
        data.trim();
    }

    /// Leader: storing stopped halfway; memory keeps the last `WINDOW` bytes only, and
    /// nobody new joins (`Fills::join_or_start` starts another fill).
    pub fn spill(&self) {
        let mut data = self.lock();
        data.keep = Keep::Window;
        data.trim();
    }

    /// Leader of a spilled fill: waits until every waiter is within `WINDOW` of the bytes
    /// received, so that the origin is read at the pace of the slowest one (nothing is lost
    /// to a viewer merely slower than the origin). A waiter that stays behind for `patience`
    /// is left behind: its bytes go, and its response ends with an error.
    pub async fn keep_pace(&self, patience: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let moved = self.readers_moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            {
                let data = self.lock();
                let floor = data.received.saturating_sub(WINDOW);
                if data.readers.values().all(|&at| at >= floor) {
                    return;
                }
            }
            if tokio::time::timeout_at(deadline, moved).await.is_err() {
                tracing::info!("a viewer stayed behind a spilled fill; it is left behind");
                let mut data = self.lock();
                let floor = data.received.saturating_sub(WINDOW);
                for at in data.readers.values_mut() {
                    if *at < floor {
                        *at = LEFT_BEHIND;
                    }
                }
                return;
            }
        }
    }

    /// How many waiters are reading the body.
    pub fn readers(&self) -> usize {
        self.lock().readers.len()
    }

    /// Waiter `id` is gone.
    fn reader_gone(&self, id: u64) {
        let spilled = {
            let mut data = self.lock();
            data.readers.remove(&id);
            data.keep == Keep::Window
        };
        if spilled {
            self.readers_moved.notify_waiters();
        }
    }

    /// Leader: the body ended, well or badly.
    pub fn finish(&self, end: Result<(), EdgeError>) {
        self.lock().end = Some(end);
        self.notify();
    }

    /// True once the whole body arrived intact (never for a passed response, whose body the
    /// fill does not hold).
    pub fn is_complete(&self) -> bool {
        let data = self.lock();
        (data.all_received || matches!(data.end, Some(Ok(())))) && !data.is_passed()
    }

    /// Leader: the origin's whole body is here (the fill ends once it is stored). A body of
    /// known length is marked so by the push of its last bytes; this is for one that ends.
    pub fn all_received(&self) {
        self.lock().all_received = true;
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.lock().received
    }

    /// The chunks of a fill kept whole in memory (for the store); `None` if some were let go.
    pub fn chunks(&self) -> Option<Vec<Bytes>> {
        let data = self.lock();
        (data.chunks.front().is_none_or(|(start, _)| *start == 0))
            .then(|| data.chunks.iter().map(|(_, c)| c.clone()).collect())
    }

    /// Waits for the origin's headers.
    pub async fn head(&self) -> Result<Arc<FillHead>, EdgeError> {
        let mut rx = self.progress.subscribe();
        loop {
            rx.borrow_and_update();
            if let Some(head) = &self.lock().head {
                return head.clone();
            }
            if rx.changed().await.is_err() {
                return Err(EdgeError::Internal("the fill ended without headers".into()));
            }
        }
    }

    /// The body from byte `skip`, at most `take` bytes, as it arrives. Ends with an error if
    /// the fill fails. A passed response's body goes to the first caller (who must have
    /// claimed it); any later one gets an error.
    pub fn body(self: &Arc<Self>, skip: u64, take: Option<u64>) -> Body {
        let passed = {
            let mut data = self.lock();
            data.is_passed().then(|| data.passed.take())
        };
        match passed {
            Some(Some(passed)) => return passed_body(passed, skip, take),
            Some(None) => {
                let error = passed_elsewhere().to_io();
                return StreamBody::new(futures_util::stream::once(async move { Err(error) }))
                    .boxed_unsync();
            }
            None => {}
        }
        struct Cursor {
            fill: Arc<Fill>,
            rx: watch::Receiver<u64>,
            id: u64,
            /// The next byte's position in the body.
            at: u64,
            left: Option<u64>,
        }
        impl Drop for Cursor {
            fn drop(&mut self) {
                self.fill.reader_gone(self.id);
            }
        }
        let id = {
            let mut data = self.lock();
            data.next_reader += 1;
            let id = data.next_reader;
            data.readers.insert(id, skip);
            id
        };
        let cursor = Cursor {
            rx: self.progress.subscribe(),
            fill: self.clone(),
            id,
            at: skip,
            left: take,
        };
        let stream = futures_util::stream::unfold(cursor, |mut c| async move {
            loop {
                if c.left == Some(0) {
                    return None;
                }
                c.rx.borrow_and_update();
                let (next, spilled) = {
                    let mut data = c.fill.lock();
                    // Where this waiter is, noted under the lock it takes anyway (a spilled
                    // fill paces the origin by it).
                    if let Some(place) = data.readers.get_mut(&c.id)
                        && *place != LEFT_BEHIND
                    {
                        *place = c.at;
                    }
                    let spilled = data.keep == Keep::Window;
                    let next = if c.at < data.received {
                        Ok(Some(data.locate(c.at)))
                    } else {
                        match &data.end {
                            // Passed after this body was made: its bytes are not here.
                            Some(Ok(())) if data.is_passed() => Err(passed_elsewhere().to_io()),
                            Some(Ok(())) => Ok(None),
                            Some(Err(error)) => Err(error.to_io()),
                            None => Ok(Some(Source::Memory(Bytes::new()))),
                        }
                    };
                    (next, spilled)
                };
                if spilled {
                    c.fill.readers_moved.notify_waiters();
                }
                let mut piece = match next {
                    Ok(Some(Source::Memory(chunk))) if chunk.is_empty() => {
                        // Nothing new yet: wait for the leader.
                        if c.rx.changed().await.is_err() {
                            let error =
                                EdgeError::Internal("the origin fetch was abandoned".into());
                            return Some((Err(error.to_io()), c));
                        }
                        continue;
                    }
                    Ok(Some(Source::Memory(chunk))) => chunk,
                    Ok(Some(Source::Store(copy, len))) => {
                        let len = c.left.map_or(len, |left| left.min(len));
                        let at = c.at;
                        let read = tokio::task::spawn_blocking(move || copy.read(at, len)).await;
                        match read {
                            Ok(Ok(bytes)) if bytes.len() as u64 == len => bytes,
                            Ok(Ok(_)) | Ok(Err(_)) | Err(_) => {
                                let error = EdgeError::Internal(
                                    "the stored copy of an object being fetched could not be read"
                                        .into(),
                                );
                                return Some((Err(error.to_io()), c));
                            }
                        }
                    }
                    Ok(Some(Source::Lost)) => {
                        let error = EdgeError::Internal(
                            "a viewer fell behind a fill its bytes are no longer kept for".into(),
                        );
                        return Some((Err(error.to_io()), c));
                    }
                    Ok(None) => return None,
                    Err(error) => return Some((Err(error), c)),
                };
                if let Some(left) = c.left.as_mut() {
                    if (piece.len() as u64) > *left {
                        piece = piece.slice(..*left as usize);
                    }
                    *left -= piece.len() as u64;
                }
                c.at += piece.len() as u64;
                return Some((Ok(hyper::body::Frame::data(piece)), c));
            }
        });
        StreamBody::new(stream).boxed_unsync()
    }
}

/// A passed origin body as one viewer's stream: `skip` bytes dropped, at most `take` sent,
/// each frame within the idle timeout. Nothing is kept: the viewer's connection pulls it.
fn passed_body(passed: Passed, skip: u64, take: Option<u64>) -> Body {
    struct State {
        body: hyper::body::Incoming,
        idle: std::time::Duration,
        skip: u64,
        left: Option<u64>,
    }
    let state = State {
        body: passed.body,
        idle: passed.idle_timeout,
        skip,
        left: take,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if s.left == Some(0) {
                return None;
            }
            let frame = match tokio::time::timeout(s.idle, s.body.frame()).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(Some(Err(error))) => {
                    let error = EdgeError::OriginBody(error.to_string().into());
                    return Some((Err(error.to_io()), s));
                }
                Ok(None) => return None,
                Err(_) => {
                    let error = EdgeError::OriginBody("the body stalled".into());
                    return Some((Err(error.to_io()), s));
                }
            };
            let Ok(mut data) = frame.into_data() else {
                continue;
            };
            if s.skip > 0 {
                let drop = s.skip.min(data.len() as u64);
                s.skip -= drop;
                data = data.slice(drop as usize..);
            }
            if let Some(left) = s.left.as_mut() {
                if data.len() as u64 > *left {
                    data.truncate(*left as usize);
                }
                *left -= data.len() as u64;
            }
            if data.is_empty() {
                continue;
            }
            return Some((Ok(hyper::body::Frame::data(data)), s));
        }
    });
    StreamBody::new(stream).boxed_unsync()
}

/// The fills in flight, by key.
#[derive(Debug, Default)]
pub struct Fills {
    inflight: Mutex<HashMap<String, Arc<Fill>>>,
}

impl Fills {
    /// Joins the fill for `key`, or starts one (also in place of one that may not be joined
    /// now: see [`Fill::joinable`]). The bool is
    /// true for the leader, which must drive the fill and call [`Fills::remove`] when done.
    pub fn join_or_start(&self, key: &str) -> (Arc<Fill>, bool) {
        self.join_or_start_unless(key, || false)
            .unwrap_or_else(|| unreachable!("nothing said it was stored"))
    }

    /// [`Fills::join_or_start`], except that when there is no fill to join and `stored` says
    /// the object is stored now, it starts none (None). `stored` is asked under the lock a
    /// leader takes to remove its fill, which it does only after storing the object: a
    /// request that missed the store just before a fill ended thus finds the fill or the
    /// stored object, never neither (it would fetch the object again).
    pub fn join_or_start_unless(
        &self,
        key: &str,
        stored: impl FnOnce() -> bool,
    ) -> Option<(Arc<Fill>, bool)> {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(fill) = inflight.get(key)
            && fill.joinable(std::time::SystemTime::now())
        {
            return Some((fill.clone(), false));
        }
        if stored() {
            return None;
        }
        let fill = Arc::new(Fill::default());
        inflight.insert(key.to_owned(), fill.clone());
        Some((fill, true))
    }

    /// True when a fill for `key` is in flight.
    pub fn contains(&self, key: &str) -> bool {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(key)
    }

    /// Forgets the fill for `key` (if it is still `fill`).
    pub fn remove(&self, key: &str, fill: &Fill) {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if inflight
            .get(key)
            .is_some_and(|f| std::ptr::eq(Arc::as_ptr(f), fill))
        {
            inflight.remove(key);
        }
    }

    /// True when `fill` is the one in flight for its key (a spilled one may have been replaced).
    pub fn holds(&self, fill: &Fill) -> bool {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|f| std::ptr::eq(Arc::as_ptr(f), fill))
    }

    /// Fills in flight now.
    pub fn len(&self) -> usize {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(body: Body) -> Result<Vec<u8>, std::io::Error> {
        let bytes = body.collect().await?.to_bytes();
        Ok(bytes.to_vec())
    }

    #[tokio::test]
    async fn waiters_see_all_bytes_and_slices() {
        let fill = Arc::new(Fill::default());
        let whole = fill.body(0, None);
        let middle = fill.body(3, Some(4));
        fill.set_head(Ok(FillHead {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            content_length: Some(10),
            age: 0,
            request_headers: HeaderMap::new(),
            shared: true,
            fresh_until: None,
        }));
        fill.push(Bytes::from_static(b"0123"), false);
        fill.push(Bytes::from_static(b"456789"), true);
        fill.finish(Ok(()));
        assert_eq!(collect(whole).await.unwrap(), b"0123456789");
        assert_eq!(collect(middle).await.unwrap(), b"3456");
        // A late waiter still gets everything.
        assert_eq!(collect(fill.body(0, None)).await.unwrap(), b"0123456789");
    }

    #[tokio::test]
    async fn a_failed_fill_ends_bodies_with_an_error() {
        let fill = Arc::new(Fill::default());
        let body = fill.body(0, None);
        fill.push(Bytes::from_static(b"partial"), false);
        fill.finish(Err(EdgeError::OriginBody("reset".into())));
        assert!(collect(body).await.is_err());
    }

    #[test]
    fn one_leader_per_key() {
        let fills = Fills::default();
        let (a, leader_a) = fills.join_or_start("k");
        let (b, leader_b) = fills.join_or_start("k");
        assert!(leader_a && !leader_b && Arc::ptr_eq(&a, &b));
        fills.remove("k", &a);
        assert!(fills.join_or_start("k").1);
    }

    /// After the origin's headers, a fill is joined only while its response is fresh; one that
    /// failed before them is never joined (the next request fetches again).
    #[test]
    fn a_fill_is_joined_after_its_headers_only_while_fresh() {
        let now = std::time::SystemTime::now();
        let head = |fresh_until| FillHead {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            content_length: Some(1),
            age: 0,
            request_headers: HeaderMap::new(),
            shared: true,
            fresh_until,
        };
        let fill = Fill::default();
        assert!(fill.joinable(now), "before the headers");
        fill.set_head(Ok(head(Some(now + std::time::Duration::from_secs(60)))));
        assert!(fill.joinable(now));
        assert!(!fill.joinable(now + std::time::Duration::from_secs(61)));
        let stale = Fill::default();
        stale.set_head(Ok(head(None)));
        assert!(!stale.joinable(now));
        let failed = Fill::default();
        failed.set_head(Err(EdgeError::Internal("refused".into())));
        assert!(!failed.joinable(now));

        let fills = Fills::default();
        let (a, _) = fills.join_or_start("k");
        a.set_head(Ok(head(None)));
        let (b, leader) = fills.join_or_start("k");
        assert!(
            leader && !Arc::ptr_eq(&a, &b),
            "a stale response's fill is not joined"
        );
        fills.remove("k", &a);
        assert!(
            !fills.join_or_start("k").1,
            "its leader does not remove the new fill"
        );
    }

    /// A request that missed the store starts no fill if the object was stored since, and
    /// joins the one in flight whatever the store says.
    #[test]
    fn a_miss_that_finds_the_object_stored_since_starts_no_fill() {
        let fills = Fills::default();
        assert!(fills.join_or_start_unless("k", || true).is_none());
        assert_eq!(fills.len(), 0);
        let (a, leader) = fills.join_or_start_unless("k", || false).expect("a fill");
        assert!(leader);
        let (b, leader) = fills.join_or_start_unless("k", || true).expect("joined");
        assert!(!leader && Arc::ptr_eq(&a, &b));
    }
}
