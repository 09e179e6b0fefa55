//! The edge's Prometheus metrics. Labels are bounded: cache status, status class, outcome.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::StoreStats;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    cache: &'static str,
    status_class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Handles to the edge's metrics; cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    body_bytes: Family<CacheLabels, Counter>,
    latency: Family<CacheLabels, Histogram>,
    origin_fetches: Family<OutcomeLabels, Counter>,
    pub coalesced_waiters: Counter,
    prefetches: Family<OutcomeLabels, Counter>,
    pub in_flight: Gauge,
    store_used: Gauge,
    store_memory: Gauge,
    store_capacity: Gauge,
    store_objects: Gauge,
    evicted_objects: Gauge,
    reinserted_objects: Gauge,
    promoted_objects: Gauge,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            body_bytes: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 18))
            }),
            origin_fetches: Family::default(),
            coalesced_waiters: Counter::default(),
            prefetches: Family::default(),
            in_flight: Gauge::default(),
            store_used: Gauge::default(),
            store_memory: Gauge::default(),
            store_capacity: Gauge::default(),
            store_objects: Gauge::default(),
            evicted_objects: Gauge::default(),
            reinserted_objects: Gauge::default(),
            promoted_objects: Gauge::default(),
        };
        let r = registry;
        r.register("meridian_edge_requests", "Requests answered, by cache status (HIT, MISS, STALE, REVALIDATED, PASS, ERROR) and status class", m.requests.clone());
        r.register(
            "meridian_edge_body_bytes_sent",
            "Response body bytes handed to viewers, by cache status",
            m.body_bytes.clone(),
        );
        r.register(
            "meridian_edge_response_seconds",
            "Time from request to response headers, by cache status",
            m.latency.clone(),
        );
        r.register(
            "meridian_edge_origin_fetches",
            "Origin fetches, by outcome",
            m.origin_fetches.clone(),
        );
        r.register(
            "meridian_edge_coalesced_waiters",
            "Requests that joined an origin fetch already in flight",
            m.coalesced_waiters.clone(),
        );
        r.register(
            "meridian_edge_prefetches",
            "Prefetched segments, by outcome (issued, used, wasted)",
            m.prefetches.clone(),
        );
        r.register(
            "meridian_edge_requests_in_flight",
            "Responses in progress now (until the body is sent or dropped)",
            m.in_flight.clone(),
        );
        r.register(
            "meridian_edge_store_used_bytes",
            "Bytes of the store in use",
            m.store_used.clone(),
        );
        r.register(
            "meridian_edge_store_memory_bytes",
            "Bytes of hot bodies the store holds in memory (memory_cache)",
            m.store_memory.clone(),
        );
        r.register(
            "meridian_edge_store_capacity_bytes",
            "Size of the store",
            m.store_capacity.clone(),
        );
        r.register(
            "meridian_edge_store_objects",
            "Objects in the store",
            m.store_objects.clone(),
        );
        r.register(
            "meridian_edge_store_evicted_objects",
            "Objects evicted since start",
            m.evicted_objects.clone(),
        );
        r.register(
            "meridian_edge_store_reinserted_objects",
            "Objects moved to the main log's tail because they were read since last written, since start",
            m.reinserted_objects.clone(),
        );
        r.register(
            "meridian_edge_store_promoted_objects",
            "Objects moved from probation to the main log because they were read, since start",
            m.promoted_objects.clone(),
        );
        m
    }

    pub fn request_done(&self, cache: &'static str, status: http::StatusCode, seconds: f64) {
        let status_class = server_kit::cors::status_class(status);
        self.requests
            .get_or_create(&RequestLabels {
                cache,
                status_class,
            })
            .inc();
        self.latency
            .get_or_create(&CacheLabels { cache })
            .observe(seconds);
    }

    /// The counter that body bytes sent with `cache` status add to.
    pub fn bytes_sent(&self, cache: &'static str) -> Counter {
        self.body_bytes
            .get_or_create(&CacheLabels { cache })
            .clone()
    }

    pub fn origin_fetch(&self, outcome: &'static str) {
        self.origin_fetches
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn prefetch(&self, outcome: &'static str) {
        self.prefetches
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn store(&self, stats: &StoreStats) {
        self.store_used.set(stats.used as i64);
        self.store_memory.set(stats.memory as i64);
        self.store_capacity.set(stats.capacity as i64);
        self.store_objects.set(stats.objects as i64);
        self.evicted_objects.set(stats.evicted_objects as i64);
        self.reinserted_objects.set(stats.reinserted_objects as i64);
        self.promoted_objects.set(stats.promoted_objects as i64);
    }
}
