//! The build context: which files a `COPY` names, `.dockerignore`, and content hashes for
//! the cache.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use imgtool_archive::PathFilter;
use imgtool_core::Hasher;

/// One source of a `COPY`: where it is and how the instruction named it.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    /// Relative to the source root, `/`-separated ("" for the root itself).
    pub rel: String,
    /// On the host (symlinks in the name resolved inside the root).
    pub host: PathBuf,
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
/// image's filesystem (`COPY --from`).
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    pub root: PathBuf,
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

impl Tree {
    pub fn context(root: &Path) -> Result<Self, String> {
        let ignore = match read_context_file(&root.join(".dockerignore")) {
            Ok(Some(text)) => Some(PathFilter::from_dockerignore(&text).map_err(|e| format!(".dockerignore: {e}"))?),
            Ok(None) => None,
            Err(e) => return Err(format!("reading .dockerignore: {e}")),
        };
        Ok(Self { root: root.to_path_buf(), ignore, name: "the build context".into() })
    }

    pub fn ignored(&self, rel: &str) -> bool {
        !rel.is_empty() && self.ignore.as_ref().is_some_and(|f| f.matches(rel))
    }

    /// Follow symlinks in `rel` inside the root: the host path it names, the way a
    /// container would see it. `None` if a component is missing.
    fn resolve(&self, rel: &str) -> Option<PathBuf> {
        let mut parts: Vec<String> = Vec::new();
        let mut todo: Vec<String> = rel.split('/').filter(|c| !c.is_empty()).rev().map(str::to_string).collect();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    parts.pop();
                    continue;
                }
                _ => {}
            }
            let host = self.root.join(parts.join("/")).join(&c);
            // An ignored file is not in the context at all (BuildKit never sends it), so a
            // link to it leads nowhere.
            let within = if parts.is_empty() { c.clone() } else { format!("{}/{c}", parts.join("/")) };
            if self.ignored(&within) {
                return None;
            }
            let meta = std::fs::symlink_metadata(&host).ok()?;
            if meta.file_type().is_symlink() {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                let target = std::fs::read_link(&host).ok()?;
                let t = target.to_string_lossy().into_owned();
                if t.starts_with('/') {
                    parts.clear();
                }
                todo.extend(t.split('/').filter(|c| !c.is_empty()).rev().map(str::to_string));
            } else {
                parts.push(c);
            }
        }
        Some(self.root.join(parts.join("/")))
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
            for (r, host, meta) in self.walk("")? {
                if !glob.is_match(&r) {
                    continue;
                }
                // A matched symlink is followed inside the root only; one that leads out of
                // it (or nowhere) is copied as the link it is, never read through.
                let resolved = if meta.file_type().is_symlink() { self.resolve(&r) } else { Some(host.clone()) };
                match resolved.and_then(|h| std::fs::metadata(&h).ok().map(|m| (h, m))) {
                    Some((h, m)) => out.push(Source { rel: r, host: h, is_dir: m.is_dir(), link: false }),
                    None => out.push(Source { rel: r, host, is_dir: false, link: true }),
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
        let host = self.resolve(&rel).ok_or_else(|| format!("{word}: no such file or directory in {}", self.name))?;
        let meta = std::fs::metadata(&host).map_err(|e| format!("{word}: {e}"))?;
        Ok(vec![Source { rel, host, is_dir: meta.is_dir(), link: false }])
    }

    /// Everything under `rel` (a directory), sorted, `.dockerignore` applied; each with its
    /// path relative to the root, host path and `symlink_metadata`.
    pub fn walk(&self, rel: &str) -> Result<Vec<(String, PathBuf, std::fs::Metadata)>, String> {
        let base = if rel.is_empty() {
            self.root.clone()
        } else {
            self.resolve(rel).ok_or_else(|| format!("{rel}: no such directory in {}", self.name))?
        };
        let mut out = Vec::new();
        let mut it = walkdir::WalkDir::new(&base).follow_links(false).follow_root_links(false).sort_by_file_name().min_depth(1).into_iter();
        let has_exceptions = self.ignore.as_ref().is_some_and(PathFilter::has_exceptions);
        while let Some(item) = it.next() {
            let item = item.map_err(|e| format!("walking {}: {e}", base.display()))?;
            // Names are matched and joined as text: one that is not UTF-8 would be read back
            // as another name (U+FFFD), possibly a link planted to be found instead.
            let within = item.path().strip_prefix(&base).unwrap_or(item.path());
            let within =
                within.to_str().ok_or_else(|| format!("{}: names that are not UTF-8 are not supported", within.display()))?.to_string();
            let r = if rel.is_empty() { within } else { format!("{rel}/{within}") };
            if self.ignored(&r) {
                if item.file_type().is_dir() && !has_exceptions {
                    it.skip_current_dir();
                }
                continue;
            }
            let meta = item.path().symlink_metadata().map_err(|e| format!("reading {}: {e}", item.path().display()))?;
            out.push((r, item.path().to_path_buf(), meta));
        }
        Ok(out)
    }

    /// A digest of what `sources` hold (names, types, modes, contents, link targets), for
    /// the cache key of the step that copies them.
    pub fn hash(&self, sources: &[Source], hashes: &mut FileHashes) -> Result<String, String> {
        let mut h = Hasher::sha256();
        for s in sources {
            let meta = if s.link { std::fs::symlink_metadata(&s.host) } else { std::fs::metadata(&s.host) };
            let mut items = vec![(s.rel.clone(), s.host.clone(), meta.map_err(|e| format!("{}: {e}", s.rel))?)];
            if s.is_dir {
                items.extend(self.walk(&s.rel)?);
            }
            for (rel, host, meta) in items {
                let kind = if meta.is_dir() {
                    "d".to_string()
                } else if meta.file_type().is_symlink() {
                    format!("l{}", std::fs::read_link(&host).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default())
                } else if meta.is_file() {
                    format!("f{}", hashes.of(&host, &meta)?)
                } else {
                    // FIFOs, sockets and devices are copied as what they are; never read.
                    format!("s{:o}", meta.mode() & 0o170000)
                };
                h.update(format!("{rel}\0{kind}\0{:o}\0{}\0{}\n", meta.mode() & 0o7777, meta.uid(), meta.gid()).as_bytes());
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

    fn of(&mut self, host: &Path, meta: &std::fs::Metadata) -> Result<String, String> {
        let stamp = format!(
            "{}:{}:{}:{}.{}:{}.{}",
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec()
        );
        let key = format!("{}|{stamp}", host.display());
        if let Some(h) = self.known.get(&key) {
            return Ok(h.clone());
        }
        let mut f = open_regular(host).map_err(|e| format!("reading {}: {e}", host.display()))?;
        let mut h = Hasher::sha256();
        std::io::copy(&mut f, &mut h).map_err(|e| format!("reading {}: {e}", host.display()))?;
        let hex = h.finish().hex().to_string();
        self.known.insert(key, hex.clone());
        self.changed = true;
        Ok(hex)
    }

    /// Write the remembered hashes back (best effort: they only save time).
    pub fn save(&self) {
        if let (Some(path), true) = (&self.path, self.changed) {
            if let Ok(bytes) = serde_json::to_vec(&self.known) {
                let tmp = path.with_extension("tmp");
                if std::fs::write(&tmp, bytes).is_ok() {
                    let _ = std::fs::rename(tmp, path);
                }
            }
        }
    }
}
