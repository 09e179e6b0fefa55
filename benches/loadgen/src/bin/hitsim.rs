//! `hitsim`: the hit ratio of the edge's store policy, LRU, S3-FIFO, the most popular objects
//! (the limit without knowledge of the future on independent requests) and Belady's optimum on
//! seeded traces at equal capacity. Prints one JSON object per trace. Objects are of one size,
//! so the byte hit ratio equals the object hit ratio.

use clap::Parser;
use loadgen::sim::{self, Belady, EdgeStore, Lru, MostPopular, Policy, S3Fifo};
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
    /// Objects the edge's small and main logs hold (their sizes / the edge's record size):
    /// the edge's real room, a little below `capacity` for the records' headers. Default: a
    /// tenth of `capacity` and the rest.
    #[arg(long)]
    edge_small: Option<usize>,
    #[arg(long)]
    edge_main: Option<usize>,
    /// Zipf requests.
    #[arg(long, default_value_t = 5000)]
    count: usize,
    /// Sessions, and their length (or, with `--abandon`, the chance to leave after each
    /// segment).
    #[arg(long, default_value_t = 500)]
    sessions: usize,
    #[arg(long, default_value_t = 10)]
    length: usize,
    #[arg(long)]
    abandon: Option<f64>,
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
    let sessions = match cli.abandon {
        Some(p) => trace::abandoning_sessions(catalogue, 0.8, cli.sessions, p, cli.seed),
        None => trace::sessions(catalogue, 0.8, cli.sessions, cli.length, cli.seed),
    };
    let session_name = match cli.abandon {
        Some(p) => format!("sessions, {p} abandon per segment"),
        None => format!("sessions of {}", cli.length),
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
            session_name,
            objects(trace::interleave(&sessions, cli.concurrency)),
        ),
    ];
    let (small, main) = match (cli.edge_small, cli.edge_main) {
        (Some(small), Some(main)) => (small, main),
        _ => (cli.capacity / 10, cli.capacity - cli.capacity / 10),
    };
    for (name, t) in traces {
        let mut policies: Vec<Box<dyn Policy>> = vec![
            Box::new(EdgeStore::new(small, main)),
            Box::new(Lru::new(cli.capacity)),
            Box::new(S3Fifo::new(cli.capacity)),
            Box::new(MostPopular::new(cli.capacity, &t)),
            Box::new(Belady::new(cli.capacity, &t)),
        ];
        let ratios: serde_json::Map<String, serde_json::Value> = policies
            .iter_mut()
            .map(|p| (p.name().to_owned(), json!(sim::hit_ratio(p.as_mut(), &t))))
            .collect();
        println!(
            "{}",
            json!({
                "trace": name,
                "requests": t.len(),
                "objects": catalogue.objects(),
                "capacity_objects": cli.capacity,
                "edge_objects": [small, main],
                "hit_ratio": ratios,
            })
        );
    }
}

fn objects(requests: Vec<trace::Request>) -> Vec<usize> {
    requests.into_iter().filter_map(|r| r.object).collect()
}
