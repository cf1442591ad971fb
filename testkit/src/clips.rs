//! Test clips built at test time from the still images in `../shared/data`: a background with sprites (crops
//! of real photos) moving across it, or a window panning over a photo, encoded by real GStreamer
//! (`appsrc ! videoconvert ! x264enc ! h264parse ! mp4mux ! filesink`).
//!
//! Frames are composed by copying rows only (sprites are scaled once, up front), so building a clip is fast
//! even in debug builds.

use std::path::Path;

use anyhow::{anyhow, bail, Context};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use image::RgbImage;

/// Video codec of a test clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    H264,
    H265,
    Mjpeg,
}

/// Loads a JPEG/PNG as RGB.
pub fn load_rgb(path: &Path) -> RgbImage {
    image::open(path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display())).into_rgb8()
}

/// Scales to exactly `w`x`h` (bilinear).
pub fn resize(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle)
}

/// Scales by `factor`, keeping the aspect ratio.
pub fn scale(img: &RgbImage, factor: f64) -> RgbImage {
    let w = ((img.width() as f64 * factor).round() as u32).max(1);
    let h = ((img.height() as f64 * factor).round() as u32).max(1);
    resize(img, w, h)
}

/// The part of `img` inside `(x, y, w, h)`.
pub fn crop(img: &RgbImage, x: u32, y: u32, w: u32, h: u32) -> RgbImage {
    image::imageops::crop_imm(img, x, y, w, h).to_image()
}

/// A flat grey background.
pub fn grey(w: u32, h: u32, level: u8) -> RgbImage {
    RgbImage::from_pixel(w, h, image::Rgb([level, level, level]))
}

/// An image moving in a straight line while it is on screen.
#[derive(Debug, Clone)]
pub struct Sprite {
    pub image: RgbImage,
    /// Top-left corner in output pixels at `start_s` and at `end_s`.
    pub from: (f64, f64),
    pub to: (f64, f64),
    pub start_s: f64,
    pub end_s: f64,
}

impl Sprite {
    fn position(&self, t: f64) -> Option<(i64, i64)> {
        if t < self.start_s || t > self.end_s {
            return None;
        }
        let span = (self.end_s - self.start_s).max(1e-9);
        let a = (t - self.start_s) / span;
        let x = self.from.0 + (self.to.0 - self.from.0) * a;
        let y = self.from.1 + (self.to.1 - self.from.1) * a;
        Some((x.round() as i64, y.round() as i64))
    }
}

/// A clip to render.
#[derive(Debug, Clone)]
pub struct ClipSpec {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub seconds: f64,
    /// Scaled to the output size if it is not already.
    pub background: RgbImage,
    pub sprites: Vec<Sprite>,
    pub codec: Codec,
    /// Sensor noise: every pixel changes by up to ± this much from frame to frame.
    pub noise: u8,
    /// Light drift: the whole picture gets this many grey levels brighter (negative: darker) from the
    /// first frame to the last, linearly.
    pub drift: f64,
}

fn paste(frame: &mut RgbImage, sprite: &RgbImage, x: i64, y: i64) {
    let (fw, fh) = (frame.width() as i64, frame.height() as i64);
    let (sw, sh) = (sprite.width() as i64, sprite.height() as i64);
    let x0 = x.max(0);
    let x1 = (x + sw).min(fw);
    if x1 <= x0 {
        return;
    }
    let row_bytes = ((x1 - x0) * 3) as usize;
    for row in y.max(0)..(y + sh).min(fh) {
        let src_start = (((row - y) * sw + (x0 - x)) * 3) as usize;
        let dst_start = ((row * fw + x0) * 3) as usize;
        let src = &sprite.as_raw()[src_start..src_start + row_bytes];
        (&mut **frame)[dst_start..dst_start + row_bytes].copy_from_slice(src);
    }
}

fn encoder(codec: Codec) -> &'static str {
    match codec {
        Codec::H264 => "x264enc speed-preset=ultrafast tune=zerolatency key-int-max=25 ! h264parse ! mp4mux",
        Codec::H265 => "x265enc speed-preset=ultrafast tune=zerolatency key-int-max=25 ! h265parse ! mp4mux",
        Codec::Mjpeg => "jpegenc quality=90 ! avimux",
    }
}

/// Renders `spec` into `path` (MP4 for H.264/H.265, AVI for MJPEG).
pub fn render(spec: &ClipSpec, path: &Path) -> anyhow::Result<()> {
    let frames = (spec.seconds * spec.fps as f64).round() as u64;
    let background = if spec.background.dimensions() == (spec.width, spec.height) { spec.background.clone() } else { resize(&spec.background, spec.width, spec.height) };
    render_frames(spec.width, spec.height, spec.fps, frames, spec.codec, path, |i, frame| {
        let mut img = background.clone();
        let t = i as f64 / spec.fps as f64;
        for s in &spec.sprites {
            if let Some((x, y)) = s.position(t) {
                paste(&mut img, &s.image, x, y);
            }
        }
        frame.copy_from_slice(img.as_raw());
        disturb(frame, spec, i, frames);
    })
}

/// Adds the clip's light drift and sensor noise to frame `i` of `frames`.
fn disturb(frame: &mut [u8], spec: &ClipSpec, i: u64, frames: u64) {
    let drift = (spec.drift * i as f64 / frames.saturating_sub(1).max(1) as f64).round() as i16;
    shake(frame, i, spec.noise, drift);
}

/// Sensor noise of up to ± `noise` on every pixel of frame `i`, and `drift` grey levels on all of them. The
/// noise comes from a fixed table read at a different offset each frame (cheap, and uncorrelated from one
/// frame to the next).
pub fn shake(frame: &mut [u8], i: u64, noise: u8, drift: i16) {
    if noise == 0 && drift == 0 {
        return;
    }
    const TABLE: usize = 1 << 16;
    static NOISE: std::sync::OnceLock<Vec<i16>> = std::sync::OnceLock::new();
    let table = NOISE.get_or_init(|| {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        (0..TABLE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2001) as i16 - 1000
            })
            .collect()
    });
    let offset = (i.wrapping_mul(7919) as usize) % TABLE;
    let amplitude = i16::from(noise);
    for (k, p) in frame.iter_mut().enumerate() {
        let n = table[(offset + k) % TABLE] * amplitude / 1000;
        *p = (i16::from(*p) + drift + n).clamp(0, 255) as u8;
    }
}

/// A `w`x`h` window sliding from the left edge of `img` to its right edge over the clip.
pub fn render_pan(img: &RgbImage, w: u32, h: u32, fps: u32, seconds: f64, codec: Codec, path: &Path) -> anyhow::Result<()> {
    if img.width() < w || img.height() < h {
        bail!("image {}x{} is smaller than the {w}x{h} window", img.width(), img.height());
    }
    let frames = (seconds * fps as f64).round() as u64;
    let travel = (img.width() - w) as f64;
    let y0 = (img.height() - h) / 2;
    render_frames(w, h, fps, frames, codec, path, |i, frame| {
        let x0 = (travel * i as f64 / frames.saturating_sub(1).max(1) as f64).round() as u32;
        for row in 0..h {
            let src = ((row + y0) * img.width() + x0) as usize * 3;
            let dst = (row * w) as usize * 3;
            frame[dst..dst + w as usize * 3].copy_from_slice(&img.as_raw()[src..src + w as usize * 3]);
        }
    })
}

/// Encodes `frames` RGB frames produced by `fill(index, buffer)`.
pub fn render_frames(width: u32, height: u32, fps: u32, frames: u64, codec: Codec, path: &Path, mut fill: impl FnMut(u64, &mut Vec<u8>)) -> anyhow::Result<()> {
    gst::init()?;
    let description = format!("appsrc name=src format=time is-live=false block=true ! videoconvert ! video/x-raw,format=I420 ! {} ! filesink name=sink", encoder(codec));
    let pipeline = gst::parse::launch(&description)
        .with_context(|| format!("cannot build encoder pipeline `{description}` (missing GStreamer plugin?)"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("not a pipeline"))?;
    let src = pipeline.by_name("src").and_then(|e| e.downcast::<gst_app::AppSrc>().ok()).ok_or_else(|| anyhow!("no appsrc"))?;
    let sink = pipeline.by_name("sink").ok_or_else(|| anyhow!("no filesink"))?;
    sink.set_property("location", path.to_str().ok_or_else(|| anyhow!("non-UTF-8 path"))?);
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "RGB")
        .field("width", width as i32)
        .field("height", height as i32)
        .field("framerate", gst::Fraction::new(fps as i32, 1))
        .build();
    src.set_caps(Some(&caps));
    pipeline.set_state(gst::State::Playing)?;
    let frame_ns = 1_000_000_000u64 / fps as u64;
    let mut buf = vec![0u8; (width * height * 3) as usize];
    for i in 0..frames {
        fill(i, &mut buf);
        let mut buffer = gst::Buffer::from_slice(buf.clone());
        {
            let b = buffer.get_mut().ok_or_else(|| anyhow!("buffer not writable"))?;
            b.set_pts(gst::ClockTime::from_nseconds(i * frame_ns));
            b.set_duration(gst::ClockTime::from_nseconds(frame_ns));
        }
        src.push_buffer(buffer).map_err(|e| anyhow!("push frame {i}: {e:?}"))?;
    }
    src.end_of_stream().map_err(|e| anyhow!("end of stream: {e:?}"))?;
    let bus = pipeline.bus().ok_or_else(|| anyhow!("no bus"))?;
    let result = match bus.timed_pop_filtered(gst::ClockTime::from_seconds(120), &[gst::MessageType::Eos, gst::MessageType::Error]) {
        Some(msg) => match msg.view() {
            gst::MessageView::Eos(_) => Ok(()),
            gst::MessageView::Error(e) => Err(anyhow!("encoding {} failed: {} ({:?})", path.display(), e.error(), e.debug())),
            _ => Ok(()),
        },
        None => Err(anyhow!("encoding {} timed out", path.display())),
    };
    pipeline.set_state(gst::State::Null)?;
    result
}

/// A 1280x720 H.264 clip panning across the street scene with the green plate (the benchmark clip).
pub fn street_pan_720p(path: &Path, seconds: f64) -> anyhow::Result<()> {
    let img = load_rgb(&crate::data("scenes/hy_test_img.jpg"));
    render_pan(&img, 1280, 720, 25, seconds, Codec::H264, path)
}

/// A clip cached under `target/test-clips/{name}`, rendered by `make` the first time. Rendering writes to a
/// temporary name and renames, so concurrent test processes never see a half-written clip.
pub fn cached(name: &str, make: impl FnOnce(&Path) -> anyhow::Result<()>) -> std::path::PathBuf {
    static RENDERING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = RENDERING.lock().unwrap_or_else(|p| p.into_inner());
    let dir = crate::workspace_dir().join("target/test-clips");
    std::fs::create_dir_all(&dir).expect("create target/test-clips");
    let path = dir.join(name);
    if path.exists() {
        return path;
    }
    let tmp = dir.join(format!(".{name}.{}.partial", std::process::id()));
    make(&tmp).unwrap_or_else(|e| panic!("cannot render test clip {name}: {e:#}"));
    std::fs::rename(&tmp, &path).expect("rename rendered clip");
    path
}

/// The 1280x720 street pan (4 s), cached.
pub fn street_pan() -> std::path::PathBuf {
    cached("street_pan_720p_4s.mp4", |p| street_pan_720p(p, 4.0))
}

/// The street scene with the green plate, still, at its native 1920x1080 for 3 s (H.264), cached.
pub fn street_still_1080p() -> std::path::PathBuf {
    cached("street_still_1080p_3s.mp4", |p| {
        let img = load_rgb(&crate::data("scenes/hy_test_img.jpg"));
        let spec = ClipSpec { width: 1920, height: 1080, fps: 25, seconds: 3.0, background: img, sprites: Vec::new(), codec: Codec::H264, noise: 0, drift: 0.0 };
        render(&spec, p)
    })
}
