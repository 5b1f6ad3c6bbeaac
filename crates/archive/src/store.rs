//! Read access to the files of a layout: a directory, or a tar indexed once.

use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use imgtool_core::BlobStream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::Error;
use crate::MemberKind;
use crate::error::io;

/// Files by relative path.
#[async_trait]
pub(crate) trait Store: Send + Sync + fmt::Debug {
    /// Stream a file, `None` when absent.
    async fn open(&self, path: &str) -> Result<Option<BlobStream>, Error>;
    /// The size of a file, `None` when absent.
    fn size(&self, path: &str) -> Option<u64>;
    /// Read a small file whole.
    fn read_small(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, Error>;
    /// The first bytes of a file (to sniff compression).
    fn head(&self, path: &str, n: usize) -> Result<Vec<u8>, Error>;
    /// What this is, for messages.
    fn describe(&self) -> String;
}

/// Lexically clean a relative path the way Go's filepath.Clean does, minus any leading `/`
/// (`..` at the top is dropped).
pub(crate) fn clean(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// A layout in a directory.
#[derive(Debug)]
pub(crate) struct DirStore {
    pub root: PathBuf,
}

impl DirStore {
    fn path(&self, p: &str) -> PathBuf {
        self.root.join(clean(p))
    }
}

#[async_trait]
impl Store for DirStore {
    async fn open(&self, path: &str) -> Result<Option<BlobStream>, Error> {
        let p = self.path(path);
        match tokio::fs::File::open(&p).await {
            Ok(f) => Ok(Some(Box::pin(tokio::io::BufReader::with_capacity(256 * 1024, f)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(format!("opening {}", p.display()))(e)),
        }
    }

    fn size(&self, path: &str) -> Option<u64> {
        std::fs::metadata(self.path(path)).ok().filter(|m| m.is_file()).map(|m| m.len())
    }

    fn read_small(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, Error> {
        let p = self.path(path);
        match std::fs::File::open(&p) {
            Ok(f) => read_limited(f, limit, &p.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(format!("opening {}", p.display()))(e)),
        }
    }

    fn head(&self, path: &str, n: usize) -> Result<Vec<u8>, Error> {
        let p = self.path(path);
        let f = std::fs::File::open(&p).map_err(io(format!("opening {}", p.display())))?;
        read_limited(f.take(n as u64), n as u64, &p.display().to_string())
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

fn read_limited(r: impl Read, limit: u64, what: &str) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    r.take(limit + 1).read_to_end(&mut buf).map_err(io(format!("reading {what}")))?;
    if buf.len() as u64 > limit {
        return Err(imgtool_core::Error::TooLarge { what: what.into(), limit }.into());
    }
    Ok(buf)
}

#[derive(Debug, Clone)]
struct TarItem {
    offset: u64,
    size: u64,
    link: Option<String>,
}

/// A tar file whose members are found by one pass over its headers.
#[derive(Debug)]
pub(crate) struct TarStore {
    path: PathBuf,
    items: HashMap<String, TarItem>,
    /// For a compressed tarball: the decompressed copy being read, deleted on drop.
    _spool: Option<tempfile::TempPath>,
}

impl TarStore {
    pub fn open(path: &Path) -> Result<Self, Error> {
        let f = std::fs::File::open(path).map_err(io(format!("opening {}", path.display())))?;
        let mut head = [0u8; 4];
        let n = (&f).read(&mut head).map_err(io(format!("reading {}", path.display())))?;
        let compression = imgtool_core::Compression::sniff(&head[..n]);
        (&f).seek(SeekFrom::Start(0)).map_err(io(format!("reading {}", path.display())))?;
        if compression != imgtool_core::Compression::None {
            // Members are read in place by offset, which a compressed stream cannot do:
            // decompress once into a temporary file and read that.
            tracing::info!(path = %path.display(), "decompressing the tarball into a temporary file");
            let mut spool = tempfile::NamedTempFile::new().map_err(io("creating a temporary file"))?;
            let _tracked = imgtool_core::track_path(spool.path());
            let mut r = imgtool_core::decompress(compression, f).map_err(io(format!("reading {}", path.display())))?;
            std::io::copy(&mut r, spool.as_file_mut()).map_err(io(format!("decompressing {}", path.display())))?;
            let spool = spool.into_temp_path();
            let mut me = Self::open(&spool)?;
            me.path = spool.to_path_buf();
            me._spool = Some(spool);
            return Ok(me);
        }
        let mut tar = crate::TarReader::seeking(f);
        let mut items = HashMap::new();
        let bad = |e: crate::TarError| Error::Format { place: path.display().to_string(), why: format!("not a readable tar archive: {e}") };
        while let Some(m) = tar.next_member().map_err(bad)? {
            let name = clean(&String::from_utf8_lossy(&m.path));
            let kind = m.kind();
            let link = matches!(kind, MemberKind::Symlink | MemberKind::HardLink).then(|| {
                let l = String::from_utf8_lossy(&m.link);
                // Symlinks are relative to their directory; hard links to the root.
                if kind == MemberKind::Symlink {
                    let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                    clean(&format!("{dir}/{l}"))
                } else {
                    clean(&l)
                }
            });
            if m.sparse.is_some() {
                // Members are read in place by offset: a sparse one's stored bytes are not its contents.
                return Err(Error::Format {
                    place: path.display().to_string(),
                    why: format!("{name} is a sparse file, which docker save never writes"),
                });
            }
            if kind == MemberKind::File || link.is_some() {
                items.insert(name, TarItem { offset: m.data_at, size: m.size, link });
            }
        }
        Ok(Self { path: path.to_path_buf(), items, _spool: None })
    }

    fn find(&self, name: &str) -> Option<&TarItem> {
        let mut name = clean(name);
        for _ in 0..16 {
            let item = self.items.get(&name)?;
            match &item.link {
                Some(l) => name = l.clone(),
                None => return Some(item),
            }
        }
        None
    }
}

#[async_trait]
impl Store for TarStore {
    async fn open(&self, path: &str) -> Result<Option<BlobStream>, Error> {
        let Some(item) = self.find(path).cloned() else { return Ok(None) };
        let ctx = || format!("reading {path} in {}", self.path.display());
        let mut f = tokio::fs::File::open(&self.path).await.map_err(io(ctx()))?;
        f.seek(SeekFrom::Start(item.offset)).await.map_err(io(ctx()))?;
        Ok(Some(Box::pin(tokio::io::BufReader::with_capacity(256 * 1024, f).take(item.size))))
    }

    fn size(&self, path: &str) -> Option<u64> {
        self.find(path).map(|i| i.size)
    }

    fn read_small(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, Error> {
        let Some(item) = self.find(path) else { return Ok(None) };
        let what = format!("{path} in {}", self.path.display());
        let mut f = std::fs::File::open(&self.path).map_err(io(format!("opening {}", self.path.display())))?;
        f.seek(SeekFrom::Start(item.offset)).map_err(io(format!("reading {what}")))?;
        read_limited(f.take(item.size), limit, &what).map(Some)
    }

    fn head(&self, path: &str, n: usize) -> Result<Vec<u8>, Error> {
        let item = self.find(path).ok_or_else(|| Error::Format { place: self.describe(), why: format!("{path} is missing") })?;
        let mut f = std::fs::File::open(&self.path).map_err(io(format!("opening {}", self.path.display())))?;
        f.seek(SeekFrom::Start(item.offset)).map_err(io(format!("reading {}", self.path.display())))?;
        let mut buf = Vec::new();
        f.take(item.size.min(n as u64)).read_to_end(&mut buf).map_err(io(format!("reading {}", self.path.display())))?;
        Ok(buf)
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// The path of a blob in a layout.
pub(crate) fn blob_path(d: &imgtool_core::Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().as_str(), d.hex())
}

impl TarStore {
    /// The sha256 of a member, read in a streaming pass.
    pub fn hash(&self, path: &str) -> Result<imgtool_core::Digest, Error> {
        let item = self.find(path).ok_or_else(|| Error::Format { place: self.describe(), why: format!("{path} is missing") })?;
        let mut f = std::fs::File::open(&self.path).map_err(io(format!("opening {}", self.path.display())))?;
        f.seek(SeekFrom::Start(item.offset)).map_err(io(format!("reading {}", self.path.display())))?;
        let mut h = imgtool_core::Hasher::sha256();
        std::io::copy(&mut f.take(item.size), &mut h).map_err(io(format!("reading {path} in {}", self.path.display())))?;
        Ok(h.finish())
    }
}
