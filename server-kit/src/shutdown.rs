//! Shutdown: SIGTERM drains, SIGINT stops.
//!
//! A [`Shutdown`] is a pair of cancellation tokens. *Drain* means: stop accepting, let every
//! in-flight response finish (bounded by a grace period), report not-ready. *Stop* means: exit
//! now. Stopping implies draining, so code that waits for a drain also wakes on a stop. `run`
//! functions take a `Shutdown` and never install signal handlers themselves; `main` does, with
//! [`Shutdown::on_signals`], and tests call [`Shutdown::drain`] or [`Shutdown::stop`].

use tokio_util::sync::CancellationToken;

use crate::Error;

/// Cloneable handle to the process's shutdown state.
#[derive(Debug, Clone)]
pub struct Shutdown {
    stop: CancellationToken,
    drain: CancellationToken,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A handle that is neither draining nor stopped.
    pub fn new() -> Self {
        let stop = CancellationToken::new();
        let drain = stop.child_token();
        Self { stop, drain }
    }

    /// Begins a graceful drain.
    pub fn drain(&self) {
        self.drain.cancel();
    }

    /// Stops at once (and therefore drains too).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// True once a drain or a stop has begun.
    pub fn is_draining(&self) -> bool {
        self.drain.is_cancelled()
    }

    /// Completes when a drain (or a stop) begins.
    pub async fn draining(&self) {
        self.drain.cancelled().await;
    }

    /// Completes when a stop begins.
    pub async fn stopped(&self) {
        self.stop.cancelled().await;
    }

    /// Installs the process's signal handlers: the first SIGTERM drains, a second SIGTERM or any
    /// SIGINT stops. Must be called inside a tokio runtime.
    pub fn on_signals(&self) -> Result<(), Error> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(Error::Signals)?;
        let mut int = signal(SignalKind::interrupt()).map_err(Error::Signals)?;
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => {
                        if this.is_draining() {
                            tracing::info!("second SIGTERM: stopping now");
                            this.stop();
                            return;
                        }
                        tracing::info!("SIGTERM: draining");
                        this.drain();
                    }
                    _ = int.recv() => {
                        tracing::info!("SIGINT: stopping");
                        this.stop();
                        return;
                    }
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_implies_drain() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.is_draining());
        shutdown.stop();
        shutdown.draining().await;
        assert!(shutdown.is_draining());
    }

    #[tokio::test]
    async fn drain_does_not_stop() {
        let shutdown = Shutdown::new();
        shutdown.drain();
        assert!(shutdown.is_draining());
        assert!(!shutdown.stop.is_cancelled());
    }
}
