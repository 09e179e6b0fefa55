//! Locating clients in a MaxMind-format database.
//!
//! Two layouts load: MaxMind's City layout (`location.latitude`, `location.longitude`, doubles)
//! and DB-IP's flat city layout (`latitude`, `longitude` at the top level, 32-bit floats). The
//! lookup also returns the prefix length of the network that matched, which is what an ECS
//! answer's scope must say: every address in that network would get the same answer.
//!
//! A record's place is decoded once: databases share one record among all the networks of a
//! place, so the places are kept by record (its offset in the data section), up to
//! [`PLACES_KEPT`] of them.

use foldhash::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::RwLock;

use serde::Deserialize;

use crate::Error;

/// A client's place, and the network it was found in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Located {
    pub latitude: f64,
    pub longitude: f64,
    /// Prefix length of the matching network in the database.
    pub prefix_len: u8,
}

/// An open GeoIP database.
pub struct GeoIp {
    reader: maxminddb::Reader<Vec<u8>>,
    /// Each decoded record's coordinates (None: it has none), by data-section offset.
    places: RwLock<HashMap<usize, Option<(f64, f64)>>>,
}

/// More records than a City database's places; past it, places are decoded every time.
pub const PLACES_KEPT: usize = 1 << 20;

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("type", &self.reader.metadata().database_type)
            .finish()
    }
}

/// MaxMind City layout: nested, doubles.
#[derive(Deserialize)]
struct CityRecord {
    location: Option<Location>,
}

/// DB-IP flat layout: top-level 32-bit floats (the decoder will not widen them to f64).
#[derive(Deserialize)]
struct FlatRecord {
    latitude: Option<f32>,
    longitude: Option<f32>,
}

/// A flat layout written with doubles.
#[derive(Deserialize)]
struct FlatDoubleRecord {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[derive(Deserialize)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// What the lookup of a network that has no place tells about its extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unlocated {
    /// Prefix length of the database network the address fell in (0 if unknown).
    pub prefix_len: u8,
}

impl GeoIp {
    /// Opens a database file; the error names the file.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let reader = maxminddb::Reader::open_readfile(path).map_err(|error| Error::GeoIp {
            path: path.to_path_buf(),
            error,
        })?;
        Ok(Self {
            reader,
            places: RwLock::new(HashMap::default()),
        })
    }

    /// The database's type, as its metadata says (e.g. `GeoLite2-City`).
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// Where `ip` is, if the database knows; else the extent of the empty network it is in.
    pub fn locate(&self, ip: IpAddr) -> Result<Located, Unlocated> {
        let Ok(result) = self.reader.lookup(ip) else {
            return Err(Unlocated { prefix_len: 0 });
        };
        let prefix_len = result.network().map(|n| n.prefix()).unwrap_or(0);
        let Some(offset) = result.offset() else {
            return Err(Unlocated { prefix_len });
        };
        let kept = self
            .places
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&offset)
            .copied();
        let coordinates = match kept {
            Some(place) => place,
            None => {
                let place = Self::decode(&result);
                let mut places = self.places.write().unwrap_or_else(|p| p.into_inner());
                if places.len() < PLACES_KEPT {
                    places.insert(offset, place);
                }
                place
            }
        };
        match coordinates {
            Some((latitude, longitude)) if latitude.is_finite() && longitude.is_finite() => {
                Ok(Located {
                    latitude,
                    longitude,
                    prefix_len,
                })
            }
            _ => Err(Unlocated { prefix_len }),
        }
    }

    /// A record's coordinates, in whichever layout it has them.
    fn decode(result: &maxminddb::LookupResult<'_, Vec<u8>>) -> Option<(f64, f64)> {
        let city = || match result.decode::<CityRecord>().ok().flatten()?.location? {
            Location {
                latitude: Some(lat),
                longitude: Some(lon),
            } => Some((lat, lon)),
            _ => None,
        };
        let flat = || {
            let r = result.decode::<FlatRecord>().ok().flatten()?;
            Some((f64::from(r.latitude?), f64::from(r.longitude?)))
        };
        let flat_double = || {
            let r = result.decode::<FlatDoubleRecord>().ok().flatten()?;
            r.latitude.zip(r.longitude)
        };
        city().or_else(flat).or_else(flat_double)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(name: &str) -> GeoIp {
        GeoIp::open(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../testdata/geoip")
                .join(name),
        )
        .expect("test database")
    }

    #[test]
    fn both_layouts_locate_the_test_ranges() {
        for name in ["meridian-city.mmdb", "meridian-dbip.mmdb"] {
            let geo = db(name);
            let boston = geo.locate("192.0.2.7".parse().unwrap()).expect(name);
            assert!((boston.latitude - 42.36).abs() < 0.01, "{name}: {boston:?}");
            assert_eq!(boston.prefix_len, 24);
            let paris = geo.locate("2001:db8:2::5".parse().unwrap()).expect(name);
            assert!((paris.longitude - 2.35).abs() < 0.01, "{name}: {paris:?}");
            assert_eq!(paris.prefix_len, 48);
            let kl = geo.locate("127.3.4.5".parse().unwrap()).expect(name);
            assert!(kl.latitude < 10.0);
            assert!(
                geo.locate("127.0.0.1".parse().unwrap()).is_err(),
                "{name}: loopback clients are unlocated"
            );
            assert!(geo.locate("10.1.2.3".parse().unwrap()).is_err());
        }
    }
}
