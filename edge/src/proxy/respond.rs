//! A status, headers and a body source to the response one request gets: the viewer's own
//! conditionals and ranges are answered here, by the same decision the origin makes
//! (`video_http::conditional`), and HEAD gets the headers without the body.

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use server_kit::{Body, body};
use video_http::conditional::{self, Decision, Validators};
use video_http::range;

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
