//! The hidden top-level `.keel` key: keel's own per-job caching metadata.
//!
//! ```yaml
//! .keel:
//!   params_file: params.yaml
//!   jobs:
//!     train:
//!       deps: [scripts/train.py, data/processed/]
//!       params: [train.lr, train.epochs]
//!       outs: ["models/model-${LR}.onnx"]
//!       metrics: ["metrics/train-${LR}.json"]
//! ```
//!
//! GitLab ignores hidden keys, so the file stays valid there. Entries are
//! keyed by base job name and apply to every parallel instance, with
//! `${VAR}` expanded from that instance's variables.

use std::collections::HashMap;

use crate::config::Config;
use crate::error::{Error, Pos, Result};
use crate::vars;
use crate::yaml::Node;

/// The whole `.keel` section.
#[derive(Debug, Clone, Default)]
pub struct KeelMeta {
    /// Where params come from (default `params.yaml`).
    pub params_file: String,
    /// Per base job.
    pub jobs: HashMap<String, KeelJobDef>,
}

/// One job's entry, unexpanded.
#[derive(Debug, Clone)]
pub struct KeelJobDef {
    /// Where the entry is.
    pub pos: Pos,
    /// Files and directories the job reads.
    pub deps: Vec<(String, Pos)>,
    /// Dotted keys into the params file.
    pub params: Vec<(String, Pos)>,
    /// What the job produces; `None` means "its `artifacts:paths`".
    pub outs: Option<Vec<(String, Pos)>>,
    /// Metric files (JSON) the job writes; also cached like outs.
    pub metrics: Vec<(String, Pos)>,
}

/// One job instance's resolved caching metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeelJob {
    /// Dep paths.
    pub deps: Vec<String>,
    /// Param keys.
    pub params: Vec<String>,
    /// Out paths or globs.
    pub outs: Vec<String>,
    /// Metric file paths.
    pub metrics: Vec<String>,
}

fn path_list(n: &Node, key: &str) -> Result<Vec<(String, Pos)>> {
    let items = n
        .as_seq()
        .ok_or_else(|| Error::config(&n.pos, key, "must be a list of paths"))?;
    items
        .iter()
        .map(|i| {
            i.as_str()
                .map(|s| (s.to_string(), i.pos.clone()))
                .ok_or_else(|| Error::config(&i.pos, key, "must be a path string"))
        })
        .collect()
}

/// Reads the `.keel` section of `config` and checks it names real jobs.
pub fn parse(config: &Config) -> Result<KeelMeta> {
    let mut meta = KeelMeta {
        params_file: "params.yaml".into(),
        jobs: HashMap::new(),
    };
    let Some(node) = &config.keel else {
        return Ok(meta);
    };
    if node.is_null() {
        return Ok(meta);
    }
    let map = node
        .as_map()
        .ok_or_else(|| Error::config(&node.pos, ".keel", "must be a mapping"))?;
    for e in map {
        let k = format!(".keel.{}", e.key);
        match e.key.as_str() {
            "version" => {
                if e.value.as_int() != Some(1) {
                    return Err(Error::config(&e.value.pos, &k, "only version 1 exists"));
                }
            }
            "params_file" => {
                meta.params_file = e
                    .value
                    .as_str()
                    .ok_or_else(|| Error::config(&e.value.pos, &k, "must be a path"))?
                    .to_string()
            }
            "jobs" => {
                let jobs = e.value.as_map().ok_or_else(|| {
                    Error::config(&e.value.pos, &k, "must map job names to entries")
                })?;
                for j in jobs {
                    let jk = format!("{k}.{}", j.key);
                    if !config.jobs.iter().any(|d| d.name == j.key) {
                        return Err(Error::config(
                            &j.key_pos,
                            &jk,
                            format!("no job named {:?} in the pipeline", j.key),
                        ));
                    }
                    let fields = j
                        .value
                        .as_map()
                        .ok_or_else(|| Error::config(&j.value.pos, &jk, "must be a mapping"))?;
                    let mut def = KeelJobDef {
                        pos: j.key_pos.clone(),
                        deps: Vec::new(),
                        params: Vec::new(),
                        outs: None,
                        metrics: Vec::new(),
                    };
                    for f in fields {
                        let fk = format!("{jk}.{}", f.key);
                        match f.key.as_str() {
                            "deps" => def.deps = path_list(&f.value, &fk)?,
                            "params" => def.params = path_list(&f.value, &fk)?,
                            "outs" => def.outs = Some(path_list(&f.value, &fk)?),
                            "metrics" => def.metrics = path_list(&f.value, &fk)?,
                            _ => {
                                return Err(Error::config(
                                    &f.key_pos,
                                    &fk,
                                    "unknown key (expected deps, params, outs, metrics)",
                                ))
                            }
                        }
                    }
                    meta.jobs.insert(j.key.clone(), def);
                }
            }
            _ => {
                return Err(Error::config(
                    &e.key_pos,
                    &k,
                    "unknown key (expected version, params_file, jobs)",
                ))
            }
        }
    }
    Ok(meta)
}

impl KeelJobDef {
    /// Expands `${VAR}` in every path with one instance's variables;
    /// `artifact_paths` stand in for missing `outs`.
    pub fn resolve(
        &self,
        job: &str,
        env: &HashMap<String, String>,
        artifact_paths: &[String],
    ) -> Result<KeelJob> {
        let one = |(p, pos): &(String, Pos), key: &str| -> Result<String> {
            for r in vars::references(p) {
                if !env.contains_key(&r) {
                    return Err(Error::config(
                        pos,
                        format!(".keel.jobs.{job}.{key}"),
                        format!("${{{r}}} is not a variable of this job"),
                    ));
                }
            }
            Ok(vars::expand(p, &|n| env.get(n).cloned(), false))
        };
        let list = |items: &[(String, Pos)], key: &str| -> Result<Vec<String>> {
            items.iter().map(|i| one(i, key)).collect()
        };
        Ok(KeelJob {
            deps: list(&self.deps, "deps")?,
            params: self.params.iter().map(|(p, _)| p.clone()).collect(),
            outs: match &self.outs {
                Some(o) => list(o, "outs")?,
                None => artifact_paths.to_vec(),
            },
            metrics: list(&self.metrics, "metrics")?,
        })
    }
}
