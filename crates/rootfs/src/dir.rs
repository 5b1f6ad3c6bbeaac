use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::error::{Error, Result, io_err};

/// What kind of inode a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A socket.
    Socket,
}

/// What `stat` says of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Its kind.
    pub kind: Kind,
    /// Permission bits, with setuid, setgid and sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Device and inode number: the inode's identity.
    pub id: (u64, u64),
    /// How many names the inode has.
    pub nlink: u64,
    /// The device a character or block device node stands for (raw `st_rdev`).
    pub rdev: u64,
    /// Last modification, (seconds, nanoseconds).
    pub mtime: (i64, i64),
    /// Last status change, (seconds, nanoseconds).
    pub ctime: (i64, i64),
}

impl From<&std::fs::Metadata> for Stat {
    /// What `stat` said of a host path the user named (not inside a root).
    fn from(m: &std::fs::Metadata) -> Stat {
        use std::os::unix::fs::MetadataExt;
        Stat {
            kind: kind_of(m.mode()),
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            size: m.size(),
            id: (m.dev(), m.ino()),
            nlink: m.nlink(),
            rdev: m.rdev(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// A special file to make with [`Dir::mknod`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// A named pipe.
    Fifo,
    /// A character device (major, minor).
    Char(u32, u32),
    /// A block device (major, minor).
    Block(u32, u32),
}

/// Metadata to set on a name, applied in this order: owner, mode, extended attributes,
/// modification time. An attribute the filesystem refuses is logged, not fatal.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// `(uid, gid)`.
    pub owner: Option<(u32, u32)>,
    /// Permission bits (with setuid, setgid, sticky); ignored for symlinks.
    pub mode: Option<u32>,
    /// Extended attributes (name, value); ignored for symlinks.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Modification (and access) time, seconds since the epoch.
    pub mtime: Option<i64>,
}

fn kind_of(mode: u32) -> Kind {
    match FileType::from_raw_mode(mode) {
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Symlink,
        FileType::Fifo => Kind::Fifo,
        FileType::CharacterDevice => Kind::Char,
        FileType::BlockDevice => Kind::Block,
        FileType::Socket => Kind::Socket,
        _ => Kind::File,
    }
}

// The stat fields' widths differ between architectures: the casts are not all no-ops.
#[allow(clippy::unnecessary_cast)]
fn to_stat(st: rustix::fs::Stat) -> Stat {
    Stat {
        kind: kind_of(st.st_mode),
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size: st.st_size.max(0) as u64,
        id: (st.st_dev, st.st_ino),
        nlink: st.st_nlink as u64,
        rdev: st.st_rdev,
        mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
    }
}

pub(crate) fn stat_fd(fd: impl AsFd, shown: &str) -> Result<Stat> {
    rustix::fs::fstat(fd).map(to_stat).map_err(io_err("stat", shown))
}

pub(crate) fn reopen_read(fd: &OwnedFd, shown: &str) -> Result<File> {
    // Through the handle's magic link: the same inode, now readable; no path is resolved.
    let f = rustix::fs::open(proc_path(fd.as_fd()), OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY, Mode::empty())
        .map_err(io_err("opening", shown))?;
    Ok(File::from(f))
}

/// `/proc/self/fd/N`: how metadata calls without an `*at` no-follow form (chmod, setxattr)
/// reach an inode already opened with `O_PATH`.
fn proc_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// A directory inside a [`crate::Root`], held open. Names given to its methods are single
/// path components; the last component is never followed.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: String,
}

impl Dir {
    pub(crate) fn from_fd(fd: OwnedFd, path: String) -> Dir {
        Dir { fd, path }
    }

    /// Another handle on the same directory.
    pub fn try_clone(&self) -> Result<Dir> {
        let fd = self.fd.try_clone().map_err(|source| Error::Io { op: "duplicating", path: self.path.clone(), source })?;
        Ok(Dir { fd, path: self.path.clone() })
    }

    /// This directory's path inside the root (for messages).
    pub fn path(&self) -> &str {
        &self.path
    }

    fn shown(&self, name: &OsStr) -> String {
        let name = name.to_string_lossy();
        if self.path == "/" { format!("/{name}") } else { format!("{}/{name}", self.path) }
    }

    fn check(name: &OsStr) -> Result<()> {
        let b = name.as_encoded_bytes();
        if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
            return Err(Error::BadName { name: name.to_string_lossy().into_owned() });
        }
        Ok(())
    }

    /// The directory's own identity (device, inode).
    pub fn id(&self) -> Result<(u64, u64)> {
        Ok(stat_fd(&self.fd, &self.path)?.id)
    }

    /// What `name` is, without following it; `None` when missing.
    pub fn stat(&self, name: impl AsRef<OsStr>) -> Result<Option<Stat>> {
        let name = name.as_ref();
        Self::check(name)?;
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(to_stat(st))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(io_err("stat", &self.shown(name))(e)),
        }
    }

    /// The subdirectory `name`, not following a symlink; `None` when it is missing or is
    /// not a directory.
    pub fn open_dir(&self, name: impl AsRef<OsStr>) -> Result<Option<Dir>> {
        let name = name.as_ref();
        Self::check(name)?;
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(Dir { fd, path: self.shown(name) })),
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => Ok(None),
            Err(e) => Err(io_err("opening directory", &self.shown(name))(e)),
        }
    }

    /// Open the regular file `name` for reading, never following a symlink and never
    /// opening anything but a regular file; `None` otherwise.
    pub fn open_file(&self, name: impl AsRef<OsStr>) -> Result<Option<File>> {
        let name = name.as_ref();
        Self::check(name)?;
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(io_err("opening", &self.shown(name))(e)),
        };
        if stat_fd(&fd, &self.shown(name))?.kind != Kind::File {
            return Ok(None);
        }
        reopen_read(&fd, &self.shown(name)).map(Some)
    }

    /// Create the regular file `name` (it must not exist), open for writing, mode 0600
    /// until [`Dir::set_meta`] gives it its own.
    pub fn create_file(&self, name: impl AsRef<OsStr>) -> Result<File> {
        let name = name.as_ref();
        Self::check(name)?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(0o600)).map_err(io_err("creating", &self.shown(name)))?;
        Ok(File::from(fd))
    }

    /// Make the directory `name`.
    pub fn mkdir(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<()> {
        let name = name.as_ref();
        Self::check(name)?;
        rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)).map_err(io_err("making directory", &self.shown(name)))
    }

    /// Make the symlink `name` pointing at `target` (which is never looked at here).
    pub fn symlink(&self, name: impl AsRef<OsStr>, target: &[u8]) -> Result<()> {
        let name = name.as_ref();
        Self::check(name)?;
        let target = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(target);
        rustix::fs::symlinkat(target, &self.fd, name).map_err(io_err("making symlink", &self.shown(name)))
    }

    /// Make a FIFO or device node `name` (mode 0600 until [`Dir::set_meta`]).
    pub fn mknod(&self, name: impl AsRef<OsStr>, node: Node) -> Result<()> {
        let name = name.as_ref();
        Self::check(name)?;
        let (ty, dev) = match node {
            Node::Fifo => (FileType::Fifo, 0),
            Node::Char(a, b) => (FileType::CharacterDevice, rustix::fs::makedev(a, b)),
            Node::Block(a, b) => (FileType::BlockDevice, rustix::fs::makedev(a, b)),
        };
        rustix::fs::mknodat(&self.fd, name, ty, Mode::from_raw_mode(0o600), dev).map_err(io_err("making node", &self.shown(name)))
    }

    /// Make `name` a hard link to `from_name` in `from` (a symlink there is linked itself,
    /// never followed).
    pub fn hard_link(&self, name: impl AsRef<OsStr>, from: &Dir, from_name: impl AsRef<OsStr>) -> Result<()> {
        let name = name.as_ref();
        let from_name = from_name.as_ref();
        Self::check(name)?;
        Self::check(from_name)?;
        rustix::fs::linkat(&from.fd, from_name, &self.fd, name, AtFlags::empty()).map_err(io_err("linking", &self.shown(name)))
    }

    /// The target of the symlink `name`.
    pub fn read_link(&self, name: impl AsRef<OsStr>) -> Result<Vec<u8>> {
        let name = name.as_ref();
        Self::check(name)?;
        rustix::fs::readlinkat(&self.fd, name, Vec::new()).map(|c| c.into_bytes()).map_err(io_err("reading link", &self.shown(name)))
    }

    /// The names in this directory (not `.` or `..`), unsorted.
    pub fn names(&self) -> Result<Vec<OsString>> {
        let fd = rustix::fs::openat(&self.fd, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(io_err("listing", &self.path))?;
        let mut out = Vec::new();
        for e in rustix::fs::Dir::new(fd).map_err(io_err("listing", &self.path))? {
            let e = e.map_err(io_err("listing", &self.path))?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                out.push(OsString::from_vec(n.to_vec()));
            }
        }
        Ok(out)
    }

    /// Remove `name` and, if it is a directory, everything under it, following no
    /// symlink. Returns whether there was anything.
    pub fn remove_all(&self, name: impl AsRef<OsStr>) -> Result<bool> {
        let name = name.as_ref();
        let Some(st) = self.stat(name)? else { return Ok(false) };
        if st.kind != Kind::Dir {
            return self.unlink(name, false).map(|()| true);
        }
        // Depth-first with an explicit stack (a tree made by a RUN can be deeper than any
        // thread's stack), on the raw names. Each directory is emptied, then revisited
        // once to be removed; a second visit that finds it refilled is an error, not a loop.
        let mut stack: Vec<(Dir, Vec<(OsString, bool)>)> = Vec::new();
        let Some(d) = self.open_dir(name)? else { return Ok(true) };
        let names = d.names()?.into_iter().map(|n| (n, false)).collect();
        stack.push((d, names));
        while let Some((dir, mut names)) = stack.pop() {
            let Some((child, revisit)) = names.pop() else { continue };
            match dir.stat(&child)?.map(|s| s.kind) {
                Some(Kind::Dir) => match dir.open_dir(&child)? {
                    Some(sub) => {
                        let sub_names: Vec<(OsString, bool)> = sub.names()?.into_iter().map(|n| (n, false)).collect();
                        if sub_names.is_empty() {
                            dir.unlink(&child, true)?;
                            stack.push((dir, names));
                        } else if revisit {
                            return Err(Error::Io {
                                op: "removing",
                                path: sub.path,
                                source: std::io::Error::from_raw_os_error(rustix::io::Errno::NOTEMPTY.raw_os_error()),
                            });
                        } else {
                            names.push((child, true));
                            stack.push((dir, names));
                            stack.push((sub, sub_names));
                        }
                    }
                    None => stack.push((dir, names)),
                },
                Some(_) => {
                    dir.unlink(&child, false)?;
                    stack.push((dir, names));
                }
                None => stack.push((dir, names)),
            }
        }
        self.unlink(name, true)?;
        Ok(true)
    }

    fn unlink(&self, name: impl AsRef<OsStr>, dir: bool) -> Result<()> {
        let name = name.as_ref();
        let flags = if dir { AtFlags::REMOVEDIR } else { AtFlags::empty() };
        rustix::fs::unlinkat(&self.fd, name, flags).map_err(io_err("removing", &self.shown(name)))
    }

    /// Set `meta` on `name` without following it. `file`, when given, is `name` already
    /// open (a file just created), and is used directly.
    pub fn set_meta(&self, name: impl AsRef<OsStr>, meta: &Meta, file: Option<&File>) -> Result<()> {
        let name = name.as_ref();
        Self::check(name)?;
        let shown = self.shown(name);
        if let Some((u, g)) = meta.owner {
            let (u, g) = (Some(rustix::fs::Uid::from_raw(u)), Some(rustix::fs::Gid::from_raw(g)));
            match file {
                Some(f) => rustix::fs::fchown(f, u, g),
                None => rustix::fs::chownat(&self.fd, name, u, g, AtFlags::SYMLINK_NOFOLLOW),
            }
            .map_err(io_err("chown", &shown))?;
        }
        if meta.mode.is_some() || !meta.xattrs.is_empty() {
            match file {
                Some(f) => self.mode_and_xattrs(f.as_fd(), None, meta, &shown)?,
                None => {
                    let fd = rustix::fs::openat(&self.fd, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
                        .map_err(io_err("opening", &shown))?;
                    // Symlinks have no mode of their own on Linux, and what the magic link
                    // would reach is the link itself only in theory: leave them alone.
                    if stat_fd(&fd, &shown)?.kind != Kind::Symlink {
                        self.mode_and_xattrs(fd.as_fd(), Some(proc_path(fd.as_fd())), meta, &shown)?;
                    }
                }
            }
        }
        if let Some(t) = meta.mtime {
            let ts = rustix::fs::Timespec { tv_sec: t, tv_nsec: 0 };
            let times = rustix::fs::Timestamps { last_access: ts, last_modification: ts };
            rustix::fs::utimensat(&self.fd, name, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(io_err("setting times", &shown))?;
        }
        Ok(())
    }

    /// Mode then xattrs on an open inode: `fd` directly when it is readable, else through
    /// its `/proc/self/fd` link (`O_PATH` descriptors refuse fchmod and fsetxattr).
    fn mode_and_xattrs(&self, fd: BorrowedFd<'_>, via: Option<String>, meta: &Meta, shown: &str) -> Result<()> {
        if let Some(mode) = meta.mode {
            let mode = Mode::from_raw_mode(mode & 0o7777);
            match &via {
                Some(p) => rustix::fs::chmod(p.as_str(), mode),
                None => rustix::fs::fchmod(fd, mode),
            }
            .map_err(io_err("chmod", shown))?;
        }
        for (k, v) in &meta.xattrs {
            let r = match &via {
                Some(p) => rustix::fs::setxattr(p.as_str(), k.as_str(), v, rustix::fs::XattrFlags::empty()),
                None => rustix::fs::fsetxattr(fd, k.as_str(), v, rustix::fs::XattrFlags::empty()),
            };
            // A filesystem or a kernel that refuses one attribute (trusted.* without
            // CAP_SYS_ADMIN, security.* under an LSM) should not fail the whole tree.
            if let Err(e) = r {
                tracing::warn!(path = %shown, xattr = %k, "cannot set extended attribute: {e}");
            }
        }
        Ok(())
    }
}
