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
        Ok(Self(LayerCache::open(dir).map_err(|e| Error::step_from(0, "cache", format!("opening {}", dir.display()), e))?))
    }

    pub(crate) fn name(key: &str) -> String {
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

/// Step results shared through an image repository (`--cache-repo`): each step is an
/// image tagged by its key, holding the step's layer (or none for a step that changed no
/// file). Builders on other machines find it by the same key. Reading is lazy: a hit's
/// layer is fetched only when something needs its bytes (and a push to the same registry
/// mounts it).
pub struct RepoCache {
    source: imgtool_core::SharedSource,
    sink: Box<dyn imgtool_core::ImageSink>,
    name: String,
}

impl std::fmt::Debug for RepoCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RepoCache({})", self.name)
    }
}

impl RepoCache {
    /// A cache reading from `source` and writing to `sink` (the same repository).
    pub fn new(source: imgtool_core::SharedSource, sink: Box<dyn imgtool_core::ImageSink>) -> Self {
        let name = sink.describe();
        Self { source, sink, name }
    }

    /// The step stored under `key`: `Some(None)` for a step that changed no file.
    pub async fn lookup(&self, key: &str) -> Option<Option<Layer>> {
        let tag = StepCache::name(key);
        let image = imgtool_core::Image::load(self.source.clone(), Some(&tag), None).await.ok()?;
        let marker =
            image.config().container().and_then(|c| c.get("Labels")).and_then(|l| l.get(MARKER)).and_then(|v| v.as_str())?.to_string();
        match (marker.as_str(), image.layers()) {
            ("empty", []) => Some(None),
            ("layer", [layer]) => Some(Some(layer.clone())),
            _ => None,
        }
    }

    /// Store a step's result under `key`. A failure is logged: it only costs others time.
    pub async fn store(&self, key: &str, layer: Option<&Layer>, platform: &imgtool_core::Platform) {
        let tag = StepCache::name(key);
        let mut image = imgtool_core::Image::scratch(platform, imgtool_core::Flavor::Oci);
        let label = if layer.is_some() { "layer" } else { "empty" };
        let labels = json_labels(label);
        image.config_mut().container_mut().insert("Labels".into(), labels);
        if let Some(l) = layer {
            image.push_layer(l.clone(), imgtool_core::History::default());
        }
        let opts = imgtool_core::CopyOptions { tags: vec![tag], ..Default::default() };
        if let Err(e) = imgtool_core::copy_image(&image, self.sink.as_ref(), &opts).await {
            tracing::warn!(cache = %self.name, error = %imgtool_core::error_chain(&e), "could not store a step in the cache repository");
        }
    }
}

const MARKER: &str = "org.imgtool.build-cache";

fn json_labels(value: &str) -> serde_json::Value {
    serde_json::json!({ MARKER: value })
}
