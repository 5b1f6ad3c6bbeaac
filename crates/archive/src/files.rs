use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use imgtool_core::{BuildContext, History, LayerProducer, NewLayer, rfc3339};
use imgtool_rootfs::{Kind, Root, Stat};

use crate::layer::{EntryKind, FileData, LayerOptions, TarEntry, write_layer};
use crate::{Error, PathFilter};

/// Normalise a destination path inside the image: no leading `/`, no `.`, and no `..`
/// (which would climb out of the root).
pub fn image_path(p: &str, place: &str) -> Result<String, Error> {
    let mut out = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(Error::UnsafePath { path: p.into(), place: place.into(), why: "'..' is not allowed in image paths".into() });
            }
            c => out.push(c),
        }
    }
    Ok(out.join("/"))
}

/// Directory entries for every ancestor of `path` (not `path` itself), root-owned, 0755.
fn parents(path: &str, mtime: u64, seen: &mut BTreeSet<String>) -> Vec<TarEntry> {
    let mut out = Vec::new();
    let mut acc = String::new();
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(c);
        if seen.insert(acc.clone()) {
            out.push(TarEntry::dir(acc.as_str(), 0o755, mtime));
        }
    }
    out
}

/// Ownership for files added from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Owner {
    /// uid 0, gid 0 (the default: reproducible whoever builds).
    #[default]
    Root,
    /// Keep the host's owners.
    Preserve,
    /// A fixed uid and gid.
    Fixed(u32, u32),
}

impl std::str::FromStr for Owner {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "preserve" {
            return Ok(Owner::Preserve);
        }
        let (u, g) = s.split_once(':').unwrap_or((s, s));
        match (u.parse(), g.parse()) {
            (Ok(u), Ok(g)) => Ok(Owner::Fixed(u, g)),
            _ => Err(format!("invalid owner {s:?}: expected UID[:GID] in numbers, or \"preserve\"")),
        }
    }
}

/// A layer made from a host file or directory tree: the seeds' `add_layer_path`.
#[derive(Debug, Clone)]
pub struct PathLayer {
    /// The file or directory on the host. A directory's contents are copied into `to`.
    pub from: PathBuf,
    /// The destination in the image. A file copied to a path ending in `/` keeps its name.
    pub to: String,
    /// Only paths matching these (`.dockerignore` syntax) are taken, when any are given.
    pub include: Vec<String>,
    /// Paths matching these are left out (`.dockerignore` syntax, `!` re-includes).
    pub exclude: Vec<String>,
    /// Who owns the files in the image.
    pub owner: Owner,
    /// A mode for every file and directory, instead of the host's.
    pub mode: Option<u32>,
    /// Copy extended attributes.
    pub xattrs: bool,
}

impl PathLayer {
    /// Copy `from` to `to` with defaults (root-owned, host modes, no filters).
    pub fn new(from: impl Into<PathBuf>, to: impl Into<String>) -> Self {
        Self { from: from.into(), to: to.into(), include: Vec::new(), exclude: Vec::new(), owner: Owner::Root, mode: None, xattrs: false }
    }

    /// The sorted entries this layer holds, with `mtime` on every one.
    pub fn entries(&self, mtime: u64) -> Result<Vec<TarEntry>, Error> {
        let place = format!("add_path {}", self.from.display());
        let root_meta = std::fs::metadata(&self.from)
            .map_err(crate::error::io(format!("reading {} (the source of an add_path layer)", self.from.display())))?;
        let exclude = PathFilter::new(&self.exclude)?;
        let include = PathFilter::new(&self.include)?;
        let mut dest = image_path(&self.to, &place)?;
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        if root_meta.is_file() {
            if self.to.ends_with('/') || dest.is_empty() {
                let name = self.from.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                dest = if dest.is_empty() { name } else { format!("{dest}/{name}") };
            }
            out.extend(parents(&dest, mtime, &mut seen));
            out.push(self.entry_for(Origin::Host(&self.from), &Stat::from(&root_meta), dest.into(), mtime, &mut HashMap::new())?);
            return Ok(out);
        }
        // Walk sorted by name so the layer's bytes do not depend on directory order.
        let mut walked = Vec::new();
        let walker = walkdir::WalkDir::new(&self.from).follow_links(false).sort_by_file_name().min_depth(1);
        let mut it = walker.into_iter();
        while let Some(item) = it.next() {
            let item = item.map_err(|e| Error::Io {
                context: format!("walking {}", self.from.display()),
                source: e.into_io_error().unwrap_or_else(|| std::io::Error::other("filesystem loop")),
            })?;
            // The name as bytes (it need not be UTF-8); filters see it as text.
            let rel = item.path().strip_prefix(&self.from).unwrap_or(item.path()).as_os_str().to_os_string();
            if !exclude.is_empty() && exclude.matches(&rel.to_string_lossy()) {
                if item.file_type().is_dir() && !exclude.has_exceptions() {
                    it.skip_current_dir();
                }
                continue;
            }
            walked.push((rel, item.path().to_path_buf(), item.file_type().is_dir()));
        }
        if !include.is_empty() {
            // Keep matches, and the directories that lead to them.
            let keep: Vec<&OsString> = walked.iter().filter(|(r, _, _)| include.matches(&r.to_string_lossy())).map(|(r, _, _)| r).collect();
            let mut needed: BTreeSet<&[u8]> = BTreeSet::new();
            for r in &keep {
                let r = r.as_bytes();
                for (i, b) in r.iter().enumerate() {
                    if *b == b'/' {
                        needed.insert(&r[..i]);
                    }
                }
                needed.insert(r);
            }
            let needed: BTreeSet<Vec<u8>> = needed.into_iter().map(<[u8]>::to_vec).collect();
            walked.retain(|(r, _, _)| needed.contains(r.as_bytes()));
        }
        if !dest.is_empty() {
            out.extend(parents(&dest, mtime, &mut seen));
            let mut top =
                self.entry_for(Origin::Host(&self.from), &Stat::from(&root_meta), dest.clone().into(), mtime, &mut HashMap::new())?;
            top.path = dest.clone().into();
            out.push(top);
        }
        let mut links = HashMap::new();
        for (rel, host, _) in walked {
            let path = imgtool_rootfs::join_path(&[OsStr::new(&dest), &rel]);
            let meta = std::fs::symlink_metadata(&host).map_err(crate::error::io(format!("reading {}", host.display())))?;
            if meta.file_type().is_socket() {
                tracing::warn!(path = %host.display(), "skipping a socket: tar cannot hold one");
                continue;
            }
            out.push(self.entry_for(Origin::Host(&host), &Stat::from(&meta), path, mtime, &mut links)?);
        }
        Ok(out)
    }

    fn entry_for(
        &self,
        origin: Origin<'_>,
        st: &Stat,
        path: OsString,
        mtime: u64,
        links: &mut HashMap<(u64, u64), OsString>,
    ) -> Result<TarEntry, Error> {
        let kind = match st.kind {
            Kind::Dir => EntryKind::Dir,
            Kind::Symlink => EntryKind::Symlink(origin.read_link()?),
            Kind::File => {
                let data = origin.data();
                if st.nlink > 1 {
                    if let Some(first) = links.get(&st.id) {
                        EntryKind::Hardlink(first.clone())
                    } else {
                        links.insert(st.id, path.clone());
                        EntryKind::File { data, size: st.size }
                    }
                } else {
                    EntryKind::File { data, size: st.size }
                }
            }
            Kind::Fifo => EntryKind::Fifo,
            Kind::Char => EntryKind::CharDevice(libc::major(st.rdev), libc::minor(st.rdev)),
            Kind::Block => EntryKind::BlockDevice(libc::major(st.rdev), libc::minor(st.rdev)),
            Kind::Socket => return Err(Error::Format { place: origin.shown(), why: "unsupported file type (a socket)".into() }),
        };
        let (uid, gid) = match self.owner {
            Owner::Root => (0, 0),
            Owner::Preserve => (st.uid as u64, st.gid as u64),
            Owner::Fixed(u, g) => (u as u64, g as u64),
        };
        let mode = match (self.mode, &kind) {
            (_, EntryKind::Symlink(_)) => 0o777,
            (Some(m), _) => m,
            (None, _) => st.mode,
        };
        let mut xattrs = Vec::new();
        // Only from a host folder the user named (an image root's attributes are its own).
        if let (true, false, Origin::Host(host)) = (self.xattrs, st.kind == Kind::Symlink, origin) {
            if let Ok(names) = xattr::list(host) {
                let mut names: Vec<_> = names.collect();
                names.sort();
                for n in names {
                    if let Ok(Some(v)) = xattr::get(host, &n) {
                        xattrs.push((n.to_string_lossy().into_owned(), v));
                    }
                }
            }
        }
        Ok(TarEntry { path, kind, mode, uid, gid, mtime, xattrs })
    }
}

/// Where an entry's bytes and link target are read from.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// A host path the user named (a pipeline's folder, a download).
    Host(&'a Path),
    /// A path inside a root (a build context, a stage, a prefix), read through the rooted
    /// path layer: never resolved on the host.
    Rooted(&'a Arc<Root>, &'a OsStr),
}

impl Origin<'_> {
    fn shown(&self) -> String {
        match self {
            Origin::Host(p) => p.display().to_string(),
            Origin::Rooted(r, rel) => r.path().join(rel).display().to_string(),
        }
    }

    fn read_link(&self) -> Result<OsString, Error> {
        let target = match self {
            Origin::Host(p) => std::fs::read_link(p)
                .map(|t| t.into_os_string().into_vec())
                .map_err(crate::error::io(format!("reading link {}", self.shown())))?,
            Origin::Rooted(r, rel) => {
                r.read_link(rel).map_err(|e| crate::error::io(format!("reading link {}", self.shown()))(e.into_io()))?
            }
        };
        Ok(OsString::from_vec(target))
    }

    fn data(&self) -> FileData {
        match self {
            Origin::Host(p) => FileData::Path(p.to_path_buf()),
            Origin::Rooted(r, rel) => FileData::Rooted(Arc::clone(r), rel.to_os_string()),
        }
    }
}

/// The tar entry for one file (`st` as `stat` says without following it) at `path` in the
/// image: its type, content, mode and link target as they are, owners as `owner` says. A
/// file whose inode is already in `links` becomes a hard link to that entry.
pub fn host_entry(
    origin: Origin<'_>,
    st: &Stat,
    path: OsString,
    mtime: u64,
    owner: Owner,
    links: &mut HashMap<(u64, u64), OsString>,
) -> Result<TarEntry, Error> {
    let mut cfg = PathLayer::new("", "");
    cfg.owner = owner;
    cfg.entry_for(origin, st, path, mtime, links)
}

fn history(created_by: String, epoch: i64) -> History {
    History { created: Some(rfc3339(epoch)), created_by: Some(created_by), ..Default::default() }
}

async fn spool(entries: Vec<TarEntry>, cx: &BuildContext, created_by: String) -> imgtool_core::Result<Vec<NewLayer>> {
    let opts = LayerOptions { compression: cx.compression, flavor: cx.image.flavor(), ..Default::default() };
    let dir = cx.spool_dir.clone();
    let spooled = tokio::task::spawn_blocking(move || write_layer(entries, &dir, opts))
        .await
        .map_err(|e| imgtool_core::Error::Unsupported(format!("layer writer stopped: {e}")))??;
    Ok(vec![NewLayer { layer: spooled.into_layer(), history: history(created_by, cx.epoch) }])
}

#[async_trait]
impl LayerProducer for PathLayer {
    fn describe(&self) -> String {
        // The host path's last part only: the history must not depend on where the build ran.
        let name = self.from.file_name().map_or_else(|| ".".into(), |n| n.to_string_lossy().into_owned());
        format!("imgtool add_path {name} {}", self.to)
    }

    async fn produce(&self, cx: &mut BuildContext) -> imgtool_core::Result<Vec<NewLayer>> {
        let me = self.clone();
        let mtime = cx.epoch.max(0) as u64;
        let entries = tokio::task::spawn_blocking(move || me.entries(mtime))
            .await
            .map_err(|e| imgtool_core::Error::Unsupported(format!("directory walk stopped: {e}")))??;
        spool(entries, cx, self.describe()).await
    }
}

/// One file of a contents layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContents {
    /// The bytes.
    pub data: Bytes,
    /// The mode (default 0644).
    pub mode: Option<u32>,
}

/// A layer made from a map of image path -> bytes: the seeds' `add_layer_contents`.
#[derive(Debug, Clone, Default)]
pub struct ContentsLayer {
    /// The files, by absolute path in the image.
    pub files: BTreeMap<String, FileContents>,
}

impl ContentsLayer {
    /// A contents layer of files with default modes.
    pub fn new<K: Into<String>, V: Into<Bytes>>(files: impl IntoIterator<Item = (K, V)>) -> Self {
        Self { files: files.into_iter().map(|(k, v)| (k.into(), FileContents { data: v.into(), mode: None })).collect() }
    }

    /// The sorted entries, parents first.
    pub fn entries(&self, mtime: u64) -> Result<Vec<TarEntry>, Error> {
        let mut files = BTreeMap::new();
        for (p, c) in &self.files {
            let path = image_path(p, "add_contents")?;
            if path.is_empty() {
                return Err(Error::UnsafePath { path: p.clone(), place: "add_contents".into(), why: "a file needs a name".into() });
            }
            files.insert(path, c);
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (path, c) in files {
            out.extend(parents(&path, mtime, &mut seen));
            out.push(TarEntry {
                kind: EntryKind::File { data: FileData::Bytes(c.data.clone()), size: c.data.len() as u64 },
                path: path.into(),
                mode: c.mode.unwrap_or(0o644),
                uid: 0,
                gid: 0,
                mtime,
                xattrs: Vec::new(),
            });
        }
        // Parents were emitted as encountered; sort so a directory precedes its contents.
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

#[async_trait]
impl LayerProducer for ContentsLayer {
    fn describe(&self) -> String {
        let names: Vec<&str> = self.files.keys().map(String::as_str).collect();
        format!("imgtool add_contents {}", names.join(" "))
    }

    async fn produce(&self, cx: &mut BuildContext) -> imgtool_core::Result<Vec<NewLayer>> {
        let entries = self.entries(cx.epoch.max(0) as u64)?;
        spool(entries, cx, self.describe()).await
    }
}

/// Entries for `files` (paths relative to `root`, `/`-separated) placed under `dest` in the
/// image, each preceded by its parent directories (as `root` has them, made root-owned 0755
/// above it). Used to turn part of a tree, such as one conda package's files in a prefix,
/// into a layer; everything is read through the rooted path layer. The order depends only
/// on the paths.
pub fn entries_for_files(root: &Path, files: &[String], dest: &str, mtime: u64, owner: Owner) -> Result<Vec<TarEntry>, Error> {
    let place = root.display().to_string();
    let rooted = Arc::new(Root::open(root).map_err(|e| crate::error::io(format!("opening {place}"))(e.into_io()))?);
    let mut cfg = PathLayer::new(root, dest);
    cfg.owner = owner;
    let dest = image_path(dest, "entries_for_files")?;
    let mut rels: Vec<String> = files.iter().map(|f| image_path(f, &place)).collect::<Result<_, _>>()?;
    rels.sort();
    rels.dedup();
    let join = |rel: &str| if dest.is_empty() { rel.to_string() } else { format!("{dest}/{rel}") };
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    let mut links = HashMap::new();
    // Directories above `dest` belong to no package.
    if !dest.is_empty() {
        out.extend(parents(&format!("{dest}/x"), mtime, &mut seen));
    }
    let stat = |rel: &str| -> Result<Stat, Error> {
        let fail = |e: imgtool_rootfs::Error| crate::error::io(format!("reading {place}/{rel}"))(e.into_io());
        rooted.stat(rel, false).map_err(fail)?.ok_or_else(|| {
            fail(imgtool_rootfs::Error::Io { op: "stat", path: format!("/{rel}"), source: std::io::ErrorKind::NotFound.into() })
        })
    };
    for rel in rels {
        let comps: Vec<&str> = rel.split('/').collect();
        for i in 1..comps.len() {
            let dir_rel = comps[..i].join("/");
            let path = join(&dir_rel);
            if seen.insert(path.clone()) {
                let st = stat(&dir_rel)?;
                out.push(cfg.entry_for(Origin::Rooted(&rooted, OsStr::new(&dir_rel)), &st, path.into(), mtime, &mut links)?);
            }
        }
        let path = join(&rel);
        if !seen.insert(path.clone()) {
            continue;
        }
        let st = stat(&rel)?;
        out.push(cfg.entry_for(Origin::Rooted(&rooted, OsStr::new(&rel)), &st, path.into(), mtime, &mut links)?);
    }
    Ok(out)
}
