use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use keel_core::{DatasetPath, NoProgress, ObjectHash};
use keel_store::data::{self, CheckoutOptions, DataChange, FsckProblem, VersionRef};
use keel_store::objects::{LinkMode, RemoteObjects, Stored};
use keel_store::{Overrides, Project, Store, StoreError};

use crate::backends::{backends, project};

fn ds(p: &str) -> DatasetPath {
    DatasetPath::new(p).unwrap()
}

fn at(p: &str, v: &str) -> VersionRef {
    VersionRef {
        path: ds(p),
        version: Some(v.to_string()),
    }
}

const AUTO: CheckoutOptions = CheckoutOptions {
    link: LinkMode::Auto,
    force: false,
};

/// sha256 of every file under `dir`, by relative path — computed by
/// coreutils, independently of keel's BLAKE3.
fn sha256_tree(dir: &Path) -> BTreeMap<String, String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg("find . -type f ! -name '.*keel-tmp*' -print0 | sort -z | xargs -0 -r sha256sum")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (h, p) = l.split_once("  ").unwrap();
            (p.trim_start_matches("./").to_string(), h.to_string())
        })
        .collect()
}

/// A bare object store in `dir/objects`.
fn objects_in(dir: &Path) -> keel_store::objects::LocalObjects {
    keel_store::objects::LocalObjects::open(&dir.join("objects"), &dir.join("objects/tmp")).unwrap()
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, bytes).unwrap();
}

#[tokio::test]
async fn add_modify_add_checkout_round_trip() {
    for backend in backends() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let store = project(backend, root).await;
        for i in 0..300 {
            write(
                root,
                &format!("data/part-{}/f{i}.txt", i % 7),
                format!("row {i}\n").as_bytes(),
            );
        }
        write(root, "data/dup-a.bin", b"same bytes");
        write(root, "data/dup-b.bin", b"same bytes");
        let big: Vec<u8> = (0..(20u32 << 20))
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        write(root, "data/big.bin", &big);
        let original = sha256_tree(&root.join("data"));

        let r1 = data::add(&store, &ds("data"), Some("first"), &NoProgress)
            .await
            .unwrap();
        assert_eq!(r1.version.seq.0, 1);
        assert!(r1.new_version);
        assert_eq!(r1.version.nfiles, 303);
        // 302 distinct files (the two duplicates share one object) + the manifest.
        assert_eq!(r1.new_objects, 303, "{backend:?}");
        assert!(root.join("data.keel").is_file());

        // Unchanged re-add: nothing hashed (stat cache), no new version.
        // Sleep past the racy window so every entry is trusted.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let again = data::add(&store, &ds("data"), None, &NoProgress)
            .await
            .unwrap();
        assert!(!again.new_version);
        assert_eq!(again.version.seq.0, 1);

        // Modify, delete, add.
        write(root, "data/part-0/f0.txt", b"changed\n");
        fs::remove_file(root.join("data/part-1/f1.txt")).unwrap();
        write(root, "data/new/extra.txt", b"new file\n");
        let st = data::status(&store, &[ds("data")]).await.unwrap();
        assert_eq!(
            st[0].change,
            DataChange::Changed {
                added: vec!["new/extra.txt".into()],
                removed: vec!["part-1/f1.txt".into()],
                modified: vec!["part-0/f0.txt".into()],
            }
        );
        let r2 = data::add(&store, &ds("data"), Some("second"), &NoProgress)
            .await
            .unwrap();
        assert_eq!(r2.version.seq.0, 2);
        assert!(
            r2.hashed_files <= 3,
            "only changed files are read, read {}",
            r2.hashed_files
        );
        let st = data::status(&store, &[ds("data")]).await.unwrap();
        assert_eq!(st[0].change, DataChange::UpToDate);

        let (_, _, d) = data::diff(&store, &at("data", "1"), &at("data", "v2"))
            .await
            .unwrap();
        assert_eq!(d.added, vec!["new/extra.txt"]);
        assert_eq!(d.removed, vec!["part-1/f1.txt"]);
        assert_eq!(d.modified, vec!["part-0/f0.txt"]);
        assert_eq!(d.unchanged, 301);

        let log = data::log(&store, &ds("data")).await.unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].message.as_deref(), Some("first"));

        // Back to v1: byte-identical by an independent hash.
        let co = data::checkout(&store, &at("data", "1"), AUTO, &NoProgress)
            .await
            .unwrap();
        assert_eq!(co.written, 2);
        assert_eq!(co.removed, 1);
        assert_eq!(sha256_tree(&root.join("data")), original, "{backend:?}");
        let pointer = data::Pointer::read(&root.join("data.keel"))
            .unwrap()
            .unwrap();
        assert_eq!(pointer.version, 1);
        // And forward again by hash prefix.
        data::checkout(
            &store,
            &at("data", &r2.version.hash.short(10)),
            AUTO,
            &NoProgress,
        )
        .await
        .unwrap();
        assert_eq!(
            fs::read(root.join("data/new/extra.txt")).unwrap(),
            b"new file\n"
        );

        let report = data::fsck(&store, false, &NoProgress).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.versions, 2);
    }
}

#[tokio::test]
async fn single_files_hardlinks_and_protection() {
    for backend in backends() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let store = project(backend, root).await;
        write(root, "model.bin", b"v1 bytes");
        let v1 = data::add(&store, &ds("model.bin"), None, &NoProgress)
            .await
            .unwrap()
            .version;
        write(root, "model.bin", b"v2 bytes, longer");
        data::add(&store, &ds("model.bin"), None, &NoProgress)
            .await
            .unwrap();
        let opts = CheckoutOptions {
            link: LinkMode::Hardlink,
            force: false,
        };
        data::checkout(&store, &at("model.bin", "1"), opts, &NoProgress)
            .await
            .unwrap();
        assert_eq!(fs::read(root.join("model.bin")).unwrap(), b"v1 bytes");
        // A hard-linked file is read-only: writing it would write the object.
        let meta = fs::metadata(root.join("model.bin")).unwrap();
        assert!(meta.permissions().readonly());
        assert_eq!(meta.len(), v1.size);
        let report = data::fsck(&store, false, &NoProgress).await.unwrap();
        assert!(report.problems.is_empty());
    }
}

#[tokio::test]
async fn checkout_refuses_to_delete_unsaved_files() {
    for backend in backends() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let store = project(backend, root).await;
        write(root, "d/a.txt", b"a");
        data::add(&store, &ds("d"), None, &NoProgress)
            .await
            .unwrap();
        write(root, "d/precious.txt", b"never added");
        let err = data::checkout(&store, &at("d", "1"), AUTO, &NoProgress)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::WouldLoseData { .. }), "{err}");
        assert!(root.join("d/precious.txt").exists());
        let forced = CheckoutOptions {
            link: LinkMode::Auto,
            force: true,
        };
        data::checkout(&store, &at("d", "1"), forced, &NoProgress)
            .await
            .unwrap();
        assert!(!root.join("d/precious.txt").exists());
    }
}

#[tokio::test]
async fn fsck_names_corrupt_objects_and_their_datasets() {
    for backend in backends() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let store = project(backend, root).await;
        write(root, "d/a.txt", b"alpha");
        write(root, "d/b.txt", b"beta");
        data::add(&store, &ds("d"), None, &NoProgress)
            .await
            .unwrap();
        let target = keel_core::ObjectHash::of_bytes(b"beta");
        let path = store.objects.path_of(&target);
        let mut perm = fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        fs::set_permissions(&path, perm).unwrap();
        fs::write(&path, b"bitrot").unwrap();

        let report = data::fsck(&store, false, &NoProgress).await.unwrap();
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        match &report.problems[0] {
            FsckProblem::Corrupt {
                hash,
                actual,
                used_by,
            } => {
                assert_eq!(*hash, target);
                assert_eq!(*actual, keel_core::ObjectHash::of_bytes(b"bitrot"));
                assert_eq!(used_by, &vec!["d@v1:b.txt".to_string()]);
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        // Repair quarantines it; the object is then reported missing until
        // the data is added again, which heals the store.
        data::fsck(&store, true, &NoProgress).await.unwrap();
        let report = data::fsck(&store, false, &NoProgress).await.unwrap();
        assert!(matches!(
            report.problems.as_slice(),
            [FsckProblem::Missing { .. }]
        ));
        std::thread::sleep(std::time::Duration::from_millis(1100));
        fs::write(root.join("d/b.txt"), b"beta").unwrap();
        data::add(&store, &ds("d"), None, &NoProgress)
            .await
            .unwrap();
        let report = data::fsck(&store, false, &NoProgress).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);

        // An object that cannot be read is reported as such, with its
        // users, and left where it is by repair.
        let alpha = store
            .objects
            .path_of(&keel_core::ObjectHash::of_bytes(b"alpha"));
        fs::remove_file(&alpha).unwrap();
        fs::create_dir(&alpha).unwrap();
        for repair in [false, true] {
            let report = data::fsck(&store, repair, &NoProgress).await.unwrap();
            assert!(
                matches!(report.problems.as_slice(),
                    [FsckProblem::Unreadable { used_by, message, .. }]
                        if used_by == &vec!["d@v1:a.txt".to_string()] && !message.is_empty()),
                "{:?}",
                report.problems
            );
            assert!(alpha.is_dir());
        }
    }
}

/// Pulls `data` (its latest version) from `remote` into `store`.
async fn pull_data(
    store: &Store,
    remote: &RemoteObjects,
) -> Result<data::TransferReport, StoreError> {
    let latest = VersionRef {
        path: ds("data"),
        version: None,
    };
    data::pull(store, remote, &[latest], AUTO, &NoProgress).await
}

#[tokio::test]
async fn push_pull_through_a_remote_into_a_fresh_clone() {
    for backend in backends() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        fs::create_dir_all(&a).unwrap();
        let store = project(backend, &a).await;
        for i in 0..300 {
            write(
                &a,
                &format!("data/{i}.csv"),
                format!("x,y\n{i},{}\n", i * i).as_bytes(),
            );
        }
        data::add(&store, &ds("data"), None, &NoProgress)
            .await
            .unwrap();
        let original = sha256_tree(&a.join("data"));
        let remote_dir = tmp.path().join("remote");
        let remote = RemoteObjects::open(remote_dir.to_str().unwrap()).unwrap();
        let pushed = data::push(&store, &remote, &[], false, &NoProgress)
            .await
            .unwrap();
        assert_eq!(pushed.transferred, 301);
        let again = data::push(&store, &remote, &[], false, &NoProgress)
            .await
            .unwrap();
        assert_eq!((again.transferred, again.present), (0, 301));

        // A fresh clone: only the pointer file (as git would bring it),
        // its own empty stores.
        let b = tmp.path().join("b");
        fs::create_dir_all(&b).unwrap();
        fs::copy(a.join("data.keel"), b.join("data.keel")).unwrap();
        let (pb, _) = Project::init(&b, &Overrides::default()).unwrap();
        let clone = Store::from_project(pb, &Overrides::default())
            .await
            .unwrap();
        let pulled = pull_data(&clone, &remote).await.unwrap();
        assert_eq!(pulled.transferred, 301);
        // The clone packed the small files it pulled, as an add does.
        assert_eq!(pack_files(&b.join(".keel/objects")).len(), 2);
        assert_eq!(sha256_tree(&b.join("data")), original);
        assert_eq!(
            fs::read(b.join("data.keel")).unwrap(),
            fs::read(a.join("data.keel")).unwrap()
        );

        // An object missing on the remote: a clear error naming it.
        let c = tmp.path().join("c");
        fs::create_dir_all(&c).unwrap();
        fs::copy(a.join("data.keel"), c.join("data.keel")).unwrap();
        let victim = keel_core::ObjectHash::of_bytes(b"x,y\n7,49\n").to_hex();
        fs::remove_file(remote_dir.join(&victim[..2]).join(&victim[2..])).unwrap();
        let (pc, _) = Project::init(&c, &Overrides::default()).unwrap();
        let third = Store::from_project(pc, &Overrides::default())
            .await
            .unwrap();
        let err = pull_data(&third, &remote).await.unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, StoreError::RemoteObjectMissing { count: 1, .. }),
            "{msg}"
        );
        assert!(msg.contains(&victim) && msg.contains("data/7.csv"), "{msg}");
        assert!(
            !c.join("data").exists(),
            "nothing checked out from a failed pull"
        );

        // An object whose bytes changed on the remote: refused by hash,
        // nothing packed or checked out.
        let tampered = keel_core::ObjectHash::of_bytes(b"x,y\n8,64\n");
        let hex = tampered.to_hex();
        fs::write(remote_dir.join(&hex[..2]).join(&hex[2..]), b"x,y\n8,65\n").unwrap();
        fs::write(
            remote_dir.join(&victim[..2]).join(&victim[2..]),
            b"x,y\n7,49\n",
        )
        .unwrap();
        let err = pull_data(&third, &remote).await.unwrap_err();
        assert!(
            matches!(err, StoreError::CorruptObject { expected, .. } if expected == tampered),
            "{err}"
        );
        assert!(!third.objects.contains(&tampered));
        assert!(pack_files(&c.join(".keel/objects")).is_empty());
        assert!(!c.join("data").exists());
    }
}

#[tokio::test]
async fn bad_pointer_files_name_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let store = project(backends()[0], root).await;
    write(root, "d/a.txt", b"a");
    data::add(&store, &ds("d"), None, &NoProgress)
        .await
        .unwrap();
    fs::write(
        root.join("d.keel"),
        "path: d\nkind: dir\nhash: nothex\nsize: 1\nfiles: 1\nversion: 1\n",
    )
    .unwrap();
    let err = data::checkout(
        &store,
        &VersionRef {
            path: ds("d"),
            version: None,
        },
        AUTO,
        &NoProgress,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("d.keel") && err.contains("hash"), "{err}");
    fs::write(root.join("d.keel"), "path: d\nkind: [oops\n").unwrap();
    let err = data::status(&store, &[ds("d")])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("d.keel:2") || err.contains("d.keel:3"),
        "{err}"
    );
}

#[tokio::test]
async fn checkout_refuses_to_overwrite_unsaved_edits() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let store = project(backends()[0], root).await;
    write(root, "d/a.csv", b"v1");
    data::add(&store, &ds("d"), None, &NoProgress)
        .await
        .unwrap();
    write(root, "d/a.csv", b"v2, never added");
    let err = data::checkout(&store, &at("d", "1"), AUTO, &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::WouldLoseData { count: 1, .. }),
        "{err}"
    );
    assert_eq!(fs::read(root.join("d/a.csv")).unwrap(), b"v2, never added");
}

#[tokio::test]
async fn same_content_in_two_versions_is_not_ambiguous() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let store = project(backends()[0], root).await;
    write(root, "d/a.csv", b"one");
    let v1 = data::add(&store, &ds("d"), None, &NoProgress)
        .await
        .unwrap()
        .version;
    write(root, "d/a.csv", b"two, longer");
    data::add(&store, &ds("d"), None, &NoProgress)
        .await
        .unwrap();
    data::checkout(&store, &at("d", "1"), AUTO, &NoProgress)
        .await
        .unwrap();
    // Touch the file so the add reads it again; it records v3 with v1's
    // hash (history is a log: returning to old content is a new entry).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write(root, "d/a.csv", b"one");
    let v3 = data::add(&store, &ds("d"), None, &NoProgress)
        .await
        .unwrap()
        .version;
    assert_eq!((v3.seq.0, v3.hash), (3, v1.hash));
    // A hash prefix naming both v1 and v3 is the same data, not ambiguous.
    let co = data::checkout(&store, &at("d", &v1.hash.short(8)), AUTO, &NoProgress)
        .await
        .unwrap();
    assert_eq!((co.version.seq.0, co.version.hash), (3, v1.hash));
}

#[tokio::test]
async fn a_hostile_manifest_cannot_write_outside_the_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("p");
    fs::create_dir_all(&root).unwrap();
    let store = project(backends()[0], &root).await;
    let (payload, _) = store.objects.put_bytes(b"owned").unwrap();
    for evil in [
        "../escape.txt",
        "/tmp/keel-escape.txt",
        "a/../../escape.txt",
    ] {
        let manifest =
            format!(r#"{{"keel_manifest":1,"entries":[{{"p":"{evil}","h":"{payload}","s":5}}]}}"#);
        let (mh, _) = store.objects.put_bytes(manifest.as_bytes()).unwrap();
        fs::write(
            root.join("d.keel"),
            format!("path: d\nkind: dir\nhash: {mh}\nsize: 5\nfiles: 1\nversion: 1\n"),
        )
        .unwrap();
        let err = data::checkout(
            &store,
            &VersionRef {
                path: ds("d"),
                version: None,
            },
            AUTO,
            &NoProgress,
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("entry invalid dataset path"),
            "{evil}: {err}"
        );
        assert!(
            !tmp.path().join("escape.txt").exists() && !Path::new("/tmp/keel-escape.txt").exists()
        );
    }
    // A symbolic link inside the dataset pointing outside is not written through.
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::create_dir_all(root.join("d")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("d/sub")).unwrap();
    let manifest =
        format!(r#"{{"keel_manifest":1,"entries":[{{"p":"sub/x.txt","h":"{payload}","s":5}}]}}"#);
    let (mh, _) = store.objects.put_bytes(manifest.as_bytes()).unwrap();
    fs::write(
        root.join("d.keel"),
        format!("path: d\nkind: dir\nhash: {mh}\nsize: 5\nfiles: 1\nversion: 1\n"),
    )
    .unwrap();
    let forced = CheckoutOptions {
        link: LinkMode::Auto,
        force: true,
    };
    let err = data::checkout(
        &store,
        &VersionRef {
            path: ds("d"),
            version: None,
        },
        forced,
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("in the way"), "{err}");
    assert!(!outside.join("x.txt").exists());
}

/// A directory `a` next to a file `a.txt`: the manifest lists `a.txt`
/// before `a/b` (byte order, as it is checked on reading), so the version
/// reads back, checks out and is up to date.
#[tokio::test]
async fn sibling_names_sort_like_the_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let store = project(backends()[0], root).await;
    write(root, "d/a/b", b"in the directory");
    write(root, "d/a.txt", b"next to it");
    write(root, "d/a-b", b"dash");
    let original = sha256_tree(&root.join("d"));
    data::add_with(&store, &ds("d"), None, data::Durability::Disk, &NoProgress)
        .await
        .unwrap();
    let st = data::status(&store, &[ds("d")]).await.unwrap();
    assert_eq!(st[0].change, DataChange::UpToDate);
    fs::remove_dir_all(root.join("d")).unwrap();
    data::checkout(&store, &at("d", "1"), AUTO, &NoProgress)
        .await
        .unwrap();
    assert_eq!(sha256_tree(&root.join("d")), original);
    let report = data::fsck(&store, false, &NoProgress).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // Objects are written unnamed and linked when complete: nothing is
    // left behind in the temporary directory.
    assert_eq!(report.temp_files, 0);
}

/// Large files are streamed through several buffers and written with
/// `O_DIRECT` where the file system allows it; a size that is not a whole
/// number of blocks ends with a buffered tail. The object must still hold
/// exactly the file's bytes under their hash.
#[test]
fn large_objects_with_a_partial_last_block_are_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let objects = objects_in(tmp.path());
    let bytes: Vec<u8> = (0..(17u32 << 20) + 12345)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    let src = tmp.path().join("big.bin");
    fs::write(&src, &bytes).unwrap();
    let meta = fs::metadata(&src).unwrap();
    let (h, stored) = objects.put_file(&src, &meta).unwrap();
    assert_eq!(stored, Stored::Copied);
    assert_eq!(h, keel_core::ObjectHash::of_bytes(&bytes));
    assert_eq!(objects.read(&h).unwrap(), bytes);
    assert_eq!(objects.verify(&h).unwrap(), None);
    // Stored once: the second put finds it.
    let again = objects.put_file(&src, &meta).unwrap();
    assert_eq!(again, (h, Stored::Existing));
    assert_eq!(objects.tmp_count(), 0);
}

/// Whether the file at `p` shares its blocks with another (a reflink), as
/// `filefrag` (e2fsprogs; FIEMAP's shared flag) reports.
fn shares_blocks(p: &Path) -> bool {
    let bin = ["/usr/sbin/filefrag", "/sbin/filefrag"]
        .into_iter()
        .find(|b| Path::new(b).exists())
        .unwrap_or("filefrag");
    let out = Command::new(bin).arg("-v").arg(p).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).contains("shared")
}

/// On a file system with reflinks (XFS, btrfs), a large file that has not
/// changed for a second is stored as a copy-on-write clone: its exact bytes
/// under their hash, and no disk space used. One changed within the last
/// second is copied (a write made while it is hashed could keep its ctime),
/// and one changed since it was scanned is refused on either path.
/// `KEEL_TEST_REFLINK_DIR` names a directory on such a file system
/// (scripts/test.sh mounts an XFS image when it can); without it the copy
/// path runs everywhere and only the bytes are checked. Whether an object
/// is a clone is read from its extents (FIEMAP's shared flag).
#[test]
fn settled_large_files_are_cloned_where_the_file_system_can() {
    let reflink = std::env::var_os("KEEL_TEST_REFLINK_DIR");
    let tmp = match &reflink {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .unwrap();
    let objects = objects_in(tmp.path());
    let size = 48u32 << 20;
    let content = |seed: u32| -> Vec<u8> {
        (0..size)
            .map(|i| (i.wrapping_add(seed).wrapping_mul(2654435761) >> 13) as u8)
            .collect()
    };
    let (fresh, settled, rewritten) = (content(1), content(2), content(3));
    let (fresh_p, settled_p, rewritten_p) = (
        tmp.path().join("fresh.bin"),
        tmp.path().join("settled.bin"),
        tmp.path().join("rewritten.bin"),
    );
    let mut other = rewritten.clone();
    other.reverse();
    fs::write(&settled_p, &settled).unwrap();
    fs::write(&rewritten_p, &rewritten).unwrap();
    let scanned = fs::metadata(&rewritten_p).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // Rewritten in place with other bytes of the same size after the scan.
    fs::write(&rewritten_p, &other).unwrap();
    // Written last, so that it is still under a second old when stored.
    fs::write(&fresh_p, &fresh).unwrap();

    // How the file was stored, and whether its object shares blocks.
    let put = |p: &Path, bytes: &[u8]| -> (Stored, bool) {
        let (h, stored) = objects.put_file(p, &fs::metadata(p).unwrap()).unwrap();
        assert_eq!(h, keel_core::ObjectHash::of_bytes(bytes));
        assert_eq!(objects.read(&h).unwrap(), bytes);
        assert_eq!(objects.verify(&h).unwrap(), None);
        (stored, shares_blocks(&objects.path_of(&h)))
    };
    // A file changed within the last second is copied.
    assert_eq!(put(&fresh_p, &fresh), (Stored::Copied, false));
    let settled_as = if reflink.is_some() {
        (Stored::Cloned, true)
    } else {
        (Stored::Copied, false)
    };
    assert_eq!(put(&settled_p, &settled), settled_as);
    // The object is the clone, not the file: editing the file later leaves it.
    let h = keel_core::ObjectHash::of_bytes(&settled);
    fs::write(&settled_p, b"edited").unwrap();
    assert_eq!(objects.verify(&h).unwrap(), None);

    let err = objects.put_file(&rewritten_p, &scanned).unwrap_err();
    assert!(matches!(err, StoreError::ChangedDuringAdd { .. }), "{err}");
    assert!(!objects.contains(&keel_core::ObjectHash::of_bytes(&other)) || reflink.is_none());
    assert_eq!(objects.tmp_count(), 0);
}

fn pack_files(objects_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(objects_dir.join("pack"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Flips one byte of a read-only store file.
fn flip_byte(path: &Path, at: u64) {
    use std::os::unix::fs::{FileExt, PermissionsExt};
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0xff], at).unwrap();
}

/// A large add of small files packs them: one pack and its index instead
/// of a file per object, readable, deduplicated, checked out exactly,
/// pushed, verified by fsck (corruption in the pack or its index is
/// found and repaired), and seen by another handle on the same store.
#[tokio::test]
async fn small_files_of_a_large_add_are_packed() {
    for backend in backends() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let store = project(backend, root).await;
        let objects_dir = root.join(".keel/objects");
        // A second handle that has read the (empty) packs before the add,
        // as a long-running server would have.
        let other = store.project.objects(&Overrides::default()).unwrap();
        let already_loose = b"stored loose before".to_vec();
        let (loose_hash, _) = store.objects.put_bytes(&already_loose).unwrap();
        assert!(!other.contains(&ObjectHash::of_bytes(b"0,0\n")));

        let n = 300;
        for i in 0..n {
            write(
                root,
                &format!("d/{:02}/{i}.csv", i % 7),
                format!("{i},{}\n", i * i).as_bytes(),
            );
        }
        write(root, "d/dup-a.csv", b"same bytes");
        write(root, "d/dup-b.csv", b"same bytes");
        write(root, "d/loose.csv", &already_loose);
        write(root, "d/empty.csv", b"");
        let big: Vec<u8> = (0..(2u32 << 20)).map(|i| (i % 251) as u8).collect();
        write(root, "d/big.bin", &big);
        let original = sha256_tree(&root.join("d"));
        let report = data::add(&store, &ds("d"), None, &NoProgress)
            .await
            .unwrap();
        // 300 files, one duplicate pair, the empty file, the big file and
        // the manifest are new; the loose one is not stored twice.
        assert_eq!(report.new_objects, n + 1 + 1 + 1 + 1);
        let packs = pack_files(&objects_dir);
        assert_eq!(packs.len(), 2, "{packs:?}");
        let pack = objects_dir.join("pack").join(&packs[1]);
        assert!(packs[0].ends_with(".idx") && packs[1].ends_with(".pack"));
        // The pack holds each small object once, after its 8-byte magic,
        // each after a 40-byte record head (hash, length): the 300, the
        // duplicated pair and the empty file.
        let small_bytes: u64 = (0..n)
            .map(|i| format!("{i},{}\n", i * i).len() as u64)
            .sum();
        assert_eq!(
            fs::metadata(&pack).unwrap().len(),
            8 + small_bytes + b"same bytes".len() as u64 + 40 * (n + 2)
        );
        let h7 = ObjectHash::of_bytes(b"7,49\n");
        assert!(!store.objects.path_of(&h7).exists(), "packed, not loose");
        assert!(store.objects.path_of(&ObjectHash::of_bytes(&big)).exists());
        assert!(store.objects.path_of(&loose_hash).exists());
        assert_eq!(store.objects.read(&h7).unwrap(), b"7,49\n");
        assert!(store.objects.contains_sized(&h7, 5) && !store.objects.contains_sized(&h7, 4));
        // Another handle finds objects packed after it read the packs.
        assert_eq!(other.read(&h7).unwrap(), b"7,49\n");
        let listed = store.objects.list().unwrap();
        assert_eq!(listed.len() as u64, n + 1 + 1 + 1 + 1 + 1, "{listed:?}");
        assert!(listed.contains(&(h7, 5)));

        // Nothing new: no new pack. A few new files: loose, not a pack.
        data::add(&store, &ds("d"), None, &NoProgress)
            .await
            .unwrap();
        assert_eq!(pack_files(&objects_dir).len(), 2);
        write(root, "d/00/new.csv", b"a new file");
        data::add(&store, &ds("d"), None, &NoProgress)
            .await
            .unwrap();
        assert_eq!(
            pack_files(&objects_dir).len(),
            2,
            "{:?}",
            pack_files(&objects_dir)
        );
        assert!(store
            .objects
            .path_of(&ObjectHash::of_bytes(b"a new file"))
            .exists());

        // Checkout of v1 in every mode: the exact bytes; packed objects
        // are copies (writable), whatever the mode.
        for link in [LinkMode::Auto, LinkMode::Copy, LinkMode::Hardlink] {
            fs::remove_dir_all(root.join("d")).unwrap();
            let options = CheckoutOptions { link, force: false };
            data::checkout(&store, &at("d", "1"), options, &NoProgress)
                .await
                .unwrap();
            assert_eq!(sha256_tree(&root.join("d")), original, "{link:?}");
            let m = fs::metadata(root.join("d/03/10.csv")).unwrap();
            assert!(!m.permissions().readonly(), "{link:?}");
        }

        // Push sends packed objects as objects.
        let remote = RemoteObjects::open(root.join("remote").to_str().unwrap()).unwrap();
        data::push(&store, &remote, &[], true, &NoProgress)
            .await
            .unwrap();
        let on_remote = remote.list().await.unwrap();
        assert!(on_remote.contains(&h7) && on_remote.contains(&loose_hash));

        // A flipped byte in the pack: fsck names the object and its file;
        // repair drops it from the index, and a re-add stores it again.
        assert!(data::fsck(&store, false, &NoProgress)
            .await
            .unwrap()
            .problems
            .is_empty());
        let pack_bytes = fs::read(&pack).unwrap();
        let at_byte = pack_bytes.windows(5).position(|w| w == b"7,49\n").unwrap() as u64;
        flip_byte(&pack, at_byte);
        let report = data::fsck(&store, false, &NoProgress).await.unwrap();
        match report.problems.as_slice() {
            [FsckProblem::Corrupt { hash, used_by, .. }] => {
                assert_eq!(*hash, h7);
                assert!(
                    used_by.contains(&"d@v1:00/7.csv".to_string()),
                    "{used_by:?}"
                );
            }
            other => panic!("expected one corrupt object, got {other:?}"),
        }
        // Repair rewrites the index under the pack directory's lock, so it
        // waits for another holder (here `flock`, holding it for a second).
        let lock = objects_dir.join("pack/lock");
        let mut holder = Command::new("flock")
            .arg(&lock)
            .args(["-c", "sleep 1"])
            .spawn()
            .unwrap();
        while Command::new("flock")
            .arg("-n")
            .arg(&lock)
            .arg("true")
            .status()
            .unwrap()
            .success()
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let waited = std::time::Instant::now();
        let repaired = data::fsck(&store, true, &NoProgress).await.unwrap();
        assert!(waited.elapsed() >= std::time::Duration::from_millis(500));
        holder.wait().unwrap();
        assert_eq!(repaired.quarantined, 1);
        assert!(root.join(format!(".keel/quarantine/{h7}.packed")).exists());
        assert!(!store.objects.contains(&h7));
        let report = data::fsck(&store, false, &NoProgress).await.unwrap();
        assert!(
            matches!(report.problems.as_slice(), [FsckProblem::Missing { hash, .. }] if *hash == h7)
        );
        std::thread::sleep(std::time::Duration::from_millis(1100));
        write(root, "d/00/7.csv", b"7,49\n");
        data::add(&store, &ds("d"), None, &NoProgress)
            .await
            .unwrap();
        assert!(data::fsck(&store, false, &NoProgress)
            .await
            .unwrap()
            .problems
            .is_empty());

        // A damaged index: fsck says which, and its objects are missing
        // until `--repair` rebuilds it from the pack's records (all but the
        // corrupt one, which is stored loose again since).
        let idx = objects_dir.join("pack").join(&packs[0]);
        let before_damage = store.objects.list().unwrap().len();
        flip_byte(&idx, 20);
        // A handle opened after the damage, as a server started then.
        let late = store.project.objects(&Overrides::default()).unwrap();
        assert!(!late.contains(&ObjectHash::of_bytes(b"0,0\n")));
        let report = data::fsck(&store, false, &NoProgress).await.unwrap();
        assert!(
            matches!(report.problems.first(), Some(FsckProblem::BadPackIndex { path, message })
                if *path == idx && message.contains("checksum")),
            "{:?}",
            report.problems
        );
        assert!(report.problems.iter().any(|p| matches!(p, FsckProblem::Missing { hash, .. } if *hash == ObjectHash::of_bytes(b"0,0\n"))));
        let repaired = data::fsck(&store, true, &NoProgress).await.unwrap();
        assert_eq!(repaired.rebuilt_indexes, 1);
        // All the pack's objects but the corrupt one dropped before.
        assert_eq!(repaired.rebuilt_objects, n + 2 - 1);
        let report = data::fsck(&store, false, &NoProgress).await.unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(
            store.objects.read(&ObjectHash::of_bytes(b"0,0\n")).unwrap(),
            b"0,0\n"
        );
        assert_eq!(store.objects.list().unwrap().len(), before_damage);
        // The rebuilt index is a new file: the late handle reads it.
        assert_eq!(
            late.read(&ObjectHash::of_bytes(b"0,0\n")).unwrap(),
            b"0,0\n"
        );

        // A pack whose writer was killed before naming its index is a
        // leftover, counted and cleaned; a writer dropped before `finish`
        // leaves nothing at all.
        let orphan = objects_dir.join("pack/0rphan.pack");
        fs::copy(&pack, &orphan).unwrap();
        assert_eq!(store.objects.tmp_count(), 1);
        let writer = store.objects.pack_writer();
        for i in 0..400 {
            let p = root.join(format!("d/unfinished-{i}.csv"));
            fs::write(&p, format!("unfinished {i}")).unwrap();
            writer.put_file(&p, &fs::metadata(&p).unwrap()).unwrap();
        }
        drop(writer);
        assert_eq!(store.objects.tmp_count(), 1);
        assert!(!store
            .objects
            .contains(&ObjectHash::of_bytes(b"unfinished 1")));
        assert_eq!(
            store.objects.clean_tmp(std::time::Duration::ZERO).unwrap(),
            1
        );
        assert!(!orphan.exists() && pack.exists());
    }
}

/// More packs than keel keeps open: every object is still readable, and
/// the process does not hold a file open per pack.
#[test]
fn many_packs_are_read_without_holding_a_file_open_each() {
    let tmp = tempfile::tempdir().unwrap();
    let objects = objects_in(tmp.path());
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let mut all = Vec::new();
    for pack in 0..80 {
        let writer = objects.pack_writer();
        for i in 0..256 {
            let p = src.join(format!("{i}"));
            let bytes = format!("pack {pack} object {i}");
            fs::write(&p, &bytes).unwrap();
            let (h, stored) = writer.put_file(&p, &fs::metadata(&p).unwrap()).unwrap();
            assert_eq!(stored, Stored::Copied);
            all.push((h, bytes));
        }
        assert_eq!(writer.finish().unwrap(), 256);
    }
    // Pack files this process holds open (other tests run in the same
    // process: count only this store's).
    let pack_dir = tmp.path().join("objects/pack").canonicalize().unwrap();
    let packs_open = || {
        fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter(|e| fs::read_link(e.path()).is_ok_and(|t| t.starts_with(&pack_dir)))
            .count()
    };
    assert_eq!(packs_open(), 0);
    for (h, bytes) in &all {
        assert_eq!(objects.read(h).unwrap(), bytes.as_bytes());
    }
    let held = packs_open();
    assert!(
        (1..=64).contains(&held),
        "{held} files held open for 80 packs"
    );
    assert_eq!(objects.list().unwrap().len(), all.len());
}

/// A damaged index is rebuilt from the pack even past a record whose
/// length field is damaged too (the records' framing then breaks): the
/// damaged index's own entries that still point at the right bytes fill in.
#[test]
fn a_pack_index_is_rebuilt_past_a_damaged_record() {
    let tmp = tempfile::tempdir().unwrap();
    let objects = objects_in(tmp.path());
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let writer = objects.pack_writer();
    let mut all = Vec::new();
    for i in 0..300 {
        let p = src.join(format!("{i}"));
        let bytes = format!("object number {i}");
        fs::write(&p, &bytes).unwrap();
        all.push(writer.put_file(&p, &fs::metadata(&p).unwrap()).unwrap().0);
    }
    assert_eq!(writer.finish().unwrap(), 300);
    let names = pack_files(&tmp.path().join("objects"));
    assert_eq!(names.len(), 2, "{names:?}");
    let pack = &tmp.path().join("objects/pack").join(&names[1]);
    let idx = pack.with_extension("idx");
    // The length field of object 3's record (the 8 bytes before its bytes).
    let bytes = fs::read(pack).unwrap();
    // Objects were written in order: the first match is object 3 (not 30).
    let at = bytes
        .windows(15)
        .position(|w| w == b"object number 3")
        .unwrap() as u64;
    flip_byte(pack, at - 8);
    // The index's checksum, so that every entry is still right.
    flip_byte(&idx, fs::metadata(&idx).unwrap().len() - 1);
    assert_eq!(objects.bad_pack_indexes().len(), 1);
    let quarantine = tmp.path().join("quarantine");
    assert_eq!(objects.rebuild_pack_index(&idx, &quarantine).unwrap(), 300);
    assert!(objects.bad_pack_indexes().is_empty());
    for (i, h) in all.iter().enumerate() {
        assert_eq!(
            objects.read(h).unwrap(),
            format!("object number {i}").as_bytes()
        );
    }
    assert_eq!(fs::read_dir(&quarantine).unwrap().count(), 1);
    // Rebuilding a sound index changes nothing.
    assert_eq!(objects.rebuild_pack_index(&idx, &quarantine).unwrap(), 300);
    assert_eq!(fs::read_dir(&quarantine).unwrap().count(), 1);
}
