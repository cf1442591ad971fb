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
/// fixed-point weights. Writes a packed BGR image of `dw`x`dh` into `dst`, which must be at least
/// `dw * dh * 3` bytes long.
pub fn resize_bilinear_into(src: &BgrView<'_>, dw: u32, dh: u32, dst: &mut [u8]) {
    const BITS: u32 = 11;
    const ONE: i32 = 1 << BITS;
    let (sw, sh) = (src.width as usize, src.height as usize);
    let (dw, dh) = (dw as usize, dh as usize);
    debug_assert!(dst.len() >= dw * dh * 3);

    // Per output column: the left source column (in bytes) and the weight of the right neighbour.
    let fx = sw as f64 / dw as f64;
    let cols: Vec<(usize, usize, i32)> = (0..dw)
        .map(|x| {
            let s = ((x as f64 + 0.5) * fx - 0.5).max(0.0);
            let x0 = (s.floor() as usize).min(sw - 1);
            let x1 = (x0 + 1).min(sw - 1);
            let w = ((s - x0 as f64) * ONE as f64).round() as i32;
            (x0 * 3, x1 * 3, w.clamp(0, ONE))
        })
        .collect();
    let fy = sh as f64 / dh as f64;
    let mut top = vec![0i32; dw * 3];
    let mut bottom = vec![0i32; dw * 3];
    for y in 0..dh {
        let s = ((y as f64 + 0.5) * fy - 0.5).max(0.0);
        let y0 = (s.floor() as usize).min(sh - 1);
        let y1 = (y0 + 1).min(sh - 1);
        let wy = (((s - y0 as f64) * ONE as f64).round() as i32).clamp(0, ONE);
        horizontal(src.row(y0 as u32), &cols, &mut top);
        horizontal(src.row(y1 as u32), &cols, &mut bottom);
        let out = &mut dst[y * dw * 3..(y + 1) * dw * 3];
        for ((o, t), b) in out.iter_mut().zip(&top).zip(&bottom) {
            let v = (t * (ONE - wy) + b * wy + (1 << (2 * BITS - 1))) >> (2 * BITS);
            *o = v.clamp(0, 255) as u8;
        }
    }

    fn horizontal(row: &[u8], cols: &[(usize, usize, i32)], out: &mut [i32]) {
        for (o, &(a, b, w)) in out.chunks_exact_mut(3).zip(cols) {
            for c in 0..3 {
                o[c] = row[a + c] as i32 * (ONE - w) + row[b + c] as i32 * w;
            }
        }
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

/// Letterboxes `src` into a planar (CHW) `f32` tensor as `spec` says, written to `out` (length
/// `3 * width * height`). `scratch` is reused between calls to hold the resized pixels.
pub fn letterbox_into(src: &BgrView<'_>, spec: &LetterboxSpec, scratch: &mut Vec<u8>, out: &mut [f32]) -> Letterbox {
    let lb = Letterbox::fit(src.width, src.height, spec.width, spec.height, spec.anchor);
    let (rw, rh) = (lb.resized_w as usize, lb.resized_h as usize);
    scratch.resize(rw * rh * 3, 0);
    if rw == src.width as usize && rh == src.height as usize {
        for y in 0..rh {
            scratch[y * rw * 3..(y + 1) * rw * 3].copy_from_slice(src.row(y as u32));
        }
    } else {
        resize_bilinear_into(src, lb.resized_w, lb.resized_h, scratch);
    }
    let placement = Placement { width: rw, height: rh, x: lb.pad_x as usize, y: lb.pad_y as usize };
    write_planar(scratch, placement, spec, out);
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
    let (in_w, in_h) = (spec.width as usize, spec.height as usize);
    let (rw, rh, ox, oy) = (at.width, at.height, at.x, at.y);
    let norm = &spec.norm;
    let pad_value = spec.pad;
    let plane = in_w * in_h;
    debug_assert!(out.len() >= plane * 3);
    let lut = norm.lut();
    // Source channel for each output plane.
    let src_channel = match norm.order {
        ChannelOrder::Bgr => [0usize, 1, 2],
        ChannelOrder::Rgb => [2usize, 1, 0],
    };
    for (c, &sc) in src_channel.iter().enumerate() {
        let pad = lut[c][pad_value as usize];
        let dst = &mut out[c * plane..(c + 1) * plane];
        dst.fill(pad);
        for y in 0..rh {
            let row = &bgr[y * rw * 3..(y + 1) * rw * 3];
            let drow = &mut dst[(oy + y) * in_w + ox..(oy + y) * in_w + ox + rw];
            for (d, px) in drow.iter_mut().zip(row.chunks_exact(3)) {
                *d = lut[c][px[sc] as usize];
            }
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
        let mut scratch = Vec::new();
        let spec = |norm| LetterboxSpec { width: 2, height: 2, anchor: Anchor::TopLeft, pad: 114, norm };
        letterbox_into(&img.view(), &spec(Normalisation::raw(ChannelOrder::Rgb)), &mut scratch, &mut out);
        // Image 1x1 scales to 2x2 (fills the input), so every pixel is the source pixel in RGB planes.
        assert_eq!(&out[0..4], &[30.0; 4]);
        assert_eq!(&out[8..12], &[10.0; 4]);
        let img = BgrImage::new(2, 1, vec![10, 20, 30, 10, 20, 30]).unwrap();
        letterbox_into(&img.view(), &spec(Normalisation::unit(ChannelOrder::Bgr)), &mut scratch, &mut out);
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
