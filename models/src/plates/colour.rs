//! Plate colour from a rectified plate: the text polarity and background from the pixels, and the hue
//! among blue/green/yellow from HyperLPR's colour classifier.
//!
//! Measured on the 500 dev crops (all blue) and the four scene images (`README.md`, "Plate colour"): the
//! classifier, fed BGR /255 at 96x96 (stretched), answers [blue, green, yellow] — 98.2 % blue on the dev
//! crops, green for the new-energy plate, yellow for the truck — but it has no class for black or white
//! plates and calls both blue. Pixels alone (hue histograms) did worse on night and colour-cast crops
//! (92 % blue). So: the pixels decide the polarity (white text → blue or black plate; dark text → yellow,
//! green or white plate) and whether the background is unsaturated (black or white), and the classifier
//! picks the hue where one is needed.

use std::path::Path;

use ort::environment::Environment;
use ort::value::TensorRef;

use super::grammar::PlateColour;
use crate::image::{resize_bilinear, BgrView};
use crate::runtime::{load_session, Dim, LoadedSession, ResolvedTensors, SessionOptions, TensorContract, TensorSpec};
use crate::ModelError;

pub const CONTRACT: TensorContract = TensorContract {
    model: "plate colour classifier",
    input: TensorSpec { name: Some("data"), dims: &[Dim::Fixed(1), Dim::Fixed(3), Dim::Fixed(96), Dim::Fixed(96)] },
    output: TensorSpec { name: Some("output"), dims: &[Dim::Fixed(1), Dim::Fixed(3)] },
};

/// Class order of the classifier's output, established on real plates (see the module docs).
const CLASSES: [PlateColour; 3] = [PlateColour::Blue, PlateColour::Green, PlateColour::Yellow];
const SIZE: u32 = 96;

/// What the pixels say about a rectified plate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelFacts {
    /// Fraction of the plate's core brighter than the Otsu threshold. Text is the minority, so below one
    /// half means light text on a dark background.
    pub bright_fraction: f32,
    /// Median saturation and value (0–255, as OpenCV's HSV) of the background pixels.
    pub background_saturation: f32,
    pub background_value: f32,
    /// Median hue of the background pixels, 0–180 as OpenCV's HSV (blue ≈ 105–125, green ≈ 45–85, yellow
    /// ≈ 15–35).
    pub background_hue: f32,
}

impl PixelFacts {
    pub fn light_text(&self) -> bool {
        self.bright_fraction < 0.5
    }

    /// The background's chroma (max − min of its channels, 0–255). On a dark background saturation
    /// overstates the colour (a few levels of difference over a low maximum): chroma does not.
    pub fn chroma(&self) -> f32 {
        self.background_saturation * self.background_value / 255.0
    }
}

fn gray(px: &[u8]) -> u8 {
    ((px[2] as u32 * 299 + px[1] as u32 * 587 + px[0] as u32 * 114 + 500) / 1000) as u8
}

/// Hue, saturation and value as OpenCV computes them for 8-bit BGR images (hue 0–180).
fn hsv(px: &[u8]) -> (u8, u8, u8) {
    let (b, g, r) = (px[0] as i32, px[1] as i32, px[2] as i32);
    let max = b.max(g).max(r);
    let min = b.min(g).min(r);
    let s = if max == 0 { 0 } else { ((max - min) * 255 / max) as u8 };
    let d = (max - min).max(1) as f32;
    let h = if max == min {
        0.0
    } else if max == r {
        60.0 * (g - b) as f32 / d
    } else if max == g {
        120.0 + 60.0 * (b - r) as f32 / d
    } else {
        240.0 + 60.0 * (r - g) as f32 / d
    };
    let h = if h < 0.0 { h + 360.0 } else { h };
    (((h / 2.0).round() as u32 % 180) as u8, s, max as u8)
}

fn otsu(hist: &[u32; 256]) -> u8 {
    let total: u64 = hist.iter().map(|&h| h as u64).sum();
    let sum: f64 = hist.iter().enumerate().map(|(i, &h)| i as f64 * h as f64).sum();
    let (mut w0, mut sum0, mut best, mut threshold) = (0f64, 0f64, -1f64, 0u8);
    for (t, &h) in hist.iter().enumerate() {
        w0 += h as f64;
        if w0 == 0.0 {
            continue;
        }
        let w1 = total as f64 - w0;
        if w1 == 0.0 {
            break;
        }
        sum0 += t as f64 * h as f64;
        let m0 = sum0 / w0;
        let m1 = (sum - sum0) / w1;
        let between = w0 * w1 * (m0 - m1) * (m0 - m1);
        if between > best {
            best = between;
            threshold = t as u8;
        }
    }
    threshold
}

fn median(mut v: Vec<u8>) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    *v.select_nth_unstable(mid).1 as f32
}

/// Polarity and background of a rectified plate, from its core (the borders are often frame or shadow).
pub fn pixel_facts(plate: &BgrView<'_>) -> PixelFacts {
    let (w, h) = (plate.width(), plate.height());
    let (y0, y1) = ((h as f32 * 0.15) as u32, ((h as f32 * 0.85) as u32).max(1));
    let (x0, x1) = ((w as f32 * 0.03) as u32, ((w as f32 * 0.97) as u32).max(1));
    let mut hist = [0u32; 256];
    for y in y0..y1 {
        let row = plate.row(y);
        for x in x0..x1 {
            hist[gray(&row[x as usize * 3..x as usize * 3 + 3]) as usize] += 1;
        }
    }
    let t = otsu(&hist);
    let total: u32 = hist.iter().sum();
    let bright: u32 = hist[t as usize + 1..].iter().sum::<u32>().min(total);
    let bright_fraction = if total == 0 { 0.5 } else { bright as f32 / total as f32 };
    let light_text = bright_fraction < 0.5;
    let (mut hues, mut sats, mut vals) = (Vec::new(), Vec::new(), Vec::new());
    for y in y0..y1 {
        let row = plate.row(y);
        for x in x0..x1 {
            let px = &row[x as usize * 3..x as usize * 3 + 3];
            let is_bright = gray(px) > t;
            // Background: the dark side under light text, the bright side under dark text.
            if is_bright != light_text {
                let (h, s, v) = hsv(px);
                hues.push(h);
                sats.push(s);
                vals.push(v);
            }
        }
    }
    PixelFacts { bright_fraction, background_saturation: median(sats), background_value: median(vals), background_hue: median(hues) }
}

/// The colour classifier model.
pub struct ColourClassifier {
    loaded: LoadedSession,
    tensors: ResolvedTensors,
    input: Vec<f32>,
}

impl ColourClassifier {
    pub fn load(env: &Environment, path: &Path, options: &SessionOptions) -> Result<Self, ModelError> {
        let loaded = load_session(env, path, options)?;
        let tensors = CONTRACT.check(&loaded.session, path)?;
        Ok(Self { loaded, tensors, input: vec![0.0; (3 * SIZE * SIZE) as usize] })
    }

    /// Probabilities of [blue, green, yellow].
    pub fn classify(&mut self, plate: &BgrView<'_>) -> Result<[f32; 3], ModelError> {
        let resized = resize_bilinear(plate, SIZE, SIZE);
        let plane = (SIZE * SIZE) as usize;
        for (i, px) in resized.as_bytes().chunks_exact(3).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                self.input[c * plane + i] = v as f32 / 255.0;
            }
        }
        let path = &self.loaded.path;
        let fail = |e: ort::Error| ModelError::Inference { path: path.clone(), reason: e.to_string() };
        let input = TensorRef::from_array_view(([1usize, 3, SIZE as usize, SIZE as usize], self.input.as_slice())).map_err(fail)?;
        let outputs = self.loaded.session.run(ort::inputs![self.tensors.input.as_str() => input]).map_err(fail)?;
        let (_, p) = outputs[self.tensors.output.as_str()].try_extract_tensor::<f32>().map_err(fail)?;
        Ok([p[0], p[1], p[2]])
    }
}

/// Background hues (OpenCV's 0–180) that are plainly yellow and plainly green, when the background is
/// saturated enough for its hue to mean something.
const YELLOW_HUES: std::ops::RangeInclusive<f32> = 10.0..=35.0;
const GREEN_HUES: std::ops::RangeInclusive<f32> = 45.0..=90.0;
const HUE_SATURATION: f32 = 60.0;
/// A pale background of this hue and at least [`PALE_SATURATION`] is a blue plate washed out by light
/// (its white characters then no longer stand out as the brighter part), not a white one.
const BLUE_HUES: std::ops::RangeInclusive<f32> = 95.0..=130.0;
const PALE_SATURATION: f32 = 20.0;

/// Decides the colour from the pixel facts and, when the hue matters, the classifier's probabilities.
/// A background whose hue is plain (saturated yellow or green) settles it without the classifier, which
/// on dirty yellow plates answers green.
pub fn decide(facts: &PixelFacts, classifier: Option<[f32; 3]>) -> PlateColour {
    let plain = |hues: &std::ops::RangeInclusive<f32>| facts.background_saturation >= HUE_SATURATION && hues.contains(&facts.background_hue);
    if facts.light_text() {
        // White characters: blue plate, green (agricultural, civil aviation), or black when the background
        // is dark and nearly grey.
        if facts.background_value < 80.0 && facts.chroma() < 25.0 {
            PlateColour::Black
        } else if plain(&GREEN_HUES) {
            PlateColour::Green
        } else {
            PlateColour::Blue
        }
    } else if facts.background_saturation < 50.0 {
        if facts.background_saturation >= PALE_SATURATION && BLUE_HUES.contains(&facts.background_hue) {
            PlateColour::Blue
        } else {
            PlateColour::White
        }
    } else if plain(&YELLOW_HUES) {
        PlateColour::Yellow
    } else if plain(&GREEN_HUES) {
        PlateColour::Green
    } else {
        match classifier {
            // Dark text is never on a blue plate; choose between green and yellow.
            Some(p) if p[1] >= p[2] => CLASSES[1],
            Some(_) => CLASSES[2],
            None => PlateColour::Yellow,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::BgrImage;

    /// A plate of `bg` with a band of `fg` "text" covering a fifth of it.
    fn plate(bg: [u8; 3], fg: [u8; 3]) -> BgrImage {
        let (w, h) = (100u32, 30u32);
        let mut data = Vec::new();
        for _y in 0..h {
            for x in 0..w {
                data.extend_from_slice(if x % 10 < 2 { &fg } else { &bg });
            }
        }
        BgrImage::new(w, h, data).unwrap()
    }

    #[test]
    fn white_text_on_blue_is_blue() {
        let f = pixel_facts(&plate([180, 60, 20], [240, 240, 240]).view());
        assert!(f.light_text());
        assert_eq!(decide(&f, Some([0.1, 0.8, 0.1])), PlateColour::Blue);
    }

    #[test]
    fn white_text_on_black_is_black() {
        let f = pixel_facts(&plate([30, 30, 30], [230, 230, 230]).view());
        assert_eq!(decide(&f, None), PlateColour::Black);
        // Black with a violet cast: saturation 99 on a value of 41, but a chroma of 16.
        let cast = pixel_facts(&plate([41, 25, 30], [230, 230, 230]).view());
        assert!(cast.background_saturation > 80.0);
        assert_eq!(decide(&cast, None), PlateColour::Black);
        // A blue plate in deep shade stays blue (chroma 70).
        let shade = pixel_facts(&plate([75, 20, 5], [200, 200, 200]).view());
        assert_eq!(decide(&shade, None), PlateColour::Blue);
    }

    #[test]
    fn dark_text_uses_the_classifier_for_hue_unless_unsaturated() {
        // A yellowish background too washed out for its hue to settle it (saturation 55).
        let yellow = pixel_facts(&plate([180, 205, 230], [20, 20, 20]).view());
        assert!(!yellow.light_text());
        assert_eq!(decide(&yellow, Some([0.0, 0.1, 0.9])), PlateColour::Yellow);
        assert_eq!(decide(&yellow, Some([0.0, 0.9, 0.1])), PlateColour::Green);
        let white = pixel_facts(&plate([235, 235, 235], [20, 20, 20]).view());
        assert_eq!(decide(&white, Some([0.9, 0.0, 0.1])), PlateColour::White);
        // Pale blue (saturation 32) under glare, the characters no brighter than the background: blue.
        let washed_out = pixel_facts(&plate([250, 235, 220], [120, 110, 100]).view());
        assert!(!washed_out.light_text());
        assert_eq!(decide(&washed_out, None), PlateColour::Blue);
    }

    #[test]
    fn a_plain_yellow_or_green_background_settles_the_hue_whatever_the_classifier_says() {
        let yellow = pixel_facts(&plate([20, 190, 230], [20, 20, 20]).view());
        assert_eq!(decide(&yellow, Some([0.0, 0.9, 0.1])), PlateColour::Yellow);
        let green = pixel_facts(&plate([60, 180, 40], [20, 20, 20]).view());
        assert_eq!(decide(&green, Some([0.0, 0.1, 0.9])), PlateColour::Green);
        // White characters on dark green: an agricultural or civil-aviation plate, not a blue one.
        let dark_green = pixel_facts(&plate([50, 110, 20], [235, 235, 235]).view());
        assert!(dark_green.light_text());
        assert_eq!(decide(&dark_green, None), PlateColour::Green);
    }

    #[test]
    fn otsu_splits_two_levels() {
        let mut hist = [0u32; 256];
        hist[20] = 100;
        hist[200] = 50;
        let t = otsu(&hist);
        assert!((20..200).contains(&t));
    }
}
