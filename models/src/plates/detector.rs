//! HyperLPR's YOLOv5-face-style plate detector (y5fu), 320 or 640 input.
//!
//! Contract (checked at load): input `input` f32 `[1,3,S,S]`, RGB /255, letterboxed centred with pad 114;
//! output `output` f32 `[1,N,15]` with N = 3·((S/8)² + (S/16)² + (S/32)²). Each row: `cx, cy, w, h` (input
//! pixels), objectness, four corners (x, y) top-left, top-right, bottom-right, bottom-left, then the
//! single-row and double-row class scores. Score = objectness × best class score, NMS IoU 0.5.

use std::path::Path;

use ort::environment::Environment;
use ort::value::TensorRef;
use serde::Serialize;

use super::rectify::Point;
use crate::geometry::{nms, BBox, Scored};
use crate::image::{Anchor, BgrView, ChannelOrder, Letterbox, LetterboxBuffer, LetterboxSpec, Normalisation};
use crate::runtime::{load_session, Dim, LoadedSession, Provider, ResolvedTensors, SessionOptions, TensorContract, TensorSpec};
use crate::ModelError;

pub const CONTRACT: TensorContract = TensorContract {
    model: "plate detector (y5fu)",
    input: TensorSpec { name: Some("input"), dims: &[Dim::Fixed(1), Dim::Fixed(3), Dim::Any, Dim::Any] },
    output: TensorSpec { name: Some("output"), dims: &[Dim::Fixed(1), Dim::Any, Dim::Fixed(15)] },
};

/// Single- or double-row plate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlateRows {
    Single,
    Double,
}

impl PlateRows {
    pub fn count(&self) -> u8 {
        match self {
            PlateRows::Single => 1,
            PlateRows::Double => 2,
        }
    }
}

/// One plate found in an image, in that image's pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct PlateDetection {
    pub bbox: BBox,
    /// Top-left, top-right, bottom-right, bottom-left.
    pub corners: [Point; 4],
    pub rows: PlateRows,
    pub score: f32,
}

impl Scored for PlateDetection {
    fn bbox(&self) -> &BBox {
        &self.bbox
    }
    fn score(&self) -> f32 {
        self.score
    }
    fn class(&self) -> usize {
        0 // a single- and a double-row box on the same plate suppress each other
    }
}

/// Decode settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PlateDetectorSettings {
    pub score_threshold: f32,
    pub nms_iou_threshold: f32,
}

impl Default for PlateDetectorSettings {
    fn default() -> Self {
        Self { score_threshold: 0.3, nms_iou_threshold: 0.5 }
    }
}

/// Decodes raw rows of 15 values into plates in source pixels.
pub fn decode(raw: &[f32], letterbox: &Letterbox, settings: &PlateDetectorSettings) -> Vec<PlateDetection> {
    let mut found = Vec::new();
    for row in raw.chunks_exact(15) {
        let objectness = row[4];
        if objectness < settings.score_threshold {
            continue;
        }
        let (single, double) = (row[13], row[14]);
        let score = objectness * single.max(double);
        if score < settings.score_threshold {
            continue;
        }
        let bbox = letterbox.box_to_source(BBox::from_cxcywh(row[0], row[1], row[2], row[3]));
        if bbox.area() <= 0.0 {
            continue;
        }
        let corner = |i: usize| {
            let (x, y) = letterbox.to_source(row[5 + 2 * i], row[6 + 2 * i]);
            (x.clamp(0.0, letterbox.src_w as f32), y.clamp(0.0, letterbox.src_h as f32))
        };
        found.push(PlateDetection {
            bbox,
            corners: [corner(0), corner(1), corner(2), corner(3)],
            rows: if double > single { PlateRows::Double } else { PlateRows::Single },
            score,
        });
    }
    nms(found, settings.nms_iou_threshold)
}

/// A loaded plate detector.
pub struct PlateDetector {
    loaded: LoadedSession,
    tensors: ResolvedTensors,
    size: u32,
    settings: PlateDetectorSettings,
    input: LetterboxBuffer,
}

fn letterbox_spec(size: u32) -> LetterboxSpec {
    LetterboxSpec { width: size, height: size, anchor: Anchor::Center, pad: 114, norm: Normalisation::unit(ChannelOrder::Rgb) }
}

impl PlateDetector {
    pub fn load(env: &Environment, path: &Path, options: &SessionOptions, settings: PlateDetectorSettings) -> Result<Self, ModelError> {
        let loaded = load_session(env, path, options)?;
        let tensors = CONTRACT.check(&loaded.session, path)?;
        let mismatch = |m: String| ModelError::Contract { path: path.to_path_buf(), model: CONTRACT.model, mismatch: m };
        let (h, w) = (tensors.input_shape[2], tensors.input_shape[3]);
        if h != w || h <= 0 || h % 32 != 0 {
            return Err(mismatch(format!("input must be square, fixed and a multiple of 32, found {w}x{h}")));
        }
        let s = h;
        let anchors = 3 * ((s / 8).pow(2) + (s / 16).pow(2) + (s / 32).pow(2));
        if tensors.output_shape[1] != anchors {
            return Err(mismatch(format!("output has {} rows, a {s}x{s} y5fu head has {anchors}", tensors.output_shape[1])));
        }
        Ok(Self { loaded, tensors, size: s as u32, settings, input: LetterboxBuffer::new(letterbox_spec(s as u32)) })
    }

    /// Input side in pixels (320 or 640).
    pub fn size(&self) -> u32 {
        self.size
    }

    pub fn provider(&self) -> Provider {
        self.loaded.provider
    }

    pub fn preprocess(&mut self, image: &BgrView<'_>) -> Letterbox {
        self.input.fill(image)
    }

    pub fn input_tensor(&self) -> (&[f32], [usize; 4]) {
        (self.input.tensor(), [1, 3, self.size as usize, self.size as usize])
    }

    pub fn session_mut(&mut self) -> &mut ort::session::Session {
        &mut self.loaded.session
    }

    pub fn input_name(&self) -> &str {
        &self.tensors.input
    }

    /// Finds plates in `image`; coordinates are in `image` pixels.
    pub fn detect(&mut self, image: &BgrView<'_>) -> Result<Vec<PlateDetection>, ModelError> {
        let letterbox = self.preprocess(image);
        let path = &self.loaded.path;
        let fail = |e: ort::Error| ModelError::Inference { path: path.clone(), reason: e.to_string() };
        let s = self.size as usize;
        let input = TensorRef::from_array_view(([1usize, 3, s, s], self.input.tensor())).map_err(fail)?;
        let outputs = self.loaded.session.run(ort::inputs![self.tensors.input.as_str() => input]).map_err(fail)?;
        let (_, raw) = outputs[self.tensors.output.as_str()].try_extract_tensor::<f32>().map_err(fail)?;
        Ok(decode(raw, &letterbox, &self.settings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Anchor;

    #[test]
    fn decode_maps_box_and_corners_back_through_the_letterbox() {
        // A 640x320 image in a 320 input: scale 0.5, padded 80 px top and bottom.
        let lb = Letterbox::fit(640, 320, 320, 320, Anchor::Center);
        let mut row = vec![0.0f32; 15];
        row[..4].copy_from_slice(&[160.0, 160.0, 40.0, 20.0]);
        row[4] = 0.9;
        row[5..13].copy_from_slice(&[140.0, 150.0, 180.0, 150.0, 180.0, 170.0, 140.0, 170.0]);
        row[13] = 0.2;
        row[14] = 0.8;
        let plates = decode(&row, &lb, &PlateDetectorSettings::default());
        assert_eq!(plates.len(), 1);
        let p = &plates[0];
        assert_eq!(p.rows, PlateRows::Double);
        assert!((p.score - 0.72).abs() < 1e-6);
        assert_eq!(p.bbox, BBox::new(280.0, 140.0, 360.0, 180.0));
        assert_eq!(p.corners[0], (280.0, 140.0));
        assert_eq!(p.corners[2], (360.0, 180.0));
    }
}
