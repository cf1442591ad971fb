//! The recorder: taps a camera pipeline's compressed video where it enters the decoder, and writes it —
//! not decoded, not encoded again — into keyframe-aligned MP4 fragments of the camera's ring:
//!
//! ```text
//! camera pipeline: … ─▶ h264parse ─▶[probe]─▶ decoder ─▶ …          (the analysis path, untouched)
//!                                      │ the same buffers (refcounted, timestamps rebased)
//! recorder:                          appsrc ─▶ [h264parse] ─▶ splitmuxsink(mp4mux, max-size-time)
//! ```
//!
//! A tee would do the same inside one pipeline; the tap keeps `uridecodebin` (and its choice of hardware
//! decoder) as it is, and a recorder that fails (a full or failing disk) stops only itself, and starts
//! again 10 s later at a keyframe. The recorder's queue is bounded and drops (counted) rather than holding
//! the camera up when the disk is slow.
//!
//! Timestamps are rebased to run on across file loops and reconnections, so fragments of one ring always
//! follow each other. Each fragment's wall-clock start is the time its first keyframe entered the
//! decoder: the analysed frames' times are taken the same way, a few milliseconds later.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::ring::{ClipRing, Fragment, RingStatus};

/// Buffers the recorder may hold before it drops (the disk is slower than the camera).
const QUEUE_BYTES: u64 = 8 << 20;
/// A jump in the stream's timestamps larger than this (or any step back) starts a new time base.
const MAX_STEP: Duration = Duration::from_secs(5);
/// Spacing given to the first buffer after a new time base.
const REBASE_STEP: Duration = Duration::from_millis(40);
/// A recorder that failed (a full or failing disk) is started again after this long, at a keyframe.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// Recent keyframes: (recorder time ns, when it arrived), to date the fragments.
type Keyframes = Arc<Mutex<VecDeque<(u64, DateTime<Utc>)>>>;

/// Buffers dropped because the recorder's queue was full, since the agent started (`/metrics`).
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The recorder attached to one camera pipeline; [`Tap::stop`] finishes its last fragment.
pub struct Tap {
    feeder: Arc<Mutex<Feeder>>,
    decoder_seen: Arc<AtomicBool>,
    ring: Arc<ClipRing>,
}

struct Recording {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    eos: Arc<AtomicBool>,
    /// Its pipeline posted an error (the disk is full or failing).
    failed: Arc<AtomicBool>,
}

/// The probe's state: the recording it feeds and the time base.
struct Feeder {
    ring: Arc<ClipRing>,
    fragment: Duration,
    recording: Option<Recording>,
    /// The codec cannot be recorded: the probe does nothing more.
    off: bool,
    /// The recorder failed: started again from the first keyframe after this moment.
    retry_at: Option<std::time::Instant>,
    /// Added to the stream's timestamps (ns).
    offset: i128,
    last_out: Option<u64>,
    /// After a new time base, deltas wait for a keyframe.
    need_keyframe: bool,
    keyframes: Keyframes,
}

/// Attaches a recorder to `pipeline`: once its video decoder appears, the decoder's input is recorded.
pub fn tap(pipeline: &gst::Pipeline, ring: Arc<ClipRing>) -> Tap {
    let feeder = Arc::new(Mutex::new(Feeder {
        ring: ring.clone(),
        fragment: Duration::from_secs(u64::from(ring.fragment_secs.max(1))),
        recording: None,
        off: false,
        retry_at: None,
        offset: 0,
        last_out: None,
        need_keyframe: true,
        keyframes: Arc::new(Mutex::new(VecDeque::new())),
    }));
    let decoder_seen = Arc::new(AtomicBool::new(false));
    let (f, seen) = (feeder.clone(), decoder_seen.clone());
    pipeline.connect_deep_element_added(move |_, _, element| {
        let Some(factory) = element.factory() else { return };
        if !crate::source::decoder::is_video_decoder(&factory) || seen.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(pad) = element.static_pad("sink") else { return };
        let f = f.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
                let mut feeder = f.lock().unwrap_or_else(|e| e.into_inner());
                feeder.on_buffer(pad, buffer);
            }
            gst::PadProbeReturn::Ok
        });
    });
    Tap { feeder, decoder_seen, ring }
}

impl Tap {
    /// The camera delivered frames: without a decoder it sends raw video, which is not recorded.
    pub fn on_frames(&self) {
        if !self.decoder_seen.load(Ordering::SeqCst) && self.ring.status() == RingStatus::Waiting {
            self.ring.set_status(RingStatus::Unavailable("the camera sends raw video, which is kept only encoded (H.264 or H.265)".into()));
        }
    }

    /// Ends the recording: its last fragment is finished (waited for up to 2 s) and closed into the ring.
    pub fn stop(&self) {
        let recording = self.feeder.lock().unwrap_or_else(|e| e.into_inner()).recording.take();
        let Some(r) = recording else { return };
        let _ = r.appsrc.end_of_stream();
        for _ in 0..40 {
            if r.eos.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = r.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Feeder {
    fn on_buffer(&mut self, pad: &gst::Pad, buffer: &gst::Buffer) {
        if self.off {
            return;
        }
        if self.recording.as_ref().is_some_and(|r| r.failed.load(Ordering::SeqCst)) {
            self.give_up_recording();
        }
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        if self.recording.is_none() {
            if self.retry_at.is_some_and(|at| std::time::Instant::now() < at || !keyframe) {
                return;
            }
            match self.start(pad) {
                Ok(r) => {
                    self.recording = Some(r);
                    self.retry_at = None;
                }
                Err(RingStatus::Failed(why)) => {
                    self.ring.set_status(RingStatus::Failed(why));
                    self.retry_at = Some(std::time::Instant::now() + RETRY_AFTER);
                    return;
                }
                Err(status) => {
                    self.ring.set_status(status);
                    self.off = true;
                    return;
                }
            }
        }
        let Some(t) = buffer.dts_or_pts() else { return };
        let t = t.nseconds() as i128;
        let out = t + self.offset;
        let jumped = self.last_out.is_none_or(|last| out < last as i128 || out > last as i128 + MAX_STEP.as_nanos() as i128);
        if jumped {
            let base = self.last_out.map_or(0, |l| l as i128 + REBASE_STEP.as_nanos() as i128);
            self.offset = base - t;
            self.need_keyframe = true;
        }
        if self.need_keyframe && !keyframe {
            return;
        }
        self.need_keyframe = false;
        let shift = |ts: Option<gst::ClockTime>| ts.map(|ts| gst::ClockTime::from_nseconds((ts.nseconds() as i128 + self.offset).max(0) as u64));
        // A shallow copy: new timestamps, the same memory.
        let mut copy = buffer.copy();
        {
            let b = copy.make_mut();
            b.set_pts(shift(buffer.pts()));
            b.set_dts(shift(buffer.dts()));
            if jumped {
                b.set_flags(gst::BufferFlags::DISCONT);
            }
        }
        let out = (t + self.offset).max(0) as u64;
        self.last_out = Some(out);
        if keyframe {
            let mut k = self.keyframes.lock().unwrap_or_else(|e| e.into_inner());
            k.push_back((out, Utc::now()));
            while k.len() > 256 {
                k.pop_front();
            }
        }
        let Some(r) = &self.recording else { return };
        if r.appsrc.current_level_bytes() > QUEUE_BYTES {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            self.need_keyframe = true;
            return;
        }
        if r.appsrc.push_buffer(copy).is_err() {
            self.ring.set_status(RingStatus::Failed("the recorder stopped taking video".into()));
            self.give_up_recording();
        }
    }

    /// Drops a failed recording (shut down on a thread of its own: this is the camera's streaming thread)
    /// and schedules a new one; the ring keeps what was recorded before.
    fn give_up_recording(&mut self) {
        if let Some(r) = self.recording.take() {
            let _ = std::thread::Builder::new().name("recorder-stop".into()).spawn(move || {
                let _ = r.pipeline.set_state(gst::State::Null);
            });
        }
        self.retry_at = Some(std::time::Instant::now() + RETRY_AFTER);
        self.need_keyframe = true;
        tracing::info!(camera = %self.ring.camera, retry_s = RETRY_AFTER.as_secs(), "clip recorder stopped; starting it again shortly");
    }

    /// Builds and starts the recorder for the stream `pad` carries, or says why it cannot be recorded.
    fn start(&mut self, pad: &gst::Pad) -> Result<Recording, RingStatus> {
        let caps = pad.current_caps().ok_or_else(|| RingStatus::Failed("the decoder's input has no caps".into()))?;
        let name = caps.structure(0).map(|s| s.name().to_string()).unwrap_or_default();
        let (codec, parser) = match name.as_str() {
            "video/x-h264" => ("h264", "h264parse"),
            "video/x-h265" => ("h265", "h265parse"),
            "image/jpeg" => return Err(RingStatus::Unavailable("the camera sends MJPEG, which would have to be encoded again to be kept".into())),
            other => return Err(RingStatus::Unavailable(format!("the camera sends {other}; clips are kept of H.264 and H.265 only"))),
        };
        let failed = |what: String| RingStatus::Failed(what);
        let make = |factory: &str| gst::ElementFactory::make(factory).build().map_err(|_| failed(format!("GStreamer element {factory} is not installed")));
        let pipeline = gst::Pipeline::with_name(&format!("recorder-{}", self.ring.camera));
        let appsrc = gst_app::AppSrc::builder().caps(&caps).format(gst::Format::Time).is_live(true).build();
        appsrc.set_max_bytes(QUEUE_BYTES * 2);
        let sink = make("splitmuxsink")?;
        sink.set_property("location", self.ring.next_session());
        sink.set_property("max-size-time", self.fragment.as_nanos() as u64);
        // What the decoder takes is parsed already; MP4 needs it packaged by access unit with its codec
        // data (`avc`/`hvc1`), which a demuxer or RTP depayloader usually gives. Only a byte stream goes
        // through a parser first.
        let structure = caps.structure(0);
        let field = |name: &str| structure.and_then(|s| s.get::<String>(name).ok()).unwrap_or_default();
        let packaged = matches!(field("stream-format").as_str(), "avc" | "avc3" | "hvc1" | "hev1") && field("alignment") == "au";
        let mut chain: Vec<gst::Element> = vec![appsrc.clone().upcast()];
        if !packaged {
            chain.push(make(parser)?);
        }
        chain.push(sink);
        pipeline.add_many(&chain).map_err(|e| failed(format!("cannot assemble the recorder: {e}")))?;
        gst::Element::link_many(&chain).map_err(|e| failed(format!("cannot link the recorder: {e}")))?;

        let eos = Arc::new(AtomicBool::new(false));
        let errored = Arc::new(AtomicBool::new(false));
        let bus = pipeline.bus().ok_or_else(|| failed("the recorder has no bus".into()))?;
        let (ring, keyframes, seen_eos, seen_error) = (self.ring.clone(), self.keyframes.clone(), eos.clone(), errored.clone());
        let open: Mutex<Option<(u64, DateTime<Utc>)>> = Mutex::new(None);
        bus.set_sync_handler(move |_, msg| {
            match msg.view() {
                gst::MessageView::Element(e) => {
                    let Some(s) = e.structure() else { return gst::BusSyncReply::Drop };
                    let running = s.get::<u64>("running-time").ok();
                    match s.name().as_str() {
                        "splitmuxsink-fragment-opened" => {
                            let rt = running.unwrap_or(0);
                            *open.lock().unwrap_or_else(|e| e.into_inner()) = Some((rt, wall_of(&keyframes, rt)));
                        }
                        "splitmuxsink-fragment-closed" => {
                            let opened = open.lock().unwrap_or_else(|e| e.into_inner()).take();
                            if let (Some((rt0, start)), Ok(location)) = (opened, s.get::<String>("location")) {
                                let length = running.unwrap_or(rt0).saturating_sub(rt0);
                                let end = start + chrono::Duration::nanoseconds(length as i64);
                                let bytes = std::fs::metadata(&location).map(|m| m.len()).unwrap_or(0);
                                if bytes > 0 && end > start {
                                    ring.closed(Fragment { path: location.into(), start, end, bytes });
                                }
                            }
                        }
                        _ => {}
                    }
                }
                gst::MessageView::Eos(_) => seen_eos.store(true, Ordering::SeqCst),
                gst::MessageView::Error(err) => {
                    ring.set_status(RingStatus::Failed(format!("{} (from {})", err.error(), msg.src().map(|s| s.name().to_string()).unwrap_or_default())));
                    seen_eos.store(true, Ordering::SeqCst);
                    seen_error.store(true, Ordering::SeqCst);
                }
                _ => {}
            }
            gst::BusSyncReply::Drop
        });
        pipeline.set_state(gst::State::Playing).map_err(|_| failed("the recorder refused to start".into()))?;
        self.ring.set_status(RingStatus::Recording(codec));
        Ok(Recording { pipeline, appsrc, eos, failed: errored })
    }
}

/// When the keyframe at recorder time `rt` arrived (the nearest one at or before it).
fn wall_of(keyframes: &Mutex<VecDeque<(u64, DateTime<Utc>)>>, rt: u64) -> DateTime<Utc> {
    let k = keyframes.lock().unwrap_or_else(|e| e.into_inner());
    match k.iter().rev().find(|(t, _)| *t <= rt) {
        Some((t, wall)) => *wall + chrono::Duration::nanoseconds((rt - t) as i64),
        None => k.front().map(|(t, wall)| *wall - chrono::Duration::nanoseconds(t.saturating_sub(rt) as i64)).unwrap_or_else(Utc::now),
    }
}
