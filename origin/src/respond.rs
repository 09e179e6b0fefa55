//! One representation to one HTTP response.
//!
//! Files and generated playlists go through the same steps: `video_http::conditional` decides
//! 200, 206, 304, 412 or 416 (the edge makes the same decision for what it stores). Files are streamed in 64 KiB chunks from an open handle, never read
//! whole, so a large file costs a buffer, not its size.

use std::io::SeekFrom;
use std::ops::Range;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{HeaderMap, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use server_kit::{Body, body};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;
use video_http::conditional::{self, Decision, Validators};
use video_http::media::MediaKind;
use video_http::range;
use video_http::validators;

use crate::metrics::Metrics;

const CHUNK: usize = 64 * 1024;

/// Where a representation's bytes come from.
#[derive(Debug)]
pub enum Source {
    /// An open file of the given length.
    File(tokio::fs::File),
    /// Bytes generated in memory (live playlists).
    Memory(Bytes),
}

/// Everything needed to answer for one representation.
#[derive(Debug)]
pub struct Representation {
    pub kind: MediaKind,
    pub content_type: &'static str,
    pub cache_control: String,
    pub etag: String,
    pub modified: SystemTime,
    pub len: u64,
    pub source: Source,
}

impl Representation {
    /// A file's representation; its validators come from its size and modification time, as
    /// nginx's do, so two origins serving the same files agree without reading them.
    pub async fn file(
        path: &std::path::Path,
        kind: MediaKind,
        content_type: &'static str,
        cache_control: String,
    ) -> std::io::Result<Self> {
        let file = tokio::fs::File::open(path).await?;
        let meta = file.metadata().await?;
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let nanos = modified
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Ok(Self {
            kind,
            content_type,
            cache_control,
            etag: format!("\"{:x}-{:x}\"", meta.len(), nanos),
            modified,
            len: meta.len(),
            source: Source::File(file),
        })
    }

    /// A generated representation; the entity tag is a hash of its bytes.
    pub fn memory(
        bytes: Bytes,
        kind: MediaKind,
        content_type: &'static str,
        cache_control: String,
        modified: SystemTime,
    ) -> Self {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut hasher);
        Self {
            kind,
            content_type,
            cache_control,
            etag: format!("\"g{:x}-{:x}\"", bytes.len(), hasher.finish()),
            modified,
            len: bytes.len() as u64,
            source: Source::Memory(bytes),
        }
    }
}

/// Answers `method` with `headers` (the request's) for `rep`.
pub async fn respond(
    method: &Method,
    headers: &HeaderMap,
    rep: Representation,
    metrics: &Metrics,
) -> Response<Body> {
    let mut builder = Response::builder()
        .header(header::ETAG, &rep.etag)
        .header(header::LAST_MODIFIED, validators::http_date(rep.modified))
        .header(header::CACHE_CONTROL, &rep.cache_control)
        .header(header::ACCEPT_RANGES, "bytes");

    let validators = Validators {
        etag: Some(&rep.etag),
        last_modified: Some(rep.modified),
    };
    let span = match conditional::decide(method, headers, StatusCode::OK, validators, Some(rep.len))
    {
        Decision::NotModified => {
            return finish(builder.status(StatusCode::NOT_MODIFIED), body::empty());
        }
        Decision::PreconditionFailed => {
            // An error about the request: none of the representation's headers.
            let builder = Response::builder()
                .status(StatusCode::PRECONDITION_FAILED)
                .header(header::CONTENT_LENGTH, 0);
            return finish(builder, body::empty());
        }
        Decision::Unsatisfiable => {
            builder = builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(
                    header::CONTENT_RANGE,
                    range::unsatisfied_content_range(rep.len),
                )
                .header(header::CONTENT_LENGTH, 0);
            return finish(builder, body::empty());
        }
        Decision::Partial(span) => {
            builder = builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, range::content_range(&span, rep.len));
            span
        }
        Decision::Full => 0..rep.len,
    };
    builder = builder
        .header(header::CONTENT_TYPE, rep.content_type)
        .header(header::CONTENT_LENGTH, span.end - span.start);
    if method == Method::HEAD {
        return finish(builder, body::empty());
    }
    match body_for(rep.source, span, rep.kind, metrics).await {
        Ok(body) => finish(builder, body),
        Err(error) => {
            tracing::error!(%error, "internal: reading the file failed");
            body::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal: reading the file failed",
            )
        }
    }
}

fn finish(builder: http::response::Builder, body: Body) -> Response<Body> {
    builder.body(body).unwrap_or_else(|error| {
        tracing::error!(%error, "internal: building a response failed");
        body::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal: bad response headers",
        )
    })
}

async fn body_for(
    source: Source,
    span: Range<u64>,
    kind: MediaKind,
    metrics: &Metrics,
) -> std::io::Result<Body> {
    let counter = metrics.bytes_sent(kind);
    match source {
        Source::Memory(bytes) => {
            let slice = bytes.slice(span.start as usize..span.end as usize);
            counter.inc_by(slice.len() as u64);
            Ok(body::full(slice))
        }
        Source::File(mut file) => {
            if span.start > 0 {
                file.seek(SeekFrom::Start(span.start)).await?;
            }
            let stream = ReaderStream::with_capacity(file.take(span.end - span.start), CHUNK)
                .map_ok(move |chunk| {
                    counter.inc_by(chunk.len() as u64);
                    hyper::body::Frame::data(chunk)
                });
            Ok(StreamBody::new(stream).boxed_unsync())
        }
    }
}
