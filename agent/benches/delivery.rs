//! `make bench` (delivery): events per second through the durable outbox and QoS 1 publishing to a local
//! Mosquitto, and the latency from an event's creation to the broker's PUBACK (p50/p99), in a burst and at a
//! steady rate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use edge_agent::mqtt::{self, MqttLink};
use edge_agent::outbox::{Bounds, Kind, Message, Outbox, OutboxWriter};
use edge_agent::payload::AgentState;
use edge_config::{Mqtt, Site};
use tokio_util::sync::CancellationToken;

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A realistic event payload (about 900 bytes).
fn event(i: usize) -> Vec<u8> {
    format!(
        r#"{{"schema":"edge-agent/event/v1","id":"0193d9c0-0000-7000-8000-{i:012}","seq":1,"site":"xining/chengzhong/nanchuan/xiaozhuang/east-gate","grid":{{"city":"xining","district":"chengzhong","town":"nanchuan","village":"xiaozhuang","checkpoint":"east-gate"}},"camera":"gate-in","type":"vehicle","phase":"new","label":"car","track_id":{i},"started_at":"2026-11-28T08:00:00.000Z","ended_at":null,"ts":"2026-11-28T08:00:00.400Z","direction":null,"crossings":[],"zones":[],"score":0.9,"box":[600.0,170.0,1300.0,570.0],"frame":{{"width":1920,"height":1080}},"plate":{{"text":"苏ED51712","confidence":0.97,"min_char_confidence":0.97,"color":"green","rows":1,"reads":3,"votes":3}},"snapshot":null,"padding":"{}"}}"#,
        "x".repeat(300)
    )
    .into_bytes()
}

async fn wait_acked(link: &MqttLink, target: u64) {
    while link.state().acked_total.load(Ordering::Relaxed) < target {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn latencies(link: &MqttLink) -> (u64, u64) {
    let mut l: Vec<u64> = link.state().ack_latencies_ms.lock().unwrap().iter().copied().collect();
    link.state().ack_latencies_ms.lock().unwrap().clear();
    l.sort_unstable();
    (percentile(&l, 0.5), percentile(&l, 0.99))
}

fn main() {
    let broker = testkit::broker::Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let outbox = Outbox::open(&dir.path().join("outbox.redb")).unwrap();
        let (writer, handle) = OutboxWriter::start(outbox, Bounds { max_bytes: 1 << 30, ..Bounds::UNLIMITED }).unwrap();
        let site = Site { city: "xining".into(), district: "chengzhong".into(), town: "nanchuan".into(), village: "xiaozhuang".into(), checkpoint: "east-gate".into(), name: None };
        let settings: Mqtt = toml::from_str(&format!("host = \"127.0.0.1\"\nport = {}\n", broker.port())).unwrap();
        let cancel = CancellationToken::new();
        let status = std::sync::Arc::new(|_: AgentState| b"{}".to_vec());
        let (link, task) = mqtt::start(&settings, &site, status, Some(handle.clone()), cancel.clone(), Duration::from_secs(5), None).unwrap();
        while !link.is_connected() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let topic = link.topics().events("gate-in");
        println!("delivery through the outbox (redb, group commit, fsync) and QoS 1 to a local Mosquitto, window {}", settings.max_inflight);

        // Burst: as fast as events can be appended.
        let n = 5000usize;
        let base = link.state().acked_total.load(Ordering::Relaxed);
        let start = Instant::now();
        let appender = {
            let handle = handle.clone();
            let topic = topic.clone();
            tokio::task::spawn_blocking(move || {
                for i in 0..n {
                    handle.append(Message::new(Kind::Event, topic.clone(), event(i))).unwrap();
                }
            })
        };
        appender.await.unwrap();
        wait_acked(&link, base + n as u64).await;
        let took = start.elapsed();
        let (p50, p99) = latencies(&link);
        println!("  burst of {n} events: {:.0} events/s sustained, creation→PUBACK p50 {p50} ms, p99 {p99} ms", n as f64 / took.as_secs_f64());
        let commits = handle.counters().commits_total.load(Ordering::Relaxed);
        println!("  ({commits} group commits so far)");

        // Steady rate: 200 events/s for 5 s (a very busy checkpoint makes a few per second).
        let rate = 200u64;
        let steady = rate as usize * 5;
        let base = link.state().acked_total.load(Ordering::Relaxed);
        let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
        for i in 0..steady {
            ticker.tick().await;
            handle.append(Message::new(Kind::Event, topic.clone(), event(n + i))).unwrap();
        }
        wait_acked(&link, base + steady as u64).await;
        let (p50, p99) = latencies(&link);
        println!("  steady {rate} events/s for 5 s: creation→PUBACK p50 {p50} ms, p99 {p99} ms");

        cancel.cancel();
        let _ = task.await;
        drop(link);
        drop(handle);
        tokio::task::spawn_blocking(move || writer.stop(Duration::from_secs(30))).await.unwrap();
    });
}
