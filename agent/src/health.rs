//! Camera health: is the camera still seeing the gate?
//!
//! A camera can fail in ways the stream itself does not show: frames keep arriving while the lens is
//! covered, the picture is frozen on one image, or the camera was knocked and looks at the verge. Each
//! arriving frame is reduced to a coarse grid of cells (64 across; each the mean grey level of 16 pixels,
//! [`crate::motion::sample_cells`]) and four conditions are watched:
//!
//! - **offline**: no frame for `offline_secs` (checked between frames too, while the camera reconnects);
//! - **frozen**: frames arrive but each is identical to the one before — not even sensor noise changes (a
//!   hung camera or recorder sending its last picture again). Such a stream still refreshes a keyframe now
//!   and then, so the share of identical frames is followed (a running mean), not an unbroken run. Sensor
//!   noise averaged over a cell still moves it by more than [`IDENTICAL_DIFF`] on a working camera, even
//!   at night and after compression (measured on the test clips: 0.2–0.3 grey levels mean, over 1 at
//!   most, with noise of ±3);
//! - **covered**: the picture is near-uniform: nearly every 4×4-cell block has no detail (black, white, a
//!   hand or cloth on the lens, blurred shut);
//! - **moved**: the view is shifted against a reference kept from the camera's first settled seconds. The
//!   slowly learnt background is matched against the reference at every shift of up to a fifth of the frame
//!   (normalised cross-correlation, so light changes do not count); the view has moved when a shift matches
//!   clearly better than none. A parked lorry makes the unshifted match worse but no shift better.
//!
//! Each condition has two thresholds (entering and leaving it) and must hold for its configured time
//! before it is raised, then be gone for `clear_secs` before it is cleared, so a flicker pages nobody.
//! Everything is synchronous and takes the time as an argument (seconds on the camera's clock).

use edge_config::Health;
use models::BgrView;

use crate::motion::sample_cells;
use crate::rules::RuleType;

/// Cells across the grid.
const COLS: u32 = 64;
/// A frame counts as identical to the one before when no cell changed by more than this (grey levels).
const IDENTICAL_DIFF: f32 = 0.2;
/// Running share of identical frames: the weight of each frame, and the shares entering and leaving frozen.
const IDENTICAL_WEIGHT: f32 = 0.2;
const FROZEN_ENTER: f32 = 0.75;
const FROZEN_LEAVE: f32 = 0.4;
/// Cells per block side, and the largest range of grey levels in a block that still counts as flat.
const BLOCK: usize = 4;
const FLAT_RANGE: f32 = 4.0;
/// Shares of flat blocks entering and leaving covered.
const COVERED_ENTER: f32 = 0.85;
const COVERED_LEAVE: f32 = 0.7;
/// A cell away from the background by more than this (grey levels) has changed; a picture with more than
/// `UNSETTLED` of its cells changed is not settled.
const CHANGED_DIFF: f32 = 12.0;
const UNSETTLED: f32 = 0.4;
/// How fast the background the view is matched with follows the picture (per frame).
const BACKGROUND_LEARN: f32 = 0.1;
/// The view is matched with the reference at most this often (seconds).
const MATCH_EVERY_S: f64 = 1.0;
/// Shifts searched, as a share of the grid's width and height.
const MAX_SHIFT: f32 = 0.2;
/// A shift explains the view when it matches at least this well, this much better than no shift; the
/// view is back when no shift matches better than no shift by more than `UNMOVED_GAIN`.
const MOVED_MATCH: f32 = 0.5;
const MOVED_GAIN: f32 = 0.12;
const UNMOVED_GAIN: f32 = 0.05;
/// A gap between frames longer than this restarts the time frames have been arriving again.
const FRAME_GAP_S: f64 = 5.0;

/// What is wrong with a camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    Offline,
    Frozen,
    Covered,
    Moved,
}

impl Condition {
    pub const ALL: [Condition; 4] = [Condition::Offline, Condition::Frozen, Condition::Covered, Condition::Moved];

    /// The alert kind it raises.
    pub fn rule_type(self) -> RuleType {
        match self {
            Condition::Offline => RuleType::CameraOffline,
            Condition::Frozen => RuleType::CameraFrozen,
            Condition::Covered => RuleType::CameraCovered,
            Condition::Moved => RuleType::CameraMoved,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A condition raised or cleared.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub condition: Condition,
    /// `true`: raised; `false`: cleared (the camera recovered).
    pub raised: bool,
    /// When the condition started (raised) or ended (cleared), on the camera's clock.
    pub since_s: f64,
    /// What was measured, for duty staff and engineers.
    pub detail: String,
}

/// One condition's hysteresis: it must hold for `raise_s`, then be gone for `clear_s`.
#[derive(Debug, Clone, Default)]
struct Tracker {
    raised: bool,
    bad_since: Option<f64>,
    good_since: Option<f64>,
}

impl Tracker {
    /// The condition holds (`bad`) or not at `t`; returns the change, if any, with the time it dates from.
    fn update(&mut self, bad: bool, t: f64, raise_s: f64, clear_s: f64) -> Option<(bool, f64)> {
        if bad {
            self.good_since = None;
            let since = *self.bad_since.get_or_insert(t);
            if !self.raised && t - since >= raise_s {
                self.raised = true;
                return Some((true, since));
            }
        } else {
            self.bad_since = None;
            let since = *self.good_since.get_or_insert(t);
            if self.raised && t - since >= clear_s {
                self.raised = false;
                return Some((false, since));
            }
        }
        None
    }
}

/// What one frame looked like.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PictureFacts {
    /// Identical to the frame before.
    identical: bool,
    /// Share of blocks without detail.
    flat: f32,
    /// Share of cells away from the background: most of the picture changing at once (the camera pans,
    /// or is being turned) is not a settled view.
    changed: f32,
}

/// The best match of the background with the reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    pub dx: i32,
    pub dy: i32,
    /// Normalised cross-correlation at the best shift and at none.
    pub best: f32,
    pub unshifted: f32,
}

/// The picture side: the grid, the frame before, the background and the reference view.
struct Picture {
    frame: (u32, u32),
    step: u32,
    cols: usize,
    rows: usize,
    current: Vec<f32>,
    previous: Vec<f32>,
    background: Vec<f32>,
    /// Sum of settled frames and for how long they were summed, until the reference is made.
    learning: Vec<f64>,
    learnt_frames: u32,
    learning_since: Option<f64>,
    reference: Option<Vec<f32>>,
    last_match_s: Option<f64>,
    frames: u32,
}

impl Picture {
    fn new((w, h): (u32, u32)) -> Option<Self> {
        let step = (w / COLS).max(1);
        let (cols, rows) = ((w / step) as usize, (h / step) as usize);
        if cols < 16 || rows < 8 {
            return None;
        }
        let n = cols * rows;
        Some(Self {
            frame: (w, h),
            step,
            cols,
            rows,
            current: vec![0.0; n],
            previous: vec![0.0; n],
            background: vec![0.0; n],
            learning: vec![0.0; n],
            learnt_frames: 0,
            learning_since: None,
            reference: None,
            last_match_s: None,
            frames: 0,
        })
    }

    /// Samples `frame` and says how it looks; the background follows it.
    fn observe(&mut self, frame: &BgrView<'_>) -> PictureFacts {
        sample_cells(frame, self.step, self.cols, self.rows, &mut self.current);
        self.frames += 1;
        let identical = self.frames > 1 && self.current.iter().zip(&self.previous).all(|(a, b)| (a - b).abs() <= IDENTICAL_DIFF);
        self.previous.copy_from_slice(&self.current);
        let flat = self.flat_share();
        if self.frames == 1 {
            self.background.copy_from_slice(&self.current);
        }
        let changed = self.current.iter().zip(&self.background).filter(|(c, b)| (*c - *b).abs() > CHANGED_DIFF).count() as f32 / self.current.len() as f32;
        for (b, c) in self.background.iter_mut().zip(&self.current) {
            *b += BACKGROUND_LEARN * (c - *b);
        }
        PictureFacts { identical, flat, changed }
    }

    /// With a settled picture, learns the reference view until it is made, then matches the background
    /// with it (at most every [`MATCH_EVERY_S`]).
    fn place(&mut self, t: f64, settled: bool, reference_s: f64) -> Option<Shift> {
        match &self.reference {
            None => {
                self.learn_reference(t, settled, reference_s);
                None
            }
            Some(_) if !settled => None,
            Some(_) if self.last_match_s.is_some_and(|m| t >= m && t - m < MATCH_EVERY_S) => None,
            Some(reference) => {
                self.last_match_s = Some(t);
                Some(best_shift(reference, &self.background, self.cols, self.rows))
            }
        }
    }

    /// Sums settled frames into the reference; a picture that is not settled (covered, frozen) starts over.
    fn learn_reference(&mut self, t: f64, settled: bool, reference_s: f64) {
        if !settled {
            self.learning.iter_mut().for_each(|v| *v = 0.0);
            self.learnt_frames = 0;
            self.learning_since = None;
            return;
        }
        let since = *self.learning_since.get_or_insert(t);
        for (sum, c) in self.learning.iter_mut().zip(&self.current) {
            *sum += f64::from(*c);
        }
        self.learnt_frames += 1;
        if t - since >= reference_s && self.learnt_frames >= 5 {
            let n = f64::from(self.learnt_frames);
            self.reference = Some(self.learning.iter().map(|s| (s / n) as f32).collect());
            self.last_match_s = Some(t);
        }
    }

    /// Share of blocks whose cells span less than [`FLAT_RANGE`] grey levels.
    fn flat_share(&self) -> f32 {
        let (mut flat, mut total) = (0usize, 0usize);
        for by in (0..self.rows).step_by(BLOCK) {
            for bx in (0..self.cols).step_by(BLOCK) {
                let (mut lo, mut hi) = (f32::MAX, f32::MIN);
                for r in by..(by + BLOCK).min(self.rows) {
                    for &v in &self.current[r * self.cols + bx..r * self.cols + (bx + BLOCK).min(self.cols)] {
                        lo = lo.min(v);
                        hi = hi.max(v);
                    }
                }
                total += 1;
                flat += usize::from(hi - lo < FLAT_RANGE);
            }
        }
        flat as f32 / total.max(1) as f32
    }
}

/// The shift of `view` against `reference` (cells; `view` at `(x, y)` shows what the reference shows at
/// `(x + dx, y + dy)`) that matches best, searched up to [`MAX_SHIFT`] of the grid each way.
pub fn best_shift(reference: &[f32], view: &[f32], cols: usize, rows: usize) -> Shift {
    let (mx, my) = ((cols as f32 * MAX_SHIFT) as i32, (rows as f32 * MAX_SHIFT) as i32);
    let unshifted = ncc(reference, view, cols, rows, 0, 0);
    let mut best = Shift { dx: 0, dy: 0, best: unshifted, unshifted };
    for dy in -my..=my {
        for dx in -mx..=mx {
            if dx == 0 && dy == 0 {
                continue;
            }
            let score = ncc(reference, view, cols, rows, dx, dy);
            if score > best.best {
                best = Shift { dx, dy, best: score, unshifted };
            }
        }
    }
    best
}

/// Normalised cross-correlation of `view` with `reference` shifted by `(dx, dy)`, over their overlap.
fn ncc(reference: &[f32], view: &[f32], cols: usize, rows: usize, dx: i32, dy: i32) -> f32 {
    let (x0, x1) = ((-dx).max(0) as usize, (cols as i32 - dx.max(0)) as usize);
    let (y0, y1) = ((-dy).max(0) as usize, (rows as i32 - dy.max(0)) as usize);
    let (mut sa, mut sb, mut saa, mut sbb, mut sab, mut n) = (0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
    for y in y0..y1 {
        let ry = (y as i32 + dy) as usize;
        let a = &view[y * cols + x0..y * cols + x1];
        let start = ry * cols + (x0 as i32 + dx) as usize;
        let b = &reference[start..start + (x1 - x0)];
        for (&a, &b) in a.iter().zip(b) {
            let (a, b) = (f64::from(a), f64::from(b));
            sa += a;
            sb += b;
            saa += a * a;
            sbb += b * b;
            sab += a * b;
        }
        n += (x1 - x0) as f64;
    }
    if n < 16.0 {
        return 0.0;
    }
    let cov = sab - sa * sb / n;
    let var = (saa - sa * sa / n) * (sbb - sb * sb / n);
    if var <= 1e-9 {
        return 0.0;
    }
    (cov / var.sqrt()) as f32
}

/// One camera's health.
pub struct CameraHealth {
    settings: Health,
    picture: Option<Picture>,
    trackers: [Tracker; 4],
    /// Running share of identical frames; whether the picture counts as frozen, covered, moved now.
    identical: f32,
    frozen: bool,
    covered: bool,
    moved: bool,
    last_shift: Option<Shift>,
    last_flat: f32,
    /// The camera's clock when it started, when the last frame came, and since when frames have been
    /// arriving without a long gap.
    started_s: f64,
    last_frame_s: Option<f64>,
    arriving_since: Option<f64>,
}

impl CameraHealth {
    pub fn new(settings: &Health, started_s: f64) -> Self {
        Self {
            settings: settings.clone(),
            picture: None,
            trackers: Default::default(),
            identical: 0.0,
            frozen: false,
            covered: false,
            moved: false,
            last_shift: None,
            last_flat: 0.0,
            started_s,
            last_frame_s: None,
            arriving_since: None,
        }
    }

    /// Whether `condition` is raised now.
    pub fn is_raised(&self, condition: Condition) -> bool {
        self.trackers[condition.index()].raised
    }

    /// A frame arrived at `t`; `view` is its picture (`None` when it cannot be read).
    pub fn on_frame(&mut self, view: Option<&BgrView<'_>>, t: f64) -> Vec<Change> {
        let mut changes = Vec::new();
        if self.last_frame_s.is_none_or(|last| t - last > FRAME_GAP_S || t < last) {
            self.arriving_since = Some(t);
        }
        self.last_frame_s = Some(t);
        let arriving = self.arriving_since.unwrap_or(t);
        if self.trackers[Condition::Offline.index()].raised && t - arriving >= self.clear_s() {
            self.trackers[Condition::Offline.index()] = Tracker::default();
            changes.push(Change { condition: Condition::Offline, raised: false, since_s: arriving, detail: "frames are arriving again".into() });
        }
        let Some(view) = view else { return changes };
        let size = (view.width(), view.height());
        if self.picture.as_ref().is_none_or(|p| p.frame != size) {
            self.picture = Picture::new(size);
            self.identical = 0.0;
        }
        let reference_s = self.settings.reference_secs as f64;
        let Some(picture) = self.picture.as_mut() else { return changes };
        let facts = picture.observe(view);
        self.identical += IDENTICAL_WEIGHT * (f32::from(u8::from(facts.identical)) - self.identical);
        self.frozen = if self.frozen { self.identical >= FROZEN_LEAVE } else { self.identical >= FROZEN_ENTER };
        self.covered = if self.covered { facts.flat >= COVERED_LEAVE } else { facts.flat >= COVERED_ENTER };
        self.last_flat = facts.flat;
        // A covered, frozen or sweeping picture says nothing of where the camera looks.
        let settled = !self.frozen && !self.covered && facts.changed < UNSETTLED;
        if let Some(s) = picture.place(t, settled, reference_s) {
            let gain = s.best - s.unshifted;
            let far = s.dx.abs() + s.dy.abs() >= 2;
            self.moved = if self.moved { far && gain > UNMOVED_GAIN && s.best >= 0.8 * MOVED_MATCH } else { far && s.best >= MOVED_MATCH && gain >= MOVED_GAIN };
            self.last_shift = Some(s);
        }
        // A uniform picture is covered whether or not it also stands still (a camera that lost its sensor sends
        // the same black frame over and over).
        let (frozen, covered, moved) = (self.frozen && !self.covered, self.covered, self.moved && !self.frozen && !self.covered);
        for (condition, bad, raise_s) in
            [(Condition::Frozen, frozen, self.settings.frozen_secs), (Condition::Covered, covered, self.settings.covered_secs), (Condition::Moved, moved, self.settings.moved_secs)]
        {
            if let Some((raised, since_s)) = self.trackers[condition.index()].update(bad, t, raise_s as f64, self.clear_s()) {
                changes.push(Change { condition, raised, since_s, detail: self.detail(condition, raised) });
            }
        }
        changes
    }

    /// No frame has come by `t` (the camera is connecting, reconnecting or stalled).
    pub fn on_idle(&mut self, t: f64) -> Vec<Change> {
        let last = self.last_frame_s.unwrap_or(self.started_s);
        if t - last > FRAME_GAP_S {
            self.arriving_since = None;
        }
        let tracker = &mut self.trackers[Condition::Offline.index()];
        if !tracker.raised && t - last >= self.settings.offline_secs as f64 {
            tracker.raised = true;
            let detail = format!("no frame for {:.0} s", t - last);
            return vec![Change { condition: Condition::Offline, raised: true, since_s: last, detail }];
        }
        Vec::new()
    }

    fn clear_s(&self) -> f64 {
        self.settings.clear_secs as f64
    }

    /// What was measured, in words.
    fn detail(&self, condition: Condition, raised: bool) -> String {
        match (condition, raised) {
            (Condition::Frozen, true) => format!("{:.0} % of recent frames identical to the one before", self.identical * 100.0),
            (Condition::Frozen, false) => "the picture changes again".into(),
            (Condition::Covered, true) => format!("{:.0} % of the picture without detail", self.last_flat * 100.0),
            (Condition::Covered, false) => format!("detail is back ({:.0} % of the picture without detail)", self.last_flat * 100.0),
            (Condition::Moved, _) => match (self.last_shift, self.picture.as_ref()) {
                (Some(s), Some(p)) => {
                    let (dx, dy) = (s.dx as f32 * 100.0 / p.cols as f32, s.dy as f32 * 100.0 / p.rows as f32);
                    let state = if raised { "the view is shifted" } else { "the view is back" };
                    format!("{state}: {dx:+.0} % across, {dy:+.0} % down against the reference (match {:.2} shifted, {:.2} not)", s.best, s.unshifted)
                }
                _ => String::new(),
            },
            (Condition::Offline, _) => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(cols: usize, rows: usize, f: impl Fn(usize, usize) -> f32) -> Vec<f32> {
        (0..rows * cols).map(|i| f(i % cols, i / cols)).collect()
    }

    fn scene(x: usize, y: usize) -> f32 {
        ((x * 37 + y * 11) % 29) as f32 * 4.0 + if (x / 7 + y / 5) % 2 == 0 { 40.0 } else { 0.0 }
    }

    #[test]
    fn a_shifted_view_is_found_at_its_shift_and_a_brighter_one_at_none() {
        let (cols, rows) = (64, 36);
        let reference = grid(cols, rows, scene);
        let shifted = grid(cols, rows, |x, y| scene(x + 6, y));
        let s = best_shift(&reference, &shifted, cols, rows);
        assert_eq!((s.dx, s.dy), (6, 0), "{s:?}");
        assert!(s.best > 0.99 && s.unshifted < s.best - MOVED_GAIN, "{s:?}");
        let brighter = grid(cols, rows, |x, y| scene(x, y) * 1.3 + 20.0);
        let s = best_shift(&reference, &brighter, cols, rows);
        assert_eq!((s.dx, s.dy), (0, 0), "{s:?}");
    }

    #[test]
    fn a_condition_is_raised_after_its_time_and_cleared_after_the_clear_time_and_a_flicker_does_neither() {
        let mut t = Tracker::default();
        assert_eq!(t.update(true, 0.0, 5.0, 2.0), None);
        assert_eq!(t.update(false, 3.0, 5.0, 2.0), None);
        assert_eq!(t.update(true, 4.0, 5.0, 2.0), None);
        assert_eq!(t.update(true, 8.9, 5.0, 2.0), None);
        assert_eq!(t.update(true, 9.0, 5.0, 2.0), Some((true, 4.0)));
        assert_eq!(t.update(false, 10.0, 5.0, 2.0), None);
        assert_eq!(t.update(true, 10.5, 5.0, 2.0), None);
        assert_eq!(t.update(false, 11.0, 5.0, 2.0), None);
        assert_eq!(t.update(false, 13.0, 5.0, 2.0), Some((false, 11.0)));
    }

    #[test]
    fn a_camera_without_frames_goes_offline_once_and_comes_back_once_frames_flow() {
        let settings = Health { offline_secs: 10, clear_secs: 3, ..Health::default() };
        let mut h = CameraHealth::new(&settings, 0.0);
        assert!(h.on_idle(9.0).is_empty());
        let raised = h.on_idle(10.0);
        assert_eq!(raised.len(), 1);
        assert!(raised[0].raised && raised[0].condition == Condition::Offline);
        assert!(h.on_idle(30.0).is_empty());
        assert!(h.on_frame(None, 31.0).is_empty());
        assert!(h.on_frame(None, 33.0).is_empty());
        let back = h.on_frame(None, 34.0);
        assert_eq!(back.len(), 1);
        assert!(!back[0].raised && back[0].since_s == 31.0);
    }
}
