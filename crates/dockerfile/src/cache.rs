//! The step cache: each layer-making step's result under a key chained from the base
//! image, every earlier step and this step's inputs (its instruction after substitution,
//! and the content of every file it reads).

use std::path::{Path, PathBuf};

use imgtool_archive::{LayerCache, SpooledLayer};
use imgtool_core::Layer;

use crate::error::{Error, Result};

/// Bumped when what a key covers or how a step's layer is written changes.
const VERSION: &str = "imgtool-dockerfile-1";

/// Step results in a local directory.
#[derive(Debug, Clone)]
pub struct StepCache(LayerCache);

impl StepCache {
    /// Open (creating) the cache in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        Ok(Self(LayerCache::open(dir).map_err(|e| Error::step(0, "cache", e.to_string()))?))
    }

    fn name(key: &str) -> String {
        imgtool_core::Digest::sha256_of(format!("{VERSION}\n{key}").as_bytes()).hex().to_string()
    }

    /// The step's result: `Some(None)` for a step that changed no file.
    pub fn lookup(&self, key: &str) -> Option<Option<Layer>> {
        let name = Self::name(key);
        match self.0.entry(&format!("{name}.step"))?.as_slice() {
            b"empty" => Some(None),
            _ => self.0.layer(&name).map(Some),
        }
    }

    /// Remember a step that changed no file.
    pub fn store(&self, key: &str, layer: Option<()>) {
        if layer.is_none() {
            self.0.put_entry(&format!("{}.step", Self::name(key)), b"empty");
        }
    }

    /// Keep a step's layer.
    pub fn store_layer(&self, key: &str, spooled: SpooledLayer) -> Layer {
        let name = Self::name(key);
        let layer = self.0.store_layer(&name, spooled);
        self.0.put_entry(&format!("{name}.step"), b"layer");
        layer
    }

    /// Where layers of steps are spooled.
    pub fn spool_dir(&self) -> PathBuf {
        self.0.spool_dir()
    }

    /// Where content hashes of context files are remembered.
    pub fn hashes_file(&self) -> PathBuf {
        self.0.dir().join("file-hashes.json")
    }
}
