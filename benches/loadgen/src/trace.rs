//! The synthetic catalogue and the request traces replayed against every server and every
//! simulated policy. Seeded: the same arguments give the same sequence.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

/// `titles` titles of `segments` segments each, under `vod/bench/`.
#[derive(Debug, Clone, Copy)]
pub struct Catalogue {
    pub titles: usize,
    pub segments: usize,
}

impl Catalogue {
    pub fn objects(&self) -> usize {
        self.titles * self.segments
    }

    /// The path of object `i` (title-major).
    pub fn segment_path(&self, i: usize) -> String {
        format!(
            "/vod/bench/t{:03}/seg_{:05}.m4s",
            i / self.segments,
            i % self.segments
        )
    }

    pub fn playlist_path(&self, title: usize) -> String {
        format!("/vod/bench/t{title:03}/index.m3u8")
    }
}

/// One request of a trace: a path, and the object it is (None for playlists, which the
/// simulator leaves out: they are tiny and short-lived).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub path: String,
    pub object: Option<usize>,
}

/// `requests` segment requests, Zipf(`alpha`) over the catalogue's objects in a random rank
/// order (popularity is not tied to title or position).
pub fn zipf(catalogue: Catalogue, alpha: f64, requests: usize, seed: u64) -> Vec<Request> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = catalogue.objects();
    let mut rank_to_object: Vec<usize> = (0..n).collect();
    rank_to_object.shuffle(&mut rng);
    let zipf = Zipf::new(n as f64, alpha).expect("Zipf parameters");
    (0..requests)
        .map(|_| {
            let rank = zipf.sample(&mut rng) as usize - 1;
            let object = rank_to_object[rank.min(n - 1)];
            Request {
                path: catalogue.segment_path(object),
                object: Some(object),
            }
        })
        .collect()
}

/// The same sessions with CMCD on: each segment request names its title's next segment
/// (`nor`, relative to the request, in the `CMCD` query parameter), the last one none.
pub fn with_cmcd(catalogue: Catalogue, sessions: Vec<Vec<Request>>) -> Vec<Vec<Request>> {
    sessions
        .into_iter()
        .map(|session| {
            session
                .into_iter()
                .map(|request| match request.object {
                    Some(object) if (object + 1) % catalogue.segments != 0 => {
                        let next = catalogue.segment_path(object + 1);
                        let name = next.rsplit('/').next().unwrap_or(&next);
                        Request {
                            path: format!("{}?CMCD=nor%3D%22{name}%22%2Cot%3Dv", request.path),
                            object: request.object,
                        }
                    }
                    _ => request,
                })
                .collect()
        })
        .collect()
}

/// Viewing sessions, each a list of requests played in order: a title chosen by Zipf(`alpha`)
/// over titles, its playlist, then `length` consecutive segments from a random start (wrapping
/// round). Sessions are independent, so a load tool runs several at once.
pub fn sessions(
    catalogue: Catalogue,
    alpha: f64,
    count: usize,
    length: usize,
    seed: u64,
) -> Vec<Vec<Request>> {
    viewing(catalogue, alpha, count, seed, |rng| {
        let start = rng.random_range(0..catalogue.segments);
        (start, length.min(catalogue.segments))
    })
}

/// Viewing sessions that start at a title's first segment (title by Zipf(`alpha`)), after its
/// playlist, where the viewer leaves after each segment with probability `abandon`: a
/// geometric number of segments, mean 1/`abandon`, up to the title's end.
pub fn abandoning_sessions(
    catalogue: Catalogue,
    alpha: f64,
    count: usize,
    abandon: f64,
    seed: u64,
) -> Vec<Vec<Request>> {
    viewing(catalogue, alpha, count, seed, |rng| {
        let watched = (1..=catalogue.segments)
            .find(|_| rng.random_bool(abandon))
            .unwrap_or(catalogue.segments);
        (0, watched)
    })
}

/// `count` sessions of a title chosen by Zipf(`alpha`): its playlist, then the segments
/// `plan` picks (a start and how many, wrapping round the title).
fn viewing(
    catalogue: Catalogue,
    alpha: f64,
    count: usize,
    seed: u64,
    plan: impl Fn(&mut StdRng) -> (usize, usize),
) -> Vec<Vec<Request>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let zipf = Zipf::new(catalogue.titles as f64, alpha).expect("Zipf parameters");
    (0..count)
        .map(|_| {
            let title = (zipf.sample(&mut rng) as usize - 1).min(catalogue.titles - 1);
            let (start, length) = plan(&mut rng);
            let mut session = vec![Request {
                path: catalogue.playlist_path(title),
                object: None,
            }];
            for k in 0..length {
                let object = title * catalogue.segments + (start + k) % catalogue.segments;
                session.push(Request {
                    path: catalogue.segment_path(object),
                    object: Some(object),
                });
            }
            session
        })
        .collect()
}

/// The sessions in the order a server sees them when `concurrency` viewers play at once, each
/// taking the next session when it finishes one (round-robin interleaving, the simulator's view).
pub fn interleave(sessions: &[Vec<Request>], concurrency: usize) -> Vec<Request> {
    let mut out = Vec::new();
    let mut queue = sessions.iter();
    let mut playing: Vec<std::slice::Iter<'_, Request>> =
        queue.by_ref().take(concurrency).map(|s| s.iter()).collect();
    while !playing.is_empty() {
        let mut i = 0;
        while i < playing.len() {
            match playing[i].next() {
                Some(r) => {
                    out.push(r.clone());
                    i += 1;
                }
                None => match queue.next() {
                    Some(next) => playing[i] = next.iter(),
                    None => drop(playing.remove(i)),
                },
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAT: Catalogue = Catalogue {
        titles: 10,
        segments: 20,
    };

    #[test]
    fn zipf_is_seeded_and_skewed() {
        let a = zipf(CAT, 1.0, 5000, 7);
        assert_eq!(a, zipf(CAT, 1.0, 5000, 7));
        let mut counts = vec![0usize; CAT.objects()];
        for r in &a {
            counts[r.object.expect("segment")] += 1;
        }
        counts.sort_unstable_by(|x, y| y.cmp(x));
        assert!(
            counts[0] > 10 * counts[100],
            "the head is far hotter than the tail"
        );
    }

    #[test]
    fn sessions_play_consecutive_segments_after_the_playlist() {
        let s = sessions(CAT, 0.8, 5, 4, 1);
        for session in &s {
            assert!(session[0].path.ends_with("index.m3u8"));
            let objects: Vec<usize> = session[1..].iter().filter_map(|r| r.object).collect();
            assert_eq!(objects.len(), 4);
            for w in objects.windows(2) {
                assert!(w[1] == w[0] + 1 || w[1] % CAT.segments == 0);
            }
        }
        let all = interleave(&s, 2);
        assert_eq!(all.len(), 25, "every request once");
        let left = abandoning_sessions(CAT, 0.8, 2000, 0.25, 3);
        let mean = left.iter().map(|s| s.len() - 1).sum::<usize>() as f64 / 2000.0;
        assert!(
            (3.0..5.0).contains(&mean),
            "about 1/0.25 segments each: {mean}"
        );
        assert!(
            left.iter()
                .all(|s| s[1].object.unwrap() % CAT.segments == 0)
        );
    }
}
