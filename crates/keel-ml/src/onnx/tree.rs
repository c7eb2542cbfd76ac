//! `TreeEnsembleClassifier` and `TreeEnsembleRegressor` over flat node
//! arrays.
//!
//! At load time the per-node attribute arrays are turned into one `Vec` of
//! compact nodes with absolute child indices (leaves point to themselves),
//! plus one `Vec` of leaf weights. Evaluation takes rows in blocks and
//! walks one tree at a time for the whole block, the rows in lockstep, with
//! no hashing and no allocation per row. Large batches are split over
//! rayon's pool.
//!
//! Aggregation and the binary-classifier conventions (one score column,
//! `base_values`, which label wins) follow onnxruntime, the reference every
//! exporter tests against.

use std::collections::HashMap;

use rayon::prelude::*;

use super::ml::{logistic, probit, Labels, PostTransform};
use super::{tensor_input, Attrs, Kernel, Tensor, TensorData, Value};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

/// A node's test, kept apart from [`Node`] so the hot layout stays small;
/// only ensembles with mixed modes or missing-value routing read it.
#[derive(Clone, Copy, Debug)]
struct Test {
    mode: Mode,
    missing_yes: bool,
}

impl Test {
    #[inline]
    fn go<T: Feature>(self, v: T, t: T) -> bool {
        (match self.mode {
            Mode::Leq => v <= t,
            Mode::Lt => v < t,
            Mode::Gte => v >= t,
            Mode::Gt => v > t,
            Mode::Eq => v == t,
            Mode::Neq => v != t,
            // A leaf's children are itself: either way it stays.
            Mode::Leaf => true,
        }) || (self.missing_yes && v.is_nan())
    }
}

/// The element type of the feature matrix and thresholds: `f32` when every
/// threshold is exactly an `f32` and the input is `f32` (comparing there
/// gives the same answers as comparing both widened to `f64`, and halves
/// the node size), `f64` otherwise.
trait Feature: Copy + PartialOrd + Send + Sync {
    fn is_nan(self) -> bool;
}

impl Feature for f32 {
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

impl Feature for f64 {
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

/// One node of the flat layout, children as absolute indices. A leaf
/// points to itself on both sides, so a walk can take a fixed number of
/// steps without testing for leaves: the rows of a block then advance in
/// lockstep, each step a load, a compare and a conditional move, with no
/// branch to mispredict.
#[derive(Clone, Copy, Debug)]
struct Node<T> {
    threshold: T,
    feature: u32,
    yes: u32,
    no: u32,
}

/// Where a tree starts and how to walk it.
#[derive(Clone, Copy, Debug)]
struct Tree {
    root: u32,
    /// Steps every row takes in lockstep: the whole depth for shallow
    /// trees (the usual case: extra steps at a leaf are cheap), only down
    /// to the shallowest leaf for deep ones.
    lockstep: u32,
    /// True when some leaf lies deeper than `lockstep`: each row then
    /// finishes its walk alone, stopping at its leaf.
    finish: bool,
}

/// Trees at most this deep are walked in lockstep to the bottom.
const LOCKSTEP_DEPTH: u32 = 12;

/// Blocks of fewer rows walk each row alone (see `accumulate_block`).
const LOCKSTEP_ROWS: usize = 4;

/// Rows evaluated together, tree by tree, so that a tree's nodes stay in
/// cache while every row of the block walks it.
const BLOCK: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

enum Kind {
    Classifier {
        labels: Labels,
        binary_case: bool,
        all_positive: bool,
    },
    Regressor,
}

pub(crate) struct TreeEnsemble {
    nodes: Vec<Node<f64>>,
    /// The same nodes with `f32` thresholds, when every threshold is one.
    nodes32: Option<Vec<Node<f32>>>,
    tests: Vec<Test>,
    /// `Some(mode)` when every branch uses `mode` and none routes missing
    /// values to `yes`: the walk then needs no per-node test lookup.
    uniform: Option<Mode>,
    /// Per node, the range of its leaf weights in `weights` (empty for a
    /// branch).
    leaf: Vec<(u32, u32)>,
    trees: Vec<Tree>,
    weights: Vec<(u32, f64)>,
    n_out: usize,
    max_feature: usize,
    base: Vec<f64>,
    post: PostTransform,
    agg: Aggregate,
    kind: Kind,
}

impl TreeEnsemble {
    pub(crate) fn classifier(a: &Attrs<'_>) -> Result<TreeEnsemble, String> {
        let labels = Labels::parse(a, "classlabels_int64s", "classlabels_strings");
        if labels.len() == 0 {
            return Err("needs classlabels_int64s or classlabels_strings".into());
        }
        let ids = a.ints("class_ids");
        let w = a.floats_or_tensor("class_weights")?;
        let all_positive = w.iter().all(|&x| x >= 0.0);
        let mut distinct = ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let binary_case = labels.len() == 2 && distinct.len() == 1;
        let n_out = labels.len();
        Self::build(
            a,
            "class",
            n_out,
            Aggregate::Sum,
            Kind::Classifier {
                labels,
                binary_case,
                all_positive,
            },
        )
    }

    pub(crate) fn regressor(a: &Attrs<'_>) -> Result<TreeEnsemble, String> {
        let n = usize::try_from(a.int("n_targets", 1))
            .ok()
            .filter(|&n| n > 0)
            .ok_or("n_targets must be positive")?;
        let agg = match a.string("aggregate_function", "SUM").as_str() {
            "SUM" => Aggregate::Sum,
            "AVERAGE" => Aggregate::Average,
            "MIN" => Aggregate::Min,
            "MAX" => Aggregate::Max,
            other => return Err(format!("unknown aggregate_function {other:?}")),
        };
        Self::build(a, "target", n, agg, Kind::Regressor)
    }

    fn build(
        a: &Attrs<'_>,
        prefix: &str,
        n_out: usize,
        agg: Aggregate,
        kind: Kind,
    ) -> Result<TreeEnsemble, String> {
        let tree_ids = a.ints("nodes_treeids");
        let node_ids = a.ints("nodes_nodeids");
        let features = a.ints("nodes_featureids");
        let modes = a.strings("nodes_modes");
        let values = a.floats_or_tensor("nodes_values")?;
        let yes = a.ints("nodes_truenodeids");
        let no = a.ints("nodes_falsenodeids");
        let missing = a.ints("nodes_missing_value_tracks_true");
        let n = tree_ids.len();
        for (name, len) in [
            ("nodes_nodeids", node_ids.len()),
            ("nodes_featureids", features.len()),
            ("nodes_modes", modes.len()),
            ("nodes_values", values.len()),
            ("nodes_truenodeids", yes.len()),
            ("nodes_falsenodeids", no.len()),
        ] {
            if len != n {
                return Err(format!("{name} has {len} entries, nodes_treeids has {n}"));
            }
        }
        if !missing.is_empty() && missing.len() != n {
            return Err(format!(
                "nodes_missing_value_tracks_true has {} entries for {n} nodes",
                missing.len()
            ));
        }
        if n == 0 {
            return Err("the ensemble has no nodes".into());
        }
        let mut index: HashMap<(i64, i64), u32> = HashMap::with_capacity(n);
        for i in 0..n {
            if index.insert((tree_ids[i], node_ids[i]), i as u32).is_some() {
                return Err(format!(
                    "node {} of tree {} is defined twice",
                    node_ids[i], tree_ids[i]
                ));
            }
        }
        // Leaf weights, grouped per node.
        let t_tree = a.ints(&format!("{prefix}_treeids"));
        let t_node = a.ints(&format!("{prefix}_nodeids"));
        let t_id = a.ints(&format!("{prefix}_ids"));
        let t_w = a.floats_or_tensor(&format!("{prefix}_weights"))?;
        if t_tree.len() != t_node.len() || t_node.len() != t_id.len() || t_id.len() != t_w.len() {
            return Err(format!(
                "{prefix}_treeids/_nodeids/_ids/_weights have different lengths"
            ));
        }
        let mut per_node: Vec<Vec<(u32, f64)>> = vec![Vec::new(); n];
        for k in 0..t_tree.len() {
            let i = *index.get(&(t_tree[k], t_node[k])).ok_or_else(|| {
                format!(
                    "a {prefix} weight refers to node {} of tree {}, which does not exist",
                    t_node[k], t_tree[k]
                )
            })?;
            let id = usize::try_from(t_id[k])
                .ok()
                .filter(|&id| id < n_out)
                .ok_or_else(|| format!("{prefix}_id {} out of range 0..{n_out}", t_id[k]))?;
            per_node[i as usize].push((id as u32, t_w[k]));
        }
        let mut nodes = Vec::with_capacity(n);
        let mut tests = Vec::with_capacity(n);
        let mut leaf = Vec::with_capacity(n);
        let mut weights = Vec::with_capacity(t_w.len());
        let mut is_child = vec![false; n];
        let mut max_feature = 0usize;
        for i in 0..n {
            let mode = match modes[i].as_str() {
                "BRANCH_LEQ" => Mode::Leq,
                "BRANCH_LT" => Mode::Lt,
                "BRANCH_GTE" => Mode::Gte,
                "BRANCH_GT" => Mode::Gt,
                "BRANCH_EQ" => Mode::Eq,
                "BRANCH_NEQ" => Mode::Neq,
                "LEAF" => Mode::Leaf,
                other => return Err(format!("unknown node mode {other:?}")),
            };
            if mode == Mode::Leaf {
                let start = weights.len() as u32;
                weights.extend_from_slice(&per_node[i]);
                leaf.push((start, weights.len() as u32));
                nodes.push(Node {
                    threshold: 0.0,
                    feature: 0,
                    yes: i as u32,
                    no: i as u32,
                });
                tests.push(Test {
                    mode,
                    missing_yes: false,
                });
                continue;
            }
            let child = |c: i64| -> Result<u32, String> {
                index.get(&(tree_ids[i], c)).copied().ok_or_else(|| {
                    format!(
                        "node {} of tree {} points to node {c}, which does not exist",
                        node_ids[i], tree_ids[i]
                    )
                })
            };
            let (y, f) = (child(yes[i])?, child(no[i])?);
            if y as usize == i || f as usize == i {
                return Err(format!(
                    "node {} of tree {} is its own child",
                    node_ids[i], tree_ids[i]
                ));
            }
            is_child[y as usize] = true;
            is_child[f as usize] = true;
            let feature = usize::try_from(features[i])
                .map_err(|_| format!("negative feature id {}", features[i]))?;
            max_feature = max_feature.max(feature);
            leaf.push((0, 0));
            nodes.push(Node {
                threshold: values[i],
                feature: u32::try_from(feature)
                    .map_err(|_| format!("feature id {feature} out of range"))?,
                yes: y,
                no: f,
            });
            tests.push(Test {
                mode,
                missing_yes: missing.get(i).is_some_and(|&m| m != 0),
            });
        }
        // One root per tree id, in order of first appearance.
        let mut roots = Vec::new();
        let mut seen = HashMap::new();
        for i in 0..n {
            if !is_child[i] && seen.insert(tree_ids[i], i).is_none() {
                roots.push(i as u32);
            }
        }
        let tree_set: std::collections::HashSet<i64> = tree_ids.iter().copied().collect();
        if roots.len() != tree_set.len() {
            return Err("some tree has no root (its nodes form a cycle)".into());
        }
        // Rejects cycles too: every walk must reach a leaf.
        let trees = walk_plans(&nodes, &tests, &roots)?;
        let branches = tests.iter().filter(|t| t.mode != Mode::Leaf);
        let mut uniform = None;
        for t in branches {
            if t.missing_yes || uniform.is_some_and(|m| m != t.mode) {
                uniform = None;
                break;
            }
            uniform = Some(t.mode);
        }
        let nodes32 = nodes
            .iter()
            .all(|n| f64::from(n.threshold as f32) == n.threshold)
            .then(|| {
                nodes
                    .iter()
                    .map(|n| Node {
                        threshold: n.threshold as f32,
                        feature: n.feature,
                        yes: n.yes,
                        no: n.no,
                    })
                    .collect()
            });
        Ok(TreeEnsemble {
            nodes,
            nodes32,
            tests,
            uniform,
            leaf,
            trees,
            weights,
            n_out,
            max_feature,
            base: a.floats_or_tensor("base_values")?,
            post: PostTransform::parse(a)?,
            agg,
            kind,
        })
    }

    /// Adds the leaf weights of every tree to the scores of a block of
    /// rows (`x`, `cols` wide; `scores`/`has` are `n_out` per row). Tree
    /// outer, rows inner: a tree's nodes stay in cache for the block, and
    /// the rows' walks are independent, so they overlap in the CPU. Per
    /// row, trees and weights are added in model order, as a row-by-row
    /// walk would.
    fn accumulate_block<T: Feature>(
        &self,
        nodes: &[Node<T>],
        x: &[T],
        cols: usize,
        scores: &mut [f64],
        has: &mut [bool],
        go: impl Fn(usize, T, T) -> bool,
    ) {
        let m = x.len() / cols.max(1);
        let mut at = [0u32; BLOCK];
        let at = &mut at[..m];
        scores.iter_mut().for_each(|s| *s = 0.0);
        has.iter_mut().for_each(|h| *h = false);
        for tree in &self.trees {
            at.fill(tree.root);
            // Lockstep pays off when there are rows to overlap; a lone row
            // is faster walked with branches the CPU can speculate past.
            let lockstep = if m >= LOCKSTEP_ROWS { tree.lockstep } else { 0 };
            for _ in 0..lockstep {
                for (r, i) in at.iter_mut().enumerate() {
                    let n = nodes[*i as usize];
                    let v = x[r * cols + n.feature as usize];
                    *i = if go(*i as usize, v, n.threshold) {
                        n.yes
                    } else {
                        n.no
                    };
                }
            }
            if tree.finish || lockstep == 0 {
                for (r, slot) in at.iter_mut().enumerate() {
                    let mut i = *slot;
                    loop {
                        let n = nodes[i as usize];
                        if n.yes == i {
                            break;
                        }
                        let v = x[r * cols + n.feature as usize];
                        // A branch, not a conditional move: one row has no
                        // other rows to overlap with, so speculating down
                        // the predicted side beats waiting for each load.
                        if go(i as usize, v, n.threshold) {
                            i = std::hint::black_box(n.yes);
                        } else {
                            i = n.no;
                        }
                    }
                    *slot = i;
                }
            }
            for (r, &i) in at.iter().enumerate() {
                let (start, end) = self.leaf[i as usize];
                let s = &mut scores[r * self.n_out..(r + 1) * self.n_out];
                let h = &mut has[r * self.n_out..(r + 1) * self.n_out];
                for &(id, w) in &self.weights[start as usize..end as usize] {
                    let (s, h) = (&mut s[id as usize], &mut h[id as usize]);
                    match self.agg {
                        Aggregate::Sum | Aggregate::Average => *s += w,
                        Aggregate::Min => {
                            if !*h || w < *s {
                                *s = w
                            }
                        }
                        Aggregate::Max => {
                            if !*h || w > *s {
                                *s = w
                            }
                        }
                    }
                    *h = true;
                }
            }
        }
    }

    /// Finalizes one row into `out` (width `n_out`); returns the label
    /// index for classifiers (see [`Labels::tensor`] for the sentinels).
    fn finalize(&self, scores: &mut Vec<f64>, has: &mut [bool], out: &mut [f64]) -> usize {
        match &self.kind {
            Kind::Regressor => {
                let n_trees = self.trees.len() as f64;
                if self.n_out == 1 {
                    let origin = if self.base.len() == 1 {
                        self.base[0]
                    } else {
                        0.0
                    };
                    let mut s = match self.agg {
                        Aggregate::Average => scores[0] / n_trees,
                        Aggregate::Sum => scores[0],
                        _ if has[0] => scores[0],
                        _ => 0.0,
                    } + origin;
                    if self.post == PostTransform::Probit {
                        s = probit(s);
                    }
                    out[0] = s;
                } else {
                    let use_base = self.base.len() == self.n_out;
                    for k in 0..self.n_out {
                        let mut s = if has[k] || self.agg == Aggregate::Sum {
                            scores[k]
                        } else {
                            0.0
                        };
                        if self.agg == Aggregate::Average {
                            s /= n_trees;
                        }
                        out[k] = s + if use_base { self.base[k] } else { 0.0 };
                    }
                    self.post.apply_row(out);
                }
                0
            }
            Kind::Classifier {
                binary_case,
                all_positive,
                ..
            } => {
                if self.n_out > 2 || self.n_out == 1 {
                    for k in 0..self.base.len().min(self.n_out) {
                        scores[k] += self.base[k];
                        has[k] = true;
                    }
                    let mut best: Option<usize> = None;
                    for k in 0..self.n_out {
                        if has[k] && best.is_none_or(|b| scores[k] > scores[b]) {
                            best = Some(k);
                        }
                    }
                    out.copy_from_slice(&scores[..self.n_out]);
                    if self.n_out > 1 {
                        self.post.apply_row(out);
                    }
                    return best.unwrap_or(0);
                }
                // Binary.
                let mut write_additional: i32 = -1;
                match self.base.len() {
                    2 => {
                        if has[1] {
                            scores[1] += self.base[1];
                            scores[0] += self.base[0];
                        } else {
                            scores[1] = self.base[1] + scores[0];
                            scores[0] = -scores[1];
                            has[1] = true;
                        }
                    }
                    1 => {
                        scores[0] += self.base[0];
                        if !has[1] {
                            scores.pop();
                        }
                    }
                    0 => {
                        write_additional = 3;
                        if !has[1] {
                            scores.pop();
                        }
                    }
                    _ => {}
                }
                let pos = if scores.len() == 2 && has[1] {
                    scores[1]
                } else if has[0] {
                    scores[0]
                } else {
                    0.0
                };
                let label = if *binary_case {
                    if *all_positive {
                        if pos > 0.5 {
                            write_additional = 0;
                            1
                        } else {
                            write_additional = 1;
                            0
                        }
                    } else if pos > 0.0 {
                        write_additional = 2;
                        1
                    } else {
                        write_additional = 3;
                        0
                    }
                } else if pos > 0.0 {
                    usize::MAX - 1
                } else {
                    usize::MAX
                };
                if scores.len() >= 2 {
                    out.copy_from_slice(&scores[..2]);
                    self.post.apply_row(out);
                } else {
                    let s = scores[0];
                    if self.post == PostTransform::Probit {
                        out[0] = probit(s);
                        out[1] = 0.0;
                    } else {
                        match write_additional {
                            0 | 1 => {
                                out[0] = 1.0 - s;
                                out[1] = s;
                            }
                            2 | 3 if self.post == PostTransform::Logistic => {
                                out[0] = logistic(-s);
                                out[1] = logistic(s);
                            }
                            2 | 3 => {
                                out[0] = -s;
                                out[1] = s;
                            }
                            _ => {
                                out[0] = s;
                                out[1] = 0.0;
                            }
                        }
                    }
                    scores.push(0.0);
                }
                label
            }
        }
    }

    /// Evaluates rows (`x`, `cols` wide) into `out` and `labels`, one
    /// block at a time, with the comparison specialised when every branch
    /// uses the same one.
    fn rows<T: Feature>(
        &self,
        nodes: &[Node<T>],
        x: &[T],
        cols: usize,
        out: &mut [f64],
        labels: &mut [usize],
    ) {
        match self.uniform {
            Some(Mode::Leq) => self.rows_with(nodes, x, cols, out, labels, |_, v, t| v <= t),
            Some(Mode::Lt) => self.rows_with(nodes, x, cols, out, labels, |_, v, t| v < t),
            Some(Mode::Gte) => self.rows_with(nodes, x, cols, out, labels, |_, v, t| v >= t),
            Some(Mode::Gt) => self.rows_with(nodes, x, cols, out, labels, |_, v, t| v > t),
            _ => self.rows_with(nodes, x, cols, out, labels, |i, v, t| {
                self.tests[i].go(v, t)
            }),
        }
    }

    fn rows_with<T: Feature>(
        &self,
        nodes: &[Node<T>],
        x: &[T],
        cols: usize,
        out: &mut [f64],
        labels: &mut [usize],
        go: impl Fn(usize, T, T) -> bool + Copy,
    ) {
        let k = self.n_out;
        let mut scores = vec![0.0; BLOCK * k];
        let mut has = vec![false; BLOCK * k];
        let mut row_scores = Vec::with_capacity(k + 1);
        for ((xb, ob), lb) in x
            .chunks(BLOCK * cols)
            .zip(out.chunks_mut(BLOCK * k))
            .zip(labels.chunks_mut(BLOCK))
        {
            let m = lb.len();
            let (s, h) = (&mut scores[..m * k], &mut has[..m * k]);
            self.accumulate_block(nodes, xb, cols, s, h, go);
            for r in 0..m {
                row_scores.clear();
                row_scores.extend_from_slice(&s[r * k..(r + 1) * k]);
                lb[r] = self.finalize(
                    &mut row_scores,
                    &mut h[r * k..(r + 1) * k],
                    &mut ob[r * k..(r + 1) * k],
                );
            }
        }
    }

    /// Evaluates all rows, splitting large batches over rayon's pool.
    fn eval<T: Feature>(&self, nodes: &[Node<T>], x: &[T], cols: usize) -> (Vec<f64>, Vec<usize>) {
        let n = x.len() / cols;
        let mut out = vec![0.0f64; n * self.n_out];
        let mut labels = vec![0usize; n];
        // Below this many rows a thread's start-up costs more than it saves.
        const CHUNK: usize = 4 * BLOCK;
        if n >= 2 * CHUNK {
            x.par_chunks(CHUNK * cols)
                .zip(out.par_chunks_mut(CHUNK * self.n_out))
                .zip(labels.par_chunks_mut(CHUNK))
                .for_each(|((x, o), l)| self.rows(nodes, x, cols, o, l));
        } else {
            self.rows(nodes, x, cols, &mut out, &mut labels);
        }
        (out, labels)
    }
}

/// How to walk each tree (see [`Tree`]); fails on cycles.
fn walk_plans(nodes: &[Node<f64>], tests: &[Test], roots: &[u32]) -> Result<Vec<Tree>, String> {
    // Depth-first walk with a step budget: a tree of n nodes visits at most
    // n nodes from its root; far more means a cycle.
    let mut budget = nodes.len() * 2 + roots.len();
    let mut plans = Vec::with_capacity(roots.len());
    let mut stack: Vec<(u32, u32)> = Vec::new();
    for &root in roots {
        let (mut deepest, mut shallowest) = (0u32, u32::MAX);
        stack.push((root, 0));
        while let Some((i, depth)) = stack.pop() {
            if budget == 0 {
                return Err("the trees contain a cycle".into());
            }
            budget -= 1;
            let n = &nodes[i as usize];
            if tests[i as usize].mode == Mode::Leaf {
                deepest = deepest.max(depth);
                shallowest = shallowest.min(depth);
            } else {
                stack.push((n.yes, depth + 1));
                stack.push((n.no, depth + 1));
            }
        }
        let lockstep = if deepest <= LOCKSTEP_DEPTH {
            deepest
        } else {
            shallowest
        };
        plans.push(Tree {
            root,
            lockstep,
            finish: lockstep < deepest,
        });
    }
    Ok(plans)
}

impl Kernel for TreeEnsemble {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, String> {
        let x = tensor_input(inputs, 0)?;
        let (n, c) = x.as_matrix_dims();
        if self.max_feature >= c {
            return Err(format!(
                "the trees read feature {} but the input has {c} columns",
                self.max_feature
            ));
        }
        let (out, labels) = match (&x.data, &self.nodes32) {
            (TensorData::F32(xs), Some(nodes)) => self.eval(nodes, xs, c),
            (TensorData::F64(xs), _) => self.eval(&self.nodes, xs, c),
            _ => self.eval(&self.nodes, &x.to_f64()?, c),
        };
        let scores = Tensor {
            shape: vec![n, self.n_out],
            data: TensorData::F32(out.iter().map(|&v| v as f32).collect()),
        };
        Ok(match &self.kind {
            Kind::Regressor => vec![Value::Tensor(scores)],
            Kind::Classifier { labels: l, .. } => {
                vec![Value::Tensor(l.tensor(&labels)), Value::Tensor(scores)]
            }
        })
    }
}

#[cfg(test)]
mod tests {
    //! The block evaluator against a plain row-by-row walk written from
    //! the ONNX definition, on random forests: mixed and uniform modes,
    //! missing-value routing, NaNs and ties, shallow and deep trees, f32
    //! and f64 inputs, batches below and above the parallel threshold.

    use std::collections::HashMap;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::super::build::{self, Attr};
    use super::super::proto::{DataType, GraphProto};
    use super::super::{Model, Tensor, TensorData, Value};

    const MODES: [&str; 6] = [
        "BRANCH_LEQ",
        "BRANCH_LT",
        "BRANCH_GTE",
        "BRANCH_GT",
        "BRANCH_EQ",
        "BRANCH_NEQ",
    ];
    const COLS: usize = 5;
    const THRESHOLDS: [f32; 4] = [-0.5, 0.0, 0.25, 1.0];

    #[derive(Default)]
    struct Forest {
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
        w_target: Vec<i64>,
        w: Vec<f32>,
        depth: u32,
    }

    impl Forest {
        /// Adds node `id` of tree `t` (and its subtree); returns the next
        /// free id.
        fn grow(&mut self, rng: &mut StdRng, t: i64, id: i64, depth: u32, p: &Params) -> i64 {
            let at = self.tree.len();
            self.tree.push(t);
            self.node.push(id);
            let stop = depth >= p.max_depth || (depth > 1 && rng.random_bool(p.leaf_p));
            if stop {
                self.feature.push(0);
                self.mode.push("LEAF".into());
                self.value.push(0.0);
                self.yes.push(0);
                self.no.push(0);
                self.missing.push(0);
                for target in 0..2 {
                    if rng.random_bool(0.7) {
                        self.w_tree.push(t);
                        self.w_node.push(id);
                        self.w_target.push(target);
                        self.w.push(rng.random_range(-1.0..1.0));
                    }
                }
                return id + 1;
            }
            let mode = p
                .mode
                .unwrap_or_else(|| MODES[rng.random_range(0..MODES.len())]);
            self.feature.push(rng.random_range(0..COLS as i64));
            self.mode.push(mode.into());
            self.value
                .push(THRESHOLDS[rng.random_range(0..THRESHOLDS.len())]);
            self.missing
                .push(i64::from(p.mode.is_none() && rng.random_bool(0.5)));
            self.yes.push(id + 1);
            self.no.push(0); // known once the `yes` subtree is built
            self.depth = self.depth.max(depth + 1);
            let next = self.grow(rng, t, id + 1, depth + 1, p);
            self.no[at] = next;
            self.grow(rng, t, next, depth + 1, p)
        }

        fn model(&self) -> Model {
            let node = build::node(
                "TreeEnsembleRegressor",
                "ai.onnx.ml",
                "trees",
                &["X"],
                &["Y"],
                vec![
                    ("n_targets", Attr::Int(2)),
                    ("nodes_treeids", Attr::Ints(self.tree.clone())),
                    ("nodes_nodeids", Attr::Ints(self.node.clone())),
                    ("nodes_featureids", Attr::Ints(self.feature.clone())),
                    ("nodes_modes", Attr::Strs(self.mode.clone())),
                    ("nodes_values", Attr::Floats(self.value.clone())),
                    ("nodes_truenodeids", Attr::Ints(self.yes.clone())),
                    ("nodes_falsenodeids", Attr::Ints(self.no.clone())),
                    (
                        "nodes_missing_value_tracks_true",
                        Attr::Ints(self.missing.clone()),
                    ),
                    ("target_treeids", Attr::Ints(self.w_tree.clone())),
                    ("target_nodeids", Attr::Ints(self.w_node.clone())),
                    ("target_ids", Attr::Ints(self.w_target.clone())),
                    ("target_weights", Attr::Floats(self.w.clone())),
                ],
            );
            let graph = GraphProto {
                node: vec![node],
                name: "forest".into(),
                input: vec![build::tensor_info(
                    "X",
                    DataType::Float,
                    &[None, Some(COLS as i64)],
                )],
                output: vec![build::tensor_info("Y", DataType::Float, &[None, Some(2)])],
                ..Default::default()
            };
            Model::from_proto(&build::model(graph, Vec::new())).unwrap()
        }

        /// The ONNX definition, one row and one node at a time, in `f64`.
        fn predict(&self, x: &[f64]) -> Vec<f32> {
            let at: HashMap<(i64, i64), usize> = (0..self.tree.len())
                .map(|i| ((self.tree[i], self.node[i]), i))
                .collect();
            let mut weights: HashMap<usize, Vec<(usize, f64)>> = HashMap::new();
            for k in 0..self.w.len() {
                let i = at[&(self.w_tree[k], self.w_node[k])];
                let target = self.w_target[k] as usize;
                weights
                    .entry(i)
                    .or_default()
                    .push((target, f64::from(self.w[k])));
            }
            let mut trees = self.tree.clone();
            trees.dedup();
            let mut out = Vec::new();
            for row in x.chunks(COLS) {
                let mut sums = [0.0f64; 2];
                for &t in &trees {
                    let mut i = at[&(t, 0)];
                    while self.mode[i] != "LEAF" {
                        let v = row[self.feature[i] as usize];
                        let th = f64::from(self.value[i]);
                        let go = match self.mode[i].as_str() {
                            "BRANCH_LEQ" => v <= th,
                            "BRANCH_LT" => v < th,
                            "BRANCH_GTE" => v >= th,
                            "BRANCH_GT" => v > th,
                            "BRANCH_EQ" => v == th,
                            _ => v != th,
                        } || (self.missing[i] != 0 && v.is_nan());
                        i = at[&(t, if go { self.yes[i] } else { self.no[i] })];
                    }
                    for &(target, w) in weights.get(&i).into_iter().flatten() {
                        sums[target] += w;
                    }
                }
                out.extend(sums.map(|s| s as f32));
            }
            out
        }
    }

    struct Params {
        trees: i64,
        max_depth: u32,
        leaf_p: f64,
        /// Every branch's mode, or `None` for a random one per node (and
        /// random missing-value routing).
        mode: Option<&'static str>,
        /// The deepest tree must reach this depth.
        min_depth: u32,
    }

    fn check(p: Params, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut f = Forest::default();
        for t in 0..p.trees {
            f.grow(&mut rng, t, 0, 0, &p);
        }
        assert!(
            f.depth >= p.min_depth,
            "the forest is only {} deep",
            f.depth
        );
        let model = f.model();
        for rows in [1usize, 100, 1500] {
            // Ties with thresholds, NaNs and other values.
            let x: Vec<f32> = (0..rows * COLS)
                .map(|_| match rng.random_range(0..4) {
                    0 => THRESHOLDS[rng.random_range(0..THRESHOLDS.len())],
                    1 => f32::NAN,
                    _ => rng.random_range(-2.0..2.0),
                })
                .collect();
            let want = f.predict(&x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
            let f64_input = Tensor {
                shape: vec![rows, COLS],
                data: TensorData::F64(x.iter().map(|&v| f64::from(v)).collect()),
            };
            for input in [Tensor::from_f32(rows, COLS, x.clone()), f64_input] {
                let out = model.run(vec![input]).unwrap();
                let Value::Tensor(Tensor {
                    data: TensorData::F32(got),
                    ..
                }) = &out[0]
                else {
                    panic!("expected an f32 tensor, got {:?}", out[0]);
                };
                assert_eq!(got.len(), want.len());
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(g.to_bits(), w.to_bits(), "row {}, target {}", i / 2, i % 2);
                }
            }
        }
    }

    #[test]
    fn shallow_forests_of_one_mode_match_the_definition() {
        // One mode throughout: the specialised comparisons.
        for (seed, mode) in MODES.iter().enumerate() {
            let p = Params {
                trees: 20,
                max_depth: 6,
                leaf_p: 0.2,
                mode: Some(mode),
                min_depth: 6,
            };
            check(p, seed as u64);
        }
    }

    #[test]
    fn mixed_modes_missing_values_and_deep_trees_match_the_definition() {
        let p = Params {
            trees: 12,
            max_depth: 18,
            leaf_p: 0.45,
            mode: None,
            // Past LOCKSTEP_DEPTH, so rows also finish their walks alone.
            min_depth: super::LOCKSTEP_DEPTH + 2,
        };
        check(p, 2);
    }
}
