//! Histogram-based gradient boosting for binary log loss.
//!
//! Features are binned once (at most 255 value bins plus one missing bin),
//! trees grow best-first up to `max_leaf_nodes`, each split is chosen from
//! per-leaf gradient histograms (the larger child's histogram is the
//! parent's minus the smaller's), and missing values go to whichever side
//! gains more. The model exports as one `TreeEnsembleClassifier`.

#![allow(clippy::needless_range_loop)] // index-heavy numeric code

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{label_attr, Dataset};
use crate::onnx::build::{self, Attr};
use crate::onnx::proto::{DataType, GraphProto};
use crate::Error;

/// Hyperparameters (scikit-learn's `HistGradientBoostingClassifier` names
/// and defaults; no early stopping).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GradientBoostingParams {
    /// Boosting rounds (trees).
    pub max_iter: usize,
    /// Shrinkage applied to every leaf value.
    pub learning_rate: f64,
    /// Leaves per tree at most.
    pub max_leaf_nodes: usize,
    /// Depth limit (`None`: unlimited).
    pub max_depth: Option<usize>,
    /// Rows per leaf at least.
    pub min_samples_leaf: usize,
    /// L2 penalty on leaf values.
    pub l2_regularization: f64,
    /// Value bins per feature (2..=255).
    pub max_bins: usize,
}

impl Default for GradientBoostingParams {
    fn default() -> Self {
        GradientBoostingParams {
            max_iter: 100,
            learning_rate: 0.1,
            max_leaf_nodes: 31,
            max_depth: None,
            min_samples_leaf: 20,
            l2_regularization: 0.0,
            max_bins: 255,
        }
    }
}

const MISSING: u8 = 255;
const NBINS: usize = 256;

/// Bin edges per feature: value `x` falls in bin `#{t : t < x}`.
fn fit_bins(d: &Dataset, max_bins: usize) -> Vec<Vec<f64>> {
    let f = d.features.len();
    let n = d.n_rows();
    (0..f)
        .into_par_iter()
        .map(|j| {
            let mut v: Vec<f64> = (0..n)
                .map(|r| d.x[r * f + j])
                .filter(|x| !x.is_nan())
                .collect();
            v.sort_by(f64::total_cmp);
            let mut distinct = v.clone();
            distinct.dedup();
            if distinct.len() <= max_bins {
                distinct.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect()
            } else {
                let mut t: Vec<f64> = (1..max_bins)
                    .map(|k| {
                        let pos = k * (v.len() - 1) / max_bins;
                        let (a, b) = (v[pos], v[(pos + 1).min(v.len() - 1)]);
                        if a == b {
                            a
                        } else {
                            (a + b) / 2.0
                        }
                    })
                    .collect();
                t.dedup();
                t
            }
        })
        .collect()
}

#[derive(Clone, Copy, Default)]
struct Bin {
    g: f64,
    h: f64,
    c: u32,
}

#[derive(Clone, Copy, Debug)]
struct Split {
    gain: f64,
    feature: usize,
    bin: u8,
    missing_left: bool,
}

enum TreeNode {
    Split {
        feature: usize,
        threshold: f64,
        missing_left: bool,
        left: usize,
        right: usize,
    },
    Leaf(f64),
}

struct Grow<'a> {
    binned: &'a [u8], // column-major: feature j, row r at j*n + r
    n: usize,
    f: usize,
    nbins: Vec<usize>,
    g: &'a [f64],
    h: &'a [f64],
    p: &'a GradientBoostingParams,
}

struct Leaf {
    rows: Vec<u32>,
    hist: Vec<Bin>, // f × NBINS
    g: f64,
    h: f64,
    depth: usize,
    node: usize,
    split: Option<Split>,
}

impl Grow<'_> {
    fn histogram(&self, rows: &[u32]) -> Vec<Bin> {
        let mut hist = vec![Bin::default(); self.f * NBINS];
        hist.par_chunks_mut(NBINS).enumerate().for_each(|(j, hj)| {
            let col = &self.binned[j * self.n..(j + 1) * self.n];
            for &r in rows {
                let r = r as usize;
                let b = &mut hj[col[r] as usize];
                b.g += self.g[r];
                b.h += self.h[r];
                b.c += 1;
            }
        });
        hist
    }

    fn score(&self, g: f64, h: f64) -> f64 {
        g * g / (h + self.p.l2_regularization + 1e-12)
    }

    fn best_split(&self, leaf: &Leaf) -> Option<Split> {
        if leaf.rows.len() < 2 * self.p.min_samples_leaf.max(1)
            || self.p.max_depth.is_some_and(|d| leaf.depth >= d)
        {
            return None;
        }
        let parent = self.score(leaf.g, leaf.h);
        let total = leaf.rows.len() as u32;
        let min = self.p.min_samples_leaf as u32;
        (0..self.f)
            .into_par_iter()
            .filter_map(|j| {
                let hj = &leaf.hist[j * NBINS..(j + 1) * NBINS];
                let miss = hj[MISSING as usize];
                let mut best: Option<Split> = None;
                let (mut gl, mut hl, mut cl) = (0.0, 0.0, 0u32);
                for b in 0..self.nbins[j].saturating_sub(1) {
                    gl += hj[b].g;
                    hl += hj[b].h;
                    cl += hj[b].c;
                    for missing_left in [false, true] {
                        if missing_left && miss.c == 0 {
                            continue;
                        }
                        let (g1, h1, c1) = if missing_left {
                            (gl + miss.g, hl + miss.h, cl + miss.c)
                        } else {
                            (gl, hl, cl)
                        };
                        let c2 = total - c1;
                        if c1 < min || c2 < min {
                            continue;
                        }
                        let (g2, h2) = (leaf.g - g1, leaf.h - h1);
                        if h1 < 1e-3 || h2 < 1e-3 {
                            continue;
                        }
                        let gain = self.score(g1, h1) + self.score(g2, h2) - parent;
                        if gain > 1e-12 && best.is_none_or(|s| gain > s.gain) {
                            best = Some(Split {
                                gain,
                                feature: j,
                                bin: b as u8,
                                missing_left,
                            });
                        }
                    }
                }
                best
            })
            .reduce_with(|a, b| {
                if b.gain > a.gain || (b.gain == a.gain && b.feature < a.feature) {
                    b
                } else {
                    a
                }
            })
    }

    fn new_leaf(&self, rows: Vec<u32>, hist: Vec<Bin>, depth: usize, node: usize) -> Leaf {
        let (g, h) = hist[..NBINS]
            .iter()
            .fold((0.0, 0.0), |(g, h), b| (g + b.g, h + b.h));
        let mut leaf = Leaf {
            rows,
            hist,
            g,
            h,
            depth,
            node,
            split: None,
        };
        leaf.split = self.best_split(&leaf);
        leaf
    }

    /// Grows one tree; returns its nodes and, per row, the leaf value.
    fn tree(&self, edges: &[Vec<f64>], update: &mut [f64]) -> Vec<TreeNode> {
        let rows: Vec<u32> = (0..self.n as u32).collect();
        let hist = self.histogram(&rows);
        let mut nodes = vec![TreeNode::Leaf(0.0)];
        let mut open = vec![self.new_leaf(rows, hist, 0, 0)];
        let mut done: Vec<Leaf> = Vec::new();
        while open.len() + done.len() < self.p.max_leaf_nodes.max(2) {
            let Some(k) = (0..open.len())
                .filter(|&k| open[k].split.is_some())
                .max_by(|&a, &b| {
                    let (ga, gb) = (
                        open[a].split.map_or(0.0, |s| s.gain),
                        open[b].split.map_or(0.0, |s| s.gain),
                    );
                    ga.total_cmp(&gb).then(b.cmp(&a))
                })
            else {
                break;
            };
            let leaf = open.swap_remove(k);
            let s = leaf.split.expect("filtered");
            let col = &self.binned[s.feature * self.n..(s.feature + 1) * self.n];
            let (left, right): (Vec<u32>, Vec<u32>) = leaf.rows.iter().partition(|&&r| {
                let b = col[r as usize];
                if b == MISSING {
                    s.missing_left
                } else {
                    b <= s.bin
                }
            });
            let (small, large_is_left) = if left.len() <= right.len() {
                (&left, false)
            } else {
                (&right, true)
            };
            let small_hist = self.histogram(small);
            let large_hist: Vec<Bin> = leaf
                .hist
                .iter()
                .zip(&small_hist)
                .map(|(p, c)| Bin {
                    g: p.g - c.g,
                    h: p.h - c.h,
                    c: p.c - c.c,
                })
                .collect();
            let (lh, rh) = if large_is_left {
                (large_hist, small_hist)
            } else {
                (small_hist, large_hist)
            };
            let (li, ri) = (nodes.len(), nodes.len() + 1);
            nodes.push(TreeNode::Leaf(0.0));
            nodes.push(TreeNode::Leaf(0.0));
            nodes[leaf.node] = TreeNode::Split {
                feature: s.feature,
                threshold: edges[s.feature][s.bin as usize],
                missing_left: s.missing_left,
                left: li,
                right: ri,
            };
            open.push(self.new_leaf(left, lh, leaf.depth + 1, li));
            open.push(self.new_leaf(right, rh, leaf.depth + 1, ri));
        }
        done.extend(open);
        for leaf in done {
            let v = -self.p.learning_rate * leaf.g / (leaf.h + self.p.l2_regularization + 1e-12);
            nodes[leaf.node] = TreeNode::Leaf(v);
            for &r in &leaf.rows {
                update[r as usize] = v;
            }
        }
        nodes
    }
}

pub(super) fn train(d: &Dataset, p: &GradientBoostingParams) -> Result<Vec<u8>, Error> {
    if !(2..=255).contains(&p.max_bins) {
        return Err(Error::Train(format!(
            "max_bins must be 2..=255, got {}",
            p.max_bins
        )));
    }
    if p.learning_rate <= 0.0 || p.max_iter == 0 {
        return Err(Error::Train(
            "learning_rate and max_iter must be positive".into(),
        ));
    }
    let (n, f) = (d.n_rows(), d.features.len());
    let edges = fit_bins(d, p.max_bins);
    let mut binned = vec![0u8; n * f];
    binned.par_chunks_mut(n).enumerate().for_each(|(j, col)| {
        for r in 0..n {
            let x = d.x[r * f + j];
            col[r] = if x.is_nan() {
                MISSING
            } else {
                edges[j].partition_point(|&t| t < x) as u8
            };
        }
    });
    let nbins: Vec<usize> = edges.iter().map(|e| e.len() + 1).collect();
    let pos = d.y.iter().filter(|&&y| y == 1).count() as f64 / n as f64;
    let init = (pos / (1.0 - pos)).ln();
    let mut raw = vec![init; n];
    let mut g = vec![0.0; n];
    let mut h = vec![0.0; n];
    let mut update = vec![0.0; n];
    let mut trees = Vec::with_capacity(p.max_iter);
    for _ in 0..p.max_iter {
        for r in 0..n {
            let pr = 1.0 / (1.0 + (-raw[r]).exp());
            g[r] = pr - f64::from(d.y[r]);
            h[r] = pr * (1.0 - pr);
        }
        let grow = Grow {
            binned: &binned,
            n,
            f,
            nbins: nbins.clone(),
            g: &g,
            h: &h,
            p,
        };
        let tree = grow.tree(&edges, &mut update);
        for r in 0..n {
            raw[r] += update[r];
        }
        trees.push(tree);
    }
    export(d, &trees, init)
}

fn export(d: &Dataset, trees: &[Vec<TreeNode>], init: f64) -> Result<Vec<u8>, Error> {
    let mut a = Arrays::default();
    for (t, tree) in trees.iter().enumerate() {
        for (i, node) in tree.iter().enumerate() {
            a.tree.push(t as i64);
            a.node.push(i as i64);
            match node {
                TreeNode::Split {
                    feature,
                    threshold,
                    missing_left,
                    left,
                    right,
                } => {
                    a.feature.push(*feature as i64);
                    a.mode.push("BRANCH_LEQ".into());
                    a.value.push(*threshold as f32);
                    a.yes.push(*left as i64);
                    a.no.push(*right as i64);
                    a.missing.push(i64::from(*missing_left));
                }
                TreeNode::Leaf(v) => {
                    a.feature.push(0);
                    a.mode.push("LEAF".into());
                    a.value.push(0.0);
                    a.yes.push(0);
                    a.no.push(0);
                    a.missing.push(0);
                    a.w_tree.push(t as i64);
                    a.w_node.push(i as i64);
                    a.w.push(*v as f32);
                }
            }
        }
    }
    // onnxruntime reads a binary ensemble whose weights are all >= 0 as
    // probabilities (no logistic); boosting leaves are log-odds, so make
    // sure one weight is negative. -1e-30 changes no f32 score.
    if a.w.iter().all(|&w| w >= 0.0) {
        a.w_tree.push(0);
        a.w_node.push(a.w_node[0]);
        a.w.push(-1e-30);
    }
    let (label_name, labels, label_type) = label_attr(&d.classes);
    let label_name = if label_name == "classlabels_ints" {
        "classlabels_int64s"
    } else {
        label_name
    };
    let n_w = a.w.len();
    let node = build::node(
        "TreeEnsembleClassifier",
        "ai.onnx.ml",
        "gradient_boosting",
        &["X"],
        &["label", "probabilities"],
        vec![
            ("nodes_treeids", Attr::Ints(a.tree)),
            ("nodes_nodeids", Attr::Ints(a.node)),
            ("nodes_featureids", Attr::Ints(a.feature)),
            ("nodes_modes", Attr::Strs(a.mode)),
            ("nodes_values", Attr::Floats(a.value)),
            ("nodes_truenodeids", Attr::Ints(a.yes)),
            ("nodes_falsenodeids", Attr::Ints(a.no)),
            ("nodes_missing_value_tracks_true", Attr::Ints(a.missing)),
            ("class_treeids", Attr::Ints(a.w_tree)),
            ("class_nodeids", Attr::Ints(a.w_node)),
            ("class_ids", Attr::Ints(vec![0; n_w])),
            ("class_weights", Attr::Floats(a.w)),
            ("base_values", Attr::Floats(vec![init as f32])),
            (label_name, labels),
            ("post_transform", Attr::Str("LOGISTIC".into())),
        ],
    );
    let f = d.features.len();
    let graph = GraphProto {
        node: vec![node],
        name: "keel_gradient_boosting".into(),
        input: vec![build::tensor_info(
            "X",
            DataType::Float,
            &[None, Some(f as i64)],
        )],
        output: vec![
            build::tensor_info("label", label_type, &[None]),
            build::tensor_info("probabilities", DataType::Float, &[None, Some(2)]),
        ],
        ..Default::default()
    };
    Ok(build::encode(&build::model(
        graph,
        vec![("features".into(), d.features.join(","))],
    )))
}

#[derive(Default)]
struct Arrays {
    tree: Vec<i64>,
    node: Vec<i64>,
    feature: Vec<i64>,
    mode: Vec<String>,
    value: Vec<f32>,
    yes: Vec<i64>,
    no: Vec<i64>,
    missing: Vec<i64>,
    w_tree: Vec<i64>,
    w_node: Vec<i64>,
    w: Vec<f32>,
}
