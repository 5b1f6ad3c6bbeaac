//! The build context: which files a `COPY` names, `.dockerignore`, and content hashes for
//! the cache.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use imgtool_archive::PathFilter;
use imgtool_core::Hasher;
use imgtool_rootfs::{Kind, Root, Stat, Visit, join_path};

/// One source of a `COPY`: where it is and how the instruction named it.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// Relative to the source root, `/`-separated ("" for the root itself); bytes, as a
    /// wildcard may match a name that is not UTF-8.
    pub rel: OsString,
    /// Where it is in the root: `rel` with its symlinks resolved inside the root (for a
    /// link copied as a link, `rel` itself).
    pub at: OsString,
    /// Whether it is a directory (after following a symlink named directly).
    pub is_dir: bool,
    /// A symlink that leads nowhere inside the tree: copied as the link it is, and never
    /// opened or read through.
    pub link: bool,
}

/// The most of a Dockerfile or `.dockerignore` read from a context.
pub const CONTEXT_FILE_LIMIT: u64 = 16 << 20;

/// Read a file the context holds (its `Dockerfile`, `.dockerignore`): a regular file, not
/// a link (it could lead to a host secret that an error would then quote), at most
/// [`CONTEXT_FILE_LIMIT`] bytes; `Ok(None)` when missing.
pub fn read_context_file(path: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let f = match open_regular(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(std::io::Error::other(format!("{} is a symlink; give the file itself", path.display())));
        }
        Err(e) => return Err(e),
    };
    let mut buf = Vec::new();
    f.take(CONTEXT_FILE_LIMIT + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > CONTEXT_FILE_LIMIT {
        return Err(std::io::Error::other(format!("{} is larger than {} MiB", path.display(), CONTEXT_FILE_LIMIT >> 20)));
    }
    String::from_utf8(buf).map(Some).map_err(|_| std::io::Error::other(format!("{} is not UTF-8 text", path.display())))
}

/// Open `host` for reading only if it is a regular file, never following a symlink and
/// never blocking on a FIFO or touching a device.
pub(crate) fn open_regular(host: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(host)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other(format!("{} is not a regular file", host.display())));
    }
    Ok(f)
}

/// A tree files are copied from: the build context (with `.dockerignore`) or a stage's or
/// image's filesystem (`COPY --from`). Everything in it is reached through the rooted path
/// layer.
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    pub root: Arc<Root>,
    pub ignore: Option<PathFilter>,
    /// How errors name it ("the build context", "stage build").
    pub name: String,
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// `a/./b/../c` -> `a/c`; `None` when `..` climbs above the root.
pub(crate) fn clean(p: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() { b.to_string() } else { format!("{a}/{b}") }
}

impl Tree {
    /// The tree at `path`, named `name` in errors.
    pub fn open(path: &Path, name: impl Into<String>) -> Result<Self, String> {
        let root = Root::open(path).map_err(|e| e.to_string())?;
        Ok(Self { root: Arc::new(root), ignore: None, name: name.into() })
    }

    pub fn context(root: &Path) -> Result<Self, String> {
        let ignore = match read_context_file(&root.join(".dockerignore")) {
            Ok(Some(text)) => Some(PathFilter::from_dockerignore(&text).map_err(|e| format!(".dockerignore: {e}"))?),
            Ok(None) => None,
            Err(e) => return Err(format!("reading .dockerignore: {e}")),
        };
        Ok(Self { ignore, ..Self::open(root, "the build context")? })
    }

    pub fn ignored(&self, rel: &str) -> bool {
        !rel.is_empty() && self.ignore.as_ref().is_some_and(|f| f.matches(rel))
    }

    fn stat(&self, at: impl AsRef<OsStr>, follow: bool) -> Result<Option<Stat>, String> {
        self.root.stat(at, follow).map_err(|e| e.to_string())
    }

    /// Follow symlinks in `rel` inside the root, the way a container would see it, one
    /// component at a time so that `.dockerignore` applies to every name on the way: where
    /// it is, free of symlinks. `None` if a component is missing or ignored.
    fn resolve(&self, rel: &OsStr) -> Option<OsString> {
        let split = |p: &[u8]| p.split(|b| *b == b'/').filter(|c| !c.is_empty()).rev().map(<[u8]>::to_vec).collect::<Vec<_>>();
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut todo = split(rel.as_bytes());
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            match c.as_slice() {
                b"." => continue,
                b".." => {
                    parts.pop();
                    continue;
                }
                _ => {}
            }
            let mut within = parts.join(&b'/');
            if !within.is_empty() {
                within.push(b'/');
            }
            within.extend_from_slice(&c);
            let within = OsString::from_vec(within);
            // An ignored file is not in the context at all (BuildKit never sends it), so a
            // link to it leads nowhere.
            if self.ignored(&within.to_string_lossy()) {
                return None;
            }
            let st = self.stat(&within, false).ok()??;
            if st.kind == Kind::Symlink {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                let t = self.root.read_link(&within).ok()?;
                if t.starts_with(b"/") {
                    parts.clear();
                }
                todo.extend(split(&t));
            } else {
                parts.push(c);
            }
        }
        Some(OsString::from_vec(parts.join(&b'/')))
    }

    /// The sources a `COPY` word names: a path or a glob, relative to the root.
    pub fn sources(&self, word: &str) -> Result<Vec<Source>, String> {
        let Some(rel) = clean(word) else {
            return Err(format!("{word} is outside {}: sources must be inside it (no leading ..)", self.name));
        };
        if has_glob(&rel) {
            let glob = globset::GlobBuilder::new(&rel)
                .literal_separator(true)
                .build()
                .map_err(|e| format!("{word}: not a valid pattern: {e}"))?
                .compile_matcher();
            let mut out = Vec::new();
            for (r, _, st) in self.walk(OsStr::new(""))? {
                // Patterns are text: a name that is not UTF-8 is matched as it reads.
                if !glob.is_match(r.to_string_lossy().as_ref()) {
                    continue;
                }
                // A matched symlink is followed inside the root only; one that leads
                // nowhere there is copied as the link it is, never read through.
                let resolved = if st.kind == Kind::Symlink { self.resolve(&r) } else { Some(r.clone()) };
                match resolved.and_then(|at| self.stat(&at, true).ok().flatten().map(|st| (at, st))) {
                    Some((at, st)) => out.push(Source { rel: r, at, is_dir: st.kind == Kind::Dir, link: false }),
                    None => out.push(Source { at: r.clone(), rel: r, is_dir: false, link: true }),
                }
            }
            if out.is_empty() {
                return Err(format!("{word}: no files in {} match", self.name));
            }
            return Ok(out);
        }
        if self.ignored(&rel) {
            return Err(format!("{word} is excluded by .dockerignore"));
        }
        let missing = || format!("{word}: no such file or directory in {}", self.name);
        let at = self.resolve(OsStr::new(&rel)).ok_or_else(missing)?;
        let st = self.stat(&at, true)?.ok_or_else(missing)?;
        Ok(vec![Source { rel: rel.into(), at, is_dir: st.kind == Kind::Dir, link: false }])
    }

    /// Everything under `rel` (a directory), sorted, `.dockerignore` applied; each with its
    /// path relative to the root as named, where it is in the root, and what `stat` says
    /// of it (not following it).
    /// Names are bytes: they need not be UTF-8 (`.dockerignore` sees them as text).
    pub fn walk(&self, rel: &OsStr) -> Result<Vec<(OsString, OsString, Stat)>, String> {
        let shown = rel.to_string_lossy();
        let base = if rel.is_empty() {
            OsString::new()
        } else {
            self.resolve(rel).ok_or_else(|| format!("{shown}: no such directory in {}", self.name))?
        };
        let has_exceptions = self.ignore.as_ref().is_some_and(PathFilter::has_exceptions);
        let listed = self
            .root
            .walk(&base, &mut |within, st| {
                if !self.ignored(&join(&shown, &within.to_string_lossy())) {
                    Visit::Keep
                } else if st.kind == Kind::Dir && has_exceptions {
                    Visit::Hide
                } else {
                    Visit::Prune
                }
            })
            .map_err(|e| format!("walking {} in {}: {e}", if rel.is_empty() { "/" } else { &shown }, self.name))?;
        Ok(listed.into_iter().map(|(within, st)| (join_path(&[rel, &within]), join_path(&[&base, &within]), st)).collect())
    }

    /// A digest of what `sources` hold (names, types, modes, contents, link targets), for
    /// the cache key of the step that copies them.
    pub fn hash(&self, sources: &[Source], hashes: &mut FileHashes) -> Result<String, String> {
        let mut h = Hasher::sha256();
        for s in sources {
            let st = self.stat(&s.at, !s.link)?.ok_or_else(|| format!("{}: no longer in {}", s.rel.to_string_lossy(), self.name))?;
            let mut items = vec![(s.rel.clone(), s.at.clone(), st)];
            if s.is_dir {
                items.extend(self.walk(&s.rel)?);
            }
            for (rel, at, st) in items {
                let kind = match st.kind {
                    Kind::Dir => "d".to_string(),
                    Kind::Symlink => {
                        format!("l{}", self.root.read_link(&at).map(|t| String::from_utf8_lossy(&t).into_owned()).unwrap_or_default())
                    }
                    Kind::File => format!("f{}", hashes.of(&self.root, &at, &st)?),
                    // FIFOs, sockets and devices are copied as what they are; never read.
                    _ => format!("s{:?}", st.kind),
                };
                h.update(rel.as_bytes());
                h.update(format!("\0{kind}\0{:o}\0{}\0{}\n", st.mode, st.uid, st.gid).as_bytes());
            }
        }
        Ok(h.finish().hex().to_string())
    }
}

/// Content hashes of host files, remembered by (device, inode, size, mtime, ctime) so an
/// unchanged file is not read again (kept in the cache directory between builds).
#[derive(Debug, Default)]
pub struct FileHashes {
    known: HashMap<String, String>,
    path: Option<PathBuf>,
    changed: bool,
}

impl FileHashes {
    /// Hashes remembered in `path` (missing or unreadable: none).
    pub fn load(path: PathBuf) -> Self {
        let known = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Self { known, path: Some(path), changed: false }
    }

    fn of(&mut self, root: &Root, at: &OsStr, st: &Stat) -> Result<String, String> {
        let stamp = format!("{}:{}:{}:{}.{}:{}.{}", st.id.0, st.id.1, st.size, st.mtime.0, st.mtime.1, st.ctime.0, st.ctime.1);
        let shown = root.path().join(at);
        let key = format!("{}|{stamp}", shown.display());
        if let Some(h) = self.known.get(&key) {
            return Ok(h.clone());
        }
        let f = root.open_file(at).map_err(|e| format!("reading {}: {e}", shown.display()))?;
        let mut f = f.ok_or_else(|| format!("reading {}: not a regular file", shown.display()))?;
        let mut h = Hasher::sha256();
        std::io::copy(&mut f, &mut h).map_err(|e| format!("reading {}: {e}", shown.display()))?;
        let hex = h.finish().hex().to_string();
        self.known.insert(key, hex.clone());
        self.changed = true;
        Ok(hex)
    }

    /// Write the remembered hashes back (best effort: they only save time).
    pub fn save(&self) {
        if let (Some(path), true) = (&self.path, self.changed) {
            // A temporary file of its own, renamed over the old one: builds side by side each
            // replace it whole (the last one wins), never interleaved.
            if let (Ok(bytes), Ok((mut tmp, _tracked))) = (serde_json::to_vec(&self.known), imgtool_core::temp_file_beside(path)) {
                if std::io::Write::write_all(&mut tmp, &bytes).is_ok() {
                    let _ = tmp.persist(path);
                }
            }
        }
    }
}
