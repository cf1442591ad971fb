//! The detect-rate gate: frames beyond the camera's `detect_fps` are dropped by their timestamps before
//! colour conversion, so a 25 fps camera analysed at 5 fps converts only 5 frames a second. (Not videorate:
//! GStreamer 1.22's videorate aborts the process on variable-rate streams without buffer durations, such
//! as MJPEG over HTTP.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::stats::CameraRecord;

/// Lets frames through at `fps` by their timestamps. Frames without a timestamp pass. A jump back in time
/// (a file looping, a stream restarting) starts over.
#[derive(Debug, Clone)]
pub struct RateGate {
    interval: Duration,
    next_due: Option<Duration>,
}

impl RateGate {
    pub fn new(fps: f64) -> Self {
        Self { interval: Duration::from_secs_f64(1.0 / fps.max(0.001)), next_due: None }
    }

    pub fn admit(&mut self, pts: Option<Duration>) -> bool {
        let Some(pts) = pts else { return true };
        // Half a millisecond of slack for rounded timestamps (25 fps streams at 5 fps).
        let slack = Duration::from_micros(500);
        match self.next_due {
            Some(due) if pts + slack < due && pts + 2 * self.interval >= due => false,
            Some(due) if pts + slack >= due && pts < due + self.interval => {
                self.next_due = Some(due + self.interval);
                true
            }
            // First frame, a jump forward (gap) or back (loop): start the schedule here.
            _ => {
                self.next_due = Some(pts + self.interval);
                true
            }
        }
    }
}

/// Installs the gate on `pad` (the converter's sink): counts frames out of the decoder, drops those beyond
/// the detect rate, and notes the stream's frame rate (×1000) in `input_fps`.
pub fn install(pad: &gst::Pad, gate: RateGate, record: Arc<CameraRecord>, input_fps: Arc<AtomicU64>) {
    let gate = Mutex::new(gate);
    // Buffers and events in separate probes: a buffer beyond the detect rate is taken out of the probe and
    // the probe reports it handled (returning `Drop` from a probe that also sees events makes GStreamer 1.22
    // unref a NULL object).
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = &info.data else { return gst::PadProbeReturn::Ok };
        record.counters.frames_in.fetch_add(1, Ordering::Relaxed);
        let pts = buffer.pts().map(|t| Duration::from_nanos(t.nseconds()));
        if !gate.lock().unwrap_or_else(|p| p.into_inner()).admit(pts) {
            drop(info.data.take());
            return gst::PadProbeReturn::Handled;
        }
        record.counters.frames_sampled.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(e)) = &info.data {
            if let gst::EventView::Caps(c) = e.view() {
                let rate = c.caps().structure(0).and_then(|s| s.get::<gst::Fraction>("framerate").ok());
                if let Some(r) = rate.filter(|r| r.numer() > 0 && r.denom() > 0) {
                    input_fps.store((r.numer() as f64 / r.denom() as f64 * 1000.0) as u64, Ordering::Relaxed);
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(gate: &mut RateGate, fps_in: f64, frames: usize) -> Vec<usize> {
        (0..frames).filter(|&i| gate.admit(Some(Duration::from_secs_f64(i as f64 / fps_in)))).collect()
    }

    #[test]
    fn the_gate_holds_the_detect_rate() {
        assert_eq!(run(&mut RateGate::new(5.0), 25.0, 26), vec![0, 5, 10, 15, 20, 25]);
        assert_eq!(run(&mut RateGate::new(2.5), 25.0, 25), vec![0, 10, 20]);
        // A slower stream passes whole.
        assert_eq!(run(&mut RateGate::new(5.0), 2.0, 4), vec![0, 1, 2, 3]);
    }

    #[test]
    fn the_gate_restarts_after_a_jump_back_or_a_gap() {
        let mut g = RateGate::new(5.0);
        assert!(g.admit(Some(Duration::from_secs(10))));
        assert!(!g.admit(Some(Duration::from_millis(10_040))));
        assert!(g.admit(Some(Duration::ZERO)), "file rewound");
        assert!(g.admit(Some(Duration::from_secs(100))), "gap");
        assert!(g.admit(None));
    }
}
