//! One layer tar applied to a root, every path through the rooted path layer.
//!
//! Paths are resolved inside the root as the container will see them (symlinks followed
//! inside, `..` refused in entry names); the last component of an entry is never followed,
//! and metadata is set on the inode just made (owner, then mode, then xattrs, then times).
//! A directory's metadata is applied after the whole layer, and only if the name still
//! holds the very directory the layer made: a later entry that swaps it for a symlink
//! cannot redirect the chmod. Whiteouts hide only what lower layers made.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;

use imgtool_rootfs::{Dir, Kind, Meta, Node, Root, join_path};

use crate::Error;
use crate::extract::{Devices, ExtractOptions};
use crate::read::{CopyError, Member, MemberKind, TarError, TarReader};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
const EEXIST: i32 = 17;
/// How deep an opaque whiteout looks for what its layer made (each level is a frame).
const MAX_PRUNE_DEPTH: usize = 1024;

/// The entry's path as components, leading `/` and `./` dropped; `..` is refused.
pub(crate) fn components(raw: &[u8], place: &str) -> Result<Vec<OsString>, Error> {
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                let path = String::from_utf8_lossy(raw).into_owned();
                return Err(Error::UnsafePath { path, place: place.into(), why: "'..' in a tar entry path".into() });
            }
            c => out.push(OsStr::from_bytes(c).to_owned()),
        }
    }
    Ok(out)
}

type Id = (u64, u64);

pub(crate) struct Applier<'a> {
    root: &'a Root,
    opts: ExtractOptions,
    place: &'a str,
    /// (parent directory, name) of everything this layer put in place.
    made: HashSet<(Id, OsString)>,
    /// Directories whose metadata waits for the end of the layer: path, identity, metadata.
    dirs: Vec<(Vec<OsString>, Id, Meta)>,
    /// The last parent resolved, forgotten whenever anything is removed.
    last: Option<(Vec<OsString>, Rc<Dir>, Id)>,
}

impl<'a> Applier<'a> {
    pub(crate) fn new(root: &'a Root, opts: ExtractOptions, place: &'a str) -> Self {
        Applier { root, opts, place, made: HashSet::new(), dirs: Vec::new(), last: None }
    }

    fn fail(&self) -> impl Fn(imgtool_rootfs::Error) -> Error + '_ {
        move |source| Error::Extract { place: self.place.to_string(), source }
    }

    fn unsafe_path(&self, raw: &[u8], why: impl Into<String>) -> Error {
        Error::UnsafePath { path: String::from_utf8_lossy(raw).into_owned(), place: self.place.into(), why: why.into() }
    }

    pub(crate) fn apply(mut self, tar: impl Read) -> Result<(), Error> {
        let mut tar = TarReader::new(tar);
        while let Some(member) = tar.next_member().map_err(|e| self.bad_tar(e))? {
            if imgtool_core::is_interrupted() {
                return Err(Error::Format { place: self.place.into(), why: "interrupted".into() });
            }
            self.entry(&mut tar, member)?;
        }
        self.finish_dirs()
    }

    fn bad_tar(&self, e: TarError) -> Error {
        Error::Format { place: self.place.into(), why: format!("not a layer Go's archive/tar reads: {e}") }
    }

    /// The parent directory of an entry, made if missing (and what is made is recorded).
    fn parent(&mut self, dirs: &[OsString]) -> Result<(Rc<Dir>, Id), Error> {
        if let Some((p, d, id)) = &self.last
            && p == dirs
        {
            return Ok((d.clone(), *id));
        }
        let made = &mut self.made;
        let dir = self
            .root
            .make_dirs(join_path(dirs), &mut |d, n| {
                if let Ok(id) = d.id() {
                    made.insert((id, n.into()));
                }
            })
            .map_err(|source| Error::Extract { place: self.place.to_string(), source })?;
        let id = dir.id().map_err(self.fail())?;
        let dir = Rc::new(dir);
        self.last = Some((dirs.to_vec(), dir.clone(), id));
        Ok((dir, id))
    }

    /// Run `make`; if the name is taken, clear it (whatever it is, never following it) and
    /// run `make` once more.
    fn fresh<T>(&mut self, dir: &Dir, name: &OsStr, make: impl Fn() -> imgtool_rootfs::Result<T>) -> Result<T, Error> {
        match make() {
            Err(e) if e.errno() == Some(EEXIST) => {
                self.last = None;
                dir.remove_all(name).map_err(self.fail())?;
                make().map_err(self.fail())
            }
            r => r.map_err(self.fail()),
        }
    }

    fn entry<R: Read>(&mut self, tar: &mut TarReader<R>, m: Member) -> Result<(), Error> {
        let kind = m.kind();
        if kind == MemberKind::GlobalHeader {
            tracing::debug!(place = %self.place, "a PAX global header, applied to nothing (as Go and Docker read it)");
            return Ok(());
        }
        let raw = m.path.clone();
        let parts = components(&raw, self.place)?;
        let Some((name, dirs)) = parts.split_last() else { return Ok(()) };
        let (parent, pid) = self.parent(dirs)?;
        let name = name.as_os_str();
        if name.as_bytes() == OPAQUE.as_bytes() && !self.opts.package {
            self.last = None;
            return self.opaque(&parent, pid);
        }
        if let Some(victim) = name.as_bytes().strip_prefix(WHITEOUT.as_bytes()).filter(|_| !self.opts.package) {
            if matches!(victim, b"" | b"." | b"..") {
                return Err(self.unsafe_path(&raw, "a whiteout must name an entry"));
            }
            // Whiteouts hide what lower layers made, never what this layer made.
            let victim = OsStr::from_bytes(victim);
            if !self.made.contains(&(pid, victim.into())) {
                self.last = None;
                parent.remove_all(victim).map_err(self.fail())?;
            }
            return Ok(());
        }
        let meta = self.meta(&m)?;
        match kind {
            MemberKind::Dir => {
                match parent.stat(name).map_err(self.fail())? {
                    Some(st) if st.kind == Kind::Dir => {}
                    Some(_) => {
                        self.last = None;
                        parent.remove_all(name).map_err(self.fail())?;
                        parent.mkdir(name, 0o700).map_err(self.fail())?;
                    }
                    None => parent.mkdir(name, 0o700).map_err(self.fail())?,
                }
                let id = match parent.open_dir(name).map_err(self.fail())? {
                    Some(d) => d.id().map_err(self.fail())?,
                    None => return Err(self.unsafe_path(&raw, "the directory vanished while it was made")),
                };
                self.dirs.push((parts.clone(), id, meta));
            }
            MemberKind::File => {
                let f = self.fresh(&parent, name, || parent.create_file(name))?;
                tar.write_into(&f).map_err(|e| match e {
                    CopyError::Tar(e) => self.bad_tar(e),
                    CopyError::Write(e) => {
                        crate::error::io(format!("writing {}/{} in {}", parent.path(), name.to_string_lossy(), self.place))(e)
                    }
                })?;
                parent.set_meta(name, &meta, Some(&f)).map_err(self.fail())?;
            }
            MemberKind::Symlink => {
                self.fresh(&parent, name, || parent.symlink(name, &m.link))?;
                parent.set_meta(name, &Meta { mode: None, xattrs: Vec::new(), ..meta }, None).map_err(self.fail())?;
            }
            MemberKind::HardLink => self.hard_link(&m.link, &raw, &parent, pid, name)?,
            MemberKind::Fifo => {
                self.fresh(&parent, name, || parent.mknod(name, Node::Fifo))?;
                parent.set_meta(name, &meta, None).map_err(self.fail())?;
            }
            MemberKind::Char | MemberKind::Block => {
                let what = String::from_utf8_lossy(&raw).into_owned();
                match self.opts.devices {
                    Devices::Refuse => return Err(self.unsafe_path(&raw, "device nodes are not allowed here")),
                    Devices::Skip => {
                        tracing::warn!(path = %what, "skipping a device node");
                        return Ok(());
                    }
                    Devices::Create => {
                        let (Ok(major), Ok(minor)) = (u32::try_from(m.dev_major), u32::try_from(m.dev_minor)) else {
                            return Err(self.unsafe_path(&raw, format!("device numbers {}:{} are out of range", m.dev_major, m.dev_minor)));
                        };
                        let node = if kind == MemberKind::Char { Node::Char(major, minor) } else { Node::Block(major, minor) };
                        self.fresh(&parent, name, || parent.mknod(name, node))?;
                        parent.set_meta(name, &meta, None).map_err(self.fail())?;
                    }
                }
            }
            MemberKind::GlobalHeader => return Ok(()),
            MemberKind::Other(flag) => {
                tracing::warn!(path = %String::from_utf8_lossy(&raw), "skipping a tar entry of type {:?}", flag as char);
                return Ok(());
            }
        }
        self.made.insert((pid, name.into()));
        Ok(())
    }

    /// What the header says to set: owner (when asked), mode, xattrs (when asked), mtime.
    fn meta(&self, m: &Member) -> Result<Meta, Error> {
        let xattrs = if self.opts.xattrs {
            m.xattrs().map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.to_vec())).collect()
        } else {
            Vec::new()
        };
        let owner = match (u32::try_from(m.uid), u32::try_from(m.gid)) {
            _ if !self.opts.same_owner => None,
            (Ok(u), Ok(g)) => Some((u, g)),
            _ => return Err(self.unsafe_path(&m.path, format!("owner {}:{} is out of range", m.uid, m.gid))),
        };
        let bits = if self.opts.package { 0o777 } else { 0o7777 };
        Ok(Meta { owner, mode: Some((m.mode & bits) as u32), xattrs, mtime: Some(m.mtime) })
    }

    fn hard_link(&mut self, target: &[u8], raw: &[u8], parent: &Dir, pid: Id, name: &OsStr) -> Result<(), Error> {
        let tparts = components(target, self.place)?;
        let Some((tname, tdirs)) = tparts.split_last() else { return Err(self.unsafe_path(raw, "a hard link with no target")) };
        let missing = || self.unsafe_path(raw, format!("hard link target {} is not in the image", String::from_utf8_lossy(target)));
        let tparent = self.root.dir(join_path(tdirs)).map_err(self.fail())?.ok_or_else(missing)?;
        let st = tparent.stat(tname).map_err(self.fail())?.ok_or_else(missing)?;
        if st.kind == Kind::Dir {
            return Err(self.unsafe_path(raw, "a hard link to a directory"));
        }
        if tparent.id().map_err(self.fail())? == pid && tname == name {
            return Ok(());
        }
        self.fresh(parent, name, || parent.hard_link(name, &tparent, tname))
    }

    /// An opaque whiteout: everything in `dir` that lower layers made goes; what this
    /// layer made stays, wherever in the tar its entries come, with the directories that
    /// lead to it.
    fn opaque(&self, dir: &Dir, id: Id) -> Result<(), Error> {
        self.prune(dir, id, 0).map(|_| ())
    }

    /// Remove from `d` what this layer did not make; whether anything is left.
    fn prune(&self, d: &Dir, did: Id, depth: usize) -> Result<bool, Error> {
        if depth > MAX_PRUNE_DEPTH {
            return Err(Error::Format {
                place: self.place.into(),
                why: format!("{}: directories nested more than {MAX_PRUNE_DEPTH} deep under an opaque whiteout", d.path()),
            });
        }
        let mut kept = false;
        for n in d.names().map_err(self.fail())? {
            let keep = match d.open_dir(&n).map_err(self.fail())? {
                Some(sub) => {
                    let sid = sub.id().map_err(self.fail())?;
                    self.prune(&sub, sid, depth + 1)? || self.made.contains(&(did, n.clone()))
                }
                None => self.made.contains(&(did, n.clone())),
            };
            if keep {
                kept = true;
            } else {
                d.remove_all(&n).map_err(self.fail())?;
            }
        }
        Ok(kept)
    }

    /// Directory metadata, deepest first, on the directories this layer made and only if
    /// each name still holds that same directory.
    fn finish_dirs(mut self) -> Result<(), Error> {
        self.last = None;
        for (parts, id, meta) in std::mem::take(&mut self.dirs).into_iter().rev() {
            let Some((name, dirs)) = parts.split_last() else { continue };
            let Some(parent) = self.root.dir(join_path(dirs)).map_err(self.fail())? else { continue };
            let Some(d) = parent.open_dir(name).map_err(self.fail())? else { continue };
            if d.id().map_err(self.fail())? != id {
                continue;
            }
            parent.set_meta(name, &meta, None).map_err(self.fail())?;
        }
        Ok(())
    }
}
