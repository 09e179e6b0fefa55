//! Writes Meridian's test GeoIP databases, in the two layouts the geo-router reads:
//!
//! - `testdata/geoip/meridian-city.mmdb`: MaxMind GeoIP2/GeoLite2 City layout
//!   (`location.latitude`/`location.longitude` as doubles, nested `city`, `country`);
//! - `testdata/geoip/meridian-dbip.mmdb`: DB-IP's flat city layout (`latitude`/`longitude` as
//!   32-bit floats at the top level).
//!
//! Both map the same test client ranges to a city near each region of `testdata/topology.toml`.
//! 127.0.0.0/16 (where the local fleet's router, origin and viewers on one machine live) is
//! deliberately absent, so such clients go to the default region. Each city also has a /14 of
//! the shared address space (100.64.0.0/10): 1,024 client /24s, for tests that need many subnets
//! near one region.
//!
//! Run: `cargo run -p make-geoip` (the output is committed; the build epoch is fixed so the files
//! are byte-for-byte reproducible).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use ipnet::IpNet;
use mmdb_writer::Writer;
use serde::Serialize;

/// A test city: name, ISO country, coordinates, and the client ranges placed there.
struct City {
    name: &'static str,
    geoname_id: u32,
    country: &'static str,
    latitude: f64,
    longitude: f64,
    ranges: &'static [&'static str],
}

/// Near us-east (New York), eu-west (London) and ap-southeast (Singapore).
const CITIES: &[City] = &[
    City {
        name: "Boston",
        geoname_id: 4930956,
        country: "US",
        latitude: 42.3601,
        longitude: -71.0589,
        ranges: &[
            "127.1.0.0/16",
            "100.64.0.0/14",
            "192.0.2.0/24",
            "198.18.1.0/24",
            "2001:db8:1::/48",
        ],
    },
    City {
        name: "Paris",
        geoname_id: 2988507,
        country: "FR",
        latitude: 48.8566,
        longitude: 2.3522,
        ranges: &[
            "127.2.0.0/16",
            "100.68.0.0/14",
            "198.51.100.0/24",
            "198.18.2.0/24",
            "2001:db8:2::/48",
        ],
    },
    City {
        name: "Kuala Lumpur",
        geoname_id: 1735161,
        country: "MY",
        latitude: 3.1390,
        longitude: 101.6869,
        ranges: &[
            "127.3.0.0/16",
            "100.72.0.0/14",
            "203.0.113.0/24",
            "198.18.3.0/24",
            "2001:db8:3::/48",
        ],
    },
];

#[derive(Serialize)]
struct NamedPlace {
    geoname_id: u32,
    names: BTreeMap<&'static str, &'static str>,
}

#[derive(Serialize)]
struct Country {
    iso_code: &'static str,
    names: BTreeMap<&'static str, &'static str>,
}

#[derive(Serialize)]
struct Location {
    latitude: f64,
    longitude: f64,
    accuracy_radius: u16,
}

/// The MaxMind City layout (the fields the router reads, plus names for people).
#[derive(Serialize)]
struct MaxMindCity {
    city: NamedPlace,
    country: Country,
    location: Location,
}

/// DB-IP's flat layout: coordinates as 32-bit floats at the top level.
#[derive(Serialize)]
struct DbIpCity {
    city: &'static str,
    country_code: &'static str,
    latitude: f32,
    longitude: f32,
}

fn writer(kind: &str) -> Writer {
    Writer::builder(kind)
        .description(&[(
            "en",
            "Meridian test GeoIP data: documentation and loopback ranges only",
        )])
        .build_epoch(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
        .build()
}

fn main() -> anyhow::Result<()> {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../geoip");
    std::fs::create_dir_all(&out)?;
    let mut maxmind = writer("GeoLite2-City");
    let mut dbip = writer("DBIP-City-Lite");
    for city in CITIES {
        let record = MaxMindCity {
            city: NamedPlace {
                geoname_id: city.geoname_id,
                names: [("en", city.name)].into(),
            },
            country: Country {
                iso_code: city.country,
                names: [("en", city.country)].into(),
            },
            location: Location {
                latitude: city.latitude,
                longitude: city.longitude,
                accuracy_radius: 50,
            },
        };
        let flat = DbIpCity {
            city: city.name,
            country_code: city.country,
            latitude: city.latitude as f32,
            longitude: city.longitude as f32,
        };
        for range in city.ranges {
            let net: IpNet = range.parse()?;
            maxmind.insert(net, &record)?;
            dbip.insert(net, &flat)?;
        }
    }
    std::fs::write(out.join("meridian-city.mmdb"), maxmind.to_bytes()?)?;
    std::fs::write(out.join("meridian-dbip.mmdb"), dbip.to_bytes()?)?;
    println!("make-geoip: wrote {}", out.display());
    Ok(())
}
