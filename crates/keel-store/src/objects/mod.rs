//! The content-addressed object store.
//!
//! An object is an immutable byte string named by its BLAKE3 hash. The
//! local store keeps each object in `objects/<2 hex>/<62 hex>`, read-only.
//! Objects are written as unnamed files (`O_TMPFILE` in `tmp/`) and linked
//! to their name when complete, so a killed writer never leaves a
//! half-written object under a valid name, nor any file at all. Where the
//! file system has no `O_TMPFILE`, a named file in `tmp/` is renamed into
//! place instead. On local XFS and btrfs, a large file's object is a
//! copy-on-write clone of it instead of a copy. A large `data add` puts
//! its small files into a pack instead ([`pack`]); readers look in the
//! packs first (an in-memory index), then for a loose file.
//!
//! Remotes (`keel data push/pull`) go through the `object_store` crate: a
//! directory (its `LocalFileSystem`) or `s3://bucket/prefix` (its
//! `AmazonS3`, configured from the usual `AWS_*` environment variables).
//! The local store is plain file-system code because it needs what
//! `object_store` cannot do: reflinks and hard links on checkout.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt};
use keel_core::ObjectHash;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::data::tree::{ctime_ns, mtime_ns, now_ns};
use crate::error::{Result, StoreError};

mod pack;

pub use pack::PackWriter;
use pack::{Loc, PackSet};

/// Files up to this size are read into memory, hashed and written in one
/// pass; larger ones are streamed through [`CHUNK`]-sized buffers.
const SMALL_FILE: u64 = 4 << 20;
/// Files at least this large are hashed with BLAKE3's multi-threaded mode
/// (`fsck`, `status`; `add` hashes while it copies).
const PARALLEL_HASH: u64 = 16 << 20;
/// The buffer size large files are copied and hashed through.
const CHUNK: usize = 8 << 20;
/// How long before an add a large file must last have changed for it to
/// be cloned rather than copied (see [`LocalObjects::put_clone`]).
const SETTLED_NS: i128 = 1_000_000_000;
/// Buffer, offset and length alignment for `O_DIRECT` writes (the largest
/// logical block size of common disks).
const DIRECT_ALIGN: usize = 4096;

/// How checkout puts an object's bytes at a workspace path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    /// A reflink (copy-on-write clone) where the file system supports it,
    /// a copy otherwise. The default: never shares writable blocks.
    Auto,
    /// A reflink, or fail. (A packed object, which has no file of its own
    /// to link, is copied in this mode and in [`LinkMode::Hardlink`].)
    Reflink,
    /// A hard link to the read-only object. Fast and space-free, but the
    /// workspace file is then read-only: editing it in place would edit
    /// the object, so keel never makes it writable.
    Hardlink,
    /// A plain copy.
    Copy,
}

/// How [`LocalObjects::put_file`] stored a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The store had the object already.
    Existing,
    /// A new object, a copy of the file.
    Copied,
    /// A new object, a copy-on-write clone of the file (no space used).
    Cloned,
}

impl Stored {
    /// Whether the object is new.
    pub fn is_new(self) -> bool {
        self != Stored::Existing
    }

    fn new_as(new: bool, how: Stored) -> Stored {
        if new {
            how
        } else {
            Stored::Existing
        }
    }
}

/// The local object store of a project.
#[derive(Debug, Clone)]
pub struct LocalObjects {
    root: PathBuf,
    tmp: PathBuf,
    /// Whether unnamed temporary files (`O_TMPFILE`, then `linkat`) work
    /// here; probed on first write.
    unnamed_tmp: OnceLock<bool>,
    /// Whether large files are cloned into the store (see
    /// [`LocalObjects::put_clone`]); probed on first use.
    clones: OnceLock<bool>,
    /// The packs, read on first use and again when one is missing an
    /// object another process may have packed since; shared by clones.
    packs: Arc<RwLock<Option<Arc<PackSet>>>>,
}

/// Where an object's bytes are.
enum Found {
    Packed(Arc<PackSet>, Loc),
    Loose,
}

/// An object being written: an unnamed file (`O_TMPFILE`) that a killed
/// writer leaves nowhere, or, where the file system cannot do that, a
/// named file in `tmp/`.
struct TmpObject {
    file: File,
    /// `None` for an unnamed file.
    path: Option<PathBuf>,
    /// Whether writes bypass the page cache (`O_DIRECT`).
    direct: bool,
}

impl Drop for TmpObject {
    fn drop(&mut self) {
        // Unpublished (an error, or the object already existed).
        if let Some(p) = self.path.take() {
            let _ = fs::remove_file(p);
        }
    }
}

impl LocalObjects {
    /// Opens (creating if needed) the store at `root`, with its temporary
    /// directory at `tmp` (which must be on the same file system).
    pub fn open(root: &Path, tmp: &Path) -> Result<LocalObjects> {
        for i in 0..=255u8 {
            let dir = root.join(format!("{i:02x}"));
            if !dir.is_dir() {
                fs::create_dir_all(&dir).map_err(StoreError::io("creating", &dir))?;
            }
        }
        fs::create_dir_all(tmp).map_err(StoreError::io("creating", tmp))?;
        Ok(LocalObjects {
            root: root.to_path_buf(),
            tmp: tmp.to_path_buf(),
            unnamed_tmp: OnceLock::new(),
            clones: OnceLock::new(),
            packs: Arc::default(),
        })
    }

    /// Where the loose object named `h` lives (packed objects have no
    /// path of their own; only `data add` and `data pull` pack objects).
    pub fn path_of(&self, h: &ObjectHash) -> PathBuf {
        let hex = h.to_hex();
        self.root.join(&hex[..2]).join(&hex[2..])
    }

    fn pack_dir(&self) -> PathBuf {
        self.root.join("pack")
    }

    /// The packs as last read (read now if never).
    fn packs(&self) -> Arc<PackSet> {
        if let Some(set) = &*self.packs.read().unwrap_or_else(|e| e.into_inner()) {
            return set.clone();
        }
        self.reload_packs()
    }

    /// Reads the packs again (after this process or another wrote one).
    fn reload_packs(&self) -> Arc<PackSet> {
        let set = Arc::new(PackSet::load(&self.pack_dir()));
        *self.packs.write().unwrap_or_else(|e| e.into_inner()) = Some(set.clone());
        set
    }

    /// Where object `h` is: in a pack (an in-memory lookup) or loose. Only
    /// when it is in neither are the packs listed again, for one packed
    /// since they were read.
    fn locate(&self, h: &ObjectHash) -> Option<Found> {
        let set = self.packs();
        if let Some(loc) = set.get(h) {
            return Some(Found::Packed(set, loc));
        }
        if self.path_of(h).is_file() {
            return Some(Found::Loose);
        }
        if set.is_stale(&self.pack_dir()) {
            let set = self.reload_packs();
            if let Some(loc) = set.get(h) {
                return Some(Found::Packed(set, loc));
            }
        }
        None
    }

    /// Whether the store has object `h` (by name; `verify` checks bytes).
    pub fn contains(&self, h: &ObjectHash) -> bool {
        self.locate(h).is_some()
    }

    /// Whether the store has object `h` with the expected size. Used for
    /// deduplication: an object torn by a power loss (renamed, but its
    /// blocks never flushed) is rewritten instead of trusted.
    pub fn contains_sized(&self, h: &ObjectHash, size: u64) -> bool {
        match self.locate(h) {
            Some(Found::Packed(_, loc)) => loc.len == size || self.has_loose(h, size),
            Some(Found::Loose) => self.has_loose(h, size),
            None => false,
        }
    }

    /// Whether object `h` is stored loose with the expected size: what
    /// loose writers deduplicate against (see [`pack`] for why).
    fn has_loose(&self, h: &ObjectHash, size: u64) -> bool {
        fs::metadata(self.path_of(h)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// A writer that packs the small files of one add ([`PackWriter`]).
    pub fn pack_writer(&self) -> PackWriter<'_> {
        PackWriter::new(self, self.packs())
    }

    /// Writes `bytes` to a temporary file and renames it to `dest`,
    /// replacing what is there. With `durable`, the file and the rename are
    /// on the disk when this returns: a file replaced in place must not be
    /// lost to a power cut (a new one is covered by the caller's `sync`).
    fn install(&self, bytes: &[u8], dest: &Path, durable: bool) -> Result<()> {
        let path = self.tmp_path();
        let mut tmp = TmpObject {
            file: create_readonly(&path)?,
            path: Some(path),
            direct: false,
        };
        tmp.file
            .write_all(bytes)
            .and_then(|()| if durable { tmp.file.sync_all() } else { Ok(()) })
            .map_err(StoreError::io("writing", &self.tmp))?;
        // A failed write leaves the temporary file to `TmpObject::drop`.
        tmp.name_as(dest).map_err(StoreError::io("writing", dest))?;
        if durable {
            let dir = dest.parent().unwrap_or(Path::new("."));
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(StoreError::io("syncing", dir))?;
        }
        Ok(())
    }

    /// Pack indexes that cannot be read, with why: their objects are
    /// missing until the index is rebuilt ([`Self::rebuild_pack_index`]).
    pub fn bad_pack_indexes(&self) -> Vec<(PathBuf, String)> {
        self.reload_packs().bad().to_vec()
    }

    /// Rebuilds a damaged pack index from its pack (every intact object),
    /// keeping the old index in `quarantine`; returns the objects indexed.
    pub fn rebuild_pack_index(&self, idx: &Path, quarantine: &Path) -> Result<usize> {
        let n = pack::rebuild_index(self, idx, quarantine)?;
        self.reload_packs();
        Ok(n)
    }

    fn tmp_path(&self) -> PathBuf {
        self.tmp
            .join(format!("obj-{}", uuid::Uuid::new_v4().simple()))
    }

    /// A new, empty, read-only temporary object; written with `O_DIRECT`
    /// if `direct` and the file system allows it.
    fn create_tmp(&self, direct: bool) -> Result<TmpObject> {
        let unnamed = *self.unnamed_tmp.get_or_init(|| self.probe_unnamed_tmp());
        if unnamed {
            if direct {
                if let Ok(file) = open_unnamed(&self.tmp, true) {
                    return Ok(TmpObject {
                        file,
                        path: None,
                        direct: true,
                    });
                }
            }
            if let Ok(file) = open_unnamed(&self.tmp, false) {
                return Ok(TmpObject {
                    file,
                    path: None,
                    direct: false,
                });
            }
        }
        let path = self.tmp_path();
        let file = create_readonly(&path)?;
        Ok(TmpObject {
            file,
            path: Some(path),
            direct: false,
        })
    }

    /// Whether an unnamed temporary file can be created in `tmp/` and
    /// linked to a name (not on every file system; `linkat` goes through
    /// `/proc/self/fd`).
    fn probe_unnamed_tmp(&self) -> bool {
        let Ok(file) = open_unnamed(&self.tmp, false) else {
            return false;
        };
        let probe = self
            .tmp
            .join(format!("probe-{}", uuid::Uuid::new_v4().simple()));
        let linked = link_unnamed(&file, &probe).is_ok();
        let _ = fs::remove_file(&probe);
        linked
    }

    /// Gives a finished temporary object its name. Another writer may have
    /// stored the same bytes meanwhile: that is harmless, both are equal.
    fn publish(&self, mut tmp: TmpObject, h: &ObjectHash, size: u64) -> Result<()> {
        let dest = self.path_of(h);
        let named = match tmp.path.take() {
            Some(p) => p,
            None => match link_unnamed(&tmp.file, &dest) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if self.has_loose(h, size) {
                        return Ok(());
                    }
                    // A torn object of an earlier power loss is in the
                    // way: name ours, then rename it over the bad one.
                    let p = self.tmp_path();
                    link_unnamed(&tmp.file, &p).map_err(StoreError::io("storing object", &dest))?;
                    p
                }
                Err(e) => return Err(StoreError::io("storing object", &dest)(e)),
            },
        };
        fs::rename(&named, &dest).map_err(|e| {
            let _ = fs::remove_file(&named);
            StoreError::io("storing object", &dest)(e)
        })
    }

    /// Stores `bytes`; returns their hash and whether the object is new.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<(ObjectHash, bool)> {
        let h = ObjectHash::of_bytes(bytes);
        if self.has_loose(&h, bytes.len() as u64) {
            return Ok((h, false));
        }
        let mut tmp = self.create_tmp(false)?;
        tmp.file
            .write_all(bytes)
            .map_err(StoreError::io("writing object", &self.tmp))?;
        self.publish(tmp, &h, bytes.len() as u64)?;
        Ok((h, true))
    }

    /// Stores the file at `src` (whose metadata the caller read as
    /// `before`); returns its hash and how it was stored.
    ///
    /// The bytes are read once into keel's own buffers, hashed there and
    /// written from there, so an object's content matches its name even if
    /// `src` is modified meanwhile; such a modification (seen on the open
    /// file afterwards, or a different file at the path) is reported as
    /// [`StoreError::ChangedDuringAdd`]. A large file on XFS or btrfs is
    /// cloned instead of copied ([`Self::put_clone`]).
    pub fn put_file(&self, src: &Path, before: &fs::Metadata) -> Result<(ObjectHash, Stored)> {
        if before.len() <= SMALL_FILE {
            let (h, new) = self.put_bytes(&read_small(src, before)?)?;
            return Ok((h, Stored::new_as(new, Stored::Copied)));
        }
        let mut file = File::open(src).map_err(StoreError::io("reading", src))?;
        let stored = self.put_stream(&mut file, src, before)?;
        check_unchanged(&file, src, before, false)?;
        Ok(stored)
    }

    /// Stores a large file as a copy-on-write clone of it (`FICLONE`): no
    /// bytes are copied and no disk space is used until either side is
    /// modified. Returns `tmp`, empty, when the file is not cloned.
    ///
    /// The clone is a snapshot of `src` when it was made; the hash is then
    /// read from `src` (from the page cache, where the clone's bytes are
    /// not). The two are the same bytes unless `src` was written between
    /// the clone and the end of the hashing, and every such write gives it
    /// a ctime other than `before`'s: the file must have settled
    /// ([`SETTLED_NS`], as the stat cache's "racy" rule) so that a write in
    /// the same clock tick as its last change cannot hide. A changed file
    /// is refused.
    ///
    /// What this relies on, and why only local XFS and btrfs qualify (not
    /// NFS, CIFS or overlayfs, which can clone too): the clone is made from
    /// the same data the page cache holds (FICLONE writes the source's
    /// dirty pages back first), and every write moves ctime. Not covered: a
    /// file whose earlier write-back failed, with the error already
    /// reported to its writer (the disk then holds other bytes than the
    /// cache, and the object gets the disk's); a program writing the file
    /// through a shared memory mapping to a page it had already dirtied
    /// (the kernel moves the times only on the first write to a clean
    /// page). `keel fsck` reports such an object.
    fn put_clone(
        &self,
        tmp: TmpObject,
        src: &mut File,
        path: &Path,
        before: &fs::Metadata,
    ) -> Result<std::result::Result<(ObjectHash, Stored), TmpObject>> {
        let settled = ctime_ns(before).max(mtime_ns(before)) < now_ns() - SETTLED_NS;
        if !settled || !*self.clones.get_or_init(|| clones_on(&self.root)) {
            return Ok(Err(tmp));
        }
        // A clone may fail part way (out of space), and older kernels
        // report a short whole-file clone as success: check its length.
        let cloned = rustix::fs::ioctl_ficlone(&tmp.file, &*src).is_ok()
            && tmp.file.metadata().is_ok_and(|m| m.len() == before.len());
        if !cloned {
            tmp.file
                .set_len(0)
                .map_err(StoreError::io("writing object", &self.tmp))?;
            return Ok(Err(tmp));
        }
        let mut hasher = blake3::Hasher::new();
        let (mut cur, mut next) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
        let total = pipe_chunks(src, path, &mut cur, &mut next, |bytes| {
            hasher.update_rayon(bytes);
            Ok(())
        })?;
        if total != before.len() {
            return Err(StoreError::ChangedDuringAdd {
                path: path.to_path_buf(),
            });
        }
        check_unchanged(src, path, before, true)?;
        let h = ObjectHash::from_digest(hasher.finalize());
        if !self.has_loose(&h, total) {
            self.publish(tmp, &h, total)?;
            return Ok(Ok((h, Stored::Cloned)));
        }
        Ok(Ok((h, Stored::Existing)))
    }

    /// Copies a large file into a temporary object in one pass: while one
    /// buffer is hashed and written, the next is read.
    ///
    /// The copy is written with `O_DIRECT`: it goes to the disk without a
    /// second page-cache copy of the data (which would evict the workspace's
    /// own cached bytes, and costs more than the disk write on a VM whose
    /// fresh memory pages are slow to fault in), and is not read again soon.
    fn put_stream(
        &self,
        src: &mut File,
        path: &Path,
        before: &fs::Metadata,
    ) -> Result<(ObjectHash, Stored)> {
        let mut tmp = match self.put_clone(self.create_tmp(true)?, src, path, before)? {
            Ok(stored) => return Ok(stored),
            Err(tmp) => tmp,
        };
        let mut hasher = blake3::Hasher::new();
        let (mut cur, mut next) = (AlignedBuf::new(CHUNK), AlignedBuf::new(CHUNK));
        let out = &mut tmp;
        let tmp_dir = &self.tmp;
        let total = pipe_chunks(src, path, cur.as_mut(), next.as_mut(), |bytes| {
            let (_, written) = rayon::join(|| hasher.update(bytes), || out.write(bytes));
            written.map_err(StoreError::io("writing object", tmp_dir))
        })?;
        let h = ObjectHash::from_digest(hasher.finalize());
        if self.has_loose(&h, total) {
            return Ok((h, Stored::Existing));
        }
        self.publish(tmp, &h, total)?;
        Ok((h, Stored::Copied))
    }

    /// Reads a whole object (manifests, small files).
    pub fn read(&self, h: &ObjectHash) -> Result<Vec<u8>> {
        match self.locate(h) {
            Some(Found::Packed(set, loc)) => set.read(loc),
            _ => {
                let p = self.path_of(h);
                fs::read(&p).map_err(StoreError::io("reading object", &p))
            }
        }
    }

    /// Re-hashes object `h`, each copy of it (packed and loose) if it has
    /// two; `Some(actual)` if the bytes of one no longer match.
    pub fn verify(&self, h: &ObjectHash) -> Result<Option<ObjectHash>> {
        let set = self.packs();
        let packed = set.get(h);
        if let Some(loc) = packed {
            let actual = ObjectHash::of_bytes(&set.read(loc)?);
            if actual != *h {
                return Ok(Some(actual));
            }
        }
        let p = self.path_of(h);
        if packed.is_none() || p.is_file() {
            let actual = hash_file(&p)?;
            return Ok((actual != *h).then_some(actual));
        }
        Ok(None)
    }

    /// Puts object `h`'s bytes at `dest`, atomically replacing what is
    /// there (a temporary file next to `dest`, then a rename).
    pub fn materialize(
        &self,
        h: &ObjectHash,
        dest: &Path,
        mode: LinkMode,
        executable: bool,
    ) -> Result<()> {
        let src = self.path_of(h);
        // A packed object has no file of its own to link: it is copied,
        // unless a loose copy of it can be linked.
        let linking = matches!(mode, LinkMode::Hardlink | LinkMode::Reflink);
        let packed = match self.locate(h) {
            Some(Found::Packed(set, loc)) if !(linking && src.is_file()) => Some(set.read(loc)?),
            _ => None,
        };
        let parent = dest.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(StoreError::io("creating", parent))?;
        let tmp = crate::project::tmp_beside(dest);
        let made = match (&packed, mode) {
            (Some(bytes), _) => fs::write(&tmp, bytes),
            (None, LinkMode::Hardlink) => fs::hard_link(&src, &tmp),
            (None, LinkMode::Reflink) => reflink(&src, &tmp),
            (None, LinkMode::Auto) => clone_or_copy(&src, &tmp),
            (None, LinkMode::Copy) => fs::copy(&src, &tmp).map(|_| ()),
        };
        if let Err(e) = made {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::io("checking out", dest)(e));
        }
        if packed.is_some() || mode != LinkMode::Hardlink {
            let perm = if executable { 0o755 } else { 0o644 };
            fs::set_permissions(&tmp, fs::Permissions::from_mode(perm))
                .map_err(StoreError::io("writing", &tmp))?;
        }
        fs::rename(&tmp, dest).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            StoreError::io("checking out", dest)(e)
        })
    }

    /// Every object in the store with its size.
    pub fn list(&self) -> Result<Vec<(ObjectHash, u64)>> {
        let mut out = Vec::new();
        for i in 0..=255u8 {
            let prefix = format!("{i:02x}");
            let dir = self.root.join(&prefix);
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("listing", &dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(StoreError::io("listing", &dir))?;
                let name = entry.file_name();
                let Ok(h) = format!("{prefix}{}", name.to_string_lossy()).parse::<ObjectHash>()
                else {
                    continue;
                };
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((h, size));
            }
        }
        // Packed objects, once each (one may be loose as well).
        let loose: HashSet<ObjectHash> = out.iter().map(|(h, _)| *h).collect();
        let set = self.reload_packs();
        out.extend(
            set.iter()
                .filter(|(h, _)| !loose.contains(h))
                .map(|(h, size)| (*h, size)),
        );
        Ok(out)
    }

    /// Flushes everything written so far to stable storage. Called once
    /// before a version that references new objects is committed, instead
    /// of one fsync per object.
    pub fn sync(&self) -> Result<()> {
        let dir = File::open(&self.root).map_err(StoreError::io("opening", &self.root))?;
        rustix::fs::syncfs(&dir).map_err(|e| StoreError::io("syncing", &self.root)(e.into()))
    }

    /// Removes temporary files older than `age` (left by killed writers),
    /// and packs as old that never got their index.
    pub fn clean_tmp(&self, age: Duration) -> Result<usize> {
        let now = SystemTime::now();
        let removed = self
            .leftovers()
            .filter(|p| {
                fs::metadata(p)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| now.duration_since(t).unwrap_or_default() >= age)
            })
            .filter(|p| fs::remove_file(p).is_ok())
            .count();
        Ok(removed)
    }

    /// The number of leftover temporary files (and index-less packs).
    pub fn tmp_count(&self) -> usize {
        self.leftovers().count()
    }

    /// Files of interrupted writers: temporary files, and packs whose
    /// writer was killed before it named their index.
    fn leftovers(&self) -> impl Iterator<Item = PathBuf> {
        let entries = |dir: PathBuf| {
            fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
        };
        let orphan_packs = entries(self.pack_dir()).filter(|p| {
            p.extension().is_some_and(|e| e == "pack") && !p.with_extension("idx").exists()
        });
        entries(self.tmp.clone()).chain(orphan_packs)
    }

    /// Moves the corrupt copies of object `h` out of the way (into
    /// `quarantine`), so that a re-add or pull can store the right bytes
    /// again; returns where they went. A loose object is moved; a packed
    /// one is copied out and dropped from its pack's index.
    pub fn quarantine(&self, h: &ObjectHash, quarantine: &Path) -> Result<Vec<PathBuf>> {
        fs::create_dir_all(quarantine).map_err(StoreError::io("creating", quarantine))?;
        let mut moved = Vec::new();
        let set = self.packs();
        if let Some(loc) = set.get(h) {
            let bytes = set.read(loc)?;
            if ObjectHash::of_bytes(&bytes) != *h {
                let dest = quarantine.join(format!("{}.packed", h.to_hex()));
                fs::write(&dest, &bytes).map_err(StoreError::io("quarantining to", &dest))?;
                set.forget(self, h, loc)?;
                self.reload_packs();
                moved.push(dest);
            }
        }
        let src = self.path_of(h);
        if src.is_file() && hash_file(&src)? != *h {
            let dest = quarantine.join(h.to_hex());
            fs::rename(&src, &dest).map_err(StoreError::io("quarantining", &src))?;
            moved.push(dest);
        }
        Ok(moved)
    }
}

/// Reads `src` to its end through two buffers, handing each filled one to
/// `consume` while the next is read; returns the number of bytes read.
fn pipe_chunks<'b>(
    src: &mut File,
    path: &Path,
    mut cur: &'b mut [u8],
    mut next: &'b mut [u8],
    mut consume: impl FnMut(&[u8]) -> Result<()> + Send,
) -> Result<u64> {
    let mut n = read_full(src, cur).map_err(StoreError::io("reading", path))?;
    let mut total = 0u64;
    while n > 0 {
        let bytes = &cur[..n];
        let (read, used) = rayon::join(|| read_full(src, next), || consume(bytes));
        used?;
        total += n as u64;
        n = read.map_err(StoreError::io("reading", path))?;
        std::mem::swap(&mut cur, &mut next);
    }
    Ok(total)
}

/// Refuses `file` (opened at `path`) unless it still has the size, mtime
/// and inode it was scanned with as `before`; with `ctime`, its status
/// change time too (see [`LocalObjects::put_clone`] for why that matters).
fn check_unchanged(file: &File, path: &Path, before: &fs::Metadata, ctime: bool) -> Result<()> {
    let after = file
        .metadata()
        .map_err(StoreError::io("reading metadata of", path))?;
    if after.len() != before.len()
        || mtime_ns(&after) != mtime_ns(before)
        || after.ino() != before.ino()
        || (ctime && ctime_ns(&after) != ctime_ns(before))
    {
        return Err(StoreError::ChangedDuringAdd {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Reads a small file whole (scanned as `before`), refusing it if it
/// changed meanwhile ([`check_unchanged`]).
fn read_small(src: &Path, before: &fs::Metadata) -> Result<Vec<u8>> {
    let mut file = File::open(src).map_err(StoreError::io("reading", src))?;
    // One byte more than expected, so that growth is seen by the size
    // check. (Not `read_to_end`: it asks the kernel for the size again,
    // two more syscalls per small file.)
    let mut buf = vec![0u8; before.len() as usize + 1];
    let n = read_full(&mut file, &mut buf).map_err(StoreError::io("reading", src))?;
    buf.truncate(n);
    check_unchanged(&file, src, before, false)?;
    Ok(buf)
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// An unnamed, read-only file in `dir`, freed by the kernel if the
/// process dies before [`link_unnamed`] names it.
fn open_unnamed(dir: &Path, direct: bool) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let mut flags = OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC;
    if direct {
        flags |= OFlags::DIRECT;
    }
    let fd = rustix::fs::open(dir, flags, Mode::from_raw_mode(0o444))?;
    Ok(File::from(fd))
}

impl TmpObject {
    /// Appends `buf`. With `O_DIRECT`, whole blocks go straight to the
    /// disk; a final partial block (only the last chunk of a file has one)
    /// is written through the page cache. A file system that refuses the
    /// direct write gets a buffered one instead.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.direct {
            let whole = buf.len() / DIRECT_ALIGN * DIRECT_ALIGN;
            match self.file.write_all(&buf[..whole]) {
                Ok(()) if whole == buf.len() => return Ok(()),
                Ok(()) => {
                    self.buffered()?;
                    return self.file.write_all(&buf[whole..]);
                }
                // A failed direct write writes nothing: redo it buffered.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                    self.buffered()?;
                }
                Err(e) => return Err(e),
            }
        }
        self.file.write_all(buf)
    }

    /// Gives the finished file the name `dest` (a new name, or for a
    /// named temporary file any name: it replaces what is there).
    fn name_as(mut self, dest: &Path) -> std::io::Result<()> {
        match self.path.take() {
            None => link_unnamed(&self.file, dest),
            Some(p) => fs::rename(&p, dest).inspect_err(|_| {
                let _ = fs::remove_file(&p);
            }),
        }
    }

    fn buffered(&mut self) -> std::io::Result<()> {
        let flags = rustix::fs::fcntl_getfl(&self.file)?;
        rustix::fs::fcntl_setfl(&self.file, flags - rustix::fs::OFlags::DIRECT)?;
        self.direct = false;
        Ok(())
    }
}

/// A heap buffer whose start is aligned for `O_DIRECT`.
struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> AlignedBuf {
        let raw = vec![0u8; len + DIRECT_ALIGN];
        let start = raw.as_ptr().align_offset(DIRECT_ALIGN);
        AlignedBuf { raw, start, len }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

/// Gives an unnamed file a name (fails if `dest` exists).
fn link_unnamed(file: &File, dest: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    rustix::fs::linkat(
        rustix::fs::CWD,
        proc_path.as_str(),
        rustix::fs::CWD,
        dest,
        rustix::fs::AtFlags::SYMLINK_FOLLOW,
    )?;
    Ok(())
}

fn create_readonly(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(path)
        .map_err(StoreError::io("creating", path))
}

/// Hashes a file, multi-threaded when it is large.
pub fn hash_file(path: &Path) -> Result<ObjectHash> {
    let len = fs::metadata(path)
        .map_err(StoreError::io("reading", path))?
        .len();
    let mut hasher = blake3::Hasher::new();
    if len >= PARALLEL_HASH {
        hasher
            .update_mmap_rayon(path)
            .map_err(StoreError::io("hashing", path))?;
    } else {
        let mut f = File::open(path).map_err(StoreError::io("reading", path))?;
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = f.read(&mut buf).map_err(StoreError::io("reading", path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    Ok(ObjectHash::from_digest(hasher.finalize()))
}

fn reflink(src: &Path, dest: &Path) -> std::io::Result<()> {
    let from = File::open(src)?;
    let to = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(dest)?;
    rustix::fs::ioctl_ficlone(&to, &from).map_err(|e| {
        drop(to);
        let _ = fs::remove_file(dest);
        std::io::Error::from(e)
    })
}

/// Whether `add` clones large files into the store at `dir`: on local XFS
/// and btrfs (see [`LocalObjects::put_clone`] for why only those).
fn clones_on(dir: &Path) -> bool {
    const XFS: u32 = 0x5846_5342;
    const BTRFS: u32 = 0x9123_683e;
    File::open(dir)
        .and_then(|d| Ok(rustix::fs::fstatfs(&d)?))
        // `f_type` is a C long: the magic numbers are its low 32 bits.
        .is_ok_and(|st| matches!(st.f_type as u32, XFS | BTRFS))
}

/// A reflink if the file system can, else a copy (which on Linux is
/// `copy_file_range`, done in the kernel).
fn clone_or_copy(src: &Path, dest: &Path) -> std::io::Result<()> {
    if reflink(src, dest).is_err() {
        fs::copy(src, dest)?;
    }
    Ok(())
}

/// A remote object store: another directory or S3, through `object_store`.
#[derive(Debug, Clone)]
pub struct RemoteObjects {
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    url: String,
}

impl RemoteObjects {
    /// Opens `url`: `s3://bucket[/prefix]` or a directory (`/path`,
    /// `file:///path`, created if missing).
    pub fn open(url: &str) -> Result<RemoteObjects> {
        let bad = |reason: String| StoreError::UnsupportedObjectsUrl {
            url: url.to_string(),
            reason,
        };
        let os_err = |source| StoreError::ObjectStore {
            url: url.to_string(),
            source,
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name".into()));
            }
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(os_err)?;
            return Ok(RemoteObjects {
                store: Arc::new(store),
                prefix: StorePath::from(prefix.trim_matches('/')),
                url: url.to_string(),
            });
        }
        let dir = match url.strip_prefix("file://") {
            Some(p) => PathBuf::from(p),
            None if url.contains("://") => {
                return Err(bad(
                    "expected a directory, file:///dir or s3://bucket/prefix".into(),
                ))
            }
            None => PathBuf::from(url),
        };
        fs::create_dir_all(&dir).map_err(StoreError::io("creating remote", &dir))?;
        let dir = dir
            .canonicalize()
            .map_err(StoreError::io("opening remote", &dir))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(os_err)?;
        Ok(RemoteObjects {
            store: Arc::new(store),
            prefix: StorePath::from(""),
            url: url.to_string(),
        })
    }

    /// The URL this remote was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, h: &ObjectHash) -> StorePath {
        let hex = h.to_hex();
        let mut parts: Vec<String> = self
            .prefix
            .parts()
            .map(|p| p.as_ref().to_string())
            .collect();
        parts.push(hex[..2].to_string());
        parts.push(hex[2..].to_string());
        StorePath::from_iter(parts)
    }

    fn os_err(&self) -> impl FnOnce(object_store::Error) -> StoreError + '_ {
        move |source| StoreError::ObjectStore {
            url: self.url.clone(),
            source,
        }
    }

    /// The names of every object on the remote (one listing, not one
    /// request per object).
    pub async fn list(&self) -> Result<HashSet<ObjectHash>> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let metas: Vec<_> = self
            .store
            .list(prefix)
            .try_collect()
            .await
            .map_err(self.os_err())?;
        let skip = self.prefix.parts().count();
        Ok(metas
            .iter()
            .filter_map(|m| {
                let parts: Vec<String> = m
                    .location
                    .parts()
                    .skip(skip)
                    .map(|p| p.as_ref().to_string())
                    .collect();
                match parts.as_slice() {
                    [a, b] => format!("{a}{b}").parse().ok(),
                    _ => None,
                }
            })
            .collect())
    }

    /// Uploads local object `h` (multipart when large).
    pub async fn upload(&self, local: &LocalObjects, h: &ObjectHash) -> Result<()> {
        let key = self.key(h);
        if let Some(Found::Packed(set, loc)) = local.locate(h) {
            let bytes = set.read(loc)?;
            self.store
                .put(&key, PutPayload::from(bytes))
                .await
                .map_err(self.os_err())?;
            return Ok(());
        }
        let path = local.path_of(h);
        let len = fs::metadata(&path)
            .map_err(StoreError::io("reading object", &path))?
            .len();
        if len <= 64 << 20 {
            let bytes = tokio::fs::read(&path)
                .await
                .map_err(StoreError::io("reading object", &path))?;
            self.store
                .put(&key, PutPayload::from(bytes))
                .await
                .map_err(self.os_err())?;
            return Ok(());
        }
        let upload = self
            .store
            .put_multipart(&key)
            .await
            .map_err(self.os_err())?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, 16 << 20);
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(StoreError::io("reading object", &path))?;
        let mut buf = vec![0u8; 8 << 20];
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut file, &mut buf)
                .await
                .map_err(StoreError::io("reading object", &path))?;
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(4).await.map_err(self.os_err())?;
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(self.os_err())?;
        Ok(())
    }

    /// Downloads object `h` through `pack` (into its pack if small),
    /// verifying its hash first.
    pub async fn download_to(&self, pack: &PackWriter<'_>, h: &ObjectHash) -> Result<()> {
        let result = self.store.get(&self.key(h)).await.map_err(self.os_err())?;
        if result.meta.size > pack::PACKED_MAX {
            drop(result);
            return self.download(pack.objects(), h).await;
        }
        let bytes = result.bytes().await.map_err(self.os_err())?;
        let actual = ObjectHash::of_bytes(&bytes);
        if actual != *h {
            return Err(StoreError::CorruptObject {
                expected: *h,
                actual,
            });
        }
        pack.put_bytes(&bytes)?;
        Ok(())
    }

    /// Downloads object `h` into the local store, verifying its hash
    /// before it gets its name.
    pub async fn download(&self, local: &LocalObjects, h: &ObjectHash) -> Result<()> {
        let result = self.store.get(&self.key(h)).await.map_err(self.os_err())?;
        let mut tmp = local.create_tmp(false)?;
        let mut hasher = blake3::Hasher::new();
        let mut stream = result.into_stream();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(self.os_err())?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            tmp.file
                .write_all(&chunk)
                .map_err(StoreError::io("writing object", &local.tmp))?;
        }
        let actual = ObjectHash::from_digest(hasher.finalize());
        if actual != *h {
            return Err(StoreError::CorruptObject {
                expected: *h,
                actual,
            });
        }
        local.publish(tmp, h, size)
    }
}
