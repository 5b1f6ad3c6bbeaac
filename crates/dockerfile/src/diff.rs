//! What a `RUN` changed: a snapshot of the root's metadata before, compared with after,
//! as layer entries (added and changed paths, deletions as whiteouts).

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use imgtool_archive::{EntryKind, FileData, Owner, TarEntry, host_entry};

/// Everything that changes when a file is written, chmod-ed, chown-ed, replaced or linked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    ino: u64,
    rdev: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// Paths (relative, `/`-separated) and their stamps.
#[derive(Debug, Default)]
pub(crate) struct Snapshot(BTreeMap<String, Stamp>);

/// Mount points the runtime makes in the root for the command: not the command's doing.
const RUNTIME: &[&str] = &["proc", "sys", "dev"];

pub(crate) fn snapshot(root: &Path) -> std::io::Result<Snapshot> {
    let mut out = BTreeMap::new();
    for item in walkdir::WalkDir::new(root).follow_links(false).min_depth(1) {
        let item = item.map_err(|e| e.into_io_error().unwrap_or_else(|| std::io::Error::other("filesystem loop")))?;
        let m = item.path().symlink_metadata()?;
        let rel = item.path().strip_prefix(root).unwrap_or(item.path()).to_string_lossy().into_owned();
        out.insert(
            rel,
            Stamp {
                mode: m.mode(),
                uid: m.uid(),
                gid: m.gid(),
                size: m.size(),
                ino: m.ino(),
                rdev: m.rdev(),
                mtime: (m.mtime(), m.mtime_nsec()),
                ctime: (m.ctime(), m.ctime_nsec()),
            },
        );
    }
    Ok(Snapshot(out))
}

fn under(path: &str, dir: &str) -> bool {
    path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// The layer entries that turn `before` into `after` (both of `root`), sorted so parents
/// come first; every entry gets `mtime`.
pub(crate) fn changes(root: &Path, before: &Snapshot, after: &Snapshot, mtime: u64) -> std::io::Result<Vec<TarEntry>> {
    let mut out: BTreeMap<Vec<String>, TarEntry> = BTreeMap::new();
    let key = |p: &str| p.split('/').map(str::to_string).collect::<Vec<_>>();
    let mut links = HashMap::new();
    for (path, stamp) in &after.0 {
        if before.0.get(path) == Some(stamp) {
            continue;
        }
        if !before.0.contains_key(path) && RUNTIME.iter().any(|r| under(path, r) && !before.0.contains_key(*r)) {
            continue;
        }
        let host = root.join(path);
        let meta = host.symlink_metadata()?;
        let mut e = host_entry(&host, &meta, path.clone(), mtime, Owner::Preserve, &mut links).map_err(std::io::Error::other)?;
        e.mtime = mtime;
        out.insert(key(path), e);
    }
    // Deleted paths: one whiteout for the topmost deleted directory covers its contents.
    let mut gone: Vec<&String> = before.0.keys().filter(|p| !after.0.contains_key(*p)).collect();
    gone.sort();
    let mut last: Option<&String> = None;
    for path in gone {
        if last.is_some_and(|l| under(path, l)) {
            continue;
        }
        last = Some(path);
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (format!("{d}/"), n),
            None => (String::new(), path.as_str()),
        };
        let wh = format!("{dir}.wh.{name}");
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
