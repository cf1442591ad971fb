//! Minimum-cost assignment (the Hungarian method, shortest augmenting paths with potentials), for matching
//! tracks to detections. Deterministic: ties resolve to the lowest indices.

/// Cost that forbids a pairing.
pub const FORBIDDEN: f64 = 1e9;

/// Assigns rows to columns minimising total cost; pairs whose cost reaches `max_cost` are dropped from
/// the result. `costs[r][c]`; rows and columns may differ in number.
pub fn assign(costs: &[Vec<f64>], max_cost: f64) -> Vec<(usize, usize)> {
    let rows = costs.len();
    let cols = costs.first().map_or(0, Vec::len);
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    // The algorithm wants rows ≤ columns; transpose if needed.
    let transposed = rows > cols;
    let (n, m) = if transposed { (cols, rows) } else { (rows, cols) };
    let cost = |i: usize, j: usize| if transposed { costs[j][i] } else { costs[i][j] };

    // 1-based arrays as in the classic formulation; u, v potentials; p[j] row matched to column j.
    let inf = f64::INFINITY;
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; m + 1];
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![inf; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = inf;
            let mut j1 = 0;
            for j in 1..=m {
                if !used[j] {
                    let cur = cost(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut out: Vec<(usize, usize)> =
        (1..=m).filter(|&j| p[j] != 0).map(|j| if transposed { (j - 1, p[j] - 1) } else { (p[j] - 1, j - 1) }).filter(|&(r, c)| costs[r][c] < max_cost).collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cheapest_assignment_not_the_greedy_one() {
        // Greedy would take (0,0)=1 and then (1,1)=10; the optimum is (0,1)+(1,0) = 2+2.
        let costs = vec![vec![1.0, 2.0], vec![2.0, 10.0]];
        assert_eq!(assign(&costs, 100.0), vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn handles_more_rows_than_columns_and_gating() {
        let costs = vec![vec![0.9], vec![0.1], vec![0.5]];
        assert_eq!(assign(&costs, 1.0), vec![(1, 0)]);
        assert_eq!(assign(&[vec![FORBIDDEN, FORBIDDEN]], 1.0), vec![]);
    }

    #[test]
    fn empty_inputs_assign_nothing() {
        assert!(assign(&[], 1.0).is_empty());
        assert!(assign(&[vec![]], 1.0).is_empty());
    }
}
