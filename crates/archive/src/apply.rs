//! One layer tar applied to a root, every path through the rooted path layer.
//!
//! Paths are resolved inside the root as the container will see them (symlinks followed
//! inside, `..` refused in entry names); the last component of an entry is never followed,
//! and metadata is set on the inode just made (owner, then mode, then xattrs, then times).
//! A directory's metadata is applied after the whole layer, and only if the name still
//! holds the very directory the layer made: a later entry that swaps it for a symlink
//! cannot redirect the chmod. Whiteouts hide only what lower layers made.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{self, Read};
use std::rc::Rc;

use imgtool_rootfs::{Dir, Kind, Meta, Node, Root};

use crate::Error;
use crate::extract::{Devices, ExtractOptions};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
const EEXIST: i32 = 17;
/// How deep an opaque whiteout looks for what its layer made (each level is a frame).
const MAX_PRUNE_DEPTH: usize = 1024;

/// The entry's path as components, leading `/` and `./` dropped; `..` is refused.
pub(crate) fn components(raw: &[u8], place: &str) -> Result<Vec<String>, Error> {
    let s = String::from_utf8_lossy(raw);
    let mut out = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(Error::UnsafePath { path: s.into_owned(), place: place.into(), why: "'..' in a tar entry path".into() }),
            c => out.push(c.to_string()),
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
    dirs: Vec<(Vec<String>, Id, Meta)>,
    /// The last parent resolved, forgotten whenever anything is removed.
    last: Option<(Vec<String>, Rc<Dir>, Id)>,
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
        // The guard keeps a header from making the tar crate read gigabytes into memory.
        let mut ar = tar::Archive::new(crate::Bounded::new(tar));
        let bad = |e: io::Error| Error::Format { place: self.place.into(), why: format!("not a readable layer tar: {e}") };
        for entry in ar.entries().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            self.entry(entry)?;
        }
        self.finish_dirs()
    }

    /// The parent directory of an entry, made if missing (and what is made is recorded).
    fn parent(&mut self, dirs: &[String]) -> Result<(Rc<Dir>, Id), Error> {
        if let Some((p, d, id)) = &self.last
            && p == dirs
        {
            return Ok((d.clone(), *id));
        }
        let made = &mut self.made;
        let dir = self
            .root
            .make_dirs(&dirs.join("/"), &mut |d, n| {
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
    fn fresh<T>(&mut self, dir: &Dir, name: &str, make: impl Fn() -> imgtool_rootfs::Result<T>) -> Result<T, Error> {
        match make() {
            Err(e) if e.errno() == Some(EEXIST) => {
                self.last = None;
                dir.remove_all(name).map_err(self.fail())?;
                make().map_err(self.fail())
            }
            r => r.map_err(self.fail()),
        }
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), Error> {
        // Before the name is used: the tar crate passes over a malformed PAX record that Go
        // (and so Docker, containerd, skopeo) refuses, and would then use another name.
        let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if let Some(exts) = entry.pax_extensions().map_err(|e| self.bad_pax(&shown, e.to_string()))? {
            for ext in exts {
                let ext = ext.map_err(|e| self.bad_pax(&shown, e.to_string()))?;
                pax_record_ok(ext.key_bytes(), ext.value_bytes()).map_err(|why| self.bad_pax(&shown, why))?;
            }
        }
        let raw = c_string(&entry.path_bytes()).to_vec();
        let parts = components(&raw, self.place)?;
        let Some((name, dirs)) = parts.split_last() else { return Ok(()) };
        let ty = entry.header().entry_type();
        if matches!(ty, tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName | tar::EntryType::GNULongLink)
        {
            return Ok(());
        }
        let (parent, pid) = self.parent(dirs)?;
        if name == OPAQUE && !self.opts.package {
            self.last = None;
            return self.opaque(&parent, pid);
        }
        if let Some(victim) = name.strip_prefix(WHITEOUT).filter(|_| !self.opts.package) {
            if victim.is_empty() || victim == "." || victim == ".." {
                return Err(self.unsafe_path(&raw, "a whiteout must name an entry"));
            }
            // Whiteouts hide what lower layers made, never what this layer made.
            if !self.made.contains(&(pid, victim.into())) {
                self.last = None;
                parent.remove_all(victim).map_err(self.fail())?;
            }
            return Ok(());
        }
        let meta = self.meta(&mut entry)?;
        let h = entry.header().clone();
        match ty {
            tar::EntryType::Directory => {
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
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut f = self.fresh(&parent, name, || parent.create_file(name))?;
                io::copy(&mut entry, &mut f).map_err(|e| crate::error::io(format!("writing {} in {}", parent.path(), self.place))(e))?;
                parent.set_meta(name, &meta, Some(&f)).map_err(self.fail())?;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().map(|l| c_string(&l).to_vec()).unwrap_or_default();
                self.fresh(&parent, name, || parent.symlink(name, &target))?;
                parent.set_meta(name, &Meta { mode: None, xattrs: Vec::new(), ..meta }, None).map_err(self.fail())?;
            }
            tar::EntryType::Link => {
                self.hard_link(&entry.link_name_bytes().map(|l| c_string(&l).to_vec()).unwrap_or_default(), &raw, &parent, pid, name)?
            }
            tar::EntryType::Fifo => {
                self.fresh(&parent, name, || parent.mknod(name, Node::Fifo))?;
                parent.set_meta(name, &meta, None).map_err(self.fail())?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                let what = String::from_utf8_lossy(&raw).into_owned();
                match self.opts.devices {
                    Devices::Refuse => return Err(self.unsafe_path(&raw, "device nodes are not allowed here")),
                    Devices::Skip => {
                        tracing::warn!(path = %what, "skipping a device node");
                        return Ok(());
                    }
                    Devices::Create => {
                        let (major, minor) = (h.device_major().ok().flatten().unwrap_or(0), h.device_minor().ok().flatten().unwrap_or(0));
                        let node = if ty == tar::EntryType::Char { Node::Char(major, minor) } else { Node::Block(major, minor) };
                        self.fresh(&parent, name, || parent.mknod(name, node))?;
                        parent.set_meta(name, &meta, None).map_err(self.fail())?;
                    }
                }
            }
            other => {
                tracing::warn!(path = %String::from_utf8_lossy(&raw), "skipping a tar entry of type {other:?}");
                return Ok(());
            }
        }
        self.made.insert((pid, name.into()));
        Ok(())
    }

    fn bad_pax(&self, entry: &str, why: String) -> Error {
        Error::Format { place: self.place.into(), why: format!("{entry}: a PAX header Go's archive/tar refuses: {why}") }
    }

    /// What the header says to set: owner (when asked), mode, xattrs (when asked), mtime.
    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>) -> Result<Meta, Error> {
        let mut xattrs = Vec::new();
        if self.opts.xattrs
            && let Ok(Some(exts)) = entry.pax_extensions()
        {
            for ext in exts.flatten() {
                if let Some(name) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                    xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
        let h = entry.header();
        let owner = match (self.opts.same_owner, h.uid(), h.gid()) {
            (true, Ok(u), Ok(g)) => match (u32::try_from(u), u32::try_from(g)) {
                (Ok(u), Ok(g)) => Some((u, g)),
                _ => return Err(self.unsafe_path(&entry.path_bytes(), format!("owner {u}:{g} is out of range"))),
            },
            _ => None,
        };
        let mtime = h.mtime().ok().and_then(|m| i64::try_from(m).ok());
        let bits = if self.opts.package { 0o777 } else { 0o7777 };
        Ok(Meta { owner, mode: Some(h.mode().unwrap_or(0o644) & bits), xattrs, mtime })
    }

    fn hard_link(&mut self, target: &[u8], raw: &[u8], parent: &Dir, pid: Id, name: &str) -> Result<(), Error> {
        let tparts = components(target, self.place)?;
        let Some((tname, tdirs)) = tparts.split_last() else { return Err(self.unsafe_path(raw, "a hard link with no target")) };
        let missing = || self.unsafe_path(raw, format!("hard link target {} is not in the image", String::from_utf8_lossy(target)));
        let tparent = self.root.dir(&tdirs.join("/")).map_err(self.fail())?.ok_or_else(missing)?;
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
            let Some(parent) = self.root.dir(&dirs.join("/")).map_err(self.fail())? else { continue };
            let Some(d) = parent.open_dir(name).map_err(self.fail())? else { continue };
            if d.id().map_err(self.fail())? != id {
                continue;
            }
            parent.set_meta(name, &meta, None).map_err(self.fail())?;
        }
        Ok(())
    }
}

/// A PAX record as Go's archive/tar accepts it: a key; no NUL in a path, link path, user
/// or group name, nor in any other key; times and numbers that parse.
fn pax_record_ok(key: &[u8], value: &[u8]) -> Result<(), String> {
    let shown = String::from_utf8_lossy(key);
    if key.is_empty() {
        return Err("a record with no key".into());
    }
    let names = [&b"path"[..], b"linkpath", b"uname", b"gname"];
    if names.contains(&key) && value.contains(&0) || !names.contains(&key) && key.contains(&0) {
        return Err(format!("a NUL in the record {shown:?}"));
    }
    let v = std::str::from_utf8(value).unwrap_or("");
    let int = |v: &str| v.parse::<i64>().is_ok();
    let ok = match key {
        b"mtime" | b"atime" | b"ctime" => {
            let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
            int(secs) && frac.bytes().all(|b| b.is_ascii_digit())
        }
        b"size" => v.parse::<i64>().is_ok_and(|n| n >= 0),
        b"uid" | b"gid" => int(v),
        _ => true,
    };
    if ok { Ok(()) } else { Err(format!("{shown}={v:?} is not a valid value")) }
}

/// A name up to its first NUL, as Go's archive/tar reads names (a GNU long name may carry
/// one, and what follows it is not part of the name).
fn c_string(name: &[u8]) -> &[u8] {
    name.split(|b| *b == 0).next().unwrap_or(name)
}
