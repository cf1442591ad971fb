//! The duty desk's live view: a camera's latest analysed frame, scaled down, with what the agent sees
//! drawn on it — the detections, the counting lines (and their *in* side), the zones and the motion
//! masks. Drawn only when someone watches ([`crate::stats::CameraRecord::request_live`]): a camera nobody
//! watches pays nothing.

use edge_config::{Line, Zone};
use models::geometry::BBox;
use models::image::resize_bilinear;
use models::{BgrImage, BgrView, ObjectKind};

/// The live picture's width at most.
pub const LIVE_WIDTH: u32 = 960;

/// BGR colours.
const LINE: [u8; 3] = [0, 230, 255];
const IN_SIDE: [u8; 3] = [80, 220, 40];
const ZONE: [u8; 3] = [255, 200, 0];
const MASK: [u8; 3] = [200, 0, 200];
const VEHICLE: [u8; 3] = [0, 120, 255];
const PERSON: [u8; 3] = [255, 90, 30];

/// What is drawn besides the detections: the camera's geometry, in fractions of the frame.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    pub lines: Vec<Line>,
    pub zones: Vec<Zone>,
    pub masks: Vec<Vec<[f64; 2]>>,
}

/// One thing detected, in frame pixels.
pub struct Seen {
    pub bbox: BBox,
    pub kind: Option<ObjectKind>,
}

struct Canvas {
    image: BgrImage,
}

impl Canvas {
    fn put(&mut self, x: i64, y: i64, colour: [u8; 3]) {
        let (w, h) = (self.image.width() as i64, self.image.height() as i64);
        if x < 0 || y < 0 || x >= w || y >= h {
            return;
        }
        let i = ((y * w + x) * 3) as usize;
        self.image.as_bytes_mut()[i..i + 3].copy_from_slice(&colour);
    }

    /// A line `thickness` pixels wide.
    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), colour: [u8; 3], thickness: i64) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as i64;
        let r = thickness / 2;
        for i in 0..=steps {
            let t = i as f64 / steps as f64;
            let (x, y) = ((x0 + (x1 - x0) * t).round() as i64, (y0 + (y1 - y0) * t).round() as i64);
            for dy in -r..=r {
                for dx in -r..=r {
                    self.put(x + dx, y + dy, colour);
                }
            }
        }
    }

    fn polygon(&mut self, points: &[(f64, f64)], colour: [u8; 3], thickness: i64) {
        for (i, &a) in points.iter().enumerate() {
            self.line(a, points[(i + 1) % points.len()], colour, thickness);
        }
    }

    /// Darkens what is inside `points` by half (a masked area).
    fn shade(&mut self, points: &[(f64, f64)]) {
        let (w, h) = (self.image.width() as usize, self.image.height() as usize);
        let data = self.image.as_bytes_mut();
        for y in 0..h {
            let py = y as f64 + 0.5;
            // Even-odd crossings of this row.
            let mut xs: Vec<f64> = Vec::new();
            for (i, &(ax, ay)) in points.iter().enumerate() {
                let (bx, by) = points[(i + 1) % points.len()];
                if (ay <= py) != (by <= py) {
                    xs.push(ax + (py - ay) / (by - ay) * (bx - ax));
                }
            }
            xs.sort_by(f64::total_cmp);
            for pair in xs.chunks_exact(2) {
                let (from, to) = (pair[0].max(0.0) as usize, (pair[1].min(w as f64)) as usize);
                for x in from..to.min(w) {
                    let i = (y * w + x) * 3;
                    for c in &mut data[i..i + 3] {
                        *c /= 2;
                    }
                }
            }
        }
    }
}

/// The live picture of `frame` with `seen` and `overlay` drawn, as a JPEG.
pub fn render(frame: &BgrView<'_>, seen: &[Seen], overlay: &Overlay) -> Option<Vec<u8>> {
    let (w, h) = (frame.width(), frame.height());
    let scale = (LIVE_WIDTH as f64 / w.max(1) as f64).min(1.0);
    let (sw, sh) = (((w as f64 * scale) as u32).max(1), ((h as f64 * scale) as u32).max(1));
    let mut canvas = Canvas { image: resize_bilinear(frame, sw, sh) };
    let at = |p: &[f64; 2]| (p[0] * sw as f64, p[1] * sh as f64);
    for mask in &overlay.masks {
        let points: Vec<(f64, f64)> = mask.iter().map(at).collect();
        if points.len() >= 3 {
            canvas.shade(&points);
            canvas.polygon(&points, MASK, 2);
        }
    }
    for zone in &overlay.zones {
        let points: Vec<(f64, f64)> = zone.points.iter().map(at).collect();
        if points.len() >= 3 {
            canvas.polygon(&points, ZONE, 2);
        }
    }
    for line in &overlay.lines {
        let (a, b) = (at(&line.points[0]), at(&line.points[1]));
        canvas.line(a, b, LINE, 4);
        // A tick from the line's middle towards its *in* side.
        let mid = ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt().max(1e-9);
        let (nx, ny) = (-dy / len, dx / len);
        let inside = at(&line.in_side);
        let sign = if (inside.0 - mid.0) * nx + (inside.1 - mid.1) * ny >= 0.0 { 1.0 } else { -1.0 };
        let tip = (mid.0 + sign * nx * 30.0, mid.1 + sign * ny * 30.0);
        canvas.line(mid, tip, IN_SIDE, 4);
    }
    for s in seen {
        let b = &s.bbox;
        let (x1, y1, x2, y2) = (b.x1 as f64 * scale, b.y1 as f64 * scale, b.x2 as f64 * scale, b.y2 as f64 * scale);
        let colour = if s.kind == Some(ObjectKind::Person) { PERSON } else { VEHICLE };
        canvas.polygon(&[(x1, y1), (x2, y1), (x2, y2), (x1, y2)], colour, 2);
    }
    crate::events::snapshot::image_jpeg(canvas.image, 400_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_zones_masks_and_boxes_are_drawn_where_the_config_puts_them() {
        let frame = BgrImage::new(1920, 1080, vec![110; 1920 * 1080 * 3]).unwrap();
        let overlay = Overlay {
            lines: vec![Line { id: "gate".into(), points: [[0.0, 0.5], [1.0, 0.5]], in_side: [0.5, 0.9] }],
            zones: vec![Zone { id: "z".into(), points: vec![[0.1, 0.1], [0.3, 0.1], [0.3, 0.3]] }],
            masks: vec![vec![[0.7, 0.0], [1.0, 0.0], [1.0, 0.2], [0.7, 0.2]]],
        };
        let seen = [Seen { bbox: BBox::new(100.0, 600.0, 500.0, 900.0), kind: Some(ObjectKind::Vehicle) }];
        let jpeg = render(&frame.view(), &seen, &overlay).unwrap();
        let img = image::load_from_memory(&jpeg).unwrap().into_rgb8();
        assert_eq!(img.dimensions(), (960, 540));
        let px = |x: u32, y: u32| img.get_pixel(x, y).0;
        let near = |p: [u8; 3], rgb: [u8; 3]| p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) < 40);
        assert!(near(px(100, 270), [255, 230, 0]), "the line across the middle: {:?}", px(100, 270));
        assert!(near(px(480, 290), [40, 220, 80]), "its in side below: {:?}", px(480, 290));
        assert!(near(px(480, 250), [110, 110, 110]), "nothing above the line's middle");
        assert!(near(px(900, 50), [55, 55, 55]), "the mask darkened: {:?}", px(900, 50));
        assert!(near(px(50, 400), [255, 120, 0]), "the vehicle's box: {:?}", px(50, 400));
    }
}
