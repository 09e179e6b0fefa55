//! A scripted origin for edge tests: a real HTTP/1.1 server on 127.0.0.1:0 whose routes say
//! what to send and how (status, headers, body, pacing, a deliberate abort), and which counts
//! the requests it gets and notes when it finished sending each body.
//!
//! It stands in for third-party origin behaviour that our own origin never shows (slow bodies,
//! mid-body failures), so that the edge can be tested against it over real sockets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What one path answers.
#[derive(Debug, Clone)]
pub struct Route {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Bytes per chunk, and the pause before each chunk.
    pub chunk: usize,
    pub chunk_delay: Duration,
    /// Stop with an error after this many bytes (the connection breaks mid-body).
    pub abort_after: Option<usize>,
    /// Send no `Content-Length` (HTTP/1.1 chunked encoding).
    pub unknown_length: bool,
}

impl Route {
    /// A 200 with `body` and `Cache-Control: cache_control`, sent at once.
    pub fn ok(body: impl Into<Bytes>, cache_control: &str) -> Self {
        Self {
            status: 200,
            headers: vec![("cache-control".into(), cache_control.into())],
            body: body.into(),
            chunk: 64 * 1024,
            chunk_delay: Duration::ZERO,
            abort_after: None,
            unknown_length: false,
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends the body in `chunk`-byte pieces with `delay` before each.
    pub fn paced(mut self, chunk: usize, delay: Duration) -> Self {
        self.chunk = chunk;
        self.chunk_delay = delay;
        self
    }

    /// Sends the body without a `Content-Length` (chunked).
    pub fn without_length(mut self) -> Self {
        self.unknown_length = true;
        self
    }

    /// Breaks the connection after `bytes` of the body.
    pub fn abort_after(mut self, bytes: usize) -> Self {
        self.abort_after = Some(bytes);
        self
    }
}

#[derive(Debug, Default)]
struct State {
    routes: HashMap<String, Route>,
    /// Answers for paths with no route: a body made from the path, `size` bytes long.
    generated: Option<(usize, String)>,
    hits: HashMap<String, usize>,
    not_modified: HashMap<String, usize>,
    finished: HashMap<String, Instant>,
    /// The last request to each path: its method, headers and how many body bytes came.
    last: HashMap<String, (http::Method, http::HeaderMap, usize)>,
    /// Stopped: connections still open are closed without an answer.
    down: bool,
}

/// A running scripted origin; stops when dropped.
#[derive(Debug)]
pub struct TestOrigin {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: CancellationToken,
}

impl TestOrigin {
    /// Starts on 127.0.0.1 with a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind test origin");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = CancellationToken::new();
        let (st, token) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = token.cancelled() => return,
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                };
                let (st, token) = (st.clone(), token.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let st = st.clone();
                        async move {
                            if st.lock().unwrap_or_else(|p| p.into_inner()).down {
                                return Err(std::io::Error::other("test origin is down"));
                            }
                            Ok(answer(&st, req).await)
                        }
                    });
                    let conn =
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = token.cancelled() => {}
                    }
                });
            }
        });
        Self { addr, state, stop }
    }

    /// The last request for `path`: its method, headers and the number of body bytes read.
    pub fn last_request(&self, path: &str) -> Option<(http::Method, http::HeaderMap, usize)> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last
            .get(path)
            .cloned()
    }

    /// The base URL, like `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets what `path` answers.
    pub fn route(&self, path: &str, route: Route) {
        self.lock().routes.insert(path.into(), route);
    }

    /// Paths without a route answer 200 with `size` bytes derived from the path and
    /// `Cache-Control: cache_control`.
    pub fn generate(&self, size: usize, cache_control: &str) {
        self.lock().generated = Some((size, cache_control.into()));
    }

    /// Requests received for `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.lock().hits.get(path).copied().unwrap_or(0)
    }

    /// 304 answers sent for `path`.
    pub fn not_modified(&self, path: &str) -> usize {
        self.lock().not_modified.get(path).copied().unwrap_or(0)
    }

    /// When the last body for `path` was completely sent.
    pub fn finished_at(&self, path: &str) -> Option<Instant> {
        self.lock().finished.get(path).copied()
    }

    /// Stops answering: the listener closes and open connections drop.
    pub fn stop(&self) {
        self.lock().down = true;
        self.stop.cancel();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The body the generator serves for `path`: deterministic, different for every path.
pub fn generated_body(path: &str, size: usize) -> Bytes {
    let mut x: u64 = path.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

type OriginBody = BoxBody<Bytes, std::io::Error>;

async fn answer(state: &Arc<Mutex<State>>, request: Request<Incoming>) -> Response<OriginBody> {
    let path = request.uri().path().to_owned();
    let (parts, mut body) = request.into_parts();
    // The body is read (and counted) before answering, as an application origin would.
    let mut received = 0;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            received += data.len();
        }
    }
    let request = Request::from_parts(parts, ());
    let route = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.last.insert(
            path.clone(),
            (
                request.method().clone(),
                request.headers().clone(),
                received,
            ),
        );
        *s.hits.entry(path.clone()).or_default() += 1;
        match (s.routes.get(&path), &s.generated) {
            (Some(route), _) => Some(route.clone()),
            (None, Some((size, cc))) => Some(Route::ok(generated_body(&path, *size), cc)),
            (None, None) => None,
        }
    };
    let Some(route) = route else {
        let mut r = Response::new(
            Full::new(Bytes::from_static(b"no such route"))
                .map_err(|n| match n {})
                .boxed(),
        );
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    };
    let etag = route
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("etag"))
        .map(|(_, v)| v.clone());
    let inm = request
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok());
    let mut builder = Response::builder().status(route.status);
    for (name, value) in &route.headers {
        builder = builder.header(name, value);
    }
    if let (Some(etag), Some(inm)) = (&etag, inm)
        && inm == etag
    {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        *s.not_modified.entry(path).or_default() += 1;
        return builder
            .status(304)
            .body(Full::new(Bytes::new()).map_err(|n| match n {}).boxed())
            .unwrap_or_else(|_| {
                Response::new(Full::new(Bytes::new()).map_err(|n| match n {}).boxed())
            });
    }
    if !route.unknown_length {
        builder = builder.header("content-length", route.body.len());
    }
    let state = state.clone();
    let stream = futures_util::stream::unfold(
        (0usize, route, path, state),
        |(sent, route, path, state)| async move {
            if sent >= route.body.len() {
                state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .finished
                    .insert(path, Instant::now());
                return None;
            }
            if let Some(limit) = route.abort_after
                && sent >= limit
            {
                return Some((
                    Err(std::io::Error::other("test origin aborts mid-body")),
                    (usize::MAX, route, path, state),
                ));
            }
            if !route.chunk_delay.is_zero() {
                tokio::time::sleep(route.chunk_delay).await;
            }
            let mut end = (sent + route.chunk).min(route.body.len());
            if let Some(limit) = route.abort_after {
                end = end.min(limit.max(sent + 1));
            }
            let chunk = route.body.slice(sent..end);
            if end == route.body.len() {
                // hyper stops polling once Content-Length bytes are out, so note the end here.
                state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .finished
                    .insert(path.clone(), Instant::now());
            }
            Some((Ok(Frame::data(chunk)), (end, route, path, state)))
        },
    );
    builder
        .body(StreamBody::new(stream).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).map_err(|n| match n {}).boxed()))
}
