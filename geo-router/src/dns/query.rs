//! Reads the usual query off the wire without building hickory's message: one question of
//! class IN with an uncompressed name, and at most an OPT record (EDNS version 0) carrying at
//! most a well-formed Client Subnet option. Anything else is not read here (`None`) and goes to
//! hickory's parser whole, so this code never decides what an unusual query means.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A query of the usual shape, borrowing its name from the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query<'a> {
    /// The packet's first two bytes.
    pub id: [u8; 2],
    /// The RD and CD bits, where they sit in the header's third and fourth bytes: the only
    /// header bits a response copies.
    pub rd: u8,
    pub cd: u8,
    /// The question's name as sent (its letter case too), with the final root label.
    pub name: &'a [u8],
    pub qtype: u16,
    pub edns: Option<Opt>,
}

/// What a query's OPT record says that an answer depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Opt {
    pub dnssec_ok: bool,
    /// A Client Subnet option with a source prefix above 0 (a /0 asks not to use one).
    pub subnet: Option<Subnet>,
}

/// An ECS option's address and source prefix (RFC 7871).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subnet {
    pub addr: IpAddr,
    pub source: u8,
}

const HEADER: usize = 12;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
const OPTION_SUBNET: u16 = 8;

/// Reads `packet` if it is a query of the usual shape.
pub(crate) fn parse(packet: &[u8]) -> Option<Query<'_>> {
    let header = packet.get(..HEADER)?;
    // QR 0, opcode QUERY, AA and TC clear; RA, Z and the response code clear. RD and CD are
    // copied into the answer; AD (RFC 6840: "I understand AD") changes nothing.
    if header[2] & 0xFE != 0 || header[3] & 0xCF != 0 {
        return None;
    }
    let count = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
    let additional = count(10);
    if count(4) != 1 || count(6) != 0 || count(8) != 0 || additional > 1 {
        return None;
    }
    let name_len = name_length(&packet[HEADER..])?;
    let name = &packet[HEADER..HEADER + name_len];
    let mut at = HEADER + name_len;
    let qtype = u16_at(packet, at)?;
    if u16_at(packet, at + 2)? != CLASS_IN {
        return None;
    }
    at += 4;
    let edns = match additional {
        0 => None,
        _ => {
            let (opt, end) = opt(packet, at)?;
            at = end;
            Some(opt)
        }
    };
    (at == packet.len()).then_some(Query {
        id: [header[0], header[1]],
        rd: header[2] & 0x01,
        cd: header[3] & 0x10,
        name,
        qtype,
        edns,
    })
}

/// The wire length of an uncompressed name at the start of `bytes`, with its root label; at
/// most 255 bytes, each label 1 to 63 bytes.
fn name_length(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let len = usize::from(*bytes.get(at)?);
        if len == 0 {
            return (at < 255).then_some(at + 1);
        }
        if len > 63 {
            return None; // a pointer or a reserved label type
        }
        at += 1 + len;
        if at >= 255 {
            return None;
        }
    }
}

/// An OPT record at `at` (the root name, type 41, EDNS version 0, no extended response code)
/// and where it ends.
fn opt(packet: &[u8], at: usize) -> Option<(Opt, usize)> {
    if *packet.get(at)? != 0 || u16_at(packet, at + 1)? != TYPE_OPT {
        return None;
    }
    // Class: the requester's payload size (an answer here never nears 512 bytes). TTL: the
    // extended response code, the version and the flags.
    let ttl = packet.get(at + 5..at + 9)?;
    if ttl[0] != 0 || ttl[1] != 0 {
        return None;
    }
    let dnssec_ok = ttl[2] & 0x80 != 0;
    let rdlen = usize::from(u16_at(packet, at + 9)?);
    let start = at + 11;
    let rdata = packet.get(start..start + rdlen)?;
    let mut subnet = None;
    let mut seen = false;
    let mut options = rdata;
    while !options.is_empty() {
        let code = u16_at(options, 0)?;
        let len = usize::from(u16_at(options, 2)?);
        let data = options.get(4..4 + len)?;
        if code != OPTION_SUBNET || seen {
            return None;
        }
        seen = true;
        subnet = client_subnet(data)?;
        options = &options[4 + len..];
    }
    Some((Opt { dnssec_ok, subnet }, start + rdlen))
}

/// An ECS option's data: family, source prefix, scope 0 (as RFC 7871 asks of queries), and
/// exactly the address bytes the source prefix needs, with no bit set past it. `Some(None)` for
/// a /0.
fn client_subnet(data: &[u8]) -> Option<Option<Subnet>> {
    let family = u16_at(data, 0)?;
    let (source, scope) = (*data.get(2)?, *data.get(3)?);
    let address = &data[4..];
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return None,
    };
    if source > max || scope != 0 || address.len() != usize::from(source).div_ceil(8) {
        return None;
    }
    if source % 8 != 0 {
        let last = address[address.len() - 1];
        if last & (0xFF >> (source % 8)) != 0 {
            return None;
        }
    }
    if source == 0 {
        return Some(None);
    }
    let addr = if family == 1 {
        let mut octets = [0; 4];
        octets[..address.len()].copy_from_slice(address);
        IpAddr::V4(Ipv4Addr::from(octets))
    } else {
        let mut octets = [0; 16];
        octets[..address.len()].copy_from_slice(address);
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    Some(Some(Subnet { addr, source }))
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// Appends `name` with its ASCII letters in lower case (DNS names compare that way).
pub(crate) fn lower_into(name: &[u8], out: &mut Vec<u8>) {
    out.extend(name.iter().map(u8::to_ascii_lowercase));
}

/// Whether the wire name `name` is `zone` or below it (both lower case, `zone` at a label
/// boundary).
pub(crate) fn within(name: &[u8], zone: &[u8]) -> bool {
    let mut at = 0;
    while at < name.len() {
        if &name[at..] == zone {
            return true;
        }
        at += 1 + usize::from(name[at]);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(flags: [u8; 2], name: &[u8], opt: Option<&[u8]>) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, flags[0], flags[1], 0, 1, 0, 0, 0, 0, 0];
        p.push(u8::from(opt.is_some()));
        p.extend_from_slice(name);
        p.extend_from_slice(&[0, 1, 0, 1]);
        if let Some(rdata) = opt {
            p.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0x80, 0]);
            p.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            p.extend_from_slice(rdata);
        }
        p
    }

    const NAME: &[u8] = b"\x05ViDeO\x08meridian\x04test\x00";

    #[test]
    fn the_usual_query_is_read_with_its_subnet() {
        let ecs = [0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100];
        let packet = query([0x01, 0x10], NAME, Some(&ecs));
        let q = parse(&packet).expect("usual");
        assert_eq!(q.id, [0x12, 0x34]);
        assert_eq!((q.rd, q.cd), (1, 0x10));
        assert_eq!(q.name, NAME);
        assert_eq!(q.qtype, 1);
        let opt = q.edns.expect("edns");
        assert!(opt.dnssec_ok);
        assert_eq!(
            opt.subnet,
            Some(Subnet {
                addr: "198.51.100.0".parse().unwrap(),
                source: 24
            })
        );
        let mut lower = Vec::new();
        lower_into(q.name, &mut lower);
        assert!(within(&lower, b"\x08meridian\x04test\x00"));
        assert!(!within(&lower, b"\x04test\x01x\x00"));
    }

    #[test]
    fn unusual_queries_are_left_to_hickory() {
        let usual = query([0x01, 0], NAME, None);
        assert!(parse(&usual).is_some());
        // A response, a notify, TC set, a compressed name, two options, a bit past the
        // source prefix, a non-zero scope, a cookie, EDNS version 1, trailing bytes.
        assert!(parse(&query([0x81, 0], NAME, None)).is_none());
        assert!(parse(&query([0x20, 0], NAME, None)).is_none());
        assert!(parse(&query([0x02, 0], NAME, None)).is_none());
        assert!(parse(&query([0, 0], b"\xC0\x0C", None)).is_none());
        let ecs = [0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100];
        assert!(parse(&query([0, 0], NAME, Some(&[ecs, ecs].concat()))).is_none());
        assert!(
            parse(&query(
                [0, 0],
                NAME,
                Some(&[0, 8, 0, 7, 0, 1, 23, 0, 1, 2, 3])
            ))
            .is_none()
        );
        assert!(
            parse(&query(
                [0, 0],
                NAME,
                Some(&[0, 8, 0, 7, 0, 1, 24, 8, 1, 2, 3])
            ))
            .is_none()
        );
        assert!(
            parse(&query(
                [0, 0],
                NAME,
                Some(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8])
            ))
            .is_none()
        );
        let mut v1 = query([0, 0], NAME, Some(&[]));
        let opt_at = 12 + NAME.len() + 4;
        v1[opt_at + 6] = 1;
        assert!(parse(&v1).is_none());
        let mut trailing = usual.clone();
        trailing.push(0);
        assert!(parse(&trailing).is_none());
        // Cut anywhere, it is not read.
        for len in 0..usual.len() {
            assert!(parse(&usual[..len]).is_none(), "cut at {len}");
        }
    }

    #[test]
    fn a_zero_source_prefix_means_no_subnet() {
        let packet = query([0, 0], NAME, Some(&[0, 8, 0, 4, 0, 1, 0, 0]));
        assert_eq!(parse(&packet).unwrap().edns.unwrap().subnet, None);
    }
}
