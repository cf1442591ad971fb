//! Perspective rectification of a plate from its four corners, and the double-row layout.

use crate::image::{BgrImage, BgrView};

/// A point in pixels.
pub type Point = (f32, f32);

/// The 3x3 homography mapping `src[i]` to `dst[i]` (row-major, h33 = 1), or `None` for degenerate quads.
pub fn homography(src: &[Point; 4], dst: &[Point; 4]) -> Option<[f64; 9]> {
    // Eight equations in h11..h32: x' (h31 x + h32 y + 1) = h11 x + h12 y + h13, likewise for y'.
    let mut a = [[0f64; 9]; 8];
    for i in 0..4 {
        let (x, y) = (src[i].0 as f64, src[i].1 as f64);
        let (u, v) = (dst[i].0 as f64, dst[i].1 as f64);
        a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    // Gaussian elimination with partial pivoting on the augmented 8x9 system.
    for col in 0..8 {
        let pivot = (col..8).max_by(|&r1, &r2| a[r1][col].abs().total_cmp(&a[r2][col].abs()))?;
        if a[pivot][col].abs() < 1e-9 {
            return None;
        }
        a.swap(col, pivot);
        let pivot_row = a[col];
        for (row, r) in a.iter_mut().enumerate() {
            if row != col {
                let f = r[col] / pivot_row[col];
                for (x, p) in r.iter_mut().zip(pivot_row.iter()).skip(col) {
                    *x -= f * p;
                }
            }
        }
    }
    let mut h = [0f64; 9];
    for i in 0..8 {
        h[i] = a[i][8] / a[i][i];
    }
    h[8] = 1.0;
    Some(h)
}

/// Samples `src` bilinearly at (`x`, `y`), clamping to the border.
#[inline]
fn sample(src: &BgrView<'_>, x: f64, y: f64, out: &mut [u8]) {
    let (w, h) = (src.width() as i64, src.height() as i64);
    let x = x.clamp(0.0, (w - 1) as f64);
    let y = y.clamp(0.0, (h - 1) as f64);
    let x0 = x.floor() as i64;
    let y0 = y.floor() as i64;
    let x1 = (x0 + 1).min(w - 1);
    let y1 = (y0 + 1).min(h - 1);
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let r0 = src.row(y0 as u32);
    let r1 = src.row(y1 as u32);
    for c in 0..3 {
        let p00 = r0[x0 as usize * 3 + c] as f64;
        let p01 = r0[x1 as usize * 3 + c] as f64;
        let p10 = r1[x0 as usize * 3 + c] as f64;
        let p11 = r1[x1 as usize * 3 + c] as f64;
        let top = p00 + (p01 - p00) * fx;
        let bottom = p10 + (p11 - p10) * fx;
        out[c] = (top + (bottom - top) * fy).round().clamp(0.0, 255.0) as u8;
    }
}

/// Warps the quadrilateral `corners` (top-left, top-right, bottom-right, bottom-left) of `src` to an upright
/// `out_w`x`out_h` image. `None` when the corners do not form a usable quadrilateral.
pub fn warp_quad(src: &BgrView<'_>, corners: &[Point; 4], out_w: u32, out_h: u32) -> Option<BgrImage> {
    let (w, h) = (out_w as f32, out_h as f32);
    let dst = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)];
    // Map output pixels back to the source.
    let m = homography(&dst, corners)?;
    let mut data = vec![0u8; out_w as usize * out_h as usize * 3];
    for y in 0..out_h {
        for x in 0..out_w {
            // Pixel centres.
            let (u, v) = (x as f64 + 0.5, y as f64 + 0.5);
            let d = m[6] * u + m[7] * v + m[8];
            if d.abs() < 1e-12 {
                return None;
            }
            let sx = (m[0] * u + m[1] * v + m[2]) / d - 0.5;
            let sy = (m[3] * u + m[4] * v + m[5]) / d - 0.5;
            let i = (y as usize * out_w as usize + x as usize) * 3;
            sample(src, sx, sy, &mut data[i..i + 3]);
        }
    }
    BgrImage::new(out_w, out_h, data).ok()
}

/// Grows a quadrilateral about its centre: `dx` of its width left and right, `dy` of its height up and down.
/// The reader was trained on crops with a little background around the characters.
pub fn expand_quad(q: &[Point; 4], dx: f32, dy: f32) -> [Point; 4] {
    let lerp = |a: Point, b: Point, t: f32| (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
    // Extend each edge direction: horizontal edges TL→TR and BL→BR, vertical edges TL→BL and TR→BR.
    let [tl, tr, br, bl] = *q;
    let tl2 = lerp(tr, tl, 1.0 + dx);
    let tr2 = lerp(tl, tr, 1.0 + dx);
    let bl2 = lerp(br, bl, 1.0 + dx);
    let br2 = lerp(bl, br, 1.0 + dx);
    [lerp(bl2, tl2, 1.0 + dy), lerp(br2, tr2, 1.0 + dy), lerp(tr2, br2, 1.0 + dy), lerp(tl2, bl2, 1.0 + dy)]
}

/// Share of a column's pixels that must have the plate's background colour for the column to be plate.
const PLATE_COLUMN_SHARE: f32 = 0.3;
/// Largest per-channel difference from the background colour that still counts as background.
const BACKGROUND_TOLERANCE: i32 = 60;

/// Cuts an upright plate down to the columns that carry its background colour. The detector's corners of
/// a double-row plate often reach past its sides (a bumper, a date stamp); the squeezed upper row then
/// slides off its crop and the stray marks read as characters. The background colour is the per-channel
/// median of the middle half of the plate (characters are the minority); columns from the middle outwards
/// stay while at least [`PLATE_COLUMN_SHARE`] of their pixels are within [`BACKGROUND_TOLERANCE`] of it.
/// Returns the plate unchanged when that would keep less than 60 % of its width (not a plate-coloured
/// background to go by).
pub fn trim_to_background(plate: &BgrView<'_>) -> BgrImage {
    let (w, h) = (plate.width() as usize, plate.height() as usize);
    let mut channels: [Vec<u8>; 3] = Default::default();
    for y in h / 4..h * 3 / 4 {
        let row = plate.row(y as u32);
        for x in w / 4..w * 3 / 4 {
            for (c, values) in channels.iter_mut().enumerate() {
                values.push(row[x * 3 + c]);
            }
        }
    }
    let mut background = [0i32; 3];
    for (c, values) in channels.iter_mut().enumerate() {
        if values.is_empty() {
            return plate.to_owned();
        }
        let mid = values.len() / 2;
        background[c] = *values.select_nth_unstable(mid).1 as i32;
    }
    let share: Vec<f32> = (0..w)
        .map(|x| {
            let n = (0..h)
                .filter(|&y| {
                    let px = &plate.row(y as u32)[x * 3..x * 3 + 3];
                    (0..3).all(|c| (px[c] as i32 - background[c]).abs() <= BACKGROUND_TOLERANCE)
                })
                .count();
            n as f32 / h as f32
        })
        .collect();
    let mut left = w / 2;
    while left > 0 && share[left - 1] >= PLATE_COLUMN_SHARE {
        left -= 1;
    }
    let mut right = w / 2;
    while right < w && share[right] >= PLATE_COLUMN_SHARE {
        right += 1;
    }
    if ((right - left) as f32) < w as f32 * 0.6 || right - left == w {
        return plate.to_owned();
    }
    match plate.crop(crate::BBox::new(left as f32, 0.0, right as f32, h as f32)) {
        Some(core) => crate::image::resize_bilinear(&core, w as u32, h as u32),
        None => plate.to_owned(),
    }
}

/// Turns a rectified double-row plate into one line the reader can take: the upper row (province and
/// letter) squeezed to about two character widths, then the lower row.
pub fn double_row_to_line(plate: &BgrView<'_>, line_h: u32) -> Option<BgrImage> {
    let (w, h) = (plate.width() as f32, plate.height() as f32);
    // Upper row: top 5/12 of the plate; lower row: from 1/3 down (the rows overlap a little).
    let upper = plate.crop(crate::BBox::new(w * 0.15, 0.0, w * 0.85, h * 5.0 / 12.0))?;
    let lower = plate.crop(crate::BBox::new(0.0, h / 3.0, w, h))?;
    let upper_w = (line_h as f32 * 2.2).round() as u32;
    let lower_w = ((lower.width() as f32 / lower.height() as f32) * line_h as f32).round().max(1.0) as u32;
    let up = crate::image::resize_bilinear(&upper, upper_w, line_h);
    let low = crate::image::resize_bilinear(&lower, lower_w, line_h);
    let total_w = upper_w + lower_w;
    let mut data = Vec::with_capacity(total_w as usize * line_h as usize * 3);
    for y in 0..line_h {
        data.extend_from_slice(up.view().row(y));
        data.extend_from_slice(low.view().row(y));
    }
    BgrImage::new(total_w, line_h, data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homography_maps_the_corners() {
        let src = [(10.0, 20.0), (110.0, 25.0), (105.0, 60.0), (12.0, 55.0)];
        let dst = [(0.0, 0.0), (160.0, 0.0), (160.0, 48.0), (0.0, 48.0)];
        let h = homography(&src, &dst).unwrap();
        for (s, d) in src.iter().zip(&dst) {
            let (x, y) = (s.0 as f64, s.1 as f64);
            let w = h[6] * x + h[7] * y + h[8];
            let u = (h[0] * x + h[1] * y + h[2]) / w;
            let v = (h[3] * x + h[4] * y + h[5]) / w;
            assert!((u - d.0 as f64).abs() < 1e-6 && (v - d.1 as f64).abs() < 1e-6);
        }
    }

    #[test]
    fn degenerate_quads_have_no_homography() {
        let line = [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (3.0, 3.0)];
        assert!(homography(&line, &[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]).is_none());
    }

    #[test]
    fn warping_an_axis_aligned_quad_is_a_crop_and_scale() {
        // Left half black, right half white.
        let mut data = Vec::new();
        for _y in 0..20 {
            for x in 0..40 {
                let v = if x < 20 { 0 } else { 255 };
                data.extend_from_slice(&[v, v, v]);
            }
        }
        let img = BgrImage::new(40, 20, data).unwrap();
        let out = warp_quad(&img.view(), &[(0.0, 0.0), (40.0, 0.0), (40.0, 20.0), (0.0, 20.0)], 20, 10).unwrap();
        let row = out.view().row(5);
        assert_eq!(row[0], 0);
        assert_eq!(row[19 * 3], 255);
    }

    #[test]
    fn expanding_a_rectangle_grows_it_evenly() {
        let q = expand_quad(&[(10.0, 10.0), (30.0, 10.0), (30.0, 20.0), (10.0, 20.0)], 0.1, 0.2);
        assert_eq!(q[0], (8.0, 8.0));
        assert_eq!(q[2], (32.0, 22.0));
    }
}
