//! The best picture of each tracked object.
//!
//! Design: every frame an object is matched, its observation gets a quality: larger and sharper is better,
//! and for vehicles any frame with a plate read beats every frame without one (higher plate confidence
//! first). When a frame beats the best so far, the object and some context around it are copied out of the
//! frame (already scaled to the snapshot width, so holding it is cheap). At the end the copy is encoded as
//! a JPEG no larger than the configured size.

use image::codecs::jpeg::JpegEncoder;
use image::ExtendedColorType;
use models::image::{resize_bilinear, BgrImage, BgrView};
use models::plates::PlateRead;
use models::BBox;
use sha2::{Digest, Sha256};

/// How snapshots are made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SnapshotSettings {
    pub max_width: u32,
    pub max_bytes: usize,
    /// Context around the object, as a fraction of its size on each side.
    pub context: f32,
    /// Besides the snapshot, the whole frame scaled to this width (0: none), for an uplink that asks for
    /// scene pictures (GA/T 1400).
    pub scene_width: u32,
    /// Largest JPEG of the scene picture, bytes.
    pub scene_max_bytes: usize,
    /// Which objects the scene is taken of: people, and vehicles that carry plates (the uplink's records).
    pub scene_people: bool,
    pub scene_vehicles: bool,
    /// Besides the snapshot, the best read plate cut from the frame at full resolution.
    pub plate_crop: bool,
}

/// The best observation so far.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub quality: f64,
    pub image: BgrImage,
    /// The object's box inside `image`.
    pub object_box: BBox,
    /// The part of the frame `image` shows, in frame pixels.
    pub frame_region: BBox,
    pub taken_at: chrono::DateTime<chrono::Utc>,
    /// The whole frame as analysed and the object's box in it, when `scene_width` asks for it: copied as
    /// it is (a copy is cheap, a scaling is not) and scaled once, for the picture that wins
    /// ([`scaled_scene`]).
    pub scene: Option<(BgrImage, BBox)>,
    /// The plate read in this frame, when `plate_crop` asks for it.
    pub plate: Option<BgrImage>,
}

/// Sharpness: variance of the Laplacian of the grey image, on at most 96 rows.
pub fn sharpness(view: &BgrView<'_>) -> f64 {
    let step = (view.height() / 96).max(1);
    let gray = |y: u32, x: usize| {
        let r = view.row(y);
        r[x * 3] as f64 * 0.114 + r[x * 3 + 1] as f64 * 0.587 + r[x * 3 + 2] as f64 * 0.299
    };
    let (w, h) = (view.width() as usize, view.height());
    if w < 3 || h < 3 * step {
        return 0.0;
    }
    let xstep = (w / 96).max(1);
    let (mut sum, mut sum2, mut n) = (0.0, 0.0, 0.0);
    let mut y = step;
    while y + step < h {
        let mut x = xstep;
        while x + xstep < w {
            let lap = gray(y - step, x) + gray(y + step, x) + gray(y, x - xstep) + gray(y, x + xstep) - 4.0 * gray(y, x);
            sum += lap;
            sum2 += lap * lap;
            n += 1.0;
            x += xstep;
        }
        y += step;
    }
    if n == 0.0 {
        0.0
    } else {
        sum2 / n - (sum / n).powi(2)
    }
}

/// Quality of an observation: box area (its square root, so size does not drown sharpness), sharpness and
/// detection score; a plate read in this frame (its confidence) outranks everything else.
pub fn quality(bbox: &BBox, score: f32, sharp: f64, plate_confidence: Option<f32>) -> f64 {
    let base = (bbox.area() as f64).sqrt() * (0.5 + 0.5 * (sharp / 400.0).min(1.0)) * score as f64;
    match plate_confidence {
        Some(c) => 1e6 * (1.0 + c as f64) + base,
        None => base,
    }
}

/// Copies `bbox` plus context out of the frame, scaled down to `max_width`; with the settings' extras,
/// also the whole frame and the plate read in this frame.
pub fn capture(
    frame: &BgrView<'_>,
    bbox: &BBox,
    plate: Option<&PlateRead>,
    settings: &SnapshotSettings,
    taken_at: chrono::DateTime<chrono::Utc>,
    quality: f64,
) -> Option<Candidate> {
    let region = bbox.expand(settings.context).clamp(frame.width() as f32, frame.height() as f32);
    let crop = frame.crop(region)?;
    let region = BBox::new(region.x1.floor(), region.y1.floor(), region.x1.floor() + crop.width() as f32, region.y1.floor() + crop.height() as f32);
    let scale = (settings.max_width as f32 / crop.width() as f32).min(1.0);
    let image = if scale < 1.0 {
        let w = ((crop.width() as f32 * scale).round() as u32).max(1);
        let h = ((crop.height() as f32 * scale).round() as u32).max(1);
        resize_bilinear(&crop, w, h)
    } else {
        crop.to_owned()
    };
    let object_box = BBox::new((bbox.x1 - region.x1) * scale, (bbox.y1 - region.y1) * scale, (bbox.x2 - region.x1) * scale, (bbox.y2 - region.y1) * scale)
        .clamp(image.width() as f32, image.height() as f32);
    let scene = (settings.scene_width > 0).then(|| (frame.to_owned(), *bbox));
    let plate = plate.filter(|_| settings.plate_crop).and_then(|p| plate_crop(frame, p));
    Some(Candidate { quality, image, object_box, frame_region: region, taken_at, scene, plate })
}

/// The whole frame at `width` (or its own, when smaller) and `bbox` in it.
pub fn scaled_scene(frame: &BgrView<'_>, bbox: &BBox, width: u32) -> (BgrImage, BBox) {
    let scale = (width as f32 / frame.width().max(1) as f32).min(1.0);
    let (w, h) = (((frame.width() as f32 * scale).round() as u32).max(1), ((frame.height() as f32 * scale).round() as u32).max(1));
    let image = if scale < 1.0 { resize_bilinear(frame, w, h) } else { frame.to_owned() };
    let b = BBox::new(bbox.x1 * scale, bbox.y1 * scale, bbox.x2 * scale, bbox.y2 * scale).clamp(w as f32, h as f32);
    (image, b)
}

/// Largest plate picture kept, pixels across (a plate read at 1080p is 100–300 pixels wide).
const PLATE_CROP_MAX_WIDTH: f32 = 480.0;

/// The plate read at `plate` (its corners), made upright by its perspective at its own resolution (at most
/// [`PLATE_CROP_MAX_WIDTH`] across), with a margin of a twentieth of its size: the plate picture a GA/T
/// 1400 platform shows beside the vehicle. A plate is 440 mm across and 140 mm (one row) or 220 mm (two
/// rows) high.
fn plate_crop(frame: &BgrView<'_>, plate: &PlateRead) -> Option<BgrImage> {
    let [tl, tr, br, bl] = plate.corners;
    let len = |a: (f32, f32), b: (f32, f32)| ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
    let width = len(tl, tr).max(len(bl, br)).clamp(32.0, PLATE_CROP_MAX_WIDTH);
    let height = width * if plate.rows.count() == 2 { 220.0 / 440.0 } else { 140.0 / 440.0 };
    let corners = models::plates::rectify::expand_quad(&plate.corners, 0.05, 0.05);
    models::plates::rectify::warp_quad(frame, &corners, (width * 1.1).round() as u32, (height * 1.1).round() as u32)
}

/// A finished snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// The object's box in the JPEG's pixels.
    pub object_box: BBox,
    pub sha256: String,
}

/// The whole frame as a JPEG of at most `max_width` pixels across and `max_bytes` (the `snapshot` command).
pub fn frame_jpeg(frame: &BgrView<'_>, max_width: u32, max_bytes: usize) -> Option<Vec<u8>> {
    let (w, h) = (frame.width(), frame.height());
    let scale = (max_width as f32 / w.max(1) as f32).min(1.0);
    let (sw, sh) = (((w as f32 * scale) as u32).max(1), ((h as f32 * scale) as u32).max(1));
    image_jpeg(resize_bilinear(frame, sw, sh), max_bytes)
}

/// A picture as it is, as a JPEG of at most `max_bytes` (the live view draws on it first).
pub fn image_jpeg(image: BgrImage, max_bytes: usize) -> Option<Vec<u8>> {
    let whole = BBox::new(0.0, 0.0, image.width() as f32, image.height() as f32);
    encode_image(&image, whole, max_bytes).map(|e| e.jpeg)
}

/// Encodes the candidate as JPEG, lowering quality and then size until it fits `max_bytes`.
pub fn encode(candidate: &Candidate, max_bytes: usize) -> Option<Encoded> {
    encode_image(&candidate.image, candidate.object_box, max_bytes)
}

/// Encodes `image` (with `object_box` in it) as JPEG, lowering quality and then size until it fits
/// `max_bytes`.
pub fn encode_image(image: &BgrImage, object_box: BBox, max_bytes: usize) -> Option<Encoded> {
    let mut image = image.clone();
    let mut object_box = object_box;
    loop {
        let rgb: Vec<u8> = image.as_bytes().chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
        for q in [85u8, 75, 65, 50] {
            let mut jpeg = Vec::new();
            JpegEncoder::new_with_quality(&mut jpeg, q).encode(&rgb, image.width(), image.height(), ExtendedColorType::Rgb8).ok()?;
            if jpeg.len() <= max_bytes {
                let sha256 = hex::encode(Sha256::digest(&jpeg));
                return Some(Encoded { jpeg, width: image.width(), height: image.height(), object_box, sha256 });
            }
        }
        if image.width() < 64 {
            return None;
        }
        let (w, h) = (image.width() * 3 / 4, image.height() * 3 / 4);
        object_box = BBox::new(object_box.x1 * 0.75, object_box.y1 * 0.75, object_box.x2 * 0.75, object_box.y2 * 0.75);
        image = resize_bilinear(&image.view(), w.max(1), h.max(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(w: u32, h: u32, seed: u32) -> BgrImage {
        let mut x = seed;
        let data = (0..w * h * 3)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        BgrImage::new(w, h, data).unwrap()
    }

    #[test]
    fn sharp_images_score_higher_than_flat_ones() {
        let flat = BgrImage::new(100, 100, vec![128; 30_000]).unwrap();
        assert_eq!(sharpness(&flat.view()), 0.0);
        assert!(sharpness(&noise(100, 100, 1).view()) > 1000.0);
    }

    #[test]
    fn a_plate_read_outranks_a_bigger_picture() {
        let small = BBox::new(0.0, 0.0, 100.0, 100.0);
        let big = BBox::new(0.0, 0.0, 1000.0, 1000.0);
        assert!(quality(&small, 0.5, 10.0, Some(0.6)) > quality(&big, 0.99, 1000.0, None));
        assert!(quality(&small, 0.5, 10.0, Some(0.9)) > quality(&big, 0.99, 1000.0, Some(0.6)));
        assert!(quality(&big, 0.9, 100.0, None) > quality(&small, 0.9, 100.0, None));
    }

    #[test]
    fn capture_keeps_context_and_scales_down() {
        let frame = noise(2000, 1000, 2);
        let settings = SnapshotSettings {
            max_width: 400,
            max_bytes: 100_000,
            context: 0.25,
            scene_width: 0,
            scene_max_bytes: 0,
            scene_people: false,
            scene_vehicles: false,
            plate_crop: false,
        };
        let c = capture(&frame.view(), &BBox::new(800.0, 400.0, 1600.0, 800.0), None, &settings, chrono::Utc::now(), 1.0).unwrap();
        assert_eq!(c.frame_region, BBox::new(600.0, 300.0, 1800.0, 900.0));
        assert_eq!(c.image.width(), 400);
        assert_eq!(c.image.height(), 200);
        assert!((c.object_box.x1 - 66.7).abs() < 0.5 && (c.object_box.y2 - 166.7).abs() < 0.5, "{:?}", c.object_box);
    }

    #[test]
    fn encoding_respects_the_size_limit() {
        let frame = noise(640, 480, 3);
        let settings =
            SnapshotSettings { max_width: 640, max_bytes: 20_000, context: 0.0, scene_width: 0, scene_max_bytes: 0, scene_people: false, scene_vehicles: false, plate_crop: false };
        let c = capture(&frame.view(), &BBox::new(0.0, 0.0, 640.0, 480.0), None, &settings, chrono::Utc::now(), 1.0).unwrap();
        let e = encode(&c, 20_000).unwrap();
        assert!(e.jpeg.len() <= 20_000);
        assert!(e.width < 640, "noise does not compress: must have been scaled down");
        assert_eq!(&e.jpeg[..2], &[0xFF, 0xD8]);
    }

    #[test]
    fn the_scene_and_the_plate_are_kept_beside_the_snapshot_when_asked_for() {
        let frame = noise(1920, 1080, 3);
        let settings = SnapshotSettings {
            max_width: 400,
            max_bytes: 100_000,
            context: 0.25,
            scene_width: 1280,
            scene_max_bytes: 400_000,
            scene_people: false,
            scene_vehicles: true,
            plate_crop: true,
        };
        // A plate seen at a slant: 140 pixels across, its right side higher.
        let plate = PlateRead {
            text: "京PL3N67".into(),
            confidence: 0.9,
            char_confidences: vec![],
            min_char_confidence: 0.9,
            layout: "civil",
            colour: models::plates::PlateColour::Blue,
            rows: models::plates::PlateRows::Single,
            corners: [(1000.0, 720.0), (1140.0, 700.0), (1140.0, 745.0), (1000.0, 765.0)],
            bbox: BBox::new(1000.0, 700.0, 1140.0, 765.0),
            detector_score: 0.9,
            region: None,
        };
        let c = capture(&frame.view(), &BBox::new(800.0, 400.0, 1600.0, 800.0), Some(&plate), &settings, chrono::Utc::now(), 1.0).unwrap();
        let (frame_copy, frame_box) = c.scene.as_ref().unwrap();
        let (scene, b) = scaled_scene(&frame_copy.view(), frame_box, settings.scene_width);
        assert_eq!((scene.width(), scene.height()), (1280, 720));
        assert!((b.x1 - 533.3).abs() < 1.0 && (b.x2 - 1066.7).abs() < 1.0, "{b:?}");
        // The plate upright, as wide as it was seen, a plate's shape.
        let p = c.plate.as_ref().unwrap();
        assert_eq!((p.width(), p.height()), (156, 49));
        // Without the extras, none.
        let plain = SnapshotSettings { scene_width: 0, plate_crop: false, ..settings };
        let c = capture(&frame.view(), &BBox::new(800.0, 400.0, 1600.0, 800.0), Some(&plate), &plain, chrono::Utc::now(), 1.0).unwrap();
        assert!(c.scene.is_none() && c.plate.is_none());
    }
}
