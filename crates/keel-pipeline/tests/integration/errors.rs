//! Malformed files: exactly one error each, naming file, line, column and key.

use keel_pipeline::Error;

use crate::error_of;

/// Asserts the error points at `line:col` and its text mentions `words`.
fn check(yaml: &str, line: usize, col: usize, words: &[&str]) {
    let e = error_of(yaml);
    let text = e.to_string();
    let pos = e.pos().unwrap_or_else(|| panic!("no position in {text}"));
    assert_eq!((pos.line, pos.col), (line, col), "{text}");
    assert!(
        text.starts_with(&format!(".gitlab-ci.yml:{line}:{col}: ")),
        "{text}"
    );
    for w in words {
        assert!(text.contains(w), "{text:?} should mention {w:?}");
    }
}

#[test]
fn needs_cycle() {
    check(
        "a:\n  needs: [b]\n  script: [echo]\nb:\n  needs: [c]\n  script: [echo]\nc:\n  needs: [a]\n  script: [echo]\n",
        8,
        11,
        &["c.needs", "cycle", "a -> b -> c -> a"],
    );
}

#[test]
fn unknown_key_in_a_job() {
    check(
        "train:\n  script: [echo]\n  scirpt_extra: 1\n",
        3,
        3,
        &["train.scirpt_extra", "unknown key"],
    );
}

#[test]
fn unknown_key_from_an_extended_template_points_at_the_template() {
    check(
        ".tpl:\n  mlops: {deps: [a]}\njob:\n  extends: .tpl\n  script: [echo]\n",
        2,
        3,
        &["job.mlops", "unknown key"],
    );
}

#[test]
fn bad_indentation() {
    let e = error_of("job:\n  script:\n    - echo\n   stage: test\n");
    assert!(matches!(e, Error::Syntax { .. }), "{e}");
    let pos = e.pos().unwrap();
    assert_eq!(pos.line, 4, "{e}");
    assert!(e.to_string().starts_with(".gitlab-ci.yml:4:"), "{e}");
}

#[test]
fn tab_indentation_and_unclosed_flow_are_syntax_errors() {
    let e = error_of("job:\n\tscript: [echo]\n");
    assert!(matches!(e, Error::Syntax { .. }), "{e}");
    assert_eq!(e.pos().unwrap().line, 2, "{e}");
    let e = error_of("job:\n  script: [echo\n  stage: test\n");
    assert!(matches!(e, Error::Syntax { .. }), "{e}");
}

#[test]
fn needs_an_undefined_job() {
    check(
        "build: {script: [echo]}\ntest:\n  needs: [build, biuld]\n  script: [echo]\n",
        3,
        18,
        &["test.needs", "\"biuld\"", "not defined"],
    );
}

#[test]
fn needs_a_later_stage() {
    check(
        "a:\n  stage: build\n  needs: [b]\n  script: [echo]\nb:\n  stage: deploy\n  script: [echo]\n",
        3,
        11,
        &["a.needs", "after this job's stage"],
    );
}

#[test]
fn bad_matrix() {
    check(
        "t:\n  parallel:\n    matrix:\n      - LR: {a: 1}\n  script: [echo]\n",
        4,
        13,
        &["t.parallel.matrix.LR"],
    );
    check(
        "t:\n  parallel:\n    matrix: []\n  script: [echo]\n",
        3,
        13,
        &["t.parallel.matrix", "empty"],
    );
    check(
        "t:\n  parallel:\n    matrix:\n      - [a, b]\n  script: [echo]\n",
        4,
        9,
        &["t.parallel.matrix", "mapping"],
    );
    check(
        "t:\n  parallel:\n    matrix:\n      - {A: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15], B: [1,2,3,4,5,6,7,8,9,10,11,12,13,14]}\n  script: [echo]\n",
        4,
        7,
        &["210 jobs", "200"],
    );
    check(
        "t:\n  parallel: 0\n  script: [echo]\n",
        2,
        13,
        &["t.parallel", "between 1 and 200"],
    );
}

#[test]
fn stage_not_in_stages() {
    check(
        "stages: [build]\nj:\n  stage: tset\n  script: [echo]\n",
        3,
        10,
        &["j.stage", "\"tset\""],
    );
}

#[test]
fn extends_problems() {
    check(
        "j:\n  extends: .nope\n  script: [echo]\n",
        2,
        12,
        &["j.extends", "\".nope\""],
    );
    check(
        ".a: {extends: .b}\n.b: {extends: .a}\nj: {extends: .a, script: [echo]}\n",
        2,
        15,
        &["circular `extends`"],
    );
}

#[test]
fn missing_script_and_bad_types() {
    check("j:\n  stage: test\n", 1, 1, &["j", "script"]);
    check(
        "j:\n  script: [echo]\n  when: sometimes\n",
        3,
        9,
        &["j.when"],
    );
    check(
        "j:\n  script: [echo]\n  retry: 3\n",
        3,
        10,
        &["j.retry", "0, 1 or 2"],
    );
    check(
        "j:\n  script: [echo]\n  timeout: 5 fortnights\n",
        3,
        12,
        &["j.timeout", "fortnights"],
    );
    check("j:\n  script:\n    - {a: b}\n", 3, 7, &["j.script"]);
}

#[test]
fn bad_rules_expression() {
    check(
        "j:\n  script: [echo]\n  rules:\n    - if: $A == \"x\" &&\n",
        4,
        11,
        &["j.rules.if", "invalid expression"],
    );
}

#[test]
fn unknown_reference() {
    check(
        "j:\n  script:\n    - !reference [.lib, script]\n",
        3,
        7,
        &["!reference", ".lib.script"],
    );
}

#[test]
fn keel_section_is_checked_too() {
    check(
        ".keel:\n  jobs:\n    tran: {deps: [a]}\ntrain: {script: [echo]}\n",
        3,
        5,
        &[".keel.jobs.tran", "no job named"],
    );
    check(
        ".keel:\n  jobs:\n    train: {dep: [a]}\ntrain: {script: [echo]}\n",
        3,
        13,
        &[".keel.jobs.train.dep", "unknown key"],
    );
    check(
        ".keel:\n  jobs:\n    train: {outs: [\"m-${LR}\"]}\ntrain: {script: [echo]}\n",
        3,
        20,
        &["${LR}"],
    );
}

#[test]
fn include_of_a_missing_file() {
    check(
        "include: ci/nope.yml\nj: {script: [echo]}\n",
        1,
        10,
        &["include", "does not exist"],
    );
}

#[test]
fn unsupported_tags() {
    check(
        "j:\n  script: !custom [echo]\n",
        2,
        11,
        &["!custom", "only !reference"],
    );
}

#[test]
fn only_except_problems() {
    check(
        "a:\n  script: [echo]\n  rules: [{when: always}]\n  only: [main]\n",
        4,
        9,
        &["a.only", "cannot be used with `rules`"],
    );
    check(
        "a:\n  script: [echo]\n  except:\n    refs: [main]\n    branch: x\n",
        5,
        5,
        &["a.except.branch", "unknown key"],
    );
    check(
        "a:\n  script: [echo]\n  only:\n    variables: ['$A == ']\n",
        4,
        16,
        &["a.only.variables", "invalid expression"],
    );
}
