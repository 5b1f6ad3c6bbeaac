//! Fetching a package into the cache, unpacked by our own extractor.
//!
//! rattler's unpacker reads a package's compressed stream to its very end after the tar
//! inside it ends (to notice a truncated trailer), so a `.conda` whose zstd stream runs on
//! for terabytes keeps it busy for minutes, and its tar reader holds extension headers
//! whole. Here the download is checked against the record's size and sha256 first, the
//! tars go through the archive crate's rooted extractor (bounded headers, nothing outside
//! the cache entry touched), and at most [`TRAILER_LIMIT`] bytes may follow a tar's end.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use rattler::package_cache::{CacheKey, PackageCache};
use rattler_conda_types::RepoDataRecord;
use url::Url;

use crate::error::{Error, Result};

/// The most a package's compressed stream may hold after its tar ends (tar pads to 10 KiB
/// records; anything far beyond is not a package).
const TRAILER_LIMIT: u64 = 1 << 20;

/// The most a package may be when its record gives no size.
const SIZE_LIMIT: u64 = 16 << 30;

/// The package cache in `dir`, its entries keyed by where each package came from too: two
/// channels (or two platforms) may publish the same file name with other bytes.
pub(crate) fn package_cache(dir: &Path) -> PackageCache {
    PackageCache::new(dir).with_cached_origin()
}

/// The key rattler's installer looks `r` up by in a [`package_cache`]: its origin is its
/// path for a `file://` URL, else the URL.
fn cache_key(r: &RepoDataRecord) -> CacheKey {
    let key = CacheKey::from(&r.package_record);
    match r.url.to_file_path() {
        Ok(path) if r.url.scheme() == "file" => key.with_path(&path),
        _ => key.with_url(r.url.clone()),
    }
}

/// Fetch `r` into `packages` unless it is there already; its directory in the cache.
pub(crate) async fn fetch(packages: &PackageCache, r: &RepoDataRecord, client: reqwest::Client) -> Result<PathBuf> {
    let (url, want, limit) = (r.url.clone(), r.package_record.sha256, r.package_record.size.unwrap_or(SIZE_LIMIT));
    let name = r.identifier.to_string();
    let meta = packages
        .get_or_fetch(
            cache_key(r),
            move |dest: PathBuf| {
                let (url, client, name) = (url.clone(), client.clone(), name.clone());
                async move {
                    let (file, got) = download(&client, &url, limit).await?;
                    let file = file.into_file()?;
                    if let Some(want) = want {
                        if want != got {
                            return Err(other(format!(
                                "{url}: sha256 {} does not match the record's {}",
                                hex::encode(got),
                                hex::encode(want)
                            )));
                        }
                    }
                    tokio::task::spawn_blocking(move || unpack(file, &name, &dest))
                        .await
                        .map_err(|e| other(format!("the unpacker stopped: {e}")))??;
                    Ok::<_, std::io::Error>(Some(got))
                }
            },
            None,
        )
        .await
        .map_err(|e| Error::install(format!("fetching {}: {}", r.url, imgtool_core::error_chain(&e))))?;
    Ok(meta.path().to_path_buf())
}

/// A channel's package file, opened only if it is a regular file (a FIFO would hang us).
fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    if !f.metadata()?.is_file() {
        return Err(other(format!("{} is not a regular file", path.display())));
    }
    Ok(f)
}

fn other(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

/// A package's bytes: a local channel's file as it is, or a download.
enum Fetched {
    Local(std::fs::File),
    /// The download, in a spool directory of its own (the next run removes it if this one is killed).
    Downloaded(tempfile::NamedTempFile, imgtool_core::ScratchDir),
}

impl Fetched {
    /// The file to unpack, read from its start.
    fn into_file(self) -> std::io::Result<std::fs::File> {
        use std::io::Seek;
        let mut f = match self {
            Fetched::Local(f) => f,
            Fetched::Downloaded(t, _spool) => t.reopen()?,
        };
        f.rewind()?;
        Ok(f)
    }
}

/// The package at `url`, at most `limit` bytes, with its sha256. A local file is hashed
/// and later unpacked through the same open handle (no copy, no second lookup).
async fn download(client: &reqwest::Client, url: &Url, limit: u64) -> std::io::Result<(Fetched, rattler_digest::Sha256Hash)> {
    let mut hasher = <rattler_digest::Sha256 as rattler_digest::digest::Digest>::new();
    let mut total = 0u64;
    let mut count = |chunk: &[u8]| -> std::io::Result<()> {
        total += chunk.len() as u64;
        if total > limit {
            return Err(other(format!("{url} is larger than its record says ({limit} bytes)")));
        }
        rattler_digest::digest::Digest::update(&mut hasher, chunk);
        Ok(())
    };
    let fetched = if url.scheme() == "file" {
        let path = url.to_file_path().map_err(|_| other(format!("{url} is not a local path")))?;
        let mut f = open_regular(&path)?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            count(&buf[..n])?;
        }
        Fetched::Local(f)
    } else {
        let spool = imgtool_core::spool()?;
        let mut out = tempfile::NamedTempFile::new_in(spool.path())?;
        let resp =
            client.get(url.clone()).send().await.and_then(reqwest::Response::error_for_status).map_err(|e| other(format!("{url}: {e}")))?;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| other(format!("{url}: {e}")))?;
            count(&chunk)?;
            out.write_all(&chunk)?;
        }
        out.flush()?;
        Fetched::Downloaded(out, spool)
    };
    Ok((fetched, rattler_digest::digest::Digest::finalize(hasher)))
}

/// Unpack the package `file` (named `name`) into `dest`.
fn unpack(file: std::fs::File, name: &str, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    let root = imgtool_rootfs::Root::open(dest).map_err(imgtool_rootfs::Error::into_io)?;
    if name.ends_with(".tar.bz2") {
        return unpack_tar(&root, bzip2::read::BzDecoder::new(std::io::BufReader::new(file)), name);
    }
    if !name.ends_with(".conda") {
        return Err(other(format!("{name}: not a .conda or .tar.bz2 package")));
    }
    let mut zip = zip::ZipArchive::new(file).map_err(|e| other(format!("{name}: not a .conda package: {e}")))?;
    for i in 0..zip.len() {
        let member = zip.by_index(i).map_err(|e| other(format!("{name}: {e}")))?;
        let member_name = member.name().map_err(|e| other(format!("{name}: {e}")))?.to_string();
        if member_name.ends_with(".tar.zst") {
            let place = format!("{name}:{member_name}");
            unpack_tar(&root, zstd::stream::read::Decoder::new(member)?, &place)?;
        }
    }
    Ok(())
}

/// Apply one package tar, then allow no more than [`TRAILER_LIMIT`] bytes after it.
fn unpack_tar(root: &imgtool_rootfs::Root, mut stream: impl Read, place: &str) -> std::io::Result<()> {
    let opts = imgtool_archive::ExtractOptions { package: true, ..Default::default() };
    imgtool_archive::apply_layer_in(root, &mut stream, opts, place).map_err(|e| other(e.to_string()))?;
    let after = std::io::copy(&mut (&mut stream).take(TRAILER_LIMIT + 1), &mut std::io::sink())?;
    if after > TRAILER_LIMIT {
        return Err(other(format!(
            "{place}: the stream runs on past its tar's end (more than {} KiB); not a package",
            TRAILER_LIMIT >> 10
        )));
    }
    Ok(())
}
