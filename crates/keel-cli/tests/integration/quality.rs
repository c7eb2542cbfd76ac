use crate::util::Env;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn csv(rows: usize, offset: i64) -> String {
    let mut s = String::from("x,city,note\n");
    for i in 0..rows as i64 {
        let city = ["Paris", "Oslo", "Lima"][(i % 3) as usize];
        s.push_str(&format!(
            "{},{city},free text number {i}\n",
            i * 7 % 101 + offset
        ));
    }
    s
}

/// A profile inside a project is computed once per content: the second
/// `keel data profile` of the same bytes (here after a copy to another
/// path, then after `keel data add`) comes from the project's cache; new
/// bytes are profiled again.
#[test]
fn profiles_are_cached_by_content_hash() {
    let env = Env::new();
    env.write("train.csv", csv(500, 0).as_bytes());
    // Outside a project: computed, nothing cached, nothing said.
    let out = env.run(&["data", "profile", "train.csv", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("cached"), "{}", stderr(&out));
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(first["rows"], 500);
    let note = &first["columns"][2];
    assert_eq!(
        (note["kind"].as_str(), note["distinct"].as_u64()),
        (Some("text"), Some(500))
    );
    assert_eq!(note["text"]["max_length"], 20);
    // Unique free text has no meaningful top values.
    assert!(note.get("top_values").is_none(), "{note}");

    env.ok(&["init"]);
    let out = env.run(&["data", "profile", "train.csv", "--json"]);
    assert!(!stderr(&out).contains("cached"), "{}", stderr(&out));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        first
    );

    env.ok(&["data", "add", "train.csv"]);
    std::fs::copy(env.path("train.csv"), env.path("copy.csv")).unwrap();
    for file in ["train.csv", "copy.csv"] {
        let out = env.run(&["data", "profile", file, "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("cached profile"), "{}", stderr(&out));
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
            first
        );
    }
    // `--no-cache` recomputes, to the same result.
    let out = env.run(&["data", "profile", "train.csv", "--json", "--no-cache"]);
    assert!(!stderr(&out).contains("cached"), "{}", stderr(&out));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        first
    );

    // New bytes: profiled again.
    env.write("train.csv", csv(500, 1000).as_bytes());
    let out = env.run(&["data", "profile", "train.csv", "--json"]);
    assert!(!stderr(&out).contains("cached"), "{}", stderr(&out));
    let second: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(second["columns"][0]["numeric"]["min"], 1000.0);
}
