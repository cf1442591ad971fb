//! Boxes, overlap and non-maximum suppression.

use serde::{Deserialize, Serialize};

/// An axis-aligned box in pixels, corners `(x1, y1)` top-left and `(x2, y2)` bottom-right.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct BBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl BBox {
    pub fn new(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        Self { x1, y1, x2, y2 }
    }

    /// From centre, width and height.
    pub fn from_cxcywh(cx: f32, cy: f32, w: f32, h: f32) -> Self {
        Self { x1: cx - w / 2.0, y1: cy - h / 2.0, x2: cx + w / 2.0, y2: cy + h / 2.0 }
    }

    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }

    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }

    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    pub fn center(&self) -> (f32, f32) {
        ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)
    }

    /// Clamps the box to `[0, w] x [0, h]`.
    pub fn clamp(&self, w: f32, h: f32) -> Self {
        Self { x1: self.x1.clamp(0.0, w), y1: self.y1.clamp(0.0, h), x2: self.x2.clamp(0.0, w), y2: self.y2.clamp(0.0, h) }
    }

    /// The box grown by `fraction` of its size on every side.
    pub fn expand(&self, fraction: f32) -> Self {
        let dx = self.width() * fraction;
        let dy = self.height() * fraction;
        Self { x1: self.x1 - dx, y1: self.y1 - dy, x2: self.x2 + dx, y2: self.y2 + dy }
    }

    pub fn intersection(&self, other: &BBox) -> f32 {
        let w = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let h = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        w * h
    }

    /// Intersection over union; 0 for two empty boxes.
    pub fn iou(&self, other: &BBox) -> f32 {
        let inter = self.intersection(other);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }

    /// `[x1, y1, x2, y2]` rounded to 0.1 px, the form used in payloads.
    pub fn to_array(&self) -> [f32; 4] {
        let r = |v: f32| (v * 10.0).round() / 10.0;
        [r(self.x1), r(self.y1), r(self.x2), r(self.y2)]
    }
}

/// Anything NMS can sort and compare.
pub trait Scored {
    fn bbox(&self) -> &BBox;
    fn score(&self) -> f32;
    /// Boxes of different classes never suppress each other.
    fn class(&self) -> usize;
}

/// Greedy per-class non-maximum suppression: keeps the best-scoring box of every cluster whose IoU exceeds
/// `iou_threshold`. The result is sorted by descending score (ties keep input order).
pub fn nms<T: Scored>(mut items: Vec<T>, iou_threshold: f32) -> Vec<T> {
    items.sort_by(|a, b| b.score().total_cmp(&a.score()));
    let mut keep: Vec<T> = Vec::with_capacity(items.len().min(64));
    for item in items {
        let suppressed = keep.iter().any(|k| k.class() == item.class() && k.bbox().iou(item.bbox()) > iou_threshold);
        if !suppressed {
            keep.push(item);
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct D(BBox, f32, usize);
    impl Scored for D {
        fn bbox(&self) -> &BBox {
            &self.0
        }
        fn score(&self) -> f32 {
            self.1
        }
        fn class(&self) -> usize {
            self.2
        }
    }

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping_boxes() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&BBox::new(20.0, 20.0, 30.0, 30.0)), 0.0);
        let b = BBox::new(5.0, 0.0, 15.0, 10.0);
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(BBox::default().iou(&BBox::default()), 0.0);
    }

    #[test]
    fn nms_keeps_best_of_each_cluster_per_class() {
        let boxes = vec![
            D(BBox::new(0.0, 0.0, 10.0, 10.0), 0.6, 0),
            D(BBox::new(1.0, 1.0, 11.0, 11.0), 0.9, 0),
            D(BBox::new(1.0, 1.0, 11.0, 11.0), 0.8, 2),
            D(BBox::new(50.0, 50.0, 60.0, 60.0), 0.5, 0),
        ];
        let kept = nms(boxes, 0.45);
        let scores: Vec<f32> = kept.iter().map(|d| d.1).collect();
        assert_eq!(scores, vec![0.9, 0.8, 0.5]);
    }

    #[test]
    fn nms_threshold_is_exclusive() {
        let a = D(BBox::new(0.0, 0.0, 10.0, 10.0), 0.9, 0);
        let b = D(BBox::new(5.0, 0.0, 15.0, 10.0), 0.8, 0);
        assert_eq!(nms(vec![a, b], 1.0 / 3.0 + 1e-3).len(), 2);
    }
}
