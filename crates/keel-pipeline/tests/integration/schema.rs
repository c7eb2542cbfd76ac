//! Every example pipeline in the repository passes GitLab's CI JSON schema
//! (vendored in `tests/data/`). The YAML is loaded by keel's own parser
//! (anchors, merge keys and `!reference` tags resolved as GitLab does) and
//! checked with Python's `jsonschema` (draft-07, as the schema declares),
//! run by `$KEEL_PYTHON` or `python3`.

use std::path::{Path, PathBuf};
use std::process::Command;

const CHECK: &str = r#"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
validator = jsonschema.Draft7Validator(schema)
bad = 0
for path in sys.argv[2:]:
    doc = json.load(open(path))
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        bad += 1
        print(f"{path}: {'/'.join(map(str, err.absolute_path))}: {err.message}")
sys.exit(1 if bad else 0)
"#;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.gitlab-ci.yml` under `examples/` and `bench/`.
fn example_pipelines() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for top in ["examples", "bench"] {
        for e in walkdir::WalkDir::new(repo_root().join(top))
            .into_iter()
            .flatten()
        {
            let n = e.file_name().to_string_lossy();
            if (n == ".gitlab-ci.yml" || n.ends_with(".gitlab-ci.yml"))
                && !e.path().components().any(|c| c.as_os_str() == ".keel")
            {
                out.push(e.path().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Converts each file to JSON with keel's parser, validates them all;
/// returns (passed, output).
fn validate(files: &[(String, String)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = Vec::new();
    for (i, (name, yaml)) in files.iter().enumerate() {
        let parsed =
            keel_pipeline::yaml::parse(yaml, Path::new(name)).unwrap_or_else(|e| panic!("{e}"));
        let json = parsed.documents.last().unwrap().to_json();
        let p = dir.path().join(format!("{i}.json"));
        std::fs::write(&p, serde_json::to_vec(&json).unwrap()).unwrap();
        args.push(p);
    }
    let python = std::env::var("KEEL_PYTHON").unwrap_or_else(|_| "python3".into());
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gitlab-ci.schema.json");
    let out = Command::new(&python)
        .arg("-c")
        .arg(CHECK)
        .arg(schema)
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("No module named 'jsonschema'"),
        "{python} lacks jsonschema: install .ci/requirements.txt (or set KEEL_PYTHON)"
    );
    (out.status.success(), text)
}

#[test]
fn example_pipelines_pass_gitlabs_schema() {
    let files = example_pipelines();
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("seed-pipeline/.gitlab-ci.yml")),
        "the seed pipeline is missing: {files:?}"
    );
    let docs: Vec<(String, String)> = files
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read_to_string(f).unwrap()))
        .collect();
    let (ok, text) = validate(&docs);
    assert!(ok, "{text}");
}

#[test]
fn the_schema_check_rejects_what_gitlab_rejects() {
    let cases = [
        (
            "unknown job key",
            "job:\n  script: [echo]\n  mlops: {deps: [a]}\n",
        ),
        ("bad when", "job:\n  script: [echo]\n  when: sometimes\n"),
        ("retry 3", "job:\n  script: [echo]\n  retry: 3\n"),
    ];
    for (what, yaml) in cases {
        let (ok, _) = validate(&[(what.to_string(), yaml.to_string())]);
        assert!(!ok, "{what} should fail the schema");
    }
    let (ok, text) = validate(&[(
        "hidden key".into(),
        ".keel:\n  jobs: {job: {deps: [a]}}\njob:\n  script: [echo]\n".into(),
    )]);
    assert!(ok, "hidden keys may hold anything: {text}");
}
