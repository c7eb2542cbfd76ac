//! Pack files: many small objects in one file.
//!
//! One file per object costs a small file more in the kernel than reading
//! it does: an inode to create, a directory entry to insert, a lookup in a
//! fan-out directory of thousands. `keel data add` therefore appends the
//! small objects of a large add to one pack instead (bench/RESULTS.md has
//! the figures). A pack is two files in `objects/pack/`:
//!
//! - `<id>.pack`: [`PACK_MAGIC`], then one record per object: its hash
//!   (32 bytes), its length (u64 LE), its bytes. The records make a pack
//!   self-describing: `fsck --repair` rebuilds a damaged index from them;
//! - `<id>.idx`: [`IDX_MAGIC`], the entry count (u64 LE), one entry per
//!   object sorted by hash (32-byte hash, u64 LE offset of the object's
//!   bytes in the pack, u64 LE length), then the BLAKE3 hash of everything
//!   before it (a check against damage, not against forgery: every entry
//!   is bounds-checked as well).
//!
//! The index is the commit point. It is named only after the pack is
//! complete and named, so a reader never sees an index whose objects are
//! not all there; a writer killed before that leaves an unnamed (or
//! temporary) file, and one killed between the two leaves a pack without
//! index, which nothing reads and [`super::LocalObjects::clean_tmp`]
//! removes. Packs are immutable; an index is rewritten (atomically and
//! durably) only by `fsck --repair`: minus a corrupt object, or rebuilt
//! from its pack when damaged.
//!
//! Only `data add` and `data pull` write packs ([`PackWriter`]). Every
//! other writer (artifacts, pipeline outputs) writes loose objects and
//! deduplicates against loose objects only, because the artifact server
//! serves files by their path in the store.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use keel_core::ObjectHash;

use super::{read_small, LocalObjects, Stored, TmpObject};
use crate::error::{Result, StoreError};

/// Files up to this size go into a pack during an add.
pub(super) const PACKED_MAX: u64 = 1 << 20;
/// A pack is made only of at least this many objects or [`PACK_MIN_BYTES`]:
/// fewer are stored loose, so that small adds do not multiply packs (every
/// index is read when the store is first used).
const PACK_MIN: usize = 256;
const PACK_MIN_BYTES: usize = 16 << 20;

const PACK_MAGIC: &[u8; 8] = b"KEELPAK1";
const IDX_MAGIC: &[u8; 8] = b"KEELIDX1";
/// A record's head in a pack: hash and length.
const RECORD_HEAD: u64 = 32 + 8;
/// An index entry: hash, offset, length.
const ENTRY: usize = 32 + 8 + 8;
/// Pack files kept open for reading, at most: a store may have more packs
/// than a process may open files.
const MAX_OPEN_PACKS: usize = 64;
/// The pack writer's buffer: objects are written in batches this large.
const WRITE_BUF: usize = 1 << 20;

/// Where a packed object lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pack: u32,
    offset: u64,
    pub(crate) len: u64,
}

#[derive(Debug)]
struct Pack {
    path: PathBuf,
    idx: PathBuf,
    file: OnceLock<File>,
}

/// Every pack of a store, as read from their indexes at one moment.
#[derive(Default)]
pub(crate) struct PackSet {
    /// The index files read (name, size, inode), sorted, to notice new
    /// and rewritten ones.
    names: Vec<(String, u64, u64)>,
    packs: Vec<Pack>,
    /// Pack files held open (up to [`MAX_OPEN_PACKS`]).
    open: AtomicUsize,
    map: HashMap<ObjectHash, Loc>,
    /// Indexes that could not be used, with why.
    bad: Vec<(PathBuf, String)>,
}

impl std::fmt::Debug for PackSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackSet")
            .field("packs", &self.packs.len())
            .field("objects", &self.map.len())
            .field("bad", &self.bad)
            .finish()
    }
}

impl PackSet {
    /// Reads every index in `dir` (none if it does not exist).
    pub(crate) fn load(dir: &Path) -> PackSet {
        let mut set = PackSet {
            names: idx_names(dir),
            ..PackSet::default()
        };
        for (name, ..) in set.names.clone() {
            let idx = dir.join(&name);
            let path = idx.with_extension("pack");
            let entries = match read_idx(&idx, &path) {
                Ok(e) => e,
                Err(why) => {
                    set.bad.push((idx, why));
                    continue;
                }
            };
            let pack = set.packs.len() as u32;
            for (h, offset, len) in entries {
                set.map.entry(h).or_insert(Loc { pack, offset, len });
            }
            set.packs.push(Pack {
                path,
                idx,
                file: OnceLock::new(),
            });
        }
        set
    }

    /// Whether `dir` has other indexes than the ones this set read.
    pub(crate) fn is_stale(&self, dir: &Path) -> bool {
        idx_names(dir) != self.names
    }

    pub(crate) fn get(&self, h: &ObjectHash) -> Option<Loc> {
        self.map.get(h).copied()
    }

    /// Every packed object with its size.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&ObjectHash, u64)> {
        self.map.iter().map(|(h, l)| (h, l.len))
    }

    /// Indexes that could not be read, with why (for `fsck`).
    pub(crate) fn bad(&self) -> &[(PathBuf, String)] {
        &self.bad
    }

    /// Reads a packed object's bytes.
    pub(crate) fn read(&self, loc: Loc) -> Result<Vec<u8>> {
        let pack = &self.packs[loc.pack as usize];
        let mut buf = vec![0u8; loc.len as usize];
        self.read_at(pack, &mut buf, loc.offset)
            .map_err(StoreError::io("reading object from", &pack.path))?;
        Ok(buf)
    }

    fn read_at(&self, pack: &Pack, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        if let Some(f) = pack.file.get() {
            return f.read_exact_at(buf, offset);
        }
        let f = File::open(&pack.path)?;
        if self.open.fetch_add(1, Ordering::Relaxed) >= MAX_OPEN_PACKS {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return f.read_exact_at(buf, offset);
        }
        let mut kept_ours = false;
        let kept = pack.file.get_or_init(|| {
            kept_ours = true;
            f
        });
        if !kept_ours {
            // Another thread kept its file meanwhile: give the slot back.
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
        kept.read_exact_at(buf, offset)
    }

    /// Rewrites the index of `loc`'s pack without object `h`: the bytes
    /// stay in the pack, unreachable.
    pub(crate) fn forget(&self, objects: &LocalObjects, h: &ObjectHash, loc: Loc) -> Result<()> {
        let pack = &self.packs[loc.pack as usize];
        let _lock = lock_indexes(&pack.idx)?;
        let entries = read_idx(&pack.idx, &pack.path).map_err(|message| StoreError::Parse {
            path: pack.idx.clone(),
            line: None,
            message,
        })?;
        let kept: Vec<_> = entries.into_iter().filter(|(e, _, _)| e != h).collect();
        objects.install(&encode_idx(&kept), &pack.idx, true)
    }
}

/// Rebuilds the index `idx` from its pack: every record whose bytes hash
/// to its head's name, read in order until the records' framing breaks
/// (a damaged length), then every entry of the damaged index that still
/// points at bytes with the right hash (found where the framing no longer
/// leads). The old index is kept in `quarantine`. An index that reads
/// correctly by the time the lock is held (another repair rebuilt it) is
/// left alone. Returns the objects indexed.
pub(crate) fn rebuild_index(
    objects: &LocalObjects,
    idx: &Path,
    quarantine: &Path,
) -> Result<usize> {
    let _lock = lock_indexes(idx)?;
    let path = idx.with_extension("pack");
    if let Ok(entries) = read_idx(idx, &path) {
        return Ok(entries.len());
    }
    let read_err = |e| StoreError::io("reading", &path)(e);
    let file = File::open(&path).map_err(read_err)?;
    let pack_len = file.metadata().map_err(read_err)?.len();
    let mut r = BufReader::with_capacity(WRITE_BUF, &file);
    let mut magic = [0u8; 8];
    if r.read_exact(&mut magic).is_err() || &magic != PACK_MAGIC {
        return Err(StoreError::Parse {
            path,
            line: None,
            message: "not a keel pack (bad magic)".into(),
        });
    }
    let mut found: HashMap<ObjectHash, (u64, u64)> = HashMap::new();
    let mut at = PACK_MAGIC.len() as u64;
    let mut head = [0u8; RECORD_HEAD as usize];
    let mut bytes = Vec::new();
    // `Ok(false)` at the end of the pack (a torn last record included).
    let read_or_end = |r: &mut BufReader<&File>, buf: &mut [u8]| match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(read_err(e)),
    };
    while read_or_end(&mut r, &mut head)? {
        let len = u64_at(&head, 32);
        if len > PACKED_MAX {
            break;
        }
        bytes.resize(len as usize, 0);
        if !read_or_end(&mut r, &mut bytes)? {
            break;
        }
        let mut h = [0u8; 32];
        h.copy_from_slice(&head[..32]);
        let h = ObjectHash::from_bytes(h);
        if ObjectHash::of_bytes(&bytes) == h {
            found.entry(h).or_insert((at + RECORD_HEAD, len));
        }
        at += RECORD_HEAD + len;
    }
    // Past a broken frame, the old entries may still be right.
    let old = fs::read(idx).unwrap_or_default();
    for (h, offset, len) in salvage_idx(&old, pack_len) {
        if found.contains_key(&h) {
            continue;
        }
        bytes.resize(len as usize, 0);
        if file.read_exact_at(&mut bytes, offset).is_ok() && ObjectHash::of_bytes(&bytes) == h {
            found.insert(h, (offset, len));
        }
    }
    let mut entries: Vec<_> = found.into_iter().map(|(h, (o, l))| (h, o, l)).collect();
    entries.sort_unstable_by_key(|e| e.0);
    fs::create_dir_all(quarantine).map_err(StoreError::io("creating", quarantine))?;
    let name = idx.file_name().unwrap_or_default().to_string_lossy();
    let kept = quarantine.join(format!("{name}.{}", uuid::Uuid::new_v4().simple()));
    fs::write(&kept, &old)
        .and_then(|()| File::open(&kept)?.sync_all())
        .map_err(StoreError::io("quarantining to", &kept))?;
    objects.install(&encode_idx(&entries), idx, true)?;
    Ok(entries.len())
}

/// The entries of a damaged index that are each well-formed and inside
/// the pack, whatever its checksum and count say.
fn salvage_idx(bytes: &[u8], pack_len: u64) -> Vec<(ObjectHash, u64, u64)> {
    if bytes.len() < 16 || &bytes[..8] != IDX_MAGIC {
        return Vec::new();
    }
    bytes[16..]
        .chunks_exact(ENTRY)
        .filter_map(|e| {
            let mut h = [0u8; 32];
            h.copy_from_slice(&e[..32]);
            let (offset, len) = (u64_at(e, 32), u64_at(e, 40));
            let inside = offset >= PACK_MAGIC.len() as u64 + RECORD_HEAD
                && len <= PACKED_MAX
                && offset.checked_add(len).is_some_and(|end| end <= pack_len);
            inside.then(|| (ObjectHash::from_bytes(h), offset, len))
        })
        .collect()
}

/// Takes the lock of the pack directory holding `idx` (`pack/lock`, held
/// until the returned file is dropped): an index is read, changed and
/// rewritten under it, so that two `fsck --repair` runs cannot each
/// rewrite it from what they read and lose the other's change.
fn lock_indexes(idx: &Path) -> Result<File> {
    let path = idx.with_file_name("lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(StoreError::io("opening", &path))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| StoreError::io("locking", &path)(e.into()))?;
    Ok(f)
}

/// The sorted names, sizes and inodes of the `.idx` files in `dir` (an
/// index rewritten in place is a new file: a new inode).
fn idx_names(dir: &Path) -> Vec<(String, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut names: Vec<(String, u64, u64)> = fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let idx = name.ends_with(".idx") && !name.starts_with('.');
                    let (len, ino) = e.metadata().map(|m| (m.len(), m.ino())).unwrap_or((0, 0));
                    idx.then_some((name, len, ino))
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Reads and checks the index `idx` of the pack at `pack`.
fn read_idx(idx: &Path, pack: &Path) -> std::result::Result<Vec<(ObjectHash, u64, u64)>, String> {
    let pack_len = fs::metadata(pack)
        .map_err(|e| format!("its pack: {e}"))?
        .len();
    let idx_len = fs::metadata(idx).map_err(|e| e.to_string())?.len();
    // Every entry needs a record of its own in the pack.
    let most = 16 + 32 + ENTRY as u64 * (pack_len / RECORD_HEAD + 1);
    if idx_len > most {
        return Err(format!(
            "{idx_len} bytes, more than a pack of {pack_len} bytes can need"
        ));
    }
    let bytes = fs::read(idx).map_err(|e| e.to_string())?;
    parse_idx(&bytes, pack_len)
}

fn encode_idx(entries: &[(ObjectHash, u64, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + entries.len() * ENTRY + 32);
    out.extend_from_slice(IDX_MAGIC);
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (h, offset, len) in entries {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Parses an index, checking its checksum and that every entry lies
/// within the pack (`pack_len` bytes).
fn parse_idx(
    bytes: &[u8],
    pack_len: u64,
) -> std::result::Result<Vec<(ObjectHash, u64, u64)>, String> {
    if bytes.len() < 16 + 32 || &bytes[..8] != IDX_MAGIC {
        return Err("not a keel pack index (bad magic or too short)".into());
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != sum {
        return Err("checksum mismatch: the index is damaged".into());
    }
    let count = u64_at(body, 8);
    if (body.len() - 16) as u64 != count.saturating_mul(ENTRY as u64) {
        return Err(format!(
            "{count} entries announced, {} bytes of entries",
            body.len() - 16
        ));
    }
    let mut out = Vec::with_capacity(count as usize);
    for e in body[16..].chunks_exact(ENTRY) {
        let mut h = [0u8; 32];
        h.copy_from_slice(&e[..32]);
        let (offset, len) = (u64_at(e, 32), u64_at(e, 40));
        if offset < PACK_MAGIC.len() as u64 + RECORD_HEAD
            || len > PACKED_MAX
            || offset.checked_add(len).is_none_or(|end| end > pack_len)
        {
            return Err(format!(
                "entry at {offset}+{len} lies outside its pack of {pack_len} bytes (truncated?)"
            ));
        }
        out.push((ObjectHash::from_bytes(h), offset, len));
    }
    Ok(out)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Appends the small objects of one add or pull to a new pack; see the module
/// documentation. Large files go to [`LocalObjects::put_file`]. The small
/// ones are held in memory until there are enough for a pack; if there
/// never are, [`PackWriter::finish`] stores them loose. Nothing is stored
/// before `finish`: a writer dropped without it stores nothing.
pub struct PackWriter<'a> {
    objects: &'a LocalObjects,
    /// The packs at the start, for deduplication.
    known: Arc<PackSet>,
    state: Mutex<Writing>,
}

struct Writing {
    /// Created once there are enough objects for a pack.
    tmp: Option<TmpObject>,
    buf: Vec<u8>,
    /// Bytes in the pack so far, written or buffered.
    len: u64,
    entries: HashMap<ObjectHash, (u64, u64)>,
}

impl<'a> PackWriter<'a> {
    pub(crate) fn new(objects: &'a LocalObjects, known: Arc<PackSet>) -> PackWriter<'a> {
        PackWriter {
            objects,
            known,
            state: Mutex::new(Writing {
                tmp: None,
                buf: Vec::new(),
                len: 0,
                entries: HashMap::new(),
            }),
        }
    }

    /// The store this writer adds to.
    pub(super) fn objects(&self) -> &LocalObjects {
        self.objects
    }

    /// Stores the file at `src` (scanned as `before`), as
    /// [`LocalObjects::put_file`] does, but into the pack if it is small.
    pub fn put_file(&self, src: &Path, before: &fs::Metadata) -> Result<(ObjectHash, Stored)> {
        if before.len() > PACKED_MAX {
            return self.objects.put_file(src, before);
        }
        self.put_bytes(&read_small(src, before)?)
    }

    /// Stores `bytes`, into the pack if they are small.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<(ObjectHash, Stored)> {
        if bytes.len() as u64 > PACKED_MAX {
            let (h, new) = self.objects.put_bytes(bytes)?;
            return Ok((h, Stored::new_as(new, Stored::Copied)));
        }
        let h = ObjectHash::of_bytes(bytes);
        let len = bytes.len() as u64;
        if self.known.get(&h).is_some_and(|l| l.len == len) || self.objects.has_loose(&h, len) {
            return Ok((h, Stored::Existing));
        }
        let mut w = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if w.entries.contains_key(&h) {
            return Ok((h, Stored::Existing));
        }
        if w.len == 0 {
            w.buf.extend_from_slice(PACK_MAGIC);
            w.len = PACK_MAGIC.len() as u64;
        }
        w.buf.extend_from_slice(h.as_bytes());
        w.buf.extend_from_slice(&len.to_le_bytes());
        let offset = w.len + RECORD_HEAD;
        w.buf.extend_from_slice(bytes);
        w.len = offset + len;
        w.entries.insert(h, (offset, len));
        if w.tmp.is_none() && (w.entries.len() >= PACK_MIN || w.buf.len() >= PACK_MIN_BYTES) {
            w.tmp = Some(self.objects.create_tmp(false)?);
        }
        if w.tmp.is_some() && w.buf.len() >= WRITE_BUF {
            self.flush(&mut w)?;
        }
        Ok((h, Stored::Copied))
    }

    fn flush(&self, w: &mut Writing) -> Result<()> {
        let Writing { tmp, buf, .. } = w;
        if let Some(tmp) = tmp {
            tmp.file
                .write_all(buf)
                .map_err(StoreError::io("writing pack in", &self.objects.tmp))?;
        }
        buf.clear();
        Ok(())
    }

    /// Stores the objects: names the pack and its index, or, when there
    /// are too few for a pack, stores them loose. Returns the number
    /// packed. Must return before anything that names them is recorded.
    pub fn finish(self) -> Result<usize> {
        let mut w = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        let Some(mut tmp) = w.tmp.take() else {
            // Still all in memory: offsets are positions in `buf`.
            for &(offset, len) in w.entries.values() {
                let at = offset as usize;
                self.objects.put_bytes(&w.buf[at..at + len as usize])?;
            }
            return Ok(0);
        };
        tmp.file
            .write_all(&w.buf)
            .map_err(StoreError::io("writing pack in", &self.objects.tmp))?;
        let dir = self.objects.pack_dir();
        fs::create_dir_all(&dir).map_err(StoreError::io("creating", &dir))?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let pack = dir.join(format!("{id}.pack"));
        // A pack without index older than an hour is a leftover
        // (`clean_tmp`): this one is not, however long the add took.
        let _ = tmp.file.set_modified(std::time::SystemTime::now());
        tmp.name_as(&pack)
            .map_err(StoreError::io("storing pack", &pack))?;
        let mut entries: Vec<_> = w.entries.iter().map(|(h, &(o, l))| (*h, o, l)).collect();
        entries.sort_unstable_by_key(|e| e.0);
        self.objects
            .install(&encode_idx(&entries), &dir.join(format!("{id}.idx")), false)?;
        self.objects.reload_packs();
        Ok(entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_round_trips_and_damage_is_refused() {
        let h = |b: &[u8]| ObjectHash::of_bytes(b);
        let entries = vec![(h(b"a"), 48, 1), (h(b"bc"), 89, 2)];
        let bytes = encode_idx(&entries);
        assert_eq!(parse_idx(&bytes, 91).unwrap(), entries);
        // An entry past the end of the pack (a truncated pack).
        assert!(parse_idx(&bytes, 90)
            .unwrap_err()
            .contains("outside its pack"));
        // Any flipped byte breaks the checksum.
        for at in [0, 9, 20, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            assert!(parse_idx(&bad, 91).is_err(), "flip at {at}");
        }
        assert!(parse_idx(&bytes[..40], 91).is_err());
        // A well-formed index with an entry longer than any packed object
        // (a crafted one) is refused, not read into memory.
        let huge = encode_idx(&[(h(b"x"), 48, PACKED_MAX + 1)]);
        assert!(parse_idx(&huge, 1 << 40).is_err());
    }
}
