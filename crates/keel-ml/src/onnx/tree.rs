//! `TreeEnsembleClassifier` and `TreeEnsembleRegressor` over flat node
//! arrays.
//!
//! At load time the per-node attribute arrays are turned into one `Vec` of
//! compact nodes with absolute child indices, plus one `Vec` of leaf
//! weights; evaluation is then a tight loop per (row, tree) with no hashing
//! and no allocation. Large batches are split over rayon's pool.
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

#[derive(Clone, Copy, Debug)]
struct Node {
    threshold: f64,
    feature: u32,
    /// For a branch: the child taken when the test holds; for a leaf: the
    /// first index into `weights`.
    yes: u32,
    /// For a branch: the other child; for a leaf: one past the last weight.
    no: u32,
    mode: Mode,
    missing_yes: bool,
}

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
    nodes: Vec<Node>,
    roots: Vec<u32>,
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
            let node = if mode == Mode::Leaf {
                let start = weights.len() as u32;
                weights.extend_from_slice(&per_node[i]);
                Node {
                    threshold: 0.0,
                    feature: 0,
                    yes: start,
                    no: weights.len() as u32,
                    mode,
                    missing_yes: false,
                }
            } else {
                let child = |c: i64| -> Result<u32, String> {
                    index.get(&(tree_ids[i], c)).copied().ok_or_else(|| {
                        format!(
                            "node {} of tree {} points to node {c}, which does not exist",
                            node_ids[i], tree_ids[i]
                        )
                    })
                };
                let (y, f) = (child(yes[i])?, child(no[i])?);
                is_child[y as usize] = true;
                is_child[f as usize] = true;
                let feature = usize::try_from(features[i])
                    .map_err(|_| format!("negative feature id {}", features[i]))?;
                max_feature = max_feature.max(feature);
                Node {
                    threshold: values[i],
                    feature: feature as u32,
                    yes: y,
                    no: f,
                    mode,
                    missing_yes: missing.get(i).is_some_and(|&m| m != 0),
                }
            };
            nodes.push(node);
        }
        // One root per tree id, in order of first appearance.
        let mut roots = Vec::new();
        let mut seen = HashMap::new();
        for i in 0..n {
            if !is_child[i] && seen.insert(tree_ids[i], i).is_none() {
                roots.push(i as u32);
            }
        }
        let trees: std::collections::HashSet<i64> = tree_ids.iter().copied().collect();
        if roots.len() != trees.len() {
            return Err("some tree has no root (its nodes form a cycle)".into());
        }
        // Reject cycles: every walk must reach a leaf within n steps.
        check_acyclic(&nodes, &roots)?;
        Ok(TreeEnsemble {
            nodes,
            roots,
            weights,
            n_out,
            max_feature,
            base: a.floats_or_tensor("base_values")?,
            post: PostTransform::parse(a)?,
            agg,
            kind,
        })
    }

    #[inline]
    fn leaf(&self, root: u32, x: &[f64]) -> &Node {
        let mut i = root as usize;
        loop {
            let n = &self.nodes[i];
            let v = x[n.feature as usize];
            let t = n.threshold;
            let go = match n.mode {
                Mode::Leq => v <= t,
                Mode::Lt => v < t,
                Mode::Gte => v >= t,
                Mode::Gt => v > t,
                Mode::Eq => v == t,
                Mode::Neq => v != t,
                Mode::Leaf => return n,
            } || (n.missing_yes && v.is_nan());
            i = if go { n.yes } else { n.no } as usize;
        }
    }

    /// Raw aggregated scores of one row: `(score, has_score)` per output.
    fn accumulate(&self, x: &[f64], scores: &mut [f64], has: &mut [bool]) {
        scores.iter_mut().for_each(|s| *s = 0.0);
        has.iter_mut().for_each(|h| *h = false);
        for &r in &self.roots {
            let leaf = self.leaf(r, x);
            for &(id, w) in &self.weights[leaf.yes as usize..leaf.no as usize] {
                let (s, h) = (&mut scores[id as usize], &mut has[id as usize]);
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

    /// Finalizes one row into `out` (width `n_out`); returns the label
    /// index for classifiers (see [`Labels::tensor`] for the sentinels).
    fn finalize(&self, scores: &mut Vec<f64>, has: &mut [bool], out: &mut [f64]) -> usize {
        match &self.kind {
            Kind::Regressor => {
                let n_trees = self.roots.len() as f64;
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

    fn rows(&self, x: &[f64], cols: usize, out: &mut [f64], labels: &mut [usize]) {
        let mut scores = vec![0.0; self.n_out];
        let mut has = vec![false; self.n_out];
        for ((row, o), l) in x
            .chunks(cols)
            .zip(out.chunks_mut(self.n_out))
            .zip(labels.iter_mut())
        {
            scores.resize(self.n_out, 0.0);
            self.accumulate(row, &mut scores, &mut has);
            *l = self.finalize(&mut scores, &mut has, o);
        }
    }
}

fn check_acyclic(nodes: &[Node], roots: &[u32]) -> Result<(), String> {
    // Depth-first walk with a step budget: a tree of n nodes visits at most
    // n nodes from its root; more means a cycle or shared children.
    let mut budget = nodes.len() * 2 + roots.len();
    let mut stack: Vec<u32> = roots.to_vec();
    while let Some(i) = stack.pop() {
        if budget == 0 {
            return Err("the trees contain a cycle".into());
        }
        budget -= 1;
        let n = &nodes[i as usize];
        if n.mode != Mode::Leaf {
            stack.push(n.yes);
            stack.push(n.no);
        }
    }
    Ok(())
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
        let xs = x.to_f64()?;
        let mut out = vec![0.0f64; n * self.n_out];
        let mut labels = vec![0usize; n];
        const CHUNK: usize = 256;
        if n >= 2 * CHUNK {
            xs.par_chunks(CHUNK * c)
                .zip(out.par_chunks_mut(CHUNK * self.n_out))
                .zip(labels.par_chunks_mut(CHUNK))
                .for_each(|((x, o), l)| self.rows(x, c, o, l));
        } else {
            self.rows(&xs, c, &mut out, &mut labels);
        }
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
