//! The routing decision, measured: a GeoIP lookup plus choosing regions and edges for one
//! client, on the example fleet. Run: `cargo bench -p geo-router --bench decision`.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use geo_router::decision::{Client, EdgeStatus, decide, subnet_key};
use geo_router::geoip::GeoIp;
use topology::Topology;

fn benches(c: &mut Criterion) {
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    let topology = Topology::load(&testdata.join("topology.toml")).expect("topology");
    let geoip = GeoIp::open(&testdata.join("geoip/meridian-city.mmdb")).expect("geoip");
    let mut status = vec![EdgeStatus::default(); topology.edges.len()];
    status[0].load = 0.85;
    status[0].accepting = false;
    status[3].up = false;
    let client: IpAddr = "198.51.100.23".parse().expect("ip");

    c.bench_function("decide_only", |b| {
        b.iter(|| {
            black_box(decide(
                &topology,
                &status,
                Client {
                    location: Some((48.85, 2.35)),
                    key: subnet_key(client, 24),
                },
                "eu-west",
                0.8,
            ))
        })
    });
    c.bench_function("geoip_lookup", |b| {
        b.iter(|| black_box(geoip.locate(black_box(client)).ok()))
    });
    c.bench_function("geoip_and_decide", |b| {
        b.iter(|| {
            let place = geoip
                .locate(black_box(client))
                .ok()
                .map(|l| (l.latitude, l.longitude));
            let key = subnet_key(black_box(client), 24);
            black_box(decide(
                &topology,
                &status,
                Client {
                    location: place,
                    key,
                },
                "eu-west",
                0.8,
            ))
        })
    });
}

criterion_group! {
    name = decision;
    config = Criterion::default().measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(decision);
