//! Configuration parsing: any text as an edge config, a geo-router config and a topology. A
//! bad file must be an error (naming a line or a key), never a panic; a config that parses
//! and validates must survive a round trip through TOML.
#![no_main]

use edge::config::EdgeConfig;
use geo_router::RouterConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match server_kit::config::parse::<EdgeConfig>(text) {
        Ok(config) => {
            if config.validate().is_ok() {
                let again = toml::to_string(&config).expect("a valid config serialises");
                let back: EdgeConfig = server_kit::config::parse(&again).expect("and parses back");
                back.validate().expect("and is still valid");
            }
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
    match server_kit::config::parse::<RouterConfig>(text) {
        Ok(config) => {
            let again = toml::to_string(&config).expect("a router config serialises");
            let _: RouterConfig = server_kit::config::parse(&again).expect("and parses back");
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
    if let Ok(topology) = topology::Topology::parse(text) {
        let _ = topology.validate();
    }
});
