//! From a [`Config`] to the jobs of one pipeline run: `workflow:rules`,
//! predefined `CI_*` variables, variable precedence and expansion,
//! `parallel`/`parallel:matrix` instances named as GitLab names them,
//! `rules`, and the DAG (`needs`, or stage order) with its checks.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{
    self, AllowFailure, Artifacts, Changes, Config, JobDef, Need, OnlyExcept, Parallel, RefPattern,
    Retry, Rule, VarDef, When,
};
use crate::error::{Error, Pos, Result, Warning};
use crate::glob::Glob;
use crate::keelmeta::{self, KeelJob, KeelMeta};
use crate::vars::{self, RawVar};

/// What keel knows about the git checkout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitInfo {
    /// `HEAD`'s commit, if in a repository with commits.
    pub commit: Option<String>,
    /// The current branch (`None` when detached).
    pub branch: Option<String>,
    /// Whether tracked files have uncommitted changes.
    pub dirty: bool,
    /// The default branch (`origin/HEAD`, else `main`).
    pub default_branch: String,
    /// `HEAD`'s subject line.
    pub message: String,
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

impl GitInfo {
    /// Asks git about `dir` (nothing if git is missing). The three `git`
    /// calls run at once: each costs a process start, which dominates a
    /// fully cached `keel run`.
    pub fn detect(dir: &Path) -> GitInfo {
        let mut info = GitInfo {
            default_branch: "main".into(),
            ..GitInfo::default()
        };
        let (status, message, default_branch) = std::thread::scope(|s| {
            let message = s.spawn(|| {
                git(
                    dir,
                    &["log", "-1", "--format=%s%x00", "--no-show-signature"],
                )
            });
            let default_branch = s.spawn(|| {
                git(
                    dir,
                    &["symbolic-ref", "--short", "refs/remotes/origin/HEAD"],
                )
            });
            let status = git(
                dir,
                &[
                    "status",
                    "--porcelain=v2",
                    "--branch",
                    "--untracked-files=no",
                ],
            );
            (
                status,
                message.join().ok().flatten(),
                default_branch.join().ok().flatten(),
            )
        });
        let Some(status) = status else {
            return info;
        };
        for line in status.lines() {
            if let Some(oid) = line.strip_prefix("# branch.oid ") {
                info.commit = (oid != "(initial)").then(|| oid.to_string());
            } else if let Some(head) = line.strip_prefix("# branch.head ") {
                info.branch = (head != "(detached)").then(|| head.to_string());
            } else if !line.starts_with('#') {
                info.dirty = true;
            }
        }
        if let Some(out) = message {
            info.message = out.trim_end_matches('\0').to_string();
        }
        if let Some(d) = default_branch {
            info.default_branch = d.trim_start_matches("origin/").to_string();
        }
        info
    }
}

/// Files changed relative to `base` (a ref) plus uncommitted and untracked
/// changes; `None` when git cannot tell (then `rules:changes` is true, as on
/// GitLab for new branches).
pub fn changed_files(dir: &Path, base: Option<&str>) -> Option<Vec<String>> {
    let mut files: HashSet<String> = HashSet::new();
    if let Some(base) = base {
        let mb = git(dir, &["merge-base", base, "HEAD"])?;
        files.extend(
            git(dir, &["diff", "--name-only", &mb])?
                .lines()
                .map(str::to_string),
        );
    } else {
        files.extend(
            git(dir, &["diff", "--name-only", "HEAD"])?
                .lines()
                .map(str::to_string),
        );
    }
    files.extend(
        git(dir, &["ls-files", "--others", "--exclude-standard"])?
            .lines()
            .map(str::to_string),
    );
    let mut v: Vec<_> = files.into_iter().collect();
    v.sort();
    Some(v)
}

/// Inputs of a pipeline run that do not come from the file.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The project directory (jobs run there).
    pub project_dir: PathBuf,
    /// Pipeline variables (`--var K=V`): the highest precedence.
    pub variables: Vec<(String, String)>,
    /// Git facts.
    pub git: GitInfo,
    /// `CI_PIPELINE_ID`.
    pub pipeline_id: u64,
}

impl RunContext {
    /// A context for `project_dir`, asking git for the facts.
    pub fn detect(project_dir: &Path) -> RunContext {
        let pipeline_id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        RunContext {
            project_dir: project_dir.to_path_buf(),
            variables: Vec::new(),
            git: GitInfo::detect(project_dir),
            pipeline_id,
        }
    }
}

/// One runnable job instance.
#[derive(Debug, Clone)]
pub struct Job {
    /// The instance name, as GitLab names it (`train: [0.1, adam]`, `test 1/3`).
    pub name: String,
    /// The job's name in the file.
    pub base: String,
    /// Stage name.
    pub stage: String,
    /// Index into [`Pipeline::stages`].
    pub stage_index: usize,
    /// Where the job is defined.
    pub pos: Pos,
    /// `before_script` lines.
    pub before_script: Vec<String>,
    /// `script` lines.
    pub script: Vec<String>,
    /// `after_script` lines.
    pub after_script: Vec<String>,
    /// Every variable the job's shell gets, resolved.
    pub env: Vec<(String, String)>,
    /// The variables that identify the job's work: declared YAML, matrix and
    /// pipeline variables plus the job's identity, minus secrets. They go
    /// into the cache key and the lineage record.
    pub key_vars: Vec<(String, String)>,
    /// Effective `when`.
    pub when: When,
    /// Effective `allow_failure`.
    pub allow_failure: AllowFailure,
    /// `retry`.
    pub retry: Retry,
    /// `timeout`.
    pub timeout: Option<Duration>,
    /// `artifacts`, with variables expanded in paths.
    pub artifacts: Artifacts,
    /// Jobs that must finish first (indices into [`Pipeline::jobs`]).
    pub preds: Vec<usize>,
    /// Jobs whose artifacts this job receives.
    pub artifact_sources: Vec<usize>,
    /// Matrix variables of this instance, in key order.
    pub matrix: Vec<(String, String)>,
    /// `(CI_NODE_INDEX, CI_NODE_TOTAL)` for parallel jobs.
    pub node: Option<(u32, u32)>,
    /// The `.keel` entry, resolved for this instance.
    pub keel: Option<KeelJob>,
}

/// A pipeline ready to run.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The pipeline file, relative to the project.
    pub file: Arc<Path>,
    /// The project directory.
    pub project_dir: PathBuf,
    /// Stages in order.
    pub stages: Vec<String>,
    /// Job instances, in stage then file order.
    pub jobs: Vec<Job>,
    /// `false` when `workflow:rules` decided not to create the pipeline.
    pub created: bool,
    /// The `.keel` section.
    pub keel: KeelMeta,
    /// Pipeline-level variables (predefined, global and workflow), for
    /// lineage; secrets removed.
    pub variables: Vec<(String, String)>,
    /// Git facts the run used.
    pub git: GitInfo,
    /// Warnings from loading and planning.
    pub warnings: Vec<Warning>,
}

impl Pipeline {
    /// Index of the job instance called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.jobs.iter().position(|j| j.name == name)
    }
}

/// Names that look like credentials: kept out of cache keys and lineage.
pub fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "PRIVATE",
        "CREDENTIAL",
        "API_KEY",
        "ACCESS_KEY",
    ]
    .iter()
    .any(|s| n.contains(s))
}

fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let t = out.trim_matches('-');
    t.chars().take(63).collect()
}

fn raw(v: &VarDef) -> RawVar {
    RawVar {
        name: v.name.clone(),
        value: v.value.clone(),
        expand: v.expand,
    }
}

fn plain(name: &str, value: impl Into<String>) -> RawVar {
    RawVar {
        name: name.to_string(),
        value: value.into(),
        expand: false,
    }
}

fn predefined(cfg: &Config, ctx: &RunContext) -> Vec<RawVar> {
    let g = &ctx.git;
    let sha = g.commit.clone().unwrap_or_else(|| "0".repeat(40));
    let branch = g.branch.clone().unwrap_or_default();
    let project_name = ctx
        .project_dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut v = vec![
        plain("CI", "true"),
        plain("GITLAB_CI", "false"),
        plain("CI_SERVER", "no"),
        plain("KEEL", "true"),
        plain("CI_PROJECT_DIR", ctx.project_dir.to_string_lossy()),
        plain(
            "CI_BUILDS_DIR",
            ctx.project_dir
                .parent()
                .unwrap_or(&ctx.project_dir)
                .to_string_lossy(),
        ),
        plain("CI_PROJECT_NAME", project_name.clone()),
        plain("CI_PROJECT_PATH", project_name.clone()),
        plain("CI_PROJECT_PATH_SLUG", slug(&project_name)),
        plain("CI_CONFIG_PATH", cfg.file.to_string_lossy()),
        plain("CI_PIPELINE_ID", ctx.pipeline_id.to_string()),
        plain("CI_PIPELINE_IID", ctx.pipeline_id.to_string()),
        plain("CI_PIPELINE_SOURCE", "push"),
        plain("CI_PIPELINE_CREATED_AT", created),
        plain("CI_COMMIT_SHA", sha.clone()),
        plain(
            "CI_COMMIT_SHORT_SHA",
            sha.chars().take(8).collect::<String>(),
        ),
        plain("CI_COMMIT_BEFORE_SHA", "0".repeat(40)),
        plain("CI_COMMIT_REF_NAME", branch.clone()),
        plain("CI_COMMIT_REF_SLUG", slug(&branch)),
        plain("CI_COMMIT_MESSAGE", g.message.clone()),
        plain(
            "CI_COMMIT_TITLE",
            g.message.lines().next().unwrap_or("").to_string(),
        ),
        plain("CI_DEFAULT_BRANCH", g.default_branch.clone()),
    ];
    if g.branch.is_some() {
        v.push(plain("CI_COMMIT_BRANCH", branch));
    }
    v
}

struct Planner<'a> {
    ctx: &'a RunContext,
    changed: Option<Option<Vec<String>>>,
    warnings: Vec<Warning>,
}

impl Planner<'_> {
    fn rule_matches(&mut self, rule: &Rule, vars: &HashMap<String, String>) -> Result<bool> {
        if let Some((expr, text)) = &rule.if_ {
            let ok = expr
                .eval(&|n| vars.get(n).cloned())
                .map_err(|m| Error::config(&rule.pos, "rules.if", format!("{text:?}: {m}")))?;
            if !ok {
                return Ok(false);
            }
        }
        if let Some(ch) = &rule.changes {
            if !self.changes_match(ch, vars, &rule.pos, "rules.changes")? {
                return Ok(false);
            }
        }
        if let Some(ex) = &rule.exists {
            let mut any = false;
            for p in ex {
                let p = vars::expand(p, &|n| vars.get(n).cloned(), false);
                let g = Glob::new(&p).ok_or_else(|| {
                    Error::config(&rule.pos, "rules.exists", format!("malformed glob {p:?}"))
                })?;
                if crate::glob::is_glob(&p) {
                    if !config::walk_matches(&self.ctx.project_dir, &g).is_empty() {
                        any = true;
                    }
                } else if self.ctx.project_dir.join(&p).exists() {
                    any = true;
                }
                if any {
                    break;
                }
            }
            if !any {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether a file matching `ch` changed; true when git cannot tell
    /// (as on GitLab for a new branch).
    fn changes_match(
        &mut self,
        ch: &Changes,
        vars: &HashMap<String, String>,
        pos: &Pos,
        key: &str,
    ) -> Result<bool> {
        let files = match &ch.compare_to {
            Some(base) => changed_files(&self.ctx.project_dir, Some(base)),
            None => self
                .changed
                .get_or_insert_with(|| changed_files(&self.ctx.project_dir, None))
                .clone(),
        };
        let Some(files) = files else {
            return Ok(true);
        };
        for p in &ch.paths {
            let p = vars::expand(p, &|n| vars.get(n).cloned(), false);
            let g = Glob::new(&p)
                .ok_or_else(|| Error::config(pos, key, format!("malformed glob {p:?}")))?;
            if files
                .iter()
                .any(|f| g.is_match(f) || f.starts_with(&format!("{}/", p.trim_end_matches('/'))))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether `only`/`except` keep the job. `only` keeps it when every
    /// key given matches; `except` drops it when any key given matches.
    fn only_except_admits(&mut self, def: &JobDef, vars: &HashMap<String, String>) -> Result<bool> {
        if let Some(only) = &def.only {
            let key = format!("{}.only", def.name);
            if !self.keys_match(only, vars, true, &key)? {
                return Ok(false);
            }
        }
        if let Some(except) = &def.except {
            let key = format!("{}.except", def.name);
            if self.keys_match(except, vars, false, &key)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `all`: every key given matches; else: any key given matches. Each
    /// key matches when any of its entries does.
    fn keys_match(
        &mut self,
        oe: &OnlyExcept,
        vars: &HashMap<String, String>,
        all: bool,
        key: &str,
    ) -> Result<bool> {
        let lookup = |n: &str| vars.get(n).cloned();
        let set = |n: &str| vars.get(n).is_some_and(|v| !v.is_empty());
        let mut results = Vec::new();
        if let Some(refs) = &oe.refs {
            let source = vars.get("CI_PIPELINE_SOURCE").map_or("", String::as_str);
            let mut any = false;
            for r in refs {
                any = match r {
                    RefPattern::Keyword(k) => match k.as_str() {
                        "branches" => set("CI_COMMIT_BRANCH"),
                        "tags" => set("CI_COMMIT_TAG"),
                        "pushes" => source == "push",
                        "merge_requests" => source == "merge_request_event",
                        "external_pull_requests" => source == "external_pull_request_event",
                        "schedules" => source == "schedule",
                        "triggers" => source == "trigger",
                        "pipelines" => source == "pipeline" || source == "parent_pipeline",
                        other => source == other,
                    },
                    RefPattern::Name(n) => vars.get("CI_COMMIT_REF_NAME") == Some(n),
                    RefPattern::Regex(e, text) => e.eval(&lookup).map_err(|m| {
                        Error::config(&oe.pos, format!("{key}.refs"), format!("{text:?}: {m}"))
                    })?,
                };
                if any {
                    break;
                }
            }
            results.push(any);
        }
        if let Some(exprs) = &oe.variables {
            let mut any = false;
            for (e, text) in exprs {
                any = e.eval(&lookup).map_err(|m| {
                    Error::config(
                        &oe.pos,
                        format!("{key}.variables"),
                        format!("{text:?}: {m}"),
                    )
                })?;
                if any {
                    break;
                }
            }
            results.push(any);
        }
        if let Some(ch) = &oe.changes {
            results.push(self.changes_match(ch, vars, &oe.pos, &format!("{key}.changes"))?);
        }
        Ok(if all {
            results.iter().all(|&b| b)
        } else {
            results.iter().any(|&b| b)
        })
    }
}

fn resolve_vars(raw: &[RawVar], pos: &Pos, key: &str) -> Result<Vec<(String, String)>> {
    vars::resolve(raw).map_err(|m| Error::config(pos, key, m))
}

/// Instances of a job: (name, matrix vars, node index/total).
/// A parallel instance: its name, matrix variables and node index/total.
type Instance = (String, Vec<(String, String)>, Option<(u32, u32)>);

fn instances(def: &JobDef) -> Vec<Instance> {
    match &def.parallel {
        Parallel::None => vec![(def.name.clone(), Vec::new(), None)],
        Parallel::Count(n) => (1..=*n)
            .map(|i| (format!("{} {i}/{n}", def.name), Vec::new(), Some((i, *n))))
            .collect(),
        Parallel::Matrix(entries) => {
            let mut combos: Vec<Vec<(String, String)>> = Vec::new();
            for entry in entries {
                let mut acc: Vec<Vec<(String, String)>> = vec![Vec::new()];
                for (name, values) in entry {
                    let mut next = Vec::new();
                    for a in &acc {
                        for v in values {
                            let mut c = a.clone();
                            c.push((name.clone(), v.clone()));
                            next.push(c);
                        }
                    }
                    acc = next;
                }
                combos.extend(acc);
            }
            let total = combos.len() as u32;
            combos
                .into_iter()
                .enumerate()
                .map(|(i, c)| {
                    let vals: Vec<&str> = c.iter().map(|(_, v)| v.as_str()).collect();
                    (
                        format!("{}: [{}]", def.name, vals.join(", ")),
                        c,
                        Some((i as u32 + 1, total)),
                    )
                })
                .collect()
        }
    }
}

fn matrix_selects(sel: &[config::MatrixEntry], vars: &[(String, String)]) -> bool {
    sel.iter().any(|entry| {
        entry.iter().all(|(k, values)| {
            vars.iter()
                .find(|(n, _)| n == k)
                .is_some_and(|(_, v)| values.contains(v))
        })
    })
}

/// Static DAG checks on the file: undefined needs/dependencies, needs on a
/// later stage, cycles. They hold whatever the rules decide.
pub fn check_graph(cfg: &Config) -> Result<()> {
    let by_name: HashMap<&str, &JobDef> = cfg.jobs.iter().map(|j| (j.name.as_str(), j)).collect();
    let stage_ix = |s: &str| cfg.stages.iter().position(|x| x == s).unwrap_or(0);
    for job in &cfg.jobs {
        let mut all_needs: Vec<&Need> = job.needs.iter().flatten().collect();
        for r in job.rules.iter().flatten() {
            all_needs.extend(r.needs.iter().flatten());
        }
        for n in all_needs {
            let Some(target) = by_name.get(n.job.as_str()) else {
                if n.optional {
                    continue;
                }
                return Err(Error::config(
                    &n.pos,
                    format!("{}.needs", job.name),
                    format!("job {:?} needs {:?}, which is not defined", job.name, n.job),
                ));
            };
            if stage_ix(&target.stage) > stage_ix(&job.stage) {
                return Err(Error::config(
                    &n.pos,
                    format!("{}.needs", job.name),
                    format!(
                        "{:?} is in stage {:?}, after this job's stage {:?}",
                        n.job, target.stage, job.stage
                    ),
                ));
            }
            if let Some(sel) = &n.matrix {
                let insts = instances(target);
                if !insts.iter().any(|(_, vars, _)| matrix_selects(sel, vars)) {
                    return Err(Error::config(
                        &n.pos,
                        format!("{}.needs.parallel.matrix", job.name),
                        format!("selects no instance of {:?}", n.job),
                    ));
                }
            }
        }
        for (d, pos) in job.dependencies.iter().flatten() {
            let Some(target) = by_name.get(d.as_str()) else {
                return Err(Error::config(
                    pos,
                    format!("{}.dependencies", job.name),
                    format!("{d:?} is not defined"),
                ));
            };
            if stage_ix(&target.stage) > stage_ix(&job.stage)
                || (stage_ix(&target.stage) == stage_ix(&job.stage)
                    && !job.needs.iter().flatten().any(|n| n.job == *d))
            {
                return Err(Error::config(
                    pos,
                    format!("{}.dependencies", job.name),
                    format!("{d:?} is not in a prior stage (or in `needs`)"),
                ));
            }
        }
    }
    // Cycles through `needs` (only possible within one stage).
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark: HashMap<&str, Mark> = cfg
        .jobs
        .iter()
        .map(|j| (j.name.as_str(), Mark::New))
        .collect();
    fn visit<'a>(
        name: &'a str,
        by_name: &HashMap<&str, &'a JobDef>,
        mark: &mut HashMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Result<()> {
        mark.insert(name, Mark::Active);
        path.push(name);
        let job = by_name[name];
        for n in job.needs.iter().flatten() {
            let Some(target) = by_name.get(n.job.as_str()) else {
                continue;
            };
            match mark[target.name.as_str()] {
                Mark::Active => {
                    let start = path.iter().position(|p| *p == target.name).unwrap_or(0);
                    let mut cycle: Vec<&str> = path[start..].to_vec();
                    cycle.push(&target.name);
                    return Err(Error::config(
                        &n.pos,
                        format!("{name}.needs"),
                        format!("`needs` cycle: {}", cycle.join(" -> ")),
                    ));
                }
                Mark::New => visit(&target.name, by_name, mark, path)?,
                Mark::Done => {}
            }
        }
        path.pop();
        mark.insert(name, Mark::Done);
        Ok(())
    }
    for job in &cfg.jobs {
        if mark[job.name.as_str()] == Mark::New {
            visit(&job.name, &by_name, &mut mark, &mut Vec::new())?;
        }
    }
    Ok(())
}

/// Plans the pipeline `cfg` for one run.
pub fn plan(cfg: &Config, ctx: &RunContext) -> Result<Pipeline> {
    check_graph(cfg)?;
    let keel = keelmeta::parse(cfg)?;
    let mut planner = Planner {
        ctx,
        changed: None,
        warnings: cfg.warnings.clone(),
    };
    let pre = predefined(cfg, ctx);
    let pipeline_vars: Vec<RawVar> = ctx
        .variables
        .iter()
        .map(|(k, v)| plain(k, v.clone()))
        .collect();
    let global: Vec<RawVar> = cfg.variables.iter().map(raw).collect();

    // workflow:rules
    let mut created = true;
    let mut workflow_vars: Vec<RawVar> = Vec::new();
    if let Some(rules) = &cfg.workflow_rules {
        let collection: Vec<RawVar> = pre
            .iter()
            .chain(&global)
            .chain(&pipeline_vars)
            .cloned()
            .collect();
        let resolved: HashMap<String, String> =
            resolve_vars(&collection, &cfg.jobs[0].pos, "variables")?
                .into_iter()
                .collect();
        created = false;
        for r in rules {
            if planner.rule_matches(r, &resolved)? {
                created = r.when != Some(When::Never);
                workflow_vars = r.variables.iter().map(raw).collect();
                break;
            }
        }
    }
    let pipeline_level: Vec<RawVar> = pre
        .iter()
        .chain(&global)
        .chain(&workflow_vars)
        .chain(&pipeline_vars)
        .cloned()
        .collect();
    let pipeline_variables: Vec<(String, String)> =
        resolve_vars(&pipeline_level, &cfg.jobs[0].pos, "variables")?
            .into_iter()
            .filter(|(k, _)| !is_secret(k))
            .collect();

    // Instances that survive the rules, in stage order then file order.
    struct Planned {
        job: Job,
        needs: Option<Vec<Need>>,
        dependencies: Option<Vec<(String, Pos)>>,
    }
    let mut planned: Vec<Planned> = Vec::new();
    if created {
        for (stage_index, stage) in cfg.stages.iter().enumerate() {
            for def in cfg.jobs.iter().filter(|j| &j.stage == stage) {
                for (name, matrix, node) in instances(def) {
                    let inherited: Vec<RawVar> = global
                        .iter()
                        .filter(|v| def.inherit_variables_allows(&v.name))
                        .cloned()
                        .collect();
                    let mut job_pre = vec![
                        plain("CI_JOB_NAME", name.clone()),
                        plain("CI_JOB_NAME_SLUG", slug(&name)),
                        plain("CI_JOB_STAGE", stage.clone()),
                        plain(
                            "CI_JOB_ID",
                            format!("{}{:03}", ctx.pipeline_id, planned.len() + 1),
                        ),
                    ];
                    if let Some((i, n)) = node {
                        job_pre.push(plain("CI_NODE_INDEX", i.to_string()));
                        job_pre.push(plain("CI_NODE_TOTAL", n.to_string()));
                    }
                    let job_vars: Vec<RawVar> = def.variables.iter().map(raw).collect();
                    let matrix_vars: Vec<RawVar> =
                        matrix.iter().map(|(k, v)| plain(k, v.clone())).collect();
                    let build = |rule_vars: &[RawVar]| -> Vec<RawVar> {
                        pre.iter()
                            .chain(&job_pre)
                            .chain(&inherited)
                            .chain(&workflow_vars)
                            .chain(&job_vars)
                            .chain(&matrix_vars)
                            .chain(rule_vars)
                            .chain(&pipeline_vars)
                            .cloned()
                            .collect()
                    };
                    let key = format!("{}.variables", def.name);
                    let mut collection = build(&[]);
                    let mut env = resolve_vars(&collection, &def.pos, &key)?;
                    let mut when = def.when;
                    let mut allow = def
                        .allow_failure
                        .clone()
                        .unwrap_or(AllowFailure::Bool(def.when == When::Manual));
                    let mut needs = def.needs.clone();
                    if def.rules.is_none() && (def.only.is_some() || def.except.is_some()) {
                        let lookup: HashMap<String, String> = env.iter().cloned().collect();
                        if !planner.only_except_admits(def, &lookup)? {
                            continue;
                        }
                    }
                    if let Some(rules) = &def.rules {
                        let lookup: HashMap<String, String> = env.iter().cloned().collect();
                        let mut matched = None;
                        for r in rules {
                            if planner.rule_matches(r, &lookup)? {
                                matched = Some(r);
                                break;
                            }
                        }
                        let Some(r) = matched else { continue };
                        when = r.when.unwrap_or(def.when);
                        allow = match (r.allow_failure, &def.allow_failure) {
                            (Some(b), _) => AllowFailure::Bool(b),
                            (None, Some(a)) => a.clone(),
                            (None, None) => AllowFailure::Bool(false),
                        };
                        if r.needs.is_some() {
                            needs = r.needs.clone();
                        }
                        if !r.variables.is_empty() {
                            let rv: Vec<RawVar> = r.variables.iter().map(raw).collect();
                            collection = build(&rv);
                            env = resolve_vars(&collection, &r.pos, &key)?;
                        }
                    }
                    if when == When::Never {
                        continue;
                    }
                    let declared: HashSet<&str> = inherited
                        .iter()
                        .chain(&workflow_vars)
                        .chain(&job_vars)
                        .chain(&matrix_vars)
                        .chain(&pipeline_vars)
                        .map(|v| v.name.as_str())
                        .chain([
                            "CI_JOB_NAME",
                            "CI_JOB_STAGE",
                            "CI_NODE_INDEX",
                            "CI_NODE_TOTAL",
                        ])
                        .chain(
                            collection
                                .iter()
                                .skip(pre.len() + job_pre.len())
                                .map(|v| v.name.as_str()),
                        )
                        .collect();
                    let mut key_vars: Vec<(String, String)> = env
                        .iter()
                        .filter(|(k, _)| declared.contains(k.as_str()) && !is_secret(k))
                        .cloned()
                        .collect();
                    key_vars.sort();
                    let lookup: HashMap<String, String> = env.iter().cloned().collect();
                    let mut artifacts = def.artifacts.clone();
                    let exp = |p: &String| vars::expand(p, &|n| lookup.get(n).cloned(), false);
                    artifacts.paths = artifacts.paths.iter().map(exp).collect();
                    artifacts.exclude = artifacts.exclude.iter().map(exp).collect();
                    let keel_job = match keel.jobs.get(&def.name) {
                        Some(k) => Some(k.resolve(&def.name, &lookup, &artifacts.paths)?),
                        None => None,
                    };
                    planned.push(Planned {
                        job: Job {
                            name,
                            base: def.name.clone(),
                            stage: stage.clone(),
                            stage_index,
                            pos: def.pos.clone(),
                            before_script: def.before_script.clone(),
                            script: def.script.clone(),
                            after_script: def.after_script.clone(),
                            env,
                            key_vars,
                            when,
                            allow_failure: allow,
                            retry: def.retry.clone(),
                            timeout: def.timeout,
                            artifacts,
                            preds: Vec::new(),
                            artifact_sources: Vec::new(),
                            matrix,
                            node,
                            keel: keel_job,
                        },
                        needs,
                        dependencies: def.dependencies.clone(),
                    });
                }
            }
        }
    }

    // Edges.
    let mut by_base: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, p) in planned.iter().enumerate() {
        by_base.entry(p.job.base.clone()).or_default().push(i);
    }
    let mut seen_names = HashSet::new();
    for p in &planned {
        if !seen_names.insert(p.job.name.clone()) {
            return Err(Error::config(
                &p.job.pos,
                &p.job.base,
                format!("two jobs are named {:?}", p.job.name),
            ));
        }
    }
    let stage_of: Vec<usize> = planned.iter().map(|p| p.job.stage_index).collect();
    let names: Vec<(String, Vec<(String, String)>)> = planned
        .iter()
        .map(|p| (p.job.base.clone(), p.job.matrix.clone()))
        .collect();
    for (i, p) in planned.iter_mut().enumerate() {
        let earlier: Vec<usize> = (0..stage_of.len())
            .filter(|&j| stage_of[j] < stage_of[i])
            .collect();
        let (preds, mut sources) = match &p.needs {
            Some(needs) => {
                let mut preds = Vec::new();
                let mut sources = Vec::new();
                for n in needs {
                    let Some(targets) = by_base.get(&n.job) else {
                        if n.optional {
                            continue;
                        }
                        return Err(Error::config(
                            &n.pos,
                            format!("{}.needs", p.job.base),
                            format!(
                                "job {:?} needs {:?}, which is not in this pipeline (its rules excluded it); use `optional: true`",
                                p.job.base, n.job
                            ),
                        ));
                    };
                    for &t in targets {
                        if let Some(sel) = &n.matrix {
                            if !matrix_selects(sel, &names[t].1) {
                                continue;
                            }
                        }
                        preds.push(t);
                        if n.artifacts {
                            sources.push(t);
                        }
                    }
                }
                (preds, sources)
            }
            None => (earlier.clone(), earlier),
        };
        if let Some(deps) = &p.dependencies {
            sources = deps
                .iter()
                .flat_map(|(d, _)| by_base.get(d).cloned().unwrap_or_default())
                .collect();
        }
        p.job.preds = preds;
        sources.sort_unstable();
        sources.dedup();
        p.job.artifact_sources = sources;
    }
    let jobs: Vec<Job> = planned.into_iter().map(|p| p.job).collect();
    Ok(Pipeline {
        file: cfg.file.clone(),
        project_dir: ctx.project_dir.clone(),
        stages: cfg.stages.clone(),
        jobs,
        created,
        keel,
        variables: pipeline_variables,
        git: ctx.git.clone(),
        warnings: planner.warnings,
    })
}

impl JobDef {
    fn inherit_variables_allows(&self, name: &str) -> bool {
        match &self.inherit_variables {
            config::Inherit::All => true,
            config::Inherit::None => false,
            config::Inherit::Only(v) => v.iter().any(|n| n == name),
        }
    }
}
