//! Multi-object tracking per camera.
//!
//! Design: ByteTrack-style and fully synchronous. Each call to [`Tracker::update`] takes one frame's
//! detections (with the frame's time) and returns what happened to the tracks:
//!
//! 1. Every track's Kalman filter predicts its box at the frame's time (steps of the nominal detection
//!    interval, so dropped frames are bridged).
//! 2. High-score detections are matched to all live tracks (confirmed, tentative and lost) by IoU with the
//!    Hungarian method; only objects of one kind match (people, two-wheelers, four-wheel vehicles).
//! 3. Low-score detections — often the same objects partly hidden — are matched to the confirmed tracks left
//!    over, with a stricter IoU. They keep a track alive but never start one.
//! 4. High-score detections left over start tentative tracks; a tentative track is confirmed after
//!    `confirm_hits` matches in a row and dropped at its first miss. A confirmed track that misses is lost,
//!    keeps predicting, and ends when it has been lost for `lost_timeout` or its prediction left the frame.
//!
//! Identities are integers that never repeat in a tracker's lifetime. Nothing here does I/O or reads a
//! clock, so a scripted sequence of detections always gives the same tracks.

pub mod assignment;
pub mod kalman;

use models::{BBox, ObjectClass};

use assignment::{assign, FORBIDDEN};
use kalman::Kalman;

/// Tracker tuning.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerSettings {
    /// Detections at or above this score are "high": they match first and can start tracks.
    pub high_score: f32,
    /// Detections below this are ignored.
    pub low_score: f32,
    /// A new track needs a detection at least this good.
    pub new_track_score: f32,
    /// Minimum IoU between a track's prediction and a high-score detection.
    pub match_iou: f32,
    /// Minimum IoU for low-score detections.
    pub low_match_iou: f32,
    /// Matches in a row that confirm a track.
    pub confirm_hits: u32,
    /// How long (seconds) a confirmed track may go unseen before it ends.
    pub lost_timeout_s: f64,
    /// Nominal time between analysed frames (seconds): the Kalman step.
    pub frame_interval_s: f64,
}

impl Default for TrackerSettings {
    fn default() -> Self {
        Self { high_score: 0.5, low_score: 0.1, new_track_score: 0.5, match_iou: 0.2, low_match_iou: 0.4, confirm_hits: 3, lost_timeout_s: 2.0, frame_interval_s: 0.2 }
    }
}

/// One detection as the tracker sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub bbox: BBox,
    pub score: f32,
    pub class: ObjectClass,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackState {
    Tentative,
    Confirmed,
    Lost,
}

/// A tracked object.
#[derive(Debug, Clone)]
pub struct Track {
    pub id: u64,
    pub state: TrackState,
    kalman: Kalman,
    kind: u8,
    /// Consecutive matches (for confirmation).
    hits: u32,
    pub first_seen_s: f64,
    pub last_seen_s: f64,
    last_predicted_s: f64,
    /// Last detection box and score.
    pub last_bbox: BBox,
    pub last_score: f32,
    /// Score-weighted votes per class, and the class with the most.
    labels: Vec<(ObjectClass, f32)>,
    class: ObjectClass,
}

impl Track {
    /// The class with the most score-weighted votes.
    pub fn class(&self) -> ObjectClass {
        self.class
    }

    /// Its label.
    pub fn label(&self) -> &'static str {
        self.class.label()
    }

    /// The filtered (predicted/corrected) box.
    pub fn bbox(&self) -> BBox {
        self.kalman.bbox()
    }

    fn vote(&mut self, class: ObjectClass, score: f32) {
        match self.labels.iter_mut().find(|(c, _)| *c == class) {
            Some((_, s)) => *s += score,
            None => self.labels.push((class, score)),
        }
        if let Some((best, _)) = self.labels.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
            self.class = *best;
        }
    }
}

/// What happened to a track in one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackEvent {
    /// The track was just confirmed (it is an object, not noise).
    Confirmed { id: u64 },
    /// A track (tentative or confirmed) matched detection `detection` (index into the frame's observations).
    Matched { id: u64, detection: usize },
    /// A tentative track was dropped before it was confirmed (noise).
    Dropped { id: u64 },
    /// A confirmed track was not seen this frame.
    Missed { id: u64 },
    /// A confirmed track ended (gone for too long, or out of the frame).
    Ended { id: u64 },
}

/// Tracks of one camera.
#[derive(Debug)]
pub struct Tracker {
    settings: TrackerSettings,
    tracks: Vec<Track>,
    next_id: u64,
    frame_size: (f32, f32),
}

fn iou_cost(track: &Track, det: &Observation, min_iou: f32) -> f64 {
    if track.kind != det.class.track_group() {
        return FORBIDDEN;
    }
    let iou = track.kalman.bbox().iou(&det.bbox);
    if iou < min_iou {
        FORBIDDEN
    } else {
        1.0 - iou as f64
    }
}

impl Tracker {
    pub fn new(settings: TrackerSettings) -> Self {
        Self { settings, tracks: Vec::new(), next_id: 1, frame_size: (0.0, 0.0) }
    }

    pub fn settings(&self) -> &TrackerSettings {
        &self.settings
    }

    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    pub fn track(&self, id: u64) -> Option<&Track> {
        self.tracks.iter().find(|t| t.id == id)
    }

    /// Feeds one frame's detections, taken at `time_s` (seconds, monotonic) in a `width`x`height` frame.
    pub fn update(&mut self, time_s: f64, width: u32, height: u32, detections: &[Observation]) -> Vec<TrackEvent> {
        let s = self.settings.clone();
        self.frame_size = (width as f32, height as f32);
        for t in &mut self.tracks {
            let dt = (time_s - t.last_predicted_s) / s.frame_interval_s.max(1e-6);
            t.kalman.predict(dt);
            t.last_predicted_s = time_s;
        }
        let high: Vec<usize> = (0..detections.len()).filter(|&i| detections[i].score >= s.high_score).collect();
        let low: Vec<usize> = (0..detections.len()).filter(|&i| detections[i].score < s.high_score && detections[i].score >= s.low_score).collect();

        let mut matched_track = vec![false; self.tracks.len()];
        let mut matches: Vec<(usize, usize)> = Vec::new();
        // 1. High-score detections against every track.
        let costs: Vec<Vec<f64>> = self.tracks.iter().map(|t| high.iter().map(|&d| iou_cost(t, &detections[d], s.match_iou)).collect()).collect();
        let mut used_high = vec![false; high.len()];
        for (ti, hi) in assign(&costs, 1.0) {
            matched_track[ti] = true;
            used_high[hi] = true;
            matches.push((ti, high[hi]));
        }
        // 2. Low-score detections against confirmed or lost tracks still unmatched.
        let remaining: Vec<usize> = (0..self.tracks.len()).filter(|&t| !matched_track[t] && self.tracks[t].state != TrackState::Tentative).collect();
        let costs: Vec<Vec<f64>> = remaining.iter().map(|&t| low.iter().map(|&d| iou_cost(&self.tracks[t], &detections[d], s.low_match_iou)).collect()).collect();
        for (ri, li) in assign(&costs, 1.0) {
            matched_track[remaining[ri]] = true;
            matches.push((remaining[ri], low[li]));
        }

        let mut events = Vec::new();
        for &(ti, di) in &matches {
            let d = &detections[di];
            let t = &mut self.tracks[ti];
            t.kalman.update(&d.bbox);
            t.hits += 1;
            t.last_seen_s = time_s;
            t.last_bbox = d.bbox;
            t.last_score = d.score;
            t.vote(d.class, d.score);
            match t.state {
                TrackState::Tentative if t.hits >= s.confirm_hits => {
                    t.state = TrackState::Confirmed;
                    events.push(TrackEvent::Matched { id: t.id, detection: di });
                    events.push(TrackEvent::Confirmed { id: t.id });
                }
                TrackState::Tentative => events.push(TrackEvent::Matched { id: t.id, detection: di }),
                TrackState::Confirmed | TrackState::Lost => {
                    t.state = TrackState::Confirmed;
                    events.push(TrackEvent::Matched { id: t.id, detection: di });
                }
            }
        }

        // Unmatched tracks: tentative ones are dropped, confirmed ones are lost, and lost ones end in time.
        let (fw, fh) = self.frame_size;
        let mut kept = Vec::with_capacity(self.tracks.len());
        for (ti, mut t) in std::mem::take(&mut self.tracks).into_iter().enumerate() {
            if matched_track[ti] {
                kept.push(t);
                continue;
            }
            t.hits = 0;
            match t.state {
                TrackState::Tentative => events.push(TrackEvent::Dropped { id: t.id }),
                TrackState::Confirmed | TrackState::Lost => {
                    let (cx, cy) = t.kalman.bbox().center();
                    let outside = cx < 0.0 || cy < 0.0 || cx > fw || cy > fh;
                    if outside || time_s - t.last_seen_s > s.lost_timeout_s {
                        events.push(TrackEvent::Ended { id: t.id });
                    } else {
                        t.state = TrackState::Lost;
                        events.push(TrackEvent::Missed { id: t.id });
                        kept.push(t);
                    }
                }
            }
        }
        self.tracks = kept;

        // 3. New tentative tracks from good detections nobody claimed.
        for (hi, &di) in high.iter().enumerate() {
            let d = &detections[di];
            if used_high[hi] || d.score < s.new_track_score {
                continue;
            }
            let mut t = Track {
                id: self.next_id,
                state: TrackState::Tentative,
                kalman: Kalman::new(&d.bbox),
                kind: d.class.track_group(),
                hits: 1,
                first_seen_s: time_s,
                last_seen_s: time_s,
                last_predicted_s: time_s,
                last_bbox: d.bbox,
                last_score: d.score,
                labels: Vec::new(),
                class: d.class,
            };
            t.vote(d.class, d.score);
            self.next_id += 1;
            events.push(TrackEvent::Matched { id: t.id, detection: di });
            if s.confirm_hits <= 1 {
                t.state = TrackState::Confirmed;
                events.push(TrackEvent::Confirmed { id: t.id });
            }
            self.tracks.push(t);
        }
        events
    }

    /// Ends every confirmed track and drops the tentative ones (end of stream, shutdown).
    pub fn finish(&mut self) -> Vec<TrackEvent> {
        let events = self.tracks.iter().map(|t| if t.state == TrackState::Tentative { TrackEvent::Dropped { id: t.id } } else { TrackEvent::Ended { id: t.id } }).collect();
        self.tracks.clear();
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(x: f32, y: f32, w: f32, h: f32, score: f32, label: &'static str) -> Observation {
        Observation { bbox: BBox::new(x, y, x + w, y + h), score, class: ObjectClass::from_label(label).unwrap_or(ObjectClass::PERSON) }
    }

    fn settings() -> TrackerSettings {
        TrackerSettings { frame_interval_s: 0.2, ..TrackerSettings::default() }
    }

    /// Runs `frames` (detections per frame at 5 fps) and returns, per frame, the ids matched to each detection.
    fn run(tracker: &mut Tracker, frames: &[Vec<Observation>]) -> (Vec<Vec<Option<u64>>>, Vec<TrackEvent>) {
        let mut per_frame = Vec::new();
        let mut all = Vec::new();
        for (i, dets) in frames.iter().enumerate() {
            let events = tracker.update(i as f64 * 0.2, 1920, 1080, dets);
            let mut ids = vec![None; dets.len()];
            for e in &events {
                if let TrackEvent::Matched { id, detection } = e {
                    ids[*detection] = Some(*id);
                }
            }
            per_frame.push(ids);
            all.extend(events);
        }
        (per_frame, all)
    }

    fn count(events: &[TrackEvent], f: impl Fn(&TrackEvent) -> bool) -> usize {
        events.iter().filter(|e| f(e)).count()
    }

    #[test]
    fn an_object_walking_through_keeps_one_identity_and_ends_once() {
        let mut t = Tracker::new(settings());
        let mut frames: Vec<Vec<Observation>> = (0..20).map(|i| vec![obs(100.0 + 30.0 * i as f32, 400.0, 80.0, 200.0, 0.9, "person")]).collect();
        frames.extend((0..15).map(|_| Vec::new())); // gone
        let (ids, events) = run(&mut t, &frames);
        assert_eq!(count(&events, |e| matches!(e, TrackEvent::Confirmed { .. })), 1);
        let seen: std::collections::BTreeSet<u64> = ids.iter().flatten().flatten().copied().collect();
        assert_eq!(seen.len(), 1, "{ids:?}");
        let confirmed_at = (0..frames.len()).find(|&i| {
            let mut probe = Tracker::new(settings());
            let (_, ev) = run(&mut probe, &frames[..=i]);
            count(&ev, |e| matches!(e, TrackEvent::Confirmed { .. })) == 1
        });
        assert_eq!(confirmed_at, Some(2), "confirmed on the third frame");
        assert_eq!(count(&events, |e| matches!(e, TrackEvent::Ended { .. })), 1);
    }

    #[test]
    fn a_short_occlusion_does_not_split_the_track() {
        let mut t = Tracker::new(settings());
        let frames: Vec<Vec<Observation>> = (0..25)
            .map(|i| {
                // Missed in frames 8..12 (0.8 s), still moving.
                if (8..12).contains(&i) {
                    vec![]
                } else {
                    vec![obs(100.0 + 40.0 * i as f32, 500.0, 300.0, 200.0, 0.85, "car")]
                }
            })
            .collect();
        let (ids, events) = run(&mut t, &frames);
        let seen: std::collections::BTreeSet<u64> = ids.iter().flatten().flatten().copied().collect();
        assert_eq!(seen.len(), 1, "{ids:?}");
        assert_eq!(count(&events, |e| matches!(e, TrackEvent::Confirmed { .. })), 1);
        assert_eq!(count(&events, |e| matches!(e, TrackEvent::Missed { .. })), 4);
        assert_eq!(count(&events, |e| matches!(e, TrackEvent::Ended { .. })), 0);
    }

    #[test]
    fn crossing_paths_keep_their_identities() {
        let mut t = Tracker::new(settings());
        // Two people walking towards each other, passing at frame 10, one slightly lower than the other.
        let frames: Vec<Vec<Observation>> = (0..20)
            .map(|i| {
                let a = obs(100.0 + 40.0 * i as f32, 400.0, 80.0, 200.0, 0.9, "person");
                let b = obs(900.0 - 40.0 * i as f32, 440.0, 80.0, 200.0, 0.9, "person");
                vec![a, b]
            })
            .collect();
        let (ids, _) = run(&mut t, &frames);
        let first_a = ids[3][0].unwrap();
        let first_b = ids[3][1].unwrap();
        assert_ne!(first_a, first_b);
        for (i, frame) in ids.iter().enumerate().skip(3) {
            assert_eq!(frame[0], Some(first_a), "frame {i}: {ids:?}");
            assert_eq!(frame[1], Some(first_b), "frame {i}: {ids:?}");
        }
    }

    #[test]
    fn low_score_detections_keep_a_track_alive_but_never_start_one() {
        let mut t = Tracker::new(settings());
        let frames: Vec<Vec<Observation>> = (0..12)
            .map(|i| {
                let score = if i < 4 { 0.9 } else { 0.25 };
                vec![obs(100.0 + 10.0 * i as f32, 100.0, 200.0, 150.0, score, "car"), obs(1500.0, 100.0, 100.0, 80.0, 0.25, "car")]
            })
            .collect();
        let (ids, events) = run(&mut t, &frames);
        assert_eq!(count(&events, |e| matches!(e, TrackEvent::Confirmed { .. })), 1, "the faint car never becomes a track");
        assert!(ids[11][0].is_some(), "partly hidden car still tracked: {ids:?}");
        assert!(ids.iter().all(|f| f[1].is_none()));
    }

    #[test]
    fn flickering_noise_is_never_confirmed() {
        let mut t = Tracker::new(settings());
        let frames: Vec<Vec<Observation>> = (0..10).map(|i| if i % 2 == 0 { vec![obs(500.0, 500.0, 50.0, 50.0, 0.6, "person")] } else { vec![] }).collect();
        let (_, events) = run(&mut t, &frames);
        assert_eq!(count(&events, |e| matches!(e, TrackEvent::Confirmed { .. })), 0);
    }

    #[test]
    fn a_car_and_a_person_side_by_side_do_not_swap() {
        let mut t = Tracker::new(settings());
        let frames: Vec<Vec<Observation>> =
            (0..10).map(|i| vec![obs(400.0 + 5.0 * i as f32, 300.0, 300.0, 250.0, 0.9, "car"), obs(420.0 + 5.0 * i as f32, 320.0, 80.0, 220.0, 0.9, "person")]).collect();
        let (ids, _) = run(&mut t, &frames);
        assert_ne!(ids[5][0], ids[5][1]);
        assert_eq!(t.track(ids[5][0].unwrap()).unwrap().label(), "car");
        assert_eq!(t.track(ids[5][1].unwrap()).unwrap().label(), "person");
    }

    #[test]
    fn a_track_leaving_the_frame_ends_without_waiting_for_the_timeout() {
        let mut t = Tracker::new(settings());
        let frames: Vec<Vec<Observation>> = (0..12).map(|i| vec![obs(1500.0 + 60.0 * i as f32, 500.0, 200.0, 150.0, 0.9, "car")]).collect();
        let mut all = Vec::new();
        for (i, d) in frames.iter().enumerate() {
            let dets: Vec<Observation> = d.iter().filter(|o| o.bbox.x1 < 1900.0).cloned().collect();
            all.extend(t.update(i as f64 * 0.2, 1920, 1080, &dets));
        }
        assert_eq!(count(&all, |e| matches!(e, TrackEvent::Ended { .. })), 1, "{all:?}");
    }
}
