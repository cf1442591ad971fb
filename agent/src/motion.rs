//! The motion stage in front of the detector: is anything moving in this frame?
//!
//! Each analysed frame is reduced to a grid of cells (about 160 across; each cell the mean grey level of 16
//! pixels spread over it, which averages sensor noise away) and compared with a background grid:
//!
//! - **Global light changes** (clouds, dusk, a camera's automatic gain) shift every cell alike: the median
//!   difference over the frame is taken out before anything is compared.
//! - **Flicker** differs per place (compression around edges, leaves): each cell keeps its own running mean
//!   absolute deviation, and a cell counts as changed only when its difference exceeds both `threshold`
//!   and four times its own usual deviation.
//! - **Scattered noise** (rain, snow, sensor grain) changes single cells here and there: motion needs a
//!   patch — a block of 8×8 cells with at least a quarter of them changed — and changed blocks covering at
//!   least `min_area` of the frame.
//! - **Masks** (swaying trees, a flag) are left out entirely.
//!
//! The background follows the picture slowly, changed cells more slowly still; but a changed cell that
//! has stayed as it is for `ABSORB_FRAMES` frames (a car that stopped at the barrier) becomes background at
//! once, so something that stands still stops counting as motion after two seconds or so, and counts again
//! when it moves off. The first frames only build the background and report motion, so the detector sees
//! the scene from the start.

use edge_config::{Motion, Zone};
use models::BgrView;

use crate::events::geometry::ZoneGeom;

/// Cells across the grid (fewer on narrow frames).
const GRID_WIDTH: u32 = 160;
/// Cells per block side.
const BLOCK: usize = 8;
/// How fast the background follows unchanged and changed cells.
const LEARN: f32 = 0.05;
const LEARN_CHANGED: f32 = 0.01;
/// While objects are followed but nothing moves (a car waiting at the barrier, a parked van), the detector
/// still looks this often, well within the tracker's lost timeout.
const STILL_FOLLOW_S: f64 = 0.5;
/// Analysed frames a changed cell must stay unchanged before it becomes background.
const ABSORB_FRAMES: u16 = 10;
/// Frames that only build the background.
const WARM_UP: u32 = 3;

/// What the motion stage saw in one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotionResult {
    pub moving: bool,
    /// Fraction of the (unmasked) frame in changed blocks.
    pub area: f32,
    /// The global light shift taken out (grey levels).
    pub shift: f32,
}

/// One camera's motion detector.
pub struct MotionDetector {
    settings: Motion,
    grid: Option<Grid>,
    frames: u32,
}

struct Grid {
    /// Frame size the grid was made for.
    frame: (u32, u32),
    /// Cells across and down; pixels per cell.
    cols: usize,
    rows: usize,
    step: u32,
    background: Vec<f32>,
    deviation: Vec<f32>,
    masked: Vec<bool>,
    unmasked: usize,
    current: Vec<f32>,
    /// The previous frame's cells, and for how many frames each changed cell has kept its value.
    previous: Vec<f32>,
    stable: Vec<u16>,
    changed: Vec<bool>,
    /// Reused for the median, so a frame allocates nothing.
    scratch: Vec<f32>,
}

impl MotionDetector {
    pub fn new(settings: &Motion) -> Self {
        Self { settings: settings.clone(), grid: None, frames: 0 }
    }

    /// Compares `frame` with the background and updates it.
    pub fn observe(&mut self, frame: &BgrView<'_>) -> MotionResult {
        let size = (frame.width(), frame.height());
        if self.grid.as_ref().is_none_or(|g| g.frame != size) {
            self.grid = Grid::new(size, &self.settings.masks);
            self.frames = 0;
        }
        let Some(grid) = self.grid.as_mut() else {
            return MotionResult { moving: true, area: 1.0, shift: 0.0 };
        };
        grid.sample(frame);
        self.frames += 1;
        if self.frames <= WARM_UP {
            grid.learn_all(self.frames);
            grid.previous.copy_from_slice(&grid.current);
            return MotionResult { moving: true, area: 1.0, shift: 0.0 };
        }
        let shift = grid.global_shift();
        let threshold = f32::from(self.settings.threshold);
        for i in 0..grid.current.len() {
            let d = (grid.current[i] - grid.background[i] - shift).abs();
            grid.changed[i] = !grid.masked[i] && d > threshold.max(4.0 * grid.deviation[i]);
        }
        let area = grid.changed_block_area();
        grid.learn(shift);
        grid.absorb_still(shift, threshold);
        MotionResult { moving: area >= self.settings.min_area as f32, area, shift }
    }
}

/// Why the detector runs on a frame, or that it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Something moves.
    Motion,
    /// Objects are being followed (including ones lost a moment ago) but nothing moves: a look every
    /// half second keeps their tracks.
    Following,
    /// Nothing for `keepalive_secs`: a look anyway.
    KeepAlive,
    /// Gating is off for the camera.
    Always,
    /// No inference for this frame.
    Skip,
}

/// The decision in front of one camera's detector: motion, objects followed, keep-alive.
pub struct DetectGate {
    motion: Option<MotionDetector>,
    keepalive_s: f64,
    last_run_s: Option<f64>,
}

impl DetectGate {
    pub fn new(settings: &Motion) -> Self {
        Self { motion: settings.enabled.then(|| MotionDetector::new(settings)), keepalive_s: settings.keepalive_secs, last_run_s: None }
    }

    /// Decides for the frame `view` at `stream_s` (seconds on the camera's clock); `following` says whether
    /// the event builder has objects in view. The motion stage sees every frame, so its background stays
    /// current while the detector runs.
    pub fn decide(&mut self, view: Option<&BgrView<'_>>, stream_s: f64, following: bool) -> Decision {
        let look = self.look(view);
        self.decide_on(look, stream_s, following)
    }

    /// The motion stage's half of [`DetectGate::decide`]: looks at the frame (and learns from it).
    pub fn look(&mut self, view: Option<&BgrView<'_>>) -> Look {
        let Some(motion) = self.motion.as_mut() else { return Look { moving: None } };
        // A frame that cannot be read is analysed (the detector reports why).
        Look { moving: Some(view.is_none_or(|v| motion.observe(v).moving)) }
    }

    /// The other half: the decision for a frame the motion stage looked at.
    pub fn decide_on(&mut self, look: Look, stream_s: f64, following: bool) -> Decision {
        let decision = self.would_decide(look, stream_s, following, None);
        if !matches!(decision, Decision::Skip | Decision::Always) {
            self.last_run_s = Some(stream_s);
        }
        decision
    }

    /// What [`DetectGate::decide_on`] would decide, without deciding; `planned_run_s`, a run planned after
    /// the last one decided.
    pub fn would_decide(&self, look: Look, stream_s: f64, following: bool, planned_run_s: Option<f64>) -> Decision {
        let Some(moving) = look.moving else { return Decision::Always };
        // Since the detector last ran (a clock that went back counts as long ago).
        let since = planned_run_s.or(self.last_run_s).map_or(f64::INFINITY, |t| if stream_s < t { f64::INFINITY } else { stream_s - t });
        if moving {
            Decision::Motion
        } else if following && since >= STILL_FOLLOW_S {
            Decision::Following
        } else if !following && since >= self.keepalive_s {
            Decision::KeepAlive
        } else {
            Decision::Skip
        }
    }
}

/// What the motion stage saw in one frame ([`DetectGate::look`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    /// `None` when gating is off.
    moving: Option<bool>,
}

impl Grid {
    fn new((w, h): (u32, u32), masks: &[Vec<[f64; 2]>]) -> Option<Self> {
        if w < 16 || h < 16 {
            return None;
        }
        let step = (w / GRID_WIDTH).max(2);
        let (cols, rows) = ((w / step) as usize, (h / step) as usize);
        let zones: Vec<ZoneGeom> = masks.iter().map(|points| ZoneGeom::new(&Zone { id: String::new(), points: points.clone() }, w, h)).collect();
        let masked: Vec<bool> = (0..rows * cols)
            .map(|i| {
                let centre = (((i % cols) as f64 + 0.5) * step as f64, ((i / cols) as f64 + 0.5) * step as f64);
                zones.iter().any(|z| z.contains(centre))
            })
            .collect();
        let unmasked = masked.iter().filter(|m| !**m).count();
        let n = rows * cols;
        Some(Self {
            frame: (w, h),
            cols,
            rows,
            step,
            background: vec![0.0; n],
            deviation: vec![2.0; n],
            masked,
            unmasked,
            current: vec![0.0; n],
            previous: vec![0.0; n],
            stable: vec![0; n],
            changed: vec![false; n],
            scratch: Vec::with_capacity(n),
        })
    }

    fn sample(&mut self, frame: &BgrView<'_>) {
        sample_cells(frame, self.step, self.cols, self.rows, &mut self.current);
    }

    /// The median of the differences from the background: what the whole picture moved by.
    fn global_shift(&mut self) -> f32 {
        self.scratch.clear();
        self.scratch.extend(self.current.iter().zip(&self.background).zip(&self.masked).filter(|(_, m)| !**m).map(|((c, b), _)| c - b));
        if self.scratch.is_empty() {
            return 0.0;
        }
        let mid = self.scratch.len() / 2;
        *self.scratch.select_nth_unstable_by(mid, f32::total_cmp).1
    }

    /// Fraction of the unmasked cells lying in blocks with at least a quarter of their cells changed.
    fn changed_block_area(&self) -> f32 {
        let mut cells = 0usize;
        for by in (0..self.rows).step_by(BLOCK) {
            for bx in (0..self.cols).step_by(BLOCK) {
                let (mut changed, mut total) = (0, 0);
                for r in by..(by + BLOCK).min(self.rows) {
                    for c in bx..(bx + BLOCK).min(self.cols) {
                        let i = r * self.cols + c;
                        if !self.masked[i] {
                            total += 1;
                            changed += usize::from(self.changed[i]);
                        }
                    }
                }
                if total > 0 && changed * 4 >= total {
                    cells += total;
                }
            }
        }
        cells as f32 / self.unmasked.max(1) as f32
    }

    /// Changed cells that kept their value for [`ABSORB_FRAMES`] become background.
    fn absorb_still(&mut self, shift: f32, threshold: f32) {
        for i in 0..self.current.len() {
            let still = (self.current[i] - self.previous[i]).abs() <= threshold.max(4.0 * self.deviation[i]);
            self.stable[i] = if self.changed[i] && still { self.stable[i].saturating_add(1) } else { 0 };
            if self.stable[i] >= ABSORB_FRAMES {
                self.background[i] = self.current[i] - shift;
                self.stable[i] = 0;
            }
        }
        self.previous.copy_from_slice(&self.current);
    }

    fn learn_all(&mut self, frames: u32) {
        let a = 1.0 / frames as f32;
        for i in 0..self.current.len() {
            let d = self.current[i] - self.background[i];
            if frames > 1 {
                self.deviation[i] += a * (d.abs() - self.deviation[i]);
            }
            self.background[i] += a * d;
        }
    }

    fn learn(&mut self, shift: f32) {
        for i in 0..self.current.len() {
            let d = self.current[i] - self.background[i];
            let rate = if self.changed[i] { LEARN_CHANGED } else { LEARN };
            if !self.changed[i] {
                self.deviation[i] += LEARN * ((d - shift).abs() - self.deviation[i]);
            }
            // The light shift is taken up at once everywhere; the rest at the cell's rate.
            self.background[i] += shift + rate * (d - shift);
        }
    }
}

/// Each cell's mean grey level over a 4×4 lattice of its pixels: `cols`×`rows` cells of `step` pixels from
/// the frame's top-left corner (the frame must hold them), into `out`.
pub(crate) fn sample_cells(frame: &BgrView<'_>, step: u32, cols: usize, rows: usize, out: &mut [f32]) {
    let step = step as usize;
    let offsets: [usize; 4] = [0, step / 4, step / 2, 3 * step / 4];
    for r in 0..rows {
        for (k, &dy) in offsets.iter().enumerate() {
            let row = frame.row((r * step + dy) as u32);
            for c in 0..cols {
                let mut sum = 0u32;
                for &dx in &offsets {
                    let p = (c * step + dx) * 3;
                    // BGR → grey, (B + 2G + R) / 4.
                    sum += (u32::from(row[p]) + 2 * u32::from(row[p + 1]) + u32::from(row[p + 2])) >> 2;
                }
                let cell = &mut out[r * cols + c];
                *cell = if k == 0 { sum as f32 } else { *cell + sum as f32 };
            }
        }
    }
    for v in out.iter_mut().take(rows * cols) {
        *v /= 16.0;
    }
}

#[cfg(test)]
mod tests;
