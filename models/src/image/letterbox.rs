//! Letterboxing into a model's planar `f32` input: placement, padding and normalisation.

use super::resize::BilinearRows;
use super::BgrView;
use crate::geometry::BBox;

/// Where a letterboxed image sits inside the model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// Image at the top-left corner, padding right and below (YOLOX).
    TopLeft,
    /// Image centred, padding split on both sides (YOLOv5-style).
    Center,
}

/// Channel order the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelOrder {
    Bgr,
    Rgb,
}

/// How 0–255 pixel values become model input: `(v * scale - mean) / std` per channel, in the model's
/// channel order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalisation {
    pub order: ChannelOrder,
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalisation {
    /// Raw 0–255 values (YOLOX).
    pub const fn raw(order: ChannelOrder) -> Self {
        Self { order, scale: 1.0, mean: [0.0; 3], std: [1.0; 3] }
    }

    /// Values scaled to 0–1.
    pub const fn unit(order: ChannelOrder) -> Self {
        Self { order, scale: 1.0 / 255.0, mean: [0.0; 3], std: [1.0; 3] }
    }

    /// Values scaled to -1–1 (PaddleOCR).
    pub const fn symmetric(order: ChannelOrder) -> Self {
        Self { order, scale: 1.0 / 255.0, mean: [0.5; 3], std: [0.5; 3] }
    }

    /// The source (BGR) channel of each output plane.
    fn channels(&self) -> [usize; 3] {
        match self.order {
            ChannelOrder::Bgr => [0, 1, 2],
            ChannelOrder::Rgb => [2, 1, 0],
        }
    }

    #[inline]
    fn lut(&self) -> [[f32; 256]; 3] {
        let mut lut = [[0f32; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, out) in table.iter_mut().enumerate() {
                *out = (v as f32 * self.scale - self.mean[c]) / self.std[c];
            }
        }
        lut
    }
}

/// The mapping between source pixels and model input pixels of one letterboxed image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub scale: f32,
    pub pad_x: f32,
    pub pad_y: f32,
    pub resized_w: u32,
    pub resized_h: u32,
    pub src_w: u32,
    pub src_h: u32,
}

impl Letterbox {
    /// Computes the placement of a `src_w`x`src_h` image inside an `in_w`x`in_h` input.
    pub fn fit(src_w: u32, src_h: u32, in_w: u32, in_h: u32, anchor: Anchor) -> Self {
        let scale = (in_w as f32 / src_w as f32).min(in_h as f32 / src_h as f32);
        let resized_w = ((src_w as f32 * scale).round() as u32).clamp(1, in_w);
        let resized_h = ((src_h as f32 * scale).round() as u32).clamp(1, in_h);
        let (pad_x, pad_y) = match anchor {
            Anchor::TopLeft => (0.0, 0.0),
            Anchor::Center => (((in_w - resized_w) / 2) as f32, ((in_h - resized_h) / 2) as f32),
        };
        Self { scale, pad_x, pad_y, resized_w, resized_h, src_w, src_h }
    }

    /// Maps a point in model input pixels back to source pixels.
    #[inline]
    pub fn to_source(&self, x: f32, y: f32) -> (f32, f32) {
        ((x - self.pad_x) / self.scale, (y - self.pad_y) / self.scale)
    }

    /// Maps a box in model input pixels back to source pixels, clamped to the source image.
    pub fn box_to_source(&self, b: BBox) -> BBox {
        let (x1, y1) = self.to_source(b.x1, b.y1);
        let (x2, y2) = self.to_source(b.x2, b.y2);
        BBox { x1, y1, x2, y2 }.clamp(self.src_w as f32, self.src_h as f32)
    }
}

/// How an adapter letterboxes images into its input tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LetterboxSpec {
    /// Model input width and height.
    pub width: u32,
    pub height: u32,
    pub anchor: Anchor,
    /// Value of the padding pixels (0–255, before normalisation).
    pub pad: u8,
    pub norm: Normalisation,
}

/// An adapter's input tensor and the state that makes refilling it cheap: the padding is written only
/// when the image placement changes, and the resize tables are kept while the frame size stays the same.
pub struct LetterboxBuffer {
    spec: LetterboxSpec,
    tensor: Vec<f32>,
    /// Placement the padding was last written for.
    padded_for: Option<Placement>,
    /// Resizer for the last (source size → resized size).
    rows: Option<((u32, u32, u32, u32), BilinearRows)>,
    row: Vec<u8>,
}

impl LetterboxBuffer {
    pub fn new(spec: LetterboxSpec) -> Self {
        let len = 3 * spec.width as usize * spec.height as usize;
        Self { spec, tensor: vec![0.0; len], padded_for: None, rows: None, row: Vec::new() }
    }

    pub fn spec(&self) -> &LetterboxSpec {
        &self.spec
    }

    /// The planar `[3, height, width]` tensor of the last [`LetterboxBuffer::fill`].
    pub fn tensor(&self) -> &[f32] {
        &self.tensor
    }

    /// Letterboxes `src` into the tensor: resize, channel order, normalisation and padding in one pass.
    pub fn fill(&mut self, src: &BgrView<'_>) -> Letterbox {
        let spec = self.spec;
        let lb = Letterbox::fit(src.width, src.height, spec.width, spec.height, spec.anchor);
        let at = Placement { width: lb.resized_w as usize, height: lb.resized_h as usize, x: lb.pad_x as usize, y: lb.pad_y as usize };
        if self.padded_for != Some(at) {
            write_padding(at, &spec, &mut self.tensor);
            self.padded_for = Some(at);
        }
        let key = (src.width, src.height, lb.resized_w, lb.resized_h);
        let identity = key.0 == key.2 && key.1 == key.3;
        if !identity && self.rows.as_ref().is_none_or(|(k, _)| *k != key) {
            self.rows = Some((key, BilinearRows::new(src.width, src.height, lb.resized_w, lb.resized_h)));
        }
        match self.rows.as_mut().filter(|_| !identity) {
            Some((_, rows)) => {
                let (in_w, plane) = (spec.width as usize, spec.width as usize * spec.height as usize);
                let luts = spec.norm.lut();
                let channels = spec.norm.channels();
                let (p0, rest) = self.tensor.split_at_mut(plane);
                let (p1, p2) = rest.split_at_mut(plane);
                for y in 0..at.height {
                    let base = (at.y + y) * in_w + at.x;
                    let span = base..base + at.width;
                    rows.row_planar(src, y, [&mut p0[span.clone()], &mut p1[span.clone()], &mut p2[span]], &luts, channels);
                }
            }
            None => write_image_rows(at, &spec, &mut self.tensor, &mut self.row, |y, row| row.copy_from_slice(src.row(y as u32))),
        }
        lb
    }
}

/// Letterboxes `src` into a planar (CHW) `f32` tensor as `spec` says, written to `out` (length
/// `3 * width * height`). For repeated use prefer [`LetterboxBuffer`].
pub fn letterbox_into(src: &BgrView<'_>, spec: &LetterboxSpec, out: &mut [f32]) -> Letterbox {
    let mut buffer = LetterboxBuffer::new(*spec);
    let lb = buffer.fill(src);
    out[..buffer.tensor.len()].copy_from_slice(&buffer.tensor);
    lb
}

/// Where packed pixels go inside a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub width: usize,
    pub height: usize,
    pub x: usize,
    pub y: usize,
}

/// Writes packed BGR pixels at `at` inside a planar tensor of `spec.width`x`spec.height`, filling the rest
/// with `spec.pad`, converting to the model's channel order and normalisation.
pub fn write_planar(bgr: &[u8], at: Placement, spec: &LetterboxSpec, out: &mut [f32]) {
    write_padding(at, spec, out);
    let stride = at.width * 3;
    write_image_rows(at, spec, out, &mut Vec::new(), |y, row| row.copy_from_slice(&bgr[y * stride..(y + 1) * stride]));
}

/// Fills everything outside `at` with the padding value.
fn write_padding(at: Placement, spec: &LetterboxSpec, out: &mut [f32]) {
    let (in_w, in_h) = (spec.width as usize, spec.height as usize);
    let plane = in_w * in_h;
    let lut = spec.norm.lut();
    for (c, table) in lut.iter().enumerate() {
        let pad = table[spec.pad as usize];
        let dst = &mut out[c * plane..(c + 1) * plane];
        dst[..at.y * in_w].fill(pad);
        dst[(at.y + at.height) * in_w..].fill(pad);
        for y in at.y..at.y + at.height {
            dst[y * in_w..y * in_w + at.x].fill(pad);
            dst[y * in_w + at.x + at.width..(y + 1) * in_w].fill(pad);
        }
    }
}

/// Writes the image rows inside `at`; `fill_row(y, buffer)` puts image row `y` into `buffer` as packed BGR.
fn write_image_rows(at: Placement, spec: &LetterboxSpec, out: &mut [f32], buffer: &mut Vec<u8>, mut fill_row: impl FnMut(usize, &mut [u8])) {
    let (in_w, in_h) = (spec.width as usize, spec.height as usize);
    let plane = in_w * in_h;
    let lut = spec.norm.lut();
    let src_channel = spec.norm.channels();
    let (p0, rest) = out.split_at_mut(plane);
    let (p1, p2) = rest.split_at_mut(plane);
    buffer.resize(at.width * 3, 0);
    for y in 0..at.height {
        fill_row(y, buffer);
        let pixels = &buffer[..];
        let base = (at.y + y) * in_w + at.x;
        let (d0, d1, d2) = (&mut p0[base..base + at.width], &mut p1[base..base + at.width], &mut p2[base..base + at.width]);
        for (((px, a), b), c) in pixels.chunks_exact(3).zip(d0.iter_mut()).zip(d1.iter_mut()).zip(d2.iter_mut()) {
            *a = lut[0][px[src_channel[0]] as usize];
            *b = lut[1][px[src_channel[1]] as usize];
            *c = lut[2][px[src_channel[2]] as usize];
        }
    }
}
