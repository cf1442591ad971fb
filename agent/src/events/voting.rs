//! Plate voting over a track's readings.
//!
//! Design: a vehicle is read in many frames, some blurred or at an angle. Readings of the layout length that
//! carries the most confidence vote character by character, each vote weighted by that character's
//! confidence. A position's confidence is the weight of its winning character divided by the number of
//! readings of that length, so a character every reading agrees on with certainty scores 1 and a split
//! vote scores low. If the per-character winners do not form a valid plate (readings of different layouts
//! mixed), the single best reading is used instead. `reads` counts readings identical to the result.

use std::collections::HashMap;

use models::plates::{is_valid_plate, uncertain_positions, PlateColour, PlateRead, PlateRows};
use serde::{Deserialize, Serialize};

/// Most readings kept per track (the earliest are dropped after that).
const MAX_READS: usize = 64;

#[derive(Debug, Clone, PartialEq)]
struct Reading {
    chars: Vec<char>,
    confidences: Vec<f32>,
    confidence: f32,
    colour: PlateColour,
    rows: PlateRows,
}

/// The voted plate of a track. Read back from a log, a line written before `min_char_confidence`, `rows`
/// and `votes` were added gets 0, one row and 0 votes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VotedPlate {
    pub text: String,
    pub confidence: f32,
    #[serde(default)]
    pub min_char_confidence: f32,
    pub color: PlateColour,
    #[serde(default = "one_row")]
    pub rows: u8,
    /// Readings identical to `text`.
    pub reads: u32,
    /// All readings that took part.
    #[serde(default)]
    pub votes: u32,
    /// Characters (0-based positions) the votes leave uncertain (below `models::plates::UNCERTAIN_BELOW`);
    /// absent when every character is sure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncertain_positions: Vec<usize>,
}

fn one_row() -> u8 {
    1
}

/// Readings collected for one track.
#[derive(Debug, Clone, Default)]
pub struct PlateVotes {
    readings: Vec<Reading>,
}

impl PlateVotes {
    pub fn add(&mut self, read: &PlateRead) {
        if self.readings.len() == MAX_READS {
            self.readings.remove(0);
        }
        self.readings.push(Reading {
            chars: read.text.chars().collect(),
            confidences: read.char_confidences.clone(),
            confidence: read.confidence,
            colour: read.colour,
            rows: read.rows,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
    }

    /// Takes another track's readings (two tracks found to be one vehicle), the newest kept.
    pub fn absorb(&mut self, other: PlateVotes) {
        self.readings.extend(other.readings);
        let excess = self.readings.len().saturating_sub(MAX_READS);
        self.readings.drain(..excess);
    }

    pub fn len(&self) -> usize {
        self.readings.len()
    }

    /// The current result, `None` before the first reading.
    pub fn result(&self) -> Option<VotedPlate> {
        // The layout length with the most total confidence.
        let mut by_len: HashMap<usize, f32> = HashMap::new();
        for r in &self.readings {
            *by_len.entry(r.chars.len()).or_default() += r.confidence;
        }
        let len = by_len.into_iter().max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))?.0;
        let group: Vec<&Reading> = self.readings.iter().filter(|r| r.chars.len() == len).collect();
        let n = group.len() as f32;

        let mut text = String::new();
        let mut confidences = Vec::with_capacity(len);
        for pos in 0..len {
            let mut weights: Vec<(char, f32)> = Vec::new();
            for r in &group {
                let c = r.chars[pos];
                let w = r.confidences.get(pos).copied().unwrap_or(r.confidence);
                match weights.iter_mut().find(|(k, _)| *k == c) {
                    Some((_, acc)) => *acc += w,
                    None => weights.push((c, w)),
                }
            }
            // Highest weight; ties go to the character seen first.
            let (c, w) = weights.iter().fold((' ', f32::MIN), |best, &(c, w)| if w > best.1 { (c, w) } else { best });
            text.push(c);
            confidences.push((w / n).clamp(0.0, 1.0));
        }

        let (text, confidences) = if is_valid_plate(&text) {
            (text, confidences)
        } else {
            let best = group.iter().max_by(|a, b| a.confidence.total_cmp(&b.confidence))?;
            (best.chars.iter().collect(), best.confidences.clone())
        };
        let agreeing: Vec<&&Reading> = group.iter().filter(|r| r.chars.iter().copied().eq(text.chars())).collect();
        // A colour some frames saw beats `unknown` from frames washed out by light.
        let known = agreeing.iter().filter(|r| r.colour != PlateColour::Unknown).map(|r| (r.colour, r.confidence));
        let colour = weighted_mode(known).unwrap_or(PlateColour::Unknown);
        let rows = weighted_mode(agreeing.iter().map(|r| (r.rows, r.confidence))).unwrap_or(PlateRows::Single);
        let geo = (confidences.iter().map(|c| c.max(1e-6).ln()).sum::<f32>() / confidences.len().max(1) as f32).exp();
        Some(VotedPlate {
            text,
            confidence: geo,
            min_char_confidence: confidences.iter().copied().fold(1.0, f32::min),
            color: colour,
            rows: rows.count(),
            reads: agreeing.len() as u32,
            votes: self.readings.len() as u32,
            uncertain_positions: uncertain_positions(&confidences),
        })
    }
}

fn weighted_mode<T: PartialEq + Copy>(items: impl Iterator<Item = (T, f32)>) -> Option<T> {
    let mut acc: Vec<(T, f32)> = Vec::new();
    for (v, w) in items {
        match acc.iter_mut().find(|(k, _)| *k == v) {
            Some((_, a)) => *a += w,
            None => acc.push((v, w)),
        }
    }
    acc.into_iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::BBox;

    fn read(text: &str, conf: &[f32]) -> PlateRead {
        let c: Vec<f32> = if conf.len() == 1 { vec![conf[0]; text.chars().count()] } else { conf.to_vec() };
        let geo = (c.iter().map(|v| v.ln()).sum::<f32>() / c.len() as f32).exp();
        PlateRead {
            text: text.into(),
            confidence: geo,
            min_char_confidence: c.iter().copied().fold(1.0, f32::min),
            char_confidences: c,
            layout: "standard",
            colour: PlateColour::Blue,
            rows: PlateRows::Single,
            corners: [(0.0, 0.0); 4],
            bbox: BBox::default(),
            detector_score: 0.9,
            region: None,
        }
    }

    #[test]
    fn agreeing_readings_win_with_their_count() {
        let mut v = PlateVotes::default();
        for _ in 0..4 {
            v.add(&read("皖A0C911", &[0.95]));
        }
        v.add(&read("皖A0C917", &[0.9]));
        let r = v.result().unwrap();
        assert_eq!(r.text, "皖A0C911");
        assert_eq!((r.reads, r.votes), (4, 5));
        assert!(r.min_char_confidence < 0.8 && r.min_char_confidence > 0.7, "split last character: {r:?}");
    }

    #[test]
    fn characters_are_voted_one_by_one() {
        // No single reading is right, but every position is right in most of them.
        let mut v = PlateVotes::default();
        for wrong_once in ["苏ED51718", "苏ED61712", "苏EF51712", "苏ED51212"] {
            v.add(&read(wrong_once, &[0.9]));
        }
        let mut w = PlateVotes::default();
        w.add(&read("苏ED51712", &[0.9]));
        w.add(&read("苏ED61712", &[0.6]));
        w.add(&read("苏ED51718", &[0.6]));
        assert_eq!(w.result().unwrap().text, "苏ED51712");
        assert_eq!(v.result().unwrap().text, "苏ED51712");
    }

    #[test]
    fn a_confident_reading_outvotes_unsure_ones_per_character() {
        let mut v = PlateVotes::default();
        v.add(&read("皖A0C911", &[0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.95]));
        v.add(&read("皖A0C914", &[0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.3]));
        v.add(&read("皖A0C914", &[0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.3]));
        assert_eq!(v.result().unwrap().text, "皖A0C911");
    }

    #[test]
    fn the_layout_with_more_confidence_wins() {
        let mut v = PlateVotes::default();
        v.add(&read("苏ED51712", &[0.95]));
        v.add(&read("苏ED51712", &[0.95]));
        v.add(&read("苏E51712", &[0.5]));
        assert_eq!(v.result().unwrap().text, "苏ED51712");
    }

    #[test]
    fn no_readings_no_plate() {
        assert!(PlateVotes::default().result().is_none());
    }
}
