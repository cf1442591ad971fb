//! Bilinear resizing of BGR images, row by row in fixed point.

use super::{BgrImage, BgrView};

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
    pub(super) fn row_planar(&mut self, src: &BgrView<'_>, y: usize, planes: [&mut [f32]; 3], luts: &[[f32; 256]; 3], channels: [usize; 3]) {
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
