//! PP-OCRv4 text recogniser as a plate reader.
//!
//! Contract (checked at load): input `x` f32 `[N,3,H,W]` (fed with H = 48), BGR, `(v/255 − 0.5)/0.5`; output f32 `[N,T,C]`
//! softmax per frame; the dictionary in the model metadata under `character` (newline separated), class 0
//! the CTC blank, then the dictionary, then a space, so `C = len(dictionary) + 2`.
//!
//! Plates are fed the way PaddleOCR feeds text lines — height 48, width from the aspect ratio, padded on the
//! right to 320 — which measured 98.2 % exact on the dev crops with an alphabet mask against 96.4 % for a
//! plain stretch. Decoding is constrained to plate templates (`ctc`, `grammar`), and a read whose weakest
//! character is unsure, or whose frames the model spends on characters outside the plate alphabet, is
//! rejected instead of being passed on as a plate.

use std::path::Path;

use ort::environment::Environment;
use ort::value::TensorRef;
use serde::Serialize;

use super::ctc::{best_alignment, log_likelihood, Alignment, ClassSlots, Probs};
use super::grammar::{alphabet, templates, PlateColour, Slot, Template, COLOUR_MISMATCH_PENALTY};
use crate::image::{resize_bilinear, BgrImage, BgrView};
use crate::runtime::{load_session, Dim, LoadedSession, ResolvedTensors, SessionOptions, TensorContract, TensorSpec};
use crate::ModelError;

pub const CONTRACT: TensorContract = TensorContract {
    model: "PP-OCR plate reader",
    input: TensorSpec { name: Some("x"), dims: &[Dim::Any, Dim::Fixed(3), Dim::Any, Dim::Any] },
    output: TensorSpec { name: None, dims: &[Dim::Any, Dim::Any, Dim::Any] },
};

pub const INPUT_H: u32 = 48;
pub const INPUT_W: u32 = 320;
const DICTIONARY_KEY: &str = "character";
/// A leading province below this, where the model sees no character, is made up (see `Decoder::decode`).
const INVENTED_PROVINCE: f32 = 0.1;

/// When a read counts as a plate.
#[derive(Debug, Clone, PartialEq)]
pub struct ReaderSettings {
    /// Every character must have at least this probability.
    pub min_char_confidence: f32,
    /// At most this share of the model's non-blank probability may go to characters that never appear on
    /// plates (Chinese text, punctuation) over the frames it spends on characters.
    pub max_foreign_share: f32,
    /// Plates per model run. On 2 CPU threads ONNX Runtime reads two plates at 9.6 ms each, one at 9.9 ms,
    /// but eight at 13 ms each (the 6,625-class output per frame makes big batches memory-bound), so
    /// the CPU default is 2; a GPU gains from more.
    pub max_batch: usize,
}

impl Default for ReaderSettings {
    fn default() -> Self {
        Self { min_char_confidence: 0.02, max_foreign_share: 0.35, max_batch: 2 }
    }
}

/// A plate number read from one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlateText {
    pub text: String,
    /// Geometric mean of the character confidences.
    pub confidence: f32,
    pub char_confidences: Vec<f32>,
    pub min_char_confidence: f32,
    /// Template name (`standard`, `new-energy-small`, ...).
    pub layout: &'static str,
}

/// Why an image did not yield a plate.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Rejection {
    /// No plate layout fits what the model read.
    NoLayout,
    /// The best plate-shaped read has a character below the confidence floor (partial or unreadable).
    Unsure { text: String, min_char_confidence: f32 },
    /// The model reads mostly characters that do not occur on plates (a sign, a banner).
    NotPlateText { foreign_share: f32 },
    /// The layout starts with a province but the model sees no character where it would stand: a
    /// foreign plate (`S TA 5131E` would otherwise read `皖ST5131`).
    NoProvince { text: String, province_confidence: f32 },
    /// A civil layout in dark characters on white, on no vehicle: a parking-space sign or a banner, not a
    /// plate (a standard plate is never issued in white; see `grammar::issued_colour`).
    SignLike { text: String },
}

/// A compiled template: the class ids each slot allows.
struct CompiledTemplate {
    template: Template,
    slots: ClassSlots,
}

/// The layouts and the plate alphabet as class ids of `classes`; the plate characters `classes` lacks
/// otherwise.
fn compile(classes: &[String]) -> Result<(Vec<CompiledTemplate>, Vec<usize>), String> {
    let index = |c: char| classes.iter().position(|s| s.chars().eq(std::iter::once(c)));
    let missing: String = alphabet().chars().filter(|c| index(*c).is_none()).collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    let plate_classes: Vec<usize> = alphabet().chars().filter_map(index).collect();
    let templates = templates()
        .into_iter()
        .map(|t| {
            let slots = t.slots.iter().map(|s| s.chars().into_iter().filter_map(index).collect()).collect();
            CompiledTemplate { template: t, slots }
        })
        .collect();
    Ok((templates, plate_classes))
}

/// The loaded reader.
pub struct PlateReader {
    loaded: LoadedSession,
    tensors: ResolvedTensors,
    /// Character of each class id (blank and space included as "").
    classes: Vec<String>,
    templates: Vec<CompiledTemplate>,
    /// Class ids of plate characters (for the foreign-share check).
    plate_classes: Vec<usize>,
    settings: ReaderSettings,
    input: Vec<f32>,
}

impl PlateReader {
    pub fn load(env: &Environment, path: &Path, options: &SessionOptions, settings: ReaderSettings) -> Result<Self, ModelError> {
        let loaded = load_session(env, path, options)?;
        let tensors = CONTRACT.check(&loaded.session, path)?;
        let mismatch = |m: String| ModelError::Contract { path: path.to_path_buf(), model: CONTRACT.model, mismatch: m };
        let dictionary =
            loaded.session.metadata().ok().and_then(|m| m.custom(DICTIONARY_KEY)).ok_or_else(|| mismatch(format!("no {DICTIONARY_KEY:?} dictionary in the model metadata")))?;
        let mut classes = vec![String::new()];
        classes.extend(dictionary.split('\n').map(|s| s.trim_end_matches('\r').to_string()));
        classes.push(String::new()); // trailing space class
        let declared = tensors.output_shape[2];
        if declared > 0 && declared as usize != classes.len() {
            return Err(mismatch(format!("output has {declared} classes, the metadata dictionary gives {} (+ blank and space)", classes.len() - 2)));
        }
        let (templates, plate_classes) = compile(&classes).map_err(|missing| mismatch(format!("the dictionary lacks plate characters {missing:?}")))?;
        Ok(Self { loaded, tensors, classes, templates, plate_classes, settings, input: Vec::new() })
    }

    pub fn settings(&self) -> &ReaderSettings {
        &self.settings
    }

    /// Writes one plate image into slot `i` of the input batch.
    fn prepare(&mut self, i: usize, plate: &BgrView<'_>) {
        let plane = (INPUT_H * INPUT_W) as usize;
        let stretched = stretch_contrast(plate);
        let src = stretched.view();
        let w = ((src.width() as f32 * INPUT_H as f32 / src.height() as f32).ceil() as u32).clamp(1, INPUT_W);
        let resized = resize_bilinear(&src, w, INPUT_H);
        let out = &mut self.input[i * 3 * plane..(i + 1) * 3 * plane];
        out.fill(0.0); // padding: mid-grey after normalisation, as PaddleOCR pads
        for y in 0..INPUT_H as usize {
            let row = resized.view().row(y as u32);
            for x in 0..w as usize {
                for c in 0..3 {
                    out[c * plane + y * INPUT_W as usize + x] = (row[x * 3 + c] as f32 / 255.0 - 0.5) / 0.5;
                }
            }
        }
    }

    /// Reads several plates, `max_batch` per model run. `colour` (when known) steers the layout.
    pub fn read_batch(&mut self, plates: &[(BgrView<'_>, Option<PlateColour>)]) -> Result<Vec<Result<PlateText, Rejection>>, ModelError> {
        let mut out = Vec::with_capacity(plates.len());
        for chunk in plates.chunks(self.settings.max_batch.max(1)) {
            out.extend(self.run_batch(chunk)?);
        }
        Ok(out)
    }

    /// Reads `plates` in one model run.
    fn run_batch(&mut self, plates: &[(BgrView<'_>, Option<PlateColour>)]) -> Result<Vec<Result<PlateText, Rejection>>, ModelError> {
        if plates.is_empty() {
            return Ok(Vec::new());
        }
        let n = plates.len();
        self.input.resize(n * 3 * (INPUT_H * INPUT_W) as usize, 0.0);
        for (i, (view, _)) in plates.iter().enumerate() {
            self.prepare(i, view);
        }
        let Self { loaded, tensors, classes, templates, plate_classes, settings, input } = self;
        let path = &loaded.path;
        let fail = |e: ort::Error| ModelError::Inference { path: path.clone(), reason: e.to_string() };
        let shape = [n, 3, INPUT_H as usize, INPUT_W as usize];
        let tensor = TensorRef::from_array_view((shape, &input[..n * 3 * (INPUT_H * INPUT_W) as usize])).map_err(fail)?;
        let outputs = loaded.session.run(ort::inputs![tensors.input.as_str() => tensor]).map_err(fail)?;
        let (out_shape, raw) = outputs[tensors.output.as_str()].try_extract_tensor::<f32>().map_err(fail)?;
        if out_shape.len() != 3 || out_shape[0] as usize != n || out_shape[2] as usize != classes.len() {
            return Err(ModelError::Inference { path: path.clone(), reason: format!("unexpected output shape {out_shape:?}") });
        }
        let decoder = Decoder { classes, templates, plate_classes, settings };
        let per = raw.len() / n;
        let frames = per / classes.len();
        Ok(plates
            .iter()
            .enumerate()
            .map(|(i, (_, colour))| match Probs::new(&raw[i * per..(i + 1) * per], frames, classes.len()) {
                Some(p) => decoder.decode(&p, *colour),
                None => Err(Rejection::NoLayout),
            })
            .collect())
    }

    /// Reads one plate.
    pub fn read(&mut self, plate: &BgrView<'_>, colour: Option<PlateColour>) -> Result<Result<PlateText, Rejection>, ModelError> {
        Ok(self.read_batch(&[(*plate, colour)])?.pop().unwrap_or(Err(Rejection::NoLayout)))
    }

    /// The prepared input of the last model run, for benchmarks timing a bare `Session::run`.
    pub fn input_tensor(&self, n: usize) -> (&[f32], [usize; 4]) {
        (&self.input[..n * 3 * (INPUT_H * INPUT_W) as usize], [n, 3, INPUT_H as usize, INPUT_W as usize])
    }

    pub fn session_mut(&mut self) -> &mut ort::session::Session {
        &mut self.loaded.session
    }

    pub fn input_name(&self) -> &str {
        &self.tensors.input
    }
}

/// The parts of the reader decoding needs (borrowed while the model's output is alive).
struct Decoder<'a> {
    classes: &'a [String],
    templates: &'a [CompiledTemplate],
    plate_classes: &'a [usize],
    settings: &'a ReaderSettings,
}

impl Decoder<'_> {
    /// Plate-aware decoding of one image's per-frame probabilities.
    pub fn decode(&self, probs: &Probs<'_>, colour: Option<PlateColour>) -> Result<PlateText, Rejection> {
        let foreign_share = foreign_share(probs, self.plate_classes);
        if foreign_share > self.settings.max_foreign_share {
            return Err(Rejection::NotPlateText { foreign_share });
        }
        let mut best: Option<(f32, &CompiledTemplate, Alignment)> = None;
        for t in self.templates {
            let Some(a) = best_alignment(probs, &t.slots) else { continue };
            let prior = match colour {
                Some(c) if !t.template.colours.contains(&c) => -COLOUR_MISMATCH_PENALTY,
                _ => 0.0,
            };
            let score = log_likelihood(probs, &a.labels) + prior;
            if best.as_ref().is_none_or(|(s, ..)| score > *s) {
                best = Some((score, t, a));
            }
        }
        let (_, template, Alignment { labels, confidences, frames, .. }) = best.ok_or(Rejection::NoLayout)?;
        let text: String = labels.iter().map(|&c| self.classes[c].as_str()).collect();
        let min = confidences.iter().copied().fold(1.0f32, f32::min);
        if min < self.settings.min_char_confidence {
            return Err(Rejection::Unsure { text, min_char_confidence: min });
        }
        // A province the crop does not show is never filled in: when the model sees no character where a
        // leading province should stand (the blank is likelier than anything) and the province chosen
        // there is a long shot, the text is a foreign plate's squeezed into a mainland layout. A province
        // that is there but faint or dirty is read as a look-alike (川 as W or M) or with a weak lead: it
        // is seen, and reported as uncertain instead.
        if template.template.slots.first() == Some(&Slot::Province) && confidences[0] < INVENTED_PROVINCE && probs.p(frames[0], 0) >= 0.5 {
            return Err(Rejection::NoProvince { text, province_confidence: confidences[0] });
        }
        let geo = (confidences.iter().map(|c| c.max(1e-6).ln()).sum::<f32>() / confidences.len() as f32).exp();
        Ok(PlateText { text, confidence: geo, char_confidences: confidences, min_char_confidence: min, layout: template.template.name })
    }
}

/// The share of non-blank probability on classes outside the plate alphabet, over the frames where the
/// model sees a character (non-blank mass at least one half).
fn foreign_share(probs: &Probs<'_>, plate_classes: &[usize]) -> f32 {
    let (mut foreign, mut non_blank) = (0f32, 0f32);
    for t in 0..probs.frames {
        let row = &probs.data[t * probs.classes..(t + 1) * probs.classes];
        let nb = 1.0 - row[0];
        if nb < 0.5 {
            continue;
        }
        let plate: f32 = plate_classes.iter().map(|&c| row[c]).sum();
        foreign += (nb - plate).max(0.0);
        non_blank += nb;
    }
    if non_blank == 0.0 {
        0.0
    } else {
        foreign / non_blank
    }
}

/// Stretches the plate's grey levels so the 1st and 99th percentiles span 0–255 (night and haze crops).
pub fn stretch_contrast(plate: &BgrView<'_>) -> BgrImage {
    let mut hist = [0u32; 256];
    for y in 0..plate.height() {
        for px in plate.row(y).chunks_exact(3) {
            let g = (px[2] as u32 * 299 + px[1] as u32 * 587 + px[0] as u32 * 114 + 500) / 1000;
            hist[g as usize] += 1;
        }
    }
    let total: u32 = hist.iter().sum();
    let percentile = |p: f32| {
        let target = (total as f32 * p).round() as u32;
        let mut acc = 0;
        for (v, &h) in hist.iter().enumerate() {
            acc += h;
            if acc > target {
                return v as f32;
            }
        }
        255.0
    };
    let (lo, hi) = (percentile(0.01), percentile(0.99));
    let owned = plate.to_owned();
    if hi - lo < 1.0 {
        return owned;
    }
    let scale = 255.0 / (hi - lo);
    let lut: Vec<u8> = (0..256).map(|v| ((v as f32 - lo) * scale).round().clamp(0.0, 255.0) as u8).collect();
    let data = owned.as_bytes().iter().map(|&v| lut[v as usize]).collect();
    BgrImage::new(owned.width(), owned.height(), data).unwrap_or(owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-frame probabilities over `classes` of a plate: a blank frame, `first` (characters and their
    /// probabilities), a blank, then each character of `rest` at 0.99 followed by a blank; whatever a
    /// frame leaves goes to the blank.
    fn probs(classes: &[String], first: &[(&str, f32)], rest: &str) -> (Vec<f32>, usize) {
        let mut frames: Vec<Vec<(String, f32)>> = vec![vec![], first.iter().map(|(c, p)| (c.to_string(), *p)).collect(), vec![]];
        for c in rest.chars() {
            frames.push(vec![(c.to_string(), 0.99)]);
            frames.push(vec![]);
        }
        let mut data = vec![0f32; frames.len() * classes.len()];
        for (t, frame) in frames.iter().enumerate() {
            let row = &mut data[t * classes.len()..(t + 1) * classes.len()];
            for (c, p) in frame {
                row[classes.iter().position(|s| s == c).unwrap_or(0)] += p;
            }
            row[0] += 1.0 - frame.iter().map(|(_, p)| p).sum::<f32>();
        }
        (data, frames.len())
    }

    #[test]
    fn a_leading_province_the_model_does_not_see_is_not_made_up_but_a_faint_one_is_read_uncertain() {
        let mut classes = vec![String::new()];
        classes.extend(alphabet().chars().map(String::from));
        classes.push(String::new());
        let (templates, plate_classes) = compile(&classes).unwrap_or_default();
        let settings = ReaderSettings::default();
        let decoder = Decoder { classes: &classes, templates: &templates, plate_classes: &plate_classes, settings: &settings };
        let decode = |first: &[(&str, f32)], rest: &str| {
            let (data, frames) = probs(&classes, first, rest);
            decoder.decode(&Probs::new(&data, frames, classes.len()).unwrap(), None)
        };
        // A German plate, `S TA 5131`: nothing but a few stray letters where a province would stand.
        let read = decode(&[("皖", 0.05), ("E", 0.06), ("B", 0.06)], "ST5131");
        assert!(matches!(&read, Err(Rejection::NoProvince { text, .. }) if text == "皖ST5131"), "{read:?}");
        // A dirty plate: the model sees a character there (川 taken for a W), so the province is read, and
        // the read reports it uncertain.
        let read = decode(&[("W", 0.82), ("川", 0.11)], "APL835").unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!((read.text.as_str(), super::super::uncertain_positions(&read.char_confidences)), ("川APL835", vec![0]));
    }
}
