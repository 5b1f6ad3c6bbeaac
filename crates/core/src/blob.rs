use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use crate::{BlobSource, BlobStream, Descriptor, Digest, Error, Hasher, Result};

/// Wraps a stream and fails it at the end when the bytes do not match the descriptor's
/// digest and size (or earlier, as soon as there are too many bytes).
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
    size: u64,
    what: String,
}

/// Verify `stream` against `desc` as it is read.
pub fn verify(desc: &Descriptor, stream: BlobStream) -> BlobStream {
    Box::pin(VerifyingReader {
        inner: stream,
        hasher: Some(desc.digest.hasher()),
        expected: desc.digest.clone(),
        size: desc.size,
        what: desc.digest.to_string(),
    })
}

fn invalid(e: Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<R: AsyncRead + Unpin> AsyncRead for VerifyingReader<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        let Some(h) = this.hasher.as_mut() else { return Poll::Ready(Ok(())) };
        h.update(new);
        if h.len() > this.size {
            let actual = h.len();
            this.hasher = None;
            buf.set_filled(before);
            return Poll::Ready(Err(invalid(Error::SizeMismatch { what: this.what.clone(), expected: this.size, actual })));
        }
        if new.is_empty() {
            let h = this.hasher.take().expect("checked above");
            if h.len() != this.size {
                buf.set_filled(before);
                return Poll::Ready(Err(invalid(Error::SizeMismatch { what: this.what.clone(), expected: this.size, actual: h.len() })));
            }
            let actual = h.finish();
            if actual != this.expected {
                buf.set_filled(before);
                return Poll::Ready(Err(invalid(Error::DigestMismatch {
                    what: this.what.clone(),
                    expected: this.expected.clone(),
                    actual,
                })));
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Read a small blob (manifest, config) whole, verified, refusing more than `limit` bytes.
pub async fn read_blob(source: &dyn BlobSource, desc: &Descriptor, limit: u64) -> Result<Bytes> {
    if desc.size > limit {
        return Err(Error::TooLarge { what: format!("{} {}", desc.media_type, desc.digest), limit });
    }
    let mut stream = verify(desc, source.open(desc).await?);
    let mut buf = Vec::with_capacity(desc.size as usize);
    stream.read_to_end(&mut buf).await.map_err(|e| Error::io(format!("reading {} from {}", desc.digest, source.describe()), e))?;
    Ok(Bytes::from(buf))
}

/// A blob source serving one file (a spooled layer). The file lives as long as the source.
#[derive(Debug)]
pub struct FileBlob {
    path: PathBuf,
    desc: Descriptor,
    _guard: Option<Arc<(tempfile::TempPath, crate::Tracked)>>,
}

impl FileBlob {
    /// Serve `path` as the blob `desc`. A temporary path is deleted when the last handle goes.
    pub fn new(path: impl Into<PathBuf>, desc: Descriptor) -> Self {
        Self { path: path.into(), desc, _guard: None }
    }

    /// Serve a temporary file, deleting it when the last handle goes, or on an interrupt.
    pub fn temporary(path: tempfile::TempPath, desc: Descriptor) -> Self {
        let tracked = crate::track_path(&path);
        Self { path: path.to_path_buf(), desc, _guard: Some(Arc::new((path, tracked))) }
    }

    /// Where the bytes are.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl BlobSource for FileBlob {
    async fn resolve(&self, _selector: Option<&str>) -> Result<Descriptor> {
        Err(Error::Unsupported(format!("{} holds a single blob, not an image", self.describe())))
    }

    async fn open(&self, desc: &Descriptor) -> Result<BlobStream> {
        if desc.digest != self.desc.digest {
            return Err(Error::NotFound { what: desc.digest.to_string(), place: self.describe() });
        }
        let f = tokio::fs::File::open(&self.path).await.map_err(|e| Error::io(format!("opening {}", self.path.display()), e))?;
        Ok(Box::pin(tokio::io::BufReader::with_capacity(256 * 1024, f)))
    }

    async fn exists(&self, desc: &Descriptor) -> Result<bool> {
        Ok(desc.digest == self.desc.digest)
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

/// A blob source over blobs held in memory (small ones: manifests, configs).
#[derive(Debug, Default)]
pub struct MemoryBlobs {
    blobs: std::sync::Mutex<std::collections::HashMap<Digest, Bytes>>,
}

impl MemoryBlobs {
    /// Add a blob.
    pub fn insert(&self, data: Bytes) -> Digest {
        let d = Digest::sha256_of(&data);
        self.blobs.lock().unwrap_or_else(|p| p.into_inner()).insert(d.clone(), data);
        d
    }

    fn get(&self, d: &Digest) -> Option<Bytes> {
        self.blobs.lock().unwrap_or_else(|p| p.into_inner()).get(d).cloned()
    }
}

#[async_trait]
impl BlobSource for MemoryBlobs {
    async fn resolve(&self, _selector: Option<&str>) -> Result<Descriptor> {
        Err(Error::Unsupported("an in-memory blob set has no tags".into()))
    }

    async fn open(&self, desc: &Descriptor) -> Result<BlobStream> {
        let b = self.get(&desc.digest).ok_or_else(|| Error::NotFound { what: desc.digest.to_string(), place: self.describe() })?;
        Ok(Box::pin(io::Cursor::new(b)))
    }

    async fn exists(&self, desc: &Descriptor) -> Result<bool> {
        Ok(self.get(&desc.digest).is_some())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MediaType;

    #[tokio::test]
    async fn verifying_reader_catches_wrong_bytes() {
        let desc = Descriptor::of(MediaType::OciConfig, b"hello");
        let mut ok = verify(&desc, Box::pin(io::Cursor::new(b"hello".to_vec())));
        let mut v = Vec::new();
        ok.read_to_end(&mut v).await.unwrap();
        let mut bad = verify(&desc, Box::pin(io::Cursor::new(b"hellp".to_vec())));
        let e = Error::io("x", bad.read_to_end(&mut Vec::new()).await.unwrap_err());
        assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
        let mut long = verify(&desc, Box::pin(io::Cursor::new(b"hello!".to_vec())));
        let e = Error::io("x", long.read_to_end(&mut Vec::new()).await.unwrap_err());
        assert!(matches!(e, Error::SizeMismatch { actual: 6, .. }), "{e}");
    }
}
