//! OCI layouts (directory and tar) and docker-save tarballs as blob sources.

use std::collections::HashMap;
use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;
use imgtool_core::{
    BlobSource, BlobStream, Compression, Descriptor, Digest, Error as CoreError, ImageConfig, Index, Manifest, MediaType, MemoryBlobs,
    ParsedManifest, Reference, Result, canonical_json,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Error;
use crate::store::{DirStore, Store, TarStore, blob_path};

/// The annotation naming an image in an OCI layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd and Docker 25+ put the full image name in.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

const SMALL: u64 = 32 << 20;

fn read_index(store: &dyn Store) -> Result<Option<Index>, Error> {
    let Some(raw) = store.read_small("index.json", SMALL)? else { return Ok(None) };
    let index = serde_json::from_slice(&raw)
        .map_err(|e| Error::Format { place: format!("{}/index.json", store.describe()), why: e.to_string() })?;
    Ok(Some(index))
}

/// Does an index entry answer to `selector`: its ref name, or the tag or full name
/// containerd records.
pub(crate) fn entry_matches(d: &Descriptor, selector: &str) -> bool {
    if d.annotations.get(REF_NAME).is_some_and(|r| r == selector) {
        return true;
    }
    let Some(full) = d.annotations.get(CONTAINERD_NAME) else { return false };
    full == selector
        || match (full.parse::<Reference>(), selector.parse::<Reference>()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
}

pub(crate) fn names_of(index: &Index) -> String {
    let names: Vec<&str> = index
        .manifests
        .iter()
        .filter_map(|d| d.annotations.get(REF_NAME).or_else(|| d.annotations.get(CONTAINERD_NAME)).map(String::as_str))
        .collect();
    if names.is_empty() { "(no names)".into() } else { names.join(", ") }
}

/// An OCI image layout, in a directory (`oci:DIR`) or a tar (`oci-archive:FILE`).
#[derive(Debug)]
pub struct OciLayoutSource {
    store: Box<dyn Store>,
    index: Index,
    transport: String,
}

impl OciLayoutSource {
    /// Open a layout directory.
    pub fn open_dir(dir: &Path) -> Result<Self, Error> {
        Self::new(Box::new(DirStore { root: dir.to_path_buf() }), format!("oci:{}", dir.display()))
    }

    /// Open a layout tar (`oci-archive`).
    pub fn open_archive(file: &Path) -> Result<Self, Error> {
        Self::new(Box::new(TarStore::open(file)?), format!("oci-archive:{}", file.display()))
    }

    fn new(store: Box<dyn Store>, transport: String) -> Result<Self, Error> {
        if store.size("oci-layout").is_none() {
            return Err(Error::Format {
                place: transport,
                why: "not an OCI image layout (no oci-layout file); for a `docker save` tarball use docker-archive:".into(),
            });
        }
        let index = read_index(store.as_ref())?
            .ok_or_else(|| Error::Format { place: transport.clone(), why: "the layout has no index.json".into() })?;
        Ok(Self { store, index, transport })
    }

    /// The layout's `index.json`.
    pub fn index(&self) -> &Index {
        &self.index
    }
}

#[async_trait]
impl BlobSource for OciLayoutSource {
    async fn resolve(&self, selector: Option<&str>) -> Result<Descriptor> {
        let found: Vec<&Descriptor> = match selector {
            Some(s) => self.index.manifests.iter().filter(|d| entry_matches(d, s)).collect(),
            None => self.index.manifests.iter().collect(),
        };
        match (found.as_slice(), selector) {
            ([one], _) => Ok((*one).clone()),
            ([], Some(s)) => Err(CoreError::NotFound {
                what: format!("image {s:?}"),
                place: format!("{} (it has: {})", self.transport, names_of(&self.index)),
            }),
            ([], None) => Err(CoreError::NotFound { what: "any image".into(), place: self.transport.clone() }),
            (_, _) => Err(CoreError::Invalid {
                what: "image selection".into(),
                value: self.transport.clone(),
                why: format!("the layout holds several images; name one with {}:NAME (it has: {})", self.transport, names_of(&self.index)),
            }),
        }
    }

    async fn open(&self, desc: &Descriptor) -> Result<BlobStream> {
        self.store
            .open(&blob_path(&desc.digest))
            .await?
            .ok_or_else(|| CoreError::NotFound { what: format!("blob {}", desc.digest), place: self.transport.clone() })
    }

    async fn exists(&self, desc: &Descriptor) -> Result<bool> {
        Ok(self.store.size(&blob_path(&desc.digest)).is_some())
    }

    fn describe(&self) -> String {
        self.transport.clone()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

#[derive(Debug)]
struct ArchivedImage {
    tags: Vec<String>,
    manifest: Descriptor,
}

/// A `docker save` tarball (`docker-archive:FILE`): the v1.2 format with `manifest.json`,
/// Docker 25+'s OCI layout inside it, and legacy tarballs with only `repositories`.
#[derive(Debug)]
pub struct DockerArchiveSource {
    store: TarStore,
    images: Vec<ArchivedImage>,
    paths: HashMap<Digest, String>,
    memory: MemoryBlobs,
    transport: String,
}

fn path_digest(p: &str) -> Option<Digest> {
    let rest = p.strip_prefix("blobs/")?;
    let (alg, hex) = rest.split_once('/')?;
    format!("{alg}:{hex}").parse().ok()
}

impl DockerArchiveSource {
    /// Index a docker-save tarball.
    pub fn open(file: &Path) -> Result<Self, Error> {
        let store = TarStore::open(file)?;
        let transport = format!("docker-archive:{}", file.display());
        let mut me = Self { store, images: Vec::new(), paths: HashMap::new(), memory: MemoryBlobs::default(), transport };
        match me.store.read_small("manifest.json", SMALL)? {
            Some(raw) => {
                let entries: Vec<SaveEntry> = serde_json::from_slice(&raw)
                    .map_err(|e| Error::Format { place: format!("{}: manifest.json", me.transport), why: e.to_string() })?;
                let stored = me.stored_manifests()?;
                for e in entries {
                    me.add_entry(e, &stored)?;
                }
            }
            None => me.add_legacy()?,
        }
        if me.images.is_empty() {
            return Err(Error::Format { place: me.transport, why: "the tarball holds no image".into() });
        }
        Ok(me)
    }

    fn bad(&self, why: impl Into<String>) -> Error {
        Error::Format { place: self.transport.clone(), why: why.into() }
    }

    /// Manifests stored in a Docker 25+ tarball's index.json, by config digest.
    fn stored_manifests(&self) -> Result<HashMap<Digest, (Descriptor, Manifest)>, Error> {
        let mut out = HashMap::new();
        let Some(index) = read_index(&self.store)? else { return Ok(out) };
        let mut todo: Vec<Descriptor> = index.manifests;
        while let Some(d) = todo.pop() {
            let Some(raw) = self.store.read_small(&blob_path(&d.digest), SMALL)? else { continue };
            if Digest::sha256_of(&raw) != d.digest {
                continue;
            }
            match ParsedManifest::parse(&raw, Some(&d.media_type)) {
                Ok(ParsedManifest::Image(m)) => {
                    out.insert(m.config.digest.clone(), (Descriptor::of(d.media_type.clone(), &raw), *m));
                }
                Ok(ParsedManifest::Index(i)) => todo.extend(i.manifests),
                Err(_) => {}
            }
        }
        Ok(out)
    }

    fn add_entry(&mut self, e: SaveEntry, stored: &HashMap<Digest, (Descriptor, Manifest)>) -> Result<(), Error> {
        let config_raw = self
            .store
            .read_small(&e.config, SMALL)?
            .ok_or_else(|| self.bad(format!("manifest.json names {} but it is missing", e.config)))?;
        let config_digest = Digest::sha256_of(&config_raw);
        self.paths.insert(config_digest.clone(), e.config.clone());
        let tags = e.repo_tags.unwrap_or_default();
        if let Some((desc, m)) = stored.get(&config_digest)
            && m.layers.len() == e.layers.len()
            && m.layers.iter().all(|l| self.store.size(&blob_path(&l.digest)) == Some(l.size))
        {
            for l in &m.layers {
                self.paths.insert(l.digest.clone(), blob_path(&l.digest));
            }
            self.paths.insert(desc.digest.clone(), blob_path(&desc.digest));
            self.images.push(ArchivedImage { tags, manifest: desc.clone() });
            return Ok(());
        }
        let config = ImageConfig::parse(Bytes::from(config_raw.clone()))?;
        let diff_ids = config.diff_ids()?;
        if diff_ids.len() != e.layers.len() {
            return Err(self.bad(format!("{} lists {} layers but its config has {} diff_ids", e.config, e.layers.len(), diff_ids.len())));
        }
        let mut layers = Vec::new();
        for (path, diff_id) in e.layers.iter().zip(diff_ids) {
            let size = self.store.size(path).ok_or_else(|| self.bad(format!("layer {path} is missing")))?;
            let compression = Compression::sniff(&self.store.head(path, 4)?);
            let digest = match (compression, path_digest(path)) {
                (Compression::None, _) => diff_id,
                (_, Some(d)) => d,
                (_, None) => self.hash_member(path)?,
            };
            self.paths.insert(digest.clone(), path.clone());
            layers.push(Descriptor::new(MediaType::layer(imgtool_core::Flavor::Docker, compression), digest, size));
        }
        let config = Descriptor::new(MediaType::DockerConfig, config_digest, config_raw.len() as u64);
        self.add_synthesized(config, layers, tags)
    }

    /// Record an image whose tarball stores no manifest, with one written for it.
    fn add_synthesized(&mut self, config: Descriptor, layers: Vec<Descriptor>, tags: Vec<String>) -> Result<(), Error> {
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MediaType::DockerManifest),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: Default::default(),
        };
        let raw = serde_json::to_vec_pretty(&manifest).map_err(|e| self.bad(e.to_string()))?;
        let desc = Descriptor::of(MediaType::DockerManifest, &raw);
        self.memory.insert(Bytes::from(raw));
        self.images.push(ArchivedImage { tags, manifest: desc });
        Ok(())
    }

    fn hash_member(&self, path: &str) -> Result<Digest, Error> {
        self.store.hash(path)
    }

    /// Tarballs from before Docker 1.10: `repositories` and `<id>/json` + `<id>/layer.tar`.
    fn add_legacy(&mut self) -> Result<(), Error> {
        let raw = self.store.read_small("repositories", SMALL)?.ok_or_else(|| {
            self.bad(
                "neither manifest.json nor repositories found; this is not a docker save tarball (for an OCI layout tar use oci-archive:)",
            )
        })?;
        let repos: HashMap<String, HashMap<String, String>> =
            serde_json::from_slice(&raw).map_err(|e| self.bad(format!("repositories: {e}")))?;
        let mut tops: Vec<(String, String)> =
            repos.into_iter().flat_map(|(r, tags)| tags.into_iter().map(move |(t, id)| (format!("{r}:{t}"), id))).collect();
        tops.sort();
        for (tag, top) in tops {
            let mut chain = Vec::new();
            let mut id = Some(top);
            while let Some(cur) = id.take() {
                if chain.len() > 500 {
                    return Err(self.bad("the layer parent chain loops"));
                }
                let j = self.store.read_small(&format!("{cur}/json"), SMALL)?.ok_or_else(|| self.bad(format!("{cur}/json is missing")))?;
                let v: Value = serde_json::from_slice(&j).map_err(|e| self.bad(format!("{cur}/json: {e}")))?;
                id = v.get("parent").and_then(Value::as_str).map(str::to_string);
                chain.push((cur, v));
            }
            chain.reverse();
            let mut config = chain.last().map(|(_, v)| v.clone()).unwrap_or(json!({}));
            if let Some(m) = config.as_object_mut() {
                for k in ["id", "parent", "Size", "layer_id"] {
                    m.remove(k);
                }
            }
            let mut diff_ids = Vec::new();
            let mut history = Vec::new();
            let mut layers = Vec::new();
            for (id, v) in &chain {
                let path = format!("{id}/layer.tar");
                let size = self.store.size(&path).ok_or_else(|| self.bad(format!("{path} is missing")))?;
                if Compression::sniff(&self.store.head(&path, 4)?) != Compression::None {
                    return Err(self.bad(format!("{path} is compressed, which legacy tarballs never are")));
                }
                let d = self.hash_member(&path)?;
                self.paths.insert(d.clone(), path);
                diff_ids.push(d.to_string());
                let cmd = v
                    .pointer("/container_config/Cmd")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "));
                history.push(json!({"created": v.get("created"), "created_by": cmd.unwrap_or_default()}));
                layers.push(Descriptor::new(MediaType::DockerLayer, d, size));
            }
            config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
            config["history"] = json!(history);
            let craw = Bytes::from(canonical_json(&config));
            let cdesc = Descriptor::of(MediaType::DockerConfig, &craw);
            self.memory.insert(craw);
            self.add_synthesized(cdesc, layers, vec![tag])?;
        }
        Ok(())
    }

    /// The `name:tag`s of the images in the tarball, in order.
    pub fn tags(&self) -> Vec<Vec<String>> {
        self.images.iter().map(|i| i.tags.clone()).collect()
    }
}

fn same_tag(a: &str, b: &str) -> bool {
    a == b
        || match (a.parse::<Reference>(), b.parse::<Reference>()) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
}

#[async_trait]
impl BlobSource for DockerArchiveSource {
    async fn resolve(&self, selector: Option<&str>) -> Result<Descriptor> {
        let all = || self.images.iter().flat_map(|i| i.tags.iter().cloned()).collect::<Vec<_>>().join(", ");
        match selector {
            None if self.images.len() == 1 => Ok(self.images[0].manifest.clone()),
            None => Err(CoreError::Invalid {
                what: "image selection".into(),
                value: self.transport.clone(),
                why: format!(
                    "the tarball holds {} images; name one as {}:NAME:TAG or {}:@N (it has: {})",
                    self.images.len(),
                    self.transport,
                    self.transport,
                    all()
                ),
            }),
            Some(s) if s.starts_with('@') => {
                let n: usize = s[1..].parse().map_err(|_| CoreError::Invalid {
                    what: "image index".into(),
                    value: s.into(),
                    why: "expected @N".into(),
                })?;
                self.images
                    .get(n)
                    .map(|i| i.manifest.clone())
                    .ok_or_else(|| CoreError::NotFound { what: format!("image {s}"), place: self.transport.clone() })
            }
            Some(s) => self.images.iter().find(|i| i.tags.iter().any(|t| same_tag(t, s))).map(|i| i.manifest.clone()).ok_or_else(|| {
                CoreError::NotFound { what: format!("image {s:?}"), place: format!("{} (it has: {})", self.transport, all()) }
            }),
        }
    }

    async fn open(&self, desc: &Descriptor) -> Result<BlobStream> {
        if self.memory.exists(desc).await? {
            return self.memory.open(desc).await;
        }
        let path = self.paths.get(&desc.digest).cloned().unwrap_or_else(|| blob_path(&desc.digest));
        self.store
            .open(&path)
            .await?
            .ok_or_else(|| CoreError::NotFound { what: format!("blob {}", desc.digest), place: self.transport.clone() })
    }

    async fn exists(&self, desc: &Descriptor) -> Result<bool> {
        Ok(self.memory.exists(desc).await? || self.paths.contains_key(&desc.digest) || self.store.size(&blob_path(&desc.digest)).is_some())
    }

    fn describe(&self) -> String {
        self.transport.clone()
    }
}
