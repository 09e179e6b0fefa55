//! `hitsim`: the hit ratio of the edge's region LRU (with and without reinsertion), LRU, S3-FIFO
//! and Belady's optimum on the benchmark's traces at equal capacity. Prints one JSON object per
//! trace.

use clap::Parser;
use loadgen::sim::{self, Belady, Lru, Policy, RegionLru, S3Fifo};
use loadgen::trace::{self, Catalogue};
use serde_json::json;

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value_t = 40)]
    titles: usize,
    #[arg(long, default_value_t = 25)]
    segments: usize,
    /// Cache capacity in objects (bytes / object size).
    #[arg(long)]
    capacity: usize,
    /// Objects a store region holds (the edge's region size / record size).
    #[arg(long)]
    per_region: usize,
    /// Regions in the edge's store (capacity / region size): with the per-region count, the
    /// edge's real room, a little below `capacity` for the records' headers.
    #[arg(long)]
    regions: usize,
    /// Zipf requests.
    #[arg(long, default_value_t = 5000)]
    count: usize,
    /// Sessions and their length.
    #[arg(long, default_value_t = 500)]
    sessions: usize,
    #[arg(long, default_value_t = 10)]
    length: usize,
    /// Viewers playing at once (how sessions interleave).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() {
    let cli = Cli::parse();
    let catalogue = Catalogue {
        titles: cli.titles,
        segments: cli.segments,
    };
    let traces: Vec<(String, Vec<usize>)> = vec![
        (
            "zipf α=0.8".into(),
            objects(trace::zipf(catalogue, 0.8, cli.count, cli.seed)),
        ),
        (
            "zipf α=1.0".into(),
            objects(trace::zipf(catalogue, 1.0, cli.count, cli.seed)),
        ),
        (
            "sessions".into(),
            objects(trace::interleave(
                &trace::sessions(catalogue, 0.8, cli.sessions, cli.length, cli.seed),
                cli.concurrency,
            )),
        ),
    ];
    for (name, t) in traces {
        let regions = cli.regions;
        let mut policies: Vec<Box<dyn Policy>> = vec![
            Box::new(RegionLru::with_reinsertion(regions, cli.per_region)),
            Box::new(RegionLru::new(regions, cli.per_region)),
            Box::new(Lru::new(cli.capacity)),
            Box::new(S3Fifo::new(cli.capacity)),
            Box::new(Belady::new(cli.capacity, &t)),
        ];
        let ratios: serde_json::Map<String, serde_json::Value> = policies
            .iter_mut()
            .map(|p| (p.name().to_owned(), json!(sim::hit_ratio(p.as_mut(), &t))))
            .collect();
        println!(
            "{}",
            json!({"trace": name, "requests": t.len(), "capacity_objects": cli.capacity, "hit_ratio": ratios})
        );
    }
}

fn objects(requests: Vec<trace::Request>) -> Vec<usize> {
    requests.into_iter().filter_map(|r| r.object).collect()
}
