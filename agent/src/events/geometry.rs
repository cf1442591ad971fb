//! Virtual lines and zones in frame pixels. Configured in fractions of the frame; converted for the frame
//! size at hand, so a resolution change moves nothing.
//!
//! Design: an object's ground point (bottom centre of its box) is followed frame to frame. A line is crossed
//! when that point goes from one side to the other by more than a small hysteresis band (so jitter on the
//! line does not count), and the path between the two positions passes through the line segment itself (an
//! object walking past the end of the line does not cross it). The direction is `in` when the point ends on
//! the configured in-side.

use edge_config::{Line, Zone};

pub type Point = (f64, f64);

/// Crossing direction (the rules' `direction` key is the same type).
pub use edge_config::Direction;

/// A line in pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct LineGeom {
    pub id: String,
    a: Point,
    b: Point,
    /// +1 or -1: the sign of the side function on the in-side.
    in_sign: f64,
    /// Hysteresis band in pixels.
    band: f64,
}

fn cross(a: Point, b: Point, p: Point) -> f64 {
    (b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0)
}

impl LineGeom {
    pub fn new(line: &Line, width: u32, height: u32) -> Self {
        let (w, h) = (width as f64, height as f64);
        let a = (line.points[0][0] * w, line.points[0][1] * h);
        let b = (line.points[1][0] * w, line.points[1][1] * h);
        let inside = (line.in_side[0] * w, line.in_side[1] * h);
        let in_sign = if cross(a, b, inside) >= 0.0 { 1.0 } else { -1.0 };
        Self { id: line.id.clone(), a, b, in_sign, band: 0.01 * w.min(h) }
    }

    /// Signed distance of `p` from the line in pixels, positive on the in-side.
    pub fn side(&self, p: Point) -> f64 {
        let len = ((self.b.0 - self.a.0).powi(2) + (self.b.1 - self.a.1).powi(2)).sqrt().max(1e-9);
        self.in_sign * cross(self.a, self.b, p) / len
    }

    /// Whether the path `from → to` passes through the segment (with 5 % slack at its ends).
    fn path_meets_segment(&self, from: Point, to: Point) -> bool {
        let (d1, d2) = (cross(self.a, self.b, from), cross(self.a, self.b, to));
        if d1 == d2 {
            return false;
        }
        // Where along the path the line is met, then where that point is along the segment.
        let t = d1 / (d1 - d2);
        let hit = (from.0 + (to.0 - from.0) * t, from.1 + (to.1 - from.1) * t);
        let seg = (self.b.0 - self.a.0, self.b.1 - self.a.1);
        let len2 = (seg.0 * seg.0 + seg.1 * seg.1).max(1e-9);
        let u = ((hit.0 - self.a.0) * seg.0 + (hit.1 - self.a.1) * seg.1) / len2;
        (-0.05..=1.05).contains(&u)
    }
}

/// One object's progress relative to one line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineState {
    /// Last side the object was clearly on (+1 in, -1 out) and where it was then.
    last: Option<(i8, Point)>,
}

impl LineState {
    /// Feeds the object's ground point; returns a direction when this step completes a crossing.
    pub fn step(&mut self, line: &LineGeom, p: Point) -> Option<Direction> {
        let d = line.side(p);
        if d.abs() < line.band {
            return None;
        }
        let side: i8 = if d > 0.0 { 1 } else { -1 };
        let crossed = match self.last {
            Some((prev, from)) if prev != side && line.path_meets_segment(from, p) => Some(if side > 0 { Direction::In } else { Direction::Out }),
            _ => None,
        };
        self.last = Some((side, p));
        crossed
    }
}

/// A zone in pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneGeom {
    pub id: String,
    points: Vec<Point>,
}

impl ZoneGeom {
    pub fn new(zone: &Zone, width: u32, height: u32) -> Self {
        let (w, h) = (width as f64, height as f64);
        Self { id: zone.id.clone(), points: zone.points.iter().map(|p| (p[0] * w, p[1] * h)).collect() }
    }

    /// Even-odd rule.
    pub fn contains(&self, p: Point) -> bool {
        let n = self.points.len();
        let mut inside = false;
        for i in 0..n {
            let (a, b) = (self.points[i], self.points[(i + 1) % n]);
            if (a.1 > p.1) != (b.1 > p.1) {
                let x = a.0 + (p.1 - a.1) * (b.0 - a.0) / (b.1 - a.1);
                if p.0 < x {
                    inside = !inside;
                }
            }
        }
        inside
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> LineGeom {
        // Horizontal line at 70 % height; the village is below it.
        LineGeom::new(&Line { id: "gate".into(), points: [[0.1, 0.7], [0.9, 0.7]], in_side: [0.5, 0.9] }, 1000, 1000)
    }

    #[test]
    fn moving_down_across_the_line_is_in_and_up_is_out() {
        let l = line();
        let mut s = LineState::default();
        let steps: Vec<Option<Direction>> = [600.0, 650.0, 690.0, 705.0, 760.0].iter().map(|&y| s.step(&l, (500.0, y))).collect();
        assert_eq!(steps, vec![None, None, None, None, Some(Direction::In)]);
        let mut s = LineState::default();
        let back: Vec<Option<Direction>> = [800.0, 720.0, 650.0].iter().map(|&y| s.step(&l, (500.0, y))).collect();
        assert_eq!(back, vec![None, None, Some(Direction::Out)]);
    }

    #[test]
    fn jitter_on_the_line_is_not_a_crossing() {
        let l = line();
        let mut s = LineState::default();
        for y in [650.0, 695.0, 705.0, 698.0, 704.0, 696.0, 650.0] {
            assert_eq!(s.step(&l, (500.0, y)), None, "y={y}");
        }
    }

    #[test]
    fn passing_beyond_the_end_of_the_line_does_not_count() {
        let l = line();
        let mut s = LineState::default();
        assert_eq!(s.step(&l, (980.0, 600.0)), None);
        assert_eq!(s.step(&l, (980.0, 800.0)), None);
    }

    #[test]
    fn zones_contain_their_inside() {
        let z = ZoneGeom::new(&Zone { id: "lane".into(), points: vec![[0.2, 0.5], [0.8, 0.5], [0.9, 1.0], [0.1, 1.0]] }, 100, 100);
        assert!(z.contains((50.0, 80.0)));
        assert!(!z.contains((50.0, 20.0)));
        assert!(!z.contains((12.0, 55.0)));
    }
}
