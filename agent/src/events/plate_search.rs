//! When a followed vehicle is searched for its plate again.
//!
//! Design: the plate chain is the most expensive stage of a busy camera (a detector run on every vehicle
//! crop, then the reader), and most of its runs find nothing new: a vehicle seen from the side, a plate too
//! far or too blurred to read, a plate already read the same way five times. A vehicle is searched on every
//! analysed frame while that pays: when it is new, and while its reads are confident. Each search that finds
//! no confident read doubles the wait before the next one, up to [`MAX_GAP`] frames. The wait starts over
//! when the vehicle's box has grown by half since the schedule last started (it came closer, so its plate
//! has more pixels) or a search reads it confidently. Settling (enough agreeing confident reads) ends the
//! searches for good; that is decided by the builder from the votes.

use models::BBox;

use super::identity::DUPLICATE_IOU;

/// Searches on consecutive frames before waiting starts (a new vehicle, or one that came closer).
pub const FREE_SEARCHES: u32 = 3;
/// Longest wait between two searches of a vehicle, in analysed frames (1.6 s at 5 fps).
pub const MAX_GAP: u32 = 8;
/// A read at least this confident is worth searching the next frame for, and counts towards settling.
pub const CONFIDENT_READ: f32 = 0.9;
/// The schedule starts over when the box's area grows by this factor.
const CLOSER: f32 = 1.5;

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
