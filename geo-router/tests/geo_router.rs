//! End-to-end tests of the geo-router binary: real DNS queries over UDP and TCP, real HTTP, and
//! edges that are real processes (or scripted status servers where a test needs a given load).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_server::proto::rr::{Name, RData, RecordType};
use http::StatusCode;
use test_support::http::get;
use test_support::origin::{Route, TestOrigin};
use test_support::{ServerProcess, Sig, run_to_end, testdata};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const ROUTER: &str = env!("CARGO_BIN_EXE_geo-router");
const SERVICE: &str = "video.meridian.test.";

/// Regions as in testdata/topology.toml; each edge is (name, region, dns address).
const EDGES: [(&str, &str, &str); 6] = [
    ("us-east-1", "us-east", "127.0.1.1"),
    ("us-east-2", "us-east", "127.0.1.2"),
    ("eu-west-1", "eu-west", "127.0.2.1"),
    ("eu-west-2", "eu-west", "127.0.2.2"),
    ("ap-southeast-1", "ap-southeast", "127.0.3.1"),
    ("ap-southeast-2", "ap-southeast", "127.0.3.2"),
];

const REGIONS: &str = r#"
[[regions]]
name = "us-east"
latitude = 40.71
longitude = -74.01

[[regions]]
name = "eu-west"
latitude = 51.51
longitude = -0.13

[[regions]]
name = "ap-southeast"
latitude = 1.35
longitude = 103.82
"#;

/// Writes a topology whose edges' admin URLs are `admin[i]`, each also its viewer URL (a status
/// server answers both the router's `/status` and its viewer-listener probe).
fn write_topology(path: &Path, admin: &[String]) {
    write_topology_with(path, admin, admin);
}

/// [`write_topology`] with viewer URLs of their own.
fn write_topology_with(path: &Path, admin: &[String], http: &[String]) {
    let mut text = REGIONS.to_owned();
    for (((name, region, dns), admin), http) in EDGES.iter().zip(admin).zip(http) {
        text.push_str(&format!(
            "\n[[edges]]\nname = \"{name}\"\nregion = \"{region}\"\nhttp = \"{http}\"\nadmin = \"{admin}\"\ndns = [\"{dns}\"]\ncapacity = {{ egress_mbps = 100, connections = 1000 }}\n"
        ));
    }
    std::fs::write(path, text).expect("write topology");
}

/// A scripted edge admin surface reporting `load`.
async fn status_server(load: f64) -> TestOrigin {
    let server = TestOrigin::start().await;
    set_load(&server, load);
    server
}

fn set_load(server: &TestOrigin, load: f64) {
    set_status(server, &format!("{{\"load\":{load},\"draining\":false}}"));
}

fn set_status(server: &TestOrigin, json: &str) {
    server.route("/status", Route::ok(json.to_owned(), "no-store"));
    server.route(
        "/.well-known/meridian/probe",
        Route::ok("ok\n".to_owned(), "no-store"),
    );
}

/// A real edge named us-east-1 (the binary cargo builds beside the router) on `listen` and
/// `admin`, fetching from `origin`, with its store in `dir` and `config` lines in its config.
fn real_edge(dir: &Path, origin: &str, listen: &str, admin: &str, config: &str) -> ServerProcess {
    real_edge_named(dir, "us-east-1", origin, listen, admin, config)
}

/// [`real_edge`] under another name (its config and store files in `dir` are named after it).
fn real_edge_named(
    dir: &Path,
    name: &str,
    origin: &str,
    listen: &str,
    admin: &str,
    config: &str,
) -> ServerProcess {
    let edge_bin = Path::new(ROUTER).with_file_name("edge");
    assert!(
        edge_bin.exists(),
        "build the edge first (cargo test --workspace does): {}",
        edge_bin.display()
    );
    let config_file = dir.join(format!("{name}.toml"));
    std::fs::write(&config_file, config).expect("edge config");
    let store = dir.join(format!("{name}.store"));
    ServerProcess::start(
        edge_bin.to_str().expect("utf-8"),
        &[
            "--config",
            config_file.to_str().expect("utf-8"),
            "--listen",
            listen,
            "--origin",
            origin,
            "--admin",
            admin,
            "--store",
            store.to_str().expect("utf-8"),
            "--capacity",
            "4MiB",
            "--name",
            name,
        ],
        &["http", "admin"],
    )
}

struct Router {
    process: ServerProcess,
    dns: SocketAddr,
}

fn start_router(topology: &Path, extra: &[&str]) -> Router {
    start_router_with(topology, "", extra)
}

/// [`start_router`] with more lines (`more`, tables last) in its config file.
fn start_router_with(topology: &Path, more: &str, extra: &[&str]) -> Router {
    let geoip = testdata().join("geoip/meridian-city.mmdb");
    let dir = topology.parent().expect("folder");
    let config = dir.join(format!("router-{}.toml", std::process::id()));
    std::fs::write(&config, format!("default_region = \"ap-southeast\"\ndev_mode = true\nttl = \"30s\"\nchanging_ttl = \"2s\"\napex = [\"127.0.0.53\"]\n{more}")).expect("config");
    let mut args = vec![
        "--config",
        config.to_str().expect("utf-8"),
        "--topology",
        topology.to_str().expect("utf-8"),
        "--geoip",
        geoip.to_str().expect("utf-8"),
        "--dns",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ];
    if !extra.contains(&"--http") {
        args.extend_from_slice(&["--http", "127.0.0.1:0"]);
    }
    args.extend_from_slice(extra);
    let process = ServerProcess::start(ROUTER, &args, &["dns-udp", "dns-tcp", "http", "admin"]);
    let dns = process.addr("dns-udp").parse().expect("dns address");
    Router { process, dns }
}

fn query_message(name: &str, qtype: RecordType, ecs: Option<(IpAddr, u8)>) -> Vec<u8> {
    let mut message = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    message.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    if let Some((addr, prefix)) = ecs {
        edns.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(addr, prefix, 0)));
    }
    message.set_edns(edns);
    message.to_vec().expect("encode query")
}

fn rand_id() -> u16 {
    (Instant::now().elapsed().subsec_nanos() ^ std::process::id()) as u16
}

async fn udp_query(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    ecs: Option<(IpAddr, u8)>,
) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket
        .send_to(&query_message(name, qtype, ecs), server)
        .await
        .expect("send");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
        .await
        .expect("a DNS answer within 5 s")
        .expect("recv");
    Message::from_vec(&buf[..n]).expect("decode answer")
}

/// A UDP query the way resolvers send one: retried on silence, since UDP may drop packets
/// (here: the server's receive buffer overflowing while it is flooded).
async fn udp_query_retrying(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    ecs: Option<(IpAddr, u8)>,
) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let query = query_message(name, qtype, ecs);
    let mut buf = vec![0u8; 4096];
    for _ in 0..10 {
        socket.send_to(&query, server).await.expect("send");
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await
        {
            return Message::from_vec(&buf[..n]).expect("decode answer");
        }
    }
    panic!("no answer to 10 tries over 10 s");
}

async fn tcp_query(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    ecs: Option<(IpAddr, u8)>,
) -> Message {
    let mut stream = TcpStream::connect(server).await.expect("connect");
    let query = query_message(name, qtype, ecs);
    stream
        .write_all(&(query.len() as u16).to_be_bytes())
        .await
        .expect("write");
    stream.write_all(&query).await.expect("write");
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.expect("length");
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).await.expect("answer");
    Message::from_vec(&buf).expect("decode answer")
}

fn addresses(message: &Message) -> Vec<String> {
    message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

fn ecs_scope(message: &Message) -> Option<u8> {
    match message.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some(s.scope_prefix()),
        _ => None,
    }
}

const BOSTON: (&str, u8) = ("192.0.2.0", 24);
const PARIS: (&str, u8) = ("198.51.100.0", 24);

/// The answer's addresses in sorted order: which edges, whatever order the router chose.
fn sorted_addresses(message: &Message) -> Vec<String> {
    let mut a = addresses(message);
    a.sort();
    a
}

/// An edge's index in `EDGES`.
fn edge_index(name: &str) -> usize {
    EDGES
        .iter()
        .position(|e| e.0 == name)
        .expect("an edge of EDGES")
}

/// The other edge of a two-edge region.
fn sibling(name: &str) -> String {
    let region = EDGES[edge_index(name)].1;
    EDGES
        .iter()
        .find(|e| e.1 == region && e.0 != name)
        .expect("a sibling")
        .0
        .to_owned()
}

fn ecs(place: (&str, u8)) -> Option<(IpAddr, u8)> {
    Some((place.0.parse().expect("ip"), place.1))
}

async fn healthy_fleet(dir: &Path) -> (Vec<TestOrigin>, PathBuf) {
    let mut servers = Vec::new();
    for _ in EDGES {
        servers.push(status_server(0.1).await);
    }
    let topology = dir.join("topology.toml");
    let admin: Vec<String> = servers.iter().map(|s| s.url()).collect();
    write_topology(&topology, &admin);
    (servers, topology)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_by_client_subnet_over_udp_and_tcp_and_serves_the_zone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_servers, topology) = healthy_fleet(dir.path()).await;
    let router = start_router(&topology, &[]);

    let boston = udp_query(router.dns, SERVICE, RecordType::A, ecs(BOSTON)).await;
    assert_eq!(boston.metadata.response_code, ResponseCode::NoError);
    assert!(boston.metadata.authoritative);
    assert_eq!(
        sorted_addresses(&boston),
        ["127.0.1.1", "127.0.1.2"],
        "only the nearest region's edges: any order a resolver gives them is good"
    );
    assert_eq!(
        ecs_scope(&boston),
        Some(24),
        "the scope is the client subnet the decision hashed"
    );
    assert!(boston.answers.iter().all(|r| r.ttl == 30));

    let paris = udp_query(router.dns, SERVICE, RecordType::A, ecs(PARIS)).await;
    assert_eq!(sorted_addresses(&paris), ["127.0.2.1", "127.0.2.2"]);
    let paris_v6 = udp_query(
        router.dns,
        SERVICE,
        RecordType::A,
        Some(("2001:db8:2::".parse().expect("ip"), 48)),
    )
    .await;
    assert_eq!(sorted_addresses(&paris_v6), ["127.0.2.1", "127.0.2.2"]);
    assert_eq!(ecs_scope(&paris_v6), Some(48));

    // No ECS, from 127.0.0.1 (not in the database): the default region.
    let local = udp_query(router.dns, SERVICE, RecordType::A, None).await;
    assert_eq!(sorted_addresses(&local), ["127.0.3.1", "127.0.3.2"]);

    let tcp = tcp_query(router.dns, SERVICE, RecordType::A, ecs(BOSTON)).await;
    assert_eq!(addresses(&tcp), addresses(&boston));

    let soa = udp_query(router.dns, "meridian.test.", RecordType::SOA, None).await;
    assert_eq!(soa.answers.len(), 1);
    assert!(matches!(soa.answers[0].data, RData::SOA(_)));
    let ns = tcp_query(router.dns, "meridian.test.", RecordType::NS, None).await;
    assert!(matches!(ns.answers[0].data, RData::NS(_)));
    let mut glue = ns.clone();
    glue.answers = ns.additionals.clone();
    assert_eq!(addresses(&glue), ["127.0.0.1"]);

    let apex = udp_query(router.dns, "meridian.test.", RecordType::A, None).await;
    assert_eq!(
        addresses(&apex),
        ["127.0.0.53"],
        "apex records come from config"
    );
    let missing = udp_query(router.dns, "nope.meridian.test.", RecordType::A, None).await;
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    assert!(matches!(
        missing.authorities.first().map(|r| &r.data),
        Some(RData::SOA(_))
    ));
    let outside = udp_query(router.dns, "example.com.", RecordType::A, None).await;
    assert_eq!(outside.metadata.response_code, ResponseCode::Refused);
    let aaaa = udp_query(router.dns, SERVICE, RecordType::AAAA, ecs(BOSTON)).await;
    assert_eq!(
        (aaaa.metadata.response_code, aaaa.answers.len()),
        (ResponseCode::NoError, 0)
    );
}

/// A query built byte by byte: `name` in wire form as given (letter case kept), class IN, and
/// with `opt` an OPT record (payload 1232, DO as asked, its options' bytes).
fn raw_query(
    id: u16,
    flags: [u8; 2],
    name: &str,
    qtype: u16,
    opt: Option<(bool, &[u8])>,
) -> Vec<u8> {
    let mut p = id.to_be_bytes().to_vec();
    p.extend_from_slice(&flags);
    p.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(opt.is_some())]);
    for label in name.trim_end_matches('.').split('.') {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&[0, 1]);
    if let Some((dnssec_ok, options)) = opt {
        p.extend_from_slice(&[
            0,
            0,
            41,
            0x04,
            0xD0,
            0,
            0,
            if dnssec_ok { 0x80 } else { 0 },
            0,
        ]);
        p.extend_from_slice(&(options.len() as u16).to_be_bytes());
        p.extend_from_slice(options);
    }
    p
}

async fn udp_exchange(server: SocketAddr, query: &[u8]) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut buf = vec![0u8; 4096];
    for _ in 0..5 {
        socket.send_to(query, server).await.expect("send");
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await
        {
            return buf[..n].to_vec();
        }
    }
    panic!("no UDP answer to 5 tries");
}

async fn tcp_exchange(server: SocketAddr, query: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(server).await.expect("connect");
    stream
        .write_all(&[&(query.len() as u16).to_be_bytes()[..], query].concat())
        .await
        .expect("write");
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.expect("length");
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).await.expect("answer");
    buf
}

/// The UDP path keeps encoded answers and patches them per query; hickory's server answers TCP.
/// For the same query, on one router with a settled fleet (so both get one decision), the two
/// answers are the same bytes: first and kept answers, names in any letter case, with and
/// without EDNS, DO, RD and CD, Client Subnets of both families and odd lengths, and the zone's
/// other names. The router's metrics show the kept answers were used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_answers_are_byte_for_byte_what_hickory_encodes_for_the_same_query() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_servers, topology) = healthy_fleet(dir.path()).await;
    // One TTL throughout: a fleet change must not change the answer between the two paths.
    let router = start_router_with(&topology, "changing_window = \"0s\"\n", &[]);
    within(Duration::from_secs(10), "every edge answered", || async {
        let answer = udp_query(router.dns, SERVICE, RecordType::A, ecs(PARIS)).await;
        sorted_addresses(&answer) == ["127.0.2.1", "127.0.2.2"]
    })
    .await;

    let ecs_v4_24: &[u8] = &[0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100];
    let ecs_v4_20: &[u8] = &[0, 8, 0, 7, 0, 1, 20, 0, 100, 64, 16];
    let ecs_v6_48: &[u8] = &[0, 8, 0, 10, 0, 2, 48, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 2];
    let ecs_zero: &[u8] = &[0, 8, 0, 4, 0, 1, 0, 0];
    let names = [
        "video.meridian.test",
        "ViDeO.MeRiDiAn.TeSt",
        "VIDEO.meridian.TEST",
        "meridian.test",
        "MERIDIAN.test",
        "ns1.meridian.test",
        "nope.Meridian.test",
        "example.com",
    ];
    let opts: [Option<(bool, &[u8])>; 7] = [
        None,
        Some((false, &[])),
        Some((true, &[])),
        Some((false, ecs_v4_24)),
        Some((true, ecs_v4_20)),
        Some((false, ecs_v6_48)),
        Some((false, ecs_zero)),
    ];
    let mut compared = 0;
    for (n, name) in names.iter().enumerate() {
        for qtype in [1u16, 28, 6, 2, 15] {
            for (o, opt) in opts.iter().enumerate() {
                for flags in [[0x01, 0x00], [0x00, 0x10], [0x01, 0x20]] {
                    let id = (n * 1000 + o * 10) as u16 + u16::from(flags[1]);
                    let query = raw_query(id, flags, name, qtype, *opt);
                    let over_tcp = tcp_exchange(router.dns, &query).await;
                    // Twice: the first may be encoded, the second is kept.
                    for round in 0..2 {
                        let over_udp = udp_exchange(router.dns, &query).await;
                        assert_eq!(
                            over_udp, over_tcp,
                            "{name} type {qtype} opt {o} flags {flags:?} round {round}: UDP and TCP answers differ"
                        );
                        compared += 1;
                    }
                }
            }
        }
    }
    assert_eq!(compared, 8 * 5 * 7 * 3 * 2);
    let reply = get(&format!("{}/metrics", router.process.addr("admin")), &[]).await;
    let metrics = String::from_utf8_lossy(&reply.body).into_owned();
    let cached: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("meridian_router_dns_udp_answers_total{path=\"cached\"} "))
        .expect("the UDP answers metric")
        .parse()
        .expect("a number");
    assert!(
        cached >= 500.0,
        "most of the second answers came from kept ones: {cached}\n{metrics}"
    );
}

/// 1,000 client subnets near Boston (100.64.0.0/14 in the test GeoIP database): every answer
/// names us-east's edges and nothing else, each of the two equal edges is the primary (first)
/// for 40-60% of the subnets, the scope is the subnet, and AAAA comes from the same decision,
/// counted after the family filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_subnets_near_one_region_get_its_edges_each_the_primary_for_half() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (servers, topology) = healthy_fleet(dir.path()).await;
    // Every edge also has an IPv6 address, listed after its IPv4 one.
    let mut text = std::fs::read_to_string(&topology).expect("read");
    for (name, _, dns) in EDGES {
        let v6 = format!(
            "fd00::{}",
            dns.rsplit_once("127.0.").expect("ours").1.replace('.', ":")
        );
        text = text.replace(
            &format!("dns = [\"{dns}\"]"),
            &format!("dns = [\"{dns}\", \"{v6}\"]"),
        );
        assert!(text.contains(&v6), "{name}");
    }
    std::fs::write(&topology, text).expect("write");
    let router = start_router_with(&topology, "answer_count = 2\n", &[]);
    let mut first = std::collections::HashMap::<String, usize>::new();
    for i in 0..1000u32 {
        let subnet =
            std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(100, 64, 0, 0)) + (i << 8));
        let client = Some((IpAddr::V4(subnet), 24));
        let a = udp_query_retrying(router.dns, SERVICE, RecordType::A, client).await;
        assert_eq!(sorted_addresses(&a), ["127.0.1.1", "127.0.1.2"], "{subnet}");
        assert_eq!(ecs_scope(&a), Some(24), "{subnet}");
        *first.entry(addresses(&a)[0].clone()).or_default() += 1;
        if i % 100 == 0 {
            let aaaa = udp_query_retrying(router.dns, SERVICE, RecordType::AAAA, client).await;
            let v6 = addresses(&aaaa);
            assert_eq!(
                v6.len(),
                2,
                "AAAA is answered with the IPv6 edges: {aaaa:?}"
            );
            let same = addresses(&a)[0]
                .replace("127.0.", "fd00::")
                .replace('.', ":");
            assert_eq!(v6[0], same, "the same primary for A and AAAA");
        }
    }
    let shares: Vec<usize> = first.values().copied().collect();
    eprintln!("primaries over 1,000 subnets: {first:?}");
    assert_eq!(shares.len(), 2, "{first:?}");
    assert!(
        shares.iter().all(|&n| (400..=600).contains(&n)),
        "{first:?}"
    );
    drop(servers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_garbage_packets_do_not_stop_the_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_servers, topology) = healthy_fleet(dir.path()).await;
    let router = start_router(&topology, &[]);
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let valid = query_message(SERVICE, RecordType::A, ecs(BOSTON));
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..10_000u32 {
        let packet: Vec<u8> = if i % 2 == 0 {
            // A valid query cut short at a random length, or with random bytes flipped.
            let mut p = valid.clone();
            let r = next();
            if r % 3 == 0 {
                p.truncate((r as usize / 3) % p.len());
            } else {
                let at = (r as usize >> 8) % p.len();
                p[at] ^= (r >> 32) as u8 | 1;
            }
            p
        } else {
            let len = (next() % 600) as usize;
            (0..len).map(|_| next() as u8).collect()
        };
        socket.send_to(&packet, router.dns).await.expect("send");
        if i % 1000 == 999 {
            if router.process.stderr().contains("panicked") {
                panic!("the router panicked: {}", router.process.stderr());
            }
            let answer = udp_query_retrying(router.dns, SERVICE, RecordType::A, ecs(BOSTON)).await;
            assert_eq!(
                addresses(&answer).len(),
                2,
                "after {} garbage packets",
                i + 1
            );
        }
    }
    let answer = tcp_query(router.dns, SERVICE, RecordType::A, ecs(PARIS)).await;
    assert_eq!(sorted_addresses(&answer), ["127.0.2.1", "127.0.2.2"]);
}

/// Found by the `dns` fuzz target: a question whose name is a compression pointer into the
/// header parses, but an answer that echoes it (hickory echoes the question's bytes) points into
/// the answer's header, which differs, and does not parse. Such a query gets FORMERR with no
/// question, an answer that parses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_compressed_into_the_header_gets_a_formerr_that_parses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_servers, topology) = healthy_fleet(dir.path()).await;
    let router = start_router(&topology, &[]);
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    // Id 0x1234, no flags, one question: a name that points at offset 2 (the flags, zero: the
    // root name, in the request; QR set in the answer), type A, class IN.
    let query = [
        0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x02, 0, 1, 0, 1,
    ];
    socket.send_to(&query, router.dns).await.expect("send");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
        .await
        .expect("an answer within 5 s")
        .expect("recv");
    let answer = Message::from_vec(&buf[..n]).expect("the answer parses");
    assert_eq!(answer.metadata.id, 0x1234);
    assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);
    assert!(answer.queries.is_empty(), "{answer:?}");
}

/// Polls until `check` holds, or panics after `limit`; returns the time it took.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::task::yield_now().await;
    }
}

async fn steering_ids(router: &Router, client: &str) -> Vec<String> {
    let url = format!("{}/steer/hls?client={client}", router.process.addr("http"));
    let reply = get(&url, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let manifest: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON manifest");
    manifest["PATHWAY-PRIORITY"]
        .as_array()
        .expect("PATHWAY-PRIORITY")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_edge_leaves_answers_fast_and_comes_back_and_overload_moves_viewers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = TestOrigin::start().await;
    let origin_url = origin.url();
    let start_edge =
        |listen: &str, admin: &str| real_edge(dir.path(), &origin_url, listen, admin, "");
    let mut edge = start_edge("127.0.0.1:0", "127.0.0.1:0");
    let edge_admin = edge.addr("admin").to_owned();
    let edge_http = edge.addr("http").to_owned();
    let mut servers = Vec::new();
    for _ in 1..EDGES.len() {
        servers.push(status_server(0.1).await);
    }
    let mut admin = vec![edge_admin.clone()];
    admin.extend(servers.iter().map(|s| s.url()));
    let mut http = vec![edge_http.clone()];
    http.extend(servers.iter().map(|s| s.url()));
    let topology = dir.path().join("topology.toml");
    write_topology_with(&topology, &admin, &http);
    let router = start_router(&topology, &[]);
    let dns = router.dns;
    let names_edge = |answer: &Message| addresses(answer).contains(&"127.0.1.1".to_owned());
    assert!(names_edge(
        &udp_query(dns, SERVICE, RecordType::A, ecs(BOSTON)).await
    ));
    assert!(steering_ids(&router, "192.0.2.9").await[0].starts_with("us-east"));

    edge.signal(Sig::SIGKILL);
    edge.wait_exit(Duration::from_secs(5));
    let took = within(
        Duration::from_secs(2),
        "the dead edge leaves DNS answers and steering",
        || async {
            !names_edge(&udp_query(dns, SERVICE, RecordType::A, ecs(BOSTON)).await)
                && !steering_ids(&router, "192.0.2.9")
                    .await
                    .contains(&"us-east-1".to_owned())
        },
    )
    .await;
    eprintln!("dead edge out of answers and steering after {took:?}");
    let answer = udp_query(dns, SERVICE, RecordType::A, ecs(BOSTON)).await;
    assert_eq!(
        addresses(&answer),
        ["127.0.1.2"],
        "the region's other edge, alone"
    );
    assert!(
        answer.answers.iter().all(|r| r.ttl == 2),
        "the TTL is short while the fleet changes"
    );

    // Back on the same admin address: in after three good probes (1.5 s) and about 2 s more.
    let addr = edge_admin.trim_start_matches("http://");
    let _edge = start_edge(edge_http.trim_start_matches("http://"), addr);
    let took = within(
        Duration::from_secs(4),
        "the restarted edge is back",
        || async { names_edge(&udp_query(dns, SERVICE, RecordType::A, ecs(BOSTON)).await) },
    )
    .await;
    eprintln!("restarted edge back after {took:?}");

    // eu-west-1 reports 85% load: Paris viewers go to eu-west-2, which has headroom.
    set_load(&servers[1], 0.85);
    within(
        Duration::from_secs(3),
        "the overloaded edge takes no new viewers",
        || async {
            addresses(&udp_query(dns, SERVICE, RecordType::A, ecs(PARIS)).await) == ["127.0.2.2"]
        },
    )
    .await;
}

/// The router's HTTP and admin listeners take `[connections]` from its config, and DNS over
/// TCP `dns_tcp_timeout`: with 1 s (the defaults are 10 s and 5 s), a connection that sends
/// nothing is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routers_listeners_close_a_silent_connection_after_the_configured_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_servers, topology) = healthy_fleet(dir.path()).await;
    let router = start_router_with(
        &topology,
        "dns_tcp_timeout = \"1s\"\n[connections]\nfirst_request_timeout = \"1s\"\n",
        &[],
    );
    for kind in ["http", "admin", "dns-tcp"] {
        let url = router.process.addr(kind).to_owned();
        let took = tokio::task::spawn_blocking(move || {
            test_support::http::silent_connection_closed(&url, Duration::from_secs(3))
        })
        .await
        .expect("join");
        let took = took.unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert!(
            took >= Duration::from_millis(900),
            "{kind}: closed after {took:?}, before its timeout"
        );
    }
}

/// Health from the data path: a real edge whose viewer listener takes no more connections (its
/// `max_connections` all held by idle clients) while its admin port answers leaves the answers
/// within 2 s, and comes back when the connections go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_viewer_listener_is_out_of_answers_though_its_admin_port_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = TestOrigin::start().await;
    let edge = real_edge(
        dir.path(),
        &origin.url(),
        "127.0.0.1:0",
        "127.0.0.1:0",
        "[connections]\nmax_connections = 8\nfirst_request_timeout = \"60s\"\n",
    );
    let mut servers = Vec::new();
    for _ in 1..EDGES.len() {
        servers.push(status_server(0.1).await);
    }
    let mut admin = vec![edge.addr("admin").to_owned()];
    admin.extend(servers.iter().map(|s| s.url()));
    let mut http = vec![edge.addr("http").to_owned()];
    http.extend(servers.iter().map(|s| s.url()));
    let topology = dir.path().join("topology.toml");
    write_topology_with(&topology, &admin, &http);
    let router = start_router(&topology, &[]);
    let dns = router.dns;
    let names_edge = |answer: &Message| addresses(answer).contains(&"127.0.1.1".to_owned());
    within(
        Duration::from_secs(4),
        "the edge is in the answers",
        || async { names_edge(&udp_query(dns, SERVICE, RecordType::A, ecs(BOSTON)).await) },
    )
    .await;
    // Every place of the viewer listener held by a client that sends nothing; one the edge
    // closed at once (the router's probe had the place then) is taken again.
    let viewer = edge.addr("http").trim_start_matches("http://").to_owned();
    let holding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let holder = {
        let holding = holding.clone();
        std::thread::spawn(move || {
            let mut held: Vec<std::net::TcpStream> = Vec::new();
            while holding.load(std::sync::atomic::Ordering::Relaxed) {
                // Still open: nothing to read yet (the edge closed it: end of stream).
                held.retain(|s| match s.peek(&mut [0u8; 1]) {
                    Ok(n) => n > 0,
                    Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                });
                while held.len() < 8 {
                    let s = std::net::TcpStream::connect(&viewer).expect("connect");
                    s.set_nonblocking(true).expect("nonblocking");
                    held.push(s);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let took = within(
        Duration::from_secs(2),
        "the wedged viewer listener leaves the answers",
        || async { !names_edge(&udp_query(dns, SERVICE, RecordType::A, ecs(BOSTON)).await) },
    )
    .await;
    eprintln!("wedged viewer listener out of the answers after {took:?}");
    let status = get(&format!("{}/status", edge.addr("admin")), &[]).await;
    assert_eq!(
        status.status,
        StatusCode::OK,
        "its admin port still answers"
    );
    holding.store(false, std::sync::atomic::Ordering::Relaxed);
    holder.join().expect("holder");
    within(Duration::from_secs(6), "the edge is back", || async {
        names_edge(&udp_query(dns, SERVICE, RecordType::A, ecs(BOSTON)).await)
    })
    .await;
}

/// An edge that cannot reach any origin leaves the answers while other edges can; when none
/// can (the origin is down), no edge is taken out: each keeps serving what it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_outage_takes_no_edge_out_but_one_cut_off_edge_leaves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (servers, topology) = healthy_fleet(dir.path()).await;
    let router = start_router(&topology, &[]);
    let dns = router.dns;
    let boston =
        || async { sorted_addresses(&udp_query(dns, SERVICE, RecordType::A, ecs(BOSTON)).await) };
    // What each edge says of its origins (edge/src/proxy/ops.rs, `origin_reachable`).
    let reach = |server: &TestOrigin, up: bool| {
        set_status(
            server,
            &format!("{{\"load\":0.1,\"draining\":false,\"origin_reachable\":{up}}}"),
        )
    };
    for server in &servers {
        reach(server, false);
    }
    let admin = router.process.addr("admin").to_owned();
    within(
        Duration::from_secs(3),
        "the router has heard that no edge reaches an origin",
        || async {
            let status = get(&format!("{admin}/status"), &[]).await.text();
            status.contains("\"origin_reachable\":false")
                && !status.contains("\"origin_reachable\":true")
        },
    )
    .await;
    assert_eq!(
        boston().await,
        ["127.0.1.1", "127.0.1.2"],
        "an origin outage takes no edge out"
    );
    reach(&servers[1], true);
    within(
        Duration::from_secs(3),
        "while one edge reaches an origin, the cut-off ones leave",
        || async { boston().await == ["127.0.1.2"] },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_whose_store_is_not_ready_is_kept_out_until_it_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (servers, topology) = healthy_fleet(dir.path()).await;
    let router = start_router(&topology, &[]);
    let dns = router.dns;
    let names_edge = |answer: &Message| addresses(answer).contains(&"127.0.1.1".to_owned());
    within(Duration::from_secs(4), "the fleet is up", || async {
        names_edge(&udp_query(dns, SERVICE, RecordType::A, ecs(BOSTON)).await)
    })
    .await;
    // What an edge says while its store loads its index (edge/src/proxy/ops.rs).
    set_status(
        &servers[0],
        r#"{"ready":false,"load":0.0,"draining":false}"#,
    );
    within(
        Duration::from_secs(4),
        "the starting edge leaves the answers",
        || async { !names_edge(&udp_query(dns, SERVICE, RecordType::A, ecs(BOSTON)).await) },
    )
    .await;
    set_status(&servers[0], r#"{"ready":true,"load":0.0,"draining":false}"#);
    within(Duration::from_secs(4), "the ready edge is back", || async {
        names_edge(&udp_query(dns, SERVICE, RecordType::A, ecs(BOSTON)).await)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steering_follows_the_nearest_region_and_redirects_go_to_an_edge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (servers, topology) = healthy_fleet(dir.path()).await;
    let router = start_router(&topology, &[]);
    // The client's own edge in each region (its subnet's primaries), nearest first.
    let before = steering_ids(&router, "198.51.100.7").await;
    assert_eq!(before.len(), 3, "one pathway per region: {before:?}");
    let (eu, us, ap) = (before[0].clone(), before[1].clone(), before[2].clone());
    assert!(eu.starts_with("eu-west") && us.starts_with("us-east") && ap.starts_with("ap-"));
    let eu_other = sibling(&eu);
    let us_other = sibling(&us);
    assert_eq!(
        steering_ids(&router, "198.51.100.7").await,
        before,
        "the same subnet gets the same edges"
    );

    let dash = get(
        &format!(
            "{}/steer/dash?client=198.51.100.7&_DASH_pathway=%22{eu_other}%22",
            router.process.addr("http")
        ),
        &[],
    )
    .await;
    let dash: serde_json::Value = serde_json::from_slice(&dash.body).expect("JSON");
    assert_eq!(
        dash["SERVICE-LOCATION-PRIORITY"][0], eu_other,
        "a player stays on its pathway while it is fine"
    );
    assert_eq!(
        dash["PATHWAY-CLONES"][0]["URI-REPLACEMENT"]["HOST"],
        servers[edge_index(&eu_other)]
            .url()
            .trim_start_matches("http://"),
        "dash.js takes HOST with its port"
    );

    // A player still on the default pathway `.` of a playlist that the other eu-west edge
    // fetched: it stays there, under the name `.`, with no clone of that edge to switch to.
    let fresh = get(
        &format!(
            "{}/steer/hls?client=198.51.100.7&edge={eu_other}&_HLS_pathway=.",
            router.process.addr("http")
        ),
        &[],
    )
    .await;
    let fresh: serde_json::Value = serde_json::from_slice(&fresh.body).expect("JSON");
    assert_eq!(fresh["PATHWAY-PRIORITY"][0], ".", "{fresh}");
    assert!(
        fresh["PATHWAY-CLONES"]
            .as_array()
            .expect("clones")
            .iter()
            .all(|c| c["ID"] != eu_other.as_str() && c["BASE-ID"] == "."),
        "{fresh}"
    );
    assert!(
        fresh["RELOAD-URI"]
            .as_str()
            .is_some_and(|u| u.contains(&format!("edge={eu_other}"))),
        "{fresh}"
    );

    let redirect = get(
        &format!(
            "{}/r/vod/big-clock/master.m3u8?client=192.0.2.1&token=x",
            router.process.addr("http")
        ),
        &[],
    )
    .await;
    assert_eq!(redirect.status, StatusCode::FOUND);
    let location = redirect.header("location");
    assert!(
        ["us-east-1", "us-east-2"].iter().any(|e| location
            == format!(
                "{}/vod/big-clock/master.m3u8?token=x",
                servers[edge_index(e)].url().trim_end_matches('/')
            )),
        "a Boston viewer goes to its us-east edge: {location}"
    );

    // The client's eu-west edge dies: its viewers leave the region, new viewers get its sibling.
    servers[edge_index(&eu)].stop();
    // The pathway priority a player at 198.51.100.7 gets, from `/steer/<query>`.
    let priority = |query: String| {
        let url = format!("{}/steer/{query}", router.process.addr("http"));
        async move {
            let manifest = get(&url, &[]).await;
            let manifest: serde_json::Value = serde_json::from_slice(&manifest.body).expect("JSON");
            manifest["PATHWAY-PRIORITY"]
                .as_array()
                .expect("priority")
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let hls_from =
        |pathway: &str| priority(format!("hls?client=198.51.100.7&_HLS_pathway={pathway}"));
    within(
        Duration::from_secs(3),
        "the dead edge's viewers are sent to the neighbour region",
        || async {
            let ids = hls_from(&eu).await;
            ids.first() == Some(&us) && ids.last() == Some(&eu_other)
        },
    )
    .await;
    assert_eq!(steering_ids(&router, "198.51.100.7").await[0], eu_other);
    let on_default = hls_from(&format!(".&edge={eu}")).await;
    assert_eq!(
        on_default,
        [us.clone(), ap.clone(), eu_other.clone()],
        "a player whose default pathway is the dead edge leaves it and its region"
    );
    assert_eq!(hls_from(&us).await[0], us, "and stays there");
    // dash.js names every pathway it fetched from since its last steering request, fastest
    // first: here the neighbour it failed over to and the dead default. Read as one name, the
    // list would be nobody's, and the player would be switched for nothing.
    assert_eq!(
        priority(format!(
            "dash?client=198.51.100.7&edge={eu}&_DASH_pathway=%22{us_other},.%22"
        ))
        .await,
        [us_other.clone(), ap.clone(), eu_other.clone()],
        "a dash.js player that failed over stays where it went, its failed region last"
    );

    // The nearest region dies: its pathways move to the end at once.
    servers[edge_index(&eu_other)].stop();
    within(
        Duration::from_secs(3),
        "steering demotes the dead region",
        || async {
            let ids = steering_ids(&router, "198.51.100.7").await;
            ids[0] == us && !ids.iter().any(|i| i.starts_with("eu-west"))
        },
    )
    .await;
}

/// Three routers a, b and c, peers of each other (one shared `peer_secret`), each with its
/// own topology file.
fn three_routers(topologies: [&Path; 3]) -> [Router; 3] {
    three_routers_with(topologies, "")
}

/// [`three_routers`] with more config lines; `{name}` in them becomes each router's name.
fn three_routers_with(topologies: [&Path; 3], more: &str) -> [Router; 3] {
    let addrs: Vec<std::net::SocketAddr> = (1..=3).map(free_addr).collect();
    let names = ["a", "b", "c"];
    let mut routers = Vec::new();
    for (i, topology) in topologies.iter().enumerate() {
        let http = addrs[i].to_string();
        let mut args = vec!["--name", names[i], "--http", &http];
        let peers: Vec<String> = (0..3)
            .filter(|&j| j != i)
            .map(|j| format!("http://{}", addrs[j]))
            .collect();
        for peer in &peers {
            args.extend(["--peer", peer.as_str()]);
        }
        let config = format!(
            "peer_secret = \"the test fleet's shared secret\"\n{}",
            more.replace("{name}", names[i])
        );
        routers.push(start_router_with(topology, &config, &args));
    }
    routers.try_into().unwrap_or_else(|_| unreachable!())
}

/// A router's `/status` as text.
async fn router_status(router: &Router) -> String {
    get(&format!("{}/status", router.process.addr("admin")), &[])
        .await
        .text()
}

/// Quorum: a majority of the configured routers (two of three) seeing an edge down takes it
/// out; when one of them freezes, its last view ages out and stops counting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_majority_takes_an_edge_out_and_a_frozen_peers_view_stops_counting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (servers, topology) = healthy_fleet(dir.path()).await;
    // a and b cannot reach us-east-1 (its URLs are a closed port); c can.
    let mut urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
    urls[0] = "http://127.78.0.1:9".into();
    let blind = dir.path().join("blind.toml");
    write_topology(&blind, &urls);
    let [a, b, c] = three_routers([&blind, &blind, &topology]);
    let names_edge = |answer: &Message| addresses(answer).contains(&"127.0.1.1".to_owned());
    within(
        Duration::from_secs(10),
        "two of three see us-east-1 down: c takes it out though its own probes see it up",
        || async { !names_edge(&udp_query(c.dns, SERVICE, RecordType::A, ecs(BOSTON)).await) },
    )
    .await;
    assert!(router_status(&c).await.contains("\"quorum\":true"));
    // b freezes: its last view stays what it was, and must stop counting.
    b.process.signal(Sig::SIGSTOP);
    within(
        Duration::from_secs(10),
        "b's frozen view ages out: one of the two heard sees it down, not a majority",
        || async { names_edge(&udp_query(c.dns, SERVICE, RecordType::A, ecs(BOSTON)).await) },
    )
    .await;
    let status = router_status(&c).await;
    assert!(
        status.contains("\"reachable_peers\":1") && status.contains("\"quorum\":true"),
        "{status}"
    );
    b.process.signal(Sig::SIGCONT);
    drop(a);
}

/// A router cut off from the other routers and from one region removes nothing: without a
/// majority heard it keeps the last agreed view, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_cut_off_from_its_peers_and_a_region_removes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (servers, topology) = healthy_fleet(dir.path()).await;
    // c cannot reach eu-west's edges.
    let mut urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
    urls[2] = "http://127.78.0.3:9".into();
    urls[3] = "http://127.78.0.4:9".into();
    let cut = dir.path().join("cut-eu.toml");
    write_topology(&cut, &urls);
    let [a, b, c] = three_routers([&topology, &topology, &cut]);
    within(
        Duration::from_secs(10),
        "c hears both peers and sees eu-west down itself",
        || async {
            let status = router_status(&c).await;
            status.contains("\"reachable_peers\":2") && status.contains("\"own_probe_up\":false")
        },
    )
    .await;
    // Its peers go silent (frozen): c hears one router of three, itself.
    a.process.signal(Sig::SIGSTOP);
    b.process.signal(Sig::SIGSTOP);
    within(
        Duration::from_secs(10),
        "c knows it has no quorum",
        || async { router_status(&c).await.contains("\"quorum\":false") },
    )
    .await;
    let paris = udp_query(c.dns, SERVICE, RecordType::A, ecs(PARIS)).await;
    assert_eq!(
        sorted_addresses(&paris),
        ["127.0.2.1", "127.0.2.2"],
        "eu-west stays: c alone removes nothing"
    );
    a.process.signal(Sig::SIGCONT);
    b.process.signal(Sig::SIGCONT);
}

/// A free address for a router whose peers must know it before it starts: port 0 bound and let
/// go on a loopback address of this test's own (127.77.x.y), so that no other test's listener or
/// outgoing connection can take the port in between.
fn free_addr(n: u8) -> std::net::SocketAddr {
    let pid = std::process::id();
    let ip = std::net::Ipv4Addr::new(127, 77, (pid % 251) as u8, n);
    std::net::TcpListener::bind((ip, 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_cut_off_from_the_edges_does_not_drop_them_on_its_own_word() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_servers, topology) = healthy_fleet(dir.path()).await;
    // The cut-off router's probes go nowhere: every admin URL is a closed port.
    let cut_topology = dir.path().join("cut.toml");
    // Nothing listens on this address at all.
    let closed: Vec<String> = (0..EDGES.len())
        .map(|i| format!("http://127.78.0.{}:9", i + 1))
        .collect();
    write_topology(&cut_topology, &closed);
    let [a, b, c] = three_routers([&topology, &topology, &cut_topology]);

    // Wait until c's own probes have failed and it hears both peers.
    within(
        Duration::from_secs(10),
        "c sees every edge down itself and hears its peers",
        || async {
            let status = get(&format!("{}/status", c.process.addr("admin")), &[])
                .await
                .text();
            status.contains("\"reachable_peers\":2") && !status.contains("\"own_probe_up\":true")
        },
    )
    .await;
    for router in [&a, &b, &c] {
        let answer = udp_query(router.dns, SERVICE, RecordType::A, ecs(BOSTON)).await;
        assert_eq!(sorted_addresses(&answer), ["127.0.1.1", "127.0.1.2"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_topology_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (servers, topology) = healthy_fleet(dir.path()).await;
    let router = start_router(&topology, &[]);
    let admin: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let mut text = std::fs::read_to_string(&topology).expect("read");
    text.push_str(&format!(
        "\n[[edges]]\nname = \"us-east-3\"\nregion = \"us-east\"\nhttp = \"{0}\"\nadmin = \"{0}\"\ndns = [\"127.0.1.3\"]\ncapacity = {{ egress_mbps = 100, connections = 1000 }}\n",
        admin[0]
    ));
    std::fs::write(&topology, &text).expect("write");
    router.process.signal(Sig::SIGHUP);
    // Retried as a resolver does: one UDP answer lost on a loaded machine (CI) is not a
    // failed reload.
    within(
        Duration::from_secs(5),
        "the new edge is answered",
        || async {
            addresses(&udp_query_retrying(router.dns, SERVICE, RecordType::A, ecs(BOSTON)).await)
                .contains(&"127.0.1.3".to_owned())
        },
    )
    .await;
    std::fs::write(&topology, "this is not a topology").expect("write");
    router.process.signal(Sig::SIGHUP);
    // The old topology keeps answering, through and after the refused reload.
    for _ in 0..20 {
        let answer = udp_query_retrying(router.dns, SERVICE, RecordType::A, ecs(BOSTON)).await;
        assert!(addresses(&answer).contains(&"127.0.1.3".to_owned()));
    }
    let status = get(&format!("{}/status", router.process.addr("admin")), &[])
        .await
        .text();
    assert!(status.contains("us-east-3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_servers, topology) = healthy_fleet(dir.path()).await;
    let mut router = start_router(&topology, &[]);
    let status = get(&format!("{}/status", router.process.addr("admin")), &[]).await;
    assert!(status.text().contains("\"eu-west-2\""));
    router.process.signal(Sig::SIGTERM);
    assert!(router.process.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn check_config_names_an_unknown_key_and_a_bad_topology() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("router.toml");
    std::fs::write(&bad, "zone = \"meridian.test\"\nzoen = \"x\"\n").expect("write");
    let (status, _, stderr) = run_to_end(
        ROUTER,
        &["--check-config", "--config", bad.to_str().expect("utf-8")],
    );
    assert!(!status.success());
    assert!(
        stderr.contains("zoen") && stderr.contains("line 2"),
        "{stderr}"
    );

    let broken = dir.path().join("topology.toml");
    std::fs::write(&broken, "[[regions]]\nname = \"a\"\nlatitude = 1.0\n").expect("write");
    let (status, _, stderr) = run_to_end(
        ROUTER,
        &[
            "--check-config",
            "--topology",
            broken.to_str().expect("utf-8"),
        ],
    );
    assert!(!status.success());
    assert!(stderr.contains("longitude"), "{stderr}");

    let example = testdata().join("geo-router.toml");
    let (status, _, stderr) = run_to_end(
        ROUTER,
        &[
            "--check-config",
            "--config",
            example.to_str().expect("utf-8"),
        ],
    );
    assert!(status.success(), "{stderr}");
}

/// Fleet purge: one call to the router purges a prefix on every edge and reports each edge's
/// result; an edge stopped during the purge never serves the purged object after it starts
/// (its store serves nothing until the router has sent it what it missed), and its drain
/// survives the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_purge_reaches_every_edge_and_a_stopped_one_applies_it_before_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = TestOrigin::start().await;
    origin.route("/vod/a.ts", Route::ok("a, version 1", "max-age=3600"));
    origin.route("/vod/b.ts", Route::ok("b, version 1", "max-age=3600"));
    const TOKEN: &str = "the fleet's admin token";
    let names = ["us-east-1", "us-east-2", "eu-west-1"];
    let addrs: Vec<(String, String)> = (0..3u8)
        .map(|i| (free_addr(30 + i).to_string(), free_addr(40 + i).to_string()))
        .collect();
    let config = format!(
        "admin_token = {TOKEN:?}\nawait_purges = true\ncanonical_host = \"cdn.test\"\norigin_check_interval = \"0s\"\n"
    );
    let start = |i: usize| {
        real_edge_named(
            dir.path(),
            names[i],
            &origin.url(),
            &addrs[i].0,
            &addrs[i].1,
            &config,
        )
    };
    let mut edges: Vec<ServerProcess> = (0..3).map(start).collect();
    let urls = |pick: fn(&(String, String)) -> &String| -> Vec<String> {
        addrs
            .iter()
            .map(|a| format!("http://{}", pick(a)))
            .collect()
    };
    let topology = dir.path().join("topology.toml");
    write_topology_with(&topology, &urls(|a| &a.1), &urls(|a| &a.0));
    let log = dir.path().join("purges.jsonl");
    let router = start_router_with(
        &topology,
        &format!(
            "admin_token = {TOKEN:?}\npurge_log = {:?}\n",
            log.to_str().expect("utf-8")
        ),
        &[],
    );
    let ready = |admin: String| async move {
        get(&format!("http://{admin}/readyz"), &[]).await.status == StatusCode::OK
    };
    for (_, admin) in &addrs {
        within(
            Duration::from_secs(10),
            "the edge is brought up to date and ready",
            || ready(admin.clone()),
        )
        .await;
    }
    let fetch = |i: usize, path: &str| {
        let url = format!("http://{}{path}", addrs[i].0);
        async move { get(&url, &[]).await }
    };
    for (i, name) in names.iter().enumerate() {
        for path in ["/vod/a.ts", "/vod/b.ts"] {
            fetch(i, path).await;
            assert_eq!(
                fetch(i, path).await.header("x-cache"),
                "HIT",
                "{name} {path}"
            );
        }
    }
    // us-east-2 is drained, then stopped; the origin's content changes; the fleet purges.
    let auth = format!("Bearer {TOKEN}");
    let drained = test_support::http::fetch(
        http::Method::POST,
        &format!("http://{}/drain", addrs[1].1),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(drained.status, StatusCode::OK, "{}", drained.text());
    edges[1].signal(Sig::SIGTERM);
    assert!(edges[1].wait_exit(Duration::from_secs(15)).success());
    origin.route("/vod/a.ts", Route::ok("a, version 2", "max-age=3600"));
    let purge_url = format!(
        "{}/purge?url=http%3A%2F%2Fcdn.test%2Fvod%2F*",
        router.process.addr("admin")
    );
    let refused = test_support::http::fetch(http::Method::POST, &purge_url, &[]).await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "no token, no purge"
    );
    let answer =
        test_support::http::fetch(http::Method::POST, &purge_url, &[("authorization", &auth)])
            .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let report: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON report");
    eprintln!("fleet purge report: {report}");
    assert_eq!(report["purge"]["url"], "http://cdn.test/vod/*");
    let results = report["edges"].as_array().expect("edges");
    assert_eq!(results.len(), 3, "one result per edge: {report}");
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result["edge"], names[i]);
        if i == 1 {
            assert_eq!(result["result"], "failed", "the stopped edge: {result}");
            assert!(result["error"].as_str().is_some_and(|e| !e.is_empty()));
        } else {
            assert_eq!(result["result"], "purged", "{result}");
            assert_eq!(result["objects"], 2, "a.ts and b.ts: {result}");
        }
    }
    assert_eq!(report["complete"], false, "one edge did not take it");
    for i in [0, 2] {
        assert_eq!(
            fetch(i, "/vod/a.ts").await.text(),
            "a, version 2",
            "{}",
            names[i]
        );
    }
    // Started again on its old store, which still holds version 1, while the router is
    // frozen (so that nothing can reach the edge first): version 1 is never served, and the
    // edge says it is not ready until the router has sent it the purge.
    router.process.signal(Sig::SIGSTOP);
    edges[1] = start(1);
    let first = fetch(1, "/vod/a.ts").await;
    assert_eq!(
        first.text(),
        "a, version 2",
        "the restarted edge served a purged object"
    );
    assert_eq!(first.header("x-cache"), "MISS");
    assert!(
        !ready(addrs[1].1.clone()).await,
        "not ready before the router sent its purges"
    );
    router.process.signal(Sig::SIGCONT);
    within(
        Duration::from_secs(10),
        "the restarted edge is up to date and ready",
        || ready(addrs[1].1.clone()),
    )
    .await;
    assert_eq!(fetch(1, "/vod/a.ts").await.text(), "a, version 2");
    let b = fetch(1, "/vod/b.ts").await;
    assert_eq!(b.header("x-cache"), "MISS", "b.ts was purged there too");
    assert_eq!(
        fetch(1, "/vod/b.ts").await.header("x-cache"),
        "HIT",
        "and its store serves again"
    );
    let status: serde_json::Value = serde_json::from_slice(
        &get(&format!("http://{}/status", addrs[1].1), &[])
            .await
            .body,
    )
    .expect("status");
    assert_eq!(
        status["draining"], true,
        "the drain outlived the restart: {status}"
    );
    let applied = status["purges"]["applied"].as_object().expect("applied");
    let (origin, applied) = applied.iter().next().expect("one router's log");
    assert!(origin.starts_with("router-1@"), "{status}");
    assert_eq!(applied["through"], 1, "{status}");
    assert!(
        std::fs::read_to_string(&log)
            .expect("log")
            .contains("cdn.test/vod/*"),
        "the purge is in the router's log"
    );
}

/// Fleet purge with three routers: a purge taken by one is copied to the other two; an edge
/// that was stopped during a purge and starts while the router that took it is frozen gets it
/// from the other two (a majority), and only then serves from its store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_reaches_every_router_and_a_majority_brings_a_restarted_edge_up_to_date() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = TestOrigin::start().await;
    origin.route("/vod/a.ts", Route::ok("a, version 1", "max-age=3600"));
    const TOKEN: &str = "the fleet's admin token";
    let (listen, admin) = (free_addr(50).to_string(), free_addr(51).to_string());
    let config = format!(
        "admin_token = {TOKEN:?}\nawait_purges = true\ncanonical_host = \"cdn.test\"\norigin_check_interval = \"0s\"\n"
    );
    let start = || real_edge(dir.path(), &origin.url(), &listen, &admin, &config);
    let mut edge = start();
    let topology = dir.path().join("topology.toml");
    write_topology_with(
        &topology,
        &[format!("http://{admin}")],
        &[format!("http://{listen}")],
    );
    let logs = dir.path().to_str().expect("utf-8").to_owned();
    let routers = three_routers_with(
        [&topology, &topology, &topology],
        &format!("admin_token = {TOKEN:?}\npurge_log = \"{logs}/{{name}}.purges\"\n"),
    );
    let status = || async {
        let reply = get(&format!("http://{admin}/status"), &[]).await;
        serde_json::from_slice::<serde_json::Value>(&reply.body).expect("status")
    };
    within(Duration::from_secs(10), "the edge is ready", || async {
        status().await["ready"] == true
    })
    .await;
    let fetch = || async { get(&format!("http://{listen}/vod/a.ts"), &[]).await };
    fetch().await;
    assert_eq!(fetch().await.header("x-cache"), "HIT");
    // Stopped; the content changes; router b takes the purge.
    edge.signal(Sig::SIGTERM);
    assert!(edge.wait_exit(Duration::from_secs(15)).success());
    origin.route("/vod/a.ts", Route::ok("a, version 2", "max-age=3600"));
    let auth = format!("Bearer {TOKEN}");
    let answer = test_support::http::fetch(
        http::Method::POST,
        &format!(
            "{}/purge?url=http://cdn.test/vod/a.ts",
            routers[1].process.addr("admin")
        ),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let report: serde_json::Value = serde_json::from_slice(&answer.body).expect("report");
    eprintln!("purge report: {report}");
    assert_eq!(report["routers"]["configured"], 3);
    assert_eq!(
        report["routers"]["recorded_by"].as_array().map(Vec::len),
        Some(3),
        "copied to both peers: {report}"
    );
    assert_eq!(report["edges"][0]["result"], "failed", "{report}");
    for name in ["a", "c"] {
        let log = std::fs::read_to_string(dir.path().join(format!("{name}.purges"))).expect("log");
        assert!(
            log.contains("cdn.test/vod/a.ts"),
            "router {name} holds b's purge"
        );
    }
    // Router b freezes; the edge starts: a and c bring it up to date.
    routers[1].process.signal(Sig::SIGSTOP);
    edge = start();
    assert_eq!(
        fetch().await.text(),
        "a, version 2",
        "never the purged copy"
    );
    within(
        Duration::from_secs(10),
        "a majority brought the edge up to date",
        || async { status().await["ready"] == true },
    )
    .await;
    let now = status().await;
    let heard: Vec<&str> = now["purges"]["heard_from"]
        .as_array()
        .expect("heard_from")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        !heard.contains(&"b") && heard.len() >= 2,
        "a and c, not the frozen b: {now}"
    );
    assert_eq!(fetch().await.text(), "a, version 2");
    assert_eq!(fetch().await.header("x-cache"), "HIT");
    routers[1].process.signal(Sig::SIGCONT);
    drop(edge);
}
