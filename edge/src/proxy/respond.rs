//! The responses the request path sends: from a stored object, streamed from a fill, or an
//! error. A stored object's or a fill's answer goes through [`respond`], where the viewer's own
//! conditionals and ranges are answered by the same decision the origin makes
//! (`video_http::conditional`), and HEAD gets the headers without the body. A manifest is
//! rewritten (`crate::manifests`) before that, so conditionals and ranges apply to the bytes
//! the viewer gets.

use std::sync::Arc;

use bytes::Bytes;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use server_kit::zero_copy::FileSends;
use server_kit::{Body, body};
use video_http::conditional::{self, Decision, Validators};
use video_http::range;

use super::Edge;
use crate::error::EdgeError;
use crate::fill::{Fill, FillHead};
use crate::manifests::MAX_REWRITTEN;
use crate::meta::{self, CachedMeta};
use crate::store::{StoredBody, StoredObject};
use video_http::manifest::Manifest;

/// Builds the response of `status` with `headers` (the representation's) for `request`, for a
/// body of `len` bytes (`None` while unknown). `body(start, take)` produces the bytes from
/// `start`, at most `take` of them.
pub(super) fn respond<B>(
    request: &Request<B>,
    status: StatusCode,
    mut headers: HeaderMap,
    len: Option<u64>,
    body: impl FnOnce(u64, Option<u64>) -> Body,
) -> Response<Body> {
    let decision = conditional::decide(
        request.method(),
        request.headers(),
        status,
        Validators::from_headers(&headers),
        len,
    );
    if status == StatusCode::OK && len.is_some() {
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    let head_only = request.method() == Method::HEAD;
    let (status, body) = match (decision, len) {
        (Decision::NotModified, _) => {
            headers.remove(header::CONTENT_LENGTH);
            (StatusCode::NOT_MODIFIED, body::empty())
        }
        (Decision::PreconditionFailed, _) => {
            // An error about the request, not the representation: none of its headers (a
            // downstream cache must not take the object's freshness for this answer's).
            let cache = headers.remove("x-cache");
            headers.clear();
            if let Some(cache) = cache {
                headers.insert("x-cache", cache);
            }
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
            (StatusCode::PRECONDITION_FAILED, body::empty())
        }
        (Decision::Unsatisfiable, Some(len)) => {
            headers.insert(
                header::CONTENT_RANGE,
                header_value(range::unsatisfied_content_range(len)),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
            (StatusCode::RANGE_NOT_SATISFIABLE, body::empty())
        }
        (Decision::Partial(span), Some(len)) => {
            let take = span.end - span.start;
            headers.insert(
                header::CONTENT_RANGE,
                header_value(range::content_range(&span, len)),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(take));
            let bytes = if head_only {
                body::empty()
            } else {
                body(span.start, Some(take))
            };
            (StatusCode::PARTIAL_CONTENT, bytes)
        }
        _ => {
            match len {
                Some(len) => headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len)),
                None => headers.remove(header::CONTENT_LENGTH),
            };
            let bytes = if head_only {
                body::empty()
            } else {
                body(0, None)
            };
            (status, bytes)
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn header_value(s: String) -> HeaderValue {
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

impl Edge {
    /// A stored object as this request gets it: validators, ranges and HEAD are answered here,
    /// a manifest rewritten first (`crate::manifests`).
    pub(super) fn stored_response(
        &self,
        request: &Request<Incoming>,
        object: &StoredObject<CachedMeta>,
        age: Duration,
        cache: &'static str,
    ) -> Response<Body> {
        let mut headers = object.meta.header_map();
        let status = StatusCode::from_u16(object.meta.status).unwrap_or(StatusCode::OK);
        headers.insert(header::AGE, HeaderValue::from(age.as_secs()));
        headers.insert("x-cache", HeaderValue::from_static(cache));
        let len = object.body.len();
        let Some(whole) = object.body.whole() else {
            // Larger than a manifest gets: read from the store as it is sent.
            let stored = object.body.clone();
            return respond(request, status, headers, Some(len), move |start, take| {
                stored_chunks(stored, start, take.unwrap_or(len - start))
            });
        };
        let rewritten = self
            .manifests
            .applies(request.uri().path(), status, &headers, Some(len))
            .and_then(|kind| self.rewritten(request, kind, &mut headers, whole));
        if let Some(body) = rewritten {
            return respond_bytes(request, status, headers, body);
        }
        // On a plain HTTP/1 connection a held body of the zero-copy sizes goes from its sealed
        // copy, made here the first time a body is sent (not for HEAD, 304 or 412).
        if let Some(sends) = request.extensions().get::<FileSends>()
            && object.body.may_be_sealed()
        {
            let (sends, stored, whole) = (sends.clone(), object.body.clone(), whole.clone());
            return respond(request, status, headers, Some(len), move |start, take| {
                let end = take.map_or(len, |take| start + take);
                match stored.sealed() {
                    Some(sealed) => server_kit::zero_copy::body(sends, sealed, start, end),
                    None => body::full(whole.slice(start as usize..end as usize)),
                }
            });
        }
        respond_bytes(request, status, headers, whole.clone())
    }

    /// A response streamed from a fill; a manifest is read whole first, to be rewritten.
    pub(super) async fn fill_response(
        &self,
        request: &Request<Incoming>,
        fill: &Arc<Fill>,
        head: &FillHead,
        cache: &'static str,
    ) -> Response<Body> {
        let mut headers = HeaderMap::with_capacity(head.headers.len() + 3);
        for (name, value) in &crate::forward::end_to_end(&head.headers) {
            if !meta::is_not_stored(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(header::AGE, HeaderValue::from(head.age));
        headers.insert("x-cache", HeaderValue::from_static(cache));
        // A passed body can be read once: it is rewritten only when it is known to fit.
        let readable_twice = head.shared || head.content_length.is_some();
        let manifest = self.manifests.applies(
            request.uri().path(),
            head.status,
            &headers,
            head.content_length,
        );
        if readable_twice && let Some(kind) = manifest {
            let limited = http_body_util::Limited::new(fill.body(0, None), MAX_REWRITTEN as usize);
            match http_body_util::BodyExt::collect(limited).await {
                Ok(collected) => {
                    let whole = collected.to_bytes();
                    let body = self
                        .rewritten(request, kind, &mut headers, &whole)
                        .unwrap_or(whole);
                    return respond_bytes(request, head.status, headers, body);
                }
                // Larger than a manifest is rewritten: it goes out as the origin sent it.
                Err(error) if error.is::<http_body_util::LengthLimitError>() => {}
                Err(error) => {
                    let error = EdgeError::OriginBody(error.to_string().into());
                    return error_response(&error);
                }
            }
        }
        respond(
            request,
            head.status,
            headers,
            head.content_length,
            |start, take| fill.body(start, take),
        )
    }

    /// The body this edge serves for a manifest (headers updated to match), or `None` when the
    /// origin's goes out unchanged.
    fn rewritten(
        &self,
        request: &Request<Incoming>,
        kind: Manifest,
        headers: &mut HeaderMap,
        body: &Bytes,
    ) -> Option<Bytes> {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| request.uri().authority().map(|a| a.as_str()));
        let signed = request
            .extensions()
            .get::<super::dispatch::SignedPrefix>()
            .map(|p| (p.0.token.as_str(), p.0.prefix.as_str()));
        self.manifests.rewrite(kind, body, host, signed, headers)
    }
}

/// [`respond`] for a body held whole in memory (a stored object's, or a rewritten manifest).
fn respond_bytes<B>(
    request: &Request<B>,
    status: StatusCode,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response<Body> {
    let len = bytes.len() as u64;
    respond(request, status, headers, Some(len), |start, take| {
        let end = take.map_or(len, |t| start + t);
        body::full(bytes.slice(start as usize..end as usize))
    })
}

/// `take` bytes of a stored body from `start`, read chunk by chunk on the blocking pool while
/// the viewer takes them. If the object leaves the store meanwhile, the body ends with an error
/// (the viewer sees a cut response, never wrong bytes).
fn stored_chunks(stored: StoredBody, start: u64, take: u64) -> Body {
    use http_body_util::BodyExt;
    let end = start + take;
    let stream = futures_util::stream::unfold((stored, start), move |(stored, at)| async move {
        if at >= end {
            return None;
        }
        let len = crate::store::CHUNK.min(end - at);
        let reader = stored.clone();
        let chunk = tokio::task::spawn_blocking(move || reader.read(at, len))
            .await
            .map_err(std::io::Error::other)
            .and_then(|read| read);
        let next = if chunk.is_ok() { at + len } else { end };
        Some((chunk.map(hyper::body::Frame::data), (stored, next)))
    });
    http_body_util::StreamBody::new(stream).boxed_unsync()
}

/// What a viewer gets when the edge cannot answer: who failed, and what to do.
pub(super) fn error_response(error: &EdgeError) -> Response<Body> {
    body::text(error.status(), error.advice())
}

/// An origin's response passed on to the viewer as it streams, without its hop-by-hop fields.
pub(super) fn passed_on(parts: http::response::Parts, body: Incoming) -> Response<Body> {
    use http_body_util::BodyExt;
    let mut out = Response::new(body.map_err(std::io::Error::other).boxed_unsync());
    *out.status_mut() = parts.status;
    *out.headers_mut() = crate::forward::end_to_end(&parts.headers);
    out
}
