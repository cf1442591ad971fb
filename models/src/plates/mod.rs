//! Chinese licence plates: find them (`detector`), straighten them (`rectify`), tell their colour
//! (`colour`), read them (`reader` with `ctc` and `grammar`), and reject what cannot be a plate.
//!
//! [`PlateRecognizer`] runs the whole chain on vehicle regions of a full-resolution frame (or on the whole
//! frame for a camera aimed at a lane) and reads every plate of the frame in one batched reader run.

pub mod colour;
pub mod ctc;
pub mod detector;
pub mod grammar;
pub mod reader;
pub mod rectify;

use std::path::PathBuf;

use ort::environment::Environment;
use serde::Serialize;

pub use colour::ColourClassifier;
pub use detector::{PlateDetection, PlateDetector, PlateDetectorSettings, PlateRows};
pub use grammar::{is_valid_plate, normalise as normalise_plate, PlateColour};
pub use reader::{PlateReader, PlateText, ReaderSettings, Rejection};
use rectify::Point;

use crate::geometry::BBox;
use crate::image::{BgrImage, BgrView};
use crate::runtime::SessionOptions;
use crate::ModelError;

/// Model files of the plate chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlateModelPaths {
    /// Detector used on vehicle regions (320 is enough for a vehicle crop).
    pub region_detector: PathBuf,
    /// Detector used on whole frames (640 finds small, far plates); `None` to use the region detector.
    pub frame_detector: Option<PathBuf>,
    pub reader: PathBuf,
    /// Colour classifier; without it dark-text plates are called yellow.
    pub colour: Option<PathBuf>,
}

/// How the chain behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct RecognizerSettings {
    pub detector: PlateDetectorSettings,
    pub reader: ReaderSettings,
    /// Largest number of vehicle regions searched per frame (the biggest first).
    pub max_regions: usize,
    /// Vehicle regions narrower than this (pixels) are too small to carry a readable plate.
    pub min_region_width: f32,
}

impl Default for RecognizerSettings {
    fn default() -> Self {
        Self { detector: PlateDetectorSettings::default(), reader: ReaderSettings::default(), max_regions: 4, min_region_width: 64.0 }
    }
}

/// A plate read in a frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlateRead {
    pub text: String,
    pub confidence: f32,
    pub char_confidences: Vec<f32>,
    pub min_char_confidence: f32,
    pub layout: &'static str,
    pub colour: PlateColour,
    pub rows: PlateRows,
    /// Corners in frame pixels: top-left, top-right, bottom-right, bottom-left.
    pub corners: [Point; 4],
    pub bbox: BBox,
    pub detector_score: f32,
    /// Index of the vehicle region the plate was found in, if any.
    pub region: Option<usize>,
}

/// A character read with less confidence than this is uncertain: a read is still reported, with the
/// positions of such characters, rather than passed off as sure (the province glyph of a dirty or glared
/// plate, the small one of an armed-police plate, a foreign plate's invented province).
pub const UNCERTAIN_BELOW: f32 = 0.5;

/// Positions (0-based, in characters) whose confidence is below [`UNCERTAIN_BELOW`].
pub fn uncertain_positions(char_confidences: &[f32]) -> Vec<usize> {
    char_confidences.iter().enumerate().filter(|(_, c)| **c < UNCERTAIN_BELOW).map(|(i, _)| i).collect()
}

impl PlateRead {
    pub fn uncertain_positions(&self) -> Vec<usize> {
        uncertain_positions(&self.char_confidences)
    }
}

/// A detected plate that did not read as a plate, with why (for diagnostics and tests).
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedPlate {
    pub detection: PlateDetection,
    pub rejection: Rejection,
}

/// Everything found in one frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recognition {
    pub plates: Vec<PlateRead>,
    pub rejected: Vec<RejectedPlate>,
}

/// A rectified plate ready for the reader.
pub struct Rectified {
    pub image: BgrImage,
    pub colour: PlateColour,
}

/// Whether and how [`PlateRecognizer::recognize`] searches the whole frame besides the vehicle regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameSearch {
    /// Only inside the vehicle regions.
    Off,
    /// With the region detector (320) over the whole frame: a quarter of the cost of `Fine`, enough for the
    /// large plate of a vehicle close to the camera.
    Coarse,
    /// With the frame detector (640), which also finds small, far plates.
    Fine,
}

/// Rectified single-row plates are warped to this size (aspect of a plate plus a small margin).
pub const SINGLE_ROW_SIZE: (u32, u32) = (168, 48);
/// Double-row plates are warped to this size before their rows are laid side by side.
pub const DOUBLE_ROW_SIZE: (u32, u32) = (192, 96);
/// Margin added around the detector's corners: a fraction of the width on each side, and of the height.
const MARGIN: (f32, f32) = (0.04, 0.10);
/// The margin of the second look at a plate that did not read: corners a little off (a tilted motorcycle
/// plate, a far one) cut a character off at the edge.
const WIDE_MARGIN: (f32, f32) = (0.12, 0.16);

/// Warps a plate upright at `size`, sampling at up to 4x and averaging down so large plates do not alias.
fn warp(frame: &BgrView<'_>, corners: &[Point; 4], size: (u32, u32), margin: (f32, f32)) -> Option<BgrImage> {
    let quad = rectify::expand_quad(corners, margin.0, margin.1);
    let height = ((quad[3].1 - quad[0].1).abs() + (quad[2].1 - quad[1].1).abs()) / 2.0;
    let k = ((height / size.1 as f32).round() as u32).clamp(1, 4);
    let big = rectify::warp_quad(frame, &quad, size.0 * k, size.1 * k)?;
    Some(if k == 1 { big } else { box_downscale(&big, k) })
}

/// Averages `k`x`k` blocks.
fn box_downscale(img: &BgrImage, k: u32) -> BgrImage {
    let (w, h) = (img.width() / k, img.height() / k);
    let src = img.view();
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0u32; 3];
            for dy in 0..k {
                let row = src.row(y * k + dy);
                for dx in 0..k {
                    let i = ((x * k + dx) * 3) as usize;
                    for c in 0..3 {
                        acc[c] += row[i + c] as u32;
                    }
                }
            }
            let n = k * k;
            data.extend(acc.iter().map(|a| ((a + n / 2) / n) as u8));
        }
    }
    BgrImage::new(w, h, data).unwrap_or_else(|_| img.clone())
}

/// The whole plate chain.
pub struct PlateRecognizer {
    region_detector: PlateDetector,
    frame_detector: Option<PlateDetector>,
    reader: PlateReader,
    colour: Option<ColourClassifier>,
    settings: RecognizerSettings,
}

impl PlateRecognizer {
    pub fn load(env: &Environment, paths: &PlateModelPaths, options: &SessionOptions, settings: RecognizerSettings) -> Result<Self, ModelError> {
        let region_detector = PlateDetector::load(env, &paths.region_detector, options, settings.detector.clone())?;
        let frame_detector = match &paths.frame_detector {
            Some(p) if *p != paths.region_detector => Some(PlateDetector::load(env, p, options, settings.detector.clone())?),
            _ => None,
        };
        let reader = PlateReader::load(env, &paths.reader, options, settings.reader.clone())?;
        let colour = paths.colour.as_ref().map(|p| ColourClassifier::load(env, p, options)).transpose()?;
        Ok(Self { region_detector, frame_detector, reader, colour, settings })
    }

    pub fn reader_mut(&mut self) -> &mut PlateReader {
        &mut self.reader
    }

    /// Rectifies a detected plate and tells its colour. `None` for corners that do not form a plate.
    pub fn rectify(&mut self, frame: &BgrView<'_>, detection: &PlateDetection) -> Result<Option<Rectified>, ModelError> {
        self.rectify_with(frame, detection, MARGIN)
    }

    fn rectify_with(&mut self, frame: &BgrView<'_>, detection: &PlateDetection, margin: (f32, f32)) -> Result<Option<Rectified>, ModelError> {
        let size = match detection.rows {
            PlateRows::Single => SINGLE_ROW_SIZE,
            PlateRows::Double => DOUBLE_ROW_SIZE,
        };
        let Some(upright) = warp(frame, &detection.corners, size, margin) else { return Ok(None) };
        let colour = self.colour_of(&upright.view())?;
        let image = match detection.rows {
            PlateRows::Single => upright,
            PlateRows::Double => match rectify::double_row_to_line(&rectify::trim_to_background(&upright.view()).view(), SINGLE_ROW_SIZE.1) {
                Some(line) => line,
                None => return Ok(None),
            },
        };
        Ok(Some(Rectified { image, colour }))
    }

    /// The colour of an upright plate image.
    pub fn colour_of(&mut self, plate: &BgrView<'_>) -> Result<PlateColour, ModelError> {
        let facts = colour::pixel_facts(plate);
        // The classifier only matters for dark-text plates (green vs yellow).
        let probs = match (&mut self.colour, facts.light_text()) {
            (Some(c), false) => Some(c.classify(plate)?),
            _ => None,
        };
        Ok(colour::decide(&facts, probs))
    }

    /// Finds and reads the plates of a frame: inside `regions` (vehicle boxes, frame pixels) and, as
    /// `search` says, anywhere in the frame. All plates are read in one batched reader run.
    pub fn recognize(&mut self, frame: &BgrView<'_>, regions: &[BBox], search: FrameSearch) -> Result<Recognition, ModelError> {
        let mut found: Vec<(PlateDetection, Option<usize>)> = Vec::new();
        let mut order: Vec<usize> = (0..regions.len()).filter(|&i| regions[i].width() >= self.settings.min_region_width).collect();
        order.sort_by(|&a, &b| regions[b].area().total_cmp(&regions[a].area()));
        for &i in order.iter().take(self.settings.max_regions) {
            let region = regions[i].expand(0.05).clamp(frame.width() as f32, frame.height() as f32);
            let Some(crop) = frame.crop(region) else { continue };
            let (ox, oy) = (region.x1.floor(), region.y1.floor());
            for mut d in self.region_detector.detect(&crop)? {
                d.bbox = BBox::new(d.bbox.x1 + ox, d.bbox.y1 + oy, d.bbox.x2 + ox, d.bbox.y2 + oy);
                for c in d.corners.iter_mut() {
                    *c = (c.0 + ox, c.1 + oy);
                }
                found.push((d, Some(i)));
            }
        }
        if search != FrameSearch::Off {
            let detector = match search {
                FrameSearch::Fine => self.frame_detector.as_mut().unwrap_or(&mut self.region_detector),
                _ => &mut self.region_detector,
            };
            for d in detector.detect(frame)? {
                let region = regions.iter().position(|r| {
                    let (cx, cy) = d.bbox.center();
                    cx >= r.x1 && cx <= r.x2 && cy >= r.y1 && cy <= r.y2
                });
                found.push((d, region));
            }
        }
        // One plate seen from two overlapping regions (or a region and the whole frame) is read once; its
        // other views (other corners, another detector, and last the best detection with a wider margin)
        // get a second look, round by round, while it has not read. Each round reads in one batch.
        let groups = group_views(found, self.settings.detector.nms_iou_threshold);
        let mut outcome: Vec<Outcome> = groups.iter().map(|_| Outcome::Open(None)).collect();
        for round in 0..=MAX_VIEWS {
            let looks: Vec<(usize, &View)> =
                groups.iter().enumerate().filter(|(g, _)| matches!(outcome[*g], Outcome::Open(_))).filter_map(|(g, views)| Some((g, views.get(round)?))).collect();
            if looks.is_empty() {
                break;
            }
            let mut rectified = Vec::new();
            for (g, view) in looks {
                match self.rectify_with(frame, &view.detection, view.margin)? {
                    Some(r) => rectified.push((g, view, r)),
                    None => outcome[g].reject(&view.detection, Rejection::NoLayout),
                }
            }
            let batch: Vec<(BgrView<'_>, Option<PlateColour>)> = rectified.iter().map(|(_, _, r)| (r.image.view(), Some(r.colour))).collect();
            let reads = self.reader.read_batch(&batch)?;
            for ((g, view, r), read) in rectified.into_iter().zip(reads) {
                let d = &view.detection;
                match read.map(|t| (grammar::issued_colour(&t.text, r.colour), t)) {
                    // A civil layout that looks white and lies on no vehicle: a sign, however it is looked at.
                    Ok((PlateColour::Unknown, t)) if view.region.is_none() && r.colour == PlateColour::White => {
                        outcome[g] = Outcome::Done(Err(RejectedPlate { detection: d.clone(), rejection: Rejection::SignLike { text: t.text } }));
                    }
                    Ok((colour, t)) => {
                        outcome[g] = Outcome::Done(Ok(PlateRead {
                            colour,
                            text: t.text,
                            confidence: t.confidence,
                            char_confidences: t.char_confidences,
                            min_char_confidence: t.min_char_confidence,
                            layout: t.layout,
                            rows: d.rows,
                            corners: d.corners,
                            bbox: d.bbox,
                            detector_score: d.score,
                            region: view.region,
                        }))
                    }
                    Err(rejection) => outcome[g].reject(d, rejection),
                }
            }
        }
        let mut recognition = Recognition::default();
        for o in outcome {
            match o {
                Outcome::Done(Ok(plate)) => recognition.plates.push(plate),
                Outcome::Done(Err(rejected)) | Outcome::Open(Some(rejected)) => recognition.rejected.push(rejected),
                Outcome::Open(None) => {}
            }
        }
        recognition.plates = drop_contained(recognition.plates);
        Ok(recognition)
    }

    /// Reads images that are already rectified single-row plates (colour from the pixels and classifier).
    pub fn read_crops(&mut self, crops: &[BgrView<'_>]) -> Result<Vec<CropRead>, ModelError> {
        let colours = crops.iter().map(|c| self.colour_of(c)).collect::<Result<Vec<_>, _>>()?;
        let batch: Vec<_> = crops.iter().zip(&colours).map(|(c, col)| (*c, Some(*col))).collect();
        let reads = self.reader.read_batch(&batch)?;
        Ok(colours.into_iter().zip(reads).map(|(c, r)| (r.as_ref().map_or(c, |t| grammar::issued_colour(&t.text, c)), r)).collect())
    }
}

/// A plate box that lies mostly inside another one (share of its own area) is part of the same plate.
const CONTAINED: f32 = 0.6;

/// Keeps one read per plate: a detection of part of a plate (its upper half, say) overlaps the whole
/// plate's box too little for the detector's IoU suppression but lies inside it; the more confident read
/// of the two stays.
fn drop_contained(plates: Vec<PlateRead>) -> Vec<PlateRead> {
    let mut order: Vec<usize> = (0..plates.len()).collect();
    order.sort_by(|&a, &b| plates[b].confidence.total_cmp(&plates[a].confidence));
    let mut keep = vec![false; plates.len()];
    for &i in &order {
        let p = &plates[i].bbox;
        let inside = |j: usize| {
            let k = &plates[j].bbox;
            let smaller = p.area().min(k.area());
            smaller > 0.0 && p.intersection(k) / smaller >= CONTAINED
        };
        keep[i] = !(0..plates.len()).any(|j| keep[j] && inside(j));
    }
    plates.into_iter().zip(keep).filter_map(|(p, k)| k.then_some(p)).collect()
}

/// Most views of one plate read: the best detection and, when it does not read, this many others.
const MAX_VIEWS: usize = 3;

/// Where the views of one plate stand: still open (with why its first view did not read), or done.
enum Outcome {
    Open(Option<RejectedPlate>),
    Done(Result<PlateRead, RejectedPlate>),
}

impl Outcome {
    /// A view did not read: the first such rejection is the one reported if none reads.
    fn reject(&mut self, detection: &PlateDetection, rejection: Rejection) {
        if let Outcome::Open(first) = self {
            first.get_or_insert_with(|| RejectedPlate { detection: detection.clone(), rejection });
        }
    }
}

/// One way of looking at a detected plate: which detection, and how much of its surroundings.
#[derive(Clone)]
struct View {
    detection: PlateDetection,
    region: Option<usize>,
    margin: (f32, f32),
}

/// Groups detections of the same plate (boxes overlapping more than `iou`), each group best first, and
/// ends each group with its best detection at the wide margin.
fn group_views(mut found: Vec<(PlateDetection, Option<usize>)>, iou: f32) -> Vec<Vec<View>> {
    found.sort_by(|a, b| b.0.score.total_cmp(&a.0.score));
    let mut groups: Vec<Vec<View>> = Vec::new();
    for (detection, region) in found {
        let view = View { detection, region, margin: MARGIN };
        match groups.iter_mut().find(|g| g[0].detection.bbox.iou(&view.detection.bbox) > iou) {
            Some(g) if g.len() < MAX_VIEWS => g.push(view),
            Some(_) => {}
            None => groups.push(vec![view]),
        }
    }
    for g in &mut groups {
        let wide = View { margin: WIDE_MARGIN, ..g[0].clone() };
        g.push(wide);
    }
    groups
}

/// The colour and the read (or why not) of one crop.
pub type CropRead = (PlateColour, Result<PlateText, Rejection>);
