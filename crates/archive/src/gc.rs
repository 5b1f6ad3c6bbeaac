//! What OCI layouts collect: temporary files of writers that died (SIGKILL, a crash), and
//! blobs no tag reaches any more. Writers hold an `flock` on each temporary file while they
//! write it, so a file nobody locks belongs to no live process; [`gc`] takes the layout's
//! writers' lock exclusively, so it never removes a blob a writer put there for an image it
//! has not tagged yet.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::Error;
use crate::error::io;

/// How a blob's temporary file is named while it is written.
const TEMP_PREFIX: &str = ".imgtool-tmp-";
/// The most a manifest or index may be (as imgtool reads them everywhere).
const DOC_LIMIT: u64 = imgtool_core::MANIFEST_LIMIT;

/// A temporary file for a blob in `dir`, locked for as long as it is open.
pub(crate) fn blob_temp(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    let t = tempfile::Builder::new().prefix(TEMP_PREFIX).tempfile_in(dir)?;
    imgtool_core::try_lock(t.as_file())?;
    Ok(t)
}

/// The layout's writers' lock: shared by writers for as long as they write, exclusive for
/// [`gc`]. Other tools ignore the file.
pub(crate) fn writers_lock(layout: &Path, exclusive: bool) -> Result<File, Error> {
    lock_file(&layout.join(".imgtool-writers.lock"), exclusive)
}

/// Open (creating) and lock a lock file in a layout, never through a symlink planted there.
pub(crate) fn lock_file(path: &Path, exclusive: bool) -> Result<File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(io(format!("opening {}", path.display())))?;
    imgtool_core::lock(&f, exclusive).map_err(io(format!("locking {}", path.display())))?;
    Ok(f)
}

/// Whether `name` is a temporary file a writer of ours made (`.tmpXXXXXX` is how imgtool
/// named them before they were locked).
fn is_temp(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) || name.strip_prefix(".tmp").is_some_and(|r| r.len() == 6 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A directory inside the layout, opened from its parent's handle without following a
/// symlink: nothing planted in a layout leads gc outside it.
fn open_dir_at(parent: &File, name: &str) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(File::from(rustix::fs::openat(parent, name, flags, Mode::empty())?))
}

/// `blobs/ALG` of the layout, for each algorithm imgtool knows, opened safely.
fn blob_dirs(layout: &Path) -> Vec<(imgtool_core::Algorithm, File)> {
    let Ok(blobs) = File::open(layout).and_then(|root| open_dir_at(&root, "blobs")) else { return Vec::new() };
    let mut out = Vec::new();
    for alg in [imgtool_core::Algorithm::Sha256, imgtool_core::Algorithm::Sha512] {
        if let Ok(d) = open_dir_at(&blobs, alg.as_str()) {
            out.push((alg, d));
        }
    }
    out
}

/// Remove what writers that died left in the layout's blob directories (best effort: a
/// writer calls it on its way, and a failure only leaves the file for later).
pub(crate) fn clear_dead_temps(layout: &Path) {
    for (_, dir) in blob_dirs(layout) {
        for e in imgtool_core::dead_scratch_at(&dir, is_temp).into_iter().filter(|e| !e.is_dir) {
            let _ = rustix::fs::unlinkat(&dir, e.name.as_os_str(), rustix::fs::AtFlags::empty());
        }
    }
    imgtool_core::clear_dead_scratch(layout, is_temp);
}

/// What [`gc`] removed (or, with `dry_run`, would remove).
#[derive(Debug, Default)]
pub struct GcReport {
    /// Each file and its size.
    pub removed: Vec<(PathBuf, u64)>,
}

impl GcReport {
    /// The bytes freed.
    pub fn freed(&self) -> u64 {
        self.removed.iter().map(|r| r.1).sum()
    }
}

/// Clean the OCI layout at `layout` as `umoci gc` does, and more: blobs that no manifest
/// reached from `index.json` names, and temporary files of writers that died. It waits for
/// imgtool writers of the layout to finish first, and holds them off while it works (other
/// tools writing the layout at the same time are not seen: do not run it then).
pub fn gc(layout: &Path, dry_run: bool) -> Result<GcReport, Error> {
    if !layout.join("oci-layout").is_file() {
        return Err(Error::Format { place: layout.display().to_string(), why: "not an OCI layout (no oci-layout file)".into() });
    }
    let _writers = writers_lock(layout, true)?;
    let keep = reachable(layout)?;
    let mut report = GcReport::default();
    let mut doomed = Vec::new();
    for (i, (alg, dir)) in blob_dirs(layout).iter().enumerate() {
        let shown = layout.join("blobs").join(alg.as_str());
        for e in imgtool_core::dead_scratch_at(dir, is_temp).into_iter().filter(|e| !e.is_dir) {
            report.removed.push((shown.join(&e.name), e.size));
            doomed.push((i, e.name));
        }
        let Ok(mut entries) = rustix::fs::Dir::read_from(dir) else { continue };
        while let Some(Ok(e)) = entries.next() {
            let Ok(name) = e.file_name().to_str() else { continue };
            // Only a file named by a digest of this algorithm is a blob to judge.
            let digest = format!("{}:{name}", alg.as_str());
            if digest.parse::<imgtool_core::Digest>().is_err() || keep.contains(&digest) {
                continue;
            }
            let Ok(st) = rustix::fs::statat(dir, e.file_name(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW) else { continue };
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile {
                report.removed.push((shown.join(name), st.st_size as u64));
                doomed.push((i, name.into()));
            }
        }
    }
    if !dry_run {
        let dirs = blob_dirs(layout);
        for (i, name) in &doomed {
            let Some((alg, dir)) = dirs.get(*i) else { continue };
            rustix::fs::unlinkat(dir, name.as_os_str(), rustix::fs::AtFlags::empty())
                .map_err(|e| io(format!("removing {}", layout.join("blobs").join(alg.as_str()).join(name).display()))(e.into()))?;
        }
    }
    report.removed.sort();
    Ok(report)
}

/// Remove the tag `name` from the OCI layout at `layout`: the entries of its `index.json`
/// that answer to it (by ref name, or the name containerd records), replaced under the
/// layout's lock. The digests untagged; the blobs stay until [`gc`].
pub fn remove_tag(layout: &Path, name: &str) -> Result<Vec<imgtool_core::Digest>, Error> {
    let place = || format!("oci:{}:{name}", layout.display());
    if !layout.join("oci-layout").is_file() {
        return Err(Error::Format { place: place(), why: format!("{} is not an OCI layout (no oci-layout file)", layout.display()) });
    }
    let _lock = crate::sink::lock_layout(layout)?;
    let raw = std::fs::read(layout.join("index.json")).map_err(io(format!("reading {}/index.json", layout.display())))?;
    let mut index: imgtool_core::Index = serde_json::from_slice(&raw)
        .map_err(|e| Error::Format { place: format!("{}/index.json", layout.display()), why: e.to_string() })?;
    let (gone, kept): (Vec<_>, Vec<_>) = index.manifests.into_iter().partition(|d| crate::source::entry_matches(d, name));
    index.manifests = kept;
    if gone.is_empty() {
        let names = crate::source::names_of(&index);
        return Err(Error::Format { place: place(), why: format!("no such tag; the layout holds: {names}") });
    }
    let raw = serde_json::to_vec(&index).map_err(|e| Error::Format { place: place(), why: format!("writing the index: {e}") })?;
    crate::sink::write_atomic(layout, "index.json", &raw)?;
    Ok(gone.into_iter().map(|d| d.digest).collect())
}

/// Every digest reachable from `index.json`: its descriptors, and through every manifest
/// and index among them, theirs.
fn reachable(layout: &Path) -> Result<HashSet<String>, Error> {
    let mut seen = HashSet::new();
    let mut docs = vec![read_doc(&layout.join("index.json"))?];
    while let Some(doc) = docs.pop() {
        let mut found = Vec::new();
        descriptors(&doc, &mut found);
        for (digest, media_type) in found {
            if !seen.insert(digest.clone()) {
                continue;
            }
            // Anything but a layer or a config may be a manifest or an index (a descriptor may
            // lack its media type): read it if it is small and JSON with a schemaVersion.
            let plain = media_type.contains("layer") || media_type.contains(".config.") || media_type.contains("container.image");
            // Only a well-formed digest names a file: "sha256:../../x" must not lead out.
            let Ok(d) = digest.parse::<imgtool_core::Digest>() else { continue };
            let path = layout.join("blobs").join(d.algorithm().as_str()).join(d.hex());
            let small = std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() <= DOC_LIMIT);
            if !plain && small {
                if let Ok(doc) = read_doc(&path) {
                    if doc.get("schemaVersion").is_some() {
                        docs.push(doc);
                    }
                }
            }
        }
    }
    Ok(seen)
}

fn read_doc(path: &Path) -> Result<serde_json::Value, Error> {
    let f = File::open(path).map_err(io(format!("reading {}", path.display())))?;
    let mut raw = Vec::new();
    f.take(DOC_LIMIT + 1).read_to_end(&mut raw).map_err(io(format!("reading {}", path.display())))?;
    if raw.len() as u64 > DOC_LIMIT {
        return Err(Error::Format { place: path.display().to_string(), why: format!("larger than {DOC_LIMIT} bytes") });
    }
    serde_json::from_slice(&raw).map_err(|e| Error::Format { place: path.display().to_string(), why: e.to_string() })
}

/// Every `{"digest": ..., "mediaType": ...}` object in `v`, at any depth.
fn descriptors(v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(d) = m.get("digest").and_then(|d| d.as_str()) {
                out.push((d.to_string(), m.get("mediaType").and_then(|t| t.as_str()).unwrap_or_default().to_string()));
            }
            m.values().for_each(|x| descriptors(x, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| descriptors(x, out)),
        _ => {}
    }
}
