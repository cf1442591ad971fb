//! The MQTT link to the town platform. One task owns the rumqttc event loop: it `select!`s between shutdown,
//! status changes and `poll()`, backs off after connection errors, and is the only place that sees
//! acknowledgements. Everyone else publishes through the cloneable [`MqttLink`] without awaiting the loop.

pub mod topics;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edge_config::{Mqtt, Site};
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::payload::AgentState;
use crate::source::Backoff;
pub use topics::Topics;

/// Why the link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("mqtt.password_file {path}: {source}")]
    PasswordFile { path: String, source: std::io::Error },
    #[error("mqtt.password_env: environment variable {name} is not set")]
    PasswordEnv { name: String },
}

/// Builds the status payload for a given agent state.
pub type StatusFn = Arc<dyn Fn(AgentState) -> Vec<u8> + Send + Sync>;

/// A cheap, cloneable handle for publishing.
#[derive(Clone)]
pub struct MqttLink {
    client: AsyncClient,
    topics: Topics,
    connected: Arc<AtomicBool>,
    status_changed: Arc<Notify>,
}

impl MqttLink {
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Queues a best-effort QoS 0 message. Returns `false` (dropped) when disconnected or the client queue
    /// is full: such messages are only useful live.
    pub fn publish_lossy(&self, topic: String, payload: Vec<u8>) -> bool {
        self.is_connected() && self.client.try_publish(topic, QoS::AtMostOnce, false, payload).is_ok()
    }

    /// Queues a QoS 1 message (events, snapshots). Returns `false` when the client queue is full.
    pub fn publish_reliable(&self, topic: String, payload: Vec<u8>) -> bool {
        self.client.try_publish(topic, QoS::AtLeastOnce, false, payload).is_ok()
    }

    /// Asks the link to republish the retained status (a camera changed state).
    pub fn status_changed(&self) {
        self.status_changed.notify_one();
    }
}

/// Resolves the broker password from whichever source the config names.
fn password(settings: &Mqtt) -> Result<Option<String>, MqttError> {
    if let Some(p) = &settings.password {
        return Ok(Some(p.expose().to_string()));
    }
    if let Some(path) = &settings.password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|source| MqttError::PasswordFile { path: path.display().to_string(), source })?;
        return Ok(Some(text.lines().next().unwrap_or_default().to_string()));
    }
    if let Some(name) = &settings.password_env {
        return std::env::var(name).map(Some).map_err(|_| MqttError::PasswordEnv { name: name.clone() });
    }
    Ok(None)
}

/// Connects (in the background) and returns the link plus the task that owns the event loop. The task
/// publishes `online` on every connection, republishes the status when asked, and on `cancel` publishes
/// `stopped`, waits for its acknowledgement (up to `stop_timeout`) and disconnects cleanly.
pub fn start(
    settings: &Mqtt,
    site: &Site,
    status: StatusFn,
    cancel: CancellationToken,
    stop_timeout: Duration,
) -> Result<(MqttLink, tokio::task::JoinHandle<()>), MqttError> {
    let topics = Topics::new(&settings.topic_prefix, site);
    let mut options = MqttOptions::new(settings.client_id_for(site), settings.host.clone(), settings.port);
    options.set_keep_alive(Duration::from_secs(settings.keep_alive_secs));
    options.set_clean_session(true);
    options.set_max_packet_size(1 << 20, 8 << 20);
    options.set_last_will(LastWill::new(topics.status(), status(AgentState::Offline), QoS::AtLeastOnce, true));
    if let Some(user) = &settings.username {
        options.set_credentials(user.clone(), password(settings)?.unwrap_or_default());
    }
    let (client, eventloop) = AsyncClient::new(options, 256);
    let link = MqttLink { client, topics, connected: Arc::new(AtomicBool::new(false)), status_changed: Arc::new(Notify::new()) };
    let broker = format!("{}:{}", settings.host, settings.port);
    let task = tokio::spawn(drive(eventloop, link.clone(), status, cancel, stop_timeout, broker));
    Ok((link, task))
}

async fn drive(
    mut eventloop: EventLoop,
    link: MqttLink,
    status: StatusFn,
    cancel: CancellationToken,
    stop_timeout: Duration,
    broker: String,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let publish_status = |state: AgentState| {
        if let Err(e) = link.client.try_publish(link.topics.status(), QoS::AtLeastOnce, true, status(state)) {
            tracing::warn!(error = %e, "cannot queue status message");
        }
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = link.status_changed.notified(), if link.is_connected() => publish_status(AgentState::Online),
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    tracing::info!(broker = %broker, "connected to MQTT broker");
                    link.connected.store(true, Ordering::Relaxed);
                    backoff.reset();
                    publish_status(AgentState::Online);
                }
                Ok(_) => {}
                Err(e) => {
                    let was_connected = link.connected.swap(false, Ordering::Relaxed);
                    let delay = backoff.next_delay();
                    if was_connected {
                        tracing::warn!(broker = %broker, error = %e, "MQTT connection lost");
                    } else {
                        tracing::warn!(broker = %broker, error = %e, retry_in_s = format!("{:.1}", delay.as_secs_f64()), "cannot connect to MQTT broker");
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }
    if link.is_connected() {
        stop_cleanly(&mut eventloop, &link, &status, stop_timeout).await;
    }
}

/// Publishes the retained `stopped` status, waits for its PUBACK, then disconnects (so the broker does not
/// fire the last will).
async fn stop_cleanly(eventloop: &mut EventLoop, link: &MqttLink, status: &StatusFn, timeout: Duration) {
    if link.client.try_publish(link.topics.status(), QoS::AtLeastOnce, true, status(AgentState::Stopped)).is_err() {
        return;
    }
    let outcome = tokio::time::timeout(timeout, async {
        // Everything queued before the status (and the status itself) goes out in order; the status is the
        // last QoS 1 publish, so its packet id is the last one seen going out.
        let mut status_pkid = None;
        let mut disconnect_sent = false;
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) if pkid != 0 => status_pkid = Some(pkid),
                Ok(Event::Incoming(Packet::PubAck(ack))) if Some(ack.pkid) == status_pkid && !disconnect_sent => {
                    let _ = link.client.try_disconnect();
                    disconnect_sent = true;
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return true,
                Ok(_) => {}
                Err(_) => return disconnect_sent,
            }
        }
    })
    .await;
    match outcome {
        Ok(true) => tracing::info!("published stopped status and disconnected from MQTT broker"),
        _ => tracing::warn!("could not confirm the stopped status with the MQTT broker before the deadline"),
    }
    link.connected.store(false, Ordering::Relaxed);
}
