//! The one response body type of every Meridian HTTP handler, and small constructors for it
//! and for the responses built the same way everywhere (JSON, short texts).
//!
//! Bodies are boxed so that a handler can answer with a streamed file, a proxied origin body or a
//! short text with one type. They are `Send` but not `Sync`, which hyper does not need and which
//! streamed file bodies are not.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

/// A boxed response body whose errors are I/O errors (a file read or an upstream that failed).
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A body with nothing in it (HEAD, 304, 204).
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body held whole in memory: playlists, JSON, short error texts.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A JSON response (`application/json`) of `value`: the router's API, `/status`.
pub fn json(value: &serde_json::Value) -> http::Response<Body> {
    let mut response = http::Response::new(full(value.to_string()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A short plain-text response, used for errors, so that a person with curl sees why.
pub fn text(status: http::StatusCode, message: impl Into<String>) -> http::Response<Body> {
    let mut text = message.into();
    text.push('\n');
    let mut response = http::Response::new(full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `body`, holding `guard` until it is sent or dropped (a request counts as in flight until
/// then: see `http_server`; an edge's responses in progress, the same).
pub fn with_guard<G: Send + Unpin + 'static>(body: Body, guard: G) -> Body {
    struct Guarded<G> {
        body: Body,
        _guard: G,
    }
    impl<G: Unpin> hyper::body::Body for Guarded<G> {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
            std::pin::Pin::new(&mut self.body).poll_frame(cx)
        }

        fn is_end_stream(&self) -> bool {
            self.body.is_end_stream()
        }

        fn size_hint(&self) -> hyper::body::SizeHint {
            self.body.size_hint()
        }
    }
    Guarded {
        body,
        _guard: guard,
    }
    .boxed_unsync()
}

/// A request body read at a bounded pace: it fails (with `ErrorKind::TimedOut`) when no bytes
/// come for `idle`, or when, past the first `idle`, it has averaged under `min_rate` bytes per
/// second (a client trickling a body to hold the connection). `timed_out` is set when it
/// failed for either, so the handler can answer 408.
pub fn timed<B>(
    body: B,
    idle: std::time::Duration,
    min_rate: u64,
    timed_out: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> TimedBody<B> {
    TimedBody {
        body,
        idle,
        min_rate,
        started: tokio::time::Instant::now(),
        received: 0,
        timer: Box::pin(tokio::time::sleep(idle)),
        timed_out,
    }
}

/// See [`timed`].
#[derive(Debug)]
pub struct TimedBody<B> {
    body: B,
    idle: std::time::Duration,
    min_rate: u64,
    started: tokio::time::Instant,
    received: u64,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    timed_out: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<B> TimedBody<B> {
    fn fail(&self, why: &str) -> std::io::Error {
        self.timed_out
            .store(true, std::sync::atomic::Ordering::SeqCst);
        std::io::Error::new(std::io::ErrorKind::TimedOut, why.to_owned())
    }
}

impl<B> hyper::body::Body for TimedBody<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.received += data.len() as u64;
                }
                let now = tokio::time::Instant::now();
                let elapsed = now.duration_since(self.started);
                if elapsed > self.idle
                    && (self.received as f64) < self.min_rate as f64 * elapsed.as_secs_f64()
                {
                    return Poll::Ready(Some(Err(
                        self.fail("the request body came slower than the minimum rate")
                    )));
                }
                let deadline = now + self.idle;
                self.timer.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                Poll::Ready(Some(Err(std::io::Error::other(error.to_string()))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if self.timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(self.fail("the request body stalled"))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}
