//! OCI layouts (directory and tar) and docker-save tarballs as image sinks.
//!
//! Nothing appears at the destination until `finish`: a tarball is written to a temporary
//! file beside it and renamed; a new layout directory is built beside it and renamed (or,
//! when another writer made it meanwhile, joined); an existing layout gets its blobs by
//! rename and its `index.json` read, changed and replaced last, under the layout's lock.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use imgtool_core::{
    BlobSource, BlobStream, Descriptor, Digest, Error as CoreError, ImageSink, Index, MediaType, ParsedManifest, Reference, Result, verify,
};
use serde_json::json;

use crate::Error;
use crate::error::io;
use crate::source::{CONTAINERD_NAME, REF_NAME};
use crate::store::blob_path;

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// The new `index.json`, given the one the destination holds when it is written.
type IndexFn<'a> = &'a (dyn Fn(&Index) -> Result<Vec<u8>, Error> + Sync);

trait BlobWriter: Send + Sync + fmt::Debug {
    fn has(&self, path: &str) -> bool;
    fn put(&self, path: &str, size: u64, data: &mut dyn Read) -> Result<(), Error>;
    /// Write `files` (`oci-layout` first) and the index, and make the result visible.
    fn commit(&self, files: Vec<(&'static str, Vec<u8>)>, index: IndexFn<'_>) -> Result<(), Error>;
}

/// Write `data` to `root/rel` through a synced temporary file and a rename: a reader sees
/// the old file or the new one, never half of one.
pub(crate) fn write_atomic(root: &Path, rel: &str, data: &[u8]) -> Result<(), Error> {
    let dest = root.join(rel);
    let dir = dest.parent().unwrap_or(root);
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let mut t = crate::gc::blob_temp(dir).map_err(io(format!("writing in {}", dir.display())))?;
    let _tracked = imgtool_core::track_path(t.path());
    t.write_all(data).map_err(io(format!("writing {}", dest.display())))?;
    t.as_file().sync_all().map_err(io(format!("writing {}", dest.display())))?;
    imgtool_core::publish_file(t, &dest).map_err(io(format!("renaming into {}", dest.display())))
}

/// The layout's writer lock, held while its `index.json` is read, changed and replaced,
/// so that writers side by side each keep their tags (other tools ignore the file).
pub(crate) fn lock_layout(root: &Path) -> Result<std::fs::File, Error> {
    crate::gc::lock_file(&root.join(".imgtool-index.lock"), true)
}

/// Move the blobs of the layout at `from` into the layout at `to`, keeping those it has.
fn join_blobs(from: &Path, to: &Path) -> Result<(), Error> {
    let blobs = from.join("blobs");
    let Ok(algs) = std::fs::read_dir(&blobs) else { return Ok(()) };
    for alg in algs.flatten() {
        let dest_dir = to.join("blobs").join(alg.file_name());
        std::fs::create_dir_all(&dest_dir).map_err(io(format!("creating {}", dest_dir.display())))?;
        for blob in std::fs::read_dir(alg.path()).map_err(io(format!("reading {}", alg.path().display())))?.flatten() {
            let dest = dest_dir.join(blob.file_name());
            if !dest.exists() {
                std::fs::rename(blob.path(), &dest).map_err(io(format!("moving a blob into {}", dest.display())))?;
            }
        }
    }
    Ok(())
}

/// Writes a layout into a directory.
#[derive(Debug)]
struct DirWriter {
    final_root: PathBuf,
    work: PathBuf,
    temp: Mutex<Option<imgtool_core::ScratchDir>>,
    /// The writers' lock of an existing layout, shared while this writer lives.
    writers: Mutex<Option<std::fs::File>>,
}

impl DirWriter {
    fn new(dir: &Path) -> Result<Self, Error> {
        let place = || format!("oci:{}", dir.display());
        if dir.exists() {
            if dir.join("oci-layout").is_file() {
                let writers = crate::gc::writers_lock(dir, false)?;
                crate::gc::clear_dead_temps(dir);
                imgtool_core::clear_dead_beside(dir);
                return Ok(Self {
                    final_root: dir.to_path_buf(),
                    work: dir.to_path_buf(),
                    temp: Mutex::new(None),
                    writers: Mutex::new(Some(writers)),
                });
            }
            let empty = std::fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))?.next().is_none();
            if !empty {
                return Err(Error::Format {
                    place: place(),
                    why: "the directory exists and is not an OCI layout; choose a new or empty directory".into(),
                });
            }
        }
        let temp = imgtool_core::temp_dir_beside(dir).map_err(io(format!("creating a directory beside {}", dir.display())))?;
        Ok(Self { final_root: dir.to_path_buf(), work: temp.path().to_path_buf(), temp: Mutex::new(Some(temp)), writers: Mutex::new(None) })
    }

    /// Replace `index.json` of the layout at `final_root`, under its lock, from what it
    /// holds at that moment.
    fn update(&self, files: &[(&'static str, Vec<u8>)], index: IndexFn<'_>) -> Result<(), Error> {
        let root = &self.final_root;
        let _lock = lock_layout(root)?;
        let current = match std::fs::read(root.join("index.json")) {
            Ok(raw) => serde_json::from_slice(&raw)
                .map_err(|e| Error::Format { place: format!("{}/index.json", root.display()), why: e.to_string() })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Index::new(),
            Err(e) => return Err(io(format!("reading {}/index.json", root.display()))(e)),
        };
        for (name, data) in files {
            if !root.join(name).is_file() {
                write_atomic(root, name, data)?;
            }
        }
        write_atomic(root, "index.json", &index(&current)?)
    }
}

impl BlobWriter for DirWriter {
    fn has(&self, path: &str) -> bool {
        self.work.join(path).is_file()
    }

    fn put(&self, path: &str, _size: u64, data: &mut dyn Read) -> Result<(), Error> {
        let dest = self.work.join(path);
        let dir = dest.parent().unwrap_or(&self.work);
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let mut t = crate::gc::blob_temp(dir).map_err(io(format!("writing in {}", dir.display())))?;
        let _tracked = imgtool_core::track_path(t.path());
        {
            let mut w = BufWriter::with_capacity(1 << 20, t.as_file_mut());
            io::copy(data, &mut w).map_err(io(format!("writing {}", dest.display())))?;
            w.flush().map_err(io(format!("writing {}", dest.display())))?;
        }
        // Blobs are named by what they hold: no gate, a blob renamed into place is whole.
        t.as_file().set_permissions(imgtool_core::output_mode(0o666)).map_err(io(format!("writing {}", dest.display())))?;
        t.persist(&dest).map_err(|e| Error::Io { context: format!("renaming into {}", dest.display()), source: e.error })?;
        Ok(())
    }

    fn commit(&self, files: Vec<(&'static str, Vec<u8>)>, index: IndexFn<'_>) -> Result<(), Error> {
        let Some(temp) = self.temp.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return self.update(&files, index);
        };
        // A new layout, built beside its place: renamed in whole, or, when another writer
        // made the layout in the meantime, joined.
        for (name, data) in &files {
            write_atomic(temp.path(), name, data)?;
        }
        write_atomic(temp.path(), "index.json", &index(&Index::new())?)?;
        if std::fs::read_dir(&self.final_root).is_ok_and(|mut d| d.next().is_none()) {
            // An empty directory is replaced by the rename itself.
            let _ = std::fs::remove_dir(&self.final_root);
        }
        match temp.publish_to(&self.final_root) {
            Ok(()) => {
                let _ = temp.keep();
                Ok(())
            }
            Err(e) if e.kind() != io::ErrorKind::Interrupted && self.final_root.join("oci-layout").is_file() => {
                // As a writer of the layout another made: gc waits until the tag is in.
                *self.writers.lock().unwrap_or_else(|p| p.into_inner()) = Some(crate::gc::writers_lock(&self.final_root, false)?);
                join_blobs(temp.path(), &self.final_root)?;
                self.update(&files, index)
            }
            Err(e) => Err(io(format!("renaming {} to {}", temp.path().display(), self.final_root.display()))(e)),
        }
    }
}

/// Where a layout tar goes: a temporary file renamed onto its place when complete, or any
/// writer (a pipe into an engine's image load).
enum TarOut {
    File(tempfile::NamedTempFile),
    Stream(Box<dyn Write + Send>),
}

impl Write for TarOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            TarOut::File(f) => f.write(buf),
            TarOut::Stream(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            TarOut::File(f) => f.flush(),
            TarOut::Stream(w) => w.flush(),
        }
    }
}

/// Writes a layout as one tar stream.
struct TarWriter {
    /// What it writes, for messages.
    shown: String,
    /// Where the finished file goes (none for a stream).
    final_path: Option<PathBuf>,
    tar: Mutex<Option<tar::Builder<BufWriter<TarOut>>>>,
    written: Mutex<HashSet<String>>,
    _tracked: Option<imgtool_core::Tracked>,
}

impl fmt::Debug for TarWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TarWriter").field("shown", &self.shown).finish()
    }
}

fn header(size: u64, dir: bool) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(if dir { tar::EntryType::Directory } else { tar::EntryType::Regular });
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

impl TarWriter {
    fn new(path: &Path) -> Result<Self, Error> {
        if path.is_dir() {
            return Err(Error::Format {
                place: path.display().to_string(),
                why: "is a directory; a tarball output needs a file name".into(),
            });
        }
        let (tmp, tracked) = imgtool_core::temp_file_beside(path).map_err(io(format!("creating a file beside {}", path.display())))?;
        Self::start(path.display().to_string(), Some(path.to_path_buf()), TarOut::File(tmp), Some(tracked))
    }

    fn start(shown: String, final_path: Option<PathBuf>, out: TarOut, tracked: Option<imgtool_core::Tracked>) -> Result<Self, Error> {
        let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, out));
        for d in ["blobs/", "blobs/sha256/"] {
            tar.append_data(&mut header(0, true), d, io::empty()).map_err(io(format!("writing {shown}")))?;
        }
        Ok(Self { shown, final_path, tar: Mutex::new(Some(tar)), written: Mutex::new(HashSet::new()), _tracked: tracked })
    }
}

struct Count<'a> {
    inner: &'a mut dyn Read,
    n: u64,
}

impl Read for Count<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

impl BlobWriter for TarWriter {
    fn has(&self, path: &str) -> bool {
        self.written.lock().unwrap_or_else(|p| p.into_inner()).contains(path)
    }

    fn put(&self, path: &str, size: u64, data: &mut dyn Read) -> Result<(), Error> {
        let mut guard = self.tar.lock().unwrap_or_else(|p| p.into_inner());
        let ctx = || format!("writing {path} into {}", self.shown);
        let tar = guard.as_mut().ok_or_else(|| Error::Format { place: self.shown.clone(), why: "an earlier write failed".into() })?;
        let mut limited = data.take(size);
        let mut counted = Count { inner: &mut limited, n: 0 };
        let r = tar.append_data(&mut header(size, false), path, &mut counted);
        let n = counted.n;
        if let Err(e) = r {
            *guard = None; // the tar is corrupt now; dropping it deletes the temporary file
            return Err(io(ctx())(e));
        }
        // Read on to the end: that is where a verifying reader checks the digest, and
        // where a stream longer than its descriptor shows.
        let mut extra = [0u8; 1];
        let tail = data.read(&mut extra);
        if n != size || !matches!(tail, Ok(0)) {
            *guard = None;
            return match tail {
                Err(e) => Err(io(ctx())(e)),
                _ => Err(imgtool_core::Error::SizeMismatch { what: path.into(), expected: size, actual: n + 1 }.into()),
            };
        }
        self.written.lock().unwrap_or_else(|p| p.into_inner()).insert(path.to_string());
        Ok(())
    }

    fn commit(&self, mut files: Vec<(&'static str, Vec<u8>)>, index: IndexFn<'_>) -> Result<(), Error> {
        let ctx = format!("writing {}", self.shown);
        files.insert(1.min(files.len()), ("index.json", index(&Index::new())?));
        let mut tar = self
            .tar
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| Error::Format { place: self.shown.clone(), why: "an earlier write failed".into() })?;
        for (name, data) in files {
            tar.append_data(&mut header(data.len() as u64, false), name, &data[..]).map_err(io(ctx.clone()))?;
        }
        let w = tar.into_inner().map_err(io(ctx.clone()))?;
        match w.into_inner().map_err(|e| io(ctx.clone())(e.into_error()))? {
            TarOut::File(tmp) => {
                tmp.as_file().sync_all().map_err(io(ctx.clone()))?;
                let dest = self.final_path.as_deref().unwrap_or(Path::new(""));
                imgtool_core::publish_file(tmp, dest).map_err(io(format!("renaming into {}", dest.display())))
            }
            // Dropped here: the reader sees the stream end.
            TarOut::Stream(mut w) => w.flush().map_err(io(ctx)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Oci,
    Docker,
}

#[derive(Debug, Default)]
struct State {
    puts: Vec<(Descriptor, Vec<String>)>,
    children: HashSet<Digest>,
    docker: Vec<serde_json::Value>,
    repositories: BTreeMap<String, BTreeMap<String, String>>,
}

/// An OCI layout directory (`oci:DIR[:TAG]`), an OCI layout tar (`oci-archive:FILE[:TAG]`)
/// or a docker-save tarball (`docker-archive:FILE[:NAME:TAG]`) being written.
///
/// Docker tarballs are written the way Docker 25+ saves: an OCI layout with
/// `manifest.json` and `repositories` beside it, layers stored as they are (compressed),
/// so the manifest digest survives a round trip.
#[derive(Debug)]
pub struct LayoutSink {
    writer: std::sync::Arc<dyn BlobWriter>,
    kind: Kind,
    transport: String,
    state: Mutex<State>,
}

impl LayoutSink {
    /// Write (or add to) an OCI layout directory.
    /// Its `index.json` is read and replaced under the layout's lock when the sink finishes,
    /// so writers side by side keep each other's tags.
    pub fn oci_dir(dir: &Path) -> Result<Self, Error> {
        Ok(Self::new(std::sync::Arc::new(DirWriter::new(dir)?), Kind::Oci, format!("oci:{}", dir.display())))
    }

    /// Write an OCI layout tar, replacing `file` when done.
    pub fn oci_archive(file: &Path) -> Result<Self, Error> {
        Ok(Self::new(std::sync::Arc::new(TarWriter::new(file)?), Kind::Oci, format!("oci-archive:{}", file.display())))
    }

    /// Write a docker-save tarball, replacing `file` when done.
    pub fn docker_archive(file: &Path) -> Result<Self, Error> {
        Ok(Self::new(std::sync::Arc::new(TarWriter::new(file)?), Kind::Docker, format!("docker-archive:{}", file.display())))
    }

    /// Write a docker-save tarball into `out` as it is made (a pipe into `docker load`, an
    /// engine's `/images/load`); `shown` names it in messages. Nothing is written to disk.
    pub fn docker_archive_to(out: Box<dyn Write + Send>, shown: &str) -> Result<Self, Error> {
        let writer = TarWriter::start(shown.to_string(), None, TarOut::Stream(out), None)?;
        Ok(Self::new(std::sync::Arc::new(writer), Kind::Docker, shown.to_string()))
    }

    fn new(writer: std::sync::Arc<dyn BlobWriter>, kind: Kind, transport: String) -> Self {
        Self { writer, kind, transport, state: Mutex::new(State::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn write_blob(&self, desc: &Descriptor, data: BlobStream) -> Result<()> {
        let path = blob_path(&desc.digest);
        if self.writer.has(&path) {
            return Ok(());
        }
        let stream = verify(desc, data);
        let size = desc.size;
        let handle = tokio::runtime::Handle::current();
        let writer = self.writer.clone();
        let result = tokio::task::spawn_blocking(move || {
            let _g = handle.enter();
            let mut r = tokio_util::io::SyncIoBridge::new(stream);
            writer.put(&path, size, &mut r)
        })
        .await
        .map_err(|e| CoreError::Unsupported(format!("writer stopped: {e}")))?;
        result.map_err(Into::into)
    }

    /// `existing` with this sink's manifests and tags in it.
    fn index_json(kind: Kind, st: &State, existing: &Index) -> Result<Vec<u8>> {
        let mut index = existing.clone();
        index.media_type = Some(MediaType::OciIndex);
        let new_tags: HashSet<&String> = st.puts.iter().flat_map(|(_, t)| t.iter()).collect();
        index.manifests.retain(|d| !d.annotations.get(REF_NAME).is_some_and(|n| new_tags.contains(n)));
        for (desc, tags) in &st.puts {
            if st.children.contains(&desc.digest) && tags.is_empty() {
                continue;
            }
            let base = Descriptor { annotations: BTreeMap::new(), platform: None, ..desc.clone() };
            if tags.is_empty() {
                if !index.manifests.iter().any(|d| d.digest == desc.digest && d.annotations.is_empty()) {
                    index.manifests.push(base);
                }
                continue;
            }
            for t in tags {
                let mut d = base.clone();
                match kind {
                    Kind::Oci => {
                        d.annotations.insert(REF_NAME.into(), t.clone());
                    }
                    Kind::Docker => {
                        let r: Reference = t.parse()?;
                        d.annotations.insert(CONTAINERD_NAME.into(), r.to_string());
                        d.annotations.insert(REF_NAME.into(), r.tag().unwrap_or("latest").into());
                    }
                }
                index.manifests.push(d);
            }
        }
        Ok(serde_json::to_vec(&index).unwrap_or_default())
    }
}

#[async_trait]
impl ImageSink for LayoutSink {
    async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        Ok(self.writer.has(&blob_path(&desc.digest)))
    }

    async fn put_blob(&self, desc: &Descriptor, data: BlobStream) -> Result<()> {
        self.write_blob(desc, data).await
    }

    async fn put_manifest(&self, desc: &Descriptor, raw: Bytes, tags: &[String]) -> Result<()> {
        let parsed = ParsedManifest::parse(&raw, Some(&desc.media_type))?;
        let mut tags = tags.to_vec();
        if self.kind == Kind::Docker {
            let ParsedManifest::Image(m) = &parsed else {
                return Err(CoreError::Unsupported(format!(
                    "{} holds single-platform images; pick one platform (--platform) or write an OCI layout instead",
                    self.transport
                )));
            };
            let mut repo_tags = Vec::new();
            for t in &mut tags {
                let r: Reference = t.parse()?;
                if r.digest().is_some() {
                    return Err(CoreError::Invalid {
                        what: "docker-archive name".into(),
                        value: t.clone(),
                        why: "use NAME:TAG, not a digest".into(),
                    });
                }
                *t = r.familiar();
                let (name, tag) = t.rsplit_once(':').map_or((t.as_str(), "latest"), |(n, tg)| (n, tg));
                if let Some(top) = m.layers.last() {
                    self.state().repositories.entry(name.to_string()).or_default().insert(tag.to_string(), top.digest.hex().to_string());
                }
                repo_tags.push(t.clone());
            }
            let entry = json!({
                "Config": blob_path(&m.config.digest),
                "RepoTags": if repo_tags.is_empty() { serde_json::Value::Null } else { json!(repo_tags) },
                "Layers": m.layers.iter().map(|l| blob_path(&l.digest)).collect::<Vec<_>>(),
            });
            self.state().docker.push(entry);
        }
        self.write_blob(desc, Box::pin(io::Cursor::new(raw))).await?;
        let mut st = self.state();
        if let ParsedManifest::Index(i) = parsed {
            st.children.extend(i.manifests.iter().map(|d| d.digest.clone()));
        }
        st.puts.push((desc.clone(), tags));
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<()> {
        let mut files = vec![("oci-layout", OCI_LAYOUT.to_vec())];
        let st = std::mem::take(&mut *self.state());
        if self.kind == Kind::Docker {
            // Sorted keys whatever serde_json features the build has, so the bytes never vary.
            files.push(("manifest.json", imgtool_core::canonical_json(&serde_json::Value::Array(st.docker.clone()))));
            files.push(("repositories", serde_json::to_vec(&st.repositories).unwrap_or_default()));
        }
        let (writer, kind) = (self.writer, self.kind);
        tokio::task::spawn_blocking(move || writer.commit(files, &|existing| Ok(Self::index_json(kind, &st, existing)?)))
            .await
            .map_err(|e| CoreError::Unsupported(format!("writer stopped: {e}")))??;
        Ok(())
    }

    fn describe(&self) -> String {
        self.transport.clone()
    }

    fn max_parallel(&self) -> usize {
        if self.kind == Kind::Docker || self.transport.starts_with("oci-archive:") { 1 } else { usize::MAX }
    }
}

impl LayoutSink {
    /// Copy a blob straight from a source (used by tests and tools that bypass the copy engine).
    pub async fn put_from(&self, desc: &Descriptor, source: &dyn BlobSource) -> Result<()> {
        self.write_blob(desc, source.open(desc).await?).await
    }
}
