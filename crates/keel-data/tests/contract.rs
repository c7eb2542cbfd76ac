//! Contract checks: each passes and fails where it should, `mostly`
//! included, and malformed contracts are reported with file, line and field.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use keel_data::contract::{validate_batches, CheckResult, Contract};
use keel_data::DataError;

fn data() -> RecordBatch {
    RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 4])) as ArrayRef,
        ),
        (
            "amount",
            Arc::new(Float64Array::from(vec![
                Some(10.0),
                Some(20.0),
                None,
                Some(-5.0),
                Some(30.0),
            ])) as ArrayRef,
        ),
        (
            "country",
            Arc::new(StringArray::from(vec!["FR", "DE", "FR", "XX", "US"])) as ArrayRef,
        ),
        (
            "email",
            Arc::new(StringArray::from(vec![
                Some("a@b.c"),
                Some("nope"),
                Some("x@y.z"),
                None,
                Some("q@w.e"),
            ])) as ArrayRef,
        ),
        (
            "ok",
            Arc::new(BooleanArray::from(vec![true, false, true, true, true])) as ArrayRef,
        ),
    ])
    .unwrap()
}

fn run(yaml: &str) -> Vec<CheckResult> {
    let c = Contract::from_yaml(yaml, Path::new("t.contract.yaml")).unwrap();
    // Two batches, to exercise accumulation across batches.
    let b = data();
    validate_batches(&[b.slice(0, 3), b.slice(3, 2)], &c)
        .unwrap()
        .checks
}

fn one(yaml: &str, check: &str) -> CheckResult {
    run(yaml)
        .into_iter()
        .find(|c| c.check == check)
        .unwrap_or_else(|| panic!("no {check} check"))
}

#[test]
fn row_count() {
    assert!(one("rows: {min: 5, max: 5}", "row_count").success);
    let r = one("rows: {min: 6}", "row_count");
    assert!(!r.success);
    assert_eq!(r.observed.as_deref(), Some("5"));
    assert!(!one("rows: {max: 4}", "row_count").success);
}

#[test]
fn presence_type_and_strict() {
    assert!(one("columns: [{name: id, type: integer}]", "type").success);
    assert!(one("columns: [{name: id, type: number}]", "type").success);
    assert!(!one("columns: [{name: amount, type: integer}]", "type").success);
    assert!(one("columns: [{name: ok, type: boolean}]", "type").success);
    let r = one("columns: [{name: missing_col}]", "present");
    assert!(!r.success);
    let r = one("strict: true\ncolumns: [{name: id}]", "strict");
    assert!(!r.success);
    assert_eq!(r.examples, vec!["amount", "country", "email", "ok"]);
    let all = "strict: true\ncolumns: [{name: id}, {name: amount}, {name: country}, {name: email}, {name: ok}]";
    assert!(one(all, "strict").success);
}

#[test]
fn not_null_and_mostly() {
    let r = one("columns: [{name: amount, nullable: false}]", "not_null");
    assert!(!r.success);
    assert_eq!((r.unexpected_count, r.element_count), (1, 5));
    // GX: 1 null in 5 rows passes with mostly 0.8 (80 % ≥ 0.8) …
    assert!(
        one(
            "columns: [{name: amount, nullable: false, mostly: 0.8}]",
            "not_null"
        )
        .success
    );
    // … and fails with mostly 0.81.
    assert!(
        !one(
            "columns: [{name: amount, nullable: false, mostly: 0.81}]",
            "not_null"
        )
        .success
    );
    assert!(one("columns: [{name: id, nullable: false}]", "not_null").success);
}

#[test]
fn unique() {
    let r = one("columns: [{name: id, unique: true}]", "unique");
    assert!(!r.success);
    // GX counts every row whose value is duplicated.
    assert_eq!(r.unexpected_count, 2);
    assert_eq!(r.examples, vec!["4"]);
    assert!(
        one(
            "columns: [{name: country, unique: true, mostly: 0.6}]",
            "unique"
        )
        .success
    );
    assert!(one("columns: [{name: amount, unique: true}]", "unique").success);
}

#[test]
fn between_with_mostly() {
    let r = one("columns: [{name: amount, min: 0, max: 25}]", "between");
    assert!(!r.success);
    // Null not evaluated: 4 evaluated, -5 and 30 fail.
    assert_eq!(r.unexpected_count, 2);
    assert_eq!(r.unexpected_fraction, 0.5);
    assert_eq!(r.examples, vec!["-5.0", "30.0"]);
    assert!(
        one(
            "columns: [{name: amount, min: 0, max: 25, mostly: 0.5}]",
            "between"
        )
        .success
    );
    assert!(
        !one(
            "columns: [{name: amount, min: 0, max: 25, mostly: 0.51}]",
            "between"
        )
        .success
    );
    assert!(one("columns: [{name: amount, min: -5, max: 30}]", "between").success);
    assert!(one("columns: [{name: id, max: 4}]", "between").success);
}

#[test]
fn allowed_values() {
    let r = one(
        "columns: [{name: country, allowed: [FR, DE, US]}]",
        "allowed",
    );
    assert!(!r.success);
    assert_eq!(
        (r.unexpected_count, r.examples.clone()),
        (1, vec!["XX".to_string()])
    );
    assert!(
        one(
            "columns: [{name: country, allowed: [FR, DE, US, XX]}]",
            "allowed"
        )
        .success
    );
    // GX: 1 bad value in 5 fails with mostly 0.9 …
    assert!(
        !one(
            "columns: [{name: country, allowed: [FR, DE, US], mostly: 0.9}]",
            "allowed"
        )
        .success
    );
    // … and passes with 0.8.
    assert!(
        one(
            "columns: [{name: country, allowed: [FR, DE, US], mostly: 0.8}]",
            "allowed"
        )
        .success
    );
    assert!(one("columns: [{name: id, allowed: [1, 2, 3, 4]}]", "allowed").success);
    assert!(!one("columns: [{name: id, allowed: [1, 2, 3]}]", "allowed").success);
    assert!(!one("columns: [{name: ok, allowed: [true]}]", "allowed").success);
}

#[test]
fn pattern_and_length() {
    let r = one(
        r#"columns: [{name: email, pattern: '^[^@]+@[^@]+$'}]"#,
        "pattern",
    );
    assert!(!r.success);
    assert_eq!((r.unexpected_count, r.missing_count), (1, 1));
    assert_eq!(r.examples, vec!["nope"]);
    assert!(
        one(
            r#"columns: [{name: email, pattern: '^[^@]+@[^@]+$', mostly: 0.75}]"#,
            "pattern"
        )
        .success
    );
    assert!(
        one(
            "columns: [{name: email, length: {min: 4, max: 5}}]",
            "length"
        )
        .success
    );
    let r = one("columns: [{name: email, length: {min: 5}}]", "length");
    assert!(!r.success);
    assert_eq!(r.examples, vec!["nope"]);
    // A pattern on a non-string column fails rather than passing vacuously.
    assert!(!one("columns: [{name: id, pattern: '1'}]", "pattern").success);
}

#[test]
fn report_counts_and_json() {
    let c = Contract::from_yaml(
        "name: t\ncolumns: [{name: id, unique: true}, {name: country, allowed: [FR, DE, US, XX]}]",
        Path::new("t.contract.yaml"),
    )
    .unwrap();
    let r = validate_batches(&[data()], &c).unwrap();
    assert!(!r.success);
    assert_eq!((r.evaluated, r.successful), (2, 1));
    let back: keel_data::ValidationReport = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(back, r);
}

fn contract_error(yaml: &str) -> (usize, String) {
    match Contract::from_yaml(yaml, Path::new("bad.contract.yaml")) {
        Err(DataError::Contract {
            path,
            line,
            message,
            ..
        }) => {
            assert_eq!(path, Path::new("bad.contract.yaml"));
            let shown = DataError::Contract {
                path,
                line,
                column: 0,
                message: message.clone(),
            }
            .to_string();
            assert!(shown.starts_with("bad.contract.yaml:"), "{shown}");
            (line, message)
        }
        other => panic!("expected a contract error, got {other:?}"),
    }
}

#[test]
fn malformed_contracts_name_line_and_field() {
    // Unknown check on line 4.
    let (line, msg) = contract_error("columns:\n  - name: a\n    type: integer\n    maxx: 3\n");
    assert_eq!(line, 4);
    assert!(msg.contains("maxx"), "{msg}");
    // Bad type name on line 3.
    let (line, msg) = contract_error("columns:\n  - name: a\n    type: flaot\n");
    assert_eq!(line, 3);
    assert!(msg.contains("flaot") && msg.contains("columns[0]"), "{msg}");
    // Invalid regex on line 3.
    let (line, msg) = contract_error("columns:\n  - name: a\n    pattern: '(['\n");
    assert_eq!(line, 3);
    assert!(msg.contains("regex"), "{msg}");
    // mostly out of range.
    let (line, msg) = contract_error("columns:\n  - name: a\n    mostly: 1.5\n");
    assert_eq!(line, 3);
    assert!(msg.contains("mostly"), "{msg}");
    // Semantic error: min > max, reported at the field's line.
    let (line, msg) =
        contract_error("rows: {min: 1}\ncolumns:\n  - name: a\n    min: 5\n    max: 1\n");
    assert_eq!(line, 4);
    assert!(msg.contains("columns[0].min"), "{msg}");
    // Duplicate column, reported at its first name line.
    let (line, msg) = contract_error("columns:\n  - name: a\n  - name: b\n  - name: a\n");
    assert_eq!(line, 2);
    assert!(msg.contains("twice"), "{msg}");
    // Unknown drift method in the reference section.
    let (line, msg) = contract_error(
        "columns:\n  - name: a\nreference:\n  path: r.csv\n  columns:\n    a: {method: kss}\n",
    );
    assert_eq!(line, 6);
    assert!(msg.contains("kss"), "{msg}");
}
