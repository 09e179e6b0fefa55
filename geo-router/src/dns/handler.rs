//! The authoritative DNS handler: our own `RequestHandler`, because hickory's built-in catalog
//! ignores EDNS Client Subnet.
//!
//! For the zone's service names, A and AAAA answers are chosen per client: located by the ECS
//! address when the query carries one, else by the source address; the ECS option is echoed
//! with the scope of the GeoIP network that decided the answer. The apex answers SOA and NS
//! (with glue); other names in the zone get NXDOMAIN, names outside it REFUSED. Malformed
//! packets never reach this code: hickory's server (TCP) and `answers` (UDP) answer FORMERR or
//! drop them. [`DnsHandler::answer`] decides; sending is the caller's (hickory's response handle,
//! or [`DnsHandler::encode_udp`] for the UDP threads).

use std::net::IpAddr;
use std::sync::Arc;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_server::proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_server::proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_server::proto::serialize::binary::{BinDecoder, BinEncodable, BinEncoder};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};

use crate::Error;
use crate::router::{Routed, Router};

/// Answers queries for one zone.
#[derive(Debug)]
pub struct DnsHandler {
    router: Arc<Router>,
    zone: LowerName,
    services: Vec<LowerName>,
    soa: Record,
    ns: Vec<Record>,
    glue: Vec<(LowerName, Record)>,
    apex: Vec<Record>,
    /// An empty question section, for answers that must not echo the request's.
    no_queries: Queries,
}

impl DnsHandler {
    /// Builds the zone's fixed records from the router's config; a name in it that is not a DNS
    /// name is refused with its key.
    pub fn new(router: Arc<Router>) -> Result<Self, Error> {
        let config = &router.config;
        let zone_name = format!("{}.", config.zone.trim_end_matches('.'));
        let zone = Name::from_ascii(&zone_name).map_err(|error| Error::DnsName {
            key: "zone",
            name: zone_name.clone(),
            error,
        })?;
        let child = |key: &'static str, label: &str| -> Result<Name, Error> {
            Name::from_ascii(label)
                .and_then(|n| n.append_domain(&zone))
                .map_err(|error| Error::DnsName {
                    key,
                    name: format!("{label}.{zone}"),
                    error,
                })
        };
        let services = config
            .service_names
            .iter()
            .map(|s| child("service_names", s).map(LowerName::from))
            .collect::<Result<Vec<_>, _>>()?;
        let primary = match config.nameservers.first() {
            Some(ns) => child("nameservers", &ns.name)?,
            None => child("nameservers", "ns1")?,
        };
        let soa = SOA::new(
            primary,
            child("hostmaster", &config.hostmaster)?,
            1,
            3600,
            600,
            86_400,
            config.changing_ttl.as_secs() as u32,
        );
        let soa = Record::from_rdata(zone.clone(), 3600, RData::SOA(soa));
        let mut ns = Vec::new();
        let mut glue = Vec::new();
        for server in &config.nameservers {
            let name = child("nameservers", &server.name)?;
            ns.push(Record::from_rdata(
                zone.clone(),
                3600,
                RData::NS(NS(name.clone())),
            ));
            let rdata = match server.address {
                IpAddr::V4(v4) => RData::A(A(v4)),
                IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
            };
            glue.push((
                LowerName::from(name.clone()),
                Record::from_rdata(name, 3600, rdata),
            ));
        }
        let apex = config
            .apex
            .iter()
            .map(|address| {
                let rdata = match address {
                    IpAddr::V4(v4) => RData::A(A(*v4)),
                    IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
                };
                Record::from_rdata(zone.clone(), 3600, rdata)
            })
            .collect();
        let no_queries =
            Queries::read(&mut BinDecoder::new(&[]), 0).map_err(|e| Error::Config {
                key: "zone",
                problem: format!("cannot make an empty question section: {e}"),
            })?;
        Ok(Self {
            no_queries,
            apex,
            router,
            zone: LowerName::from(zone),
            services,
            soa,
            ns,
            glue,
        })
    }

    /// The zone's service names (answered per client).
    pub(crate) fn services(&self) -> &[LowerName] {
        &self.services
    }

    pub(crate) fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// FORMERR for a message whose header could be read but nothing after it, as hickory's
    /// server answers it: the header's id, no question.
    pub(crate) fn encode_formerr(&self, header: &Header) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(12);
        let mut encoder = BinEncoder::new(&mut bytes);
        let _ = MessageResponseBuilder::new(&self.no_queries, None)
            .error_msg(&header.metadata, ResponseCode::FormErr)
            .destructive_emit(&mut encoder);
        bytes
    }

    /// The zone's apex.
    pub(crate) fn zone(&self) -> &LowerName {
        &self.zone
    }

    /// What the zone answers to `request`. `route` decides for a client address and source
    /// prefix; it is asked only for a service name.
    pub(crate) fn answer(
        &self,
        request: &Request,
        route: impl FnOnce(IpAddr, u8) -> Routed,
    ) -> Answer {
        let meta = &request.metadata;
        let refusal = |qtype, code| Answer::Refusal {
            code,
            bare: false,
            qtype,
        };
        if compressed_question(request.queries.as_bytes()) {
            return Answer::Refusal {
                code: ResponseCode::FormErr,
                bare: true,
                qtype: "other",
            };
        }
        if meta.message_type != MessageType::Query || meta.op_code != OpCode::Query {
            return refusal("other", ResponseCode::NotImp);
        }
        let queries = request.queries.queries();
        let [query] = queries else {
            return refusal("other", ResponseCode::FormErr);
        };
        let (name, qtype) = (query.name(), query.query_type());
        if !self.zone.zone_of(name) || query.query_class() != DNSClass::IN {
            return refusal(qtype_label(qtype), ResponseCode::Refused);
        }

        let mut metadata = Metadata::response_from_request(meta);
        metadata.authoritative = true;
        metadata.recursion_available = false;

        // ECS: locate by the client's subnet when given (RFC 7871); a /0 means "do not use".
        let subnet = request
            .edns
            .as_ref()
            .and_then(|e| match e.option(EdnsCode::Subnet) {
                Some(EdnsOption::Subnet(s)) if s.source_prefix() > 0 => Some(*s),
                _ => None,
            });
        // RFC 3225: the DO bit is copied into the response (the zone is not signed, so it
        // changes nothing else).
        let mut edns = request.edns.as_ref().map(|asked| {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            e.set_dnssec_ok(asked.flags().dnssec_ok);
            e
        });

        let mut answers: Vec<Record> = Vec::new();
        let mut additionals: Vec<Record> = Vec::new();
        let mut authority_soa = false;
        let mut region = String::new();
        if *name == self.zone {
            match qtype {
                RecordType::SOA => answers.push(self.soa.clone()),
                RecordType::NS => {
                    answers.extend(self.ns.iter().cloned());
                    additionals.extend(self.glue.iter().map(|(_, r)| r.clone()));
                }
                _ => {
                    answers.extend(
                        self.apex
                            .iter()
                            .filter(|r| r.record_type() == qtype)
                            .cloned(),
                    );
                    authority_soa = answers.is_empty();
                }
            }
        } else if self.services.contains(name) {
            let (client, prefix) = match subnet {
                Some(s) => (s.addr(), s.source_prefix()),
                None => {
                    // A dual-stack socket's IPv4 caller arrives as `::ffff:a.b.c.d`: it is
                    // decided as the IPv4 address it is (as IPv6, every IPv4 caller would be
                    // in one /48, on one edge).
                    let ip = request.src().ip().to_canonical();
                    (ip, if ip.is_ipv4() { 32 } else { 128 })
                }
            };
            let routed = route(client, prefix);
            let ttl = self.router.ttl().as_secs() as u32;
            if let Some(&r) = routed.decision.regions.first() {
                region = routed.snapshot.topology.regions[r].name.clone();
            }
            // Filtered by family before they are counted: an edge's IPv6 addresses count
            // for AAAA only.
            let records = routed
                .decision
                .edges
                .iter()
                .flat_map(|&e| &routed.snapshot.topology.edges[e].dns)
                .filter_map(|address| match (qtype, address) {
                    (RecordType::A, IpAddr::V4(v4)) => Some(RData::A(A(*v4))),
                    (RecordType::AAAA, IpAddr::V6(v6)) => Some(RData::AAAA(AAAA(*v6))),
                    _ => None,
                })
                .take(self.router.config.answer_count)
                .map(|rdata| Record::from_rdata(Name::from(name.clone()), ttl, rdata));
            answers.extend(records);
            if let (Some(edns), Some(s)) = (edns.as_mut(), subnet) {
                edns.options_mut()
                    .insert(EdnsOption::Subnet(ClientSubnet::new(
                        s.addr(),
                        s.source_prefix(),
                        routed.scope,
                    )));
            }
            authority_soa = answers.is_empty();
        } else if let Some((_, glue)) = self.glue.iter().find(|(n, _)| n == name) {
            if glue.record_type() == qtype {
                answers.push(glue.clone());
            } else {
                authority_soa = true;
            }
        } else {
            metadata.response_code = ResponseCode::NXDomain;
            authority_soa = true;
        }
        let result = if metadata.response_code == ResponseCode::NXDomain {
            "nxdomain"
        } else if authority_soa {
            "nodata"
        } else {
            "ok"
        };
        Answer::Records(Records {
            metadata,
            edns,
            answers,
            soa: if authority_soa {
                vec![self.soa.clone()]
            } else {
                Vec::new()
            },
            additionals,
            qtype: qtype_label(qtype),
            result,
            region,
        })
    }

    /// Counts an answer in the query metrics.
    pub(crate) fn count(&self, answer: &Answer) {
        match answer {
            Answer::Refusal { code, qtype, .. } => {
                self.router.metrics.query(qtype, refusal_label(*code), "")
            }
            Answer::Records(r) => self.router.metrics.query(r.qtype, r.result, &r.region),
        }
    }

    /// Encodes `answer` to `request` for UDP as hickory's server does: within the response's
    /// EDNS payload size (512 bytes without EDNS), truncated past it.
    pub(crate) fn encode_udp(&self, request: &Request, answer: &Answer) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        let emitted = match answer {
            Answer::Refusal { code, bare, .. } => {
                encoder.set_max_size(512);
                self.refusal(request, *code, *bare)
                    .destructive_emit(&mut encoder)
            }
            Answer::Records(r) => {
                encoder.set_max_size(r.edns.as_ref().map_or(512, |e| e.max_payload()));
                r.response(request).destructive_emit(&mut encoder)
            }
        };
        if emitted.is_ok() {
            return bytes;
        }
        // What hickory's server sends for a message it cannot encode.
        bytes.clear();
        let mut metadata = Metadata::new(request.metadata.id, MessageType::Response, OpCode::Query);
        metadata.response_code = ResponseCode::ServFail;
        let mut encoder = BinEncoder::new(&mut bytes);
        let header = Header {
            metadata,
            counts: HeaderCounts::default(),
        };
        let _ = header.emit(&mut encoder);
        bytes
    }

    /// A refusal's message: no records, the question unless `bare`.
    fn refusal<'q>(
        &'q self,
        request: &'q Request,
        code: ResponseCode,
        bare: bool,
    ) -> MessageResponse<
        'q,
        'q,
        impl Iterator<Item = &'q Record> + Send + 'q,
        impl Iterator<Item = &'q Record> + Send + 'q,
        impl Iterator<Item = &'q Record> + Send + 'q,
        impl Iterator<Item = &'q Record> + Send + 'q,
    > {
        let queries = if bare {
            &self.no_queries
        } else {
            &request.queries
        };
        MessageResponseBuilder::new(queries, None).error_msg(&request.metadata, code)
    }
}

/// What the zone answers to one query, before it is encoded.
#[derive(Debug)]
pub(crate) enum Answer {
    /// `code` and no records; `bare`: without the question (see [`compressed_question`]).
    Refusal {
        code: ResponseCode,
        bare: bool,
        qtype: &'static str,
    },
    Records(Records),
}

/// An answer from the zone, with what it is counted under.
#[derive(Debug)]
pub(crate) struct Records {
    metadata: Metadata,
    edns: Option<Edns>,
    answers: Vec<Record>,
    soa: Vec<Record>,
    additionals: Vec<Record>,
    pub qtype: &'static str,
    pub result: &'static str,
    /// The region answered (a topology name), or empty.
    pub region: String,
}

impl Records {
    /// The query counter this answer is counted under.
    pub fn counter(&self, router: &Router) -> prometheus_client::metrics::counter::Counter {
        router
            .metrics
            .query_counter(self.qtype, self.result, &self.region)
    }

    fn response<'q>(
        &'q self,
        request: &'q Request,
    ) -> MessageResponse<
        'q,
        'q,
        impl Iterator<Item = &'q Record> + Send + 'q,
        impl Iterator<Item = &'q Record> + Send + 'q,
        impl Iterator<Item = &'q Record> + Send + 'q,
        impl Iterator<Item = &'q Record> + Send + 'q,
    > {
        MessageResponseBuilder::new(&request.queries, self.edns.as_ref()).build(
            self.metadata,
            self.answers.iter(),
            [].iter(),
            self.soa.iter(),
            self.additionals.iter(),
        )
    }
}

fn refusal_label(code: ResponseCode) -> &'static str {
    match code {
        ResponseCode::NotImp => "notimp",
        ResponseCode::FormErr => "formerr",
        _ => "refused",
    }
}

/// Whether a question section names anything by a compression pointer. No resolver sends one
/// (the question holds the message's first names), and hickory echoes the question's bytes as
/// they came: a pointer into the request's header would point into the response's, which
/// differs, and neither the question nor an answer compressed against it would parse.
fn compressed_question(raw: &[u8]) -> bool {
    let mut at = 0;
    while at < raw.len() {
        loop {
            let Some(&len) = raw.get(at) else {
                return false;
            };
            if len & 0xC0 != 0 {
                return true;
            }
            at += 1 + usize::from(len);
            if len == 0 {
                break;
            }
        }
        at += 4; // type and class
    }
    false
}

/// What a response that could not be sent is logged as: its header, with `code`.
fn header_only(request: &Metadata, code: ResponseCode) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(request);
    metadata.response_code = code;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

fn qtype_label(t: RecordType) -> &'static str {
    match t {
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        RecordType::SOA => "SOA",
        RecordType::NS => "NS",
        _ => "other",
    }
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let answer = self.answer(request, |client, prefix| self.router.route(client, prefix));
        self.count(&answer);
        let sent = match &answer {
            Answer::Refusal { code, bare, .. } => {
                response_handle
                    .send_response(self.refusal(request, *code, *bare))
                    .await
            }
            Answer::Records(r) => response_handle.send_response(r.response(request)).await,
        };
        sent.unwrap_or_else(|error| {
            tracing::warn!(%error, "sending a DNS response failed");
            header_only(&request.metadata, ResponseCode::ServFail)
        })
    }
}
