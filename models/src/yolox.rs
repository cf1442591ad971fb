//! YOLOX (Megvii) COCO detector adapter.
//!
//! Contract (checked at load, see `CONTRACT`): input `images` f32 `[1,3,H,W]`, BGR 0–255 unnormalised,
//! letterboxed at the top-left with pad 114; output `output` f32 `[1,N,5+C]` of raw grid predictions for
//! strides 8, 16 and 32 (N = Σ (H/s)·(W/s)). Per row: `cx = (o0 + gx)·s`, `cy = (o1 + gy)·s`,
//! `w = exp(o2)·s`, `h = exp(o3)·s`, objectness `o4`, class probabilities `o5..` (already sigmoid);
//! score = objectness × class probability, then per-class NMS.

use std::path::Path;

use ort::environment::Environment;
use ort::value::TensorRef;

use crate::geometry::{nms, BBox, Scored};
use crate::image::{Anchor, BgrView, ChannelOrder, Letterbox, LetterboxBuffer, LetterboxSpec, Normalisation};
use crate::labels::{ObjectClass, COCO_LABELS};
use crate::runtime::{load_session, Dim, LoadedSession, Provider, ResolvedTensors, SessionOptions, TensorContract, TensorSpec};
use crate::ModelError;

/// What the YOLOX adapter expects of its model file.
pub const CONTRACT: TensorContract = TensorContract {
    model: "YOLOX",
    input: TensorSpec { name: Some("images"), dims: &[Dim::Fixed(1), Dim::Fixed(3), Dim::Any, Dim::Any] },
    output: TensorSpec { name: Some("output"), dims: &[Dim::Fixed(1), Dim::Any, Dim::Any] },
};

const STRIDES: [u32; 3] = [8, 16, 32];

/// How YOLOX wants its input: BGR 0–255, top-left letterbox, pad 114 (size from the model).
fn letterbox_spec(width: u32, height: u32) -> LetterboxSpec {
    LetterboxSpec { width, height, anchor: Anchor::TopLeft, pad: 114, norm: Normalisation::raw(ChannelOrder::Bgr) }
}

/// Decode settings.
#[derive(Debug, Clone, PartialEq)]
pub struct YoloxSettings {
    /// Minimum objectness × class probability.
    pub score_threshold: f32,
    /// Per-class NMS IoU threshold.
    pub nms_iou_threshold: f32,
    /// COCO class ids to report; everything else is skipped while decoding.
    pub classes: Vec<usize>,
}

impl Default for YoloxSettings {
    fn default() -> Self {
        Self { score_threshold: 0.3, nms_iou_threshold: 0.45, classes: (0..COCO_LABELS.len()).collect() }
    }
}

/// One detected object in source image pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub class: ObjectClass,
    pub score: f32,
    pub bbox: BBox,
}

impl Detection {
    /// The COCO label (`person`, `car`, …).
    pub fn label(&self) -> &'static str {
        self.class.label()
    }

    /// The COCO class id.
    pub fn class_id(&self) -> usize {
        self.class.id()
    }
}

impl Scored for Detection {
    fn bbox(&self) -> &BBox {
        &self.bbox
    }
    fn score(&self) -> f32 {
        self.score
    }
    fn class(&self) -> usize {
        self.class.id()
    }
}

/// The anchor grid of a YOLOX head: `(grid_x, grid_y, stride)` per output row.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    cells: Vec<(f32, f32, f32)>,
}

impl Grid {
    pub fn new(in_w: u32, in_h: u32) -> Self {
        let mut cells = Vec::new();
        for s in STRIDES {
            for gy in 0..in_h / s {
                for gx in 0..in_w / s {
                    cells.push((gx as f32, gy as f32, s as f32));
                }
            }
        }
        Self { cells }
    }

    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }
}

/// Decodes raw YOLOX output rows (`grid.len()` rows of `5 + num_classes`) into detections in source pixels,
/// after per-class NMS, sorted by score.
pub fn decode(raw: &[f32], grid: &Grid, num_classes: usize, letterbox: &Letterbox, settings: &YoloxSettings) -> Vec<Detection> {
    let row_len = 5 + num_classes;
    let mut found = Vec::new();
    for (row, &(gx, gy, s)) in raw.chunks_exact(row_len).zip(&grid.cells) {
        let objectness = row[4];
        if objectness < settings.score_threshold {
            continue; // score = objectness × p ≤ objectness
        }
        let mut bbox: Option<BBox> = None;
        for &class_id in &settings.classes {
            let Some(&p) = row.get(5 + class_id) else { continue };
            let score = objectness * p;
            if score < settings.score_threshold {
                continue;
            }
            let b = *bbox.get_or_insert_with(|| {
                let cx = (row[0] + gx) * s;
                let cy = (row[1] + gy) * s;
                let w = row[2].exp() * s;
                let h = row[3].exp() * s;
                letterbox.box_to_source(BBox::from_cxcywh(cx, cy, w, h))
            });
            if b.area() <= 0.0 {
                continue;
            }
            let Some(class) = ObjectClass::from_id(class_id) else { continue };
            found.push(Detection { class, score, bbox: b });
        }
    }
    nms(found, settings.nms_iou_threshold)
}

/// A loaded YOLOX model. `detect` takes `&mut self`: give each instance its own thread.
pub struct Yolox {
    loaded: LoadedSession,
    tensors: ResolvedTensors,
    in_w: u32,
    in_h: u32,
    grid: Grid,
    num_classes: usize,
    settings: YoloxSettings,
    input: LetterboxBuffer,
}

impl Yolox {
    /// Loads `path` and checks it against [`CONTRACT`] and the COCO head layout.
    pub fn load(env: &Environment, path: &Path, options: &SessionOptions, settings: YoloxSettings) -> Result<Self, ModelError> {
        let loaded = load_session(env, path, options)?;
        let tensors = CONTRACT.check(&loaded.session, path)?;
        let mismatch = |m: String| ModelError::Contract { path: path.to_path_buf(), model: CONTRACT.model, mismatch: m };
        let (in_h, in_w) = (tensors.input_shape[2], tensors.input_shape[3]);
        if in_h <= 0 || in_w <= 0 || in_h % 32 != 0 || in_w % 32 != 0 {
            return Err(mismatch(format!("input size {in_w}x{in_h} must be fixed and a multiple of 32")));
        }
        let grid = Grid::new(in_w as u32, in_h as u32);
        let (rows, row_len) = (tensors.output_shape[1], tensors.output_shape[2]);
        if rows != grid.len() as i64 {
            return Err(mismatch(format!("output has {rows} rows, a {in_w}x{in_h} YOLOX head with strides 8/16/32 has {}", grid.len())));
        }
        let num_classes = (row_len - 5).max(0) as usize;
        if num_classes != COCO_LABELS.len() {
            return Err(mismatch(format!("output rows have {row_len} values, expected 85 (box, objectness and 80 COCO classes)")));
        }
        Ok(Self { loaded, tensors, in_w: in_w as u32, in_h: in_h as u32, grid, num_classes, settings, input: LetterboxBuffer::new(letterbox_spec(in_w as u32, in_h as u32)) })
    }

    /// Model input width and height.
    pub fn input_size(&self) -> (u32, u32) {
        (self.in_w, self.in_h)
    }

    pub fn provider(&self) -> Provider {
        self.loaded.provider
    }

    pub fn path(&self) -> &Path {
        &self.loaded.path
    }

    pub fn settings(&self) -> &YoloxSettings {
        &self.settings
    }

    /// Letterboxes `image` into the input tensor.
    pub fn preprocess(&mut self, image: &BgrView<'_>) -> Letterbox {
        self.input.fill(image)
    }

    /// The prepared input tensor (after [`Yolox::preprocess`]), for benchmarks that time the bare session.
    pub fn input_tensor(&self) -> (&[f32], [usize; 4]) {
        (self.input.tensor(), [1, 3, self.in_h as usize, self.in_w as usize])
    }

    /// The underlying session, for benchmarks that time a bare `Session::run`.
    pub fn session_mut(&mut self) -> &mut ort::session::Session {
        &mut self.loaded.session
    }

    /// Runs the model on the prepared input and decodes its output.
    pub fn infer(&mut self, letterbox: &Letterbox) -> Result<Vec<Detection>, ModelError> {
        let path = &self.loaded.path;
        let fail = |e: ort::Error| ModelError::Inference { path: path.clone(), reason: e.to_string() };
        let shape = [1usize, 3, self.in_h as usize, self.in_w as usize];
        let input = TensorRef::from_array_view((shape, self.input.tensor())).map_err(fail)?;
        let outputs = self.loaded.session.run(ort::inputs![self.tensors.input.as_str() => input]).map_err(fail)?;
        let (_, raw) = outputs[self.tensors.output.as_str()].try_extract_tensor::<f32>().map_err(fail)?;
        Ok(decode(raw, &self.grid, self.num_classes, letterbox, &self.settings))
    }

    /// Detects objects in `image`; boxes are in `image` pixels.
    pub fn detect(&mut self, image: &BgrView<'_>) -> Result<Vec<Detection>, ModelError> {
        let letterbox = self.preprocess(image);
        self.infer(&letterbox)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(vals: &[(usize, f32)], obj: f32, box_: [f32; 4]) -> Vec<f32> {
        let mut r = vec![0.0; 85];
        r[..4].copy_from_slice(&box_);
        r[4] = obj;
        for &(c, p) in vals {
            r[5 + c] = p;
        }
        r
    }

    #[test]
    fn grid_matches_the_contract_row_count() {
        assert_eq!(Grid::new(416, 416).len(), 3549);
        assert_eq!(Grid::new(640, 640).len(), 8400);
    }

    #[test]
    fn decode_maps_grid_cells_to_source_pixels() {
        let grid = Grid::new(64, 64); // 8x8 + 4x4 + 2x2 = 84 rows
        let mut raw = vec![0.0; grid.len() * 85];
        // Cell (gx=2, gy=3) at stride 8 (row 3*8+2 = 26): centre (2.5+2)*8=36, (0.5+3)*8=28, size e^0*8=8.
        raw[26 * 85..27 * 85].copy_from_slice(&row(&[(0, 0.9)], 0.8, [2.5, 0.5, 0.0, 0.0]));
        let lb = Letterbox::fit(128, 64, 64, 64, Anchor::TopLeft); // scale 0.5
        let dets = decode(&raw, &grid, 80, &lb, &YoloxSettings::default());
        assert_eq!(dets.len(), 1);
        let d = &dets[0];
        assert_eq!(d.label(), "person");
        assert!((d.score - 0.72).abs() < 1e-6);
        assert_eq!(d.bbox, BBox::new(64.0, 48.0, 80.0, 64.0));
    }

    #[test]
    fn decode_skips_unwanted_classes_and_low_scores() {
        let grid = Grid::new(64, 64);
        let mut raw = vec![0.0; grid.len() * 85];
        raw[0..85].copy_from_slice(&row(&[(62, 0.99)], 0.99, [0.0, 0.0, 1.0, 1.0])); // a tv
        raw[85..170].copy_from_slice(&row(&[(2, 0.5)], 0.5, [0.0, 0.0, 1.0, 1.0])); // car at 0.25
        let lb = Letterbox::fit(64, 64, 64, 64, Anchor::TopLeft);
        let settings = YoloxSettings { classes: vec![0, 2], ..YoloxSettings::default() };
        assert!(decode(&raw, &grid, 80, &lb, &settings).is_empty());
    }
}
