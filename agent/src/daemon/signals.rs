//! SIGTERM, SIGINT and SIGHUP, listened for from the moment the runtime starts.

use anyhow::Context;

/// What a signal asks the daemon to do.
pub enum Signal {
    Stop,
    Reload,
}

/// SIGTERM, SIGINT and SIGHUP, listened for from the moment the runtime starts.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            hup: signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?,
        })
    }

    pub async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => { tracing::info!("SIGTERM received"); Signal::Stop }
            _ = self.int.recv() => { tracing::info!("SIGINT received"); Signal::Stop }
            _ = self.hup.recv() => Signal::Reload,
        }
    }

    /// Waits for a stop signal; a SIGHUP before the agent is running has nothing to reload and is ignored
    /// (the configuration is being read anyway).
    pub async fn stop(&mut self) {
        while let Signal::Reload = self.next().await {
            tracing::info!("SIGHUP during start-up ignored: the configuration is being loaded now");
        }
    }
}
