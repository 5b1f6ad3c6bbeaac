use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::dir::{Dir, Kind, Stat, stat_fd};
use crate::error::{Error, Result};

/// An image root: a directory on the host whose contents are untrusted.
#[derive(Debug)]
pub struct Root {
    inner: pathrs::Root,
    path: PathBuf,
}

/// How many symlinks [`Root::make_dirs`] follows through missing targets before giving up
/// (the kernel's own limit).
const MAX_HOPS: usize = 40;

/// `rel` as '/'-separated components with `.` and empty ones dropped and `..` applied
/// lexically (stopping at the root), the way a container path is cleaned. Names are bytes:
/// a Linux name need not be UTF-8.
pub(crate) fn clean(rel: &OsStr) -> Vec<&OsStr> {
    let mut out: Vec<&OsStr> = Vec::new();
    for c in rel.as_bytes().split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    out
}

/// Path components joined with '/', as bytes (a Linux name need not be UTF-8); empty
/// components are left out.
pub fn join_path<S: AsRef<OsStr>>(parts: &[S]) -> OsString {
    let mut out = OsString::new();
    for p in parts.iter().map(AsRef::as_ref).filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push("/");
        }
        out.push(p);
    }
    out
}

/// The cleaned path from the root, for messages.
pub(crate) fn shown(rel: &OsStr) -> String {
    format!("/{}", join_path(&clean(rel)).to_string_lossy())
}

impl Root {
    /// Open an existing directory as a root. The path the user named is trusted (host
    /// symlinks in it are resolved once, here); what is inside it is not.
    pub fn open(path: impl AsRef<Path>) -> Result<Root> {
        let given = path.as_ref();
        let path = std::fs::canonicalize(given).map_err(|source| Error::Io {
            op: "opening the root",
            path: given.display().to_string(),
            source,
        })?;
        let inner = pathrs::Root::open(&path).map_err(|source| Error::Resolve {
            op: "opening the root",
            path: path.display().to_string(),
            source,
        })?;
        Ok(Root { inner, path })
    }

    /// Create the directory (and its parents, on the host) if missing, then open it.
    pub fn create(path: impl AsRef<Path>) -> Result<Root> {
        let path = path.as_ref();
        std::fs::create_dir_all(path).map_err(|source| Error::Io { op: "creating the root", path: path.display().to_string(), source })?;
        Root::open(path)
    }

    /// Where the root is on the host (for messages; never join paths onto it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn resolve(&self, rel: &OsStr, follow: bool) -> Result<Option<OwnedFd>> {
        let mut p = OsString::from("/");
        p.push(join_path(&clean(rel)));
        let r = if follow { self.inner.resolve(&p) } else { self.inner.resolve_nofollow(&p) };
        match r {
            Ok(h) => Ok(Some(h.into())),
            Err(source) => {
                let e = Error::Resolve { op: "resolving", path: p.to_string_lossy().into_owned(), source };
                if e.is_not_found() { Ok(None) } else { Err(e) }
            }
        }
    }

    /// The directory at `rel` (symlinks followed inside the root), or `None` when it is
    /// missing. Something other than a directory there is an error.
    pub fn dir(&self, rel: impl AsRef<OsStr>) -> Result<Option<Dir>> {
        let rel = rel.as_ref();
        let Some(fd) = self.resolve(rel, true)? else { return Ok(None) };
        let shown = shown(rel);
        let st = stat_fd(&fd, &shown)?;
        if st.kind != Kind::Dir {
            return Err(Error::Io { op: "opening directory", path: shown, source: rustix::io::Errno::NOTDIR.into() });
        }
        Ok(Some(Dir::from_fd(fd, shown)))
    }

    /// The root itself as a [`Dir`].
    pub fn top(&self) -> Result<Dir> {
        self.dir("/")?.ok_or_else(|| Error::Io { op: "opening", path: "/".into(), source: rustix::io::Errno::NOENT.into() })
    }

    /// The directory at `rel`, made (mode 0755) with every missing parent when needed.
    /// `made` hears of each directory created, as (its parent, its name), so a caller can
    /// record what it added. A symlink to a missing directory is followed (inside the root)
    /// and its target made, as `mkdir -p` in the container would.
    pub fn make_dirs(&self, rel: impl AsRef<OsStr>, made: &mut dyn FnMut(&Dir, &OsStr)) -> Result<Dir> {
        self.make_dirs_hops(rel.as_ref(), made, 0)
    }

    fn make_dirs_hops(&self, rel: &OsStr, made: &mut dyn FnMut(&Dir, &OsStr), hops: usize) -> Result<Dir> {
        if let Some(d) = self.dir(rel)? {
            return Ok(d);
        }
        let parts = clean(rel);
        let mut cur = self.top()?;
        // One component at a time from the directory reached so far; only a symlink sends
        // the walk back to the root (to be followed inside it).
        for (i, c) in parts.iter().enumerate() {
            let prefix = || join_path(&parts[..=i]);
            match cur.stat(c)? {
                Some(st) if st.kind == Kind::Dir => {
                    cur = cur.open_dir(c)?.ok_or_else(|| Error::Io {
                        op: "opening directory",
                        path: shown(&prefix()),
                        source: rustix::io::Errno::NOENT.into(),
                    })?;
                }
                None => {
                    cur.mkdir(c, 0o755)?;
                    made(&cur, c);
                    cur = cur.open_dir(c)?.ok_or_else(|| Error::Io {
                        op: "opening directory",
                        path: shown(&prefix()),
                        source: rustix::io::Errno::NOENT.into(),
                    })?;
                }
                Some(st) if st.kind == Kind::Symlink => {
                    if let Some(d) = self.dir(prefix())? {
                        cur = d;
                        continue;
                    }
                    if hops >= MAX_HOPS {
                        return Err(Error::Io { op: "resolving", path: shown(&prefix()), source: rustix::io::Errno::LOOP.into() });
                    }
                    let target = cur.read_link(c)?;
                    let mut next = if target.starts_with(b"/") { OsString::new() } else { join_path(&parts[..i]) };
                    next.push("/");
                    next.push(OsStr::from_bytes(&target));
                    for rest in &parts[i + 1..] {
                        next.push("/");
                        next.push(rest);
                    }
                    return self.make_dirs_hops(&next, made, hops + 1);
                }
                Some(_) => {
                    return Err(Error::Io { op: "making directory", path: shown(&prefix()), source: rustix::io::Errno::NOTDIR.into() });
                }
            }
        }
        Ok(cur)
    }

    /// What is at `rel`: with `follow`, symlinks (also the last one) are followed inside
    /// the root; without, the last component is described as it is.
    pub fn stat(&self, rel: impl AsRef<OsStr>, follow: bool) -> Result<Option<Stat>> {
        let rel = rel.as_ref();
        let shown = shown(rel);
        match self.resolve(rel, follow)? {
            Some(fd) => Ok(Some(stat_fd(&fd, &shown)?)),
            None => Ok(None),
        }
    }

    /// The target of the symlink at `rel` (symlinks before the last component followed
    /// inside the root).
    pub fn read_link(&self, rel: impl AsRef<OsStr>) -> Result<Vec<u8>> {
        let rel = rel.as_ref();
        let parts = clean(rel);
        let not_found = || Error::Io { op: "reading link", path: shown(rel), source: rustix::io::Errno::NOENT.into() };
        let Some((name, parent)) = parts.split_last() else { return Err(not_found()) };
        self.dir(join_path(parent))?.ok_or_else(not_found)?.read_link(name)
    }

    /// Open the regular file at `rel` for reading (symlinks followed inside the root).
    /// Anything else there (a FIFO, a device, a directory) gives `None`: it is never opened.
    pub fn open_file(&self, rel: impl AsRef<OsStr>) -> Result<Option<File>> {
        let rel = rel.as_ref();
        let shown = shown(rel);
        let Some(fd) = self.resolve(rel, true)? else { return Ok(None) };
        if stat_fd(&fd, &shown)?.kind != Kind::File {
            return Ok(None);
        }
        crate::dir::reopen_read(&fd, &shown).map(Some)
    }

    /// Read the regular file at `rel`, refusing more than `limit` bytes; `None` when there
    /// is no regular file there.
    pub fn read(&self, rel: impl AsRef<OsStr>, limit: u64) -> Result<Option<Vec<u8>>> {
        let rel = rel.as_ref();
        let Some(f) = self.open_file(rel)? else { return Ok(None) };
        let shown = shown(rel);
        let mut buf = Vec::new();
        f.take(limit.saturating_add(1)).read_to_end(&mut buf).map_err(|source| Error::Io { op: "reading", path: shown.clone(), source })?;
        if buf.len() as u64 > limit {
            return Err(Error::TooLarge { path: shown, limit });
        }
        Ok(Some(buf))
    }
}
