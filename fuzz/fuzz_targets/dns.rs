//! DNS request handling: any bytes a client sends over UDP, parsed as hickory's server parses
//! them, then answered by our `DnsHandler` with the test fleet (testdata's topology and GeoIP
//! database). It must not panic, and whatever it answers must be a DNS message that parses
//! back, with the query's id.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};

use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::Message;
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use libfuzzer_sys::fuzz_target;

static HANDLER: LazyLock<geo_router::dns::DnsHandler> = LazyLock::new(|| {
    let testdata = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");
    let config = geo_router::RouterConfig {
        topology: format!("{testdata}/topology.toml").into(),
        geoip: format!("{testdata}/geoip/meridian-city.mmdb").into(),
        ..geo_router::RouterConfig::default()
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let router = geo_router::build(config, &mut registry).expect("the test fleet loads");
    geo_router::dns::DnsHandler::new(router).expect("the zone builds")
});

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
});

/// Keeps what the handler sends, encoded as it would go on the wire.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<Vec<u8>>>>);

#[async_trait::async_trait]
impl ResponseHandler for Sink {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut bytes = Vec::new();
        let info = response
            .destructive_emit(&mut BinEncoder::new(&mut bytes))
            .map_err(NetError::from)?;
        self.0.lock().expect("sink").push(bytes);
        Ok(info)
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the client's address among the test ranges and loopback.
    let Some((&who, packet)) = data.split_first() else {
        return;
    };
    let src: SocketAddr = match who % 4 {
        0 => "192.0.2.10:5000",
        1 => "198.51.100.10:5000",
        2 => "203.0.113.10:5000",
        _ => "127.0.0.1:5000",
    }
    .parse()
    .expect("address");
    let Ok(request) = Request::from_bytes(packet.to_vec(), src, Protocol::Udp) else {
        return; // hickory answers FORMERR or drops it before any handler
    };
    let sink = Sink::default();
    RUNTIME.block_on(HANDLER.handle_request::<_, TokioTime>(&request, sink.clone()));
    let answers = sink.0.lock().expect("sink");
    assert_eq!(answers.len(), 1, "one answer to every request that parses");
    for answer in answers.iter() {
        let message = Message::from_vec(answer)
            .unwrap_or_else(|e| panic!("our answer does not parse back ({e}): {answer:02x?}"));
        assert_eq!(
            message.metadata.id, request.metadata.id,
            "the answer has the query's id"
        );
    }
});
