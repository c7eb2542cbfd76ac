//! Loading a `.gitlab-ci.yml` into typed job definitions.
//!
//! The order follows GitLab's: parse, merge `include: local` files (the
//! including file wins, hashes deep-merged), resolve `!reference` tags,
//! resolve `extends` (deep merge of hashes, arrays and scalars replaced,
//! the job's own keys win), apply `default:` and global `variables`
//! (honouring `inherit`), then validate every job's keys and values.
//! Everything keeps its source position so errors name file, line, column
//! and key.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::duration;
use crate::error::{Error, Pos, Result, Warning};
use crate::expr::Expr;
use crate::glob::{self, Glob};
use crate::yaml::{self, Entry, Node, Value};

/// When a job runs, relative to its predecessors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// All predecessors succeeded (the default).
    OnSuccess,
    /// At least one predecessor failed.
    OnFailure,
    /// Regardless of predecessors.
    Always,
    /// Only when asked for (`keel run --manual`).
    Manual,
    /// GitLab's `delayed`; run locally without the delay.
    Delayed,
    /// Never (only meaningful in `rules`).
    Never,
}

impl When {
    fn parse(n: &Node, key: &str) -> Result<When> {
        match n.as_str() {
            Some("on_success") => Ok(When::OnSuccess),
            Some("on_failure") => Ok(When::OnFailure),
            Some("always") => Ok(When::Always),
            Some("manual") => Ok(When::Manual),
            Some("delayed") => Ok(When::Delayed),
            Some("never") => Ok(When::Never),
            _ => Err(Error::config(
                &n.pos,
                key,
                "must be one of on_success, on_failure, always, manual, delayed, never",
            )),
        }
    }
}

/// A variable as declared in YAML.
#[derive(Debug, Clone)]
pub struct VarDef {
    /// Name.
    pub name: String,
    /// Value as written (numbers and booleans as text).
    pub value: String,
    /// `false` when declared with `expand: false`.
    pub expand: bool,
    /// Where it is declared.
    pub pos: Pos,
}

/// One entry of `needs`.
#[derive(Debug, Clone)]
pub struct Need {
    /// The needed job's name (the base name for parallel jobs).
    pub job: String,
    /// `artifacts: false` opts out of its artifacts.
    pub artifacts: bool,
    /// `optional: true` tolerates the job being absent from the pipeline.
    pub optional: bool,
    /// `parallel:matrix` selection of specific instances.
    pub matrix: Option<Vec<MatrixEntry>>,
    /// Where the entry is.
    pub pos: Pos,
}

/// One map of `parallel:matrix`: variable name to its values, in key order.
pub type MatrixEntry = Vec<(String, Vec<String>)>;

/// `parallel`.
#[derive(Debug, Clone)]
pub enum Parallel {
    /// No parallelism.
    None,
    /// `parallel: N`.
    Count(u32),
    /// `parallel: {matrix: [...]}`.
    Matrix(Vec<MatrixEntry>),
}

/// `allow_failure`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowFailure {
    /// `true` / `false`.
    Bool(bool),
    /// `{exit_codes: [...]}`: only these exit codes are tolerated.
    ExitCodes(Vec<i32>),
}

/// `retry`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retry {
    /// Retries after the first attempt (0..=2).
    pub max: u32,
    /// Failure kinds that are retried (`always`, `script_failure`,
    /// `stuck_or_timeout_failure`, …); empty means `always`.
    pub when: Vec<String>,
    /// Exit codes that are retried; empty means any.
    pub exit_codes: Vec<i32>,
}

/// `artifacts`.
#[derive(Debug, Clone, Default)]
pub struct Artifacts {
    /// `paths` (globs allowed).
    pub paths: Vec<String>,
    /// `exclude` globs.
    pub exclude: Vec<String>,
    /// `when`: `on_success` (default), `on_failure` or `always`.
    pub when: Option<When>,
    /// `expire_in` as written.
    pub expire_in: Option<String>,
    /// `expire_in` parsed; `None` for never or unset.
    pub expire_after: Option<Duration>,
}

/// `rules:changes`.
#[derive(Debug, Clone)]
pub struct Changes {
    /// Globs.
    pub paths: Vec<String>,
    /// `compare_to` ref, if given.
    pub compare_to: Option<String>,
}

/// One entry of `rules` or `workflow:rules`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Where the rule is.
    pub pos: Pos,
    /// `if`, parsed, with its text.
    pub if_: Option<(Expr, String)>,
    /// `changes`.
    pub changes: Option<Changes>,
    /// `exists` globs.
    pub exists: Option<Vec<String>>,
    /// `when`.
    pub when: Option<When>,
    /// `allow_failure`.
    pub allow_failure: Option<bool>,
    /// `variables`.
    pub variables: Vec<VarDef>,
    /// `needs` (replaces the job's).
    pub needs: Option<Vec<Need>>,
}

/// `only` / `except`, the keywords `rules` replaced. `only` adds the job
/// when every key given matches (each key: any of its entries); `except`
/// removes it when any key given matches.
#[derive(Debug, Clone)]
pub struct OnlyExcept {
    /// Where the keyword's value is.
    pub pos: Pos,
    /// `refs` (or the plain list form).
    pub refs: Option<Vec<RefPattern>>,
    /// `variables`: expressions, parsed, with their text.
    pub variables: Option<Vec<(Expr, String)>>,
    /// `changes`.
    pub changes: Option<Changes>,
}

/// One entry of `only:refs` / `except:refs`.
#[derive(Debug, Clone)]
pub enum RefPattern {
    /// A keyword: `branches`, `tags`, `pushes`, `merge_requests`, …
    Keyword(String),
    /// A ref name, matched exactly.
    Name(String),
    /// `/regex/`, matched against the ref name.
    Regex(Expr, String),
}

/// The `only:refs` keywords GitLab defines.
const REF_KEYWORDS: &[&str] = &[
    "api",
    "branches",
    "chat",
    "external",
    "external_pull_requests",
    "merge_requests",
    "pipelines",
    "pushes",
    "schedules",
    "tags",
    "triggers",
    "web",
];

impl RefPattern {
    fn parse(text: &str) -> std::result::Result<RefPattern, String> {
        if REF_KEYWORDS.contains(&text) {
            return Ok(RefPattern::Keyword(text.to_string()));
        }
        if text.starts_with('/') {
            let e = Expr::parse(&format!("$CI_COMMIT_REF_NAME =~ {text}"))?;
            return Ok(RefPattern::Regex(e, text.to_string()));
        }
        // `ref@group/project` restricts to one project; locally there is
        // only this one.
        let name = text.split_once('@').map_or(text, |(r, _)| r);
        Ok(RefPattern::Name(name.to_string()))
    }
}

/// `inherit:variables` / `inherit:default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inherit {
    /// Inherit everything (the default).
    All,
    /// Inherit nothing.
    None,
    /// Inherit only these names.
    Only(Vec<String>),
}

impl Inherit {
    fn allows(&self, name: &str) -> bool {
        match self {
            Inherit::All => true,
            Inherit::None => false,
            Inherit::Only(v) => v.iter().any(|n| n == name),
        }
    }
}

/// A visible job after `extends`, `default:` and validation.
#[derive(Debug, Clone)]
pub struct JobDef {
    /// The job's name (the base name for parallel jobs).
    pub name: String,
    /// Where the job's key is.
    pub pos: Pos,
    /// The stage (`test` when not given).
    pub stage: String,
    /// Where `stage` is (or the job's position).
    pub stage_pos: Pos,
    /// `before_script` lines.
    pub before_script: Vec<String>,
    /// `script` lines.
    pub script: Vec<String>,
    /// `after_script` lines.
    pub after_script: Vec<String>,
    /// Job-level variables.
    pub variables: Vec<VarDef>,
    /// `inherit:variables`.
    pub inherit_variables: Inherit,
    /// `artifacts`.
    pub artifacts: Artifacts,
    /// `needs`, if given (`Some(vec![])` is `needs: []`).
    pub needs: Option<Vec<Need>>,
    /// `dependencies`, if given.
    pub dependencies: Option<Vec<(String, Pos)>>,
    /// `rules`, if given.
    pub rules: Option<Vec<Rule>>,
    /// `only`, if given.
    pub only: Option<OnlyExcept>,
    /// `except`, if given.
    pub except: Option<OnlyExcept>,
    /// Job-level `when`.
    pub when: When,
    /// Job-level `allow_failure`, if given.
    pub allow_failure: Option<AllowFailure>,
    /// `retry`.
    pub retry: Retry,
    /// `timeout`.
    pub timeout: Option<Duration>,
    /// `parallel`.
    pub parallel: Parallel,
    /// Where `parallel` is.
    pub parallel_pos: Pos,
}

/// A loaded, validated configuration (before rules and parallel expansion).
#[derive(Debug, Clone)]
pub struct Config {
    /// The main file.
    pub file: Arc<Path>,
    /// The project directory (includes and globs are relative to it).
    pub project_dir: PathBuf,
    /// Stages in order, `.pre` first and `.post` last.
    pub stages: Vec<String>,
    /// Global variables.
    pub variables: Vec<VarDef>,
    /// `workflow:rules`, if any.
    pub workflow_rules: Option<Vec<Rule>>,
    /// Visible jobs in file order.
    pub jobs: Vec<JobDef>,
    /// The raw `.keel` node, if present.
    pub keel: Option<Node>,
    /// Ignored keys and other remarks, each reported once.
    pub warnings: Vec<Warning>,
}

const GLOBAL_KEYS: &[&str] = &[
    "$schema",
    "spec",
    "image",
    "services",
    "before_script",
    "after_script",
    "variables",
    "cache",
    "default",
    "stages",
    "include",
    "workflow",
];
const DEFAULT_KEYS: &[&str] = &[
    "after_script",
    "artifacts",
    "before_script",
    "hooks",
    "cache",
    "image",
    "interruptible",
    "id_tokens",
    "identity",
    "retry",
    "services",
    "tags",
    "timeout",
];
/// Job keys keel implements.
const JOB_KEYS: &[&str] = &[
    "script",
    "before_script",
    "after_script",
    "stage",
    "variables",
    "artifacts",
    "needs",
    "dependencies",
    "rules",
    "only",
    "except",
    "when",
    "allow_failure",
    "retry",
    "timeout",
    "parallel",
    "extends",
    "inherit",
    "start_in",
];
/// Job keys GitLab accepts that keel cannot honour locally: accepted and
/// reported once.
const IGNORED_JOB_KEYS: &[&str] = &[
    "image",
    "services",
    "tags",
    "environment",
    "cache",
    "interruptible",
    "coverage",
    "id_tokens",
    "identity",
    "secrets",
    "release",
    "resource_group",
    "hooks",
    "pages",
    "publish",
    "manual_confirmation",
    "inputs",
    "!reference",
];

struct Loader {
    project_dir: PathBuf,
    warnings: Vec<Warning>,
    warned: HashSet<String>,
    include_count: usize,
}

impl Loader {
    fn warn_once(&mut self, key: &str, pos: &Pos, message: String) {
        if self.warned.insert(format!("{}\0{key}", pos.file.display())) {
            self.warnings.push(Warning {
                pos: pos.clone(),
                message,
            });
        }
    }

    fn read(&mut self, rel: &Path) -> Result<Node> {
        let full = self.project_dir.join(rel);
        let text = std::fs::read_to_string(&full).map_err(|e| Error::io(&full, e))?;
        let parsed = yaml::parse(&text, rel)?;
        self.warnings.extend(parsed.warnings);
        let mut docs = parsed.documents;
        // A `spec:` header document may precede the configuration.
        if docs.len() == 2 && docs[0].get("spec").is_some() {
            let header = docs.remove(0);
            self.warn_once(
                "spec",
                &header.pos,
                "`spec:inputs` are not supported locally; inputs keep their defaults unexpanded"
                    .into(),
            );
        }
        if docs.len() > 1 {
            return Err(Error::config(
                &docs[1].pos,
                "(document)",
                "a pipeline file holds one YAML document (plus an optional `spec:` header)",
            ));
        }
        let root = docs.remove(0);
        if root.is_null() {
            return Ok(Node {
                value: Value::Map(Vec::new()),
                pos: root.pos,
                tag: None,
            });
        }
        if root.as_map().is_none() {
            return Err(Error::config(
                &root.pos,
                "(root)",
                "the pipeline must be a mapping of keys to jobs",
            ));
        }
        Ok(root)
    }

    /// Loads `rel` and everything it includes, merged.
    fn load_with_includes(&mut self, rel: &Path, stack: &mut Vec<PathBuf>) -> Result<Node> {
        let mut root = self.read(rel)?;
        let Some(inc) = take_key(&mut root, "include") else {
            return Ok(root);
        };
        stack.push(rel.to_path_buf());
        let items: Vec<Node> = match inc.value {
            Value::Seq(items) => items,
            _ => vec![inc],
        };
        let mut merged: Option<Node> = None;
        for item in items {
            let locals = self.include_targets(&item)?;
            for local in locals {
                if stack.contains(&local) {
                    return Err(Error::config(
                        &item.pos,
                        "include",
                        format!("include cycle: {} includes itself", local.display()),
                    ));
                }
                self.include_count += 1;
                if self.include_count > 150 {
                    return Err(Error::config(
                        &item.pos,
                        "include",
                        "more than 150 includes",
                    ));
                }
                let node = self.load_with_includes(&local, stack)?;
                merged = Some(match merged {
                    Some(m) => deep_merge(m, node),
                    None => node,
                });
            }
        }
        stack.pop();
        Ok(match merged {
            Some(m) => deep_merge(m, root),
            None => root,
        })
    }

    fn include_targets(&mut self, item: &Node) -> Result<Vec<PathBuf>> {
        let local = match &item.value {
            Value::Scalar { .. } => item.as_str().map(str::to_string),
            Value::Map(entries) => {
                if let Some(l) = item.get("local") {
                    for e in entries {
                        if !["local", "rules", "inputs"].contains(&e.key.as_str()) {
                            return Err(Error::config(
                                &e.key_pos,
                                format!("include.{}", e.key),
                                "unknown key for include:local",
                            ));
                        }
                    }
                    Some(
                        l.as_str()
                            .ok_or_else(|| {
                                Error::config(&l.pos, "include.local", "must be a string")
                            })?
                            .to_string(),
                    )
                } else {
                    let kind = entries.first().map(|e| e.key.clone()).unwrap_or_default();
                    if ["project", "remote", "template", "component", "file", "ref"]
                        .contains(&kind.as_str())
                    {
                        self.warn_once(
                            &format!("include:{kind}:{}", item.pos.line),
                            &item.pos,
                            format!("`include:{kind}` is not fetched locally; ignored"),
                        );
                        return Ok(Vec::new());
                    }
                    return Err(Error::config(&item.pos, "include", "unknown include type"));
                }
            }
            Value::Seq(_) => None,
        };
        let Some(local) = local else {
            return Err(Error::config(
                &item.pos,
                "include",
                "must be a path, a mapping or a list of them",
            ));
        };
        if local.starts_with("http://") || local.starts_with("https://") {
            self.warn_once(
                "include:remote",
                &item.pos,
                "remote includes are not fetched locally; ignored".into(),
            );
            return Ok(Vec::new());
        }
        let rel = local.trim_start_matches('/');
        if glob::is_glob(rel) {
            let g = Glob::new(rel)
                .ok_or_else(|| Error::config(&item.pos, "include", "malformed glob"))?;
            let files = walk_matches(&self.project_dir, &g);
            if files.is_empty() {
                return Err(Error::config(
                    &item.pos,
                    "include",
                    format!("no file matches {local:?}"),
                ));
            }
            return Ok(files.into_iter().map(PathBuf::from).collect());
        }
        if !self.project_dir.join(rel).is_file() {
            return Err(Error::config(
                &item.pos,
                "include",
                format!("local file {local:?} does not exist"),
            ));
        }
        Ok(vec![PathBuf::from(rel)])
    }
}

/// Project files (not under `.git` or `.keel`) matching `g`, sorted.
pub(crate) fn walk_matches(root: &Path, g: &Glob) -> Vec<String> {
    let base = root.join(g.base_dir());
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(&base)
        .into_iter()
        .filter_entry(|e| {
            let n = e.file_name().to_string_lossy();
            !(e.depth() > 0 && (n == ".git" || n == ".keel"))
        })
        .flatten()
    {
        if let Ok(rel) = e.path().strip_prefix(root) {
            let rel = rel.to_string_lossy().replace('\\', "/");
            if !rel.is_empty() && g.is_match(&rel) {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

fn take_key(root: &mut Node, key: &str) -> Option<Node> {
    let Value::Map(entries) = &mut root.value else {
        return None;
    };
    let i = entries.iter().position(|e| e.key == key)?;
    Some(entries.remove(i).value)
}

/// GitLab's deep merge: hashes merge recursively, anything else in `over`
/// replaces what is in `base`.
pub(crate) fn deep_merge(base: Node, over: Node) -> Node {
    match (base.value, over.value) {
        (Value::Map(mut b), Value::Map(o)) => {
            for e in o {
                match b.iter().position(|x| x.key == e.key) {
                    Some(i) => {
                        let old = b[i].value.clone();
                        let merged = if old.as_map().is_some() && e.value.as_map().is_some() {
                            deep_merge(old, e.value)
                        } else {
                            e.value
                        };
                        b[i] = Entry {
                            key: e.key,
                            key_pos: e.key_pos,
                            value: merged,
                        };
                    }
                    None => b.push(e),
                }
            }
            Node {
                value: Value::Map(b),
                pos: over.pos,
                tag: over.tag,
            }
        }
        (_, o) => Node {
            value: o,
            pos: over.pos,
            tag: over.tag,
        },
    }
}

/// Resolves every `!reference [a, b, ...]` in `node` against `root`.
fn resolve_references(node: &mut Node, root: &Node, depth: usize) -> Result<()> {
    if node.tag.as_deref() == Some("!reference") {
        if depth > 10 {
            return Err(Error::config(
                &node.pos,
                "!reference",
                "references nested deeper than 10 levels",
            ));
        }
        let path: Vec<String> = match node.as_seq() {
            Some(items) if !items.is_empty() => items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| Error::config(&node.pos, "!reference", "must be a list of keys"))?,
            _ => {
                return Err(Error::config(
                    &node.pos,
                    "!reference",
                    "must be a non-empty list of keys",
                ))
            }
        };
        let mut target = root;
        for k in &path {
            target = target.get(k).ok_or_else(|| {
                Error::config(
                    &node.pos,
                    "!reference",
                    format!("{} does not exist", path.join(".")),
                )
            })?;
        }
        let mut resolved = target.clone();
        resolve_references(&mut resolved, root, depth + 1)?;
        *node = resolved;
        return Ok(());
    }
    if let Some(tag) = &node.tag {
        return Err(Error::config(
            &node.pos,
            tag.clone(),
            "unsupported YAML tag (GitLab supports only !reference)",
        ));
    }
    match &mut node.value {
        Value::Seq(items) => {
            for i in items {
                resolve_references(i, root, depth)?;
            }
        }
        Value::Map(entries) => {
            for e in entries {
                resolve_references(&mut e.value, root, depth)?;
            }
        }
        Value::Scalar { .. } => {}
    }
    Ok(())
}

/// Resolves `extends` for the top-level key `name`.
fn resolve_extends(
    name: &str,
    raw: &HashMap<String, Node>,
    done: &mut HashMap<String, Node>,
    stack: &mut Vec<String>,
) -> Result<Node> {
    if let Some(n) = done.get(name) {
        return Ok(n.clone());
    }
    let mut node = raw[name].clone();
    let Some(ext) = take_key(&mut node, "extends") else {
        done.insert(name.to_string(), node.clone());
        return Ok(node);
    };
    let key = format!("{name}.extends");
    let targets: Vec<(String, Pos)> = match &ext.value {
        Value::Seq(items) => items
            .iter()
            .map(|i| i.as_str().map(|s| (s.to_string(), i.pos.clone())))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                Error::config(&ext.pos, &key, "must be a job name or a list of job names")
            })?,
        _ => vec![(
            ext.as_str()
                .ok_or_else(|| {
                    Error::config(&ext.pos, &key, "must be a job name or a list of job names")
                })?
                .to_string(),
            ext.pos.clone(),
        )],
    };
    stack.push(name.to_string());
    if stack.len() > 11 {
        return Err(Error::config(
            &ext.pos,
            &key,
            "`extends` nested deeper than 11 levels",
        ));
    }
    let mut base: Option<Node> = None;
    for (t, pos) in targets {
        if stack.contains(&t) {
            return Err(Error::config(
                &pos,
                &key,
                format!("circular `extends`: {} -> {t}", stack.join(" -> ")),
            ));
        }
        if !raw.contains_key(&t) {
            return Err(Error::config(
                &pos,
                &key,
                format!("unknown job or template {t:?}"),
            ));
        }
        let parent = resolve_extends(&t, raw, done, stack)?;
        if parent.as_map().is_none() {
            return Err(Error::config(&pos, &key, format!("{t:?} is not a mapping")));
        }
        base = Some(match base {
            Some(b) => deep_merge(b, parent),
            None => parent,
        });
    }
    stack.pop();
    let merged = match base {
        Some(b) => deep_merge(b, node),
        None => node,
    };
    done.insert(name.to_string(), merged.clone());
    Ok(merged)
}

/// Loads and validates `file` (relative to `project_dir`, or absolute).
pub fn load(project_dir: &Path, file: &Path) -> Result<Config> {
    let rel = file.strip_prefix(project_dir).unwrap_or(file).to_path_buf();
    let mut loader = Loader {
        project_dir: project_dir.to_path_buf(),
        warnings: Vec::new(),
        warned: HashSet::new(),
        include_count: 0,
    };
    let mut root = loader.load_with_includes(&rel, &mut Vec::new())?;
    let keel = take_key(&mut root, ".keel");
    let snapshot = root.clone();
    resolve_references(&mut root, &snapshot, 0)?;

    let entries = root.as_map().unwrap_or(&[]).to_vec();
    let mut raw: HashMap<String, Node> = HashMap::new();
    let mut job_order: Vec<(String, Pos)> = Vec::new();
    for e in &entries {
        if GLOBAL_KEYS.contains(&e.key.as_str()) {
            continue;
        }
        raw.insert(e.key.clone(), e.value.clone());
        if !e.key.starts_with('.') {
            job_order.push((e.key.clone(), e.key_pos.clone()));
        }
    }

    let stages = parse_stages(&root)?;
    let variables = match root.get("variables") {
        Some(v) => parse_variables(v, "variables", true)?,
        None => Vec::new(),
    };

    // `default:` plus the legacy top-level equivalents.
    let mut default = match root.entry("default") {
        Some(d) => {
            let map = d
                .value
                .as_map()
                .ok_or_else(|| Error::config(&d.value.pos, "default", "must be a mapping"))?;
            for e in map {
                if !DEFAULT_KEYS.contains(&e.key.as_str()) {
                    return Err(Error::config(
                        &e.key_pos,
                        format!("default.{}", e.key),
                        "unknown key in `default`",
                    ));
                }
            }
            map.to_vec()
        }
        None => Vec::new(),
    };
    for legacy in [
        "image",
        "services",
        "cache",
        "before_script",
        "after_script",
    ] {
        if let Some(e) = root.entry(legacy) {
            if !default.iter().any(|d| d.key == legacy) {
                default.push(e.clone());
            }
        }
    }

    let workflow_rules = match root.entry("workflow") {
        Some(w) => {
            let map = w
                .value
                .as_map()
                .ok_or_else(|| Error::config(&w.value.pos, "workflow", "must be a mapping"))?;
            let mut rules = None;
            for e in map {
                match e.key.as_str() {
                    "rules" => rules = Some(parse_rules(&e.value, "workflow.rules", true)?),
                    "name" => {}
                    "auto_cancel" => loader.warn_once(
                        "workflow.auto_cancel",
                        &e.key_pos,
                        "`workflow:auto_cancel` has no meaning locally; ignored".into(),
                    ),
                    _ => {
                        return Err(Error::config(
                            &e.key_pos,
                            format!("workflow.{}", e.key),
                            "unknown key in `workflow`",
                        ))
                    }
                }
            }
            rules
        }
        None => None,
    };

    let mut done = HashMap::new();
    let mut jobs = Vec::new();
    for (name, pos) in &job_order {
        let node = resolve_extends(name, &raw, &mut done, &mut Vec::new())?;
        let job = parse_job(name, pos, &node, &default, &stages, &mut loader)?;
        jobs.push(job);
    }
    if jobs.is_empty() {
        return Err(Error::config(
            &root.pos,
            "(root)",
            "the pipeline has no visible jobs (every key starts with `.` or is a global keyword)",
        ));
    }
    Ok(Config {
        file: Arc::from(rel.as_path()),
        project_dir: project_dir.to_path_buf(),
        stages,
        variables,
        workflow_rules,
        jobs,
        keel,
        warnings: loader.warnings,
    })
}

fn parse_stages(root: &Node) -> Result<Vec<String>> {
    let mut out = vec![".pre".to_string()];
    match root.get("stages") {
        None => out.extend(["build", "test", "deploy"].map(String::from)),
        Some(n) => {
            let items = n
                .as_seq()
                .ok_or_else(|| Error::config(&n.pos, "stages", "must be a list of stage names"))?;
            let mut flat = Vec::new();
            flatten(items, &mut flat, 10);
            for i in flat {
                let s = i.as_str().ok_or_else(|| {
                    Error::config(&i.pos, "stages", "stage names must be strings")
                })?;
                if s == ".pre" || s == ".post" {
                    continue;
                }
                if out.iter().any(|x| x == s) {
                    return Err(Error::config(
                        &i.pos,
                        "stages",
                        format!("stage {s:?} is listed twice"),
                    ));
                }
                out.push(s.to_string());
            }
        }
    }
    out.push(".post".to_string());
    Ok(out)
}

fn flatten<'a>(items: &'a [Node], out: &mut Vec<&'a Node>, depth: usize) {
    for i in items {
        match i.as_seq() {
            Some(inner) if depth > 0 => flatten(inner, out, depth - 1),
            _ => out.push(i),
        }
    }
}

fn strings(n: &Node, key: &str) -> Result<Vec<String>> {
    match &n.value {
        Value::Scalar { .. } => Ok(n.as_str().map(|s| vec![s.to_string()]).unwrap_or_default()),
        Value::Seq(items) => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_string).ok_or_else(|| {
                    Error::config(
                        &i.pos,
                        key,
                        format!("list items must be strings, found {}", i.type_name()),
                    )
                })
            })
            .collect(),
        Value::Map(_) => Err(Error::config(
            &n.pos,
            key,
            "must be a string or a list of strings",
        )),
    }
}

fn script_lines(n: &Node, key: &str) -> Result<Vec<String>> {
    match &n.value {
        Value::Scalar { .. } => n
            .as_str()
            .map(|s| vec![s.to_string()])
            .ok_or_else(|| Error::config(&n.pos, key, "must be a string or a list of strings")),
        Value::Seq(items) => {
            let mut flat = Vec::new();
            flatten(items, &mut flat, 10);
            flat.into_iter()
                .map(|i| {
                    i.as_str().map(str::to_string).ok_or_else(|| {
                        Error::config(
                            &i.pos,
                            key,
                            format!(
                                "must be a string or a nested list of strings, found {}",
                                i.type_name()
                            ),
                        )
                    })
                })
                .collect()
        }
        Value::Map(_) => Err(Error::config(
            &n.pos,
            key,
            "must be a string or a list of strings, not a mapping",
        )),
    }
}

fn int_list(n: &Node, key: &str) -> Result<Vec<i32>> {
    let one = |i: &Node| {
        i.as_int()
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| Error::config(&i.pos, key, "exit codes must be integers"))
    };
    match &n.value {
        Value::Seq(items) => items.iter().map(one).collect(),
        _ => Ok(vec![one(n)?]),
    }
}

pub(crate) fn parse_variables(n: &Node, key: &str, global: bool) -> Result<Vec<VarDef>> {
    if n.is_null() {
        return Ok(Vec::new());
    }
    let map = n
        .as_map()
        .ok_or_else(|| Error::config(&n.pos, key, "must be a mapping of names to values"))?;
    let mut out = Vec::new();
    for e in map {
        let k = format!("{key}.{}", e.key);
        if e.key.is_empty()
            || !e
                .key
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            return Err(Error::config(
                &e.key_pos,
                &k,
                "variable names may only hold letters, digits and `_`",
            ));
        }
        let (value, expand) = match &e.value.value {
            Value::Scalar { .. } => (e.value.as_str().unwrap_or("").to_string(), true),
            Value::Map(m) => {
                let mut value = String::new();
                let mut expand = true;
                for f in m {
                    match f.key.as_str() {
                        "value" => value = f.value.as_str().unwrap_or("").to_string(),
                        "expand" => {
                            expand = f.value.as_bool().ok_or_else(|| {
                                Error::config(
                                    &f.value.pos,
                                    format!("{k}.expand"),
                                    "must be a boolean",
                                )
                            })?
                        }
                        "description" | "options" if global => {}
                        _ => {
                            return Err(Error::config(
                                &f.key_pos,
                                format!("{k}.{}", f.key),
                                "unknown key in a variable",
                            ))
                        }
                    }
                }
                (value, expand)
            }
            Value::Seq(_) => {
                return Err(Error::config(
                    &e.value.pos,
                    &k,
                    "a variable's value must be a string, number or boolean",
                ))
            }
        };
        out.push(VarDef {
            name: e.key.clone(),
            value,
            expand,
            pos: e.key_pos.clone(),
        });
    }
    Ok(out)
}

fn parse_needs(n: &Node, key: &str) -> Result<Vec<Need>> {
    let items = n
        .as_seq()
        .ok_or_else(|| Error::config(&n.pos, key, "must be a list of job names"))?;
    let mut flat = Vec::new();
    flatten(items, &mut flat, 10);
    let mut out = Vec::new();
    for i in flat {
        match &i.value {
            Value::Scalar { .. } => out.push(Need {
                job: i
                    .as_str()
                    .ok_or_else(|| Error::config(&i.pos, key, "job names must be strings"))?
                    .to_string(),
                artifacts: true,
                optional: false,
                matrix: None,
                pos: i.pos.clone(),
            }),
            Value::Map(m) => {
                let mut need = Need {
                    job: String::new(),
                    artifacts: true,
                    optional: false,
                    matrix: None,
                    pos: i.pos.clone(),
                };
                let mut external = false;
                for e in m {
                    let k = format!("{key}.{}", e.key);
                    match e.key.as_str() {
                        "job" => {
                            need.job = e
                                .value
                                .as_str()
                                .ok_or_else(|| {
                                    Error::config(&e.value.pos, &k, "must be a job name")
                                })?
                                .to_string()
                        }
                        "artifacts" => {
                            need.artifacts = e.value.as_bool().ok_or_else(|| {
                                Error::config(&e.value.pos, &k, "must be a boolean")
                            })?
                        }
                        "optional" => {
                            need.optional = e.value.as_bool().ok_or_else(|| {
                                Error::config(&e.value.pos, &k, "must be a boolean")
                            })?
                        }
                        "parallel" => {
                            let (p, _) = parse_parallel(&e.value, &k)?;
                            let Parallel::Matrix(m) = p else {
                                return Err(Error::config(
                                    &e.value.pos,
                                    &k,
                                    "must be `{matrix: [...]}`",
                                ));
                            };
                            need.matrix = Some(m);
                        }
                        "pipeline" | "project" | "ref" => external = true,
                        _ => return Err(Error::config(&e.key_pos, &k, "unknown key in `needs`")),
                    }
                }
                if need.job.is_empty() {
                    return Err(Error::config(
                        &i.pos,
                        key,
                        "a `needs` entry must name a `job`",
                    ));
                }
                if !external {
                    out.push(need);
                }
            }
            Value::Seq(_) => return Err(Error::config(&i.pos, key, "must be a list of job names")),
        }
    }
    Ok(out)
}

fn parse_parallel(n: &Node, key: &str) -> Result<(Parallel, Pos)> {
    if let Some(count) = n.as_int() {
        if !(1..=200).contains(&count) {
            return Err(Error::config(&n.pos, key, "must be between 1 and 200"));
        }
        return Ok((Parallel::Count(count as u32), n.pos.clone()));
    }
    let map = n
        .as_map()
        .ok_or_else(|| Error::config(&n.pos, key, "must be an integer or `{matrix: [...]}`"))?;
    let mut matrix = None;
    for e in map {
        if e.key != "matrix" {
            return Err(Error::config(
                &e.key_pos,
                format!("{key}.{}", e.key),
                "unknown key in `parallel`",
            ));
        }
        matrix = Some(&e.value);
    }
    let key = format!("{key}.matrix");
    let m = matrix.ok_or_else(|| Error::config(&n.pos, &key, "`parallel` needs a `matrix`"))?;
    let items = m
        .as_seq()
        .ok_or_else(|| Error::config(&m.pos, &key, "must be a list of mappings"))?;
    if items.is_empty() {
        return Err(Error::config(&m.pos, &key, "must not be empty"));
    }
    let mut out = Vec::new();
    let mut total = 0usize;
    for item in items {
        let entries = item.as_map().ok_or_else(|| {
            Error::config(
                &item.pos,
                &key,
                format!(
                    "each entry must be a mapping of variables to values, found {}",
                    item.type_name()
                ),
            )
        })?;
        if entries.is_empty() {
            return Err(Error::config(
                &item.pos,
                &key,
                "an entry must name at least one variable",
            ));
        }
        let mut vars = Vec::new();
        let mut combos = 1usize;
        for e in entries {
            let k = format!("{key}.{}", e.key);
            if !e
                .key
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_')
                || e.key.is_empty()
            {
                return Err(Error::config(
                    &e.key_pos,
                    &k,
                    "variable names may only hold letters, digits and `_`",
                ));
            }
            let values: Vec<String> = match &e.value.value {
                Value::Scalar { .. } => vec![e
                    .value
                    .as_str()
                    .ok_or_else(|| {
                        Error::config(&e.value.pos, &k, "a value must be a string or number")
                    })?
                    .to_string()],
                Value::Seq(vs) => vs
                    .iter()
                    .map(|v| {
                        v.as_str().map(str::to_string).ok_or_else(|| {
                            Error::config(
                                &v.pos,
                                &k,
                                format!(
                                    "matrix values must be strings or numbers, found {}",
                                    v.type_name()
                                ),
                            )
                        })
                    })
                    .collect::<Result<_>>()?,
                Value::Map(_) => {
                    return Err(Error::config(
                        &e.value.pos,
                        &k,
                        "a value must be a string, a number or a list of them",
                    ))
                }
            };
            if values.is_empty() {
                return Err(Error::config(
                    &e.value.pos,
                    &k,
                    "must list at least one value",
                ));
            }
            combos *= values.len();
            vars.push((e.key.clone(), values));
        }
        total += combos;
        out.push(vars);
    }
    if total > 200 {
        return Err(Error::config(
            &m.pos,
            &key,
            format!("produces {total} jobs; GitLab allows at most 200"),
        ));
    }
    Ok((Parallel::Matrix(out), n.pos.clone()))
}

/// `changes` of a rule or of `only`/`except`: a list of globs, or
/// `{paths, compare_to}`.
fn parse_changes(n: &Node, k: &str) -> Result<Changes> {
    let Value::Map(m) = &n.value else {
        return Ok(Changes {
            paths: strings(n, k)?,
            compare_to: None,
        });
    };
    let mut c = Changes {
        paths: Vec::new(),
        compare_to: None,
    };
    for f in m {
        match f.key.as_str() {
            "paths" => c.paths = strings(&f.value, &format!("{k}.paths"))?,
            "compare_to" => c.compare_to = f.value.as_str().map(str::to_string),
            _ => {
                return Err(Error::config(
                    &f.key_pos,
                    format!("{k}.{}", f.key),
                    "unknown key in `changes`",
                ))
            }
        }
    }
    Ok(c)
}

/// `only` or `except` (the pre-`rules` keywords): a list of refs, or
/// `{refs, variables, changes, kubernetes}`.
fn parse_only_except(n: &Node, k: &str, loader: &mut Loader) -> Result<OnlyExcept> {
    let mut out = OnlyExcept {
        pos: n.pos.clone(),
        refs: None,
        variables: None,
        changes: None,
    };
    let refs_of = |n: &Node, k: &str| -> Result<Vec<RefPattern>> {
        let items = match &n.value {
            Value::Seq(items) => items.as_slice(),
            _ => std::slice::from_ref(n),
        };
        items
            .iter()
            .map(|i| {
                let text = i.as_str().ok_or_else(|| {
                    Error::config(
                        &i.pos,
                        k,
                        format!("refs must be strings, found {}", i.type_name()),
                    )
                })?;
                RefPattern::parse(text)
                    .map_err(|m| Error::config(&i.pos, k, format!("{text:?}: {m}")))
            })
            .collect()
    };
    let Value::Map(m) = &n.value else {
        out.refs = Some(refs_of(n, k)?);
        return Ok(out);
    };
    for e in m {
        let key = format!("{k}.{}", e.key);
        match e.key.as_str() {
            "refs" => out.refs = Some(refs_of(&e.value, &key)?),
            "variables" => {
                let texts = strings(&e.value, &key)?;
                let mut exprs = Vec::new();
                for t in texts {
                    let expr = Expr::parse(&t).map_err(|m| {
                        Error::config(&e.value.pos, &key, format!("invalid expression {t:?}: {m}"))
                    })?;
                    exprs.push((expr, t));
                }
                out.variables = Some(exprs);
            }
            "changes" => out.changes = Some(parse_changes(&e.value, &key)?),
            "kubernetes" => loader.warn_once(
                &format!("{}:kubernetes", e.key_pos.file.display()),
                &e.key_pos,
                format!("`{key}` is not evaluated locally; treated as matching"),
            ),
            _ => {
                return Err(Error::config(
                    &e.key_pos,
                    &key,
                    "unknown key (expected refs, variables, changes or kubernetes)",
                ))
            }
        }
    }
    Ok(out)
}

fn parse_rules(n: &Node, key: &str, workflow: bool) -> Result<Vec<Rule>> {
    let items = n
        .as_seq()
        .ok_or_else(|| Error::config(&n.pos, key, "must be a list of rules"))?;
    let mut flat = Vec::new();
    flatten(items, &mut flat, 10);
    let mut out = Vec::new();
    for item in flat {
        let map = item.as_map().ok_or_else(|| {
            Error::config(
                &item.pos,
                key,
                format!("each rule must be a mapping, found {}", item.type_name()),
            )
        })?;
        let mut rule = Rule {
            pos: item.pos.clone(),
            if_: None,
            changes: None,
            exists: None,
            when: None,
            allow_failure: None,
            variables: Vec::new(),
            needs: None,
        };
        for e in map {
            let k = format!("{key}.{}", e.key);
            match e.key.as_str() {
                "if" => {
                    let text = e
                        .value
                        .as_str()
                        .ok_or_else(|| Error::config(&e.value.pos, &k, "must be a string"))?;
                    let expr = Expr::parse(text).map_err(|m| {
                        Error::config(
                            &e.value.pos,
                            &k,
                            format!("invalid expression {text:?}: {m}"),
                        )
                    })?;
                    rule.if_ = Some((expr, text.to_string()));
                }
                "changes" => rule.changes = Some(parse_changes(&e.value, &k)?),
                "exists" => {
                    rule.exists = Some(match e.value.get("paths") {
                        Some(p) => strings(p, &format!("{k}.paths"))?,
                        None => strings(&e.value, &k)?,
                    })
                }
                "when" => {
                    let w = When::parse(&e.value, &k)?;
                    if workflow && !matches!(w, When::Always | When::Never) {
                        return Err(Error::config(
                            &e.value.pos,
                            &k,
                            "workflow rules take `when: always` or `when: never`",
                        ));
                    }
                    rule.when = Some(w);
                }
                "allow_failure" if !workflow => {
                    rule.allow_failure = Some(
                        e.value
                            .as_bool()
                            .ok_or_else(|| Error::config(&e.value.pos, &k, "must be a boolean"))?,
                    )
                }
                "variables" => rule.variables = parse_variables(&e.value, &k, false)?,
                "needs" if !workflow => rule.needs = Some(parse_needs(&e.value, &k)?),
                "interruptible" | "start_in" if !workflow => {}
                "auto_cancel" if workflow => {}
                _ => return Err(Error::config(&e.key_pos, &k, "unknown key in a rule")),
            }
        }
        out.push(rule);
    }
    Ok(out)
}

fn parse_artifacts(n: &Node, key: &str, loader: &mut Loader) -> Result<Artifacts> {
    let mut a = Artifacts::default();
    if n.is_null() {
        return Ok(a);
    }
    let map = n
        .as_map()
        .ok_or_else(|| Error::config(&n.pos, key, "must be a mapping"))?;
    for e in map {
        let k = format!("{key}.{}", e.key);
        match e.key.as_str() {
            "paths" => a.paths = strings(&e.value, &k)?,
            "exclude" => a.exclude = strings(&e.value, &k)?,
            "when" => {
                let w = When::parse(&e.value, &k)?;
                if !matches!(w, When::OnSuccess | When::OnFailure | When::Always) {
                    return Err(Error::config(
                        &e.value.pos,
                        &k,
                        "must be on_success, on_failure or always",
                    ));
                }
                a.when = Some(w);
            }
            "expire_in" => {
                let text = e.value.as_str().ok_or_else(|| {
                    Error::config(&e.value.pos, &k, "must be a duration such as \"1 week\"")
                })?;
                a.expire_after =
                    duration::parse(text).map_err(|m| Error::config(&e.value.pos, &k, m))?;
                a.expire_in = Some(text.to_string());
            }
            "name" | "expose_as" | "untracked" | "reports" | "public" | "access" => loader
                .warn_once(
                    &format!("artifacts.{}", e.key),
                    &e.key_pos,
                    format!("`artifacts:{}` has no local meaning; ignored", e.key),
                ),
            _ => return Err(Error::config(&e.key_pos, &k, "unknown key in `artifacts`")),
        }
    }
    Ok(a)
}

fn parse_inherit(n: &Node, key: &str) -> Result<Inherit> {
    if let Some(b) = n.as_bool() {
        return Ok(if b { Inherit::All } else { Inherit::None });
    }
    Ok(Inherit::Only(strings(n, key)?))
}

fn parse_job(
    name: &str,
    pos: &Pos,
    node: &Node,
    default: &[Entry],
    stages: &[String],
    loader: &mut Loader,
) -> Result<JobDef> {
    let Some(map) = node.as_map() else {
        return Err(Error::config(
            pos,
            name,
            format!("a job must be a mapping, found {}", node.type_name()),
        ));
    };
    // Validate keys first: unknown keys are errors, as on GitLab.
    for e in map {
        let k = e.key.as_str();
        if JOB_KEYS.contains(&k) {
            continue;
        }
        if IGNORED_JOB_KEYS.contains(&k) {
            loader.warn_once(
                &format!("job:{k}"),
                &e.key_pos,
                format!("`{k}` is accepted but not honoured by local runs; ignored"),
            );
            continue;
        }
        if k == "trigger" || k == "run" {
            return Err(Error::config(
                &e.key_pos,
                format!("{name}.{k}"),
                format!("`{k}` jobs cannot run locally"),
            ));
        }
        return Err(Error::config(
            &e.key_pos,
            format!("{name}.{k}"),
            "unknown key (not a GitLab job keyword)",
        ));
    }
    let mut inherit_default = Inherit::All;
    let mut inherit_variables = Inherit::All;
    if let Some(i) = node.get("inherit") {
        let m = i
            .as_map()
            .ok_or_else(|| Error::config(&i.pos, format!("{name}.inherit"), "must be a mapping"))?;
        for e in m {
            let k = format!("{name}.inherit.{}", e.key);
            match e.key.as_str() {
                "default" => inherit_default = parse_inherit(&e.value, &k)?,
                "variables" => inherit_variables = parse_inherit(&e.value, &k)?,
                _ => return Err(Error::config(&e.key_pos, &k, "unknown key in `inherit`")),
            }
        }
    }
    // A value from `default:` applies when the job has none of its own.
    let lookup = |key: &str| -> Option<Node> {
        node.get(key).cloned().or_else(|| {
            if inherit_default.allows(key) {
                default
                    .iter()
                    .find(|e| e.key == key)
                    .map(|e| e.value.clone())
            } else {
                None
            }
        })
    };
    let k = |key: &str| format!("{name}.{key}");

    let script = match node.get("script") {
        Some(s) => script_lines(s, &k("script"))?,
        None => {
            return Err(Error::config(
                pos,
                name,
                "a job needs a `script` (keel cannot run `trigger` or `run` jobs)",
            ))
        }
    };
    let before_script = match lookup("before_script") {
        Some(s) => script_lines(&s, &k("before_script"))?,
        None => Vec::new(),
    };
    let after_script = match lookup("after_script") {
        Some(s) => script_lines(&s, &k("after_script"))?,
        None => Vec::new(),
    };
    let (stage, stage_pos) = match node.get("stage") {
        Some(s) => (
            s.as_str()
                .ok_or_else(|| Error::config(&s.pos, k("stage"), "must be a string"))?
                .to_string(),
            s.pos.clone(),
        ),
        None => ("test".to_string(), pos.clone()),
    };
    if !stages.contains(&stage) {
        return Err(Error::config(
            &stage_pos,
            k("stage"),
            format!("stage {stage:?} is not in `stages` ({})", stages.join(", ")),
        ));
    }
    let variables = match node.get("variables") {
        Some(v) => parse_variables(v, &k("variables"), false)?,
        None => Vec::new(),
    };
    let artifacts = match lookup("artifacts") {
        Some(a) => parse_artifacts(&a, &k("artifacts"), loader)?,
        None => Artifacts::default(),
    };
    let needs = node
        .get("needs")
        .map(|n| parse_needs(n, &k("needs")))
        .transpose()?;
    let dependencies = match node.get("dependencies") {
        Some(d) if d.is_null() => Some(Vec::new()),
        Some(d) => Some(
            d.as_seq()
                .ok_or_else(|| {
                    Error::config(&d.pos, k("dependencies"), "must be a list of job names")
                })?
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(|s| (s.to_string(), i.pos.clone()))
                        .ok_or_else(|| {
                            Error::config(&i.pos, k("dependencies"), "job names must be strings")
                        })
                })
                .collect::<Result<_>>()?,
        ),
        None => None,
    };
    let rules = node
        .get("rules")
        .map(|r| parse_rules(r, &k("rules"), false))
        .transpose()?;
    let only = node
        .get("only")
        .map(|n| parse_only_except(n, &k("only"), loader))
        .transpose()?;
    let except = node
        .get("except")
        .map(|n| parse_only_except(n, &k("except"), loader))
        .transpose()?;
    if rules.is_some() {
        for (word, given) in [("only", &only), ("except", &except)] {
            if let Some(oe) = given {
                return Err(Error::config(
                    &oe.pos,
                    k(word),
                    format!("`{word}` cannot be used with `rules` (GitLab rejects the file)"),
                ));
            }
        }
    }
    let when = node
        .get("when")
        .map(|w| When::parse(w, &k("when")))
        .transpose()?
        .unwrap_or(When::OnSuccess);
    if when == When::Delayed {
        loader.warn_once(
            "when:delayed",
            &node
                .get("when")
                .map_or_else(|| pos.clone(), |n| n.pos.clone()),
            "`when: delayed` runs without the delay locally".into(),
        );
    }
    let allow_failure = match node.get("allow_failure") {
        None => None,
        Some(a) => Some(match a.as_bool() {
            Some(b) => AllowFailure::Bool(b),
            None => {
                let codes = a.get("exit_codes").ok_or_else(|| {
                    Error::config(
                        &a.pos,
                        k("allow_failure"),
                        "must be a boolean or `{exit_codes: [...]}`",
                    )
                })?;
                AllowFailure::ExitCodes(int_list(codes, &k("allow_failure.exit_codes"))?)
            }
        }),
    };
    let retry = match lookup("retry") {
        None => Retry::default(),
        Some(r) => parse_retry(&r, &k("retry"))?,
    };
    let timeout = match lookup("timeout") {
        None => None,
        Some(t) => {
            let text = t.as_str().ok_or_else(|| {
                Error::config(
                    &t.pos,
                    k("timeout"),
                    "must be a duration such as \"1h 30m\"",
                )
            })?;
            duration::parse(text).map_err(|m| Error::config(&t.pos, k("timeout"), m))?
        }
    };
    let (parallel, parallel_pos) = match node.get("parallel") {
        Some(p) => parse_parallel(p, &k("parallel"))?,
        None => (Parallel::None, pos.clone()),
    };
    for key in [
        "image",
        "services",
        "tags",
        "cache",
        "interruptible",
        "hooks",
        "id_tokens",
        "identity",
    ] {
        if node.get(key).is_none() && inherit_default.allows(key) {
            if let Some(e) = default.iter().find(|e| e.key == key) {
                loader.warn_once(
                    &format!("default:{key}"),
                    &e.key_pos,
                    format!("`{key}` is accepted but not honoured by local runs; ignored"),
                );
            }
        }
    }
    Ok(JobDef {
        name: name.to_string(),
        pos: pos.clone(),
        stage,
        stage_pos,
        before_script,
        script,
        after_script,
        variables,
        inherit_variables,
        artifacts,
        needs,
        dependencies,
        rules,
        only,
        except,
        when,
        allow_failure,
        retry,
        timeout,
        parallel,
        parallel_pos,
    })
}

fn parse_retry(r: &Node, key: &str) -> Result<Retry> {
    let max_of = |n: &Node| -> Result<u32> {
        match n.as_int() {
            Some(v @ 0..=2) => Ok(v as u32),
            _ => Err(Error::config(&n.pos, key, "must be 0, 1 or 2")),
        }
    };
    if r.as_map().is_none() {
        return Ok(Retry {
            max: max_of(r)?,
            ..Retry::default()
        });
    }
    let mut out = Retry::default();
    for e in r.as_map().unwrap_or(&[]) {
        let k = format!("{key}.{}", e.key);
        match e.key.as_str() {
            "max" => out.max = max_of(&e.value)?,
            "when" => out.when = strings(&e.value, &k)?,
            "exit_codes" => out.exit_codes = int_list(&e.value, &k)?,
            _ => return Err(Error::config(&e.key_pos, &k, "unknown key in `retry`")),
        }
    }
    Ok(out)
}
