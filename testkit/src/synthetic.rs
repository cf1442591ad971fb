//! Deterministic made-up data for benchmarks: plates in the mainland layout, and the median of timings.

const PROVINCES: [char; 8] = ['苏', '京', '皖', '鄂', '浙', '粤', '川', '青'];
const LETTERS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const ALNUM: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// The `i`-th pseudo-random plate: a province, a letter, five letters or digits (`苏E5K2J9`); the same `i`
/// gives the same plate on every run.
pub fn plate(i: usize) -> String {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let mut p = String::new();
    p.push(PROVINCES[next(PROVINCES.len())]);
    p.push(LETTERS[next(LETTERS.len())] as char);
    for _ in 0..5 {
        p.push(ALNUM[next(ALNUM.len())] as char);
    }
    p
}

/// The median of some timings (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
