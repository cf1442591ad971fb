//! The systemd service manager protocol (`sd_notify`): readiness, status lines, reload/stop notices and
//! watchdog keep-alives, sent as datagrams to `$NOTIFY_SOCKET`. Outside systemd (no socket) every call is
//! a no-op, so the daemon runs the same from a terminal.
//!
//! Written against the protocol described in `sd_notify(3)` rather than linking libsystemd: it is one
//! datagram per message, and the agent must not depend on a C library for it.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A connection to the service manager, if the agent runs under one.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` (honouring `$WATCHDOG_PID`). A socket that cannot be
    /// opened is logged once and treated as absent.
    pub fn from_env() -> Self {
        let socket = std::env::var("NOTIFY_SOCKET").ok().filter(|s| !s.is_empty()).and_then(|path| match connect(&path) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(socket = %path, error = %e, "cannot open the systemd notification socket");
                None
            }
        });
        let for_us = std::env::var("WATCHDOG_PID").ok().and_then(|p| p.parse::<u32>().ok()).is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC").ok().and_then(|v| v.parse::<u64>().ok()).filter(|&us| us > 0 && for_us).map(Duration::from_micros);
        Self { socket, watchdog }
    }

    /// The watchdog interval systemd expects keep-alives within, when it set one.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    pub fn is_active(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends newline-separated `KEY=value` assignments; failures are logged at debug level (systemd may
    /// be restarting) and never stop the agent.
    pub fn send(&self, state: &str) {
        let Some((socket, addr)) = &self.socket else { return };
        if let Err(e) = socket.send_to_addr(state.as_bytes(), addr) {
            tracing::debug!(error = %e, "systemd notification not sent");
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// Announces a reload; [`Notifier::ready`] ends it.
    pub fn reloading(&self) {
        self.send("RELOADING=1\nSTATUS=reloading configuration");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    pub fn keep_alive(&self) {
        self.send("WATCHDOG=1");
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

fn connect(path: &str) -> std::io::Result<(UnixDatagram, SocketAddr)> {
    let addr = if let Some(name) = path.strip_prefix('@') { abstract_addr(name.as_bytes())? } else { SocketAddr::from_pathname(path)? };
    Ok((UnixDatagram::unbound()?, addr))
}

#[cfg(target_os = "linux")]
fn abstract_addr(name: &[u8]) -> std::io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_addr(_name: &[u8]) -> std::io::Result<SocketAddr> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "abstract sockets need Linux"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_a_path_socket() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).expect("bind");
        let (socket, addr) = connect(path.to_str().expect("utf-8 path")).expect("connect");
        let n = Notifier { socket: Some((socket, addr)), watchdog: None };
        n.ready("2 cameras\nonline");
        let mut buf = [0u8; 256];
        let len = server.recv(&mut buf).expect("recv");
        assert_eq!(std::str::from_utf8(&buf[..len]).expect("utf-8"), "READY=1\nSTATUS=2 cameras online");
    }

    #[test]
    fn abstract_socket_names_are_supported() {
        let name = format!("edge-agent-test-{}", std::process::id());
        let server = UnixDatagram::bind_addr(&abstract_addr(name.as_bytes()).expect("addr")).expect("bind");
        let (socket, addr) = connect(&format!("@{name}")).expect("connect");
        Notifier { socket: Some((socket, addr)), watchdog: None }.keep_alive();
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }

    #[test]
    fn without_a_socket_nothing_happens() {
        let n = Notifier { socket: None, watchdog: None };
        n.ready("x");
        assert!(!n.is_active());
    }
}
