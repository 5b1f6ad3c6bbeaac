//! Listing a tree inside a root from directory handles, never through host paths.

use std::ffi::{OsStr, OsString};

use crate::dir::{Dir, Kind, Stat};
use crate::error::{Error, Result};
use crate::root::Root;

/// What [`Root::walk`] does with a path it meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// List it, and enter it if it is a directory.
    Keep,
    /// Leave it out of the list, but enter it if it is a directory (something under it may
    /// be kept).
    Hide,
    /// Leave it and everything under it out.
    Prune,
}

/// One open directory of the walk and the names in it still to visit (last first).
struct Frame {
    dir: Dir,
    prefix: OsString,
    names: Vec<OsString>,
}

impl Frame {
    fn new(dir: Dir, prefix: OsString) -> Result<Frame> {
        let mut names = dir.names()?;
        // Sorted bytewise, popped from the end: the walk's order depends only on the names.
        names.sort_by(|a, b| b.cmp(a));
        Ok(Frame { dir, prefix, names })
    }
}

impl Root {
    /// Everything under the directory `rel` (symlinks in `rel` followed inside the root,
    /// none below it), parents before children and names in byte order, as paths relative
    /// to `rel` with what `stat` says of each. `visit` decides what is listed and entered.
    /// Only the directories on the current path are held open. Names are bytes, as Linux
    /// has them (they need not be UTF-8).
    pub fn walk(&self, rel: impl AsRef<OsStr>, visit: &mut dyn FnMut(&OsStr, &Stat) -> Visit) -> Result<Vec<(OsString, Stat)>> {
        let rel = rel.as_ref();
        let top = self.dir(rel)?.ok_or_else(|| Error::Io {
            op: "walking",
            path: crate::root::shown(rel),
            source: rustix::io::Errno::NOENT.into(),
        })?;
        let mut out = Vec::new();
        let mut stack = vec![Frame::new(top, OsString::new())?];
        while let Some(frame) = stack.last_mut() {
            let Some(name) = frame.names.pop() else {
                stack.pop();
                continue;
            };
            // Gone since it was listed: nothing to copy.
            let Some(st) = frame.dir.stat(&name)? else { continue };
            let path = if frame.prefix.is_empty() {
                name.clone()
            } else {
                let mut p = frame.prefix.clone();
                p.push("/");
                p.push(&name);
                p
            };
            let what = visit(&path, &st);
            if what == Visit::Keep {
                out.push((path.clone(), st));
            }
            if what != Visit::Prune && st.kind == Kind::Dir {
                if let Some(sub) = frame.dir.open_dir(&name)? {
                    stack.push(Frame::new(sub, path)?);
                }
            }
        }
        Ok(out)
    }
}
