//! The demo's synthetic card-transaction dataset.
//!
//! Seeded and documented so that a run is reproducible and a reader can
//! tell what the model ought to learn. Each row is one card transaction:
//!
//! | column | meaning |
//! |---|---|
//! | `transaction_id` | unique id |
//! | `amount` | amount in EUR, log-normal per merchant category |
//! | `merchant_category` | grocery, fuel, restaurants, travel, electronics, online, gaming |
//! | `mc_*` | the category one-hot encoded (model features) |
//! | `hour` | local hour 0–23 |
//! | `customer_tenure_days` | days since the card was issued |
//! | `tx_count_24h` | the card's transactions in the previous 24 h |
//! | `distance_km` | distance from the cardholder's home |
//! | `age_group` | 18-30, 31-50, 51+: the sensitive attribute for fairness checks, never a feature |
//! | `is_fraud` | 1 if the transaction was confirmed fraudulent |
//!
//! Fraud is drawn from a logistic model: more likely for large amounts,
//! at night, online/electronics/gaming merchants, far from home, in bursts
//! of transactions and on new cards (base rate about 4%). `Shift::Drifted`
//! moves the merchant mix towards online and gaming and scales amounts by
//! 1.8, as a new fraud campaign or a new market would.

use std::fmt::Write;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Merchant categories, their share of traffic and median amount (EUR).
const CATEGORIES: [(&str, f64, f64); 7] = [
    ("grocery", 0.30, 35.0),
    ("fuel", 0.15, 55.0),
    ("restaurants", 0.18, 40.0),
    ("travel", 0.07, 320.0),
    ("electronics", 0.08, 180.0),
    ("online", 0.17, 60.0),
    ("gaming", 0.05, 25.0),
];
const DRIFTED_SHARES: [f64; 7] = [0.14, 0.08, 0.10, 0.06, 0.12, 0.32, 0.18];
const CATEGORY_RISK: [f64; 7] = [-0.6, -0.4, -0.5, 0.4, 0.9, 1.0, 0.8];
const AGE_GROUPS: [&str; 3] = ["18-30", "31-50", "51+"];

/// Which population to draw from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shift {
    /// The population the first model is trained on.
    Baseline,
    /// Production after the shift: other merchant mix, larger amounts.
    Drifted,
}

/// The feature columns a model is trained on, in order.
pub fn feature_columns() -> Vec<String> {
    let mut cols: Vec<String> = [
        "amount",
        "hour",
        "customer_tenure_days",
        "tx_count_24h",
        "distance_km",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    cols.extend(CATEGORIES.iter().map(|(c, _, _)| format!("mc_{c}")));
    cols
}

/// One generated transaction.
#[derive(Clone, Debug)]
pub struct Transaction {
    pub id: u64,
    pub amount: f64,
    pub category: usize,
    pub hour: u32,
    pub tenure_days: f64,
    pub tx_count_24h: u32,
    pub distance_km: f64,
    pub age_group: usize,
    pub is_fraud: bool,
}

impl Transaction {
    /// The model's input row, in `feature_columns()` order.
    pub fn features(&self) -> Vec<f64> {
        let mut v = vec![
            self.amount,
            f64::from(self.hour),
            self.tenure_days,
            f64::from(self.tx_count_24h),
            self.distance_km,
        ];
        v.extend((0..CATEGORIES.len()).map(|i| if i == self.category { 1.0 } else { 0.0 }));
        v
    }
}

fn normal(rng: &mut StdRng) -> f64 {
    // Box–Muller; `1 - u` keeps the log argument in (0, 1].
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn pick(rng: &mut StdRng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// Draws `n` transactions, ids starting at `first_id`.
pub fn generate(n: usize, seed: u64, shift: Shift, first_id: u64) -> Vec<Transaction> {
    let mut rng = StdRng::seed_from_u64(seed);
    let shares: Vec<f64> = match shift {
        Shift::Baseline => CATEGORIES.iter().map(|c| c.1).collect(),
        Shift::Drifted => DRIFTED_SHARES.to_vec(),
    };
    let amount_scale = if shift == Shift::Drifted { 1.8 } else { 1.0 };
    (0..n)
        .map(|i| {
            let category = pick(&mut rng, &shares);
            let amount =
                (CATEGORIES[category].2 * (0.8 * normal(&mut rng)).exp() * amount_scale * 100.0)
                    .round()
                    / 100.0;
            // Activity peaks in the evening; some at night.
            let hour = ((18.0 + 5.0 * normal(&mut rng)).rem_euclid(24.0)) as u32;
            let tenure_days = (-(1.0 - rng.random::<f64>()).ln() * 900.0).round();
            let tx_count_24h =
                (rng.random::<f64>() * 3.0 + (0.7 * normal(&mut rng)).exp()).floor() as u32;
            let distance_km = ((1.5 + 1.2 * normal(&mut rng)).exp() * 10.0).round() / 10.0;
            let age_group = pick(&mut rng, &[0.3, 0.45, 0.25]);
            let night = hour < 6;
            let logit = -5.2
                + 0.55 * (amount / 50.0).ln().max(-2.0)
                + if night { 1.3 } else { 0.0 }
                + CATEGORY_RISK[category]
                + 0.35 * (distance_km / 10.0).ln().max(-1.0)
                + 0.25 * f64::from(tx_count_24h.min(8))
                - 0.0012 * tenure_days.min(1500.0)
                + 0.8;
            let p = 1.0 / (1.0 + (-logit).exp());
            Transaction {
                id: first_id + i as u64,
                amount,
                category,
                hour,
                tenure_days,
                tx_count_24h,
                distance_km,
                age_group,
                is_fraud: rng.random::<f64>() < p,
            }
        })
        .collect()
}

/// The rows as CSV with a header.
pub fn to_csv(rows: &[Transaction]) -> String {
    let mut out = String::with_capacity(rows.len() * 96);
    out.push_str("transaction_id,");
    out.push_str(&feature_columns().join(","));
    out.push_str(",merchant_category,age_group,is_fraud\n");
    for t in rows {
        let _ = write!(out, "{}", t.id);
        for v in t.features() {
            let _ = write!(out, ",{v}");
        }
        let _ = writeln!(
            out,
            ",{},{},{}",
            CATEGORIES[t.category].0,
            AGE_GROUPS[t.age_group],
            u8::from(t.is_fraud)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_realistic_and_drift_is_a_real_shift() {
        let a = generate(20_000, 1, Shift::Baseline, 0);
        let b = generate(20_000, 1, Shift::Baseline, 0);
        assert_eq!(to_csv(&a), to_csv(&b), "same seed, same data");
        let rate = a.iter().filter(|t| t.is_fraud).count() as f64 / a.len() as f64;
        assert!((0.01..0.10).contains(&rate), "fraud rate {rate}");
        // Fraud is learnable: its amounts are larger on average.
        let mean = |f: bool| {
            let v: Vec<f64> = a
                .iter()
                .filter(|t| t.is_fraud == f)
                .map(|t| t.amount)
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!(mean(true) > 1.3 * mean(false));
        let d = generate(20_000, 2, Shift::Drifted, 0);
        let online = |rows: &[Transaction]| {
            rows.iter().filter(|t| t.category == 5).count() as f64 / rows.len() as f64
        };
        assert!(online(&d) > online(&a) + 0.1);
        let csv = to_csv(&a[..2]);
        assert_eq!(csv.lines().count(), 3);
        assert_eq!(
            csv.lines().next().unwrap().split(',').count(),
            2 + feature_columns().len() + 2
        );
    }
}
