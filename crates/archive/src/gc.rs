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
    let t = tempfile::Builder::new().prefix(TEMP_PREFIX).permissions(imgtool_core::output_mode(0o666)).tempfile_in(dir)?;
    imgtool_core::try_lock(t.as_file())?;
    Ok(t)
}

/// The layout's writers' lock: shared by writers for as long as they write, exclusive for
/// [`gc`]. Other tools ignore the file.
pub(crate) fn writers_lock(layout: &Path, exclusive: bool) -> Result<File, Error> {
    let path = layout.join(".imgtool-writers.lock");
    let f = File::options().create(true).truncate(false).write(true).open(&path).map_err(io(format!("opening {}", path.display())))?;
    imgtool_core::lock(&f, exclusive).map_err(io(format!("locking {}", path.display())))?;
    Ok(f)
}

/// Whether `name` is a temporary file a writer of ours made (`.tmpXXXXXX` is how imgtool
/// named them before they were locked).
fn is_temp(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) || name.strip_prefix(".tmp").is_some_and(|r| r.len() == 6 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn blob_dirs(layout: &Path) -> Vec<PathBuf> {
    let Ok(algs) = std::fs::read_dir(layout.join("blobs")) else { return Vec::new() };
    algs.flatten().filter(|a| a.file_type().is_ok_and(|t| t.is_dir())).map(|a| a.path()).collect()
}

/// Remove what writers that died left in the layout's blob directories (best effort: a
/// writer calls it on its way, and a failure only leaves the file for later).
pub(crate) fn clear_dead_temps(layout: &Path) {
    for dir in blob_dirs(layout).into_iter().chain([layout.to_path_buf()]) {
        imgtool_core::clear_dead_scratch(&dir, is_temp);
    }
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
    for dir in blob_dirs(layout) {
        let alg = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        report.removed.extend(imgtool_core::dead_scratch(&dir, is_temp));
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || keep.contains(&format!("{alg}:{name}")) {
                continue;
            }
            if e.file_type().is_ok_and(|t| t.is_file()) {
                report.removed.push((e.path(), e.metadata().map(|m| m.len()).unwrap_or(0)));
            }
        }
    }
    report.removed.sort();
    if !dry_run {
        for (p, _) in &report.removed {
            std::fs::remove_file(p).map_err(io(format!("removing {}", p.display())))?;
        }
    }
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
    crate::sink::write_atomic(layout, "index.json", &serde_json::to_vec(&index).unwrap_or_default())?;
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
