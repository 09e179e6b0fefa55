//! End-to-end tests of the edge binary against real origins on 127.0.0.1:0: our own origin
//! binary, or the scripted origin of test-support where a test needs an origin that misbehaves.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use http_body_util::BodyExt;
use test_support::http::{Reply, fetch, get, send};
use test_support::origin::{Route, TestOrigin, generated_body};
use test_support::{ServerProcess, Sig, run_to_end, testdata};

const EDGE: &str = env!("CARGO_BIN_EXE_edge");
const ORIGIN: &str = "origin";

/// Starts an edge in front of `origin` with its store in `dir`.
fn start_edge(origin: &str, dir: &Path, extra: &[&str]) -> ServerProcess {
    let store = dir.join("edge.store");
    let store = store.to_str().expect("utf-8");
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--origin",
        origin,
        "--store",
        store,
        "--name",
        "test-edge",
        "--region",
        "test-region",
    ];
    if !extra.contains(&"--capacity") {
        args.extend_from_slice(&["--capacity", "64MiB"]);
    }
    args.extend_from_slice(extra);
    ServerProcess::start(EDGE, &args, &["http", "admin"])
}

/// An edge started with `toml` as its config file, beside the usual flags and `extra`.
fn start_edge_with_config(origin: &str, dir: &Path, toml: &str, extra: &[&str]) -> ServerProcess {
    let config = dir.join("edge.toml");
    std::fs::write(&config, toml).expect("write config");
    let mut args = vec!["--config", config.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    start_edge(origin, dir, &args)
}

/// Held by the tests that load the machine (the load test's stream of hits) and by the one
/// whose check is about timing under a burst (1,000 concurrent misses), so that they do not run
/// at the same time: on two cores, the first starves the second's requests.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Our real origin binary over testdata, built by cargo beside this test's binary.
fn start_real_origin() -> ServerProcess {
    let bin = Path::new(EDGE).with_file_name(ORIGIN);
    assert!(
        bin.exists(),
        "build the origin first (cargo test --workspace builds it): {}",
        bin.display()
    );
    let media = testdata().join("media");
    let args = [
        "--media",
        media.to_str().expect("utf-8"),
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ];
    ServerProcess::start(bin.to_str().expect("utf-8"), &args, &["http", "admin"])
}

async fn status_json(edge: &ServerProcess) -> String {
    get(&format!("{}/status", edge.addr("admin")), &[])
        .await
        .text()
}

fn json_number(json: &str, field: &str) -> f64 {
    let at = json
        .find(&format!("\"{field}\":"))
        .unwrap_or_else(|| panic!("no {field} in {json}"));
    let rest = &json[at + field.len() + 3..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("{field} is not a number in {json}"))
}

fn cache(reply: &Reply) -> &str {
    reply.header("x-cache")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miss_then_hit_with_identical_bytes_and_one_origin_request() {
    let origin = start_real_origin();
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge(origin.addr("http"), dir.path(), &[]);
    let path = "/vod/big-clock/720p/seg_00003.m4s";
    let url = format!("{}{path}", edge.addr("http"));
    let first = get(&url, &[]).await;
    let second = get(&url, &[]).await;
    assert_eq!(
        (first.status, second.status),
        (StatusCode::OK, StatusCode::OK)
    );
    assert_eq!((cache(&first), cache(&second)), ("MISS", "HIT"));
    assert_eq!(first.body, second.body);
    assert_eq!(
        first.body,
        std::fs::read(testdata().join(format!("media{path}"))).expect("segment")
    );
    assert_eq!(second.header("x-served-by"), "test-edge;region=test-region");
    assert_eq!(second.header("content-type"), "video/iso.segment");
    assert!(!second.header("age").is_empty());
    let metrics = get(&format!("{}/metrics", origin.addr("admin")), &[])
        .await
        .text();
    assert!(
        metrics
            .contains("meridian_origin_requests_total{status_class=\"2xx\",kind=\"segment\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_misses_make_one_origin_fetch_and_stream_early() {
    let _alone = HEAVY.lock().await;
    raise_fd_limit();
    let origin = TestOrigin::start().await;
    let body = generated_body("big", 4 << 20);
    // 4 MiB in 64 chunks, 50 ms apart: the origin takes more than 3 s to send it, time enough
    // for 1,000 waiters to get their first bytes on a loaded two-core machine (at 20 ms apart,
    // with the other tests of this file beside it, up to 176 got theirs only after the end).
    origin.route(
        "/big.m4s",
        Route::ok(body.clone(), "public, max-age=3600").paced(64 * 1024, Duration::from_millis(50)),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    // A store whose regions hold the 4 MiB object: a request that arrives after the fill is
    // over (a loaded machine spawns 1,000 requests slowly) is then a hit, not a second fetch.
    let edge = start_edge(&origin.url(), dir.path(), &["--capacity", "256MiB"]);
    let url = Arc::new(format!("{}/big.m4s", edge.addr("http")));
    let expected = Arc::new(body);

    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (url, expected) = (url.clone(), expected.clone());
        tasks.push(tokio::spawn(async move {
            let response = send(Method::GET, &url, &[]).await;
            assert_eq!(response.status(), StatusCode::OK);
            // MISS: joined the fill while the origin was sending; HIT: came after it ended.
            let joined = response
                .headers()
                .get("x-cache")
                .is_some_and(|v| v == "MISS");
            let mut body = response.into_body();
            let mut at = 0usize;
            let mut first_byte = None;
            while let Some(frame) = body.frame().await {
                let frame = frame.expect("body frame");
                if let Some(data) = frame.data_ref() {
                    first_byte.get_or_insert_with(Instant::now);
                    assert_eq!(
                        &expected[at..at + data.len()],
                        &data[..],
                        "bytes at {at} differ"
                    );
                    at += data.len();
                }
            }
            assert_eq!(at, expected.len(), "body is complete");
            (joined, first_byte.expect("some bytes arrived"))
        }));
    }
    let mut first_bytes = Vec::new();
    for task in tasks {
        first_bytes.push(task.await.expect("request task"));
    }
    assert_eq!(origin.hits("/big.m4s"), 1, "exactly one origin fetch");
    let finished = origin
        .finished_at("/big.m4s")
        .expect("origin finished sending");
    let waiters: Vec<Instant> = first_bytes
        .iter()
        .filter(|(joined, _)| *joined)
        .map(|(_, t)| *t)
        .collect();
    assert!(!waiters.is_empty(), "some requests joined the fill");
    let late = waiters.iter().filter(|t| **t >= finished).count();
    assert_eq!(
        late,
        0,
        "{late} of {} waiters got their first byte only after the origin had finished",
        waiters.len()
    );
    eprintln!(
        "{} of 1,000 requests joined the fill, {} came after it and were hits",
        waiters.len(),
        1000 - waiters.len()
    );
    let metrics = get(&format!("{}/metrics", edge.addr("admin")), &[])
        .await
        .text();
    // Every request that joined the fill counted as a waiter (the leader did not); those that
    // came later were served from the completed fill or the store.
    let coalesced: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("meridian_edge_coalesced_waiters_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no coalesced waiters counter in {metrics}"));
    assert!(
        (waiters.len() - 1..=999).contains(&coalesced),
        "{coalesced} coalesced waiters for {} joiners",
        waiters.len()
    );
}

fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(65_536), hard);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_abort_reaches_the_viewer_as_an_error_and_nothing_is_stored() {
    let origin = TestOrigin::start().await;
    let body = generated_body("abort", 2 << 20);
    origin.route(
        "/broken.m4s",
        Route::ok(body, "public, max-age=3600").abort_after(1 << 20),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge(&origin.url(), dir.path(), &[]);
    let url = format!("{}/broken.m4s", edge.addr("http"));
    for attempt in 1..=2 {
        let response = send(Method::GET, &url, &[]).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "headers were already on their way"
        );
        assert_eq!(response.headers()["content-length"], "2097152");
        let result = response.into_body().collect().await;
        assert!(
            result.is_err(),
            "attempt {attempt}: a truncated body must not end cleanly"
        );
        assert_eq!(
            origin.hits("/broken.m4s"),
            attempt,
            "each attempt fetches again"
        );
    }
    let status = status_json(&edge).await;
    assert_eq!(json_number(&status, "objects"), 0.0, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_never_exceeds_capacity_and_keeps_what_is_used() {
    let origin = TestOrigin::start().await;
    origin.generate(256 * 1024, "public, max-age=3600");
    let dir = tempfile::tempdir().expect("tempdir");
    // 16 MiB of store, 48 MiB written.
    let edge = start_edge(&origin.url(), dir.path(), &["--capacity", "16MiB"]);
    let base = edge.addr("http").to_owned();
    assert_eq!(cache(&get(&format!("{base}/obj/hot"), &[]).await), "MISS");
    for i in 0..192 {
        let reply = get(&format!("{base}/obj/{i}"), &[]).await;
        assert_eq!(reply.body, generated_body(&format!("/obj/{i}"), 256 * 1024));
        assert_eq!(
            cache(&get(&format!("{base}/obj/hot"), &[]).await),
            "HIT",
            "after object {i}"
        );
        let status = status_json(&edge).await;
        assert!(
            json_number(&status, "used_bytes") <= json_number(&status, "capacity_bytes"),
            "{status}"
        );
        let file = std::fs::metadata(dir.path().join("edge.store"))
            .expect("store file")
            .len();
        assert_eq!(file, 16 << 20, "the file is never resized");
    }
    assert_eq!(
        cache(&get(&format!("{base}/obj/191"), &[]).await),
        "HIT",
        "the newest survives"
    );
    // Objects seen once after the store filled stayed on probation and left from there (the
    // ones that filled it stay: nothing read since needed their room).
    assert_eq!(
        cache(&get(&format!("{base}/obj/150"), &[]).await),
        "MISS",
        "an object seen once, after the store was full, is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_restart_keeps_the_cache_warm() {
    let origin = TestOrigin::start().await;
    origin.generate(100 * 1024, "public, max-age=3600");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut edge = start_edge(&origin.url(), dir.path(), &[]);
    for i in 0..100 {
        assert_eq!(
            cache(&get(&format!("{}/w/{i}", edge.addr("http")), &[]).await),
            "MISS"
        );
    }
    wait_for_objects(&edge, 100).await;
    edge.signal(Sig::SIGTERM);
    assert!(edge.wait_exit(Duration::from_secs(15)).success());

    // The viewer listener is announced once the store has its index back: ready by then.
    let edge = start_edge(&origin.url(), dir.path(), &[]);
    let ready = get(&format!("{}/readyz", edge.addr("admin")), &[]).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    assert!(status_json(&edge).await.contains("\"ready\":true"));
    let mut hits = 0;
    for i in 0..100 {
        let reply = get(&format!("{}/w/{i}", edge.addr("http")), &[]).await;
        assert_eq!(reply.body, generated_body(&format!("/w/{i}"), 100 * 1024));
        hits += usize::from(cache(&reply) == "HIT");
    }
    assert!(
        hits >= 99,
        "only {hits} of 100 objects were hits after a clean restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_file_truncated_under_the_edge_loses_objects_not_the_process() {
    let origin = TestOrigin::start().await;
    origin.generate(200 * 1024, "public, max-age=3600");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut edge = start_edge(&origin.url(), dir.path(), &["--capacity", "64MiB"]);
    let base = edge.addr("http").to_owned();
    for i in 0..100 {
        get(&format!("{base}/t/{i}"), &[]).await;
    }
    wait_for_objects(&edge, 100).await;
    // Somebody truncates the file the edge is serving from.
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("edge.store"))
        .expect("store file")
        .set_len(1 << 20)
        .expect("truncate");
    let mut refetched = 0;
    for i in 0..100 {
        let path = format!("/t/{i}");
        let reply = get(&format!("{base}{path}"), &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(
            reply.body == generated_body(&path, 200 * 1024),
            "{path}: {} bytes, {}, origin hits {}",
            reply.body.len(),
            cache(&reply),
            origin.hits(&path)
        );
        refetched += usize::from(origin.hits(&path) == 2);
    }
    assert!(
        refetched >= 90,
        "the objects past the new end are fetched again: {refetched}"
    );
    // Still serving, and storing again (the file is allocated again in the background).
    let again = get(&format!("{base}/t/0"), &[]).await;
    assert_eq!(again.body, generated_body("/t/0", 200 * 1024));
    edge.signal(Sig::SIGTERM);
    assert!(
        edge.wait_exit(Duration::from_secs(15)).success(),
        "{}",
        edge.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_stored_objects_are_hits_and_no_byte_is_corrupt() {
    kill_9_while_writing(false).await;
}

/// The same with the index checkpointed every second: the start after the kill loads the last
/// checkpoint and walks only the records written after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_the_last_checkpoint_is_caught_up_and_no_byte_is_corrupt() {
    kill_9_while_writing(true).await;
}

async fn kill_9_while_writing(checkpoints: bool) {
    let origin = TestOrigin::start().await;
    origin.generate(200 * 1024, "public, max-age=3600");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("edge.toml");
    let interval = if checkpoints { "1s" } else { "1h" };
    std::fs::write(&config, format!("checkpoint_interval = \"{interval}\"\n")).expect("config");
    let args = ["--config", config.to_str().expect("utf-8")];
    let mut edge = start_edge(&origin.url(), dir.path(), &args);
    let base = edge.addr("http").to_owned();
    for i in 0..40 {
        get(&format!("{base}/k/{i}"), &[]).await;
    }
    wait_for_objects(&edge, 40).await;
    let checkpoint = dir.path().join("edge.store.index");
    if checkpoints {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !checkpoint.exists() {
            assert!(Instant::now() < deadline, "no checkpoint was written");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Keep writing while the edge is killed.
    let writer = {
        let base = base.clone();
        tokio::spawn(async move {
            for i in 40..400 {
                let client_result = tokio::time::timeout(Duration::from_secs(5), async {
                    test_support::http::try_get(&format!("{base}/k/{i}")).await
                })
                .await;
                if !matches!(client_result, Ok(Ok(_))) {
                    break;
                }
            }
        })
    };
    // The kill lands once at least 60 objects are stored, i.e. mid-write; a writer that stalls
    // or stops first fails the test at the deadline instead of hanging it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stored_before = loop {
        let status = status_json(&edge).await;
        let objects = json_number(&status, "objects") as usize;
        if objects >= 60 {
            break objects;
        }
        assert!(
            Instant::now() < deadline,
            "the edge stored only {objects} of 60 objects within 30 s of writing: {status}"
        );
        tokio::task::yield_now().await;
    };
    edge.signal(Sig::SIGKILL);
    edge.wait_exit(Duration::from_secs(10));
    let _ = writer.await;

    let edge = start_edge(&origin.url(), dir.path(), &args);
    let status: serde_json::Value =
        serde_json::from_str(&status_json(&edge).await).expect("/status is JSON");
    let start = &status["store_start"];
    assert_eq!(
        start["from_checkpoint"].as_bool(),
        Some(checkpoints),
        "{status}"
    );
    if checkpoints {
        assert!(
            start["caught_up_entries"].as_u64() > Some(0),
            "the records written after the checkpoint were walked: {status}"
        );
    }
    let recovered = json_number(&status_json(&edge).await, "objects") as usize;
    assert!(
        recovered >= stored_before,
        "{recovered} objects recovered, {stored_before} were stored before the kill"
    );
    let mut hits = 0;
    for i in 0..400 {
        let path = format!("/k/{i}");
        let reply = get(&format!("{}{path}", edge.addr("http")), &[]).await;
        assert_eq!(
            reply.body,
            generated_body(&path, 200 * 1024),
            "{path} is not the origin's bytes"
        );
        hits += usize::from(cache(&reply) == "HIT");
    }
    assert!(
        hits >= stored_before,
        "{hits} hits, {stored_before} objects were stored before the kill"
    );
}

/// Waits until the edge has stored `n` objects and no origin fetch is in flight.
async fn wait_for_objects(edge: &ServerProcess, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = status_json(edge).await;
        if json_number(&status, "objects") as usize >= n
            && json_number(&status, "fills_in_flight") == 0.0
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the edge never stored {n} objects: {status}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_object_is_fetched_again_never_served() {
    let origin = TestOrigin::start().await;
    let body = generated_body("precious", 300 * 1024);
    origin.route(
        "/precious.m4s",
        Route::ok(body.clone(), "public, max-age=3600"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut edge = start_edge(&origin.url(), dir.path(), &[]);
    get(&format!("{}/precious.m4s", edge.addr("http")), &[]).await;
    wait_for_objects(&edge, 1).await;
    edge.signal(Sig::SIGTERM);
    assert!(edge.wait_exit(Duration::from_secs(15)).success());

    let path = dir.path().join("edge.store");
    let mut raw = std::fs::read(&path).expect("store file");
    let at = raw
        .windows(64)
        .position(|w| w == &body[5000..5064])
        .expect("body in the store");
    raw[at + 10] ^= 0x55;
    std::fs::write(&path, &raw).expect("write store");

    let edge = start_edge(&origin.url(), dir.path(), &[]);
    let reply = get(&format!("{}/precious.m4s", edge.addr("http")), &[]).await;
    assert_eq!(cache(&reply), "MISS");
    assert_eq!(reply.body, body);
    assert_eq!(origin.hits("/precious.m4s"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_head_revalidation_and_stale_if_error() {
    let origin = TestOrigin::start().await;
    let body = generated_body("seg", 100_000);
    origin.route(
        "/fresh.m4s",
        Route::ok(body.clone(), "public, max-age=3600").header("etag", "\"v1\""),
    );
    origin.route(
        "/always.m3u8",
        Route::ok("#EXTM3U\n", "public, max-age=0").header("etag", "\"p1\""),
    );
    origin.route(
        "/fallback.m4s",
        Route::ok(body.clone(), "public, max-age=0, stale-if-error=600").header("etag", "\"f1\""),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge(&origin.url(), dir.path(), &[]);
    let base = edge.addr("http").to_owned();

    // A range on a miss fills the cache; later ranges are hits.
    let first = get(&format!("{base}/fresh.m4s"), &[("range", "bytes=10-19")]).await;
    assert_eq!(first.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(first.body, body[10..20]);
    wait_for_objects(&edge, 1).await;
    let part = get(&format!("{base}/fresh.m4s"), &[("range", "bytes=0-99")]).await;
    assert_eq!(
        (part.status, cache(&part)),
        (StatusCode::PARTIAL_CONTENT, "HIT")
    );
    assert_eq!(part.body, body[..100]);
    assert_eq!(part.header("content-range"), "bytes 0-99/100000");
    let past = get(&format!("{base}/fresh.m4s"), &[("range", "bytes=100000-")]).await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    let head = fetch(Method::HEAD, &format!("{base}/fresh.m4s"), &[]).await;
    assert_eq!((head.status, cache(&head)), (StatusCode::OK, "HIT"));
    assert_eq!(head.header("content-length"), "100000");
    assert!(head.body.is_empty());
    let viewer_304 = get(&format!("{base}/fresh.m4s"), &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(viewer_304.status, StatusCode::NOT_MODIFIED);
    // Two origin requests in all: the first range was asked as a range, which this origin
    // ignores (200), so the object was then fetched as a fill; everything after is a hit.
    assert_eq!(origin.hits("/fresh.m4s"), 2);

    // Stale at once: the second request revalidates with the ETag and gets a 304.
    assert_eq!(
        cache(&get(&format!("{base}/always.m3u8"), &[]).await),
        "MISS"
    );
    wait_for_objects(&edge, 2).await;
    let revalidated = get(&format!("{base}/always.m3u8"), &[]).await;
    assert_eq!(cache(&revalidated), "REVALIDATED");
    assert_eq!(revalidated.text(), "#EXTM3U\n");
    assert_eq!(origin.not_modified("/always.m3u8"), 1);

    // The origin goes away: stale-if-error serves the stored copy; without it, an error.
    assert_eq!(
        cache(&get(&format!("{base}/fallback.m4s"), &[]).await),
        "MISS"
    );
    wait_for_objects(&edge, 3).await;
    origin.stop();
    let stale = get(&format!("{base}/fallback.m4s"), &[]).await;
    assert_eq!(
        (stale.status, cache(&stale)),
        (StatusCode::OK, "STALE"),
        "{:?} {}\n{}",
        stale.headers,
        status_json(&edge).await,
        edge.stderr()
    );
    assert_eq!(stale.body, body);
    let gone = get(&format!("{base}/always.m3u8"), &[]).await;
    assert_eq!(gone.status, StatusCode::BAD_GATEWAY);
    assert!(gone.text().contains("origin error"), "{}", gone.text());
    assert_eq!(gone.header("x-served-by"), "test-edge;region=test-region");
    assert_eq!((gone.header("x-cache"), gone.header("age")), ("ERROR", "0"));
}

/// The edge answers a viewer's conditionals and ranges from its store exactly as the origin
/// answers them itself: both make the one decision in `video_http::conditional`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_answers_from_the_store_match_the_origins() {
    let origin = start_real_origin();
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge(origin.addr("http"), dir.path(), &[]);
    let path = "/vod/big-clock/720p/seg_00003.m4s";
    let direct = format!("{}{path}", origin.addr("http"));
    let through = format!("{}{path}", edge.addr("http"));
    let first = get(&through, &[]).await;
    assert_eq!(first.status, StatusCode::OK);
    wait_for_objects(&edge, 1).await;
    let etag = first.header("etag").to_owned();
    let modified = first.header("last-modified").to_owned();
    assert!(!etag.is_empty() && !modified.is_empty());
    let old = "Mon, 01 Jan 2001 00:00:00 GMT";
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("if-none-match", &etag)],
        vec![("if-none-match", "\"other\""), ("if-none-match", &etag)],
        vec![
            ("if-none-match", "\"other\""),
            ("if-modified-since", &modified),
        ],
        vec![("if-modified-since", &modified)],
        vec![("if-modified-since", old)],
        vec![("if-match", "\"other\"")],
        vec![("if-match", "*")],
        vec![("if-match", &etag), ("range", "bytes=5-9")],
        vec![("if-unmodified-since", old)],
        vec![("if-unmodified-since", &modified)],
        vec![("range", "bytes=100-199")],
        vec![("range", "bytes=-10")],
        vec![("range", "bytes=999999999-")],
        vec![("range", "bytes=0-1,5-6")],
        vec![("range", "bytes=0-9"), ("if-range", &etag)],
        vec![("range", "bytes=0-9"), ("if-range", "\"other\"")],
        vec![("range", "bytes=0-9"), ("if-range", &modified)],
        vec![("range", "bytes=0-9"), ("if-range", old)],
    ];
    for headers in &cases {
        let from_origin = get(&direct, headers).await;
        let from_edge = get(&through, headers).await;
        assert_eq!(
            cache(&from_edge),
            "HIT",
            "{headers:?}: answered from the store"
        );
        let view = |r: &Reply| {
            (
                r.status,
                r.header("content-length").to_owned(),
                r.header("content-range").to_owned(),
                r.header("etag").to_owned(),
                r.header("cache-control").to_owned(),
                r.body.clone(),
            )
        };
        assert_eq!(view(&from_edge), view(&from_origin), "{headers:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_tokens_and_cmcd_do_not_split_the_cache_and_vary_star_is_not_stored() {
    let origin = TestOrigin::start().await;
    origin.route("/t.m4s", Route::ok("segment", "public, max-age=3600"));
    origin.route(
        "/star",
        Route::ok("per viewer", "public, max-age=3600").header("vary", "*"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_config(
        &origin.url(),
        dir.path(),
        "key_ignore_params = [\"token\"]\n",
        &[],
    );
    let base = edge.addr("http").to_owned();
    assert_eq!(
        cache(&get(&format!("{base}/t.m4s?token=alice&v=1"), &[]).await),
        "MISS"
    );
    wait_for_objects(&edge, 1).await;
    // Another viewer's token and a player's CMCD do not split the cache; another v does.
    assert_eq!(
        cache(&get(&format!("{base}/t.m4s?v=1&token=bob&CMCD=bl%3D2000"), &[]).await),
        "HIT"
    );
    assert_eq!(
        cache(&get(&format!("{base}/t.m4s?token=bob&v=2"), &[]).await),
        "MISS"
    );
    get(&format!("{base}/star"), &[]).await;
    assert_eq!(cache(&get(&format!("{base}/star"), &[]).await), "MISS");
    assert_eq!(origin.hits("/star"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_needs_the_token() {
    let origin = TestOrigin::start().await;
    origin.generate(1000, "public, max-age=3600");
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_config(
        &origin.url(),
        dir.path(),
        "admin_token = \"s3cret\"\ndrain_to = \"http://127.0.0.9:8080\"\n",
        &[],
    );
    let base = edge.addr("http").to_owned();
    for path in ["/p/a.m4s", "/p/b.m4s", "/q/c.m4s"] {
        get(&format!("{base}{path}"), &[]).await;
    }
    wait_for_objects(&edge, 3).await;
    let purge = Method::from_bytes(b"PURGE").expect("method");
    let none = fetch(purge.clone(), &format!("{base}/p/a.m4s"), &[]).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let wrong = fetch(
        purge.clone(),
        &format!("{base}/p/a.m4s"),
        &[("authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(cache(&get(&format!("{base}/p/a.m4s"), &[]).await), "HIT");
    let ok = fetch(
        purge.clone(),
        &format!("{base}/p/a.m4s"),
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(
        (ok.status, ok.text().trim()),
        (StatusCode::OK, "{\"purged\":1}")
    );
    assert_eq!(cache(&get(&format!("{base}/p/a.m4s"), &[]).await), "MISS");
    wait_for_objects(&edge, 3).await;
    let prefix = fetch(
        purge,
        &format!("{base}/p/*"),
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(prefix.text().trim(), "{\"purged\":2}");
    assert_eq!(cache(&get(&format!("{base}/q/c.m4s"), &[]).await), "HIT");

    let admin = edge.addr("admin");
    let drain = fetch(
        Method::POST,
        &format!("{admin}/drain"),
        &[("authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(drain.status, StatusCode::UNAUTHORIZED);
    let drain = fetch(
        Method::POST,
        &format!("{admin}/drain"),
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(drain.status, StatusCode::OK);
    assert!(status_json(&edge).await.contains("\"draining\":true"));
    // Draining: new requests go to the neighbour region's edge.
    let moved = get(&format!("{base}/q/c.m4s?t=1"), &[]).await;
    assert_eq!(moved.status, StatusCode::FOUND);
    assert_eq!(
        moved.header("location"),
        "http://127.0.0.9:8080/q/c.m4s?t=1"
    );
    let undrain = fetch(
        Method::DELETE,
        &format!("{admin}/drain"),
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(undrain.status, StatusCode::OK);
    assert_eq!(cache(&get(&format!("{base}/q/c.m4s"), &[]).await), "HIT");
}

/// Any origin needs the viewer's request: end-to-end headers go on (hop-by-hop ones do not),
/// other methods pass through with their bodies, and a successful unsafe request invalidates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_forwarded_and_unsafe_methods_pass_through_and_invalidate() {
    let origin = TestOrigin::start().await;
    origin.route("/obj", Route::ok("v1", "public, max-age=3600"));
    origin.route("/private", Route::ok("for-alice", "max-age=3600"));
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_config(
        &origin.url(),
        dir.path(),
        "max_request_body = \"1MiB\"\n",
        &[],
    );
    let base = edge.addr("http").to_owned();

    // Headers: the viewer's own go on; hop-by-hop and Connection-named ones stay behind.
    let first = get(
        &format!("{base}/obj"),
        &[
            ("x-viewer", "1"),
            ("connection", "x-hop"),
            ("x-hop", "secret"),
            ("if-none-match", "\"abc\""),
        ],
    )
    .await;
    assert_eq!(cache(&first), "MISS");
    let (_, sent, _) = origin.last_request("/obj").expect("the origin was asked");
    assert_eq!(sent["x-viewer"], "1");
    assert_eq!(sent["via"], "1.1 test-edge");
    assert_eq!(sent["x-forwarded-for"], "127.0.0.1");
    assert_eq!(sent["meridian-edge"], "test-edge");
    assert!(!sent.contains_key("x-hop") && !sent.contains_key("connection"));
    assert!(
        !sent.contains_key("if-none-match"),
        "a fill fetches the whole object for everyone"
    );
    wait_for_objects(&edge, 1).await;
    assert_eq!(cache(&get(&format!("{base}/obj"), &[]).await), "HIT");

    // A PUT goes to the origin with its body, and its 200 drops the stored copy.
    let put = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .args(["--data-binary", "new body", &format!("{base}/obj")])
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&put.stdout), "200");
    let (method, _, bytes) = origin.last_request("/obj").expect("PUT arrived");
    assert_eq!((method, bytes), (Method::PUT, 8));
    assert_eq!(cache(&get(&format!("{base}/obj"), &[]).await), "MISS");
    assert_eq!(
        origin.hits("/obj"),
        3,
        "GET, PUT, and the GET after the invalidation"
    );

    // DELETE too.
    wait_for_objects(&edge, 1).await;
    let deleted = fetch(Method::DELETE, &format!("{base}/obj"), &[]).await;
    assert_eq!((deleted.status, cache(&deleted)), (StatusCode::OK, "PASS"));
    assert_eq!(cache(&get(&format!("{base}/obj"), &[]).await), "MISS");

    // Over the configured limit: 413, and the origin never sees it.
    let big = dir.path().join("big");
    std::fs::write(&big, vec![7u8; 2 << 20]).expect("big body");
    let too_big = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .arg("--data-binary")
        .arg(format!("@{}", big.display()))
        .arg(format!("{base}/upload"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&too_big.stdout), "413");
    assert!(origin.last_request("/upload").is_none());

    // A response to a request with credentials, not marked shareable, is never another's.
    let alice = get(
        &format!("{base}/private"),
        &[("authorization", "Bearer alice")],
    )
    .await;
    assert_eq!(alice.text(), "for-alice");
    let anyone = get(&format!("{base}/private"), &[]).await;
    assert_eq!(cache(&anyone), "MISS", "not stored from Alice's request");
    wait_for_objects(&edge, 1).await;
    let bob = get(
        &format!("{base}/private"),
        &[("authorization", "Bearer bob")],
    )
    .await;
    assert_eq!(
        cache(&bob),
        "MISS",
        "Bob's request is not answered from the store"
    );
    assert_eq!(origin.hits("/private"), 3);
}

/// A purge while the object is being fetched is not undone when the fetch completes: neither a
/// small body kept in memory (stored at the end) nor a large one written through (stored at its
/// commit) is stored, and the next request goes to the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_during_a_fill_is_not_undone_by_it() {
    let origin = TestOrigin::start().await;
    let objects = [("/small.m4s", 200_000), ("/large.m4s", 6 << 20)];
    for (path, size) in objects {
        origin.route(
            path,
            Route::ok(generated_body(path, size), "public, max-age=3600")
                .paced(size / 16, Duration::from_millis(40)),
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_config(&origin.url(), dir.path(), "admin_token = \"s3cret\"\n", &[]);
    let base = edge.addr("http").to_owned();
    let purge = Method::from_bytes(b"PURGE").expect("method");
    for (path, size) in objects {
        let url = format!("{base}{path}");
        let response = send(Method::GET, &url, &[]).await;
        assert_eq!(response.status(), StatusCode::OK);
        let purged = fetch(purge.clone(), &url, &[("authorization", "Bearer s3cret")]).await;
        assert_eq!(purged.status, StatusCode::OK);
        let purged_at = Instant::now();
        let body = response.into_body().collect().await.expect("body");
        assert_eq!(
            body.to_bytes().len(),
            size,
            "{path}: the viewer gets it all"
        );
        assert!(
            origin.finished_at(path).expect("sent") > purged_at,
            "{path}: the purge came while the origin was still sending"
        );
        wait_for_objects(&edge, 0).await;
        assert_eq!(cache(&get(&url, &[]).await), "MISS", "{path}");
        assert_eq!(origin.hits(path), 2, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_is_disabled_without_a_token() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge(&origin.url(), dir.path(), &[]);
    let purge = Method::from_bytes(b"PURGE").expect("method");
    let reply = fetch(
        purge,
        &format!("{}/x", edge.addr("http")),
        &[("authorization", "Bearer x")],
    )
    .await;
    assert!(reply.status.is_client_error());
    // Other methods go to the origin (which has no /x); only CONNECT and TRACE are refused.
    let post = fetch(Method::POST, &format!("{}/x", edge.addr("http")), &[]).await;
    assert_eq!((post.status, cache(&post)), (StatusCode::NOT_FOUND, "PASS"));
    assert_eq!(
        fetch(Method::TRACE, &format!("{}/x", edge.addr("http")), &[])
            .await
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

/// HTTP/2 limits from `[connections]`: the edge advertises `h2_max_concurrent_streams` (4 here;
/// hyper's own default is 200), and a client that opens streams and resets them at once (the
/// rapid-reset attack) is sent GOAWAY (ENHANCE_YOUR_CALM) once more resets are pending than
/// `h2_max_pending_reset_streams` allows; a new connection is served as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_are_limited_and_rapid_resets_end_the_connection() {
    let origin = TestOrigin::start().await;
    origin.generate(1000, "public, max-age=60");
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_config(
        &origin.url(),
        dir.path(),
        "[connections]\nh2_max_concurrent_streams = 4\nh2_max_pending_reset_streams = 10\n",
        &[],
    );
    let addr = edge.addr("http").trim_start_matches("http://").to_owned();
    let request = || {
        http::Request::get(format!("http://{addr}/a/b.m4s"))
            .body(())
            .expect("request")
    };
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (client, mut connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let mut client = client.ready().await.expect("ready");
    let (response, _) = client.send_request(request(), true).expect("send");
    let response = tokio::select! {
        response = response => response.expect("response"),
        ended = &mut connection => panic!("the connection ended first: {ended:?}"),
    };
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        connection.max_concurrent_send_streams(),
        4,
        "the configured stream limit"
    );

    let driven = tokio::spawn(connection);
    for _ in 0..500 {
        let Ok(ready) = client.ready().await else {
            break;
        };
        client = ready;
        let Ok((_, mut stream)) = client.send_request(request(), false) else {
            break;
        };
        stream.send_reset(h2::Reason::CANCEL);
    }
    let ended = tokio::time::timeout(Duration::from_secs(10), driven)
        .await
        .expect("the edge ended the connection within 10 s")
        .expect("join");
    // The edge sends GOAWAY and closes. A client still writing its resets may meet the closed
    // socket (broken pipe, reset) before it reads the GOAWAY: both mean the edge ended it.
    let error = ended.expect_err("the connection ended with an error");
    assert!(
        error.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) || error.is_io(),
        "{error}"
    );

    let again = get(&format!("{}/a/b.m4s", edge.addr("http")), &[]).await;
    assert_eq!(again.status, StatusCode::OK, "a new connection is served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_test_ca_and_http2_work() {
    let origin = TestOrigin::start().await;
    origin.route("/s.m4s", Route::ok("over tls", "public, max-age=3600"));
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = test_pki(dir.path());
    let args = [
        "--tls-listen",
        "127.0.0.1:0",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().expect("utf-8"),
        "--tls-key",
        key.to_str().expect("utf-8"),
    ];
    let store = dir.path().join("edge.store");
    let origin_url = origin.url();
    let mut all = vec![
        "--admin",
        "127.0.0.1:0",
        "--origin",
        &origin_url,
        "--store",
        store.to_str().expect("utf-8"),
    ];
    all.extend_from_slice(&args);
    let edge = ServerProcess::start(EDGE, &all, &["http", "https", "admin"]);
    let https = edge.addr("https").replace("127.0.0.1", "localhost");
    let (code, version, body) = curl(&[
        "--cacert",
        ca.to_str().expect("utf-8"),
        "--http2",
        &format!("{https}/s.m4s"),
    ]);
    assert_eq!(
        (code.as_str(), version.as_str(), body.as_str()),
        ("200", "2", "over tls")
    );
    let (code, version, _) = curl(&[
        "--cacert",
        ca.to_str().expect("utf-8"),
        "--http1.1",
        &format!("{https}/s.m4s"),
    ]);
    assert_eq!((code.as_str(), version.as_str()), ("200", "1.1"));
    let (code, version, body) = curl(&[
        "--http2-prior-knowledge",
        &format!("{}/s.m4s", edge.addr("http")),
    ]);
    assert_eq!(
        (code.as_str(), version.as_str(), body.as_str()),
        ("200", "2", "over tls")
    );
    // Without the CA, the certificate is refused.
    let output = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            &format!("{https}/s.m4s"),
        ])
        .output()
        .expect("curl");
    assert!(!output.status.success());
}

/// Runs curl; returns status code, HTTP version and body.
fn curl(args: &[&str]) -> (String, String, String) {
    let output = Command::new("curl")
        .args([
            "-s",
            "-S",
            "--max-time",
            "20",
            "-w",
            "\n%{http_code} %{http_version}",
        ])
        .args(args)
        .output()
        .expect("curl must be installed");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let mut parts = tail.split_whitespace();
    let code = parts.next().unwrap_or("").to_owned();
    let version = parts.next().unwrap_or("").to_owned();
    (code, version, body.to_owned())
}

/// An HTTPS origin (here another edge with a certificate from a test CA, in front of a plain
/// origin) works when its CA is given, and gives a 502 naming it and the reason when not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_origins_verify_with_the_configured_ca() {
    let origin = TestOrigin::start().await;
    origin.route("/s.m4s", Route::ok("over https", "public, max-age=3600"));
    let HttpsFront {
        edge: front, ca, ..
    } = &https_front(&origin.url());
    let https_origin = front.addr("https").replace("127.0.0.1", "localhost");
    let start = |dir: &Path, config: &str| {
        let file = dir.join("edge.toml");
        std::fs::write(&file, config).expect("config");
        let args = ["--config", file.to_str().expect("utf-8")];
        start_edge(&https_origin, dir, &args)
    };
    let trusting_dir = tempfile::tempdir().expect("tempdir");
    let trusting = start(
        trusting_dir.path(),
        &format!("origin_ca_file = {:?}\n", ca.to_str().expect("utf-8")),
    );
    let ok = get(&format!("{}/s.m4s", trusting.addr("http")), &[]).await;
    assert_eq!(
        (ok.status, ok.text().as_str()),
        (StatusCode::OK, "over https")
    );

    let doubting_dir = tempfile::tempdir().expect("tempdir");
    let doubting = start(doubting_dir.path(), "");
    let refused = get(&format!("{}/s.m4s", doubting.addr("http")), &[]).await;
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY);
    let text = refused.text();
    assert!(
        text.contains(&https_origin) && text.contains("certificate"),
        "the 502 names the origin and the reason: {text}"
    );

    // A CA file that is not one is a config error naming the key.
    let bad = trusting_dir.path().join("bad.toml");
    std::fs::write(&bad, "origin_ca_file = \"/nonexistent/ca.pem\"\n").expect("config");
    let check = std::process::Command::new(EDGE)
        .args(["--config", bad.to_str().expect("utf-8"), "--check-config"])
        .output()
        .expect("edge --check-config");
    assert!(!check.status.success());
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.contains("origin_ca_file"), "{stderr}");
}

/// An origin that accepts connections and never answers costs one request its first-byte
/// timeout; the requests after it skip that origin (its breaker is open) instead of each
/// waiting as long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_origin_is_skipped_after_its_first_timeout() {
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hanging_url = format!("http://{}", hanging.local_addr().expect("addr"));
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hanging.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    let origin = TestOrigin::start().await;
    origin.generate(1000, "public, max-age=3600");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("edge.toml");
    // The origin check (`origin_check_interval`) would connect to the hanging origin too; this
    // test counts the viewers' requests.
    std::fs::write(
        &config,
        "first_byte_timeout = \"500ms\"\norigin_check_interval = \"0s\"\n",
    )
    .expect("config");
    let origin_url = origin.url();
    let edge = start_edge(
        &hanging_url,
        dir.path(),
        &[
            "--config",
            config.to_str().expect("utf-8"),
            // After start_edge's own --origin (the hanging one): tried second.
            "--origin",
            &origin_url,
        ],
    );
    let base = edge.addr("http").to_owned();
    for path in ["/a.m4s", "/b.m4s", "/c.m4s"] {
        let reply = get(&format!("{base}{path}"), &[]).await;
        assert_eq!(
            (reply.status, cache(&reply)),
            (StatusCode::OK, "MISS"),
            "{path}"
        );
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "only the first request waited on the hanging origin"
    );
    holder.abort();
}

/// `Vary` is known only when the response head arrives: a viewer that joined the fill with a
/// different value of a field the response varies on gets its own fetch; one with the same
/// value shares the leader's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_does_not_match_the_responses_vary_fetches_on_its_own() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/v.m4s",
        Route::ok(generated_body("v", 40_000), "public, max-age=3600")
            .header("vary", "accept-language")
            .paced(2_000, Duration::from_millis(50)),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge(&origin.url(), dir.path(), &[]);
    let url = format!("{}/v.m4s", edge.addr("http"));
    let leader = {
        let url = url.clone();
        tokio::spawn(async move { get(&url, &[("accept-language", "en")]).await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while origin.hits("/v.m4s") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the leader's fetch never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The leader's body takes about a second: both of these join while it streams.
    let (same, other) = tokio::join!(
        get(&url, &[("accept-language", "en")]),
        get(&url, &[("accept-language", "fr")])
    );
    let leader = leader.await.expect("leader");
    assert!(origin.finished_at("/v.m4s").is_some());
    for reply in [&leader, &same, &other] {
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body.len(), 40_000);
    }
    assert_eq!(
        origin.hits("/v.m4s"),
        2,
        "one fetch for both en viewers, one of its own for fr"
    );
}

/// A request that arrives after the origin's headers is given the fill's response only while
/// that response is fresh, as a stored copy would be: one that is stale on arrival (`max-age=0`
/// here) is fetched again, one that is fresh is shared. Before, a request that came while a
/// stale response's body was still arriving got it (the public cache test suite's
/// `status-400-stale` failed so, now and then, on a loaded machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_after_the_headers_shares_a_fill_only_while_its_response_is_fresh() {
    let origin = TestOrigin::start().await;
    for (path, cc) in [
        ("/stale.m4s", "max-age=0"),
        ("/fresh.m4s", "public, max-age=3600"),
    ] {
        origin.route(
            path,
            Route::ok(generated_body(path, 40_000), cc).paced(2_000, Duration::from_millis(50)),
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge(&origin.url(), dir.path(), &[]);
    for (path, fetches) in [("/stale.m4s", 2), ("/fresh.m4s", 1)] {
        let url = format!("{}{path}", edge.addr("http"));
        // The first viewer has the headers: its body takes about a second more.
        let first = send(Method::GET, &url, &[]).await;
        assert_eq!(first.status(), StatusCode::OK);
        let second = get(&url, &[]).await;
        let first = first
            .into_body()
            .collect()
            .await
            .expect("first body")
            .to_bytes();
        assert!(
            origin.finished_at(path).is_some(),
            "{path}: the first fetch is done"
        );
        assert_eq!(first.len(), 40_000, "{path}");
        assert_eq!(second.status, StatusCode::OK, "{path}");
        assert_eq!(second.body.len(), 40_000, "{path}");
        assert_eq!(origin.hits(path), fetches, "{path}: origin fetches");
    }
}

/// An origin that closes a keep-alive connection just as the edge reuses it (its idle timeout
/// racing the next request) answers nothing on it: the edge sends the GET again on a new
/// connection instead of answering 502. The origin here answers the first request on its first
/// connection (the edge's reachability check's, or the first GET's), then reads the second
/// request there and closes without a word; every later connection is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_on_a_connection_the_origin_closed_unanswered_is_sent_again() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = served.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut answered = 0;
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One request's head (no body: GETs only).
                    while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buffer.extend_from_slice(&chunk[..k]),
                        }
                    }
                    let end = buffer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let head_only = buffer.starts_with(b"HEAD ");
                    buffer.drain(..end);
                    if n == 0 && answered == 1 {
                        return; // closed with the second request unanswered
                    }
                    let body = b"an object";
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncache-control: no-store\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    let body: &[u8] = if head_only { b"" } else { body };
                    if stream.write_all(head.as_bytes()).is_err() || stream.write_all(body).is_err()
                    {
                        return;
                    }
                    answered += 1;
                    if !head_only {
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge(&origin, dir.path(), &[]);
    for path in ["/first.m4s", "/second.m4s"] {
        let reply = get(&format!("{}{path}", edge.addr("http")), &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
        assert_eq!(reply.text(), "an object", "{path}");
    }
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// A large upload streams through the edge: 100 MiB reach the origin while the edge's memory
/// grows by a small fraction of that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_post_streams_through_in_bounded_memory() {
    let origin = TestOrigin::start().await;
    origin.route("/upload", Route::ok("stored", "no-store"));
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_config(
        &origin.url(),
        dir.path(),
        "max_request_body = \"200MiB\"\n",
        &[],
    );
    let memory = |field: &str| proc_status_bytes(edge.pid(), field);
    let before = memory("VmRSS:");
    let body = dir.path().join("upload.bin");
    std::fs::write(&body, vec![0x5a_u8; 100 << 20]).expect("body");
    let url = format!("{}/upload", edge.addr("http"));
    let body_arg = format!("@{}", body.display());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "60",
            ])
            .args(["-X", "POST", "--data-binary", &body_arg, &url])
            .output()
            .expect("curl")
    })
    .await
    .expect("curl task");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    let (method, _, received) = origin.last_request("/upload").expect("the origin got it");
    assert_eq!((method, received), (Method::POST, 100 << 20));
    let peak = memory("VmHWM:");
    eprintln!("100 MiB POST through the edge: RSS {before} bytes before, peak {peak}");
    assert!(
        peak.saturating_sub(before) < 24 << 20,
        "the edge grew from {before} to a peak of {peak} bytes for a 100 MiB body"
    );
}

/// A byte count from `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`, ...).
fn proc_status_bytes(pid: i32, field: &str) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the edge's /proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc status"));
    line.split_whitespace()
        .nth(1)
        .and_then(|kb| kb.parse::<u64>().ok())
        .expect("kB")
        * 1024
}

/// Concurrent misses of an object that may not be stored (`no-store`, 256 MiB): nothing is
/// kept for them, so the edge's memory grows by its per-stream buffers, not by the object;
/// every viewer gets the whole body, each from a fetch of its own (the response is not shared).
/// Without the pass-through, the edge grew by 277 MB here (the whole object, kept for the
/// fill's waiters); with it, by 16 MB for the 8 streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncacheable_objects_stream_through_in_bounded_memory() {
    const SIZE: usize = 256 << 20;
    const VIEWERS: usize = 8;
    let origin = TestOrigin::start().await;
    origin.route("/big.mp4", Route::ok(vec![0x42_u8; SIZE], "no-store"));
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge(&origin.url(), dir.path(), &[]);
    let before = proc_status_bytes(edge.pid(), "VmRSS:");
    let url = format!("{}/big.mp4", edge.addr("http"));
    let viewers: Vec<_> = (0..VIEWERS)
        .map(|_| {
            let url = url.clone();
            tokio::task::spawn_blocking(move || {
                let out = Command::new("curl")
                    .args([
                        "-s",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code} %{size_download}",
                    ])
                    .args(["--max-time", "120", &url])
                    .output()
                    .expect("curl");
                String::from_utf8_lossy(&out.stdout).into_owned()
            })
        })
        .collect();
    for viewer in viewers {
        assert_eq!(
            viewer.await.expect("viewer"),
            format!("200 {SIZE}"),
            "every viewer gets the whole body"
        );
    }
    let peak = proc_status_bytes(edge.pid(), "VmHWM:");
    let grown = peak.saturating_sub(before);
    eprintln!(
        "{VIEWERS} concurrent misses of an uncacheable {} MiB object: RSS {before} bytes before, peak {peak} (+{grown})",
        SIZE >> 20
    );
    assert!(
        grown < (64 << 20) + VIEWERS as u64 * (1 << 20),
        "the edge grew by {grown} bytes: more than 64 MiB + 1 MiB per stream"
    );
    assert_eq!(origin.hits("/big.mp4"), VIEWERS, "one fetch per viewer");
    let metrics = get(&format!("{}/metrics", edge.addr("admin")), &[])
        .await
        .text();
    assert!(
        metrics.contains(&format!(
            "meridian_edge_origin_fetches_total{{outcome=\"passed\"}} {VIEWERS}\n"
        )),
        "{metrics}"
    );
}

/// Reads a streaming body to its end, comparing it with `want` as it comes; `at` is called with
/// the bytes received so far after every frame. Returns how many bytes matched.
async fn read_comparing(
    mut body: hyper::body::Incoming,
    want: &[u8],
    mut at: impl FnMut(usize),
) -> Result<usize, String> {
    let mut got = 0usize;
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(60), body.frame())
        .await
        .map_err(|_| format!("the body stalled at {got}"))?
    {
        let frame = frame.map_err(|e| format!("body error at {got}: {e}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if want.get(got..got + data.len()) != Some(&data[..]) {
            return Err(format!("wrong bytes at {got}"));
        }
        got += data.len();
        at(got);
    }
    Ok(got)
}

/// A large storable object writes through: its bytes go into the store as they arrive, the
/// fill keeps a window of them in memory, and viewers that join late read the rest from the
/// store. Memory does not grow with the object (192 MiB; before write-through the fill held all
/// of it), every viewer gets every byte, and the next request is a hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_fills_write_through_and_late_joiners_read_from_the_store() {
    const SIZE: usize = 192 << 20;
    const LATE: usize = 3;
    let data = generated_body("/big.mp4", SIZE);
    let origin = TestOrigin::start().await;
    // Paced, so that the late viewers join while the fill is still going.
    origin.route(
        "/big.mp4",
        Route::ok(data.clone(), "public, max-age=600").paced(1 << 20, Duration::from_millis(8)),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_config(
        &origin.url(),
        dir.path(),
        "max_object_size = \"256MiB\"\n",
        &["--capacity", "512MiB"],
    );
    let before = proc_status_bytes(edge.pid(), "VmRSS:");
    let url = format!("{}/big.mp4", edge.addr("http"));
    let first = send(Method::GET, &url, &[]).await;
    assert_eq!(first.status(), StatusCode::OK);
    let (joined_tx, joined_rx) = tokio::sync::oneshot::channel::<()>();
    let mut joined_tx = Some(joined_tx);
    let reader = {
        let data = data.clone();
        tokio::spawn(async move {
            read_comparing(first.into_body(), &data, |got| {
                // A third of the way in, the others come.
                if got >= SIZE / 3
                    && let Some(tx) = joined_tx.take()
                {
                    let _ = tx.send(());
                }
            })
            .await
        })
    };
    joined_rx.await.expect("the first viewer got a third");
    let late: Vec<_> = (0..LATE)
        .map(|_| {
            let (url, data) = (url.clone(), data.clone());
            tokio::spawn(async move {
                let response = send(Method::GET, &url, &[]).await;
                let cache = response.headers().get("x-cache").cloned();
                let got = read_comparing(response.into_body(), &data, |_| {}).await;
                (cache, got)
            })
        })
        .collect();
    assert_eq!(reader.await.expect("first"), Ok(SIZE));
    for viewer in late {
        let (cache, got) = viewer.await.expect("late viewer");
        assert_eq!(got, Ok(SIZE), "a late viewer gets every byte");
        assert_eq!(
            cache.as_ref().and_then(|v| v.to_str().ok()),
            Some("MISS"),
            "it joined the fill in flight"
        );
    }
    let peak = proc_status_bytes(edge.pid(), "VmHWM:");
    let grown = peak.saturating_sub(before);
    eprintln!(
        "a {} MiB fill with {} viewers: RSS {before} bytes before, peak {peak} (+{grown})",
        SIZE >> 20,
        LATE + 1
    );
    assert!(
        grown < 48 << 20,
        "the edge grew by {grown} bytes for one fill: it kept the object in memory"
    );
    assert_eq!(
        origin.hits("/big.mp4"),
        1,
        "one origin fetch for every viewer"
    );
    // Stored once the leader commits it, which may come after the viewers' last bytes.
    wait_for_objects(&edge, 1).await;
    let again = send(Method::GET, &url, &[]).await;
    assert_eq!(
        again.headers().get("x-cache").and_then(|v| v.to_str().ok()),
        Some("HIT")
    );
    assert_eq!(
        read_comparing(again.into_body(), &data, |_| {}).await,
        Ok(SIZE)
    );
}

/// A storable body of unknown length (chunked) is kept in memory while it is small, then
/// written through into room reserved for the largest object, cut to its size at the end. One
/// longer than `max_object_size` is not stored: its viewer still gets all of it, and the next
/// request fetches on its own (the key passes for a while).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_of_unknown_length_are_stored_up_to_the_object_limit() {
    let fits = generated_body("/fits.ts", 20 << 20);
    let over = generated_body("/over.ts", 40 << 20);
    let origin = TestOrigin::start().await;
    origin.route(
        "/fits.ts",
        Route::ok(fits.clone(), "public, max-age=600").without_length(),
    );
    origin.route(
        "/over.ts",
        Route::ok(over.clone(), "public, max-age=600").without_length(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_config(
        &origin.url(),
        dir.path(),
        "max_object_size = \"32MiB\"\n",
        &["--capacity", "128MiB"],
    );
    for (path, body) in [("/fits.ts", &fits), ("/over.ts", &over)] {
        let url = format!("{}{path}", edge.addr("http"));
        let response = send(Method::GET, &url, &[]).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            read_comparing(response.into_body(), body, |_| {}).await,
            Ok(body.len()),
            "{path}: the viewer gets every byte"
        );
    }
    let status = |path: &'static str| {
        let url = format!("{}{path}", edge.addr("http"));
        async move {
            let reply = get(&url, &[]).await;
            (reply.header("x-cache").to_owned(), reply.body.len())
        }
    };
    wait_for_objects(&edge, 1).await;
    assert_eq!(status("/fits.ts").await, ("HIT".to_owned(), 20 << 20));
    assert_eq!(status("/over.ts").await, ("MISS".to_owned(), 40 << 20));
    assert_eq!((origin.hits("/fits.ts"), origin.hits("/over.ts")), (1, 2));
    let stats = get(&format!("{}/status", edge.addr("admin")), &[])
        .await
        .text();
    assert!(stats.contains("\"objects\":1"), "{stats}");
}

/// A range of an uncached object goes to the origin as a range: a viewer seeking into an object
/// too large to store gets its bytes without the edge fetching the whole object, and a range
/// of a small object also fills the store, so the next range is a hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_of_uncached_objects_are_asked_as_ranges() {
    let origin = start_real_origin();
    let path = "/vod/color-bars/720p/seg_00004.m4s";
    let whole = get(&format!("{}{path}", origin.addr("http")), &[])
        .await
        .body;
    assert!(
        whole.len() > 100_000,
        "a segment larger than the store's object limit"
    );
    let origin_bytes = || async {
        let metrics = get(&format!("{}/metrics", origin.addr("admin")), &[])
            .await
            .text();
        metrics
            .lines()
            .filter(|l| l.starts_with("meridian_origin_body_bytes_sent"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum::<f64>()
    };

    // Too large to store: only the range leaves the origin.
    let small = tempfile::tempdir().expect("tempdir");
    let config = small.path().join("edge.toml");
    std::fs::write(&config, "max_object_size = \"64KiB\"\n").expect("config");
    let edge = start_edge(
        origin.addr("http"),
        small.path(),
        &["--config", config.to_str().expect("utf-8")],
    );
    let before = origin_bytes().await;
    let range = get(
        &format!("{}{path}", edge.addr("http")),
        &[("range", "bytes=90000-90099")],
    )
    .await;
    assert_eq!(range.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(range.body, whole[90_000..90_100]);
    let sent = origin_bytes().await - before;
    assert!(
        sent < 1000.0,
        "the origin sent {sent} bytes for a 100-byte range"
    );

    // Small enough: the range is answered the same way, and the object is stored beside it.
    let big = tempfile::tempdir().expect("tempdir");
    let edge = start_edge(origin.addr("http"), big.path(), &[]);
    let first = get(
        &format!("{}{path}", edge.addr("http")),
        &[("range", "bytes=0-99")],
    )
    .await;
    assert_eq!(
        (first.status, cache(&first)),
        (StatusCode::PARTIAL_CONTENT, "MISS")
    );
    wait_for_objects(&edge, 1).await;
    let second = get(
        &format!("{}{path}", edge.addr("http")),
        &[("range", "bytes=100-199")],
    )
    .await;
    assert_eq!(
        (second.status, cache(&second)),
        (StatusCode::PARTIAL_CONTENT, "HIT")
    );
    assert_eq!(second.body, whole[100..200]);
}

/// A viewer's own `Cache-Control` is honoured: `no-cache` and `max-age=0` revalidate a fresh
/// copy, `only-if-cached` never reaches the origin; an operator can shield the origin from the
/// first two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_cache_control_is_honoured_unless_the_operator_shields_the_origin() {
    let origin = TestOrigin::start().await;
    origin.route(
        "/rc.m4s",
        Route::ok("body", "public, max-age=3600").header("etag", "\"r1\""),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge(&origin.url(), dir.path(), &[]);
    let url = format!("{}/rc.m4s", edge.addr("http"));
    assert_eq!(cache(&get(&url, &[]).await), "MISS");
    wait_for_objects(&edge, 1).await;
    assert_eq!(cache(&get(&url, &[]).await), "HIT");
    let no_cache = get(&url, &[("cache-control", "no-cache")]).await;
    assert_eq!(cache(&no_cache), "REVALIDATED");
    let max_age_0 = get(&url, &[("cache-control", "max-age=0")]).await;
    assert_eq!(cache(&max_age_0), "REVALIDATED");
    assert_eq!(origin.not_modified("/rc.m4s"), 2);
    let absent = get(
        &format!("{}/never.m4s", edge.addr("http")),
        &[("cache-control", "only-if-cached")],
    )
    .await;
    assert_eq!(absent.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(origin.hits("/never.m4s"), 0);

    let shield_dir = tempfile::tempdir().expect("tempdir");
    let config = shield_dir.path().join("edge.toml");
    std::fs::write(&config, "ignore_client_no_cache = true\n").expect("config");
    let shield = start_edge(
        &origin.url(),
        shield_dir.path(),
        &["--config", config.to_str().expect("utf-8")],
    );
    let url = format!("{}/rc.m4s", shield.addr("http"));
    get(&url, &[]).await;
    wait_for_objects(&shield, 1).await;
    let shielded = get(&url, &[("cache-control", "no-cache")]).await;
    assert_eq!(cache(&shielded), "HIT");
}

/// Operators name their own credentials: a request with a session cookie is treated like one
/// with `Authorization`, while other cookies do not stop sharing; and OPTIONS can be left to
/// the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_credentials_are_not_shared_and_preflights_can_pass_through() {
    let origin = TestOrigin::start().await;
    origin.route("/mine", Route::ok("for alice", "max-age=3600"));
    origin.route("/ours", Route::ok("for everyone", "max-age=3600"));
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_config(
        &origin.url(),
        dir.path(),
        "credential_cookies = [\"session\"]\nanswer_cors_preflight = false\n",
        &[],
    );
    let base = edge.addr("http").to_owned();
    get(
        &format!("{base}/mine"),
        &[("cookie", "theme=dark; session=alice")],
    )
    .await;
    get(&format!("{base}/ours"), &[("cookie", "theme=dark")]).await;
    wait_for_objects(&edge, 1).await;
    assert_eq!(cache(&get(&format!("{base}/ours"), &[]).await), "HIT");
    assert_eq!(
        cache(&get(&format!("{base}/mine"), &[]).await),
        "MISS",
        "not stored from a request with a session"
    );
    let preflight = fetch(Method::OPTIONS, &format!("{base}/ours"), &[]).await;
    assert_eq!(cache(&preflight), "PASS");
    let (method, _, _) = origin.last_request("/ours").expect("the origin got it");
    assert_eq!(method, Method::OPTIONS);
}

/// An HTTPS origin: an edge with a certificate for `localhost` from a test CA, in front of
/// `origin`; with the CA file, and the folders that hold them (removed when it is dropped).
struct HttpsFront {
    edge: ServerProcess,
    ca: PathBuf,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn https_front(origin: &str) -> HttpsFront {
    let pki = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = test_pki(pki.path());
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge(
        origin,
        dir.path(),
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
        ],
    );
    HttpsFront {
        edge,
        ca,
        _dirs: (pki, dir),
    }
}

fn test_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Meridian test CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    let cert = params.signed_by(&key, &issuer).expect("cert");
    let paths = (
        dir.join("ca.pem"),
        dir.join("edge.pem"),
        dir.join("edge.key"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).expect("write ca");
    std::fs::write(&paths.1, cert.pem()).expect("write cert");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write key");
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_playlists_follow_the_origin_and_prefetch_fetches_the_next_segments() {
    let origin = start_real_origin();
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge(origin.addr("http"), dir.path(), &["--prefetch", "2"]);
    let base = format!("{}/vod/color-bars/360p", edge.addr("http"));
    assert_eq!(
        cache(&get(&format!("{base}/index.m3u8"), &[]).await),
        "MISS"
    );
    // Prefetch reads the media playlist from the store, so let it land there first.
    wait_for_objects(&edge, 1).await;
    assert_eq!(
        cache(&get(&format!("{base}/seg_00000.m4s"), &[]).await),
        "MISS"
    );
    // Wait until the two prefetches are stored (playlist, segment 0, segments 1 and 2).
    wait_for_objects(&edge, 4).await;
    let next = get(&format!("{base}/seg_00001.m4s"), &[]).await;
    assert_eq!(cache(&next), "HIT", "segment 1 was prefetched");
    // Playing segment 1 prefetches segment 3 (segment 2 is already there).
    wait_for_objects(&edge, 5).await;
    let metrics = get(&format!("{}/metrics", edge.addr("admin")), &[])
        .await
        .text();
    assert!(
        metrics.contains("meridian_edge_prefetches_total{outcome=\"issued\"} 3\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("meridian_edge_prefetches_total{outcome=\"used\"} 1\n"),
        "{metrics}"
    );
    // Four distinct segments, each fetched from the origin once: never twice.
    let origin_metrics = get(&format!("{}/metrics", origin.addr("admin")), &[])
        .await
        .text();
    assert!(
        origin_metrics.contains("kind=\"segment\"} 4\n"),
        "{origin_metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_answers_admin_and_drains_on_sigterm() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut edge = start_edge(&origin.url(), dir.path(), &[]);
    let status = status_json(&edge).await;
    assert!(status.contains("\"name\":\"test-edge\""), "{status}");
    assert!(status.contains("\"load\":0.0"), "{status}");
    edge.signal(Sig::SIGTERM);
    assert!(edge.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn check_config_names_an_unknown_key_and_accepts_the_example() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("edge.toml");
    std::fs::write(&bad, "name = \"e1\"\n\ncapacityy = \"1GiB\"\n").expect("write");
    let (status, _, stderr) = run_to_end(
        EDGE,
        &["--check-config", "--config", bad.to_str().expect("utf-8")],
    );
    assert!(!status.success());
    assert!(
        stderr.contains("capacityy") && stderr.contains("line 3"),
        "{stderr}"
    );
    let example = testdata().join("edge.toml");
    let (status, _, stderr) = run_to_end(
        EDGE,
        &[
            "--check-config",
            "--config",
            example.to_str().expect("utf-8"),
        ],
    );
    assert!(status.success(), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_fail_over_in_order_and_names_resolve() {
    let broken = TestOrigin::start().await;
    broken.route(
        "/f.m4s",
        Route {
            status: 503,
            ..Route::ok("overloaded", "no-store")
        },
    );
    let healthy = TestOrigin::start().await;
    healthy.route(
        "/f.m4s",
        Route::ok("from the second origin", "public, max-age=60"),
    );
    healthy.route("/g.m4s", Route::ok("also second", "public, max-age=60"));
    let dir = tempfile::tempdir().expect("tempdir");
    // The second origin is named, not numbered: it resolves through hickory-resolver
    // (localhost comes from /etc/hosts).
    let named = healthy.url().replace("127.0.0.1", "localhost");
    let edge = start_edge(&broken.url(), dir.path(), &["--origin", &named]);
    let reply = get(&format!("{}/f.m4s", edge.addr("http")), &[]).await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (StatusCode::OK, "from the second origin")
    );
    assert_eq!((broken.hits("/f.m4s"), healthy.hits("/f.m4s")), (1, 1));
    broken.stop();
    let reply = get(&format!("{}/g.m4s", edge.addr("http")), &[]).await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (StatusCode::OK, "also second")
    );
}

/// A request with a body goes to one origin only (RFC 9110 §9.2.2): when the first origin
/// fails it, the viewer gets that failure, and the next origin never sees the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_is_never_sent_to_a_second_origin() {
    let broken = TestOrigin::start().await;
    broken.route(
        "/upload",
        Route {
            status: 503,
            ..Route::ok("overloaded", "no-store")
        },
    );
    let healthy = TestOrigin::start().await;
    healthy.route("/upload", Route::ok("stored", "no-store"));
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge(&broken.url(), dir.path(), &["--origin", &healthy.url()]);
    let url = format!("{}/upload", edge.addr("http"));
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
            .args([
                "--data-binary",
                "a licence request",
                "--max-time",
                "30",
                &url,
            ])
            .output()
            .expect("curl")
    })
    .await
    .expect("curl task");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "503");
    let (method, _, received) = broken
        .last_request("/upload")
        .expect("the first origin got it");
    assert_eq!((method, received), (Method::POST, 17));
    assert!(
        healthy.last_request("/upload").is_none(),
        "the body was sent again to the second origin"
    );
}

/// A plain packager behind the edge: the edge writes content steering (naming itself) into
/// the multivariant playlist and the MPD, turns the origin's absolute URLs into CDN paths, and
/// answers conditionals and ranges against the bytes it serves; the store keeps the origin's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_get_steering_and_cdn_paths_and_the_store_keeps_the_origins_bytes() {
    let origin = TestOrigin::start().await;
    let o = origin.url();
    let master = format!(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\n{o}/live/x/360p.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=1600000\n720p.m3u8\n"
    );
    let media = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"{o}/live/x/init.mp4\"\n#EXTINF:2,\n{o}/live/x/1.m4s\n#EXTINF:2,\nhttps://elsewhere.example/2.m4s\n"
    );
    let mpd = format!(
        "<?xml version=\"1.0\"?>\n<MPD type=\"dynamic\">\n<Period><BaseURL>{o}/live/x/</BaseURL></Period>\n<UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-xsdate:2014\" value=\"{o}/time\"/>\n</MPD>\n"
    );
    let hls_type = "application/vnd.apple.mpegurl";
    for (path, body, kind) in [
        ("/live/x/master.m3u8", master.clone(), hls_type),
        ("/live/x/360p.m3u8", media.clone(), hls_type),
        // As a static file server sends it: the extension says what it is.
        (
            "/live/x/manifest.mpd",
            mpd.clone(),
            "application/octet-stream",
        ),
    ] {
        origin.route(
            path,
            Route::ok(body, "public, max-age=60")
                .header("content-type", kind)
                .header("etag", "\"v1\""),
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_config(
        &o,
        dir.path(),
        "steering_hls = \"http://router.test/steer/hls\"\nsteering_dash = \"http://router.test/steer/dash\"\n",
        &[],
    );
    let e = edge.addr("http").to_owned();
    let host = e.trim_start_matches("http://").to_owned();

    let expected_master = "#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"http://router.test/steer/hls?edge=test-edge\",PATHWAY-ID=\".\"\n#EXT-X-STREAM-INF:BANDWIDTH=800000\n/live/x/360p.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=1600000\n720p.m3u8\n";
    let first = get(&format!("{e}/live/x/master.m3u8"), &[]).await;
    let again = get(&format!("{e}/live/x/master.m3u8"), &[]).await;
    for (reply, cached) in [(&first, "MISS"), (&again, "HIT")] {
        assert_eq!(cache(reply), cached);
        assert_eq!(reply.text(), expected_master);
        assert_eq!(
            reply.header("content-length"),
            expected_master.len().to_string()
        );
    }
    let etag = first.header("etag").to_owned();
    assert!(
        etag.starts_with("\"v1-m") && etag != "\"v1\"",
        "the served bytes have their own validator: {etag}"
    );
    assert_eq!(again.header("etag"), etag);
    let revalidated = get(
        &format!("{e}/live/x/master.m3u8"),
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    let old = get(
        &format!("{e}/live/x/master.m3u8"),
        &[("if-none-match", "\"v1\"")],
    )
    .await;
    assert_eq!(old.status, StatusCode::OK, "the origin's tag is not ours");
    let part = get(
        &format!("{e}/live/x/master.m3u8"),
        &[("range", "bytes=8-29")],
    )
    .await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.text(), &expected_master[8..30]);

    let media_reply = get(&format!("{e}/live/x/360p.m3u8"), &[]).await;
    assert_eq!(
        media_reply.text(),
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"/live/x/init.mp4\"\n#EXTINF:2,\n/live/x/1.m4s\n#EXTINF:2,\nhttps://elsewhere.example/2.m4s\n",
        "no steering in a media playlist; only the origin's URLs change"
    );

    let mpd_reply = get(&format!("{e}/live/x/manifest.mpd"), &[]).await;
    assert_eq!(
        mpd_reply.text(),
        format!(
            "<?xml version=\"1.0\"?>\n<MPD type=\"dynamic\">\n  <BaseURL serviceLocation=\".\">./</BaseURL>\n  <ContentSteering defaultServiceLocation=\".\" queryBeforeStart=\"true\">http://router.test/steer/dash?edge=test-edge</ContentSteering>\n<Period><BaseURL>/live/x/</BaseURL></Period>\n<UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-xsdate:2014\" value=\"//{host}/time\"/>\n</MPD>\n"
        )
    );
    for path in [
        "/live/x/master.m3u8",
        "/live/x/360p.m3u8",
        "/live/x/manifest.mpd",
    ] {
        assert_eq!(origin.hits(path), 1, "{path} was fetched once");
    }

    // The same store under an edge that rewrites nothing: the stored copies are the origin's.
    drop(edge);
    let plain = start_edge_with_config(&o, dir.path(), "rewrite_origin_urls = false\n", &[]);
    let stored = get(&format!("{}/live/x/master.m3u8", plain.addr("http")), &[]).await;
    assert_eq!(cache(&stored), "HIT");
    assert_eq!(stored.text(), master);
    assert_eq!(stored.header("etag"), "\"v1\"");
}

/// `origin_host`: the origin is reached by address and spoken to by name, in `Host` and, over
/// HTTPS, in SNI and the certificate check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_host_override_names_the_origin_in_host_and_tls() {
    let origin = TestOrigin::start().await;
    origin.route("/s.m4s", Route::ok("by name", "public, max-age=3600"));
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_config(
        &origin.url(),
        dir.path(),
        &format!(
            "origin_host = {{ {:?} = \"media.example\" }}\n",
            origin.url()
        ),
        &[],
    );
    let reply = get(&format!("{}/s.m4s", edge.addr("http")), &[]).await;
    assert_eq!(reply.text(), "by name");
    let (_, headers, _) = origin.last_request("/s.m4s").expect("asked");
    assert_eq!(headers["host"], "media.example");

    // HTTPS by address: the certificate names `localhost` only, so the address alone fails
    // and the override makes it verify.
    let HttpsFront {
        edge: front, ca, ..
    } = &https_front(&origin.url());
    let by_address = front.addr("https").to_owned();
    assert!(by_address.starts_with("https://127.0.0.1:"), "{by_address}");
    let port = by_address.rsplit(':').next().expect("port");
    let ca = ca.to_str().expect("utf-8");
    for (override_host, works) in [(None, false), (Some(format!("localhost:{port}")), true)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("edge.toml");
        let mut text = format!("origin_ca_file = {ca:?}\n");
        if let Some(host) = &override_host {
            text.push_str(&format!("origin_host = {{ {by_address:?} = {host:?} }}\n"));
        }
        std::fs::write(&config, text).expect("config");
        let edge = start_edge(
            &by_address,
            dir.path(),
            &["--config", config.to_str().expect("utf-8")],
        );
        let reply = get(&format!("{}/s.m4s", edge.addr("http")), &[]).await;
        if works {
            assert_eq!(
                (reply.status, reply.text().as_str()),
                (StatusCode::OK, "by name")
            );
        } else {
            assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
        }
    }
}

/// Ranges of an object too large to store whole are kept in slices and combined (RFC 9111
/// §3.3-3.4): after the first range (passed through, which teaches the edge the length), each
/// slice leaves the origin once, and a later range that overlaps stored slices fetches only
/// the missing ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_of_large_objects_are_stored_as_slices_and_combined() {
    let origin = start_real_origin();
    let path = "/vod/color-bars/720p/seg_00002.m4s";
    let whole = get(&format!("{}{path}", origin.addr("http")), &[])
        .await
        .body;
    assert_eq!(whole.len(), 131_868, "the test's segment");
    let origin_bytes = || async {
        get(&format!("{}/metrics", origin.addr("admin")), &[])
            .await
            .text()
            .lines()
            .filter(|l| l.starts_with("meridian_origin_body_bytes_sent"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_config(
        origin.addr("http"),
        dir.path(),
        "max_object_size = \"32KiB\"\nslice_size = \"16KiB\"\n",
        &[],
    );
    let url = format!("{}{path}", edge.addr("http"));
    let slice = 16_384u64;
    let ask = |range: &'static str| {
        let url = url.clone();
        async move { get(&url, &[("range", range)]).await }
    };

    let mut before = origin_bytes().await;
    let first = ask("bytes=90000-90099").await;
    assert_eq!(first.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(first.body, whole[90_000..90_100]);
    assert_eq!(
        origin_bytes().await - before,
        100,
        "passed through as asked"
    );

    let cases: [(&str, std::ops::Range<usize>, &str, u64); 4] = [
        // Slices 2, 3 and 4, fetched.
        ("bytes=40000-70000", 40_000..70_001, "MISS", 3 * slice),
        // The same, from the store.
        ("bytes=40000-70000", 40_000..70_001, "HIT", 0),
        // Slices 3 to 6: 3 and 4 stored, 5 and 6 fetched.
        ("bytes=60000-100000", 60_000..100_001, "HIT", 2 * slice),
        // The last 100 bytes: slice 8, short.
        ("bytes=-100", 131_768..131_868, "MISS", 131_868 - 8 * slice),
    ];
    for (range, bytes, cached, fetched) in cases {
        before = origin_bytes().await;
        let reply = ask(range).await;
        assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            reply.header("content-range"),
            format!("bytes {}-{}/131868", bytes.start, bytes.end - 1)
        );
        assert_eq!(cache(&reply), cached, "{range}");
        assert!(
            reply.body == whole[bytes.clone()],
            "{range}: the right bytes"
        );
        assert_eq!(
            origin_bytes().await - before,
            fetched,
            "{range}: only the missing slices left the origin"
        );
    }
}

/// A second edge on a store file another edge holds exits at once, naming the holder's PID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_edge_on_the_same_store_exits_naming_the_holder() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let first = start_edge(&origin.url(), dir.path(), &[]);
    let store = dir.path().join("edge.store");
    let (status, _, stderr) = run_to_end(
        EDGE,
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--origin",
            &origin.url(),
            "--store",
            store.to_str().expect("utf-8"),
            "--capacity",
            "64MiB",
        ],
    );
    assert!(!status.success(), "the second edge must not run");
    assert!(
        stderr.contains(&format!("process {} (per ", first.pid()))
            && stderr.contains("edge.store.owner"),
        "the message names the holder and its pid file: {stderr}"
    );
    // The first one is unharmed.
    assert_eq!(
        get(&format!("{}/healthz", first.addr("admin")), &[])
            .await
            .status,
        StatusCode::OK
    );
}

/// An edge whose listeners time out in about a second, for the connection tests.
fn start_edge_with_short_timeouts(origin: &str, dir: &Path, extra: &str) -> ServerProcess {
    let mut table = String::from("[connections]\n");
    for (key, value) in [
        ("first_request_timeout", "\"1s\""),
        ("header_timeout", "\"1s\""),
        ("idle_timeout", "\"2s\""),
        ("write_stall_timeout", "\"1s\""),
        ("body_timeout", "\"1s\""),
    ] {
        if !extra.contains(key) {
            table.push_str(&format!("{key} = {value}\n"));
        }
    }
    start_edge_with_config(origin, dir, &format!("{table}{extra}"), &[])
}

/// A raw TCP connection to an `http://host:port` address, reads bounded by `within`.
fn raw_connection(url: &str, within: Duration) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(url.trim_start_matches("http://")).expect("connect");
    stream.set_read_timeout(Some(within)).expect("timeout");
    stream
}

/// Reads until the server closes the connection (or resets it); fails the test if it is still
/// open when the read timeout runs out. Returns the bytes read.
fn read_until_closed(stream: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!(
                "the connection is still open ({e}) after {} bytes",
                got.len()
            ),
        }
    }
}

async fn timed_out_count(edge: &ServerProcess, reason: &str) -> f64 {
    let metrics = get(&format!("{}/metrics", edge.addr("admin")), &[])
        .await
        .text();
    let prefix = format!(
        "meridian_edge_connections_timed_out_total{{listener=\"http\",reason=\"{reason}\"}} "
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or(0.0)
}

/// A connection that sends nothing, one that sends half a header, and one left idle after a
/// request are each closed after their timeout, and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_slow_and_idle_connections_are_closed_after_their_timeouts() {
    use std::io::Write;
    let origin = TestOrigin::start().await;
    origin.generate(1000, "public, max-age=60");
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_short_timeouts(&origin.url(), dir.path(), "");
    let url = edge.addr("http").to_owned();
    let within = Duration::from_secs(10);
    let (silent, half, idle) = tokio::task::spawn_blocking(move || {
        let mut silent = raw_connection(&url, within);
        let mut half = raw_connection(&url, within);
        half.write_all(b"GET /a.m4s HTTP/1.1\r\nHost: x\r\n")
            .expect("half a header");
        let mut idle = raw_connection(&url, within);
        idle.write_all(b"GET /a.m4s HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("a request");
        (
            read_until_closed(&mut silent),
            read_until_closed(&mut half),
            read_until_closed(&mut idle),
        )
    })
    .await
    .expect("clients");
    assert!(
        silent.is_empty() && half.is_empty(),
        "closed without an answer"
    );
    let answer = String::from_utf8_lossy(&idle);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(timed_out_count(&edge, "first_request").await, 1.0);
    assert!(timed_out_count(&edge, "header").await >= 2.0);
    // The edge still serves.
    assert_eq!(
        get(&format!("{}/b.m4s", edge.addr("http")), &[])
            .await
            .status,
        StatusCode::OK
    );
}

/// A viewer that stops reading a large body is cut off once its writes have made no progress
/// for `write_stall_timeout`, instead of holding the connection for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_stops_reading_is_cut_off() {
    use std::io::Write;
    let origin = TestOrigin::start().await;
    origin.route(
        "/big.mp4",
        Route::ok(vec![7u8; 48 << 20], "public, max-age=60"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_short_timeouts(&origin.url(), dir.path(), "");
    let url = edge.addr("http").to_owned();
    let mut stream = raw_connection(&url, Duration::from_secs(20));
    stream
        .write_all(b"GET /big.mp4 HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    // Nothing read: the socket buffers fill, and the edge's writes stall.
    let deadline = Instant::now() + Duration::from_secs(20);
    while timed_out_count(&edge, "write_stall").await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the stalled viewer was never cut off"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = tokio::task::spawn_blocking(move || read_until_closed(&mut stream))
        .await
        .expect("reader");
    assert!(
        got.len() < 48 << 20,
        "cut off before the end: {} bytes",
        got.len()
    );
}

/// Past `max_connections`, new connections are closed at accept and counted, while the open
/// ones keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_refused_and_the_others_keep_working() {
    use std::io::{Read, Write};
    let origin = TestOrigin::start().await;
    origin.generate(1000, "public, max-age=60");
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_short_timeouts(
        &origin.url(),
        dir.path(),
        "max_connections = 2\nidle_timeout = \"60s\"\nheader_timeout = \"60s\"\n",
    );
    let url = edge.addr("http").to_owned();
    let metrics_url = format!("{}/metrics", edge.addr("admin"));
    let request = b"GET /a.m4s HTTP/1.1\r\nHost: x\r\n\r\n";
    // One whole response: its header, then as many bytes as its Content-Length says.
    let answer = |stream: &mut std::net::TcpStream| {
        stream.write_all(request).expect("request");
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        loop {
            let n = stream.read(&mut buf).expect("answer");
            assert!(n > 0, "closed mid-answer");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")?
                            .parse()
                            .ok()
                    })
                    .expect("content-length");
                if got.len() >= end + 4 + length {
                    return text;
                }
            }
        }
    };
    let mut first = raw_connection(&url, Duration::from_secs(10));
    let mut second = raw_connection(&url, Duration::from_secs(10));
    assert!(answer(&mut first).starts_with("HTTP/1.1 200"));
    assert!(answer(&mut second).starts_with("HTTP/1.1 200"));
    let mut third = raw_connection(&url, Duration::from_secs(10));
    let refused = tokio::task::spawn_blocking(move || read_until_closed(&mut third))
        .await
        .expect("third");
    assert!(
        refused.is_empty(),
        "the third connection was closed at once"
    );
    assert!(
        answer(&mut first).starts_with("HTTP/1.1 200"),
        "the open ones still work"
    );
    let metrics = get(&metrics_url, &[]).await.text();
    assert!(
        metrics.contains(
            "meridian_edge_connections_refused_total{listener=\"http\",reason=\"limit\"} 1\n"
        ),
        "{metrics}"
    );
    drop((first, second));
}

/// A request body that stalls halfway gets 408 after `body_timeout`, and the origin's answer is
/// not waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_stalls_gets_408() {
    use std::io::Write;
    let origin = TestOrigin::start().await;
    origin.route("/upload", Route::ok("stored", "no-store"));
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_short_timeouts(&origin.url(), dir.path(), "");
    let url = edge.addr("http").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = raw_connection(&url, Duration::from_secs(10));
        stream
            .write_all(
                b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nten bytes.",
            )
            .expect("half a body");
        read_until_closed(&mut stream)
    })
    .await
    .expect("client");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// Access log lines are JSON with the fields an operator needs (the token and CMCD out of the
/// path, CMCD's session id kept), and SIGUSR1 reopens the file after a rotation moved it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_parse_back_and_sigusr1_reopens_the_file() {
    let origin = TestOrigin::start().await;
    origin.generate(1000, "public, max-age=60");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.jsonl");
    let edge = start_edge_with_config(
        &origin.url(),
        dir.path(),
        &format!(
            "access_log = {:?}\nkey_ignore_params = [\"token\"]\n",
            log.to_str().expect("utf-8")
        ),
        &[],
    );
    let base = edge.addr("http").to_owned();
    let url = format!("{base}/a.m4s?token=secret&v=2&CMCD=bl%3D300%2Csid%3D%22s-42%22");
    for _ in 0..2 {
        let reply = get(&url, &[("user-agent", "test-agent")]).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let lines = |path: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while lines(&log).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no access log lines: {:?}",
            lines(&log)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let written = lines(&log);
    for (line, cache) in written.iter().zip(["MISS", "HIT"]) {
        assert_eq!(line["path"], "/a.m4s?v=2", "{line}");
        assert_eq!(line["method"], "GET");
        assert_eq!(line["status"], 200);
        assert_eq!(line["bytes"], 1000);
        assert_eq!(line["cache"], cache);
        assert_eq!(line["complete"], true);
        assert_eq!(line["session"], "s-42");
        assert_eq!(line["client"], "127.0.0.1");
        assert_eq!(line["edge"], "test-edge");
        assert_eq!(line["region"], "test-region");
        assert_eq!(line["user_agent"], "test-agent");
        assert!(line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0));
        let time = line["time"].as_str().expect("time");
        assert!(humantime::parse_rfc3339(time).is_ok(), "{time}");
    }
    assert!(!std::fs::read_to_string(&log).unwrap().contains("secret"));
    // Rotation: the file is moved away, SIGUSR1 reopens it at its path.
    let rotated = dir.path().join("access.1.jsonl");
    std::fs::rename(&log, &rotated).expect("rotate");
    edge.signal(Sig::SIGUSR1);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    while lines(&log).is_empty() {
        assert!(Instant::now() < deadline, "the access log was not reopened");
        n += 1;
        get(&format!("{base}/b.m4s?n={n}"), &[]).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every line is in one file or the other, none lost in the move.
    let deadline = Instant::now() + Duration::from_secs(10);
    while lines(&rotated).len() + lines(&log).len() < 2 + n {
        assert!(
            Instant::now() < deadline,
            "access log lines lost in the rotation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(lines(&rotated).len() + lines(&log).len(), 2 + n);
}

/// A test CA and certificates signed by it, one per set of names: (CA file, [(cert, key)]).
fn test_pki_for(dir: &Path, sets: &[&[&str]]) -> (PathBuf, Vec<(PathBuf, PathBuf)>) {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Meridian rotation CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let ca = dir.join("rotation-ca.pem");
    std::fs::write(&ca, ca_cert.pem()).expect("write ca");
    let pairs = sets
        .iter()
        .enumerate()
        .map(|(i, names)| {
            let key = rcgen::KeyPair::generate().expect("key");
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let cert = rcgen::CertificateParams::new(names)
                .expect("params")
                .signed_by(&key, &issuer)
                .expect("cert");
            let paths = (dir.join(format!("c{i}.pem")), dir.join(format!("c{i}.key")));
            std::fs::write(&paths.0, cert.pem()).expect("write cert");
            std::fs::write(&paths.1, key.serialize_pem()).expect("write key");
            paths
        })
        .collect();
    (ca, pairs)
}

/// A TLS connection to `addr` asking for `name`, trusting `ca`; with the certificate it got.
async fn tls_connect(
    addr: &str,
    name: &str,
    ca: &Path,
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    Vec<u8>,
) {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(cert.expect("ca cert")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr.trim_start_matches("https://"))
        .await
        .expect("connect");
    let server_name = rustls::pki_types::ServerName::try_from(name.to_owned()).expect("name");
    let stream = connector
        .connect(server_name, tcp)
        .await
        .expect("handshake");
    let presented = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .expect("a certificate");
    (stream, presented)
}

/// One HTTP/1.1 request on an open TLS connection; the status line.
async fn tls_request(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    host: &str,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(format!("GET /s.m4s HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\r\n\r\nover tls") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

fn der_of(pem: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(pem)
        .expect("cert")
        .to_vec()
}

/// Certificates are chosen by SNI, and SIGHUP swaps in new files: new handshakes get the new
/// certificate while a connection already up keeps working; a bad new certificate is refused
/// and the last good one stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_chosen_by_sni_and_rotated_on_sighup() {
    let origin = TestOrigin::start().await;
    origin.route("/s.m4s", Route::ok("over tls", "public, max-age=3600"));
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, pairs) = test_pki_for(
        dir.path(),
        &[&["localhost"], &["other.test"], &["localhost"]],
    );
    let (default, other, next) = (&pairs[0], &pairs[1], &pairs[2]);
    // The files the edge reads: the default pair is overwritten to rotate it.
    let (cert, key) = (dir.path().join("edge.pem"), dir.path().join("edge.key"));
    std::fs::copy(&default.0, &cert).expect("cert");
    std::fs::copy(&default.1, &key).expect("key");
    let edge = start_edge_with_config(
        &origin.url(),
        dir.path(),
        &format!(
            "tls_cert = {:?}\ntls_key = {:?}\n\
             tls_certificates = [{{ cert = {:?}, key = {:?} }}]\n",
            cert.to_str().expect("utf-8"),
            key.to_str().expect("utf-8"),
            other.0.to_str().expect("utf-8"),
            other.1.to_str().expect("utf-8"),
        ),
        &["--tls-listen", "127.0.0.1:0"],
    );
    let https = edge.addr("https").to_owned();
    let (mut kept, presented) = tls_connect(&https, "localhost", &ca).await;
    assert_eq!(presented, der_of(&default.0), "the default certificate");
    assert_eq!(tls_request(&mut kept, "localhost").await, "HTTP/1.1 200 OK");
    let (_, presented) = tls_connect(&https, "other.test", &ca).await;
    assert_eq!(presented, der_of(&other.0), "chosen by SNI");

    // Rotate: new files, SIGHUP; handshakes get the new certificate once it is loaded.
    std::fs::copy(&next.0, &cert).expect("cert");
    std::fs::copy(&next.1, &key).expect("key");
    edge.signal(Sig::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, presented) = tls_connect(&https, "localhost", &ca).await;
        if presented == der_of(&next.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        tls_request(&mut kept, "localhost").await,
        "HTTP/1.1 200 OK",
        "the connection made before the rotation stays up"
    );

    // A bad certificate is refused; the edge keeps serving the last good one.
    std::fs::write(&cert, "not a certificate").expect("bad cert");
    edge.signal(Sig::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !edge.stderr().contains("TLS certificates not reloaded") {
        assert!(
            Instant::now() < deadline,
            "the bad certificate was not reported"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, presented) = tls_connect(&https, "localhost", &ca).await;
    assert_eq!(presented, der_of(&next.0));
}

/// Host hygiene: a host the edge does not serve gets 421 and never reaches the origin; the names
/// it serves share one cache under the canonical host; spellings
/// of one path (dot segments, escaped unreserved characters) are one object and one fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_hosts_get_421_and_paths_and_hosts_are_normalised_before_keys() {
    let origin = TestOrigin::start().await;
    origin.generate(1000, "public, max-age=60");
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_config(
        &origin.url(),
        dir.path(),
        "hosts = [\"cdn.test\", \"127.0.0.1\", \"localhost\"]\ncanonical_host = \"cdn.test\"\n",
        &[],
    );
    let base = edge.addr("http").to_owned();
    let refused = get(&format!("{base}/a/c.m4s"), &[("host", "evil.test")]).await;
    assert_eq!(refused.status, StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(
        origin.hits("/a/c.m4s"),
        0,
        "an unknown host never reaches the origin"
    );
    let first = get(&format!("{base}/a/./b/../%63.m4s"), &[]).await;
    assert_eq!((first.status, cache(&first)), (StatusCode::OK, "MISS"));
    wait_for_objects(&edge, 1).await;
    for (path, host) in [
        ("/a/c.m4s", "localhost"),
        ("/a/%2e/c.m4s", "cdn.test:8080"),
        ("/x/%2E%2E/a/c.m4s", "127.0.0.1"),
    ] {
        let reply = get(&format!("{base}{path}"), &[("host", host)]).await;
        assert_eq!(
            (reply.status, cache(&reply)),
            (StatusCode::OK, "HIT"),
            "{path} {host}"
        );
        assert_eq!(reply.body, generated_body("/a/c.m4s", 1000));
    }
    assert_eq!(origin.hits("/a/c.m4s"), 1, "one fetch, of the normal path");

    // A URL a rewritten manifest makes absolute names the edge as the viewer asked for it, not
    // the canonical host (which need not resolve to this edge).
    origin.route(
        "/live/m.mpd",
        Route::ok(
            format!(
                "<MPD><UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-xsdate:2014\" value=\"{}/time\"/></MPD>",
                origin.url()
            ),
            "public, max-age=1",
        )
        .header("content-type", "application/dash+xml"),
    );
    let mpd = get(&format!("{base}/live/m.mpd"), &[]).await;
    let asked = base.trim_start_matches("http://");
    assert!(
        mpd.text().contains(&format!("value=\"//{asked}/time\"")),
        "{}",
        mpd.text()
    );
}

/// Signed URLs: `meridian-sign` makes a token for a prefix; the edge serves what it opens and
/// caches it without the token (another token for the same prefix is a HIT, the origin sees the
/// plain path), and answers 403, before any lookup, to no token, a bad one, an expired one and
/// one for another prefix. A drain redirect carries the token on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_urls_open_their_prefix_and_nothing_else() {
    const SECRET: &str = "bWVyaWRpYW4tdGVzdC1zaWduaW5nLXNlY3JldC0wMTIzNDU2Nzg5";
    let sign = |args: &[&str]| -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_meridian-sign"))
            .env("MERIDIAN_SIGNING_SECRET", SECRET)
            .args(args)
            .output()
            .expect("meridian-sign");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    };
    let origin = TestOrigin::start().await;
    origin.generate(1000, "public, max-age=60");
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_config(
        &origin.url(),
        dir.path(),
        &format!(
            "admin_token = \"s3cret\"\ndrain_to = \"http://127.0.0.9:8080\"\n\
             [signed_urls]\nrequired_prefixes = [\"/vod/\"]\n\
             keys = [{{ id = 1, secret = \"{SECRET}\" }}]\n"
        ),
        &[],
    );
    let base = edge.addr("http").to_owned();
    let signed = sign(&["--key-id", "1", "--prefix", "/vod/a/", "--ttl", "1h"]);
    assert!(
        signed.starts_with("/t/") && signed.ends_with("/vod/a/"),
        "{signed}"
    );
    let first = get(&format!("{base}{signed}seg_1.m4s"), &[]).await;
    assert_eq!((first.status, cache(&first)), (StatusCode::OK, "MISS"));
    assert_eq!(first.body, generated_body("/vod/a/seg_1.m4s", 1000));
    wait_for_objects(&edge, 1).await;
    let again = sign(&["--key-id", "1", "--prefix", "/vod/a/", "--ttl", "2h"]);
    assert_ne!(again, signed);
    let hit = get(&format!("{base}{again}seg_1.m4s"), &[]).await;
    assert_eq!(
        (hit.status, cache(&hit)),
        (StatusCode::OK, "HIT"),
        "the token is not in the key"
    );
    assert_eq!(
        origin.hits("/vod/a/seg_1.m4s"),
        1,
        "the origin saw the plain path"
    );

    let expired = sign(&["--key-id", "1", "--prefix", "/vod/a/", "--expires", "1000"]);
    let other = sign(&["--key-id", "1", "--prefix", "/vod/b/", "--ttl", "1h"]);
    let wrong_key = sign(&["--key-id", "2", "--prefix", "/vod/a/", "--ttl", "1h"]);
    let token = signed.trim_end_matches("/vod/a/");
    for (path, why) in [
        ("/vod/a/seg_1.m4s".to_owned(), "no token"),
        (format!("{expired}seg_1.m4s"), "expired"),
        (format!("{token}/vod/b/seg_1.m4s"), "another prefix"),
        (
            format!("{token}/vod/a/../b/seg_1.m4s"),
            "climbing out of the prefix",
        ),
        (
            format!("{other}../a/seg_1.m4s"),
            "a token for /vod/b/ on /vod/a/",
        ),
        (format!("{wrong_key}seg_1.m4s"), "an unknown key"),
        (
            "/t/bad.token/vod/a/seg_1.m4s".to_owned(),
            "a malformed token",
        ),
    ] {
        let reply = get(&format!("{base}{path}"), &[]).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{why}: {path}");
    }
    assert_eq!(origin.hits("/vod/a/seg_1.m4s"), 1);
    assert_eq!(
        origin.hits("/vod/b/seg_1.m4s"),
        0,
        "refused before any fetch"
    );

    // A packager's playlist that names segments by absolute origin URLs: they become CDN paths
    // with the viewer's token in front, so they are fetched signed too.
    let playlist = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n{}/vod/a/seg_1.m4s\n#EXT-X-ENDLIST\n",
        origin.url()
    );
    origin.route(
        "/vod/a/index.m3u8",
        Route::ok(playlist, "public, max-age=60")
            .header("content-type", "application/vnd.apple.mpegurl"),
    );
    let listed = get(&format!("{base}{signed}index.m3u8"), &[]).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(
        listed.text().contains(&format!("\n{signed}seg_1.m4s\n")),
        "{}",
        listed.text()
    );

    // Draining: the redirect keeps the token.
    let admin = edge.addr("admin");
    let drain = fetch(
        Method::POST,
        &format!("{admin}/drain"),
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(drain.status, StatusCode::OK, "{}", drain.text());
    let redirect = get(&format!("{base}{signed}seg_2.m4s"), &[]).await;
    assert_eq!(redirect.status, StatusCode::FOUND);
    assert_eq!(
        redirect.header("location"),
        format!("http://127.0.0.9:8080{signed}seg_2.m4s")
    );
}

/// The edge's `/status` as JSON.
async fn status_value(edge: &ServerProcess) -> serde_json::Value {
    serde_json::from_str(&status_json(edge).await).expect("/status is JSON")
}

/// Polls the edge's `/status` until `check` holds of it (or panics after 15 s, naming `what`).
async fn status_until(
    edge: &ServerProcess,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = status_value(edge).await;
        if check(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within 15 s: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The edge measures what fills it, each against `[load]`: viewers' connections open, egress
/// bits per second, responses in progress (a body still being sent counts); its load is the
/// largest ratio, on `/status` and `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_is_egress_connections_and_responses_in_progress_against_capacity() {
    let _alone = HEAVY.lock().await;
    let origin = TestOrigin::start().await;
    origin.route(
        "/big.m4s",
        Route::ok(generated_body("big", 2 << 20), "public, max-age=3600"),
    );
    // 1 MiB in 64 KiB chunks 150 ms apart: each response is in progress for about 2.4 s.
    origin.route(
        "/slow.m4s",
        Route::ok(generated_body("slow", 1 << 20), "no-store")
            .paced(64 * 1024, Duration::from_millis(150)),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_config(
        &origin.url(),
        dir.path(),
        "[load]\negress_mbps = 10\nconnections = 20\nresponses = 4\n",
        &[],
    );
    let idle = status_value(&edge).await;
    assert_eq!(idle["capacity"]["egress_mbps"], 10, "{idle}");
    assert!(idle["load"].as_f64().expect("load") < 0.05, "{idle}");
    let part = |s: &serde_json::Value, name: &str| s["load_parts"][name].as_f64().expect(name);
    let load = |s: &serde_json::Value| s["load"].as_f64().expect("load");

    // Ten viewers' connections held open: half the 20 the edge is sized for.
    let http = edge.addr("http").trim_start_matches("http://").to_owned();
    let held: Vec<std::net::TcpStream> = (0..10)
        .map(|_| std::net::TcpStream::connect(&http).expect("connect"))
        .collect();
    let s = status_until(&edge, "ten connections count", |s| {
        part(s, "connections") > 9.0 && load(s) > 0.45
    })
    .await;
    assert!(load(&s) < 0.6, "connections are the largest part: {s}");
    drop(held);
    status_until(&edge, "closed connections stop counting", |s| {
        part(s, "connections") < 1.0
    })
    .await;

    // Egress: a 2 MiB hit fetched again and again is far more than 10 Mbit/s.
    let url = format!("{}/big.m4s", edge.addr("http"));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fetcher = {
        let (url, stop) = (url.clone(), stop.clone());
        tokio::spawn(async move {
            // Paced (2 MiB every 100 ms or so, over 80 Mbit/s), so as not to take the
            // machine from the tests running beside this one.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                assert_eq!(get(&url, &[]).await.status, StatusCode::OK);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let s = status_until(&edge, "egress counts", |s| {
        part(s, "egress_bits_per_second") > 10e6 && load(s) > 1.0
    })
    .await;
    eprintln!("egress while fetching hits: {s}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    fetcher.await.expect("fetcher");
    let metrics = get(&format!("{}/metrics", edge.addr("admin")), &[])
        .await
        .text();
    assert!(metrics.contains("meridian_edge_load "), "{metrics}");
    assert!(
        metrics.contains("meridian_edge_bytes_written_total{listener=\"http\"}"),
        "{metrics}"
    );
    status_until(&edge, "egress falls when the fetching stops", |s| {
        load(s) < 0.1
    })
    .await;

    // Responses in progress: four slow bodies at once fill `responses = 4`, though the edge
    // sent their headers long ago.
    let slow = format!("{}/slow.m4s", edge.addr("http"));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let slow = slow.clone();
            tokio::spawn(async move { get(&slow, &[]).await.body.len() })
        })
        .collect();
    let s = status_until(&edge, "bodies being sent count", |s| {
        part(s, "responses") > 2.5
    })
    .await;
    assert!(load(&s) > 0.6, "{s}");
    for reader in readers {
        assert_eq!(reader.await.expect("reader"), 1 << 20);
    }
}

/// The router's data-path probe is answered through the viewers' listener by the edge itself
/// (no origin request, no host check), and `/status` says whether any origin answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_listener_answers_the_routers_probe_and_status_says_if_an_origin_answers() {
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge_with_config(
        &origin.url(),
        dir.path(),
        "hosts = [\"video.example\"]\n",
        &[],
    );
    let probe = get(
        &format!("{}/.well-known/meridian/probe", edge.addr("http")),
        &[],
    )
    .await;
    assert_eq!(probe.status, StatusCode::OK, "{}", probe.text());
    assert_eq!(probe.header("cache-control"), "no-store");
    assert_eq!(origin.hits("/.well-known/meridian/probe"), 0);
    status_until(&edge, "the origin answers", |s| {
        s["origin_reachable"] == serde_json::json!(true)
    })
    .await;
    origin.stop();
    status_until(&edge, "no origin answers", |s| {
        s["origin_reachable"] == serde_json::json!(false)
    })
    .await;
}

/// The value of the edge's unlabelled metric `name`.
async fn metric(edge: &ServerProcess, name: &str) -> f64 {
    let metrics = get(&format!("{}/metrics", edge.addr("admin")), &[])
        .await
        .text();
    let line = metrics
        .lines()
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' '))
        })
        .unwrap_or_else(|| panic!("no {name} in {metrics}"));
    line.rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number")
}

/// The edge's counter of body bytes sent with sendfile from sealed copies of held bodies.
async fn zero_copy_bytes(edge: &ServerProcess) -> f64 {
    metric(edge, "meridian_edge_bytes_written_zero_copy_total").await
}

/// Reads one HTTP/1.1 response of known length from `stream`: its head and its body.
fn read_response(stream: &mut std::net::TcpStream, pending: &mut Vec<u8>) -> (String, Vec<u8>) {
    use std::io::Read;
    let mut buf = vec![0u8; 4096];
    let head_end = loop {
        if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).expect("read a head");
        assert!(n > 0, "closed before a response head");
        pending.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no content-length in {head}"));
    pending.drain(..head_end);
    while pending.len() < len {
        let n = stream.read(&mut buf).expect("read a body");
        assert!(n > 0, "closed after {} of {len} body bytes", pending.len());
        pending.extend_from_slice(&buf[..n]);
    }
    let body = pending.drain(..len).collect();
    (head, body)
}

/// Held bodies of 64 KiB or more go to plain HTTP/1 viewers from their sealed copies with
/// sendfile: byte for byte, whole and in ranges, in several pieces, to a slow reader with
/// pipelined requests; HTTP/2 gets the same bytes from memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_bodies_are_sent_from_sealed_copies_byte_for_byte() {
    use std::io::Write;
    let origin = TestOrigin::start().await;
    let sizes = [
        ("/a.m4s", 64 << 10),
        ("/b.m4s", 300 << 10),
        ("/c.m4s", 1000 << 10),
    ];
    let mut bodies = std::collections::HashMap::new();
    for (path, size) in sizes {
        let body = generated_body(path, size);
        origin.route(path, Route::ok(body.clone(), "public, max-age=600"));
        bodies.insert(path, body);
    }
    origin.route(
        "/small.m4s",
        Route::ok(vec![3u8; 1000], "public, max-age=600"),
    );
    origin.route(
        "/mid.m4s",
        Route::ok(generated_body("/mid.m4s", 100 << 10), "public, max-age=600"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    // Up to 4 MiB, so that bodies of several pieces (256 KiB each) are sent too.
    let edge = start_edge_with_config(
        &origin.url(),
        dir.path(),
        "zero_copy_below = \"4MiB\"\n",
        &[],
    );
    let base = edge.addr("http").to_owned();
    // A miss, a hit read from the file (which holds the body in memory), then hits from memory.
    for (path, _) in sizes {
        for want in ["MISS", "HIT"] {
            let reply = get(&format!("{base}{path}"), &[]).await;
            assert_eq!(
                (reply.status, cache(&reply)),
                (StatusCode::OK, want),
                "{path}"
            );
            assert_eq!(reply.body, bodies[path], "{path}");
        }
    }
    get(&format!("{base}/small.m4s"), &[]).await;
    for (path, size) in sizes {
        assert!(
            sent_from_sealed_copy(&edge, path, &bodies[path]).await,
            "{path} ({size} bytes)"
        );
    }

    // Pipelined, with a small receive buffer read slowly: many short sends, in order.
    let addr = base.trim_start_matches("http://").to_owned();
    let requests = "GET /c.m4s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n\
                    GET /b.m4s HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=1000-270000\r\n\r\n\
                    GET /small.m4s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n\
                    GET /a.m4s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let before = zero_copy_bytes(&edge).await;
    let got = tokio::task::spawn_blocking(move || {
        let socket = socket2_small_buffer(&addr);
        let mut stream = socket;
        stream.write_all(requests.as_bytes()).expect("requests");
        let mut pending = Vec::new();
        (0..4)
            .map(|_| read_response(&mut stream, &mut pending))
            .collect::<Vec<_>>()
    })
    .await
    .expect("reader");
    assert!(got[0].0.starts_with("HTTP/1.1 200"), "{}", got[0].0);
    assert_eq!(got[0].1, bodies["/c.m4s"]);
    assert!(got[1].0.starts_with("HTTP/1.1 206"), "{}", got[1].0);
    assert_eq!(got[1].1, bodies["/b.m4s"][1000..=270000]);
    assert_eq!(got[2].1, vec![3u8; 1000]);
    assert_eq!(got[3].1, bodies["/a.m4s"]);
    assert_eq!(
        zero_copy_bytes(&edge).await - before,
        (1000 << 10) as f64 + 269_001.0 + (64 << 10) as f64,
        "every large body went with sendfile, the small one did not"
    );

    // HTTP/2 is served from memory: the same bytes, nothing sent with sendfile.
    let before = zero_copy_bytes(&edge).await;
    let out = dir.path().join("h2.body");
    let (code, version, _) = curl(&[
        "--http2-prior-knowledge",
        "-o",
        out.to_str().expect("utf-8"),
        &format!("{base}/c.m4s"),
    ]);
    assert_eq!((code.as_str(), version.as_str()), ("200", "2"));
    assert_eq!(std::fs::read(&out).expect("h2 body"), bodies["/c.m4s"]);
    assert_eq!(zero_copy_bytes(&edge).await, before);

    // By default, only bodies under 128 KiB: a 300 KiB one is copied.
    let dir = tempfile::tempdir().expect("tempdir");
    let edge = start_edge(&origin.url(), dir.path(), &[]);
    let mid = generated_body("/mid.m4s", 100 << 10);
    assert!(sent_from_sealed_copy(&edge, "/mid.m4s", &mid).await);
    assert!(!sent_from_sealed_copy(&edge, "/b.m4s", &bodies["/b.m4s"]).await);
}

/// Fetches `path` from `edge` until a hit is sent from its sealed copy (true), or six fetches
/// were not (false). A hit just after the fill may be served by the fill itself; the next one
/// reads the file and holds the body; the hits after that are sent from its sealed copy when
/// the body has one. Every reply must be `body`, sent wholly one way or the other.
async fn sent_from_sealed_copy(edge: &ServerProcess, path: &str, body: &[u8]) -> bool {
    let url = format!("{}{path}", edge.addr("http"));
    for _ in 0..6 {
        let before = zero_copy_bytes(edge).await;
        let reply = get(&url, &[]).await;
        assert_eq!(reply.body, body, "{path}");
        if cache(&reply) != "HIT" {
            continue;
        }
        let sent = zero_copy_bytes(edge).await - before;
        if sent == body.len() as f64 {
            return true;
        }
        assert_eq!(sent, 0.0, "{path}: part of the body went with sendfile");
    }
    false
}

/// A client connection with a 4 KiB receive buffer, so that the edge's sends come up short.
fn socket2_small_buffer(addr: &str) -> std::net::TcpStream {
    let addr: std::net::SocketAddr = addr.parse().expect("address");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(socket.connect(addr))
        .expect("connect");
    let stream = stream.into_std().expect("std stream");
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream
}
