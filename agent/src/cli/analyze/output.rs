//! What `analyze` prints: a line per object, plate or event, as text or JSON.

use std::io::Write;

use serde::Serialize;

use crate::inference::Analysed;
use crate::payload::round3;

/// Where an output line comes from: its kind, the file and, for videos, the frame.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LineSource<'a> {
    /// `object` or `plate`.
    pub kind: &'static str,
    pub file: &'a str,
    /// Frame number within the analysed frames (videos only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<u64>,
    /// Stream time of the frame in milliseconds (videos only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pts_ms: Option<u64>,
    pub width: u32,
    pub height: u32,
}

/// One object found in an image or a video frame.
#[derive(Debug, Serialize)]
pub struct ObjectLine<'a> {
    #[serde(flatten)]
    pub source: LineSource<'a>,
    pub label: &'static str,
    pub class_id: usize,
    pub score: f32,
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

/// One plate read in an image or a video frame.
#[derive(Debug, Serialize)]
pub struct PlateLine<'a> {
    #[serde(flatten)]
    pub source: LineSource<'a>,
    /// The plate number.
    pub plate: &'a str,
    pub confidence: f32,
    pub min_char_confidence: f32,
    pub char_confidences: Vec<f32>,
    /// Characters (0-based) below `models::plates::UNCERTAIN_BELOW`; absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uncertain_positions: Vec<usize>,
    pub color: &'static str,
    pub rows: u8,
    pub layout: &'static str,
    /// Corners in image pixels: top-left, top-right, bottom-right, bottom-left.
    pub corners: [[f32; 2]; 4],
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Box of the vehicle the plate was found on, if any.
    pub vehicle_box: Option<[f32; 4]>,
}

/// `--plate-crops` output.
#[derive(Debug, Serialize)]
pub struct CropLine<'a> {
    pub file: &'a str,
    /// The plate number, or `null` when the image did not read as a plate.
    pub plate: Option<&'a str>,
    pub confidence: Option<f32>,
}

pub fn print_event(out: &mut impl Write, file: &str, e: &crate::payload::Event, json: bool) {
    let _ = if json {
        serde_json::to_string(e).map(|s| writeln!(out, "{s}"))
    } else {
        let direction = e.direction.map_or("-", |d| d.as_str());
        let plate = e.plate.as_ref().map_or_else(|| "-".to_string(), |p| format!("{} ({} of {} reads)", p.text, p.reads, p.votes));
        Ok(writeln!(out, "{file}: {:?} {} #{} {} direction {direction} plate {plate}", e.phase, e.label, e.track_id, &e.id[..8]))
    };
}

pub fn print_analysed(out: &mut impl Write, file: &str, frame: Option<u64>, analysed: &Analysed, json: bool) {
    let pts_ms = frame.and(analysed.frame.pts.map(|p| p.as_millis() as u64));
    let source = |kind| LineSource { kind, file, frame, pts_ms, width: analysed.frame.width(), height: analysed.frame.height() };
    let at = frame.map(|f| format!(" frame {f}")).unwrap_or_default();
    for d in analysed.reported() {
        let line = ObjectLine { source: source("object"), label: d.label(), class_id: d.class_id(), score: round3(d.score), bbox: d.bbox.to_array() };
        let _ = if json {
            serde_json::to_string(&line).map(|s| writeln!(out, "{s}"))
        } else {
            let b = line.bbox;
            Ok(writeln!(out, "{file}{at}: {} {:.2} [{:.1}, {:.1}, {:.1}, {:.1}]", d.label(), d.score, b[0], b[1], b[2], b[3]))
        };
    }
    for p in &analysed.plates {
        let round = |v: f32| (v * 10.0).round() / 10.0;
        let line = PlateLine {
            source: source("plate"),
            plate: &p.text,
            confidence: round3(p.confidence),
            min_char_confidence: round3(p.min_char_confidence),
            char_confidences: p.char_confidences.iter().map(|c| round3(*c)).collect(),
            uncertain_positions: p.uncertain_positions(),
            color: p.colour.as_str(),
            rows: p.rows.count(),
            layout: p.layout,
            corners: p.corners.map(|(x, y)| [round(x), round(y)]),
            bbox: p.bbox.to_array(),
            vehicle_box: p.region.and_then(|i| analysed.detections.get(i)).map(|d| d.bbox.to_array()),
        };
        let _ = if json {
            serde_json::to_string(&line).map(|s| writeln!(out, "{s}"))
        } else {
            let doubts = match line.uncertain_positions.as_slice() {
                [] => String::new(),
                u => format!(", uncertain: {}", u.iter().map(|i| format!("{} ({})", i + 1, p.text.chars().nth(*i).unwrap_or('?'))).collect::<Vec<_>>().join(", ")),
            };
            Ok(writeln!(out, "{file}{at}: plate {} ({}, {} row(s)) {:.2}, weakest character {:.2}{doubts}", p.text, line.color, line.rows, p.confidence, p.min_char_confidence))
        };
    }
}
