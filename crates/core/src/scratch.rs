//! Temporary files and directories in places other processes share (beside an output, in a
//! cache), made so that the next writer can tell a dead writer's leftovers from a live
//! writer's work: each is locked (`flock`) by its writer for as long as it lives, so one that
//! nobody locks belongs to a process that is gone (killed with SIGKILL, crashed). Each is
//! also registered for interrupts ([`track_path`](crate::track_path)).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{FlockOperation, flock};

use crate::Tracked;

/// Lock `f` (`flock`) exclusively, or fail at once when another open file holds it.
/// (`File::try_lock` is newer than our MSRV.)
pub fn try_lock(f: &File) -> io::Result<()> {
    flock(f, FlockOperation::NonBlockingLockExclusive).map_err(io::Error::from)
}

/// Lock `f` (`flock`), shared or exclusive, waiting for other holders.
pub fn lock(f: &File, exclusive: bool) -> io::Result<()> {
    flock(f, if exclusive { FlockOperation::LockExclusive } else { FlockOperation::LockShared }).map_err(io::Error::from)
}

/// A temporary younger than this is left alone, locked or not: its writer may not have
/// locked it yet.
pub const SCRATCH_GRACE: Duration = Duration::from_secs(60);

/// Entries of `dir` whose names `is_ours` accepts, older than [`SCRATCH_GRACE`], owned by
/// this user, that no process locks: files with their sizes, directories with 0. Others may
/// write `dir` (`/tmp`): an entry is opened without following a symlink and without waiting
/// (a FIFO), and must still be the file or directory first looked at.
pub fn dead_scratch(dir: &Path, is_ours: impl Fn(&str) -> bool) -> Vec<(PathBuf, u64)> {
    let Ok(d) = File::open(dir) else { return Vec::new() };
    dead_scratch_at(&d, is_ours).into_iter().map(|e| (dir.join(e.name), e.size)).collect()
}

/// One of [`dead_scratch_at`]'s finds.
#[derive(Debug)]
pub struct DeadEntry {
    /// Its name in the directory.
    pub name: std::ffi::OsString,
    /// Its size (0 for a directory).
    pub size: u64,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// As [`dead_scratch`], in the open directory `dir`, every name resolved from it: a caller
/// that must not follow a symlink anywhere on the way (inside an OCI layout others write)
/// removes the finds with `unlinkat` on the same handle.
pub fn dead_scratch_at(dir: &File, is_ours: impl Fn(&str) -> bool) -> Vec<DeadEntry> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    use std::os::unix::ffi::OsStrExt;
    let Ok(mut entries) = rustix::fs::Dir::read_from(dir) else { return Vec::new() };
    let me = rustix::process::geteuid().as_raw();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let mut out = Vec::new();
    while let Some(Ok(e)) = entries.next() {
        let name = std::ffi::OsStr::from_bytes(e.file_name().to_bytes()).to_os_string();
        if !name.to_str().is_some_and(&is_ours) {
            continue;
        }
        let Ok(st) = rustix::fs::statat(dir, e.file_name(), AtFlags::SYMLINK_NOFOLLOW) else { continue };
        let kind = FileType::from_raw_mode(st.st_mode);
        #[allow(clippy::unnecessary_cast, reason = "time_t is not i64 on every target")]
        let old = now - st.st_mtime as i64 > SCRATCH_GRACE.as_secs() as i64;
        if !old || !matches!(kind, FileType::RegularFile | FileType::Directory) || st.st_uid != me {
            continue;
        }
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let Ok(fd) = rustix::fs::openat(dir, e.file_name(), flags, Mode::empty()) else { continue };
        let same = rustix::fs::fstat(&fd).is_ok_and(|now| now.st_dev == st.st_dev && now.st_ino == st.st_ino);
        // The lock goes with the writer's open file: free means the writer is gone.
        if same && try_lock(&File::from(fd)).is_ok() {
            let is_dir = kind == FileType::Directory;
            out.push(DeadEntry { name, size: if is_dir { 0 } else { st.st_size as u64 }, is_dir });
        }
    }
    out
}

/// Remove what [`dead_scratch`] finds (best effort: a failure only leaves it for later).
pub fn clear_dead_scratch(dir: &Path, is_ours: impl Fn(&str) -> bool) {
    for (p, _) in dead_scratch(dir, is_ours) {
        tracing::debug!(path = %p.display(), "removing what a dead writer left");
        let removed = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        if let Err(e) = removed {
            tracing::debug!(path = %p.display(), error = %e, "could not remove it");
        }
    }
}

/// `mode` as the process's umask lets a new file have it: outputs get the mode any tool
/// would give them (usually 0644 and 0755), not the 0600 and 0700 of temporary files.
pub fn output_mode(mode: u32) -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    let umask = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Umask:").and_then(|v| u32::from_str_radix(v.trim(), 8).ok())))
        .unwrap_or(0o022);
    std::fs::Permissions::from_mode(mode & !umask)
}

/// The directory `target` is in and the prefix of temporaries made beside it.
fn beside(target: &Path) -> (PathBuf, String) {
    let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let name = target.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    (parent, format!(".{name}.imgtool-"))
}

/// `{prefix}` and six characters, as tempfile names them.
fn named_by(prefix: &str) -> impl Fn(&str) -> bool + '_ {
    move |name| name.strip_prefix(prefix).is_some_and(|r| r.len() == 6 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Give a temporary file the mode of a new output (through its handle) and rename it to
/// `dest`, unless the process is being interrupted.
pub fn publish_file(t: tempfile::NamedTempFile, dest: &Path) -> io::Result<()> {
    t.as_file().set_permissions(output_mode(0o666))?;
    crate::publish(|| t.persist(dest).map(drop).map_err(|e| e.error))
}

/// Remove dead writers' temporaries beside `target` (a writer that joins an existing
/// output calls it: those that make a temporary call it anyway).
pub fn clear_dead_beside(target: &Path) {
    let (parent, prefix) = beside(target);
    clear_dead_scratch(&parent, named_by(&prefix));
}

/// A temporary file beside `target` (`.NAME.imgtool-XXXXXX`, in the same directory, so it
/// can be renamed onto it), locked and registered for interrupts. Dead writers' temporaries
/// for the same target are removed first.
pub fn temp_file_beside(target: &Path) -> io::Result<(tempfile::NamedTempFile, Tracked)> {
    let (parent, prefix) = beside(target);
    std::fs::create_dir_all(&parent)?;
    clear_dead_scratch(&parent, named_by(&prefix));
    let t = tempfile::Builder::new().prefix(&prefix).tempfile_in(&parent)?;
    let tracked = crate::track_path(t.path());
    try_lock(t.as_file())?;
    Ok((t, tracked))
}

/// A temporary directory beside `target`, as [`temp_file_beside`] makes files. Both are
/// private to this user while they are written (0600, 0700: nobody else can put a file in
/// a layout being built), and get the modes of new outputs ([`output_mode`]) through their
/// own handle when published ([`publish_file`], [`ScratchDir::publish_to`]).
pub fn temp_dir_beside(target: &Path) -> io::Result<ScratchDir> {
    let (parent, prefix) = beside(target);
    std::fs::create_dir_all(&parent)?;
    ScratchDir::new(&parent, &prefix)
}

/// This process's own directory inside the shared directory `shared` (`.imgtool-XXXXXX`),
/// for files it will rename into place there. Dead processes' directories are removed first.
pub fn private_dir(shared: &Path) -> io::Result<ScratchDir> {
    std::fs::create_dir_all(shared)?;
    ScratchDir::new(shared, ".imgtool-")
}

/// This process's spool directory: `imgtool-UID/.imgtool-XXXXXX` in the system's
/// temporary directory (`$TMPDIR`), so that the next imgtool run removes what a killed one
/// left there. When `imgtool-UID` is not a directory of this user's that only it may write
/// (someone else made it first), a plain temporary directory is used instead.
pub fn spool() -> io::Result<ScratchDir> {
    spool_in(&std::env::temp_dir())
}

fn spool_in(tmp: &Path) -> io::Result<ScratchDir> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let uid = rustix::process::geteuid().as_raw();
    let base = tmp.join(format!("imgtool-{uid}"));
    if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(&base)
        && e.kind() != io::ErrorKind::AlreadyExists
    {
        return Err(e);
    }
    let ours = std::fs::symlink_metadata(&base).is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o022 == 0);
    if ours {
        return ScratchDir::new(&base, ".imgtool-");
    }
    tracing::warn!(path = %base.display(), "not a private directory of this user's: spooling elsewhere, which is not cleared after a kill");
    ScratchDir::fresh(tmp, "imgtool-spool-")
}

/// A locked temporary directory: removed when dropped, or on an interrupt, unless kept.
#[derive(Debug)]
pub struct ScratchDir {
    dir: Option<tempfile::TempDir>,
    lock: File,
    _tracked: Tracked,
}

impl ScratchDir {
    fn new(parent: &Path, prefix: &str) -> io::Result<Self> {
        clear_dead_scratch(parent, named_by(prefix));
        Self::fresh(parent, prefix)
    }

    /// A new one, leaving whatever else is in `parent` alone.
    fn fresh(parent: &Path, prefix: &str) -> io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o700);
        let dir = tempfile::Builder::new().prefix(prefix).permissions(private).tempdir_in(parent)?;
        let tracked = crate::track_path(dir.path());
        let lock = File::open(dir.path())?;
        try_lock(&lock)?;
        Ok(Self { dir: Some(dir), lock, _tracked: tracked })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), tempfile::TempDir::path)
    }

    /// Give it the mode of a new output and rename it to `dest` (unless the process is being
    /// interrupted). On success, [`keep`](Self::keep) it.
    pub fn publish_to(&self, dest: &Path) -> io::Result<()> {
        self.lock.set_permissions(output_mode(0o777))?;
        crate::publish(|| std::fs::rename(self.path(), dest))
    }

    /// Stop removing it (it was renamed into place); its path.
    pub fn keep(mut self) -> PathBuf {
        self.dir.take().map(tempfile::TempDir::keep).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Make `p` (not what it points to) look as if its writer died minutes ago.
    fn age(p: &Path) {
        use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
        let old = std::time::SystemTime::now() - 2 * SCRATCH_GRACE;
        let secs = old.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let t = Timespec { tv_sec: secs, tv_nsec: 0 };
        utimensat(CWD, p, &Timestamps { last_access: t, last_modification: t }, AtFlags::SYMLINK_NOFOLLOW).unwrap();
    }

    #[test]
    fn only_old_unlocked_temporaries_of_the_same_target_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("out.tar");
        let (live, _t) = temp_file_beside(&target).unwrap();
        let kept_dir = temp_dir_beside(&target).unwrap();
        let dead = tmp.path().join(".out.tar.imgtool-AbC123");
        std::fs::write(&dead, "left by a killed writer").unwrap();
        let dead_dir = tmp.path().join(".out.tar.imgtool-dEf456");
        std::fs::create_dir(&dead_dir).unwrap();
        std::fs::write(dead_dir.join("x"), "x").unwrap();
        let young = tmp.path().join(".out.tar.imgtool-young1");
        std::fs::write(&young, "").unwrap();
        let other = tmp.path().join(".other.tar.imgtool-AbC123");
        std::fs::write(&other, "").unwrap();
        // Planted by someone else: a link to a file outside, and a FIFO (opening one for
        // reading would wait for a writer for ever).
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "not ours").unwrap();
        let link = tmp.path().join(".out.tar.imgtool-link00");
        std::os::unix::fs::symlink(outside.path().join("keep"), &link).unwrap();
        let fifo = tmp.path().join(".out.tar.imgtool-fifo00");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(0o600), 0).unwrap();
        for p in [live.path(), kept_dir.path(), &dead, &dead_dir, &other, &link, &fifo] {
            age(p);
        }
        let (_next, _t2) = temp_file_beside(&target).unwrap();
        assert!(live.path().exists() && kept_dir.path().exists(), "a live writer's temporary was removed");
        assert!(!dead.exists() && !dead_dir.exists(), "a dead writer's temporaries stayed");
        assert!(young.exists() && other.exists(), "a young one or another target's was removed");
        assert!(std::fs::symlink_metadata(&link).is_ok() && fifo.exists(), "what is neither a file nor a directory was removed");
        assert_eq!(std::fs::read_to_string(outside.path().join("keep")).unwrap(), "not ours");
    }

    #[test]
    fn private_dirs_of_live_processes_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let mine = private_dir(tmp.path()).unwrap();
        age(mine.path());
        let dead = tmp.path().join(".imgtool-Zz9999");
        std::fs::create_dir(&dead).unwrap();
        age(&dead);
        let second = private_dir(tmp.path()).unwrap();
        assert!(mine.path().is_dir() && second.path().is_dir());
        assert!(!dead.exists());
        let kept = second.keep();
        assert!(kept.is_dir());
    }

    #[test]
    fn temporaries_are_private_until_published_with_output_modes() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = temp_dir_beside(&tmp.path().join("lay")).unwrap();
        assert_eq!(mode(dir.path()), 0o700);
        dir.publish_to(&tmp.path().join("lay")).unwrap();
        let _ = dir.keep();
        assert_eq!(mode(&tmp.path().join("lay")), output_mode(0o777).mode());
        let (file, _t) = temp_file_beside(&tmp.path().join("out.tar")).unwrap();
        assert_eq!(mode(file.path()), 0o600);
        publish_file(file, &tmp.path().join("out.tar")).unwrap();
        assert_eq!(mode(&tmp.path().join("out.tar")), output_mode(0o666).mode());
    }

    #[test]
    fn the_spool_is_private_and_refuses_a_directory_made_by_another() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let s = spool_in(tmp.path()).unwrap();
        let base = s.path().parent().unwrap();
        assert_eq!(std::fs::metadata(base).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(s.path().file_name().unwrap().to_str().unwrap().starts_with(".imgtool-"));
        let shared = tempfile::tempdir().unwrap();
        std::fs::create_dir(shared.path().join(base.file_name().unwrap())).unwrap();
        std::fs::set_permissions(shared.path().join(base.file_name().unwrap()), std::fs::Permissions::from_mode(0o777)).unwrap();
        let fallback = spool_in(shared.path()).unwrap();
        assert_eq!(fallback.path().parent().unwrap(), shared.path(), "a world-writable spool base was used");
    }
}
