//! What a `RUN` changed: a snapshot of the root's metadata before, compared with after,
//! as layer entries (added and changed paths, deletions as whiteouts).

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::Arc;

use imgtool_archive::{EntryKind, FileData, Origin, Owner, TarEntry, host_entry};
use imgtool_rootfs::{Kind, Root, Stat, Visit};

/// Everything that changes when a file is written, chmod-ed, chown-ed, replaced or linked
/// (not the link count: a new hard link is the new name's change, not the old one's).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    ino: u64,
    rdev: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl From<&Stat> for Stamp {
    fn from(st: &Stat) -> Stamp {
        Stamp {
            kind: st.kind,
            mode: st.mode,
            uid: st.uid,
            gid: st.gid,
            size: st.size,
            ino: st.id.1,
            rdev: st.rdev,
            mtime: st.mtime,
            ctime: st.ctime,
        }
    }
}

/// Paths (relative, `/`-separated, bytes: names need not be UTF-8), their stamps and what
/// `stat` said.
#[derive(Debug, Default)]
pub(crate) struct Snapshot(BTreeMap<OsString, (Stamp, Stat)>);

/// Mount points the runtime makes in the root for the command: not the command's doing.
const RUNTIME: &[&str] = &["proc", "sys", "dev"];

/// What the root holds, read through the rooted path layer (the command may have left any
/// symlink anywhere).
pub(crate) fn snapshot(root: &Root) -> std::io::Result<Snapshot> {
    let listed = root.walk("", &mut |_, _| Visit::Keep).map_err(imgtool_rootfs::Error::into_io)?;
    Ok(Snapshot(listed.into_iter().map(|(p, st)| (p, ((&st).into(), st))).collect()))
}

fn under(path: &OsStr, dir: &OsStr) -> bool {
    path == dir || path.as_bytes().strip_prefix(dir.as_bytes()).is_some_and(|r| r.starts_with(b"/"))
}

/// The layer entries that turn `before` into `after` (both of `root`), sorted so parents
/// come first; every entry gets `mtime`.
pub(crate) fn changes(root: &Arc<Root>, before: &Snapshot, after: &Snapshot, mtime: u64) -> std::io::Result<Vec<TarEntry>> {
    let mut out: BTreeMap<Vec<Vec<u8>>, TarEntry> = BTreeMap::new();
    let key = |p: &OsStr| p.as_bytes().split(|b| *b == b'/').map(<[u8]>::to_vec).collect::<Vec<_>>();
    let mut links = HashMap::new();
    for (path, (stamp, st)) in &after.0 {
        if before.0.get(path).map(|b| &b.0) == Some(stamp) {
            continue;
        }
        if !before.0.contains_key(path) && RUNTIME.iter().any(|r| under(path, OsStr::new(r)) && !before.0.contains_key(OsStr::new(r))) {
            continue;
        }
        let mut e =
            host_entry(Origin::Rooted(root, path), st, path.clone(), mtime, Owner::Preserve, &mut links).map_err(std::io::Error::other)?;
        e.mtime = mtime;
        out.insert(key(path), e);
    }
    // Deleted paths: one whiteout for the topmost deleted directory covers its contents.
    let mut gone: Vec<&OsString> = before.0.keys().filter(|p| !after.0.contains_key(*p)).collect();
    gone.sort();
    let mut last: Option<&OsString> = None;
    for path in gone {
        if last.is_some_and(|l| under(path, l)) {
            continue;
        }
        last = Some(path);
        let bytes = path.as_bytes();
        let (dir, name) = match bytes.iter().rposition(|b| *b == b'/') {
            Some(i) => (&bytes[..=i], &bytes[i + 1..]),
            None => (&b""[..], bytes),
        };
        let wh = OsString::from_vec([dir, b".wh.", name].concat());
        out.insert(
            key(&wh),
            TarEntry {
                path: wh.clone(),
                kind: EntryKind::File { data: FileData::Bytes(Default::default()), size: 0 },
                mode: 0,
                uid: 0,
                gid: 0,
                mtime,
                xattrs: Vec::new(),
            },
        );
    }
    Ok(fix_hardlinks(out.into_values().collect()))
}

/// A hard link must follow the entry it points at; sorting may have put it first.
fn fix_hardlinks(mut entries: Vec<TarEntry>) -> Vec<TarEntry> {
    let mut seen = std::collections::HashSet::new();
    for i in 0..entries.len() {
        if let EntryKind::Hardlink(target) = &entries[i].kind {
            if !seen.contains(target) {
                // Swap roles: this one carries the data, the target becomes the link.
                let target = target.clone();
                if let Some(j) = entries.iter().position(|e| e.path == target) {
                    let data_kind = entries[j].kind.clone();
                    entries[j].kind = EntryKind::Hardlink(entries[i].path.clone());
                    entries[i].kind = data_kind;
                }
            }
        }
        seen.insert(entries[i].path.clone());
    }
    entries
}
