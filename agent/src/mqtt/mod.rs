//! The MQTT link to the town platform. One task owns the rumqttc event loop: it `select!`s between shutdown,
//! status changes, new outbox messages and `poll()`, backs off after connection errors, and is the only
//! place that publishes QoS 1 and sees acknowledgements. Other threads publish best-effort QoS 0 through the
//! cloneable [`MqttLink`] and everything that must not be lost through the outbox.
//!
//! Delivery (see [`delivery`]): outbox messages are published oldest first, at most `max_inflight` at a
//! time; each PUBACK deletes its message from the outbox. When the connection drops, rumqttc's own replay
//! queue is discarded and, after the reconnect, every message still in the outbox is sent again from the
//! oldest, so nothing committed is lost and the order per camera holds; a message whose PUBACK was lost is
//! sent twice, with the same event `id` and `seq`.

pub mod delivery;
mod errors;
mod outbound;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edge_config::{Mqtt, Site};
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::outbox::OutboxHandle;
use crate::payload::AgentState;
pub use crate::topics::Topics;
pub use errors::describe;
use outbound::Outbound;

/// Why the link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("mqtt.password_file {path}: {source}")]
    PasswordFile { path: String, source: std::io::Error },
    #[error("mqtt.password_env: environment variable {name} is not set")]
    PasswordEnv { name: String },
    #[error("{key} {path}: {reason}")]
    TlsFile { key: &'static str, path: String, reason: String },
}

/// Largest packet the client sends or takes (rumqttc drops the connection on a larger one, so a message
/// that would make one goes to the dead letters instead).
pub const MAX_PACKET_BYTES: usize = 8 << 20;

/// Builds the status payload for a given agent state.
pub type StatusFn = Arc<dyn Fn(AgentState) -> Vec<u8> + Send + Sync>;

/// What the link knows about its connection, for stats and metrics.
#[derive(Debug, Default)]
pub struct LinkState {
    pub connected: AtomicBool,
    /// Successful connections since start.
    pub connects_total: AtomicU64,
    /// Failed connection attempts and lost connections.
    pub connection_errors_total: AtomicU64,
    /// QoS 1 messages acknowledged by the broker.
    pub acked_total: AtomicU64,
    /// QoS 1 messages sent (including re-sends).
    pub sent_total: AtomicU64,
    /// The last connection error, described for operators.
    pub last_error: Mutex<Option<String>>,
    /// Milliseconds from message creation to PUBACK, the most recent ones.
    pub ack_latencies_ms: Mutex<std::collections::VecDeque<u64>>,
    /// Outbox messages sent on this connection and not yet acknowledged.
    pub unacknowledged: AtomicU64,
    /// When delivery last moved (a connection, or an acknowledgement), milliseconds since the epoch.
    pub last_progress_ms: AtomicU64,
}

impl LinkState {
    /// Delivery moved now.
    pub fn progress(&self) {
        self.last_progress_ms.store(crate::outbox::now_ms(), Ordering::Relaxed);
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A cheap, cloneable handle for publishing.
#[derive(Clone)]
pub struct MqttLink {
    client: AsyncClient,
    topics: Topics,
    state: Arc<LinkState>,
    status_changed: Arc<Notify>,
    /// Retained documents besides the status (the policy report), published when set and on every
    /// connection.
    retained: Arc<Mutex<Retained>>,
    retained_changed: Arc<Notify>,
    /// Asks the stats task for a report now.
    stats_now: Arc<Notify>,
}

/// Builds a retained document when it is published (so its time and what it counts are current).
pub type RetainedFn = Arc<dyn Fn() -> Vec<u8> + Send + Sync>;

/// Retained documents by topic, and those waiting to be (re)published.
#[derive(Default)]
struct Retained {
    docs: std::collections::BTreeMap<String, RetainedFn>,
    pending: std::collections::BTreeSet<String>,
}

impl Retained {
    /// The documents to publish now, built now: the pending ones, or all of them.
    fn take(&mut self, all: bool) -> Vec<(String, Vec<u8>)> {
        let topics = std::mem::take(&mut self.pending);
        let docs = &self.docs;
        if all {
            docs.iter().map(|(t, d)| (t.clone(), d())).collect()
        } else {
            topics.into_iter().filter_map(|t| docs.get(&t).map(|d| (t, d()))).collect()
        }
    }
}

/// Messages from the platform the agent subscribes to, handed to `tx` as (topic, payload). One the
/// receiver has no room for is dropped with a warning: the platform's documents are retained and come
/// again with the next connection.
pub struct Inbound {
    pub topics: Vec<String>,
    pub tx: tokio::sync::mpsc::Sender<(String, Vec<u8>)>,
}

impl MqttLink {
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    pub fn is_connected(&self) -> bool {
        self.state.connected.load(Ordering::Relaxed)
    }

    pub fn state(&self) -> &Arc<LinkState> {
        &self.state
    }

    /// Queues a best-effort QoS 0 message. Returns `false` (dropped) when disconnected or the client queue
    /// is full: such messages are only useful live.
    pub fn publish_lossy(&self, topic: String, payload: Vec<u8>) -> bool {
        self.is_connected() && self.client.try_publish(topic, QoS::AtMostOnce, false, payload).is_ok()
    }

    /// Asks the link to republish the retained status (a camera changed state).
    pub fn status_changed(&self) {
        self.status_changed.notify_one();
    }

    /// Asks for a stats report now (the `republish` command).
    pub fn request_stats(&self) {
        self.stats_now.notify_one();
    }

    /// Waits for [`MqttLink::request_stats`].
    pub async fn stats_requested(&self) {
        self.stats_now.notified().await;
    }

    /// Sets a retained document (QoS 1), built by `build` each time it is published: now, on every
    /// connection and on [`MqttLink::republish`].
    pub fn set_retained(&self, topic: String, build: RetainedFn) {
        let mut retained = self.retained.lock().unwrap_or_else(|p| p.into_inner());
        retained.pending.insert(topic.clone());
        retained.docs.insert(topic, build);
        self.retained_changed.notify_one();
    }

    /// Publishes the status and every retained document again (the `republish` command).
    pub fn republish(&self) {
        let mut retained = self.retained.lock().unwrap_or_else(|p| p.into_inner());
        retained.pending = retained.docs.keys().cloned().collect();
        self.retained_changed.notify_one();
        self.status_changed.notify_one();
    }
}

/// Resolves the broker password from whichever source the config names.
fn password(settings: &Mqtt) -> Result<Option<String>, MqttError> {
    if let Some(p) = &settings.password {
        return Ok(Some(p.expose().to_string()));
    }
    if let Some(path) = &settings.password_file {
        let text = std::fs::read_to_string(path).map_err(|source| MqttError::PasswordFile { path: path.display().to_string(), source })?;
        return Ok(Some(text.lines().next().unwrap_or_default().to_string()));
    }
    if let Some(name) = &settings.password_env {
        return std::env::var(name).map(Some).map_err(|_| MqttError::PasswordEnv { name: name.clone() });
    }
    Ok(None)
}

fn tls_transport(tls: &edge_config::MqttTls) -> Result<Transport, MqttError> {
    let read = |key: &'static str, path: &std::path::Path| std::fs::read(path).map_err(|e| MqttError::TlsFile { key, path: path.display().to_string(), reason: e.to_string() });
    let ca = read("mqtt.tls.ca_file", &tls.ca_file)?;
    if !String::from_utf8_lossy(&ca).contains("-----BEGIN CERTIFICATE-----") {
        return Err(MqttError::TlsFile { key: "mqtt.tls.ca_file", path: tls.ca_file.display().to_string(), reason: "no PEM certificate in the file".into() });
    }
    let client_auth = match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(cert), Some(key)) => Some((read("mqtt.tls.client_cert_file", cert)?, read("mqtt.tls.client_key_file", key)?)),
        _ => None,
    };
    Ok(Transport::tls_with_config(TlsConfiguration::Simple { ca, alpn: None, client_auth }))
}

/// Connects (in the background) and returns the link plus the task that owns the event loop. The task
/// publishes `online` on every connection, republishes the status when asked, delivers the outbox, and on
/// `cancel` publishes `stopped`, waits for its acknowledgement (up to `stop_timeout`) and disconnects.
pub fn start(
    settings: &Mqtt,
    site: &Site,
    status: StatusFn,
    outbox: Option<OutboxHandle>,
    cancel: CancellationToken,
    stop_timeout: Duration,
    inbound: Option<Inbound>,
) -> Result<(MqttLink, tokio::task::JoinHandle<()>), MqttError> {
    let topics = Topics::new(&settings.topic_prefix, site);
    let mut options = MqttOptions::new(settings.client_id_for(site), settings.host.clone(), settings.port);
    options.set_keep_alive(Duration::from_secs(settings.keep_alive_secs));
    options.set_clean_session(true);
    // Incoming: policy documents up to 2 MiB are checked by the agent; a larger message breaks the
    // connection in rumqttc, so the broker should cap messages (message_size_limit) below this.
    options.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    // rumqttc's own window must never be what limits us: it would block the request queue.
    options.set_inflight(settings.max_inflight.saturating_add(16));
    options.set_last_will(LastWill::new(topics.status(), status(AgentState::Offline), QoS::AtLeastOnce, true));
    if let Some(user) = &settings.username {
        options.set_credentials(user.clone(), password(settings)?.unwrap_or_default());
    }
    if let Some(tls) = &settings.tls {
        options.set_transport(tls_transport(tls)?);
    }
    let (client, eventloop) = AsyncClient::new(options, 1024);
    let link = MqttLink {
        client,
        topics,
        state: Arc::new(LinkState::default()),
        status_changed: Arc::new(Notify::new()),
        retained: Arc::default(),
        retained_changed: Arc::new(Notify::new()),
        stats_now: Arc::new(Notify::new()),
    };
    let delivery = outbox.map(|o| Outbound::new(o, settings.max_inflight as usize));
    let task = tokio::spawn(drive(eventloop, link.clone(), status, delivery, inbound, cancel, stop_timeout, settings.clone()));
    Ok((link, task))
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    mut eventloop: EventLoop,
    link: MqttLink,
    status: StatusFn,
    mut delivery: Option<Outbound>,
    inbound: Option<Inbound>,
    cancel: CancellationToken,
    stop_timeout: Duration,
    settings: Mqtt,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(settings.reconnect_max_secs));
    let committed = delivery.as_ref().map(|d| d.outbox().committed().clone()).unwrap_or_default();
    let mut ack_flush = tokio::time::interval(Duration::from_millis(50));
    let publish_retained = |topic: String, payload: Vec<u8>, delivery: &mut Option<Outbound>| match link.client.try_publish(topic, QoS::AtLeastOnce, true, payload) {
        Ok(()) => {
            if let Some(d) = delivery.as_mut() {
                d.machine.queued_other();
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot queue a retained message"),
    };
    let publish_status = |state: AgentState, delivery: &mut Option<Outbound>| publish_retained(link.topics.status(), status(state), delivery);
    let publish_docs = |all: bool, delivery: &mut Option<Outbound>| {
        let docs = link.retained.lock().unwrap_or_else(|p| p.into_inner()).take(all);
        for (topic, payload) in docs {
            publish_retained(topic, payload, delivery);
        }
    };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = link.status_changed.notified(), if link.is_connected() => publish_status(AgentState::Online, &mut delivery),
            _ = link.retained_changed.notified(), if link.is_connected() => publish_docs(false, &mut delivery),
            _ = committed.notified(), if link.is_connected() => {
                if let Some(d) = delivery.as_mut() {
                    d.fill(&link.client, &link.state);
                }
            }
            _ = ack_flush.tick() => {
                if delivery.as_mut().is_some_and(Outbound::flush_acks) {
                    link.status_changed();
                }
            }
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    tracing::info!(broker = %format!("{}:{}", settings.host, settings.port), tls = settings.tls.is_some(), "connected to MQTT broker");
                    link.state.connected.store(true, Ordering::Relaxed);
                    link.state.connects_total.fetch_add(1, Ordering::Relaxed);
                    link.state.progress();
                    backoff.reset();
                    publish_status(AgentState::Online, &mut delivery);
                    publish_docs(true, &mut delivery);
                    for topic in inbound.iter().flat_map(|i| &i.topics) {
                        if let Err(e) = link.client.try_subscribe(topic.clone(), QoS::AtLeastOnce) {
                            tracing::warn!(topic = %topic, error = %e, "cannot subscribe");
                        }
                    }
                    if let Some(d) = delivery.as_mut() {
                        d.fill(&link.client, &link.state);
                    }
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    if let Some(d) = delivery.as_mut() {
                        d.on_publish(pkid);
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some(d) = delivery.as_mut() {
                        if d.on_puback(ack.pkid, &link.state) {
                            d.fill(&link.client, &link.state);
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(message))) => {
                    if let Some(inbound) = inbound.as_ref().filter(|i| i.topics.contains(&message.topic)) {
                        if inbound.tx.try_send((message.topic.clone(), message.payload.to_vec())).is_err() {
                            tracing::warn!(topic = %message.topic, "inbound message dropped: the agent is still busy with earlier ones");
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let was_connected = link.state.connected.swap(false, Ordering::Relaxed);
                    link.state.connection_errors_total.fetch_add(1, Ordering::Relaxed);
                    // Discard rumqttc's replay queue: the outbox re-sends after the reconnect, in order.
                    eventloop.pending.clear();
                    if let Some(d) = delivery.as_mut() {
                        d.on_connection_lost(&link.state);
                    }
                    let (described, floor) = describe(&e, &settings, was_connected);
                    backoff.at_least(floor);
                    let delay = backoff.next_delay();
                    *link.state.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(described.clone());
                    if was_connected {
                        tracing::warn!(error = %described, "MQTT connection lost");
                    } else {
                        tracing::warn!(error = %described, retry_in_s = format!("{:.1}", delay.as_secs_f64()), "cannot connect to MQTT broker");
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
        stop_cleanly(&mut eventloop, &link, &status, delivery.as_mut(), stop_timeout).await;
    }
    if let Some(d) = delivery.as_mut() {
        d.flush_acks();
    }
}

/// Publishes the retained `stopped` status, waits for its PUBACK (recording other acknowledgements that
/// arrive meanwhile), then disconnects, so the broker does not fire the last will.
async fn stop_cleanly(eventloop: &mut EventLoop, link: &MqttLink, status: &StatusFn, mut delivery: Option<&mut Outbound>, timeout: Duration) {
    // Earlier status publishes still queued go out before this one.
    let mut others_before = delivery.as_deref().map_or(0, |d| d.machine.others_queued());
    if link.client.try_publish(link.topics.status(), QoS::AtLeastOnce, true, status(AgentState::Stopped)).is_err() {
        return;
    }
    if let Some(d) = delivery.as_deref_mut() {
        d.machine.queued_other();
    }
    let outcome = tokio::time::timeout(timeout, async {
        let mut status_pkid = None;
        let mut disconnect_sent = false;
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    let sent = match delivery.as_deref_mut() {
                        Some(d) => d.on_publish(pkid),
                        // Without an outbox every QoS 1 publish is a status.
                        None if pkid != 0 => delivery::Sent::Other,
                        None => delivery::Sent::Untracked,
                    };
                    if sent == delivery::Sent::Other {
                        if others_before > 0 {
                            others_before -= 1;
                        } else {
                            status_pkid = Some(pkid);
                        }
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some(d) = delivery.as_deref_mut() {
                        d.on_puback(ack.pkid, &link.state);
                    }
                    if Some(ack.pkid) == status_pkid && !disconnect_sent {
                        let _ = link.client.try_disconnect();
                        disconnect_sent = true;
                    }
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
    link.state.connected.store(false, Ordering::Relaxed);
}
