//! Constant-velocity Kalman filter over a box: state `(cx, cy, w, h)` (centre, width, height) and their
//! velocities; the measurement is the box. Time steps are in units of the camera's nominal detection
//! interval, so a dropped frame is simply a step of 2.
//!
//! SORT and ByteTrack keep the aspect ratio w/h instead of the width, with almost no noise on it: the filter
//! takes the aspect as fixed. A vehicle driving in from the edge of the frame has a clipped box whose aspect
//! changes fast (a wide strip first, then the whole car), and the filter's box then grew wider and wider
//! than the car (2,500 px predicted for a 790 px car after six steps at 3 analysed frames a second) until it
//! no longer overlapped it enough, and the car's passing was split in two. Width and height each with noise
//! scaled to themselves (as BoT-SORT does) follow such a box.

// Matrix arithmetic reads best with explicit indices.
#![allow(clippy::needless_range_loop)]

use models::BBox;

const N: usize = 8;
const M: usize = 4;

type Mat8 = [[f64; N]; N];

/// Noise scales relative to the box's width (for `cx`, `w`) and height (for `cy`, `h`), ByteTrack's values.
const STD_POSITION: f64 = 1.0 / 20.0;
const STD_VELOCITY: f64 = 1.0 / 160.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Kalman {
    x: [f64; N],
    p: Mat8,
}

fn to_measurement(b: &BBox) -> [f64; M] {
    let w = b.width().max(1e-3) as f64;
    let h = b.height().max(1e-3) as f64;
    let (cx, cy) = b.center();
    [cx as f64, cy as f64, w, h]
}

/// Standard deviations for the state, `position` and `velocity` times the box's width or height.
fn scaled(w: f64, h: f64, position: f64, velocity: f64) -> [f64; N] {
    [position * w, position * h, position * w, position * h, velocity * w, velocity * h, velocity * w, velocity * h]
}

impl Kalman {
    pub fn new(b: &BBox) -> Self {
        let z = to_measurement(b);
        let mut x = [0.0; N];
        x[..M].copy_from_slice(&z);
        let std = scaled(z[2], z[3], 2.0 * STD_POSITION, 10.0 * STD_VELOCITY);
        let mut p = [[0.0; N]; N];
        for i in 0..N {
            p[i][i] = std[i] * std[i];
        }
        Self { x, p }
    }

    /// The current box estimate.
    pub fn bbox(&self) -> BBox {
        let (cx, cy, w, h) = (self.x[0], self.x[1], self.x[2].max(1e-3), self.x[3].max(1e-3));
        BBox::new((cx - w / 2.0) as f32, (cy - h / 2.0) as f32, (cx + w / 2.0) as f32, (cy + h / 2.0) as f32)
    }

    /// Velocity of the centre in pixels per nominal step.
    pub fn velocity(&self) -> (f64, f64) {
        (self.x[4], self.x[5])
    }

    /// Moves the state `dt` steps ahead.
    pub fn predict(&mut self, dt: f64) {
        let dt = dt.max(0.0);
        for i in 0..M {
            self.x[i] += dt * self.x[i + M];
        }
        // P = F P Fᵀ + Q with F = [[I, dt·I], [0, I]].
        let mut fp = self.p;
        for i in 0..M {
            for j in 0..N {
                fp[i][j] += dt * self.p[i + M][j];
            }
        }
        let mut p = fp;
        for i in 0..N {
            for j in 0..M {
                p[i][j] += dt * fp[i][j + M];
            }
        }
        let q = scaled(self.x[2].max(1.0), self.x[3].max(1.0), STD_POSITION, STD_VELOCITY);
        for i in 0..N {
            p[i][i] += q[i] * q[i] * dt.max(1e-3);
        }
        self.p = p;
    }

    /// Corrects the state with a measured box.
    pub fn update(&mut self, b: &BBox) {
        let z = to_measurement(b);
        let r = scaled(self.x[2].max(1.0), self.x[3].max(1.0), STD_POSITION, 0.0);
        // S = H P Hᵀ + R, the top-left 4x4 block of P plus R.
        let mut s = [[0.0; M]; M];
        for i in 0..M {
            for j in 0..M {
                s[i][j] = self.p[i][j];
            }
            s[i][i] += r[i] * r[i];
        }
        let Some(s_inv) = invert4(&s) else { return };
        // K = P Hᵀ S⁻¹ (8x4).
        let mut k = [[0.0; M]; N];
        for i in 0..N {
            for j in 0..M {
                k[i][j] = (0..M).map(|l| self.p[i][l] * s_inv[l][j]).sum();
            }
        }
        let innovation: [f64; M] = std::array::from_fn(|i| z[i] - self.x[i]);
        for i in 0..N {
            self.x[i] += (0..M).map(|j| k[i][j] * innovation[j]).sum::<f64>();
        }
        // P = (I − K H) P.
        let mut p = self.p;
        for i in 0..N {
            for j in 0..N {
                p[i][j] -= (0..M).map(|l| k[i][l] * self.p[l][j]).sum::<f64>();
            }
        }
        self.p = p;
    }
}

fn invert4(m: &[[f64; M]; M]) -> Option<[[f64; M]; M]> {
    let mut a = *m;
    let mut inv = [[0.0; M]; M];
    for (i, row) in inv.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for col in 0..M {
        let pivot = (col..M).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let d = a[col][col];
        for j in 0..M {
            a[col][j] /= d;
            inv[col][j] /= d;
        }
        for row in 0..M {
            if row != col {
                let f = a[row][col];
                for j in 0..M {
                    a[row][j] -= f * a[col][j];
                    inv[row][j] -= f * inv[col][j];
                }
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_constant_velocity_and_predicts_ahead() {
        let mut k = Kalman::new(&BBox::new(0.0, 0.0, 40.0, 80.0));
        for step in 1..=10 {
            k.predict(1.0);
            let x = 10.0 * step as f32;
            k.update(&BBox::new(x, 0.0, x + 40.0, 80.0));
        }
        let (vx, vy) = k.velocity();
        assert!((vx - 10.0).abs() < 1.5 && vy.abs() < 1.0, "velocity {vx} {vy}");
        k.predict(2.0);
        let b = k.bbox();
        assert!((b.x1 - 120.0).abs() < 4.0, "predicted {b:?}");
        assert!((b.width() - 40.0).abs() < 2.0 && (b.height() - 80.0).abs() < 2.0);
    }

    #[test]
    fn follows_a_box_clipped_by_the_frame_edge_as_the_car_drives_in() {
        // The detector's boxes for a car driving up into a 720p frame from its bottom edge, analysed at
        // 3 frames a second (the quiet-gate clip): a wide strip first, then the whole car, then clipped at
        // the top. Each prediction must still overlap the next box well, or the tracker loses the car.
        let boxes = [
            [254.0, 642.0, 756.0, 720.0],
            [205.0, 545.0, 848.0, 717.0],
            [207.0, 452.0, 945.0, 720.0],
            [222.0, 346.0, 1033.0, 720.0],
            [215.0, 253.0, 1004.0, 644.0],
            [220.0, 158.0, 1007.0, 549.0],
            [227.0, 50.0, 1010.0, 447.0],
            [221.0, 0.0, 1008.0, 351.0],
            [232.0, 1.0, 990.0, 250.0],
        ]
        .map(|[x1, y1, x2, y2]| BBox::new(x1, y1, x2, y2));
        let mut k = Kalman::new(&boxes[0]);
        for (i, b) in boxes.iter().enumerate().skip(1) {
            k.predict(1.0);
            let iou = k.bbox().iou(b);
            assert!(i < 2 || iou >= 0.5, "step {i}: predicted {:?} for {b:?}, IoU {iou:.2}", k.bbox());
            k.update(b);
        }
    }

    #[test]
    fn inverts_a_diagonal_matrix() {
        let m = [[2.0, 0.0, 0.0, 0.0], [0.0, 4.0, 0.0, 0.0], [0.0, 0.0, 5.0, 0.0], [0.0, 0.0, 0.0, 10.0]];
        let inv = invert4(&m).unwrap();
        assert!((inv[1][1] - 0.25).abs() < 1e-12 && (inv[3][3] - 0.1).abs() < 1e-12);
    }
}
