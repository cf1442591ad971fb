//! The plate-search policy: on each frame the detector runs on, which vehicles the plate chain searches
//! and whether it searches the whole frame too. [`PlateSearch`] decides it for a camera ([`PlateFocus`]);
//! the detector threads ([`crate::inference::PlateChain`]) carry it out.
//!
//! Design: the plate chain is the most expensive stage of a busy camera (a detector run on every vehicle
//! crop, then the reader), and most of its runs find nothing new: a vehicle seen from the side, a plate too
//! far or too blurred to read, a plate already read the same way five times. A vehicle is searched on every
//! analysed frame while that pays: when it is new, and while its reads are confident. Each search that finds
//! no confident read doubles the wait before the next one, up to [`MAX_GAP`] frames. The wait starts over
//! when the vehicle's box has grown by half since the schedule last started (it came closer, so its plate
//! has more pixels) or a search reads it confidently. Settling (at least `settle_reads` agreeing confident
//! reads) ends the searches for good. In the `auto` plate mode the whole frame is also searched, coarsely,
//! every [`FRAME_SEARCH_EVERY_S`] while something moves or is followed, and on a moving frame where the
//! detector finds nothing: a vehicle too close for the detector still shows a large plate.

use edge_config::PlateMode;
use models::plates::FrameSearch;
use models::{BBox, Detection};

use super::identity::DUPLICATE_IOU;
use super::voting::PlateVotes;
use crate::motion::Decision;
use crate::tracking::TrackerSettings;

/// Searches on consecutive frames before waiting starts (a new vehicle, or one that came closer).
pub const FREE_SEARCHES: u32 = 3;
/// Longest wait between two searches of a vehicle, in analysed frames (1.6 s at 5 fps).
pub const MAX_GAP: u32 = 8;
/// A read at least this confident is worth searching the next frame for, and counts towards settling.
pub const CONFIDENT_READ: f32 = 0.9;
/// The schedule starts over when the box's area grows by this factor.
const CLOSER: f32 = 1.5;
/// In `auto` plate mode, the whole frame is searched for plates at least this often (seconds, counted on
/// frames the detector runs on), even when vehicles are detected.
pub const FRAME_SEARCH_EVERY_S: f64 = 2.0;

/// One camera's plate-search policy.
#[derive(Debug, Clone)]
pub struct PlateSearch {
    mode: PlateMode,
    /// A vehicle's plate is settled after this many agreeing confident reads (0: never).
    settle_reads: u32,
    /// Vehicles narrower than this (pixels) carry no readable plate.
    min_vehicle_width: f32,
    /// Stream time of the last whole-frame search (`auto`).
    last_frame_search_s: Option<f64>,
}

impl PlateSearch {
    pub fn new(mode: PlateMode, settle_reads: u32, min_vehicle_width: f32) -> Self {
        Self { mode, settle_reads, min_vehicle_width, last_frame_search_s: None }
    }

    /// Where the camera looks for plates.
    pub fn mode(&self) -> PlateMode {
        self.mode
    }

    /// What the plate chain searches on the frame at `stream_s` that the detector runs on for `decision`,
    /// the builder knowing what it knows up to the frame before.
    pub fn focus(&mut self, builder: &super::EventBuilder, decision: Decision, stream_s: f64) -> PlateFocus {
        PlateFocus { targets: builder.plate_targets(self.settle_reads), min_vehicle_width: self.min_vehicle_width, whole_frame: self.whole_frame(decision, stream_s) }
    }

    /// Whether the frame gets a whole-frame search (only in the `auto` plate mode): every
    /// [`FRAME_SEARCH_EVERY_S`] while something moves or is followed, and on a moving frame in which the
    /// detector finds nothing at all (a person or a vehicle it names explains the motion). A keep-alive look
    /// at a still scene gets none.
    fn whole_frame(&mut self, decision: Decision, stream_s: f64) -> WholeFrame {
        if self.mode != PlateMode::Auto || matches!(decision, Decision::KeepAlive | Decision::Skip) {
            return WholeFrame::No;
        }
        if self.last_frame_search_s.is_none_or(|t| stream_s < t || stream_s - t >= FRAME_SEARCH_EVERY_S) {
            self.last_frame_search_s = Some(stream_s);
            return WholeFrame::Search;
        }
        match decision {
            Decision::Motion | Decision::Always => WholeFrame::IfNothingDetected,
            _ => WholeFrame::No,
        }
    }
}

/// Which vehicles of a frame the plate chain searches: those the event builder's [`PlateTargets`] want
/// (not a followed vehicle whose plate is settled or whose search waits, nor a detection no track takes),
/// and not those too narrow to carry a readable plate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlateFocus {
    /// `None`: every vehicle wide enough.
    pub targets: Option<PlateTargets>,
    pub min_vehicle_width: f32,
    /// In `auto` plate mode, whether the whole frame is searched too (with the coarse detector).
    pub whole_frame: WholeFrame,
}

/// Whether the plate chain searches the whole frame besides the vehicles (`auto` plate mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WholeFrame {
    #[default]
    No,
    Search,
    /// Only if the detector found no object at all in the frame.
    IfNothingDetected,
}

impl PlateFocus {
    /// Splits vehicle detections (indices into `detections`) into those searched and those left out.
    pub fn split(&self, detections: &[Detection], vehicles: Vec<usize>) -> (Vec<usize>, Vec<usize>) {
        let (wide, mut left): (Vec<usize>, Vec<usize>) = vehicles.into_iter().partition(|&i| detections[i].bbox.width() >= self.min_vehicle_width);
        let Some(targets) = &self.targets else { return (wide, left) };
        let chosen = targets.select(&wide.iter().map(|&i| (detections[i].bbox, detections[i].score)).collect::<Vec<_>>());
        let mut searched = Vec::with_capacity(wide.len());
        for (i, wanted) in wide.into_iter().zip(chosen) {
            if wanted { &mut searched } else { &mut left }.push(i);
        }
        (searched, left)
    }

    /// How the whole frame is searched in plate mode `plates`; `detected`, whether the detector reported
    /// any object in it.
    pub fn frame_search(&self, plates: PlateMode, detected: bool) -> FrameSearch {
        match plates {
            PlateMode::Frame => FrameSearch::Fine,
            PlateMode::Auto if self.whole_frame == WholeFrame::Search => FrameSearch::Coarse,
            PlateMode::Auto if self.whole_frame == WholeFrame::IfNothingDetected && !detected => FrameSearch::Coarse,
            PlateMode::Auto | PlateMode::Vehicles | PlateMode::Off => FrameSearch::Off,
        }
    }
}

/// A vehicle the builder follows, as the plate search sees it.
pub struct Followed<'a> {
    pub last_box: BBox,
    pub confirmed: bool,
    pub schedule: &'a PlateSchedule,
    pub votes: &'a PlateVotes,
}

/// Which vehicles of the next frame the plate chain searches, as the event builder sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlateTargets {
    /// Last boxes of followed vehicles to leave out (plate settled, or waiting).
    pub skip: Vec<BBox>,
    /// Last boxes of followed vehicles due for a search, with the least detection score the tracker takes
    /// for each (a track not yet confirmed only takes a confident detection).
    pub due: Vec<(BBox, f32)>,
    /// A detection that overlaps no followed vehicle is searched only if it can start a track (a plate read
    /// on a detection no track takes is lost).
    pub new_track_score: f32,
}

impl PlateTargets {
    /// A followed vehicle's last box overlaps its next detection at least this much.
    const SAME_VEHICLE_IOU: f32 = 0.3;

    /// The targets of the next frame (`settle_reads` 0: every vehicle, `None`). They leave out the
    /// followed vehicles whose plate is settled — at least `settle_reads` reads agree with the voted text,
    /// which is at least [`CONFIDENT_READ`] and has no uncertain character (one weak character keeps the
    /// vehicle searched, however sure the rest) — and, to favour the vehicles that are new or read confidently,
    /// those whose [`PlateSchedule`] says to wait. A detection that no followed vehicle's box covers is
    /// searched only if it can start a track (`tracker`'s scores).
    pub fn collect<'a>(followed: impl Iterator<Item = Followed<'a>>, settle_reads: u32, tracker: &TrackerSettings) -> Option<Self> {
        if settle_reads == 0 {
            return None;
        }
        let mut targets = Self { skip: Vec::new(), due: Vec::new(), new_track_score: tracker.new_track_score };
        for f in followed {
            let settled = || {
                f.votes.len() >= settle_reads as usize
                    && f.votes.result().is_some_and(|p| p.reads >= settle_reads && p.confidence >= CONFIDENT_READ && p.uncertain_positions.is_empty())
            };
            if f.schedule.waiting() || settled() {
                targets.skip.push(f.last_box);
            } else {
                targets.due.push((f.last_box, if f.confirmed { tracker.low_score } else { tracker.high_score }));
            }
        }
        Some(targets)
    }

    /// Which of a frame's vehicle detections (box, score) the plate chain searches: for each followed
    /// vehicle due for a search, the detection its track can take that overlaps its last box most (a
    /// second box on the same vehicle, under another label or around a part of it, is not searched
    /// again); and the detections that overlap no followed vehicle and can start a track, one of any two
    /// that are one vehicle under two labels.
    pub fn select(&self, vehicles: &[(BBox, f32)]) -> Vec<bool> {
        let followed = |b: &BBox| self.skip.iter().chain(self.due.iter().map(|(f, _)| f)).any(|f| f.iou(b) >= Self::SAME_VEHICLE_IOU);
        let mut wanted = vec![false; vehicles.len()];
        let mut by_score: Vec<usize> = (0..vehicles.len()).collect();
        by_score.sort_by(|&a, &b| vehicles[b].1.total_cmp(&vehicles[a].1));
        for &i in &by_score {
            let (b, score) = &vehicles[i];
            let duplicate = || by_score.iter().any(|&j| wanted[j] && vehicles[j].0.iou(b) >= DUPLICATE_IOU);
            wanted[i] = *score >= self.new_track_score && !followed(b) && !duplicate();
        }
        for (due, least) in &self.due {
            let best = vehicles
                .iter()
                .enumerate()
                .filter(|(_, (_, score))| score >= least)
                .map(|(i, (b, _))| (i, due.iou(b)))
                .filter(|(_, iou)| *iou >= Self::SAME_VEHICLE_IOU)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((i, _)) = best {
                wanted[i] = true;
            }
        }
        wanted
    }
}

/// One vehicle's plate search schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct PlateSchedule {
    /// Searches since the schedule (re)started that found no confident read.
    fruitless: u32,
    /// Frames still to leave out before the next search.
    wait: u32,
    /// Box area when the schedule (re)started.
    area: f32,
}

impl PlateSchedule {
    pub fn new(bbox: &BBox) -> Self {
        Self { fruitless: 0, wait: 0, area: bbox.area() }
    }

    /// Whether the vehicle is left out of the next frame's plate search.
    pub fn waiting(&self) -> bool {
        self.wait > 0
    }

    /// Records one analysed frame in which the vehicle was seen at `bbox`; `best_read` is the confidence of
    /// its best plate read there (`None`: none).
    pub fn seen(&mut self, bbox: &BBox, best_read: Option<f32>) {
        let searched = self.wait == 0;
        if bbox.area() >= self.area * CLOSER || best_read.is_some_and(|c| c >= CONFIDENT_READ) {
            *self = Self::new(bbox);
            return;
        }
        if !searched {
            self.wait -= 1;
            return;
        }
        self.fruitless = self.fruitless.saturating_add(1);
        let waits = self.fruitless.saturating_sub(FREE_SEARCHES - 1);
        self.wait = if waits == 0 { 0 } else { (1u32 << waits.min(8)).min(MAX_GAP) - 1 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(schedule: &mut PlateSchedule, bbox: &BBox, frames: usize) -> String {
        (0..frames)
            .map(|_| {
                let c = if schedule.waiting() { '.' } else { 'S' };
                schedule.seen(bbox, None);
                c
            })
            .collect()
    }

    #[test]
    fn one_search_per_vehicle_and_none_for_boxes_no_track_takes() {
        let car = BBox::new(100.0, 100.0, 400.0, 300.0);
        let waiting = BBox::new(600.0, 100.0, 900.0, 300.0);
        let targets = PlateTargets { skip: vec![waiting], due: vec![(car, 0.1)], new_track_score: 0.5 };
        let frame = [
            (BBox::new(104.0, 102.0, 404.0, 302.0), 0.4),   // the followed car, scored low this time: searched
            (BBox::new(100.0, 100.0, 420.0, 320.0), 0.6),   // the same car under a second label: not again
            (BBox::new(602.0, 100.0, 902.0, 300.0), 0.9),   // the waiting vehicle
            (BBox::new(1000.0, 100.0, 1200.0, 250.0), 0.8), // a new vehicle
            (BBox::new(990.0, 95.0, 1200.0, 255.0), 0.7),   // the new vehicle under a second label
            (BBox::new(0.0, 500.0, 200.0, 700.0), 0.3),     // too unsure to start a track
        ];
        assert_eq!(targets.select(&frame), [true, false, false, true, false, false]);
        // A track not yet confirmed takes only a confident detection.
        let tentative = PlateTargets { due: vec![(car, 0.5)], ..targets.clone() };
        assert_eq!(tentative.select(&frame[..2]), [false, true]);
    }

    #[test]
    fn fruitless_searches_double_the_wait_up_to_the_cap() {
        let b = BBox::new(0.0, 0.0, 100.0, 80.0);
        let mut s = PlateSchedule::new(&b);
        assert_eq!(pattern(&mut s, &b, 40), "SSS.S...S.......S.......S.......S.......");
    }

    #[test]
    fn a_confident_read_or_coming_closer_starts_over() {
        let b = BBox::new(0.0, 0.0, 100.0, 80.0);
        let mut s = PlateSchedule::new(&b);
        pattern(&mut s, &b, 20);
        assert!(s.waiting());
        s.seen(&b, Some(0.95));
        assert_eq!(pattern(&mut s, &b, 4), "SSS.");

        let mut s = PlateSchedule::new(&b);
        pattern(&mut s, &b, 20);
        let closer = BBox::new(0.0, 0.0, 125.0, 100.0);
        s.seen(&closer, None);
        assert_eq!(pattern(&mut s, &closer, 4), "SSS.");
        // A weak read is no reason to look again at once.
        let mut s = PlateSchedule::new(&b);
        pattern(&mut s, &b, 20);
        s.seen(&b, Some(0.5));
        assert!(s.waiting());
    }
}
