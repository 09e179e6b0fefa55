//! The edge's load: what it carries now, as moving averages over about a second, against what
//! it is sized for (`[load]` in its config). The router routes by the one number, the largest
//! of three ratios:
//! - egress: bits per second written to viewers' connections (headers, bodies, TLS framing),
//!   over `egress_mbps`;
//! - connections: viewers' connections open, over `connections`;
//! - responses: responses in progress (a body still being sent counts), over `responses`.
//!
//! A cache hit is over in microseconds but its body may take seconds to send: egress and the
//! responses still sending are what fill an edge that serves video, not requests waiting for
//! headers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use std::sync::atomic::AtomicU64;

/// What an edge is sized for (`[load]`). Every value must be above zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Capacity {
    /// Egress bandwidth, megabits per second (10^6 bits).
    pub egress_mbps: u64,
    /// Viewers' connections open at once.
    pub connections: u64,
    /// Responses in progress at once, bodies still being sent included.
    pub responses: u64,
}

impl Default for Capacity {
    fn default() -> Self {
        Self {
            egress_mbps: 1000,
            connections: 10_000,
            responses: 1000,
        }
    }
}

/// The averages now, and the load they make.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Now {
    pub egress_bits_per_second: f64,
    pub connections: f64,
    pub responses: f64,
    /// The largest of the three ratios to capacity (1.0: full).
    pub load: f64,
}

impl Now {
    fn of(
        capacity: &Capacity,
        egress_bits_per_second: f64,
        connections: f64,
        responses: f64,
    ) -> Self {
        let ratio = |value: f64, of: u64| value / of.max(1) as f64;
        let load = ratio(
            egress_bits_per_second,
            capacity.egress_mbps.saturating_mul(1_000_000),
        )
        .max(ratio(connections, capacity.connections))
        .max(ratio(responses, capacity.responses));
        Self {
            egress_bits_per_second,
            connections,
            responses,
            load,
        }
    }
}

/// How often the meter samples its sources.
const SAMPLE: Duration = Duration::from_millis(100);
/// The averages' time constant: a step in traffic shows 63% after this long, 95% after three.
const TAU: Duration = Duration::from_secs(1);

/// Where the meter reads: the viewers' listeners (bytes written, connections open) and the
/// gauge of responses in progress.
#[derive(Debug)]
pub struct Sources {
    pub listeners: Vec<server_kit::connection::Metrics>,
    pub responses: Gauge,
}

impl Sources {
    fn read(&self) -> (u64, f64, f64) {
        let bytes = self.listeners.iter().map(|l| l.bytes_written()).sum();
        let open: i64 = self.listeners.iter().map(|l| l.open_now()).sum();
        (
            bytes,
            open.max(0) as f64,
            self.responses.get().max(0) as f64,
        )
    }
}

/// The edge's load meter: sampled by [`Meter::run`], read by `/status` and `/metrics`.
#[derive(Debug)]
pub struct Meter {
    capacity: Capacity,
    now: Mutex<Now>,
    gauges: Gauges,
}

#[derive(Debug, Default)]
struct Gauges {
    load: Gauge<f64, AtomicU64>,
    egress: Gauge<f64, AtomicU64>,
    connections: Gauge<f64, AtomicU64>,
    responses: Gauge<f64, AtomicU64>,
}

impl Meter {
    pub fn new(capacity: Capacity, registry: &mut Registry) -> Arc<Self> {
        let gauges = Gauges::default();
        registry.register(
            "meridian_edge_load",
            "Load: the largest of egress, connections and responses in progress over their [load] capacity, averaged over about 1 s",
            gauges.load.clone(),
        );
        registry.register(
            "meridian_edge_egress_bits_per_second",
            "Bits per second written to viewers' connections, averaged over about 1 s",
            gauges.egress.clone(),
        );
        registry.register(
            "meridian_edge_viewer_connections",
            "Viewers' connections open, averaged over about 1 s",
            gauges.connections.clone(),
        );
        registry.register(
            "meridian_edge_responses_in_progress",
            "Responses in progress (bodies being sent included), averaged over about 1 s",
            gauges.responses.clone(),
        );
        Arc::new(Self {
            capacity,
            now: Mutex::new(Now::default()),
            gauges,
        })
    }

    pub fn capacity(&self) -> Capacity {
        self.capacity
    }

    pub fn now(&self) -> Now {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Samples `sources` every 100 ms until the task is dropped.
    pub async fn run(self: Arc<Self>, sources: Sources) {
        let mut ticks = tokio::time::interval(SAMPLE);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let mut average = Average::new(sources.read(), tokio::time::Instant::now());
        loop {
            ticks.tick().await;
            let now = average.sample(sources.read(), tokio::time::Instant::now());
            let now = Now::of(&self.capacity, now.0, now.1, now.2);
            self.gauges.load.set(now.load);
            self.gauges.egress.set(now.egress_bits_per_second);
            self.gauges.connections.set(now.connections);
            self.gauges.responses.set(now.responses);
            *self.now.lock().unwrap_or_else(|p| p.into_inner()) = now;
        }
    }
}

/// Exponentially weighted moving averages of the egress rate and the two counts, weighted by
/// the time between samples (a late tick counts for the time it covers).
struct Average {
    bytes: u64,
    at: tokio::time::Instant,
    bits_per_second: f64,
    connections: f64,
    responses: f64,
}

impl Average {
    fn new((bytes, connections, responses): (u64, f64, f64), at: tokio::time::Instant) -> Self {
        Self {
            bytes,
            at,
            bits_per_second: 0.0,
            connections,
            responses,
        }
    }

    fn sample(
        &mut self,
        (bytes, connections, responses): (u64, f64, f64),
        at: tokio::time::Instant,
    ) -> (f64, f64, f64) {
        let dt = at.duration_since(self.at).as_secs_f64();
        if dt <= 0.0 {
            return (self.bits_per_second, self.connections, self.responses);
        }
        let rate = bytes.saturating_sub(self.bytes) as f64 * 8.0 / dt;
        let alpha = 1.0 - (-dt / TAU.as_secs_f64()).exp();
        self.bits_per_second += alpha * (rate - self.bits_per_second);
        self.connections += alpha * (connections - self.connections);
        self.responses += alpha * (responses - self.responses);
        self.bytes = bytes;
        self.at = at;
        (self.bits_per_second, self.connections, self.responses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_is_the_largest_ratio() {
        let capacity = Capacity {
            egress_mbps: 100,
            connections: 1000,
            responses: 10,
        };
        let now = Now::of(&capacity, 50e6, 100.0, 2.0);
        assert_eq!(now.load, 0.5);
        assert_eq!(Now::of(&capacity, 1e6, 900.0, 2.0).load, 0.9);
        assert_eq!(Now::of(&capacity, 1e6, 10.0, 10.0).load, 1.0);
    }

    #[test]
    fn a_steady_rate_is_reached_in_about_three_time_constants() {
        let start = tokio::time::Instant::now();
        let mut average = Average::new((0, 0.0, 0.0), start);
        // 1 MB every 100 ms: 80 Mbit/s.
        let mut last = (0.0, 0.0, 0.0);
        for i in 1..=30u64 {
            last = average.sample(
                (i * 1_000_000, 10.0, 4.0),
                start + Duration::from_millis(100 * i),
            );
        }
        assert!((last.0 / 80e6 - 1.0).abs() < 0.06, "{last:?}");
        assert!((last.1 / 10.0 - 1.0).abs() < 0.06, "{last:?}");
        // One long gap counts for the time it covers, not as one tick.
        let after = average.sample((31_000_000, 0.0, 0.0), start + Duration::from_secs(13));
        assert!(after.1 < 0.01 && after.0 < 1e6, "{after:?}");
    }
}
