//! CTC decoding constrained to plate templates.
//!
//! Design: for each template (a sequence of slots, each allowing a set of classes) a Viterbi pass finds the
//! best CTC alignment whose label sequence fits the template — blanks may sit between characters, a
//! character may span several frames, and two equal neighbours need a blank between them, exactly as in
//! CTC. The best label sequence of every template is then rescored by its full CTC likelihood (the sum over
//! all alignments, not just the best one) plus the template's colour prior, and the highest wins. All of
//! it is synchronous arithmetic on the model's per-frame probabilities: no I/O, deterministic, unit-tested.

/// Per-frame class probabilities, `frames` rows of `classes` values (softmax outputs), class 0 = blank.
#[derive(Debug, Clone, Copy)]
pub struct Probs<'a> {
    pub data: &'a [f32],
    pub frames: usize,
    pub classes: usize,
}

impl<'a> Probs<'a> {
    pub fn new(data: &'a [f32], frames: usize, classes: usize) -> Option<Self> {
        (frames > 0 && classes > 1 && data.len() >= frames * classes).then_some(Self { data, frames, classes })
    }

    #[inline]
    pub fn p(&self, t: usize, c: usize) -> f32 {
        self.data[t * self.classes + c]
    }

    #[inline]
    fn lp(&self, t: usize, c: usize) -> f32 {
        self.p(t, c).max(1e-12).ln()
    }
}

/// The classes each slot of a template allows.
pub type ClassSlots = Vec<Vec<usize>>;

/// The best alignment of one template.
#[derive(Debug, Clone, PartialEq)]
pub struct Alignment {
    /// Class id per slot.
    pub labels: Vec<usize>,
    /// Highest probability of each label over the frames aligned to it.
    pub confidences: Vec<f32>,
    /// The frame where each label has that probability.
    pub frames: Vec<usize>,
    /// Log-probability of the best path.
    pub path_log_prob: f32,
}

#[derive(Clone, Copy)]
enum From {
    Stay,
    /// From the blank before this slot.
    Blank,
    /// From the previous slot's choice `j`.
    Prev(u16),
    Start,
}

/// Viterbi over CTC alignments restricted to `slots`. `None` when the sequence cannot fit the frames.
pub fn best_alignment(probs: &Probs<'_>, slots: &ClassSlots) -> Option<Alignment> {
    let t_len = probs.frames;
    let k_len = slots.len();
    if k_len == 0 || k_len > t_len {
        return None;
    }
    const NEG: f32 = f32::NEG_INFINITY;
    // Character states of all slots in one flat array: slot k's choices start at offset[k].
    let mut offset = Vec::with_capacity(k_len + 1);
    offset.push(0);
    for s in slots {
        offset.push(offset.last().copied().unwrap_or(0) + s.len());
    }
    let n_chars = offset[k_len];
    // blank[k]: blank after k characters; chars[offset[k] + j]: inside slot k with choice j.
    let (mut blank, mut next_blank) = (vec![NEG; k_len + 1], vec![NEG; k_len + 1]);
    let (mut chars, mut next_chars) = (vec![NEG; n_chars], vec![NEG; n_chars]);
    let mut blank_from = vec![From::Start; t_len * (k_len + 1)];
    let mut char_from = vec![From::Start; t_len * n_chars];
    let mut best: Vec<Option<(Ranked, Option<Ranked>)>> = vec![None; k_len];
    // Log-probabilities of the classes every slot allows, for the current frame.
    let mut lp = vec![0f32; n_chars];
    let fill = |t: usize, lp: &mut [f32]| {
        for (k, s) in slots.iter().enumerate() {
            for (j, &c) in s.iter().enumerate() {
                lp[offset[k] + j] = probs.lp(t, c);
            }
        }
    };

    fill(0, &mut lp);
    blank[0] = probs.lp(0, 0);
    chars[..slots[0].len()].copy_from_slice(&lp[..slots[0].len()]);
    for t in 1..t_len {
        fill(t, &mut lp);
        let lb = probs.lp(t, 0);
        // Best choice (and runner-up) of every slot at t-1.
        for (k, b) in best.iter_mut().enumerate() {
            *b = top_two(&chars[offset[k]..offset[k + 1]]);
        }
        for k in 0..=k_len {
            let (mut v, mut from) = (blank[k], From::Stay);
            if k > 0 {
                if let Some(((j, pv), _)) = best[k - 1] {
                    if pv > v {
                        v = pv;
                        from = From::Prev(j as u16);
                    }
                }
            }
            next_blank[k] = v + lb;
            blank_from[t * (k_len + 1) + k] = from;
        }
        for k in 0..k_len {
            for (j, &c) in slots[k].iter().enumerate() {
                let i = offset[k] + j;
                let (mut v, mut from) = (chars[i], From::Stay);
                if blank[k] > v {
                    v = blank[k];
                    from = From::Blank;
                }
                if k > 0 {
                    if let Some(((j1, v1), second)) = best[k - 1] {
                        // Two equal labels in a row need a blank between them.
                        let direct = if slots[k - 1][j1] != c { Some((j1, v1)) } else { second };
                        if let Some((jp, vp)) = direct {
                            if vp > v {
                                v = vp;
                                from = From::Prev(jp as u16);
                            }
                        }
                    }
                }
                next_chars[i] = v + lp[i];
                char_from[t * n_chars + i] = from;
            }
        }
        std::mem::swap(&mut blank, &mut next_blank);
        std::mem::swap(&mut chars, &mut next_chars);
    }

    // End in the last blank or inside the last slot.
    let last = k_len - 1;
    let (end_char_j, end_char_v) = top_two(&chars[offset[last]..offset[k_len]])?.0;
    let end_blank = blank[k_len];
    let path_log_prob = end_char_v.max(end_blank);
    if !path_log_prob.is_finite() {
        return None;
    }
    // Backtrack.
    let mut labels = vec![0usize; k_len];
    let mut confidences = vec![0f32; k_len];
    let mut frames = vec![0usize; k_len];
    let mut state: (bool, usize, usize) = if end_char_v >= end_blank { (true, last, end_char_j) } else { (false, k_len, 0) };
    for t in (0..t_len).rev() {
        let (is_char, k, j) = state;
        if is_char {
            let c = slots[k][j];
            labels[k] = c;
            if probs.p(t, c) >= confidences[k] {
                confidences[k] = probs.p(t, c);
                frames[k] = t;
            }
            state = match char_from[t * n_chars + offset[k] + j] {
                From::Stay | From::Start => (true, k, j),
                From::Blank => (false, k, 0),
                From::Prev(jp) => (true, k - 1, jp as usize),
            };
        } else {
            state = match blank_from[t * (k_len + 1) + k] {
                From::Stay | From::Start | From::Blank => (false, k, 0),
                From::Prev(jp) => (true, k - 1, jp as usize),
            };
        }
    }
    Some(Alignment { labels, confidences, frames, path_log_prob })
}

/// An index and its value.
type Ranked = (usize, f32);

/// The largest value and the runner-up.
fn top_two(v: &[f32]) -> Option<(Ranked, Option<Ranked>)> {
    let mut first: Option<Ranked> = None;
    let mut second: Option<Ranked> = None;
    for (j, &x) in v.iter().enumerate() {
        if first.is_none_or(|(_, f)| x > f) {
            second = first;
            first = Some((j, x));
        } else if second.is_none_or(|(_, s)| x > s) {
            second = Some((j, x));
        }
    }
    first.map(|f| (f, second))
}

/// Log-likelihood of `labels` under CTC (the sum over all alignments), by the forward algorithm in
/// probability space, rescaled every frame so it cannot underflow.
pub fn log_likelihood(probs: &Probs<'_>, labels: &[usize]) -> f32 {
    let mut ext = Vec::with_capacity(labels.len() * 2 + 1);
    ext.push(0usize);
    for &l in labels {
        ext.push(l);
        ext.push(0);
    }
    let s_len = ext.len();
    let p = |t: usize, c: usize| probs.p(t, c).max(1e-12) as f64;
    let mut alpha = vec![0f64; s_len];
    alpha[0] = p(0, ext[0]);
    if s_len > 1 {
        alpha[1] = p(0, ext[1]);
    }
    let mut log_scale = 0f64;
    let mut next = vec![0f64; s_len];
    for t in 0..probs.frames {
        if t > 0 {
            for s in 0..s_len {
                let mut v = alpha[s];
                if s > 0 {
                    v += alpha[s - 1];
                }
                if s > 1 && ext[s] != 0 && ext[s] != ext[s - 2] {
                    v += alpha[s - 2];
                }
                next[s] = v * p(t, ext[s]);
            }
            std::mem::swap(&mut alpha, &mut next);
        }
        let sum: f64 = alpha.iter().sum();
        if sum <= 0.0 {
            return f32::NEG_INFINITY;
        }
        for a in alpha.iter_mut() {
            *a /= sum;
        }
        log_scale += sum.ln();
    }
    let end = if s_len > 1 { alpha[s_len - 1] + alpha[s_len - 2] } else { alpha[0] };
    (log_scale + end.max(1e-300).ln()) as f32
}

/// Plain greedy CTC decoding (argmax per frame, collapse repeats, drop blanks), for diagnostics.
pub fn greedy(probs: &Probs<'_>) -> Vec<usize> {
    let mut out = Vec::new();
    let mut prev = 0;
    for t in 0..probs.frames {
        let row = &probs.data[t * probs.classes..(t + 1) * probs.classes];
        let best = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
        if best != 0 && best != prev {
            out.push(best);
        }
        prev = best;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds probabilities from a per-frame "intended class" with `p` on it and the rest spread evenly.
    fn frames(intended: &[usize], classes: usize, p: f32) -> Vec<f32> {
        let mut v = Vec::new();
        for &c in intended {
            for k in 0..classes {
                v.push(if k == c { p } else { (1.0 - p) / (classes - 1) as f32 });
            }
        }
        v
    }

    #[test]
    fn aligns_a_clean_sequence_with_repeats_separated_by_blanks() {
        // classes: 0 blank, 1..=4; sequence 1 2 2 3 via frames "1 1 0 2 0 2 3 0".
        let data = frames(&[1, 1, 0, 2, 0, 2, 3, 0], 5, 0.9);
        let probs = Probs::new(&data, 8, 5).unwrap();
        let slots = vec![vec![1, 2, 3, 4]; 4];
        let a = best_alignment(&probs, &slots).unwrap();
        assert_eq!(a.labels, vec![1, 2, 2, 3]);
        assert!(a.confidences.iter().all(|c| (*c - 0.9).abs() < 1e-6));
    }

    #[test]
    fn slots_force_the_best_allowed_class() {
        // The model prefers class 4 at frame 1, but slot 1 allows only 2 or 3; class 3 is second best.
        let mut data = frames(&[1, 4, 0], 5, 0.7);
        data[5 + 3] = 0.2;
        data[5 + 2] = 0.01;
        let probs = Probs::new(&data, 3, 5).unwrap();
        let a = best_alignment(&probs, &vec![vec![1], vec![2, 3]]).unwrap();
        assert_eq!(a.labels, vec![1, 3]);
        assert!((a.confidences[1] - 0.2).abs() < 1e-6);
    }

    #[test]
    fn too_many_slots_for_the_frames_is_no_alignment() {
        let data = frames(&[1, 2], 3, 0.9);
        let probs = Probs::new(&data, 2, 3).unwrap();
        assert!(best_alignment(&probs, &vec![vec![1, 2]; 3]).is_none());
    }

    #[test]
    fn likelihood_sums_alignments_and_prefers_the_true_labels() {
        let data = frames(&[1, 0, 2, 2], 3, 0.8);
        let probs = Probs::new(&data, 4, 3).unwrap();
        let good = log_likelihood(&probs, &[1, 2]);
        let bad = log_likelihood(&probs, &[2, 1]);
        assert!(good > bad);
        // Exact for a tiny case: T=1, labels [1] with p(1)=0.8 → 0.8.
        let one = frames(&[1], 3, 0.8);
        let p1 = Probs::new(&one, 1, 3).unwrap();
        assert!((log_likelihood(&p1, &[1]) - 0.8f32.ln()).abs() < 1e-5);
        assert!(log_likelihood(&probs, &[1, 2]) > best_alignment(&probs, &vec![vec![1], vec![2]]).unwrap().path_log_prob - 1e-5);
    }

    #[test]
    fn greedy_collapses_repeats_and_blanks() {
        let data = frames(&[1, 1, 0, 1, 2, 2], 3, 0.9);
        assert_eq!(greedy(&Probs::new(&data, 6, 3).unwrap()), vec![1, 1, 2]);
    }
}
