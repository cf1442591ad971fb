//! `/metrics` in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::Sources;
use crate::stats::{CameraRecord, CameraState, INFERENCE_BUCKETS_S, LATENCY_BUCKETS_S};

/// A per-camera histogram family: for each camera, its counts per bucket of `bounds` (plus one for larger,
/// not cumulative) and the sum of the observations in microseconds.
fn histogram<'a>(out: &mut String, name: &str, help: &str, bounds: &[f64], cameras: impl Iterator<Item = (&'a str, &'a [AtomicU64], u64)>) {
    let mut f = Family::new(out, name, "histogram", help);
    for (id, buckets, sum_us) in cameras {
        let mut cumulative = 0;
        for (i, bound) in bounds.iter().enumerate() {
            cumulative += buckets.get(i).map_or(0, |b| b.load(Ordering::Relaxed));
            f.sample(&format!("{name}_bucket"), &[("camera", id), ("le", &bound.to_string())], cumulative as f64);
        }
        cumulative += buckets.get(bounds.len()).map_or(0, |b| b.load(Ordering::Relaxed));
        f.sample(&format!("{name}_bucket"), &[("camera", id), ("le", "+Inf")], cumulative as f64);
        f.sample(&format!("{name}_sum"), &[("camera", id)], sum_us as f64 / 1e6);
        f.sample(&format!("{name}_count"), &[("camera", id)], cumulative as f64);
    }
}

struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Self { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", format_value(value));
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

const CAMERA_STATES: [CameraState; 9] = [
    CameraState::Connecting,
    CameraState::Online,
    CameraState::Stalled,
    CameraState::Unauthorized,
    CameraState::Unreachable,
    CameraState::Failed,
    CameraState::Ended,
    CameraState::Disabled,
    CameraState::Stopped,
];

/// Counter families without labels: (name, help, value).
fn plain_counters(out: &mut String, counters: &[(&str, &str, &AtomicU64)]) {
    for (name, help, value) in counters {
        Family::new(out, name, "counter", help).sample(name, &[], value.load(Ordering::Relaxed) as f64);
    }
}

/// The whole `/metrics` page.
pub fn render(sources: &Sources, outbox: &crate::outbox::OutboxStats) -> String {
    let mut out = String::with_capacity(8 << 10);
    let cameras: Vec<Arc<CameraRecord>> = sources.cameras.read().unwrap_or_else(|p| p.into_inner()).clone();
    let snaps: Vec<_> = cameras.iter().map(|c| (c.id.as_str(), c.snapshot(), c.rates(), c.health())).collect();

    Family::new(&mut out, "edge_agent_uptime_seconds", "gauge", "Seconds since the agent started.").sample(
        "edge_agent_uptime_seconds",
        &[],
        sources.started.elapsed().as_secs_f64().round(),
    );
    let counter = |out: &mut String, name: &str, help: &str, value: &dyn Fn(&crate::stats::CounterSnapshot) -> u64| {
        let mut f = Family::new(out, name, "counter", help);
        for (id, s, _, _) in &snaps {
            f.sample(name, &[("camera", id)], value(s) as f64);
        }
    };
    counter(&mut out, "edge_agent_camera_frames_decoded_total", "Frames out of the camera's decoder.", &|s| s.frames_in);
    counter(&mut out, "edge_agent_camera_frames_analysed_total", "Frames the detector analysed.", &|s| s.frames_analysed);
    counter(&mut out, "edge_agent_camera_frames_dropped_total", "Frames sampled for detection but replaced by a newer one before the detector was free.", &|s| s.frames_dropped());
    counter(&mut out, "edge_agent_camera_frames_gated_total", "Sampled frames not analysed: nothing moved and nothing was being followed.", &|s| s.frames_gated);
    counter(&mut out, "edge_agent_camera_plate_searches_skipped_total", "Vehicles not searched for a plate: plate already settled, search not due, or too small.", &|s| {
        s.plate_searches_skipped
    });
    counter(&mut out, "edge_agent_camera_detections_total", "Objects detected (people and vehicles).", &|s| s.detections);
    counter(&mut out, "edge_agent_camera_plates_total", "Licence plates read.", &|s| s.plates);
    counter(&mut out, "edge_agent_camera_restarts_total", "Camera pipeline starts, the first included.", &|s| s.restarts);
    counter(
        &mut out,
        "edge_agent_camera_local_records_skipped_total",
        "Batches the outbox took but had not committed when the camera gave up waiting (a long storage failure, or the camera stopped): delivered when committed, not in the local record.",
        &|s| s.local_records_skipped,
    );
    counter(
        &mut out,
        "edge_agent_camera_messages_dropped_total",
        "Messages not sent: detections the MQTT queue had no room for, and events or alerts the outbox did not take.",
        &|s| s.messages_dropped,
    );
    {
        let mut f = Family::new(&mut out, "edge_agent_camera_fps", "gauge", "Frames per second over the last sampling interval, by stage (decoded, analysed).");
        for (id, _, (fps_in, fps_analysed), _) in &snaps {
            f.sample("edge_agent_camera_fps", &[("camera", id), ("stage", "decoded")], *fps_in);
            f.sample("edge_agent_camera_fps", &[("camera", id), ("stage", "analysed")], *fps_analysed);
        }
    }
    {
        let mut f = Family::new(&mut out, "edge_agent_camera_state", "gauge", "1 for the camera's current state, 0 for the others.");
        for (id, _, _, h) in &snaps {
            for state in CAMERA_STATES {
                f.sample("edge_agent_camera_state", &[("camera", id), ("state", state.as_str())], f64::from(u8::from(h.state == state)));
            }
        }
    }
    let inference = cameras.iter().zip(&snaps).map(|(c, (id, s, _, _))| (*id, &c.counters.inference_buckets[..], s.inference_us_total));
    histogram(&mut out, "edge_agent_inference_seconds", "Detector inference time per analysed frame.", &INFERENCE_BUCKETS_S, inference);
    let latency = cameras.iter().zip(&snaps).map(|(c, (id, _, _, _))| (*id, &c.counters.event_latency_buckets[..], c.counters.event_latency_us_total.load(Ordering::Relaxed)));
    histogram(
        &mut out,
        "edge_agent_event_latency_seconds",
        "From a frame's arrival out of the camera pipeline to the new event it completed being committed to the outbox.",
        &LATENCY_BUCKETS_S,
        latency,
    );
    let gauge = |out: &mut String, name: &str, help: &str, value: f64| {
        Family::new(out, name, "gauge", help).sample(name, &[], value);
    };
    gauge(&mut out, "edge_agent_outbox_depth", "Messages in the outbox waiting for the broker's acknowledgement.", outbox.depth as f64);
    gauge(&mut out, "edge_agent_outbox_bytes", "Bytes of undelivered messages in the outbox.", outbox.bytes as f64);
    gauge(&mut out, "edge_agent_outbox_oldest_age_seconds", "Age of the oldest undelivered message (0 when empty).", outbox.oldest_age_ms.unwrap_or(0) as f64 / 1000.0);
    Family::new(&mut out, "edge_agent_outbox_evicted_total", "counter", "Messages evicted from a full outbox, never delivered.").sample(
        "edge_agent_outbox_evicted_total",
        &[],
        outbox.evicted_total as f64,
    );
    gauge(
        &mut out,
        "edge_agent_outbox_dead_letters",
        "Messages in the dead-letter table: moved aside because they can never be delivered as they are.",
        outbox.dead_letters as f64,
    );
    let writer = sources.outbox.counters();
    let writer_counters = [
        ("edge_agent_outbox_appended_total", "Messages committed to the outbox.", &writer.appended_total),
        ("edge_agent_outbox_commits_total", "Group commits (fsyncs) of the outbox.", &writer.commits_total),
        ("edge_agent_outbox_commit_errors_total", "Outbox commits that failed and were retried.", &writer.commit_errors_total),
        ("edge_agent_outbox_reopens_total", "Times the outbox database was closed and opened again after a failure.", &writer.reopens_total),
        ("edge_agent_outbox_dead_letters_total", "Messages moved to the dead-letter table since start (a topic or size the broker refuses).", &writer.dead_letters_total),
        (
            "edge_agent_outbox_shed_snapshots_total",
            "Snapshots dropped from memory while the disk could not take them and the memory bound was reached.",
            &writer.shed_snapshots_total,
        ),
        (
            "edge_agent_outbox_lost_total",
            "Messages that never reached the disk: dropped from memory with no snapshot left to drop, or held when the agent stopped.",
            &writer.lost_total,
        ),
    ];
    plain_counters(&mut out, &writer_counters);
    gauge(&mut out, "edge_agent_outbox_held_messages", "Messages held in memory because the disk cannot take them now.", writer.held_messages.load(Ordering::Relaxed) as f64);
    let storage = sources.storage.report();
    if let Some(free) = storage.free_bytes {
        gauge(&mut out, "edge_agent_storage_free_bytes", "Free bytes on the state directory's file system.", free as f64);
    }
    gauge(&mut out, "edge_agent_storage_min_free_bytes", "The free-space floor (storage.min_free_mb).", storage.min_free_bytes as f64);
    {
        let mut f = Family::new(&mut out, "edge_agent_storage_state", "gauge", "1 for the storage state (ok, full, io_error), 0 for the others.");
        for state in [crate::storage::StorageState::Ok, crate::storage::StorageState::Full, crate::storage::StorageState::IoError] {
            f.sample("edge_agent_storage_state", &[("state", state.as_str())], f64::from(u8::from(storage.state == state)));
        }
    }
    let floor = &sources.storage.counters;
    let floor_counters = [
        ("edge_agent_storage_snapshots_refused_total", "New snapshots not kept because the disk was below its floor.", &floor.snapshots_refused_total),
        ("edge_agent_storage_snapshots_deleted_total", "Local snapshots deleted to stay above the floor.", &floor.snapshots_deleted_total),
        ("edge_agent_storage_log_days_deleted_total", "Days of local logs and history deleted to stay above the floor.", &floor.log_days_deleted_total),
    ];
    plain_counters(&mut out, &floor_counters);
    let teardowns = [(
        "edge_agent_pipeline_teardowns_hung_total",
        "Camera pipelines that did not shut down within 5 s (a stuck GStreamer source); the camera reconnected without them.",
        &crate::source::pipeline::TEARDOWNS_HUNG,
    )];
    plain_counters(&mut out, &teardowns);
    if let Some(link) = &sources.link {
        gauge(&mut out, "edge_agent_mqtt_connected", "1 while connected to the broker.", f64::from(u8::from(link.connected.load(Ordering::Relaxed))));
        let counters = [
            ("edge_agent_mqtt_connects_total", "Successful connections to the broker (reconnects are the count minus one).", &link.connects_total),
            ("edge_agent_mqtt_connection_errors_total", "Failed connection attempts and lost connections.", &link.connection_errors_total),
            ("edge_agent_mqtt_messages_sent_total", "QoS 1 messages sent, re-sends included.", &link.sent_total),
            ("edge_agent_mqtt_messages_acked_total", "QoS 1 messages acknowledged by the broker.", &link.acked_total),
        ];
        plain_counters(&mut out, &counters);
    }
    if let Some(guard) = &sources.web_guard {
        let c = &guard.counters;
        let guard_counters = [
            ("edge_agent_web_sign_in_failures_total", "Duty desk sign-ins with a wrong name or password.", &c.failures_total),
            (
                "edge_agent_web_sign_in_refused_total",
                "Duty desk sign-ins answered 429 before any check (a blocked address, account or browser, or no free check slot).",
                &c.refused_total,
            ),
            (
                "edge_agent_web_sign_in_recognised_while_blocked_total",
                "Sign-ins by a browser that signed in before, while its account was blocked for browsers it does not know (someone else was guessing).",
                &c.recognised_while_blocked_total,
            ),
        ];
        plain_counters(&mut out, &guard_counters);
    }
    let reloads = &sources.reloads;
    let mut f = Family::new(&mut out, "edge_agent_config_reloads_total", "counter", "Configuration reloads (SIGHUP), by result.");
    f.sample("edge_agent_config_reloads_total", &[("result", "applied")], reloads.ok.load(Ordering::Relaxed) as f64);
    f.sample("edge_agent_config_reloads_total", &[("result", "rejected")], reloads.rejected.load(Ordering::Relaxed) as f64);
    let health = sources.health.lock().unwrap_or_else(|p| p.into_inner()).clone();
    gauge(&mut out, "edge_agent_healthy", "1 unless a main loop is stuck (what the service watchdog acts on).", f64::from(u8::from(!health.is_unhealthy())));
    gauge(
        &mut out,
        "edge_agent_working",
        "1 unless /healthz answers 503: stuck, or running without recording or delivering (storage, stalled delivery).",
        f64::from(u8::from(!health.is_failing())),
    );
    if let Some(notify) = &sources.notify {
        notifications(&mut out, notify);
    }
    if let Some(clips) = &sources.clips {
        clip_metrics(&mut out, clips);
    }
    if let Some(gat) = &sources.gat1400 {
        gat1400_metrics(&mut out, gat);
    }
    out
}

/// The GA/T 1400 uplink's state, records and queue, from the same report as the `stats` message.
fn gat1400_metrics(out: &mut String, gat: &crate::gat1400::Gat1400Handle) {
    let r = gat.report();
    let mut f = Family::new(out, "edge_agent_gat1400_state", "gauge", "1 for the GA/T 1400 uplink's state (registering, registered, unauthorised, unreachable), 0 for the others.");
    for state in crate::gat1400::LinkState::ALL {
        f.sample("edge_agent_gat1400_state", &[("state", state.as_str())], f64::from(u8::from(state.as_str() == r.state)));
    }
    let mut f = Family::new(
        out,
        "edge_agent_gat1400_records_total",
        "counter",
        "GA/T 1400 records by what became of them: queued, accepted (StatusCode 0), refused (dead-lettered with the server's reason), evicted (queue bounds), not_queued.",
    );
    for (result, v) in [("queued", r.queued_total), ("accepted", r.accepted_total), ("refused", r.refused_total), ("evicted", r.evicted_total), ("not_queued", r.not_queued_total)]
    {
        f.sample("edge_agent_gat1400_records_total", &[("result", result)], v as f64);
    }
    let single = |out: &mut String, name: &str, kind: &str, help: &str, value: f64| Family::new(out, name, kind, help).sample(name, &[], value);
    single(out, "edge_agent_gat1400_waiting", "gauge", "GA/T 1400 records waiting in their queue.", r.waiting as f64);
    single(out, "edge_agent_gat1400_oldest_age_seconds", "gauge", "Age of the oldest GA/T 1400 record waiting (0 when none).", r.oldest_age_s.unwrap_or(0.0));
    single(
        out,
        "edge_agent_gat1400_registrations_total",
        "counter",
        "Successful GA/T 1400 registrations (a re-registration after the server lost the device counts again).",
        r.registrations_total as f64,
    );
}

/// Clips kept and not, and each camera's recorder, from the same report as the `stats` message.
fn clip_metrics(out: &mut String, clips: &crate::clips::ClipsHandle) {
    let r = clips.report();
    let mut f = Family::new(
        out,
        "edge_agent_clips_total",
        "counter",
        "Clips wanted, by what became of them: kept, failed (no video for the time, a remux error), refused (the disk below its floor), unavailable (the camera has no recorder).",
    );
    for (result, v) in [("kept", r.kept_total), ("failed", r.failed_total), ("refused", r.refused_total), ("unavailable", r.unavailable_total)] {
        f.sample("edge_agent_clips_total", &[("result", result)], v as f64);
    }
    let single = |out: &mut String, name: &str, kind: &str, help: &str, value: f64| Family::new(out, name, kind, help).sample(name, &[], value);
    single(out, "edge_agent_clips_deleted_total", "counter", "Clips deleted by retention (days, clips.max_mb) or the storage floor.", r.deleted_total as f64);
    single(out, "edge_agent_clips_bytes", "gauge", "Bytes the kept clips take (at the last retention sweep, plus what was kept since).", r.bytes as f64);
    let dropped = crate::clips::recorder::DROPPED.load(Ordering::Relaxed) as f64;
    single(out, "edge_agent_clip_recorder_dropped_total", "counter", "Video buffers the recorders dropped because the disk was slower than the cameras.", dropped);
    let mut f = Family::new(out, "edge_agent_clip_recorder", "gauge", "1 for each camera's recorder state (waiting, recording, unavailable, failed).");
    for c in &r.cameras {
        f.sample("edge_agent_clip_recorder", &[("camera", &c.camera), ("state", c.state)], 1.0);
    }
    let mut f = Family::new(out, "edge_agent_clip_ring_bytes", "gauge", "Bytes each camera's pre-capture ring holds.");
    for c in &r.cameras {
        f.sample("edge_agent_clip_ring_bytes", &[("camera", &c.camera)], c.ring_bytes as f64);
    }
}

/// The notification channels' results and queue, from the same report as the `stats` message.
fn notifications(out: &mut String, notify: &crate::notify::NotifyHandle) {
    let report = notify.report();
    let mut f = Family::new(
        out,
        "edge_agent_notify_requests_total",
        "counter",
        "Requests to the notification services, by channel and result (ok, rejected with the service's errcode, rate_limited, failed and retried).",
    );
    for c in &report.channels {
        for (result, v) in [("ok", c.ok_total), ("rejected", c.rejected_total), ("rate_limited", c.rate_limited_total), ("failed", c.failed_total)] {
            f.sample("edge_agent_notify_requests_total", &[("channel", &c.id), ("result", result)], v as f64);
        }
    }
    let mut f = Family::new(
        out,
        "edge_agent_notify_alerts_total",
        "counter",
        "Alerts by what became of them on each channel: delivered (alone or in a summary), expired (older than max_age_secs), or not queued (quiet hours, cooldown, muted).",
    );
    for c in &report.channels {
        for (what, v) in [("delivered", c.delivered_total), ("expired", c.expired_total), ("quiet", c.quiet_total), ("cooldown", c.cooldown_total), ("muted", c.muted_total)] {
            f.sample("edge_agent_notify_alerts_total", &[("channel", &c.id), ("outcome", what)], v as f64);
        }
    }
    let mut f = Family::new(out, "edge_agent_notify_summaries_total", "counter", "Bursts sent as one summary message.");
    for c in &report.channels {
        f.sample("edge_agent_notify_summaries_total", &[("channel", &c.id)], c.summaries_total as f64);
    }
    Family::new(out, "edge_agent_notify_waiting", "gauge", "Notifications waiting in their queue, all channels.").sample("edge_agent_notify_waiting", &[], report.waiting as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn integers_print_without_a_fraction() {
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(0.25), "0.25");
    }
}
