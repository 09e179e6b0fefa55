//! The geo-router's Prometheus metrics. Labels are bounded: query type, result, region (from the
//! topology), probe outcome, purge outcome.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    qtype: &'static str,
    result: &'static str,
    region: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabels {
    path: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    endpoint: &'static str,
}

/// Handles to the router's metrics; cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    queries: Family<QueryLabels, Counter>,
    decision: Histogram,
    probes: Family<OutcomeLabels, Counter>,
    api: Family<ApiLabels, Counter>,
    purges: Family<OutcomeLabels, Counter>,
    dns_paths: Family<PathLabels, Counter>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            queries: Family::default(),
            decision: Histogram::new(exponential_buckets(0.000_001, 2.0, 20)),
            probes: Family::default(),
            api: Family::default(),
            purges: Family::default(),
            dns_paths: Family::default(),
        };
        registry.register(
            "meridian_router_dns_queries",
            "DNS queries, by type, result and region answered",
            m.queries.clone(),
        );
        registry.register(
            "meridian_router_decision_seconds",
            "Time to choose edges for one client (the DNS UDP path times one of its decisions in 64, so the count is not the number of decisions)",
            m.decision.clone(),
        );
        registry.register(
            "meridian_router_probes",
            "Edge probes, by outcome",
            m.probes.clone(),
        );
        registry.register(
            "meridian_router_api_requests",
            "HTTP API requests, by endpoint",
            m.api.clone(),
        );
        registry.register(
            "meridian_router_purges",
            "Fleet purges: taken here, copies taken from peers, pushes to edges sent and failed",
            m.purges.clone(),
        );
        registry.register(
            "meridian_router_dns_udp_answers",
            "UDP answers by how they were made: a kept encoding patched (cached), encoded by \
             hickory from the usual query (encoded), or the query read by hickory (full)",
            m.dns_paths.clone(),
        );
        m
    }

    /// The counter [`Metrics::query`] increments for these labels, to keep and increment
    /// without a lookup.
    pub fn query_counter(
        &self,
        qtype: &'static str,
        result: &'static str,
        region: &str,
    ) -> Counter {
        self.queries
            .get_or_create(&QueryLabels {
                qtype,
                result,
                region: region.to_owned(),
            })
            .clone()
    }

    /// `path`: "cached", "encoded" or "full".
    pub fn dns_path(&self, path: &'static str) -> Counter {
        self.dns_paths.get_or_create(&PathLabels { path }).clone()
    }

    /// `outcome`: "taken", "copy_taken", "pushed" or "push_failed".
    pub fn purge(&self, outcome: &'static str) {
        self.purges.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// `region` must come from the topology (bounded), or be empty.
    pub fn query(&self, qtype: &'static str, result: &'static str, region: &str) {
        self.queries
            .get_or_create(&QueryLabels {
                qtype,
                result,
                region: region.to_owned(),
            })
            .inc();
    }

    pub fn decision(&self, seconds: f64) {
        self.decision.observe(seconds);
    }

    pub fn probe(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.probes.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn api(&self, endpoint: &'static str) {
        self.api.get_or_create(&ApiLabels { endpoint }).inc();
    }
}
