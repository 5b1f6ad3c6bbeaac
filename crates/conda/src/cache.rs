//! Reuse across builds: what linking a package produced and the layers written from it.
//!
//! Linking and compressing are most of a build's time, and both depend only on the package
//! record, the prefix, the python it is installed for and the layer options. So a warm
//! build that finds those keys here links nothing and compresses nothing; a build with one
//! changed package redoes that package's layer and the small `conda-meta` layer.
//!
//! Entries are written to a temporary name and renamed, so concurrent builds and a build
//! stopped half-way leave only whole entries. A missing or short blob is a miss.

use std::fs;
use std::path::{Path, PathBuf};

use imgtool_core::{Descriptor, Digest, FileBlob, Layer};
use rattler_conda_types::RepoDataRecord;
use serde::{Deserialize, Serialize};

use crate::error::{Result, io};
use crate::install::InstalledPackage;

/// Bumped whenever what is cached, or how a layer is written from it, changes.
const VERSION: &str = "imgtool-conda-cache-1";

/// A package as a previous build linked it: enough to lay it out and write its record
/// without linking it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedPackage {
    /// What linking reported.
    pub package: InstalledPackage,
    /// Its `conda-meta` file name and sanitized contents.
    pub meta_name: String,
    /// The sanitized record.
    pub meta_json: String,
}

#[derive(Serialize, Deserialize)]
struct CachedLayer {
    descriptor: Descriptor,
    diff_id: Digest,
}

/// The cache directory (`imgtool-layers` inside the package cache).
#[derive(Debug, Clone)]
pub struct BuildCache {
    dir: PathBuf,
}

impl BuildCache {
    /// The cache under `package_cache`.
    pub fn open(package_cache: &Path) -> Result<Self> {
        let dir = package_cache.join("imgtool-layers");
        for sub in ["packages", "layers", "blobs", "tmp"] {
            fs::create_dir_all(dir.join(sub)).map_err(io(format!("creating the layer cache {}", dir.display())))?;
        }
        Ok(Self { dir })
    }

    /// Where layers are spooled, so a new one is moved into the cache, not copied.
    pub fn spool_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// What a previous build linked for `key`.
    pub fn package(&self, key: &str) -> Option<CachedPackage> {
        let text = fs::read(self.dir.join("packages").join(format!("{key}.json"))).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Remember what linking produced for `key`. A failure only costs the next build time.
    pub fn store_package(&self, key: &str, p: &CachedPackage) {
        if let Ok(text) = serde_json::to_vec(p) {
            self.write(&self.dir.join("packages").join(format!("{key}.json")), &text);
        }
    }

    /// The layer written for `key`, served from the cache's blob.
    pub fn layer(&self, key: &str) -> Option<Layer> {
        let text = fs::read(self.dir.join("layers").join(format!("{key}.json"))).ok()?;
        let c: CachedLayer = serde_json::from_slice(&text).ok()?;
        let blob = self.blob_path(&c.descriptor.digest);
        if fs::metadata(&blob).ok()?.len() != c.descriptor.size {
            return None;
        }
        Some(Layer { source: std::sync::Arc::new(FileBlob::new(blob, c.descriptor.clone())), descriptor: c.descriptor, diff_id: c.diff_id })
    }

    /// Keep a freshly spooled layer (moving its file into the cache) and return the layer
    /// served from there.
    pub fn store_layer(&self, key: &str, spooled: imgtool_archive::SpooledLayer) -> Layer {
        let blob = self.blob_path(&spooled.descriptor.digest);
        let entry = CachedLayer { descriptor: spooled.descriptor.clone(), diff_id: spooled.diff_id.clone() };
        match spooled.file.persist(&blob) {
            Ok(()) => {
                if let Ok(text) = serde_json::to_vec(&entry) {
                    self.write(&self.dir.join("layers").join(format!("{key}.json")), &text);
                }
                Layer {
                    source: std::sync::Arc::new(FileBlob::new(blob, entry.descriptor.clone())),
                    descriptor: entry.descriptor,
                    diff_id: entry.diff_id,
                }
            }
            Err(e) => {
                tracing::debug!(error = %e.error, "could not keep a layer in the cache");
                imgtool_archive::SpooledLayer { file: e.path, descriptor: entry.descriptor, diff_id: entry.diff_id }.into_layer()
            }
        }
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs").join(digest.hex())
    }

    fn write(&self, path: &Path, bytes: &[u8]) {
        let done = tempfile::NamedTempFile::new_in(self.dir.join("tmp")).and_then(|mut f| {
            std::io::Write::write_all(&mut f, bytes)?;
            f.persist(path).map_err(|e| e.error)?;
            Ok(())
        });
        if let Err(e) = done {
            tracing::debug!(path = %path.display(), error = %e, "could not write a cache entry");
        }
    }
}

/// The key of a package linked for `prefix` on `subdir`: its whole record (so a patched
/// repodata entry is a new key), and for `noarch: python` packages the python they are
/// linked for.
pub fn package_key(record: &RepoDataRecord, all: &[RepoDataRecord], prefix: &str, subdir: &str) -> String {
    let python = if record.package_record.noarch.is_python() {
        all.iter().find(|r| r.package_record.name.as_normalized() == "python").map(|r| r.package_record.version.to_string())
    } else {
        None
    };
    let doc = serde_json::json!({ "v": VERSION, "record": record, "prefix": prefix, "subdir": subdir, "python": python });
    Digest::sha256_of(&imgtool_core::canonical_json(&doc)).hex().to_string()
}

/// The key of a layer holding `members` (package keys, in layer order) written with
/// `options` (everything else that shapes the bytes: filter, mtime, compression, prefix).
pub fn layer_key(members: &[&str], options: &serde_json::Value) -> String {
    let doc = serde_json::json!({ "v": VERSION, "members": members, "options": options });
    Digest::sha256_of(&imgtool_core::canonical_json(&doc)).hex().to_string()
}
