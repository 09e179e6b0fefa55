//! The origin's Prometheus metrics. Labels are bounded: a status class and a media kind, never a
//! path or a client address.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use video_http::media::MediaKind;

/// Metric names, so dashboards and tests refer to one spelling.
pub const REQUESTS: &str = "meridian_origin_requests";
pub const BODY_BYTES: &str = "meridian_origin_body_bytes_sent";
pub const IN_FLIGHT: &str = "meridian_origin_requests_in_flight";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    status_class: &'static str,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// Handles to the origin's metrics; cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    body_bytes: Family<KindLabels, Counter>,
    in_flight: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            body_bytes: Family::default(),
            in_flight: Gauge::default(),
        };
        registry.register(
            REQUESTS,
            "Requests answered, by status class and media kind",
            metrics.requests.clone(),
        );
        registry.register(
            BODY_BYTES,
            "Response body bytes handed to clients, by media kind",
            metrics.body_bytes.clone(),
        );
        registry.register(
            IN_FLIGHT,
            "Requests being answered now",
            metrics.in_flight.clone(),
        );
        metrics
    }

    pub fn request_done(&self, status: http::StatusCode, kind: MediaKind) {
        self.requests
            .get_or_create(&RequestLabels {
                status_class: server_kit::cors::status_class(status),
                kind: kind.label(),
            })
            .inc();
    }

    /// The counter that body bytes of `kind` add to as they are sent.
    pub fn bytes_sent(&self, kind: MediaKind) -> Counter {
        self.body_bytes
            .get_or_create(&KindLabels { kind: kind.label() })
            .clone()
    }

    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }
}
