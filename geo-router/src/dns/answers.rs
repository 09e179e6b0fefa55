//! Answers UDP queries for one socket thread, keeping each encoded answer to patch for the next
//! query that gets the same one.
//!
//! A kept answer is hickory's encoding of a first query, cut before its OPT record, and keyed by
//! everything it holds: the name in lower case, the type, whether the query had EDNS and DO, and
//! for a service name the decision (the region and edges answered). For a later query with the
//! same key the answer is copied and patched: its id, the RD and CD bits, the question's name as
//! this query spelled it (resolvers that randomise letter case drop answers that do not match),
//! and a new OPT record with this query's DO bit and Client Subnet echo: what is saved is
//! hickory's parsing and encoding.
//!
//! Decisions are kept too, by client subnet (the /24 or /48 the decision hashes, or the shorter
//! source prefix), when the GeoIP network that located the client holds the whole subnet (the
//! answer's scope is the subnet's): every address of it then gets the same decision on the same
//! view, so a later query from it skips the GeoIP lookup and the decision.
//!
//! An answer is kept only when patching it reproduces, byte for byte, what hickory encoded for
//! the query it came from, and when no patch can take it past 512 bytes (so it is never
//! truncated). Everything kept is dropped when the fleet's generation or the TTL changes.
//! Queries of an unusual shape ([`query::parse`] says `None`) and names outside the zone are read
//! and answered by hickory, as its own server would.

use foldhash::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Header, MessageType};
use hickory_server::proto::rr::{LowerName, Name};
use hickory_server::proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable};
use hickory_server::server::Request;
use prometheus_client::metrics::counter::Counter;

use super::handler::{Answer, DnsHandler};
use super::query::{self, Query};
use crate::decision::{self, Decision};
use crate::router::{Routed, Router, View, subnet_prefix};

/// Past this many kept answers, all are dropped (a flood of distinct names cannot grow it).
const MAX_KEPT: usize = 8192;
/// The longest OPT record a patch writes: 11 bytes, and an ECS option for an IPv6 /128.
const MAX_OPT: usize = 11 + 4 + 4 + 16;
/// RFC 1035's UDP limit, which every requester takes.
const UDP_MIN: usize = 512;

/// One thread's answering state.
pub(crate) struct Answers {
    handler: Arc<DnsHandler>,
    router: Arc<Router>,
    zone: Vec<u8>,
    services: Vec<Vec<u8>>,
    view: View,
    ttl: Duration,
    kept: HashMap<Box<[u8]>, Kept>,
    decided: HashMap<(IpAddr, u8), Decided>,
    key: Vec<u8>,
    /// The last decision made, its buffers reused.
    decision: Decision,
    /// Decisions made: one in [`TIMED_EVERY`] is timed for the decision histogram.
    decisions: u64,
    cached: Counter,
    encoded: Counter,
    full: Counter,
}

/// A decision as a kept answer's key holds it (the region and edges answered), and its scope.
/// Held inline, so that keeping one allocates nothing: a decision with more edges than fit is
/// not kept.
struct Decided {
    key: [u8; DECIDED_LEN],
    len: u8,
    scope: u8,
}

/// One decision in this many is timed: in a profile of the many-subnet DNS run, the clock reads
/// and the histogram were about a tenth of the router's user time.
const TIMED_EVERY: u64 = 64;

/// The region and up to 15 edges, two bytes each.
const DECIDED_LEN: usize = 32;

/// An encoded answer up to its OPT record.
struct Kept {
    head: Box<[u8]>,
    /// Whether the answer has an OPT record (the query had EDNS).
    opt: bool,
    /// Whether the name is a service name: the OPT record then echoes a query's Client Subnet.
    service: bool,
    counter: Counter,
}

impl Answers {
    pub(crate) fn new(handler: Arc<DnsHandler>) -> Self {
        let router = handler.router().clone();
        let metrics = &router.metrics;
        let (cached, encoded, full) = (
            metrics.dns_path("cached"),
            metrics.dns_path("encoded"),
            metrics.dns_path("full"),
        );
        Self {
            zone: wire(handler.zone()),
            services: handler.services().iter().map(wire).collect(),
            view: router.view(),
            ttl: router.ttl(),
            handler,
            router,
            kept: HashMap::default(),
            decided: HashMap::default(),
            key: Vec::with_capacity(300),
            decision: Decision::default(),
            decisions: 0,
            cached,
            encoded,
            full,
        }
    }

    /// Takes the fleet's view again if it changed, dropping what was kept. Called once per
    /// batch of queries.
    pub(crate) fn refresh(&mut self) {
        let ttl = self.router.ttl();
        if self.router.fleet.generation() != self.view.generation || ttl != self.ttl {
            self.view = self.router.view();
            self.ttl = ttl;
            self.kept.clear();
            self.decided.clear();
        }
    }

    /// Writes the answer to `packet` from `src` into `out`; false when nothing is to be sent
    /// (what hickory's server drops).
    pub(crate) fn answer(&mut self, packet: &[u8], src: SocketAddr, out: &mut Vec<u8>) -> bool {
        out.clear();
        if src.port() == 0 || src.ip().is_unspecified() {
            return false; // no reply can reach it (hickory's server drops these too)
        }
        let Some(query) = query::parse(packet) else {
            return self.full(packet, src, out);
        };
        self.key.clear();
        query::lower_into(query.name, &mut self.key);
        if !query::within(&self.key, &self.zone) {
            return self.full(packet, src, out);
        }
        let service = self.services.contains(&self.key);
        self.key.extend_from_slice(&query.qtype.to_be_bytes());
        self.key.push(match query.edns {
            None => 0,
            Some(o) => 1 + u8::from(o.dnssec_ok),
        });
        let (client, prefix) = match query.edns.and_then(|o| o.subnet) {
            Some(s) => (s.addr, s.source),
            None => {
                // A dual-stack socket's IPv4 caller, as itself (see `handler`).
                let ip = src.ip().to_canonical();
                (ip, if ip.is_ipv4() { 32 } else { 128 })
            }
        };
        // Whether `self.decision` is this query's (it is not when a kept decision was used).
        let mut decided_now = false;
        let mut scope = 0;
        if service {
            let subnet_len = subnet_prefix(client, prefix);
            let subnet = (decision::masked(client, subnet_len), subnet_len);
            if let Some(decided) = self.decided.get(&subnet) {
                self.key
                    .extend_from_slice(&decided.key[..usize::from(decided.len)]);
                scope = decided.scope;
            } else {
                let started = self
                    .decisions
                    .is_multiple_of(TIMED_EVERY)
                    .then(Instant::now);
                self.decisions += 1;
                scope = self
                    .router
                    .decide_in(&self.view, client, prefix, &mut self.decision);
                if let Some(started) = started {
                    let seconds = started.elapsed().as_secs_f64();
                    self.router.metrics.decision(seconds);
                }
                decided_now = true;
                let from = self.key.len();
                let region = self
                    .decision
                    .regions
                    .first()
                    .map_or(u16::MAX, |&r| r as u16);
                self.key.extend_from_slice(&region.to_be_bytes());
                for &edge in &self.decision.edges {
                    self.key.extend_from_slice(&(edge as u16).to_be_bytes());
                }
                let len = self.key.len() - from;
                if scope == subnet_len && len <= DECIDED_LEN {
                    if self.decided.len() >= MAX_KEPT {
                        self.decided.clear();
                    }
                    let mut key = [0; DECIDED_LEN];
                    key[..len].copy_from_slice(&self.key[from..]);
                    let len = len as u8;
                    self.decided.insert(subnet, Decided { key, len, scope });
                }
            }
        }
        if let Some(kept) = self.kept.get(self.key.as_slice()) {
            patch(kept, &query, scope, out);
            kept.counter.inc();
            self.cached.inc();
            return true;
        }
        self.encoded.inc();
        let Ok(request) = Request::from_bytes(packet.to_vec(), src, Protocol::Udp) else {
            return self.full(packet, src, out); // not expected: the shape was checked
        };
        let routed = match (service, decided_now) {
            (false, _) => None,
            (true, true) => Some(Routed {
                snapshot: self.view.snapshot.clone(),
                regions: self.view.regions.clone(),
                decision: self.decision.clone(),
                scope,
            }),
            (true, false) => Some(self.router.route_in(&self.view, client, prefix)),
        };
        let answer = match routed {
            Some(routed) => self.handler.answer(&request, move |_, _| routed),
            None => self
                .handler
                .answer(&request, |c, p| self.router.route(c, p)),
        };
        self.handler.count(&answer);
        *out = self.handler.encode_udp(&request, &answer);
        if let Answer::Records(records) = &answer
            && let Some(kept) =
                self.keep(&query, out, service, scope, records.counter(&self.router))
        {
            if self.kept.len() >= MAX_KEPT {
                self.kept.clear();
            }
            self.kept.insert(self.key.as_slice().into(), kept);
        }
        true
    }

    /// Makes `encoded`, hickory's answer to `query`, a kept answer, if patching it gives back
    /// exactly `encoded` and no patch takes it past 512 bytes.
    fn keep(
        &self,
        query: &Query,
        encoded: &[u8],
        service: bool,
        scope: u8,
        counter: Counter,
    ) -> Option<Kept> {
        // Shorter than the header and the question: not an answer to patch (hickory's SERVFAIL
        // for a message it could not encode). TC set: truncated.
        if encoded.len() < 12 + query.name.len() + 4 || encoded[2] & 0x02 != 0 {
            return None;
        }
        let mut tail = Vec::new();
        if let Some(opt) = query.edns {
            write_opt(&mut tail, opt, service.then_some(scope));
        }
        let head_len = encoded.len().checked_sub(tail.len())?;
        if head_len + MAX_OPT > UDP_MIN || encoded[head_len..] != tail[..] {
            return None;
        }
        let kept = Kept {
            head: encoded[..head_len].into(),
            opt: query.edns.is_some(),
            service,
            counter,
        };
        let mut again = Vec::with_capacity(encoded.len());
        patch(&kept, query, scope, &mut again);
        (again == encoded).then_some(kept)
    }

    /// Reads and answers `packet` as hickory's server does.
    fn full(&mut self, packet: &[u8], src: SocketAddr, out: &mut Vec<u8>) -> bool {
        out.clear();
        self.full.inc();
        let Ok(header) = Header::read(&mut BinDecoder::new(packet)) else {
            return false; // under 12 bytes
        };
        let request = match Request::from_bytes(packet.to_vec(), src, Protocol::Udp) {
            Ok(request) => request,
            Err(_) => {
                *out = self.handler.encode_formerr(&header);
                self.router.metrics.query("other", "formerr", "");
                return true;
            }
        };
        if request.metadata.message_type == MessageType::Response {
            return false; // never answer an answer (reflection)
        }
        let answer = self
            .handler
            .answer(&request, |c, p| self.router.route_in(&self.view, c, p));
        self.handler.count(&answer);
        *out = self.handler.encode_udp(&request, &answer);
        true
    }
}

/// Writes `kept` patched for `query` into `out`.
fn patch(kept: &Kept, query: &Query, scope: u8, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&kept.head);
    out[0..2].copy_from_slice(&query.id);
    out[2] = (out[2] & !0x01) | query.rd;
    out[3] = (out[3] & !0x10) | query.cd;
    out[12..12 + query.name.len()].copy_from_slice(query.name);
    if let (true, Some(opt)) = (kept.opt, query.edns) {
        write_opt(out, opt, kept.service.then_some(scope));
    }
}

/// An answer's OPT record: payload 1232, the query's DO bit, and with `echo_scope` (a service
/// name's answer) the query's Client Subnet, if it has one, at that scope.
fn write_opt(out: &mut Vec<u8>, opt: query::Opt, echo_scope: Option<u8>) {
    // Built on the stack and copied once: byte-by-byte pushes each reload the vector's length.
    let mut record = [0u8; MAX_OPT];
    record[..9].copy_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0]);
    if opt.dnssec_ok {
        record[7] = 0x80;
    }
    let len = match (echo_scope, opt.subnet) {
        (Some(scope), Some(subnet)) => {
            let (v4, v6);
            let (family, octets): (u8, &[u8]) = match subnet.addr {
                IpAddr::V4(a) => {
                    v4 = a.octets();
                    (1, &v4)
                }
                IpAddr::V6(a) => {
                    v6 = a.octets();
                    (2, &v6)
                }
            };
            let address = &octets[..usize::from(subnet.source).div_ceil(8)];
            let option = 4 + address.len() as u8;
            record[9..17].copy_from_slice(&[0, 4 + option, 0, 8, 0, option, 0, family]);
            record[17] = subnet.source;
            record[18] = scope;
            record[19..19 + address.len()].copy_from_slice(address);
            19 + address.len()
        }
        _ => 11,
    };
    out.extend_from_slice(&record[..len]);
}

/// A name in wire form, lower case.
fn wire(name: &LowerName) -> Vec<u8> {
    let mut out = Vec::new();
    let bytes = Name::from(name.clone()).to_bytes().unwrap_or_default();
    query::lower_into(&bytes, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn handler() -> Arc<DnsHandler> {
        let testdata = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");
        let config = crate::RouterConfig {
            topology: format!("{testdata}/topology.toml").into(),
            geoip: format!("{testdata}/geoip/meridian-city.mmdb").into(),
            ..crate::RouterConfig::default()
        };
        let mut registry = prometheus_client::registry::Registry::default();
        let router = crate::build(config, &mut registry).expect("the test fleet loads");
        Arc::new(DnsHandler::new(router).expect("the zone builds"))
    }

    /// A small xorshift: the same variants every run.
    struct Draw(u64);
    impl Draw {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[(self.next() % items.len() as u64) as usize]
        }
    }

    /// Whatever the bytes, the answer from a kept encoding or hickory's encoding of the usual
    /// query equals hickory's reading and encoding of the same bytes.
    #[test]
    fn every_path_answers_as_hickory_reads_the_bytes() {
        let handler = handler();
        let mut answers = Answers::new(handler.clone());
        let mut full = Answers::new(handler);
        let mut draw = Draw(0x9E37_79B9_7F4A_7C15);
        let names: [&[u8]; 6] = [
            b"\x05video\x08meridian\x04test\x00",
            b"\x05ViDEo\x08MERIDIAN\x04test\x00",
            b"\x08meridian\x04test\x00",
            b"\x03ns1\x08meridian\x04test\x00",
            b"\x04nope\x08meridian\x04TEST\x00",
            b"\x07example\x03com\x00",
        ];
        let subnets: [&[u8]; 7] = [
            &[],
            &[0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100],
            &[0, 8, 0, 7, 0, 1, 24, 0, 100, 64, 3],
            &[0, 8, 0, 6, 0, 1, 16, 0, 100, 65],
            &[0, 8, 0, 7, 0, 1, 20, 0, 100, 64, 16],
            &[0, 8, 0, 10, 0, 2, 48, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 2],
            &[0, 8, 0, 4, 0, 1, 0, 0],
        ];
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut kept_used = 0;
        for round in 0..20_000u32 {
            let mut packet = (round as u16).to_be_bytes().to_vec();
            packet.push(*draw.pick(&[0x00, 0x01, 0x01, 0x81, 0x02, 0x20]));
            packet.push(*draw.pick(&[0x00, 0x00, 0x10, 0x20, 0x40, 0x03]));
            let edns = !draw.next().is_multiple_of(3);
            packet.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
            let name = *draw.pick::<&[u8]>(&names);
            packet.extend_from_slice(name);
            packet.extend_from_slice(&draw.pick(&[1u16, 1, 28, 6, 2, 15, 255]).to_be_bytes());
            packet.extend_from_slice(&draw.pick(&[1u16, 1, 1, 3]).to_be_bytes());
            if edns {
                let options = *draw.pick::<&[u8]>(&subnets);
                let dnssec = *draw.pick(&[0u8, 0x80]);
                packet.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, dnssec, 0]);
                packet.extend_from_slice(&(options.len() as u16).to_be_bytes());
                packet.extend_from_slice(options);
            }
            // Now and then a byte changed or the packet cut.
            match draw.next() % 10 {
                0 => {
                    let at = (draw.next() % packet.len() as u64) as usize;
                    packet[at] = draw.next() as u8;
                }
                1 => packet.truncate((draw.next() % packet.len() as u64) as usize),
                _ => {}
            }
            // Now and then an IPv4 caller mapped into IPv6 (a dual-stack socket's), or IPv6.
            let host = (round % 200) as u8 + 1;
            let src = match round % 7 {
                0 => SocketAddr::from((Ipv4Addr::new(192, 0, 2, host).to_ipv6_mapped(), 5300)),
                1 => SocketAddr::from(([0x2001, 0xdb8, 2, 0, 0, 0, 0, u16::from(host)], 5300)),
                _ => SocketAddr::from(([192, 0, 2, host], 5300)),
            };
            let before = answers.cached.get();
            let sent = answers.answer(&packet, src, &mut a);
            kept_used += answers.cached.get() - before;
            let sent_full = full.full(&packet, src, &mut b);
            assert_eq!(sent, sent_full, "answered or not: {packet:?}");
            assert_eq!(a, b, "the answers to {packet:?}");
        }
        assert!(kept_used > 2_000, "kept answers were used: {kept_used}");
        assert!(!answers.decided.is_empty(), "decisions were kept by subnet");
    }
}
