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
/// then: see `http_server`).
pub(crate) fn with_guard<G: Send + Unpin + 'static>(body: Body, guard: G) -> Body {
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
