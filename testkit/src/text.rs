//! Text rendered at test time with a real CJK font (Debian's `fonts-wqy-microhei`): street signs, banners
//! and plate-like strings that the plate reader must refuse.

use ab_glyph::{Font, FontVec, PxScale, ScaleFont};
use image::{Rgb, RgbImage};

const FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";

fn font() -> FontVec {
    let bytes = std::fs::read(FONT).unwrap_or_else(|e| panic!("{FONT}: {e}; install the Debian package fonts-wqy-microhei (make deps)"));
    FontVec::try_from_vec_and_index(bytes, 0).expect("a usable font")
}

/// `text` in `fg` on `bg`, `px` pixels high, with `pad` pixels around it.
pub fn render(text: &str, px: f32, fg: [u8; 3], bg: [u8; 3], pad: u32) -> RgbImage {
    let font = font();
    let scaled = font.as_scaled(PxScale::from(px));
    let width: f32 = text.chars().map(|c| scaled.h_advance(font.glyph_id(c))).sum();
    let height = scaled.ascent() - scaled.descent();
    let (w, h) = (width.ceil() as u32 + 2 * pad, height.ceil() as u32 + 2 * pad);
    let mut img = RgbImage::from_pixel(w.max(1), h.max(1), Rgb(bg));
    let mut x = pad as f32;
    for c in text.chars() {
        let id = font.glyph_id(c);
        let glyph = id.with_scale_and_position(PxScale::from(px), ab_glyph::point(x, pad as f32 + scaled.ascent()));
        x += scaled.h_advance(id);
        if let Some(outline) = font.outline_glyph(glyph) {
            let bounds = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                let (px_x, px_y) = (bounds.min.x as i64 + gx as i64, bounds.min.y as i64 + gy as i64);
                if px_x >= 0 && px_y >= 0 && (px_x as u32) < w && (px_y as u32) < h {
                    let p = img.get_pixel_mut(px_x as u32, px_y as u32);
                    for (channel, &f) in p.0.iter_mut().zip(fg.iter()) {
                        *channel = (*channel as f32 * (1.0 - coverage) + f as f32 * coverage).round() as u8;
                    }
                }
            });
        }
    }
    img
}
