//! Bounded-memory summaries for profiling: distinct counts, quantiles and
//! frequent values. Each is exact while the data is small and switches to a
//! sketch with a documented error bound when it is not.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// A 64-bit value mixed into a uniform 64-bit hash: the splitmix64
/// finalizer, a bijection, so distinct values never collide.
pub fn hash_u64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A deterministic 64-bit hash of bytes (XXH64, seed 0), so distinct
/// counts are reproducible across runs and machines.
pub fn hash_bytes(b: &[u8]) -> u64 {
    twox_hash::XxHash64::oneshot(0, b)
}

/// The hash of a number as the profile and `unique` see it: integers by
/// value, floats by bits with -0.0 and 0.0 as one value.
pub fn hash_f64(v: f64) -> u64 {
    hash_u64((v + 0.0).to_bits())
}

/// A `Hasher` for keys that are already uniform 64-bit hashes.
#[derive(Default)]
pub struct PreHashed(u64);

impl Hasher for PreHashed {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = hash_u64(self.0 ^ hash_bytes(bytes));
    }
    fn write_u64(&mut self, h: u64) {
        self.0 = h;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A fast `Hasher` for map keys (integers, strings): no DoS resistance is
/// needed for counting values of a file.
#[derive(Default)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = hash_u64(self.0 ^ hash_bytes(bytes));
    }
    fn write_u8(&mut self, b: u8) {
        self.0 ^= b as u64;
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = hash_u64(self.0 ^ v);
    }
    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A set of 64-bit hashes.
pub type HashSet64 = HashSet<u64, BuildHasherDefault<PreHashed>>;

/// Distinct count: exact up to [`DistinctCounter::EXACT_LIMIT`] values
/// (a set of 64-bit hashes; a collision among 10⁵ values has probability
/// below 3·10⁻¹⁰, and none is possible among numbers, whose hash is a
/// bijection), then HyperLogLog with 2¹⁴ registers (standard error
/// 1.04/√16384 ≈ 0.81 %). The registers are built from the exact set when
/// it overflows, which gives the same registers as feeding them from the
/// first value on.
#[derive(Debug, Clone)]
pub struct DistinctCounter {
    exact: Option<HashSet64>,
    registers: Vec<u8>,
}

impl DistinctCounter {
    /// Values counted exactly before switching to HyperLogLog.
    pub const EXACT_LIMIT: usize = 100_000;
    const P: u32 = 14;

    /// An empty counter.
    pub fn new() -> DistinctCounter {
        DistinctCounter {
            exact: Some(Default::default()),
            registers: Vec::new(),
        }
    }

    /// An empty counter that skips the exact phase: for a part of a
    /// stream already known to exceed the limit.
    pub fn new_estimating() -> DistinctCounter {
        DistinctCounter {
            exact: None,
            registers: vec![0; 1 << Self::P],
        }
    }

    /// Whether the count is still exact.
    pub fn is_exact(&self) -> bool {
        self.exact.is_some()
    }

    fn register(registers: &mut [u8], h: u64) {
        let idx = (h >> (64 - Self::P)) as usize;
        let rank = ((h << Self::P) | (1 << (Self::P - 1))).leading_zeros() as u8 + 1;
        if rank > registers[idx] {
            registers[idx] = rank;
        }
    }

    fn start_estimating(&mut self) {
        if let Some(set) = self.exact.take() {
            self.registers = vec![0; 1 << Self::P];
            for h in set {
                Self::register(&mut self.registers, h);
            }
        }
    }

    /// Makes room for `additional` values while the count is exact (no
    /// effect on the count).
    pub fn reserve(&mut self, additional: usize) {
        if let Some(set) = &mut self.exact {
            set.reserve(additional.min(Self::EXACT_LIMIT + 1 - set.len().min(Self::EXACT_LIMIT)));
        }
    }

    /// Adds a value by its hash.
    #[inline]
    pub fn insert_hash(&mut self, h: u64) {
        match &mut self.exact {
            Some(set) => {
                if set.insert(h) && set.len() > Self::EXACT_LIMIT {
                    self.start_estimating();
                }
            }
            None => Self::register(&mut self.registers, h),
        }
    }

    /// Adds the values counted by `other`.
    pub fn merge(&mut self, other: DistinctCounter) {
        match (&mut self.exact, other.exact) {
            (Some(set), Some(theirs)) => {
                set.extend(theirs);
                if set.len() > Self::EXACT_LIMIT {
                    self.start_estimating();
                }
            }
            (None, Some(theirs)) => {
                for h in theirs {
                    Self::register(&mut self.registers, h);
                }
            }
            (_, None) => {
                self.start_estimating();
                for (r, o) in self.registers.iter_mut().zip(&other.registers) {
                    *r = (*r).max(*o);
                }
            }
        }
    }

    /// `(estimate, exact)`.
    pub fn estimate(&self) -> (u64, bool) {
        if let Some(set) = &self.exact {
            return (set.len() as u64, true);
        }
        let m = (1u64 << Self::P) as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let mut sum = 0.0;
        let mut zeros = 0;
        for &r in &self.registers {
            sum += 2f64.powi(-(r as i32));
            if r == 0 {
                zeros += 1;
            }
        }
        let e = alpha * m * m / sum;
        let e = if e <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            e
        };
        (e.round() as u64, false)
    }
}

impl Default for DistinctCounter {
    fn default() -> Self {
        DistinctCounter::new()
    }
}

/// Quantile summary: exact (all values kept) up to
/// [`QuantileSketch::EXACT_LIMIT`] values, then a KLL-style compactor
/// hierarchy with `K` = 4096 items per level. Each compaction at level `h`
/// sorts the level (at least `K` items), keeps every other item (random
/// offset) with weight `2^(h+1)`, which shifts any rank by at most `2^h`;
/// a level compacts at most `n / (K·2^h)` times, so over all levels the
/// rank error is at most `⌈log₂(n/K)⌉ / K · n` (≈ 0.4 % of n at 10⁹ rows)
/// and typically far smaller because the random offsets cancel.
///
/// Parts of a stream summarized separately (in parallel) merge with
/// [`QuantileSketch::merge`]; a part compacts itself in
/// [`QuantileSketch::seal`] so the merge has little left to do. The result
/// depends only on the sequence of parts, not on how they were scheduled.
#[derive(Debug, Clone)]
pub struct QuantileSketch {
    levels: Vec<Vec<f64>>,
    n: u64,
    exact: bool,
    rng: u64,
    /// A sealed exact part: its values compacted, for a merge into a
    /// sketch that is no longer exact.
    compacted: Option<Vec<Vec<f64>>>,
}

impl QuantileSketch {
    /// Values kept exactly.
    pub const EXACT_LIMIT: usize = 200_000;
    const K: usize = 4096;

    /// An empty sketch.
    pub fn new() -> QuantileSketch {
        QuantileSketch {
            levels: vec![Vec::new()],
            n: 0,
            exact: true,
            rng: 0x9e37_79b9_7f4a_7c15,
            compacted: None,
        }
    }

    /// Adds a (finite) value.
    #[inline]
    pub fn insert(&mut self, x: f64) {
        self.n += 1;
        self.levels[0].push(x);
        if self.exact {
            if self.levels[0].len() > Self::EXACT_LIMIT {
                self.leave_exact();
            }
        } else if self.levels[0].len() >= Self::K {
            self.compact(0);
        }
    }

    /// Leaves exact mode: the values kept so far become compactor levels.
    fn leave_exact(&mut self) {
        if !self.exact {
            return;
        }
        self.exact = false;
        let mut values = std::mem::take(&mut self.levels[0]);
        sort_f64(&mut values);
        self.levels = compact_sorted(values, &mut self.rng);
        self.compacted = None;
    }

    /// Ends a part: an exact part also keeps its values compacted (sorting
    /// here, in parallel with other parts, rather than in the merge). Not
    /// needed for a part that [`QuantileSketch::merges_exactly`]: a merge
    /// seals a part that was not sealed when it needs to, with the same
    /// result.
    pub fn seal(&mut self) {
        if self.exact && self.n as usize >= Self::K && self.compacted.is_none() {
            let mut values = self.levels[0].clone();
            sort_f64(&mut values);
            // The offsets' coin flips are seeded by the content, so parts
            // do not all round the same way.
            let mut rng = hash_u64(self.n ^ values[values.len() / 2].to_bits()) | 1;
            self.compacted = Some(compact_sorted(values, &mut rng));
        }
    }

    /// Whether a part of `n` values merged now would keep its values as
    /// they are (both still exact).
    pub fn merges_exactly(&self, n: u64) -> bool {
        self.exact && self.n + n <= Self::EXACT_LIMIT as u64
    }

    /// Adds the values summarized by `other` (a later part of the stream).
    pub fn merge(&mut self, mut other: QuantileSketch) {
        if other.exact && self.merges_exactly(other.n) {
            self.n += other.n;
            self.levels[0].extend_from_slice(&other.levels[0]);
            return;
        }
        self.leave_exact();
        other.seal();
        self.n += other.n;
        let levels = match other.compacted {
            Some(c) if other.exact => c,
            _ => other.levels,
        };
        for (h, items) in levels.into_iter().enumerate() {
            if self.levels.len() <= h {
                self.levels.push(Vec::new());
            }
            self.levels[h].extend(items);
        }
        let mut h = 0;
        while h < self.levels.len() {
            if self.levels[h].len() >= Self::K {
                self.compact(h);
            }
            h += 1;
        }
    }

    fn coin(&mut self) -> usize {
        xorshift(&mut self.rng)
    }

    fn compact(&mut self, h: usize) {
        if self.levels.len() == h + 1 {
            self.levels.push(Vec::new());
        }
        let mut items = std::mem::take(&mut self.levels[h]);
        // A level is mostly a few sorted runs (compacted parts, promoted
        // items) one after the other: the stable sort finds and merges
        // them in linear time. Equal items are identical, so the order is
        // the same as from any other sort.
        items.sort_by(f64::total_cmp);
        let keep_last = if items.len() % 2 == 1 {
            items.pop()
        } else {
            None
        };
        let off = self.coin();
        let promoted: Vec<f64> = items.iter().skip(off).step_by(2).copied().collect();
        self.levels[h + 1].extend(promoted);
        if let Some(x) = keep_last {
            self.levels[h].push(x);
        }
        if self.levels[h + 1].len() >= Self::K {
            self.compact(h + 1);
        }
    }

    /// Number of values inserted.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Whether quantiles are exact.
    pub fn is_exact(&self) -> bool {
        self.exact
    }

    /// Worst-case rank error as a fraction of n (0 when exact).
    pub fn rank_error_bound(&self) -> f64 {
        if self.exact {
            0.0
        } else {
            (self.levels.len() - 1) as f64 / Self::K as f64
        }
    }

    /// Sorted `(value, weight)` items.
    fn weighted(&self) -> Vec<(f64, u64)> {
        let mut items: Vec<(f64, u64)> = self
            .levels
            .iter()
            .enumerate()
            .flat_map(|(h, l)| l.iter().map(move |x| (*x, 1u64 << h)))
            .collect();
        items.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        items
    }

    /// Quantiles at `qs` (each in [0, 1]). Exact mode interpolates
    /// linearly between order statistics (numpy/pandas default); sketch
    /// mode returns the item at the weighted rank.
    pub fn quantiles(&self, qs: &[f64]) -> Vec<f64> {
        if self.n == 0 {
            return vec![f64::NAN; qs.len()];
        }
        if self.exact {
            let mut v = self.levels[0].clone();
            sort_f64(&mut v);
            return qs
                .iter()
                .map(|q| {
                    let pos = q * (v.len() - 1) as f64;
                    let lo = pos.floor() as usize;
                    let hi = pos.ceil() as usize;
                    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
                })
                .collect();
        }
        let items = self.weighted();
        let total: u64 = items.iter().map(|i| i.1).sum();
        qs.iter()
            .map(|q| {
                let target = (q * total as f64).ceil().max(1.0) as u64;
                let mut acc = 0;
                for (v, w) in &items {
                    acc += w;
                    if acc >= target {
                        return *v;
                    }
                }
                items[items.len() - 1].0
            })
            .collect()
    }

    /// Counts per bin of `edges` (`[e_i, e_{i+1})`, last bin closed),
    /// estimated from the sketch weights when not exact.
    pub fn histogram(&self, edges: &[f64]) -> Vec<u64> {
        let items = self.weighted();
        let nb = edges.len() - 1;
        let mut counts = vec![0u64; nb];
        for (v, w) in items {
            let i = edges.partition_point(|e| *e <= v);
            let bin = if i == 0 {
                continue;
            } else if i > nb {
                if v <= edges[nb] {
                    nb - 1
                } else {
                    continue;
                }
            } else {
                i - 1
            };
            counts[bin] += w;
        }
        counts
    }
}

/// Sorts `v` in `f64::total_cmp` order: a least-significant-digit radix
/// sort on keys that compare as unsigned integers as `total_cmp` compares
/// the floats (so the result is exactly what `sort_unstable_by` gives),
/// several times faster than comparison sorting on the thousands of values
/// the quantile sketch sorts at a time.
pub fn sort_f64(v: &mut [f64]) {
    const SMALL: usize = 256;
    if v.len() <= SMALL {
        v.sort_unstable_by(f64::total_cmp);
        return;
    }
    // Negative values: all bits flipped; others: the sign bit set.
    let key = |x: f64| {
        let b = x.to_bits();
        b ^ (((b as i64 >> 63) as u64) | (1 << 63))
    };
    let mut keys: Vec<u64> = v.iter().map(|&x| key(x)).collect();
    let mut counts = [[0usize; 256]; 8];
    for &k in &keys {
        for (d, c) in counts.iter_mut().enumerate() {
            c[((k >> (8 * d)) & 0xff) as usize] += 1;
        }
    }
    let mut other = vec![0u64; keys.len()];
    for (d, c) in counts.iter().enumerate() {
        // A digit all keys share leaves the order as it is.
        if c.contains(&keys.len()) {
            continue;
        }
        let mut next = [0usize; 256];
        let mut sum = 0;
        for (slot, &n) in next.iter_mut().zip(c) {
            *slot = sum;
            sum += n;
        }
        for &k in &keys {
            let b = ((k >> (8 * d)) & 0xff) as usize;
            other[next[b]] = k;
            next[b] += 1;
        }
        std::mem::swap(&mut keys, &mut other);
    }
    for (x, k) in v.iter_mut().zip(keys) {
        let b = if k >> 63 == 1 { k ^ (1 << 63) } else { !k };
        *x = f64::from_bits(b);
    }
}

fn xorshift(rng: &mut u64) -> usize {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    (*rng & 1) as usize
}

/// Compactor levels for sorted values: level `h` keeps at most one item
/// (the odd one out), everything else moves up while a level holds `K` or
/// more. Each step is one compaction of a sorted buffer, within the error
/// bound of [`QuantileSketch`].
fn compact_sorted(sorted: Vec<f64>, rng: &mut u64) -> Vec<Vec<f64>> {
    let mut levels = Vec::new();
    let mut cur = sorted;
    while cur.len() >= QuantileSketch::K {
        let keep_last = if cur.len() % 2 == 1 { cur.pop() } else { None };
        let off = xorshift(rng);
        let promoted: Vec<f64> = cur.iter().skip(off).step_by(2).copied().collect();
        levels.push(keep_last.into_iter().collect());
        cur = promoted;
    }
    levels.push(cur);
    levels
}

impl Default for QuantileSketch {
    fn default() -> Self {
        QuantileSketch::new()
    }
}

/// Frequent values: exact counts while at most `capacity` distinct values
/// have been seen, then Misra–Gries (each reported count is a lower bound,
/// at most `error_bound()` below the true count).
#[derive(Debug, Clone)]
pub struct FrequentItems<K> {
    counts: HashMap<K, u64, BuildHasherDefault<FastHasher>>,
    capacity: usize,
    error: u64,
}

impl<K: Hash + Eq + Clone + Ord> FrequentItems<K> {
    /// Tracks up to `capacity` values exactly.
    pub fn new(capacity: usize) -> FrequentItems<K> {
        FrequentItems {
            counts: HashMap::default(),
            capacity,
            error: 0,
        }
    }

    /// Counts one occurrence of `v`.
    #[inline]
    pub fn insert<Q>(&mut self, v: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.insert_counted(v, 1);
    }

    /// Counts `n` occurrences of `v`: the same as `n` calls of
    /// [`FrequentItems::insert`] when no pruning falls between them, which
    /// holds while at most `2 * capacity` values are held.
    pub fn insert_counted<Q>(&mut self, v: &Q, n: u64)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(c) = self.counts.get_mut(v) {
            *c += n;
            return;
        }
        self.counts.insert(v.to_owned(), n);
        if self.counts.len() > 2 * self.capacity {
            self.prune();
        }
    }

    /// Adds the counts of `other` (Misra–Gries summaries merge by adding
    /// counters and pruning; the error bounds add up).
    pub fn merge(&mut self, other: FrequentItems<K>) {
        self.error += other.error;
        if self.counts.is_empty() {
            self.counts = other.counts;
            return;
        }
        for (k, c) in other.counts {
            *self.counts.entry(k).or_insert(0) += c;
        }
        if self.counts.len() > 2 * self.capacity {
            self.prune();
        }
    }

    fn prune(&mut self) {
        let mut c: Vec<u64> = self.counts.values().copied().collect();
        let k = self.capacity;
        c.select_nth_unstable_by(k, |a, b| b.cmp(a));
        let t = c[k];
        self.error += t;
        self.counts.retain(|_, v| {
            *v = v.saturating_sub(t);
            *v > 0
        });
    }

    /// The `n` most frequent values with their counts, most frequent first
    /// (ties broken by value).
    pub fn top(&self, n: usize) -> Vec<(K, u64)> {
        let mut v: Vec<(K, u64)> = self.counts.iter().map(|(k, c)| (k.clone(), *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }

    /// Upper bound on how much any reported count is below the truth.
    pub fn error_bound(&self) -> u64 {
        self.error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_exact_then_estimated_within_three_sigma() {
        let mut d = DistinctCounter::new();
        for i in 0..1000u64 {
            d.insert_hash(hash_u64(i % 700));
        }
        assert_eq!(d.estimate(), (700, true));
        let mut d = DistinctCounter::new();
        let n = 1_000_000u64;
        for i in 0..n {
            d.insert_hash(hash_u64(i));
        }
        let (e, exact) = d.estimate();
        assert!(!exact);
        let rel = (e as f64 - n as f64).abs() / n as f64;
        assert!(rel < 3.0 * 0.0081, "HLL estimate {e} for {n}");
    }

    #[test]
    fn quantiles_exact_and_sketched() {
        let mut q = QuantileSketch::new();
        for i in 1..=5 {
            q.insert(i as f64);
        }
        assert_eq!(
            q.quantiles(&[0.0, 0.25, 0.5, 1.0]),
            vec![1.0, 2.0, 3.0, 5.0]
        );
        // 2 million values 0..2e6 in a scrambled order: the median must be
        // within the documented rank bound.
        let mut q = QuantileSketch::new();
        let n = 2_000_000u64;
        for i in 0..n {
            q.insert(((i * 7_919) % n) as f64);
        }
        assert!(!q.is_exact());
        let bound = q.rank_error_bound() * n as f64;
        for (p, got) in [0.1, 0.5, 0.9].iter().zip(q.quantiles(&[0.1, 0.5, 0.9])) {
            assert!(
                (got - p * n as f64).abs() <= bound,
                "q{p}: {got} (bound {bound})"
            );
        }
        let h = q.histogram(&[0.0, 1e6, 2e6]);
        assert_eq!(h.iter().sum::<u64>(), n);
        assert!((h[0] as f64 - 1e6).abs() <= bound);
    }

    #[test]
    fn radix_sort_orders_as_total_cmp() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let specials = [
            0.0,
            -0.0,
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            5e-324,
            1.0,
            -1.0,
        ];
        for n in [0, 1, 255, 256, 257, 5000] {
            let v: Vec<f64> = (0..n)
                .map(|i| match i % 4 {
                    0 => specials[rng.random_range(0..specials.len())],
                    1 => rng.random::<f64>() * 1e6 - 5e5,
                    2 => f64::from_bits(rng.random()),
                    _ => rng.random_range(-3i64..3) as f64,
                })
                .collect();
            let mut want = v.clone();
            want.sort_unstable_by(f64::total_cmp);
            let mut got = v;
            sort_f64(&mut got);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "n = {n}");
        }
    }

    #[test]
    fn frequent_items_exact_then_bounded() {
        let mut f = FrequentItems::<String>::new(10);
        for (v, n) in [("a", 5), ("b", 3), ("c", 1)] {
            for _ in 0..n {
                f.insert(v);
            }
        }
        assert_eq!(f.top(2), vec![("a".to_string(), 5), ("b".to_string(), 3)]);
        assert_eq!(f.error_bound(), 0);
        let mut f = FrequentItems::<String>::new(4);
        for i in 0..10_000 {
            let s = if i % 2 == 0 {
                "hot".to_string()
            } else {
                format!("cold{i}")
            };
            f.insert(s.as_str());
        }
        let top = f.top(1);
        assert_eq!(top[0].0, "hot");
        assert!(top[0].1 <= 5000 && top[0].1 + f.error_bound() >= 5000);
    }
}
