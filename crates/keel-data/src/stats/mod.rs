//! Two-sample statistics, each a faithful port of the scipy function that
//! Evidently calls, so that results agree to far better than 1e-6.
//!
//! Inputs are already cleaned (no NaN, no ±inf) and, for the sample-based
//! tests, sorted ascending.

pub mod special;

/// Result of the two-sample Kolmogorov–Smirnov test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsResult {
    /// `D = sup |F_r − F_c|`.
    pub statistic: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Whether the exact distribution was used (else the asymptotic one).
    pub exact: bool,
}

/// scipy's `ks_2samp(a, b, alternative='two-sided', method='auto')` on
/// sorted, non-empty samples.
pub fn ks_2samp(a: &[f64], b: &[f64]) -> KsResult {
    let (n1, n2) = (a.len(), b.len());
    assert!(n1 > 0 && n2 > 0, "ks_2samp needs non-empty samples");
    let (fn1, fn2) = (n1 as f64, n2 as f64);
    // Walk the merged order; evaluate both ECDFs after each distinct value
    // (scipy evaluates searchsorted(side='right') at every pooled value,
    // which is the same set of points).
    let (mut i, mut j) = (0usize, 0usize);
    let mut max_s = f64::NEG_INFINITY;
    let mut min_s = f64::INFINITY;
    while i < n1 || j < n2 {
        let v = if j >= n2 || (i < n1 && a[i] <= b[j]) {
            a[i]
        } else {
            b[j]
        };
        while i < n1 && a[i] <= v {
            i += 1;
        }
        while j < n2 && b[j] <= v {
            j += 1;
        }
        let diff = i as f64 / fn1 - j as f64 / fn2;
        max_s = max_s.max(diff);
        min_s = min_s.min(diff);
    }
    let min_s = (-min_s).clamp(0.0, 1.0);
    let d = if min_s > max_s { min_s } else { max_s };
    let g = gcd(n1 as u64, n2 as u64);
    if n1.max(n2) <= 10_000 {
        if let Some((d, p)) = attempt_exact(n1 as u64, n2 as u64, g, d) {
            return KsResult {
                statistic: d,
                p_value: p.clamp(0.0, 1.0),
                exact: true,
            };
        }
    }
    let (m, n) = if fn1 >= fn2 { (fn1, fn2) } else { (fn2, fn1) };
    let en = m * n / (m + n);
    let p = special::kolmogorov_sf(en.round_ties_even() as u64, d);
    KsResult {
        statistic: d,
        p_value: p.clamp(0.0, 1.0),
        exact: false,
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn attempt_exact(n1: u64, n2: u64, g: u64, d: f64) -> Option<(f64, f64)> {
    let lcm = (n1 / g) * n2;
    let h = (d * lcm as f64).round_ties_even() as i64;
    let d = h as f64 / lcm as f64;
    if h == 0 {
        return Some((d, 1.0));
    }
    let prob = if n1 == n2 {
        prob_outside_square(n1 as i64, h)
    } else {
        outer_prob_inside_method(n1 as i64, n2 as i64, g as i64, h)
    };
    if !prob.is_finite() || !(0.0..=1.0).contains(&prob) {
        return None;
    }
    Some((d, prob))
}

/// scipy `_compute_prob_outside_square(n, h)`.
fn prob_outside_square(n: i64, h: i64) -> f64 {
    let mut p = 0.0;
    let mut k = (n as f64 / h as f64).floor() as i64;
    while k >= 0 {
        let mut p1 = 1.0;
        for j in 0..h {
            p1 = (n - k * h - j) as f64 * p1 / (n + k * h + j + 1) as f64;
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// scipy `_compute_outer_prob_inside_method(m, n, g, h)` (Hodges' inside
/// method with Viehmann's 1 − p recursion).
fn outer_prob_inside_method(m: i64, n: i64, g: i64, h: i64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let mg = m / g;
    let ng = n / g;
    let mut minj: i64 = 0;
    let mut maxj: i64 = ((h as f64 / mg as f64).ceil() as i64).min(n + 1);
    let mut curlen = maxj - minj;
    let len_a = (2 * maxj + 2).min(n + 1) as usize;
    let mut a = vec![1.0f64; len_a];
    for x in a.iter_mut().take(maxj as usize).skip(minj as usize) {
        *x = 0.0;
    }
    for i in 1..=m {
        let lastminj = minj;
        let lastlen = curlen;
        minj = ((((ng * i - h) as f64) / mg as f64).floor() as i64 + 1).max(0);
        minj = minj.min(n);
        maxj = ((((ng * i + h) as f64) / mg as f64).ceil() as i64).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        for jj in 0..(maxj - minj) {
            let j = jj + minj;
            val = (a[(jj + minj - lastminj) as usize] * i as f64 + val * j as f64) / (i + j) as f64;
            a[jj as usize] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let from = (maxj - minj) as usize;
            let to = ((maxj - minj + (lastlen - curlen)) as usize).min(a.len());
            for x in &mut a[from..to] {
                *x = 1.0;
            }
        }
    }
    a[(maxj - minj - 1) as usize]
}

/// Pearson's chi-square test of `observed` against `expected` counts
/// (scipy `chisquare(f_obs, f_exp)`): `(statistic, p_value)` with
/// `k − 1` degrees of freedom. An expected count of zero with a non-zero
/// observation makes the statistic infinite and the p-value 0, as in scipy.
pub fn chisquare(observed: &[f64], expected: &[f64]) -> (f64, f64) {
    let stat: f64 = observed
        .iter()
        .zip(expected)
        .map(|(o, e)| (o - e) * (o - e) / e)
        .sum();
    let dof = observed.len() as f64 - 1.0;
    let p = if stat.is_nan() || dof <= 0.0 {
        f64::NAN
    } else {
        special::gamma_q(dof / 2.0, stat / 2.0)
    };
    (stat, p)
}

/// Two-proportion Z-test as Evidently computes it: `(z, p)` with
/// `p = 2 (1 − Φ(|z|))`. `k1`, `k2` are the counts of "ones" among `n1`,
/// `n2` observations.
pub fn proportions_z_test(k1: f64, n1: f64, k2: f64, n2: f64) -> (f64, f64) {
    let p1 = k1 / n1;
    let p2 = k2 / n2;
    let pp = (p1 * n1 + p2 * n2) / (n1 + n2);
    let z = (p1 - p2) / (pp * (1.0 - pp) * (1.0 / n1 + 1.0 / n2)).sqrt();
    let p = 2.0 * (1.0 - special::ndtr(z.abs()));
    (z, p)
}

/// First Wasserstein distance between two sorted samples (scipy
/// `wasserstein_distance(u, v)`): `∫ |F_u − F_v| dx`.
pub fn wasserstein(u: &[f64], v: &[f64]) -> f64 {
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut prev: Option<f64> = None;
    let mut total = 0.0;
    // Between consecutive pooled values x_k < x_{k+1}, both ECDFs are
    // constant; add |F_u − F_v| · (x_{k+1} − x_k).
    while i < u.len() || j < v.len() {
        let x = if j >= v.len() || (i < u.len() && u[i] <= v[j]) {
            u[i]
        } else {
            v[j]
        };
        if let Some(p) = prev {
            let fu = i as f64 / nu;
            let fv = j as f64 / nv;
            total += (fu - fv).abs() * (x - p);
        }
        while i < u.len() && u[i] <= x {
            i += 1;
        }
        while j < v.len() && v[j] <= x {
            j += 1;
        }
        prev = Some(x);
    }
    total
}

/// Population standard deviation (numpy `np.std`, ddof = 0), two-pass.
pub fn population_std(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mean = pairwise_sum(x) / n;
    let dev: Vec<f64> = x.iter().map(|v| (v - mean) * (v - mean)).collect();
    (pairwise_sum(&dev) / n).sqrt()
}

/// numpy-style pairwise summation (blocks of 128 summed with 8
/// accumulators), so large sums round like numpy's.
pub fn pairwise_sum(x: &[f64]) -> f64 {
    let n = x.len();
    if n < 8 {
        return x.iter().fold(-0.0, |a, b| a + b);
    }
    if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&x[..8]);
        let mut i = 8;
        while i + 8 <= n {
            for k in 0..8 {
                r[k] += x[i + k];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for v in &x[i..] {
            res += v;
        }
        return res;
    }
    let mut n2 = n / 2;
    n2 -= n2 % 8;
    pairwise_sum(&x[..n2]) + pairwise_sum(&x[n2..])
}

/// Jensen–Shannon distance (scipy `spatial.distance.jensenshannon`, base
/// e): both vectors are renormalized to sum 1 first.
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let sp: f64 = p.iter().sum();
    let sq: f64 = q.iter().sum();
    let mut left = 0.0;
    let mut right = 0.0;
    for (a, b) in p.iter().zip(q) {
        let (a, b) = (a / sp, b / sq);
        let m = (a + b) / 2.0;
        left += rel_entr(a, m);
        right += rel_entr(b, m);
    }
    ((left + right) / 2.0).sqrt()
}

fn rel_entr(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// Population Stability Index over (zero-filled) proportions:
/// `Σ (r − c) ln(r / c)`.
pub fn psi(r: &[f64], c: &[f64]) -> f64 {
    r.iter().zip(c).map(|(r, c)| (r - c) * (r / c).ln()).sum()
}

/// Kullback–Leibler divergence `KL(r ‖ c)` after renormalization (scipy
/// `stats.entropy(r, c)`).
pub fn kl_divergence(r: &[f64], c: &[f64]) -> f64 {
    let sr: f64 = r.iter().sum();
    let sc: f64 = c.iter().sum();
    r.iter().zip(c).map(|(a, b)| rel_entr(a / sr, b / sc)).sum()
}

/// Evidently's zero fill for PSI/KL: zeros are replaced by `m / 1e6` when
/// the smallest non-zero proportion `m ≤ 1e-4`, else by `1e-4`.
pub fn fill_zeroes(v: &mut [f64]) {
    let m = v
        .iter()
        .copied()
        .filter(|x| *x != 0.0)
        .fold(f64::INFINITY, f64::min);
    if !m.is_finite() {
        return;
    }
    let fill = if m <= 1e-4 { m / 1e6 } else { 1e-4 };
    for x in v.iter_mut() {
        if *x == 0.0 {
            *x = fill;
        }
    }
}

/// numpy's `histogram_bin_edges(x, bins="sturges")` for a pooled sample of
/// `n` values with the given min and max. `integer` applies numpy's rule
/// that integer data never gets bins narrower than 1.
pub fn sturges_edges(min: f64, max: f64, n: usize, integer: bool) -> Vec<f64> {
    let (mut first, mut last) = (min, max);
    let ptp = max - min;
    if first == last {
        first -= 0.5;
        last += 0.5;
    }
    let mut width = ptp / ((n as f64).log2() + 1.0);
    let bins = if width != 0.0 {
        if integer && width < 1.0 {
            width = 1.0;
        }
        ((last - first) / width).ceil() as usize
    } else {
        1
    };
    linspace(first, last, bins + 1)
}

/// numpy `linspace(start, stop, num)` (endpoint included, same rounding).
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let div = (num - 1) as f64;
    let delta = stop - start;
    let step = delta / div;
    let mut out: Vec<f64> = if step == 0.0 {
        (0..num).map(|i| (i as f64 / div) * delta + start).collect()
    } else {
        (0..num).map(|i| i as f64 * step + start).collect()
    };
    out[num - 1] = stop;
    out
}

/// numpy `histogram(sorted, edges)[0]`: bins are `[e_i, e_{i+1})`, the last
/// one closed. `sorted` must be ascending.
pub fn histogram_sorted(sorted: &[f64], edges: &[f64]) -> Vec<u64> {
    let nb = edges.len() - 1;
    let mut idx: Vec<usize> = edges[..nb]
        .iter()
        .map(|e| sorted.partition_point(|v| v < e))
        .collect();
    idx.push(sorted.partition_point(|v| v <= &edges[nb]));
    idx.windows(2).map(|w| (w[1] - w[0]) as u64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * a.abs().max(b.abs())
    }

    #[test]
    fn ks_exact_small_samples_match_hand_enumeration() {
        // n = m = 2, D = 1 (complete separation): of the C(4,2) = 6
        // equally likely orderings, 2 separate completely, so p = 1/3.
        let r = ks_2samp(&[1.0, 2.0], &[3.0, 4.0]);
        assert_eq!(r.statistic, 1.0);
        assert!(close(r.p_value, 2.0 / 6.0, 1e-12));
        assert!(r.exact);
        // m = 3, n = 2, complete separation: 2 of C(5,2) = 10 orderings.
        let r = ks_2samp(&[1.0, 2.0, 3.0], &[4.0, 5.0]);
        assert!(close(r.p_value, 0.2, 1e-12));
        // Identical samples: D = 0, p = 1.
        let r = ks_2samp(&[1.0, 2.0, 2.0], &[1.0, 2.0, 2.0]);
        assert_eq!((r.statistic, r.p_value), (0.0, 1.0));
    }

    #[test]
    fn ks_statistic_handles_ties() {
        // F_a jumps to 1 at 1; F_b is 1/2 at 1 and 1 at 2 → D = 1/2.
        let r = ks_2samp(&[1.0, 1.0], &[1.0, 2.0]);
        assert_eq!(r.statistic, 0.5);
    }

    #[test]
    fn chisquare_known_value() {
        // Uniform expectation, observed (10, 20, 30) vs (20, 20, 20):
        // χ² = (100 + 0 + 100) / 20 = 10, dof 2 → p = e^{-5}.
        let (s, p) = chisquare(&[10.0, 20.0, 30.0], &[20.0, 20.0, 20.0]);
        assert_eq!(s, 10.0);
        assert!(close(p, (-5.0f64).exp(), 1e-13));
        // Unseen category in the expectation → infinite statistic, p = 0.
        let (s, p) = chisquare(&[1.0, 1.0], &[2.0, 0.0]);
        assert!(s.is_infinite());
        assert_eq!(p, 0.0);
    }

    #[test]
    fn z_test_known_value() {
        // p1 = 0.5, p2 = 0.3, n = 100 each: P = 0.4,
        // z = 0.2 / sqrt(0.24 * 0.02) = 2.886751..., p = 0.0038924...
        let (z, p) = proportions_z_test(50.0, 100.0, 30.0, 100.0);
        assert!(close(z, 0.2 / (0.24f64 * 0.02).sqrt(), 1e-14));
        assert!(close(p, 0.003_892_417_122_778_9, 1e-9), "{p}");
    }

    #[test]
    fn wasserstein_known_values() {
        // Shifting a sample by c moves it by exactly c.
        let u = [0.0, 1.0, 3.0];
        let v = [2.0, 3.0, 5.0];
        assert!(close(wasserstein(&u, &v), 2.0, 1e-15));
        // Point masses at 0 and 1 with weights 1/2 vs 1/4: |F diff| = 1/4 on [0,1).
        assert!(close(
            wasserstein(&[0.0, 1.0], &[0.0, 1.0, 1.0, 1.0]),
            0.25,
            1e-15
        ));
    }

    #[test]
    fn jensen_shannon_and_psi_known_values() {
        // Disjoint supports: JS distance = sqrt(ln 2).
        assert!(close(
            jensen_shannon(&[1.0, 0.0], &[0.0, 1.0]),
            special::LN2.sqrt(),
            1e-15
        ));
        assert_eq!(jensen_shannon(&[0.2, 0.8], &[0.2, 0.8]), 0.0);
        // PSI of (0.5,0.5) vs (0.25,0.75) = 0.25 ln 2 + (-0.25) ln(2/3).
        let expect = 0.25 * 2f64.ln() - 0.25 * (2.0f64 / 3.0).ln();
        assert!(close(psi(&[0.5, 0.5], &[0.25, 0.75]), expect, 1e-15));
        // KL renormalizes.
        assert!(close(
            kl_divergence(&[1.0, 1.0], &[1.0, 3.0]),
            psi_kl_ref(),
            1e-15
        ));
        let mut v = [0.0, 0.5, 0.5];
        fill_zeroes(&mut v);
        assert_eq!(v[0], 1e-4);
        let mut v = [0.0, 0.00005, 0.99995];
        fill_zeroes(&mut v);
        assert_eq!(v[0], 0.00005 / 1e6);
    }

    fn psi_kl_ref() -> f64 {
        0.5 * (0.5f64 / 0.25).ln() + 0.5 * (0.5f64 / 0.75).ln()
    }

    #[test]
    fn sturges_edges_and_histogram_follow_numpy() {
        // 8 values → log2(8) + 1 = 4 bins over [0, 8].
        let edges = sturges_edges(0.0, 8.0, 8, false);
        assert_eq!(edges, vec![0.0, 2.0, 4.0, 6.0, 8.0]);
        let h = histogram_sorted(&[0.0, 1.0, 2.0, 2.0, 5.0, 8.0], &edges);
        assert_eq!(h, vec![2, 2, 1, 1]);
        // Constant data: one bin [x − 0.5, x + 0.5].
        assert_eq!(sturges_edges(3.0, 3.0, 10, false), vec![2.5, 3.5]);
        // Integer data never gets bins narrower than 1.
        assert_eq!(sturges_edges(0.0, 3.0, 1000, true).len(), 4);
    }

    #[test]
    fn pairwise_sum_is_accurate() {
        let x = vec![0.1; 10_000];
        assert!(close(pairwise_sum(&x), 1000.0, 1e-13));
        assert!(close(
            population_std(&[1.0, 2.0, 3.0, 4.0]),
            1.25f64.sqrt(),
            1e-15
        ));
    }
}
