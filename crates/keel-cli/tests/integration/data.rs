use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::util::{sha256_tree, Env};

#[test]
fn errors_are_clear_and_exit_2() {
    let env = Env::new();
    let out = env.run(&["data", "add", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a keel project") && err.contains("keel init"),
        "{err}"
    );

    env.ok(&["init"]);
    let out = env.run(&["data", "add", "missing"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing: does not exist"));
    let out = env.run(&["data", "add", "../outside"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside the project"));
    let out = env.run(&["data", "add", ".keel"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("keel's or git's own directory"));
    env.write("f.txt", b"x");
    env.ok(&["data", "add", "f.txt"]);
    let out = env.run(&["data", "checkout", "f.txt@v9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no version \"v9\""));
    let out = env.run(&["data", "pull", "f.txt"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no remote"));
}

/// The acceptance round trip: 10,000 small files plus a 1 GiB file (size
/// overridable with KEEL_TEST_BIG_MB), modified, re-added, and the first
/// version checked out byte-identical by an independent hash.
#[test]
fn round_trip_10k_files_and_a_large_file() {
    let big_mb: u64 = std::env::var("KEEL_TEST_BIG_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let env = Env::new();
    env.ok(&["init"]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..10_000 {
        let len = rng.random_range(1..600);
        let body: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        env.write(&format!("data/shard-{:02}/item-{i:05}.bin", i % 37), &body);
    }
    let mut f = std::fs::File::create(env.path("data/big.bin")).unwrap();
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..big_mb {
        rng.fill(&mut chunk[..]);
        f.write_all(&chunk).unwrap();
    }
    drop(f);
    let original = sha256_tree(&env.path("data"));

    let v1 = env.json(&["data", "add", "data", "--sync"]);
    assert_eq!(v1[0]["version"]["files"], 10_001);
    assert!(v1[0]["version"]["size"].as_u64().unwrap() > big_mb << 20);
    // The small files went into one pack, not 10,000 object files.
    let packed: Vec<String> = std::fs::read_dir(env.path(".keel/objects/pack"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(packed.len(), 2, "{packed:?}");

    // Modify some, delete some, add one, change the big file.
    for i in (0..10_000).step_by(997) {
        env.write(
            &format!("data/shard-{:02}/item-{i:05}.bin", i % 37),
            b"modified",
        );
    }
    for i in (5..10_000).step_by(1999) {
        std::fs::remove_file(env.path(&format!("data/shard-{:02}/item-{i:05}.bin", i % 37)))
            .unwrap();
    }
    env.write("data/new.txt", b"new");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(env.path("data/big.bin"))
        .unwrap();
    f.write_all(b"overwritten head").unwrap();
    drop(f);
    let status = env.json(&["data", "status", "data"]);
    assert_eq!(status["clean"], false);
    let changes = &status["datasets"][0]["changes"];
    assert_eq!(changes["added"].as_array().unwrap().len(), 1);
    assert_eq!(changes["removed"].as_array().unwrap().len(), 5);
    // 11 small files (i = 0, 997, …, 9970) and the big one.
    assert_eq!(changes["modified"].as_array().unwrap().len(), 12);

    let v2 = env.json(&["data", "add", "data"]);
    assert_eq!(v2[0]["version"]["version"], 2);
    let diff = env.json(&["data", "diff", "data@1", "@2"]);
    assert_eq!(diff["modified"].as_array().unwrap().len(), 12);

    env.ok(&["data", "checkout", "data@1"]);
    assert_eq!(sha256_tree(&env.path("data")), original);
    let fsck = env.json(&["fsck"]);
    assert_eq!(fsck["ok"], true, "{fsck}");
}

/// SIGKILL `keel data add` at random moments: the stores stay consistent
/// (fsck clean) and re-running the add completes.
#[test]
fn sigkill_during_add_leaves_stores_consistent() {
    let env = Env::new();
    env.ok(&["init"]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut gen = 0u32;
    let populate = |rng: &mut rand::rngs::StdRng, gen: u32| {
        for i in 0..3000 {
            if i % 3 == gen as usize % 3 {
                env.write(
                    &format!("data/d{}/f{i}.txt", i % 20),
                    format!("{gen}-{i}-{}", rng.random::<u64>()).as_bytes(),
                );
            }
        }
        let big: Vec<u8> = (0..(24 << 20)).map(|_| rng.random()).collect();
        env.write("data/big.bin", &big);
    };
    populate(&mut rng, gen);
    // Kills must land inside an add however fast `add` is on this machine
    // and build: time one complete add, draw each kill moment from that
    // window, and narrow the window whenever an add finished first.
    let started = Instant::now();
    env.ok(&["data", "add", "data"]);
    let mut window_ms = (started.elapsed().as_millis() as u64).max(10);
    gen += 1;
    populate(&mut rng, gen);
    let mut killed = 0;
    for round in 0..60 {
        if killed >= 30 {
            break;
        }
        let mut child = env
            .cmd(&["data", "add", "data"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..window_ms)));
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        } else {
            window_ms = (window_ms * 3 / 4).max(5);
        }
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        let out = env.run(&["fsck", "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            out.status.success() && report["ok"] == true,
            "round {round}: fsck after SIGKILL: {report}"
        );
        // New content every round, so that every add has real work to be
        // killed in (the stat cache makes an unchanged re-add quick).
        gen += 1;
        populate(&mut rng, gen);
    }
    assert!(killed >= 20, "only {killed} adds were killed mid-way");
    let expected = sha256_tree(&env.path("data"));
    env.ok(&["data", "add", "data"]);
    let status = env.json(&["data", "status"]);
    assert_eq!(status["clean"], true, "{status}");
    std::fs::remove_dir_all(env.path("data")).unwrap();
    env.ok(&["data", "checkout", "data"]);
    assert_eq!(sha256_tree(&env.path("data")), expected);
    let fsck = env.json(&["fsck"]);
    assert_eq!(fsck["ok"], true);
}

#[test]
fn corrupt_object_fails_fsck_with_exit_1_and_names_the_dataset() {
    let env = Env::new();
    env.ok(&["init"]);
    env.write("d/a.csv", b"a,b\n1,2\n");
    env.ok(&["data", "add", "d"]);
    let h = blake3::hash(b"a,b\n1,2\n").to_hex().to_string();
    let obj = env.path(&format!(".keel/objects/{}/{}", &h[..2], &h[2..]));
    std::fs::set_permissions(&obj, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&obj, b"a,b\n1,3\n").unwrap();
    let out = env.run(&["fsck"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("CORRUPT") && text.contains(&h) && text.contains("d@v1:a.csv"),
        "{text}"
    );
}

#[test]
fn push_pull_via_cli_and_missing_remote_object() {
    let env = Env::new();
    env.ok(&["init"]);
    env.write("d/x.txt", b"x");
    env.write("d/y.txt", b"y");
    env.ok(&["data", "add", "d"]);
    let remote = env.path("remote-store");
    env.ok(&["data", "remote", remote.to_str().unwrap()]);
    let pushed = env.json(&["data", "push"]);
    assert_eq!(pushed["uploaded"], 3);

    let clone = Env::new();
    clone.ok(&["init"]);
    std::fs::copy(env.path("d.keel"), clone.path("d.keel")).unwrap();
    let pulled = clone.json(&["data", "pull", "--remote", remote.to_str().unwrap()]);
    assert_eq!(pulled["downloaded"], 3);
    assert_eq!(std::fs::read(clone.path("d/y.txt")).unwrap(), b"y");

    let h = blake3::hash(b"y").to_hex().to_string();
    std::fs::remove_file(remote.join(&h[..2]).join(&h[2..])).unwrap();
    let third = Env::new();
    third.ok(&["init"]);
    std::fs::copy(env.path("d.keel"), third.path("d.keel")).unwrap();
    let out = third.run(&["data", "pull", "--remote", remote.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing on remote") && err.contains(&h) && err.contains("d/y.txt"),
        "{err}"
    );
}

/// `keel data add` says how much it stored as copy-on-write clones: on
/// XFS or btrfs (`KEEL_TEST_REFLINK_DIR`, see scripts/test.sh) a large file
/// that has settled is cloned, elsewhere copied. Either way a later edit of
/// the workspace file leaves the version's bytes intact.
#[test]
fn add_reports_cloned_bytes_and_the_version_survives_edits() {
    let reflink = std::env::var_os("KEEL_TEST_REFLINK_DIR");
    let env = match &reflink {
        Some(d) => Env::in_dir(std::path::Path::new(d)),
        None => Env::new(),
    };
    env.ok(&["init"]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let big: Vec<u8> = (0..(8 << 20)).map(|_| rng.random()).collect();
    env.write("data/big.bin", &big);
    env.write("data/small.txt", b"small\n");
    let original = sha256_tree(&env.path("data"));
    std::thread::sleep(Duration::from_millis(1100));
    let rep = env.json(&["data", "add", "data"]);
    let rep = &rep[0];
    assert_eq!(rep["new_objects"], 3, "{rep}"); // two files and the manifest
    assert_eq!(rep["new_bytes"], (8 << 20) + 6, "{rep}");
    let cloned = if reflink.is_some() { 8 << 20 } else { 0 };
    assert_eq!(rep["cloned_bytes"], cloned, "{rep}");

    // Rewritten in place: the store's copy must not change with it.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(env.path("data/big.bin"))
        .unwrap();
    f.write_all(b"edited in place").unwrap();
    drop(f);
    let fsck = env.json(&["fsck"]);
    assert_eq!(fsck["ok"], true, "{fsck}");
    env.ok(&["data", "checkout", "data@1", "--force"]);
    assert_eq!(sha256_tree(&env.path("data")), original);
}

/// A reader that stops reading (`keel data log | head -1`) ends keel with
/// the status of a command killed by SIGPIPE, never a panic.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let env = Env::new();
    env.ok(&["init"]);
    for i in 0..5 {
        env.write(&format!("data/{i}.txt"), format!("v{i}").as_bytes());
        env.ok(&["data", "add", "data"]);
    }
    for args in [&["data", "log", "data"][..], &["fsck", "--json"]] {
        let mut child = env
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Closed before keel has started writing.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
    }
}
