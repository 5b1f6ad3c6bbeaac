use std::collections::HashSet;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, ReadBuf};

use crate::{BlobSource, BlobStream, Descriptor, Image, ImageSink, Index, MediaType, Result};

/// What happened to one blob during a copy, for progress output.
#[derive(Debug, Clone)]
pub enum CopyEvent {
    /// The sink already had it.
    Skipped(Descriptor),
    /// The sink mounted it from the source repository.
    Mounted(Descriptor),
    /// Its bytes started moving.
    Started(Descriptor),
    /// More bytes moved.
    Bytes(Descriptor, u64),
    /// Its bytes are stored.
    Done(Descriptor),
    /// A manifest was written.
    Manifest(Descriptor),
}

/// Receives copy events (a progress bar, a log).
pub trait Progress: Send + Sync {
    /// One event.
    fn event(&self, event: CopyEvent);
}

/// How to copy.
#[derive(Clone, Default)]
pub struct CopyOptions {
    /// Names for the image at the sink, in the sink's syntax.
    pub tags: Vec<String>,
    /// Blobs moved at once (0 means 4).
    pub jobs: usize,
    /// Where to report progress.
    pub progress: Option<Arc<dyn Progress>>,
}

impl std::fmt::Debug for CopyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyOptions").field("tags", &self.tags).field("jobs", &self.jobs).finish()
    }
}

impl CopyOptions {
    fn emit(&self, e: CopyEvent) {
        if let Some(p) = &self.progress {
            p.event(e);
        }
    }
}

struct Counting {
    inner: BlobStream,
    desc: Descriptor,
    progress: Arc<dyn Progress>,
}

impl AsyncRead for Counting {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = self.inner.as_mut().poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            self.progress.event(CopyEvent::Bytes(self.desc.clone(), n));
        }
        r
    }
}

/// Copy one blob from `source` to `sink` unless the sink has it or can mount it.
pub async fn copy_blob(desc: &Descriptor, source: &dyn BlobSource, sink: &dyn ImageSink, opts: &CopyOptions) -> Result<()> {
    if sink.has_blob(desc).await? {
        opts.emit(CopyEvent::Skipped(desc.clone()));
        return Ok(());
    }
    if sink.mount_blob(desc, source).await? {
        opts.emit(CopyEvent::Mounted(desc.clone()));
        return Ok(());
    }
    opts.emit(CopyEvent::Started(desc.clone()));
    let mut attempt = 0;
    loop {
        attempt += 1;
        // Sinks verify what they store (their contract), so the stream goes through as is.
        let mut stream = source.open(desc).await?;
        if let Some(p) = &opts.progress {
            stream = Box::pin(Counting { inner: stream, desc: desc.clone(), progress: p.clone() });
        }
        match sink.put_blob(desc, stream).await {
            Ok(()) => break,
            // A streamed upload cannot be replayed below us: start it again from the source.
            Err(e) if e.is_transient() && attempt < 3 => {
                tracing::info!(digest = %desc.digest, attempt, "retrying the blob: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(500 * attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
    opts.emit(CopyEvent::Done(desc.clone()));
    Ok(())
}

async fn copy_image_blobs(image: &Image, sink: &dyn ImageSink, opts: &CopyOptions) -> Result<()> {
    let (config_desc, config_raw) = image.config_blob();
    let config = crate::MemoryBlobs::default();
    config.insert(config_raw);
    copy_blob(&config_desc, &config, sink, opts).await?;
    let mut seen = HashSet::new();
    let layers: Vec<_> = image.layers().iter().filter(|l| seen.insert(l.descriptor.digest.clone())).collect();
    let jobs = if opts.jobs == 0 { 4 } else { opts.jobs }.min(sink.max_parallel()).max(1);
    futures::stream::iter(layers)
        .map(|l| copy_blob(&l.descriptor, l.source.as_ref(), sink, opts))
        .buffered(jobs)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Copy an image into `sink`: blobs in parallel (skipped when present, mounted when
/// possible), the manifest last, named with `opts.tags`. Returns the manifest descriptor.
/// The sink is not finished; call [`ImageSink::finish`] when everything is written.
pub async fn copy_image(image: &Image, sink: &dyn ImageSink, opts: &CopyOptions) -> Result<Descriptor> {
    let (desc, raw) = image.manifest();
    copy_image_blobs(image, sink, opts).await?;
    sink.put_manifest(&desc, raw, &opts.tags).await?;
    opts.emit(CopyEvent::Manifest(desc.clone()));
    Ok(desc)
}

/// Copy several platform images and an index over them, tagged with `opts.tags`.
pub async fn copy_index(images: &[Image], sink: &dyn ImageSink, opts: &CopyOptions) -> Result<Descriptor> {
    let mut index = Index::new();
    let docker = images.iter().all(|i| i.flavor() == crate::Flavor::Docker);
    if docker {
        index.media_type = Some(MediaType::DockerManifestList);
    }
    for image in images {
        copy_image_blobs(image, sink, opts).await?;
        let (mut desc, raw) = image.manifest();
        sink.put_manifest(&desc, raw, &[]).await?;
        let mut p = image.platform();
        if p.variant.as_deref() == Some("") {
            p.variant = None;
        }
        desc.platform = Some(p);
        index.manifests.push(desc);
    }
    let raw = bytes::Bytes::from(serde_json::to_vec_pretty(&index).unwrap_or_default());
    let desc = Descriptor::of(index.media_type.clone().unwrap_or(MediaType::OciIndex), &raw);
    sink.put_manifest(&desc, raw, &opts.tags).await?;
    opts.emit(CopyEvent::Manifest(desc.clone()));
    Ok(desc)
}

/// Copy the manifest or index `desc` from `source` with everything it references, bytes
/// unchanged (so every digest, the index's included, stays the same), tagging the top
/// with `opts.tags`. This is `copy --all`: every platform, and entries that are not images
/// (attestations, signatures) too.
pub async fn copy_manifest_tree(source: &dyn BlobSource, desc: &Descriptor, sink: &dyn ImageSink, opts: &CopyOptions) -> Result<()> {
    copy_tree(source, desc, sink, opts, &opts.tags, 0).await?;
    opts.emit(CopyEvent::Manifest(desc.clone()));
    Ok(())
}

fn copy_tree<'a>(
    source: &'a dyn BlobSource,
    desc: &'a Descriptor,
    sink: &'a dyn ImageSink,
    opts: &'a CopyOptions,
    tags: &'a [String],
    depth: usize,
) -> futures::future::BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        if depth > 4 {
            return Err(crate::Error::Unsupported(format!("{}: indexes nested more than 4 deep", source.describe())));
        }
        let raw = crate::read_blob(source, desc, crate::MANIFEST_LIMIT).await?;
        match crate::ParsedManifest::parse(&raw, Some(&desc.media_type))? {
            crate::ParsedManifest::Index(index) => {
                for child in &index.manifests {
                    copy_tree(source, child, sink, opts, &[], depth + 1).await?;
                }
            }
            crate::ParsedManifest::Image(m) => {
                copy_blob(&m.config, source, sink, opts).await?;
                let jobs = if opts.jobs == 0 { 4 } else { opts.jobs }.min(sink.max_parallel()).max(1);
                let mut seen = HashSet::new();
                let copies: Vec<_> =
                    m.layers.iter().filter(|l| seen.insert(l.digest.clone())).map(|l| copy_blob(l, source, sink, opts)).collect();
                futures::stream::iter(copies).buffered(jobs).try_collect::<Vec<()>>().await?;
            }
        }
        let clean = Descriptor { platform: None, annotations: Default::default(), ..desc.clone() };
        sink.put_manifest(&clean, raw, tags).await
    })
}
