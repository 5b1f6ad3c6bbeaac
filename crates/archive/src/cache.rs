//! A directory of layers kept between builds, found again by a key the builder computes
//! from everything that shapes the layer's bytes, plus small records beside them.
//!
//! Entries are written to a temporary name and renamed, so concurrent builds and a build
//! stopped half-way leave only whole entries. A missing or short blob is a miss; a
//! corrupted one is caught when a sink reads it (every blob read is verified).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use imgtool_core::{Descriptor, Digest, FileBlob, Layer};
use serde::{Deserialize, Serialize};

use crate::{Error, SpooledLayer};

#[derive(Serialize, Deserialize)]
struct CachedLayer {
    descriptor: Descriptor,
    diff_id: Digest,
}

/// The cache directory: `entries/` (records by key), `blobs/` (layers by digest), `tmp/`
/// (a directory for each process using the cache, locked while it lives, removed when it
/// ends or is interrupted, and by the next user when its process was killed).
#[derive(Debug, Clone)]
pub struct LayerCache {
    dir: PathBuf,
    spool: Arc<imgtool_core::ScratchDir>,
}

impl LayerCache {
    /// Open (creating) the cache at `dir`.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let err = || crate::error::io(format!("creating the cache {}", dir.display()));
        for sub in ["entries", "blobs"] {
            fs::create_dir_all(dir.join(sub)).map_err(err())?;
        }
        let spool = imgtool_core::private_dir(&dir.join("tmp")).map_err(err())?;
        Ok(Self { dir: dir.to_path_buf(), spool: Arc::new(spool) })
    }

    /// Where to spool layers that will be stored, so storing moves rather than copies.
    pub fn spool_dir(&self) -> PathBuf {
        self.spool.path().to_path_buf()
    }

    /// The cache's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The record stored under `key`.
    pub fn entry(&self, key: &str) -> Option<Vec<u8>> {
        fs::read(self.dir.join("entries").join(key)).ok()
    }

    /// Store a record under `key`. A failure only costs a later build time.
    pub fn put_entry(&self, key: &str, bytes: &[u8]) {
        let path = self.dir.join("entries").join(key);
        let done = tempfile::NamedTempFile::new_in(self.spool_dir()).and_then(|mut f| {
            std::io::Write::write_all(&mut f, bytes)?;
            f.persist(&path).map_err(|e| e.error)?;
            Ok(())
        });
        if let Err(e) = done {
            tracing::debug!(path = %path.display(), error = %e, "could not write a cache entry");
        }
    }

    /// The layer stored under `key`, served from the cache's blob.
    pub fn layer(&self, key: &str) -> Option<Layer> {
        let c: CachedLayer = serde_json::from_slice(&self.entry(&format!("{key}.layer"))?).ok()?;
        let blob = self.blob_path(&c.descriptor.digest);
        if fs::metadata(&blob).ok()?.len() != c.descriptor.size {
            return None;
        }
        Some(Layer { source: Arc::new(FileBlob::new(blob, c.descriptor.clone())), descriptor: c.descriptor, diff_id: c.diff_id })
    }

    /// Keep a freshly spooled layer under `key` (moving its file into the cache) and return
    /// the layer served from there.
    pub fn store_layer(&self, key: &str, spooled: SpooledLayer) -> Layer {
        let blob = self.blob_path(&spooled.descriptor.digest);
        let entry = CachedLayer { descriptor: spooled.descriptor.clone(), diff_id: spooled.diff_id.clone() };
        match spooled.file.persist(&blob) {
            Ok(()) => {
                if let Ok(text) = serde_json::to_vec(&entry) {
                    self.put_entry(&format!("{key}.layer"), &text);
                }
                Layer {
                    source: Arc::new(FileBlob::new(blob, entry.descriptor.clone())),
                    descriptor: entry.descriptor,
                    diff_id: entry.diff_id,
                }
            }
            Err(e) => {
                tracing::debug!(error = %e.error, "could not keep a layer in the cache");
                SpooledLayer { file: e.path, descriptor: entry.descriptor, diff_id: entry.diff_id }.into_layer()
            }
        }
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs").join(digest.hex())
    }
}
