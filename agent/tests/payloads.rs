//! Golden payloads for alerts, status and stats (the event chain has its own in `events.rs`): fixed inputs,
//! byte-for-byte expected JSON, and the JSON Schema on top.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use edge_agent::events::geometry::Direction;
use edge_agent::events::voting::VotedPlate;
use edge_agent::payload::{self, AgentInfo, AgentState, CameraStats, CameraStatus, Grid, InferenceMs, LinkStats, OutboxStats};
use edge_agent::rules::{Finding, HealthNote, PlateMatch, RuleType};
use edge_agent::stats::CameraState;
use edge_agent::topics::{Origin, Topics};
use edge_config::{Severity, Site};
use models::plates::PlateColour;
use models::ObjectClass;
use testkit::schemas::assert_valid;

fn site() -> Site {
    Site {
        city: "xining".into(),
        district: "chengzhong".into(),
        town: "nanchuan".into(),
        village: "xiaozhuang".into(),
        checkpoint: "east-gate".into(),
        name: Some("小庄村东口".into()),
    }
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Compares with the golden file, or writes it with `UPDATE_GOLDEN=1`.
fn notify_channel(id: &str, kind: edge_config::NotifyKind, ok: u64, last: Option<edge_agent::notify::LastReport>) -> edge_agent::notify::ChannelReport {
    let last = last.or(Some(edge_agent::notify::LastReport { at: "2026-11-28T08:00:52.004Z".into(), outcome: "ok", code: None, message: None }));
    edge_agent::notify::ChannelReport {
        id: id.into(),
        kind,
        ok_total: ok,
        rejected_total: u64::from(kind == edge_config::NotifyKind::Dingtalk),
        rate_limited_total: 0,
        failed_total: 2,
        delivered_total: ok.saturating_sub(4),
        summaries_total: 1,
        expired_total: 0,
        quiet_total: 0,
        cooldown_total: 1,
        muted_total: 0,
        last,
    }
}

fn assert_golden(name: &str, text: &str) {
    let path = testkit::workspace_dir().join("agent/tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, text).unwrap();
    }
    let golden = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, golden, "{name} changed; if intended, rerun with UPDATE_GOLDEN=1 and review the diff");
}

#[test]
fn alert_payloads_match_the_golden_file() {
    let origin = Arc::new(Origin { site: site(), camera: "gate-in".into() });
    let watch = Finding {
        id: "0193d9c0-0000-7000-8000-0000000000a1".into(),
        at: at("2026-11-28T08:00:02.000Z"),
        origin: origin.clone(),
        rule: "stolen".into(),
        kind: RuleType::WatchList,
        severity: Severity::Critical,
        event_id: Some("0193d9c0-0000-7000-8000-000000000000".into()),
        event_ids: vec!["0193d9c0-0000-7000-8000-000000000000".into()],
        class: Some(ObjectClass::CAR),
        direction: Some(Direction::In),
        plate: Some(VotedPlate {
            text: "京PL3B67".into(),
            confidence: 0.91234,
            min_char_confidence: 0.8,
            color: PlateColour::Blue,
            rows: 1,
            reads: 4,
            votes: 5,
            uncertain_positions: vec![],
        }),
        matched: Some(PlateMatch { entry: "京PL3N67".into(), distance: 1, position: Some(4) }),
        prefix: None,
        zone: None,
        count: None,
        duration_s: None,
        reason: None,
        provenance: None,
        health: None,
    };
    let crowd = Finding {
        id: "0193d9c0-0000-7000-8000-0000000000a2".into(),
        rule: "crowd".into(),
        kind: RuleType::Crowding,
        severity: Severity::Warning,
        event_ids: vec!["0193d9c0-0000-7000-8000-000000000000".into(), "0193d9c0-0000-7000-8000-000000000001".into()],
        class: Some(ObjectClass::PERSON),
        direction: None,
        plate: None,
        matched: None,
        zone: Some("square".into()),
        count: Some(2),
        duration_s: Some(12.3456),
        ..watch.clone()
    };
    let covered = Finding {
        id: "0193d9c0-0000-7000-8000-0000000000a3".into(),
        rule: "camera_covered".into(),
        kind: RuleType::CameraCovered,
        severity: Severity::Warning,
        event_id: None,
        event_ids: vec![],
        class: None,
        direction: None,
        plate: None,
        matched: None,
        health: Some(HealthNote { raised: true, since: at("2026-11-28T07:59:30.000Z"), detail: "97 % of the picture without detail".into() }),
        ..watch.clone()
    };
    let mut text = String::new();
    for f in [&watch, &crowd, &covered] {
        let alert = payload::Alert::new(f, Some(&Topics::new("checkpoint", &site())));
        assert_valid("alert.v1.json", &serde_json::to_value(&alert).unwrap());
        text.push_str(&serde_json::to_string(&alert).unwrap());
        text.push('\n');
    }
    assert_golden("alerts.jsonl", &text);
    // The duty desk reads the alerts log back into the same type after a restart: nothing is lost or changed.
    for line in text.lines() {
        let back: payload::Alert = serde_json::from_str(line).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), line);
    }
}

#[test]
fn status_payload_matches_the_golden_file() {
    let status = payload::Status {
        schema: payload::STATUS_SCHEMA,
        state: AgentState::Online,
        site: site().path(),
        grid: Grid::from(&site()),
        name: site().name,
        agent: AgentInfo { version: "0.1.0", hostname: "checkpoint-pc".into(), started_at: "2026-11-28T07:59:00.000Z".into() },
        ts: "2026-11-28T08:00:00.000Z".into(),
        cameras: vec![
            CameraStatus {
                id: "gate-in".into(),
                state: CameraState::Online,
                since: "2026-11-28T07:59:05.000Z".into(),
                last_error: None,
                frame_size: Some([1920, 1080]),
                decoder: Some("avdec_h264 (software)".into()),
            },
            CameraStatus {
                id: "gate-out".into(),
                state: CameraState::Unauthorized,
                since: "2026-11-28T07:59:06.000Z".into(),
                last_error: Some("the camera rejected the credentials".into()),
                frame_size: None,
                decoder: None,
            },
        ],
        storage: Some(payload::StorageStatus { state: "ok", free_bytes: Some(52_613_349_376), min_free_bytes: 268_435_456, held: 0, problem: None }),
        dead_letters: Some(payload::DeadLetters {
            count: 1,
            total: 1,
            last: Some(payload::DeadLetterInfo {
                topic: "checkpoint/xining/chengzhong/nanchuan/xiaozhuang/east-gate/gate-in/snapshots/cmd-7".into(),
                bytes: 412_337,
                reason: "the broker closed the connection each of the 3 times this message was sent, within 5000 ms: it refuses it (larger than the broker's max_packet_size, or a topic it does not take)".into(),
                at: "2026-11-28T07:59:40.000Z".into(),
            }),
        }),
        gat1400: Some("registered"),
    };
    let value = serde_json::to_value(&status).unwrap();
    assert_valid("status.v1.json", &value);
    assert_golden("status.json", &format!("{}\n", serde_json::to_string(&status).unwrap()));
}

#[test]
fn stats_payload_matches_the_golden_file() {
    let stats = payload::Stats {
        schema: payload::STATS_SCHEMA,
        site: site().path(),
        ts: "2026-11-28T08:01:00.000Z".into(),
        interval_s: 60.0,
        uptime_s: 120.5,
        detector: payload::DetectorStats { model: "yolox_nano.onnx".into(), provider: "cpu", input: [416, 416] },
        outbox: OutboxStats { depth: 3, bytes: 4096, oldest_age_s: Some(1.25), evicted_total: 0, dead_letters: 0, dead_letters_total: 0, held: 0, shed_snapshots_total: 0, lost_total: 0 },
        mqtt: LinkStats { connects_total: 1, connection_errors_total: 2, sent_total: 40, acked_total: 37 },
        cameras: vec![CameraStats {
            id: "gate-in".into(),
            state: CameraState::Online,
            last_error: None,
            frames_in: 1500,
            frames_analysed: 300,
            frames_dropped: 2,
            frames_skipped: 1198,
            frames_gated: 0,
            plate_searches_skipped: 12,
            fps_in: 25.0,
            fps_analysed: 5.0,
            detections: 420,
            inference_ms: Some(InferenceMs { mean: 20.41, max: 35.2 }),
            plates: 57,
            plate_ms: Some(12.5),
            restarts: 1,
            messages_dropped: 0,
        }],
        storage: Some(payload::StorageStats {
            status: payload::StorageStatus {
                state: "full",
                free_bytes: Some(180_355_072),
                min_free_bytes: 268_435_456,
                held: 0,
                problem: Some("storage full: 172.0 MB free in /var/lib/edge-agent, below the floor of 256 MB (storage.min_free_mb) after deleting the oldest local snapshots and logs: new snapshots are not kept, events and alerts are".into()),
            },
            snapshots_refused_total: 4,
            snapshots_deleted_total: 1_207,
            log_days_deleted_total: 2,
        }),
        notify: Some(edge_agent::notify::NotifyReport {
            channels: vec![
                notify_channel("village-wecom", edge_config::NotifyKind::Wecom, 14, None),
                notify_channel(
                    "town-dingtalk",
                    edge_config::NotifyKind::Dingtalk,
                    3,
                    Some(edge_agent::notify::LastReport { at: "2026-11-28T08:00:41.512Z".into(), outcome: "rejected", code: Some(310_000), message: Some("sign not match".into()) }),
                ),
            ],
            waiting: 1,
            mutes: vec![edge_agent::notify::MuteReport { rule: Some("after-hours".into()), camera: None, until: "2026-11-28T09:00:00.000Z".into() }],
        }),
        clips: Some(edge_agent::clips::ClipsReport {
            kept_total: 12,
            failed_total: 0,
            refused_total: 1,
            unavailable_total: 2,
            deleted_total: 3,
            waiting: 1,
            bytes: 21_504_000,
            count: 9,
            cameras: vec![
                edge_agent::clips::RingReport { camera: "gate-in".into(), state: "recording", reason: None, ring_bytes: 3_145_728, ring_fragments: 6 },
                edge_agent::clips::RingReport {
                    camera: "side-door".into(),
                    state: "unavailable",
                    reason: Some("the camera sends MJPEG, which would have to be encoded again to be kept".into()),
                    ring_bytes: 0,
                    ring_fragments: 0,
                },
            ],
        }),
        gat1400: Some(edge_agent::gat1400::Gat1400Report {
            state: "registered",
            problem: None,
            waiting: 2,
            oldest_age_s: Some(1.25),
            queued_total: 131,
            accepted_total: 128,
            refused_total: 1,
            evicted_total: 0,
            not_queued_total: 0,
            registrations_total: 2,
            clock_offset_s: Some(-1),
            last_refusal: Some("330102000011900000010220261128075912345020678: StatusCode 8: PlateColor \"7\" is not a plate colour code".into()),
        }),
    };
    let value = serde_json::to_value(&stats).unwrap();
    assert_valid("stats.v1.json", &value);
    assert_golden("stats.json", &format!("{}\n", serde_json::to_string(&stats).unwrap()));
}

#[test]
fn clip_messages_match_their_schema() {
    let clip = payload::Clip {
        schema: payload::CLIP_SCHEMA.into(),
        id: "0193a5f0-7c1e-7b3a-9f00-5d2c6e8a1b01".into(),
        site: "xining/chengzhong/nanchuan/xiaozhuang/east-gate".into(),
        grid: payload::Grid { city: "xining".into(), district: "chengzhong".into(), town: "nanchuan".into(), village: "xiaozhuang".into(), checkpoint: "east-gate".into() },
        camera: "gate-in".into(),
        event_id: Some("0193a5f0-7c1e-7b3a-9f00-5d2c6e8a1b01".into()),
        alert_ids: vec!["0193a5f0-8000-7b3a-9f00-5d2c6e8a1b02".into()],
        started_at: "2026-11-28T08:00:31.960Z".into(),
        ended_at: "2026-11-28T08:00:47.980Z".into(),
        duration_s: 16.02,
        bytes: 3_412_006,
        sha256: "6fe12a937a2ade8191a94f4b842bef066010ba0b4540994ec954da76a120cd0d".into(),
        content_type: "video/mp4".into(),
        codec: "h264".into(),
        pre_capture_s: 5,
        post_capture_s: 5,
        ts: "2026-11-28T08:00:48.611Z".into(),
    };
    let value = serde_json::to_value(&clip).unwrap();
    assert_valid("clip.v1.json", &value);
    assert_golden("clip.json", &format!("{}\n", serde_json::to_string(&clip).unwrap()));
}
