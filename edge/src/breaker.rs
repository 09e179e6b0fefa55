//! Origin health, as the edge sees it from its own requests: a circuit breaker per origin. An
//! origin that failed (no connection, no headers in time, a 5xx) is skipped for a backoff
//! window that doubles with each failure in a row (1 s up to 30 s); when the window is over,
//! one request is let through as a probe (half-open) while the others still skip it; a success
//! closes the breaker. When every origin is skipped, they are all tried anyway: a request is
//! never refused only because of what earlier ones saw.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The breakers of a list of origins.
#[derive(Debug)]
pub struct Breakers {
    states: Mutex<Vec<State>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

/// What to do with one origin for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Healthy: send.
    Try,
    /// The window is over: this request is the probe.
    Probe,
    /// Open: skip it.
    Skip,
}

impl Breakers {
    pub fn new(origins: usize) -> Self {
        Self {
            states: Mutex::new(vec![State::default(); origins]),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<State>> {
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True while origin `i` is to be skipped (its window runs, or another request probes it).
    /// Unlike [`Breakers::verdict`], asking claims nothing.
    pub fn is_open(&self, i: usize) -> bool {
        let states = self.lock();
        let state = &states[i];
        state
            .open_until
            .is_some_and(|until| Instant::now() < until || state.probing)
    }

    /// Whether to send to origin `i` now; past its window, the caller becomes its probe.
    pub fn verdict(&self, i: usize) -> Verdict {
        let mut states = self.lock();
        let state = &mut states[i];
        match state.open_until {
            None => Verdict::Try,
            Some(until) if Instant::now() < until || state.probing => Verdict::Skip,
            Some(_) => {
                state.probing = true;
                Verdict::Probe
            }
        }
    }

    /// Origin `i` answered well.
    pub fn success(&self, i: usize) {
        self.lock()[i] = State::default();
    }

    /// Origin `i` failed (or hung): open its breaker for the next window.
    pub fn failure(&self, i: usize) {
        let mut states = self.lock();
        let state = &mut states[i];
        state.failures = state.failures.saturating_add(1);
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << (state.failures - 1).min(5))
            .min(MAX_BACKOFF);
        state.open_until = Some(Instant::now() + backoff);
        state.probing = false;
    }

    /// A probe that ended without a verdict (the request was dropped): let another one try.
    pub fn abandon_probe(&self, i: usize) {
        self.lock()[i].probing = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn open_half_open_closed() {
        let b = Breakers::new(2);
        assert_eq!(b.verdict(0), Verdict::Try);
        b.failure(0);
        assert_eq!(b.verdict(0), Verdict::Skip, "open for a second");
        assert_eq!(b.verdict(1), Verdict::Try, "the others are not touched");
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(!b.is_open(0) && !b.is_open(0), "asking claims no probe");
        assert_eq!(b.verdict(0), Verdict::Probe, "one probe after the window");
        assert!(b.is_open(0), "skipped by others while it is probed");
        assert_eq!(b.verdict(0), Verdict::Skip, "and only one");
        b.failure(0);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(b.verdict(0), Verdict::Skip, "the window doubled to 2 s");
        tokio::time::advance(Duration::from_millis(600)).await;
        assert_eq!(b.verdict(0), Verdict::Probe);
        b.success(0);
        assert_eq!(b.verdict(0), Verdict::Try, "closed again");
        for _ in 0..20 {
            b.failure(1);
        }
        tokio::time::advance(MAX_BACKOFF).await;
        assert_eq!(
            b.verdict(1),
            Verdict::Probe,
            "the window stops growing at 30 s"
        );
    }
}
