use std::fmt::Debug;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncRead;

use crate::{Compression, Descriptor, Image, Layer, Reference, Result, config::History};

/// A blob's bytes, streamed: nothing is ever held whole in memory.
pub type BlobStream = Pin<Box<dyn AsyncRead + Send>>;

/// Something that holds blobs and manifests: a registry repository, an OCI layout,
/// a docker-save tarball, a spooled layer.
#[async_trait]
pub trait BlobSource: Send + Sync + Debug {
    /// The descriptor of the manifest (or index) that `selector` names: a tag, a
    /// `name:tag`, or `None` for the source's only or default image.
    async fn resolve(&self, selector: Option<&str>) -> Result<Descriptor>;

    /// Stream a blob's bytes. Callers verify them (see [`crate::verify`]).
    async fn open(&self, desc: &Descriptor) -> Result<BlobStream>;

    /// Whether the source holds the blob.
    async fn exists(&self, desc: &Descriptor) -> Result<bool>;

    /// A short name for messages, in transport syntax (`oci:dir`, `docker://...`).
    fn describe(&self) -> String;

    /// The registry repository the blobs live in, so a sink on the same registry can
    /// mount instead of copying.
    fn mount_origin(&self) -> Option<Reference> {
        None
    }
}

/// Somewhere an image is written: a registry, a docker-save tarball, an OCI layout.
/// Writes become visible only at [`ImageSink::finish`].
#[async_trait]
pub trait ImageSink: Send + Sync + Debug {
    /// Whether the sink already has this blob, so copying can skip it.
    async fn has_blob(&self, desc: &Descriptor) -> Result<bool>;

    /// Store a blob, refusing bytes whose digest or size differ from `desc`.
    async fn put_blob(&self, desc: &Descriptor, data: BlobStream) -> Result<()>;

    /// Make a blob present without moving its bytes (cross-repository mount).
    /// `Ok(false)` means not possible here; the caller then copies.
    async fn mount_blob(&self, _desc: &Descriptor, _from: &dyn BlobSource) -> Result<bool> {
        Ok(false)
    }

    /// Store a manifest or index whose blobs are all present, naming it with `tags`
    /// (whose syntax is the sink's: a tag, or `name:tag` in a docker archive).
    async fn put_manifest(&self, desc: &Descriptor, raw: Bytes, tags: &[String]) -> Result<()>;

    /// Commit everything written: rename into place, write indexes.
    async fn finish(self: Box<Self>) -> Result<()>;

    /// A short name for messages, in transport syntax.
    fn describe(&self) -> String;

    /// How many blobs may be written at once. Sinks that write one stream (a tarball)
    /// say 1, so that the order, and so the bytes, of what they write never varies.
    fn max_parallel(&self) -> usize {
        usize::MAX
    }
}

/// What a [`LayerProducer`] works with: the image built so far and where to spool.
#[derive(Debug)]
pub struct BuildContext {
    /// The image so far; producers may also edit its config.
    pub image: Image,
    /// A directory for temporary files that live as long as the build.
    pub spool_dir: PathBuf,
    /// The timestamp for new files and history (`SOURCE_DATE_EPOCH` or 0).
    pub epoch: i64,
    /// How new layers are compressed.
    pub compression: Compression,
}

/// A layer just made, with its history entry.
#[derive(Debug, Clone)]
pub struct NewLayer {
    /// The layer; its digests exist because it was written in full.
    pub layer: Layer,
    /// Its history entry.
    pub history: History,
}

/// Makes new layers (and possibly config edits) on top of the image built so far.
#[async_trait]
pub trait LayerProducer: Send + Sync + Debug {
    /// One line for plans, progress and `history.created_by`.
    fn describe(&self) -> String;

    /// Make the layers. They are appended to the image in the order returned.
    async fn produce(&self, cx: &mut BuildContext) -> Result<Vec<NewLayer>>;
}

/// A shared handle to a blob source.
pub type SharedSource = Arc<dyn BlobSource>;
