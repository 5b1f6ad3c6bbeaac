use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::{History, ImageConfig};
use crate::{Descriptor, Digest, Error, Flavor, Index, Manifest, MediaType, ParsedManifest, Platform, Result, SharedSource, read_blob};

/// The most manifest bytes read into memory.
pub const MANIFEST_LIMIT: u64 = 4 << 20;
/// The most config bytes read into memory.
pub const CONFIG_LIMIT: u64 = 32 << 20;

/// One layer: where its bytes are, and what they hash to compressed and uncompressed.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The compressed blob as the manifest lists it.
    pub descriptor: Descriptor,
    /// The sha256 of the uncompressed tar (`rootfs.diff_ids`).
    pub diff_id: Digest,
    /// Who holds the bytes; nothing is read until a sink needs them.
    pub source: SharedSource,
}

/// A single-platform image: config, layers and manifest annotations.
///
/// Loading one reads only its manifest and config. An image that was not edited keeps
/// its original manifest bytes, so copying it keeps its digest.
#[derive(Debug, Clone)]
pub struct Image {
    flavor: Flavor,
    config: ImageConfig,
    layers: Vec<Layer>,
    annotations: BTreeMap<String, String>,
    original: Option<(Descriptor, Bytes)>,
}

impl Image {
    /// An image with no layers (the `scratch` source).
    pub fn scratch(platform: &Platform, flavor: Flavor) -> Self {
        Self { flavor, config: ImageConfig::new(platform), layers: Vec::new(), annotations: BTreeMap::new(), original: None }
    }

    /// Load the image `selector` names in `source`, choosing `platform` (default: the
    /// host's) from an index. Only the manifest and config are read.
    pub async fn load(source: SharedSource, selector: Option<&str>, platform: Option<&Platform>) -> Result<Self> {
        let top = source.resolve(selector).await?;
        Self::load_descriptor(source, top, platform).await
    }

    /// As [`Image::load`], but a single image of another platform than `platform` is
    /// returned as it is, with the mismatch beside it for the caller to report.
    pub async fn load_any_platform(
        source: SharedSource,
        selector: Option<&str>,
        platform: Option<&Platform>,
    ) -> Result<(Self, Option<Error>)> {
        let top = source.resolve(selector).await?;
        Self::load_found(source, top, platform).await
    }

    /// Load the image whose manifest (or index) is `desc` in `source`. An index gives the
    /// image for `platform` (default the host's); an image that is not in an index must
    /// declare `platform` when one is named, as Docker requires.
    pub async fn load_descriptor(source: SharedSource, desc: Descriptor, platform: Option<&Platform>) -> Result<Self> {
        match Self::load_found(source, desc, platform).await? {
            (_, Some(mismatch)) => Err(mismatch),
            (image, None) => Ok(image),
        }
    }

    /// The image `desc` leads to, and whether it fails to be of the `platform` named.
    async fn load_found(source: SharedSource, mut desc: Descriptor, platform: Option<&Platform>) -> Result<(Self, Option<Error>)> {
        let mut from_index = false;
        for _ in 0..4 {
            let raw = read_blob(source.as_ref(), &desc, MANIFEST_LIMIT).await?;
            match ParsedManifest::parse(&raw, Some(&desc.media_type))? {
                ParsedManifest::Index(index) => {
                    desc = choose_platform(&index, platform, &source.describe())?.clone();
                    from_index = true;
                }
                ParsedManifest::Image(manifest) => {
                    let image = Self::from_manifest(source.clone(), desc, raw, *manifest).await?;
                    // The index's word for the platform was what chose it.
                    let mismatch = match (platform, from_index) {
                        (Some(wanted), false) if !declares(&image.platform(), wanted) => Some(Error::PlatformMismatch {
                            place: source.describe(),
                            found: image.platform().to_string(),
                            wanted: wanted.to_string(),
                        }),
                        _ => None,
                    };
                    return Ok((image, mismatch));
                }
            }
        }
        Err(Error::Unsupported(format!("{}: indexes nested more than 4 deep", source.describe())))
    }

    async fn from_manifest(source: SharedSource, desc: Descriptor, raw: Bytes, manifest: Manifest) -> Result<Self> {
        let config_raw = read_blob(source.as_ref(), &manifest.config, CONFIG_LIMIT).await?;
        let config = ImageConfig::parse(config_raw)?;
        let diff_ids = config.diff_ids()?;
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::InvalidImage {
                problems: vec![format!(
                    "{}: the manifest lists {} layers but the config has {} diff_ids",
                    source.describe(),
                    manifest.layers.len(),
                    diff_ids.len()
                )],
            });
        }
        let flavor = manifest
            .media_type
            .as_ref()
            .or(Some(&desc.media_type))
            .and_then(MediaType::flavor)
            .or_else(|| manifest.config.media_type.flavor())
            .unwrap_or_default();
        let layers = manifest
            .layers
            .iter()
            .zip(diff_ids)
            .map(|(d, diff_id)| Layer { descriptor: d.clone(), diff_id, source: source.clone() })
            .collect();
        let desc = Descriptor { platform: None, annotations: BTreeMap::new(), ..desc };
        Ok(Self { flavor, config, layers, annotations: manifest.annotations, original: Some((desc, raw)) })
    }

    /// The media type family the manifest uses.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// Switch to the other media type family (layer bytes are unchanged).
    pub fn set_flavor(&mut self, flavor: Flavor) {
        if flavor != self.flavor {
            self.original = None;
            self.flavor = flavor;
        }
    }

    /// The config.
    pub fn config(&self) -> &ImageConfig {
        &self.config
    }

    /// The config, for editing.
    pub fn config_mut(&mut self) -> &mut ImageConfig {
        self.original = None;
        &mut self.config
    }

    /// The layers, base first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Manifest annotations.
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        &self.annotations
    }

    /// Manifest annotations, for editing.
    pub fn annotations_mut(&mut self) -> &mut BTreeMap<String, String> {
        self.original = None;
        &mut self.annotations
    }

    /// Append a layer with its history entry (and diff_id in the config).
    pub fn push_layer(&mut self, layer: Layer, history: History) {
        self.original = None;
        self.config.push_layer(&layer.diff_id, history);
        self.layers.push(layer);
    }

    /// Remove the top `n` layers, as the seeds' `remove_layer()` does for one.
    pub fn remove_top_layers(&mut self, n: usize) -> Result<()> {
        if n > self.layers.len() {
            return Err(Error::Invalid {
                what: "remove_layers".into(),
                value: n.to_string(),
                why: format!("the image has only {} layers", self.layers.len()),
            });
        }
        for _ in 0..n {
            self.remove_layer_at(-1)?;
        }
        Ok(())
    }

    /// Remove the layer at `index` (0 is the base; negative counts from the top, -1 the top).
    pub fn remove_layer_at(&mut self, index: isize) -> Result<()> {
        let len = self.layers.len() as isize;
        let i = if index < 0 { len + index } else { index };
        if i < 0 || i >= len {
            return Err(Error::Invalid {
                what: "layer index".into(),
                value: index.to_string(),
                why: format!("the image has {len} layers (0..{len} or -1..-{len})"),
            });
        }
        self.original = None;
        self.config.remove_layer(i as usize)?;
        self.layers.remove(i as usize);
        Ok(())
    }

    /// The config blob's descriptor and bytes.
    pub fn config_blob(&self) -> (Descriptor, Bytes) {
        let raw = self.config.to_bytes();
        (Descriptor::of(MediaType::config(self.flavor), &raw), raw)
    }

    /// The manifest's descriptor and bytes: the original ones when nothing changed.
    pub fn manifest(&self) -> (Descriptor, Bytes) {
        if let Some((d, raw)) = &self.original {
            return (d.clone(), raw.clone());
        }
        let (config, _) = self.config_blob();
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MediaType::manifest(self.flavor)),
            artifact_type: None,
            config,
            layers: self
                .layers
                .iter()
                .map(|l| Descriptor { media_type: l.descriptor.media_type.to_flavor(self.flavor), ..l.descriptor.clone() })
                .collect(),
            subject: None,
            annotations: self.annotations.clone(),
        };
        let raw = Bytes::from(serde_json::to_vec_pretty(&manifest).unwrap_or_default());
        (Descriptor::of(MediaType::manifest(self.flavor), &raw), raw)
    }

    /// The manifest's digest.
    pub fn digest(&self) -> Digest {
        self.manifest().0.digest
    }

    /// The platform, for index entries.
    pub fn platform(&self) -> Platform {
        self.config.platform()
    }

    /// Swap the base under this image, as `crane rebase` does: `old`'s layers must be this
    /// image's bottom layers (same diff_ids, in order) and its history the start of this
    /// image's; they are replaced by `new`'s layers and history. The config is otherwise
    /// this image's own.
    pub fn rebase(&mut self, old: &Image, new: &Image) -> Result<()> {
        let refuse = |why: String| Error::Invalid { what: "old base".into(), value: old.digest().to_string(), why };
        let n = old.layers.len();
        if let Some(k) = (0..n).find(|&k| self.layers.get(k).map(|l| &l.diff_id) != Some(&old.layers[k].diff_id)) {
            return Err(refuse(format!(
                "the image is not built on it: the image's layer {k} is {}, the old base's is {}",
                self.layers.get(k).map_or_else(|| "missing".to_string(), |l| l.diff_id.to_string()),
                old.layers[k].diff_id
            )));
        }
        let (from, to) = (old.platform(), new.platform());
        if (&from.os, &from.architecture) != (&to.os, &to.architecture) {
            return Err(refuse(format!("the new base is for {to}, the old one for {from}")));
        }
        let (history, old_history) = (self.config.history()?, old.config.history()?);
        if history.len() < old_history.len() {
            return Err(refuse(format!(
                "the image has {} history entries, fewer than the old base's {}",
                history.len(),
                old_history.len()
            )));
        }
        let mut new_history = new.config.history()?;
        // As crane does: a base without history for each layer gets entries, so the
        // result's history still counts every layer.
        let described = new_history.iter().filter(|h| !h.empty_layer).count();
        for _ in described..new.layers.len() {
            new_history
                .push(crate::History { created_by: Some("imgtool rebase (the new base has no history)".into()), ..Default::default() });
        }
        new_history.extend(history[old_history.len()..].iter().cloned());
        let mut layers = new.layers.clone();
        layers.extend(self.layers.drain(n..));
        let diff_ids: Vec<&Digest> = layers.iter().map(|l| &l.diff_id).collect();
        let m = self.config.json_mut();
        m.insert("rootfs".into(), serde_json::json!({"type": "layers", "diff_ids": diff_ids}));
        m.insert("history".into(), serde_json::to_value(new_history).unwrap_or_default());
        self.layers = layers;
        self.original = None;
        Ok(())
    }

    /// Replace all layers (with their history) by the given ones, keeping empty-layer history.
    pub fn replace_layers(&mut self, layers: Vec<(Layer, History)>) {
        self.original = None;
        let kept: Vec<History> = self.config.history().unwrap_or_default().into_iter().filter(|h| h.empty_layer).collect();
        let m = self.config.json_mut();
        m.insert("rootfs".into(), serde_json::json!({"type": "layers", "diff_ids": []}));
        m.insert("history".into(), serde_json::to_value(kept).unwrap_or_default());
        self.layers.clear();
        for (l, h) in layers {
            self.push_layer(l, h);
        }
    }
}

impl Image {
    /// Run `producer` on this image and append the layers it makes (it may also have
    /// edited the config). New files and history get the time `epoch`.
    pub async fn add_layers(
        self,
        producer: &dyn crate::LayerProducer,
        spool_dir: &std::path::Path,
        epoch: i64,
        compression: crate::Compression,
    ) -> Result<Self> {
        let mut cx = crate::BuildContext { image: self, spool_dir: spool_dir.to_path_buf(), epoch, compression };
        let layers = producer.produce(&mut cx).await?;
        let mut image = cx.image;
        for l in layers {
            image.push_layer(l.layer, l.history);
        }
        Ok(image)
    }
}

/// Pick the entry for `wanted` (default: the host platform) from an index.
pub fn choose_platform<'a>(index: &'a Index, wanted: Option<&Platform>, place: &str) -> Result<&'a Descriptor> {
    let images: Vec<&Descriptor> = index.manifests.iter().filter(|d| d.media_type.is_manifest() || d.media_type.is_index()).collect();
    if wanted.is_none() && images.len() == 1 {
        return Ok(images[0]);
    }
    let host = Platform::host();
    let want = wanted.unwrap_or(&host);
    images.iter().copied().find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p))).ok_or_else(|| Error::NoPlatform {
        wanted: want.to_string(),
        place: place.to_string(),
        available: images.iter().filter_map(|d| d.platform.as_ref().map(ToString::to_string)).collect::<Vec<_>>().join(", "),
    })
}

/// Whether a config declaring `found` is an image for `wanted`. What the config leaves out
/// (no os, no variant: many images say only `architecture`) is not held against it.
fn declares(found: &Platform, wanted: &Platform) -> bool {
    if found.architecture.is_empty() {
        return true;
    }
    let os = found.os.is_empty() || found.os == wanted.os;
    let variant = match (&found.variant, &wanted.variant) {
        (Some(_), Some(_)) => wanted.matches(found),
        _ => true,
    };
    os && found.architecture == wanted.architecture && variant
}

/// A shared image handle.
pub type SharedImage = Arc<Image>;
