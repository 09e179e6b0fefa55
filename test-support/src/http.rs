//! A small HTTP client for tests, on hyper-util's client: one connection pool per call site is
//! plenty, and it never rewrites paths (so `/../x` reaches the server as written). Every call
//! gives up after [`TIMEOUT`] for the response headers and again for the body, so a server that
//! hangs fails the test instead of holding it forever.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// A header's value as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How long a test waits for response headers, and then for the whole body.
pub const TIMEOUT: Duration = Duration::from_secs(30);

fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `method url` with `headers` and returns the response with its body still streaming.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
) -> hyper::Response<Incoming> {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Empty::new())
        .unwrap_or_else(|e| panic!("bad request {url}: {e}"));
    tokio::time::timeout(TIMEOUT, client().request(request))
        .await
        .unwrap_or_else(|_| panic!("request to {url}: no response headers within {TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("request to {url} failed: {e}"))
}

/// Sends `method url` with `headers` and reads the whole body.
pub async fn fetch(method: Method, url: &str, headers: &[(&str, &str)]) -> Reply {
    let response = send(method, url, headers).await;
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(TIMEOUT, body.collect())
        .await
        .unwrap_or_else(|_| panic!("body of {url}: not complete within {TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("body of {url} failed: {e}"))
        .to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// `GET url` with `headers`.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    fetch(Method::GET, url, headers).await
}

/// Why [`try_get`] got no whole response: which URL, and what broke.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL does not make a request.
    #[error("GET {url}: not a usable request: {error}")]
    Request { url: String, error: http::Error },
    /// No connection, or no response on it: the server is not (or no longer) listening there.
    #[error("GET {url}: no response: {error}")]
    Send {
        url: String,
        error: hyper_util::client::legacy::Error,
    },
    /// The response started but its body broke off.
    #[error("GET {url}: the body broke off: {error}")]
    Body { url: String, error: hyper::Error },
    /// The server accepted but did not answer (or finish the body) within [`TIMEOUT`].
    #[error("GET {url}: nothing within {TIMEOUT:?}; the server hangs")]
    Timeout { url: String },
}

/// `GET url`, reporting failures (connection refused, broken body) instead of panicking.
pub async fn try_get(url: &str) -> Result<Reply, Error> {
    let request = Request::builder()
        .uri(url)
        .body(Empty::new())
        .map_err(|error| Error::Request {
            url: url.to_owned(),
            error,
        })?;
    let timeout = || Error::Timeout {
        url: url.to_owned(),
    };
    let response = tokio::time::timeout(TIMEOUT, client().request(request))
        .await
        .map_err(|_| timeout())?
        .map_err(|error| Error::Send {
            url: url.to_owned(),
            error,
        })?;
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(TIMEOUT, body.collect())
        .await
        .map_err(|_| timeout())?
        .map_err(|error| Error::Body {
            url: url.to_owned(),
            error,
        })?
        .to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// Opens a TCP connection to `url`'s address (`http://host:port`), sends nothing, and waits up
/// to `limit` for the server to close it: `Ok(how long it took)`, or `Err` if it was still
/// open at `limit`. A reset counts as closed.
pub fn silent_connection_closed(
    url: &str,
    limit: std::time::Duration,
) -> Result<std::time::Duration, String> {
    use std::io::Read;
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream =
        std::net::TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(started.elapsed()),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("{addr}: still open after {limit:?}"));
            }
            Err(_) => return Ok(started.elapsed()),
        }
    }
}
