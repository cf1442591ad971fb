//! 8-bit BGR images as the adapters see them, and the preprocessing every detector needs: bilinear resize
//! and letterboxing into a planar `f32` tensor.
//!
//! BGR because that is what the agent's GStreamer pipelines produce (`video/x-raw,format=BGR`) and what most
//! of our models were trained on; adapters that want RGB ask for it in their [`Normalisation`].

use std::path::Path;

use crate::geometry::BBox;

/// Why an image could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image buffer too small: {width}x{height} with stride {stride} needs {needed} bytes, got {got}")]
    BufferTooSmall { width: u32, height: u32, stride: usize, needed: usize, got: usize },
    #[error("image has zero size ({width}x{height})")]
    Empty { width: u32, height: u32 },
    #[error("cannot decode image {path}: {reason}")]
    Decode { path: String, reason: String },
}

/// A borrowed BGR8 image; rows may be padded (`stride` ≥ `width * 3`), as in GStreamer buffers.
#[derive(Debug, Clone, Copy)]
pub struct BgrView<'a> {
    width: u32,
    height: u32,
    stride: usize,
    data: &'a [u8],
}

/// An owned, tightly packed BGR8 image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgrImage {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl<'a> BgrView<'a> {
    pub fn new(width: u32, height: u32, stride: usize, data: &'a [u8]) -> Result<Self, ImageError> {
        if width == 0 || height == 0 {
            return Err(ImageError::Empty { width, height });
        }
        let row = width as usize * 3;
        let needed = stride.max(row) * (height as usize - 1) + row;
        if stride < row || data.len() < needed {
            return Err(ImageError::BufferTooSmall { width, height, stride, needed, got: data.len() });
        }
        Ok(Self { width, height, stride, data })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn stride(&self) -> usize {
        self.stride
    }

    /// One row of `width * 3` bytes.
    #[inline]
    pub fn row(&self, y: u32) -> &'a [u8] {
        let start = y as usize * self.stride;
        &self.data[start..start + self.width as usize * 3]
    }

    /// A view of the part of the image inside `rect` (clamped to the image), without copying. `None` when the
    /// clamped rectangle is empty.
    pub fn crop(&self, rect: BBox) -> Option<BgrView<'a>> {
        let r = rect.clamp(self.width as f32, self.height as f32);
        let x0 = r.x1.floor() as u32;
        let y0 = r.y1.floor() as u32;
        let x1 = (r.x2.ceil() as u32).min(self.width);
        let y1 = (r.y2.ceil() as u32).min(self.height);
        if x1 <= x0 || y1 <= y0 {
            return None;
        }
        let start = y0 as usize * self.stride + x0 as usize * 3;
        Some(BgrView { width: x1 - x0, height: y1 - y0, stride: self.stride, data: &self.data[start..] })
    }

    pub fn to_owned(&self) -> BgrImage {
        let mut data = Vec::with_capacity(self.width as usize * self.height as usize * 3);
        for y in 0..self.height {
            data.extend_from_slice(self.row(y));
        }
        BgrImage { width: self.width, height: self.height, data }
    }
}

impl BgrImage {
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Self, ImageError> {
        BgrView::new(width, height, width as usize * 3, &data)?;
        Ok(Self { width, height, data })
    }

    /// Decodes a JPEG or PNG file.
    pub fn open(path: &Path) -> Result<Self, ImageError> {
        let decode = |reason: String| ImageError::Decode { path: path.display().to_string(), reason };
        let rgb = image::ImageReader::open(path)
            .map_err(|e| decode(e.to_string()))?
            .with_guessed_format()
            .map_err(|e| decode(e.to_string()))?
            .decode()
            .map_err(|e| decode(e.to_string()))?
            .into_rgb8();
        Self::from_rgb(rgb.width(), rgb.height(), rgb.as_raw())
    }

    /// Builds a BGR image from packed RGB bytes.
    pub fn from_rgb(width: u32, height: u32, rgb: &[u8]) -> Result<Self, ImageError> {
        let mut data = rgb.to_vec();
        for px in data.chunks_exact_mut(3) {
            px.swap(0, 2);
        }
        Self::new(width, height, data)
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    pub fn view(&self) -> BgrView<'_> {
        BgrView { width: self.width, height: self.height, stride: self.width as usize * 3, data: &self.data }
    }
}

/// Bilinear resize with pixel centres at half-pixel offsets (as OpenCV's `INTER_LINEAR`), using 11-bit
/// fixed-point weights, one output row at a time: first the two source rows are blended vertically over
/// their whole width (contiguous, so it vectorises), then the blend is sampled horizontally.
pub struct BilinearRows {
    /// Per output column: the left source byte offset (the right neighbour is always 3 bytes on) and the
    /// right neighbour's weight.
    cols: Vec<(usize, i32)>,
    fy: f64,
    sh: usize,
    /// Vertical blend of the current pair of source rows, `sw * 3` values scaled by `BILINEAR_ONE`.
    blend: Vec<i32>,
    /// When shrinking by 2x or more, the source byte ranges the columns actually sample (others are skipped).
    sparse: Option<Vec<(usize, usize)>>,
}

const BILINEAR_BITS: u32 = 11;
const BILINEAR_ONE: i32 = 1 << BILINEAR_BITS;

impl BilinearRows {
    pub fn new(sw: u32, sh: u32, dw: u32, dh: u32) -> Self {
        let (sw, dw) = (sw as usize, dw as usize);
        let fx = sw as f64 / dw as f64;
        let cols: Vec<(usize, i32)> = (0..dw)
            .map(|x| {
                let s = ((x as f64 + 0.5) * fx - 0.5).max(0.0);
                let x0 = (s.floor() as usize).min(sw - 1);
                let w = ((s - x0 as f64) * BILINEAR_ONE as f64).round() as i32;
                // At the right edge the neighbour is the padding copy of the last pixel.
                (x0 * 3, w.clamp(0, BILINEAR_ONE))
            })
            .collect();
        let sparse = (dw * 2 <= sw).then(|| {
            let mut ranges: Vec<(usize, usize)> = Vec::new();
            for &(a, _) in &cols {
                let (start, end) = (a, (a + 6).min(sw * 3));
                match ranges.last_mut() {
                    Some(last) if start <= last.1 => last.1 = last.1.max(end),
                    _ => ranges.push((start, end)),
                }
            }
            ranges
        });
        // Three extra values repeat the last pixel, so every column can read its right neighbour.
        Self { cols, fy: sh as f64 / dh as f64, sh: sh as usize, blend: vec![0; sw * 3 + 3], sparse }
    }

    /// Blends the two source rows of output row `y` into `self.blend`.
    fn blend_row(&mut self, src: &BgrView<'_>, y: usize) {
        let s = ((y as f64 + 0.5) * self.fy - 0.5).max(0.0);
        let y0 = (s.floor() as usize).min(self.sh - 1);
        let y1 = (y0 + 1).min(self.sh - 1);
        let wy = (((s - y0 as f64) * BILINEAR_ONE as f64).round() as i32).clamp(0, BILINEAR_ONE);
        let (top, bottom) = (src.row(y0 as u32), src.row(y1 as u32));
        let blend = |dst: &mut [i32], t: &[u8], b: &[u8]| {
            for ((v, &t), &b) in dst.iter_mut().zip(t).zip(b) {
                *v = t as i32 * (BILINEAR_ONE - wy) + b as i32 * wy;
            }
        };
        let n = top.len();
        match &self.sparse {
            Some(ranges) => {
                for &(start, end) in ranges {
                    blend(&mut self.blend[start..end], &top[start..end], &bottom[start..end]);
                }
            }
            None => blend(&mut self.blend[..n], top, bottom),
        }
        blend(&mut self.blend[n..n + 3], &top[n - 3..], &bottom[n - 3..]);
    }

    /// Output value (0–255) of channel `c` between the pixel at `px[0..3]` and its neighbour at `px[3..6]`.
    #[inline(always)]
    fn sample(px: &[i32], c: usize, w: i32) -> usize {
        let round = 1 << (2 * BILINEAR_BITS - 1);
        ((px[c] * (BILINEAR_ONE - w) + px[3 + c] * w + round) >> (2 * BILINEAR_BITS)).clamp(0, 255) as usize
    }

    /// Writes output row `y` (`dw * 3` packed BGR bytes) into `out`.
    pub fn row(&mut self, src: &BgrView<'_>, y: usize, out: &mut [u8]) {
        self.blend_row(src, y);
        for (o, &(a, w)) in out.chunks_exact_mut(3).zip(&self.cols) {
            let px = &self.blend[a..a + 6];
            for (c, v) in o.iter_mut().enumerate() {
                *v = Self::sample(px, c, w) as u8;
            }
        }
    }

    /// Writes output row `y` straight into three planes through per-plane lookup tables: plane `p` takes
    /// source channel `channels[p]`.
    fn row_planar(&mut self, src: &BgrView<'_>, y: usize, planes: [&mut [f32]; 3], luts: &[[f32; 256]; 3], channels: [usize; 3]) {
        self.blend_row(src, y);
        let [d0, d1, d2] = planes;
        for (((&(a, w), o0), o1), o2) in self.cols.iter().zip(d0.iter_mut()).zip(d1.iter_mut()).zip(d2.iter_mut()) {
            let px = &self.blend[a..a + 6];
            *o0 = luts[0][Self::sample(px, channels[0], w)];
            *o1 = luts[1][Self::sample(px, channels[1], w)];
            *o2 = luts[2][Self::sample(px, channels[2], w)];
        }
    }
}

/// Bilinear resize (see [`BilinearRows`]) of `src` to a packed `dw`x`dh` BGR image in `dst`, which must be
/// at least `dw * dh * 3` bytes long.
pub fn resize_bilinear_into(src: &BgrView<'_>, dw: u32, dh: u32, dst: &mut [u8]) {
    let mut rows = BilinearRows::new(src.width, src.height, dw, dh);
    let stride = dw as usize * 3;
    for (y, out) in dst.chunks_exact_mut(stride).take(dh as usize).enumerate() {
        rows.row(src, y, out);
    }
}

/// Resizes to a new owned image.
pub fn resize_bilinear(src: &BgrView<'_>, dw: u32, dh: u32) -> BgrImage {
    let mut data = vec![0u8; dw as usize * dh as usize * 3];
    resize_bilinear_into(src, dw, dh, &mut data);
    BgrImage { width: dw, height: dh, data }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> BgrImage {
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&[(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, 7]);
            }
        }
        BgrImage::new(w, h, data).unwrap()
    }

    #[test]
    fn resize_to_same_size_is_identity() {
        let img = gradient(17, 9);
        assert_eq!(resize_bilinear(&img.view(), 17, 9), img);
    }

    #[test]
    fn downscale_by_two_averages_neighbours() {
        // 2x1 image of 0 and 200 scaled to 1x1 samples the midpoint.
        let img = BgrImage::new(2, 1, vec![0, 0, 0, 200, 200, 200]).unwrap();
        let out = resize_bilinear(&img.view(), 1, 1);
        assert_eq!(out.as_bytes(), &[100, 100, 100]);
    }

    #[test]
    fn letterbox_top_left_keeps_aspect_and_pads() {
        let lb = Letterbox::fit(640, 426, 416, 416, Anchor::TopLeft);
        assert!((lb.scale - 0.65).abs() < 1e-6);
        assert_eq!((lb.resized_w, lb.resized_h), (416, 277));
        assert_eq!((lb.pad_x, lb.pad_y), (0.0, 0.0));
        let (x, y) = lb.to_source(416.0, 277.0);
        assert!((x - 640.0).abs() < 0.01 && (y - 426.15).abs() < 0.2);
    }

    #[test]
    fn letterbox_center_splits_padding() {
        let lb = Letterbox::fit(200, 100, 320, 320, Anchor::Center);
        assert_eq!((lb.resized_w, lb.resized_h), (320, 160));
        assert_eq!(lb.pad_y, 80.0);
        assert_eq!(lb.to_source(160.0, 160.0), (100.0, 50.0));
    }

    #[test]
    fn planar_tensor_has_pad_and_channel_order() {
        let img = BgrImage::new(1, 1, vec![10, 20, 30]).unwrap();
        let mut out = vec![0f32; 3 * 2 * 2];
        let spec = |norm| LetterboxSpec { width: 2, height: 2, anchor: Anchor::TopLeft, pad: 114, norm };
        letterbox_into(&img.view(), &spec(Normalisation::raw(ChannelOrder::Rgb)), &mut out);
        // Image 1x1 scales to 2x2 (fills the input), so every pixel is the source pixel in RGB planes.
        assert_eq!(&out[0..4], &[30.0; 4]);
        assert_eq!(&out[8..12], &[10.0; 4]);
        let img = BgrImage::new(2, 1, vec![10, 20, 30, 10, 20, 30]).unwrap();
        letterbox_into(&img.view(), &spec(Normalisation::unit(ChannelOrder::Bgr)), &mut out);
        assert!((out[0] - 10.0 / 255.0).abs() < 1e-6);
        assert!((out[2] - 114.0 / 255.0).abs() < 1e-6, "bottom row is padding");
    }

    #[test]
    fn crop_is_a_view_with_the_parent_stride() {
        let img = gradient(10, 10);
        let v = img.view().crop(BBox { x1: 2.0, y1: 3.0, x2: 5.0, y2: 4.0 }).unwrap();
        assert_eq!((v.width(), v.height()), (3, 1));
        assert_eq!(v.row(0), &img.view().row(3)[6..15]);
        assert!(img.view().crop(BBox { x1: 20.0, y1: 0.0, x2: 30.0, y2: 5.0 }).is_none());
    }

    #[test]
    fn short_buffers_are_rejected() {
        assert!(BgrView::new(4, 4, 12, &[0u8; 40]).is_err());
        assert!(BgrView::new(4, 4, 16, &[0u8; 60]).is_ok());
        assert!(BgrView::new(0, 4, 16, &[0u8; 60]).is_err());
    }
}
