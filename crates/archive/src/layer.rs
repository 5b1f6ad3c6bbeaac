use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use imgtool_core::{Compression, Descriptor, Digest, FileBlob, Flavor, Hasher, Layer, MediaType};

use crate::Error;
use crate::pgzip::ParallelGzip;

/// How new layers are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerOptions {
    /// gzip (default), zstd or none.
    pub compression: Compression,
    /// Compression level; `None` is gzip 6 / zstd 3.
    pub level: Option<u32>,
    /// Compressing threads; 0 uses every core.
    pub threads: usize,
    /// Media type family of the layer descriptor.
    pub flavor: Flavor,
}

impl Default for LayerOptions {
    fn default() -> Self {
        Self { compression: Compression::Gzip, level: None, threads: 0, flavor: Flavor::Oci }
    }
}

impl LayerOptions {
    fn threads(&self) -> usize {
        if self.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { self.threads }
    }
}

/// Where a file entry's bytes come from.
#[derive(Debug, Clone)]
pub enum FileData {
    /// A file on the host, read when written.
    Path(PathBuf),
    /// Bytes in memory (small contents layers).
    Bytes(Bytes),
    /// A regular file inside a root (an image's, a build context), opened through the
    /// rooted path layer when written: a name swapped for a symlink since it was listed
    /// still cannot lead out of the root.
    Rooted(std::sync::Arc<imgtool_rootfs::Root>, OsString),
}

/// What a tar entry is.
#[derive(Debug, Clone)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file of `size` bytes.
    File {
        /// Where the bytes are.
        data: FileData,
        /// How many.
        size: u64,
    },
    /// A symbolic link to this target (bytes: it need not be UTF-8).
    Symlink(OsString),
    /// A hard link to an earlier entry of the same layer.
    Hardlink(OsString),
    /// A named pipe.
    Fifo,
    /// A character device (major, minor).
    CharDevice(u32, u32),
    /// A block device (major, minor).
    BlockDevice(u32, u32),
}

/// One entry of a layer, with everything that goes into its header.
#[derive(Debug, Clone)]
pub struct TarEntry {
    /// The path in the image, relative, without a leading `/` (bytes: a Linux name need
    /// not be UTF-8).
    pub path: OsString,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits (including setuid/setgid/sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Modification time (seconds since the epoch).
    pub mtime: u64,
    /// Extended attributes, written as PAX `SCHILY.xattr.*` records.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl TarEntry {
    /// A directory entry owned by root.
    pub fn dir(path: impl Into<OsString>, mode: u32, mtime: u64) -> Self {
        Self { path: path.into(), kind: EntryKind::Dir, mode, uid: 0, gid: 0, mtime, xattrs: Vec::new() }
    }
}

/// A layer written to a spool file, with its digests computed in the same pass.
#[derive(Debug)]
pub struct SpooledLayer {
    /// The compressed blob on disk; deleted when the last handle goes.
    pub file: tempfile::TempPath,
    /// Its descriptor (media type, digest, size).
    pub descriptor: Descriptor,
    /// The sha256 of the uncompressed tar.
    pub diff_id: Digest,
}

impl SpooledLayer {
    /// Turn into an image layer whose bytes are served from the spool file.
    pub fn into_layer(self) -> Layer {
        let desc = self.descriptor.clone();
        Layer { source: Arc::new(FileBlob::temporary(self.file, desc.clone())), descriptor: desc, diff_id: self.diff_id }
    }
}

/// Hashes and counts what passes through to the file.
struct Counted<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type Out = Counted<BufWriter<File>>;

enum Encoder {
    None(Out),
    Gzip(ParallelGzip<Out>),
    Zstd(zstd::stream::write::Encoder<'static, Out>),
}

/// The uncompressed side: hashes the tar (diff_id) and feeds the compressor.
struct TarSide {
    diff: Hasher,
    enc: Encoder,
}

impl Write for TarSide {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.enc {
            Encoder::None(w) => w.write(buf)?,
            Encoder::Gzip(w) => w.write(buf)?,
            Encoder::Zstd(w) => w.write(buf)?,
        };
        self.diff.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes a reproducible layer: entries exactly as given (callers sort them), headers with
/// only the fields we set, compressed and hashed in one pass into a spool file.
pub struct LayerWriter {
    tar: tar::Builder<TarSide>,
    file: tempfile::TempPath,
    opts: LayerOptions,
    /// Removed if the process is interrupted while the layer is written (a cache's spool
    /// directory outlives the process).
    _tracked: imgtool_core::Tracked,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| Error::Io { context: format!("writing layer spool file {}", path.display()), source: e }
}

impl LayerWriter {
    /// Start a layer spooled in `spool_dir`.
    pub fn new(spool_dir: &Path, opts: LayerOptions) -> Result<Self, Error> {
        let (file, path) = tempfile::Builder::new()
            .prefix("layer-")
            .tempfile_in(spool_dir)
            .map_err(|e| Error::Io { context: format!("creating a spool file in {}", spool_dir.display()), source: e })?
            .into_parts();
        let out = Counted { inner: BufWriter::with_capacity(1 << 20, file), hasher: Hasher::sha256() };
        let enc = match opts.compression {
            Compression::None => Encoder::None(out),
            Compression::Gzip => Encoder::Gzip(ParallelGzip::new(out, opts.level.unwrap_or(6), opts.threads()).map_err(io_err(&path))?),
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(out, opts.level.unwrap_or(3) as i32).map_err(io_err(&path))?;
                // Any worker count >= 1 gives the same bytes; 0 would give different ones.
                e.multithread(opts.threads() as u32).map_err(io_err(&path))?;
                Encoder::Zstd(e)
            }
        };
        let mut tar = tar::Builder::new(TarSide { diff: Hasher::sha256(), enc });
        tar.mode(tar::HeaderMode::Complete);
        tar.follow_symlinks(false);
        let tracked = imgtool_core::track_path(&path);
        Ok(Self { tar, file: path, opts, _tracked: tracked })
    }

    fn header(e: &TarEntry, ty: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(ty);
        h.set_mode(e.mode & 0o7777);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        h.set_size(size);
        h
    }

    /// Append a file's bytes, exactly `size` of them: a file that changed size since it was
    /// listed would corrupt the tar. A file with holes becomes a sparse member.
    fn append_counted(&mut self, e: &TarEntry, h: &mut tar::Header, f: File, size: u64, shown: &Path) -> Result<(), Error> {
        let read_err = |source| Error::Io { context: format!("reading {}", shown.display()), source };
        if let Some(runs) = crate::holes::data_runs(&f, size).map_err(read_err)? {
            return self.append_sparse(e, h, &f, size, &runs).map_err(|err| match err {
                Error::Io { source, .. } if source.kind() == io::ErrorKind::UnexpectedEof => Error::Changed { path: shown.to_path_buf() },
                other => other,
            });
        }
        self.pax(e, &[])?;
        let mut r = f.take(size);
        let mut counted = CountingReader { inner: &mut r, n: 0 };
        self.tar.append_data(h, &e.path, &mut counted).map_err(io_err(&self.file))?;
        if counted.n != size {
            return Err(Error::Changed { path: shown.to_path_buf() });
        }
        Ok(())
    }

    /// A sparse member (GNU PAX 1.0): its real name and size in PAX records, a stand-in
    /// name in the header (what a reader that does not know the format extracts), and the
    /// sparse map before the runs of data.
    fn append_sparse(&mut self, e: &TarEntry, h: &mut tar::Header, f: &File, size: u64, runs: &[(u64, u64)]) -> Result<(), Error> {
        let size_text = size.to_string();
        let recs: [(&str, &[u8]); 4] = [
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", e.path.as_bytes()),
            ("GNU.sparse.realsize", size_text.as_bytes()),
        ];
        self.pax(e, &recs)?;
        let map = crate::holes::map(runs, size);
        // GNU tar reads a 1.0 map only under a POSIX header, not an old GNU one.
        let mut posix = tar::Header::new_ustar();
        posix.set_entry_type(tar::EntryType::Regular);
        posix.set_mode(h.mode().unwrap_or(0o644));
        posix.set_uid(e.uid);
        posix.set_gid(e.gid);
        posix.set_mtime(e.mtime);
        let h = &mut posix;
        h.set_size(map.len() as u64 + runs.iter().map(|r| r.1).sum::<u64>());
        let path = e.path.as_bytes();
        let stand_in = match path.iter().rposition(|b| *b == b'/') {
            Some(i) => [&path[..i], b"/GNUSparseFile.0/", &path[i + 1..]].concat(),
            None => [&b"GNUSparseFile.0/"[..], path].concat(),
        };
        let stand_in = OsString::from_vec(stand_in);
        let body = (&map[..]).chain(crate::holes::Runs { file: f, runs, done: 0 });
        self.tar.append_data(h, stand_in, body).map_err(io_err(&self.file))
    }

    /// The entry's PAX records (xattrs, then `more`) in one extended header, if any: a
    /// second header would replace the first for Go's reader.
    fn pax(&mut self, e: &TarEntry, more: &[(&str, &[u8])]) -> Result<(), Error> {
        if e.xattrs.is_empty() && more.is_empty() {
            return Ok(());
        }
        let xattrs: Vec<(String, &[u8])> = e.xattrs.iter().map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice())).collect();
        let recs = xattrs.iter().map(|(k, v)| (k.as_str(), *v)).chain(more.iter().copied());
        self.tar.append_pax_extensions(recs).map_err(io_err(&self.file))
    }

    /// Append one entry.
    pub fn append(&mut self, e: &TarEntry) -> Result<(), Error> {
        let file = self.file.to_path_buf();
        if imgtool_core::is_interrupted() {
            return Err(Error::Io { context: format!("writing {}", file.display()), source: io::ErrorKind::Interrupted.into() });
        }
        if !matches!(e.kind, EntryKind::File { data: FileData::Rooted(..) | FileData::Path(_), .. }) {
            self.pax(e, &[])?;
        }
        let err = io_err(&file);
        match &e.kind {
            EntryKind::Dir => {
                let mut h = Self::header(e, tar::EntryType::Directory, 0);
                let mut p = e.path.as_bytes().to_vec();
                while p.last() == Some(&b'/') {
                    p.pop();
                }
                p.push(b'/');
                let p = OsStr::from_bytes(&p);
                self.tar.append_data(&mut h, p, io::empty()).map_err(err)
            }
            EntryKind::File { data, size } => {
                let mut h = Self::header(e, tar::EntryType::Regular, *size);
                match data {
                    FileData::Bytes(b) => self.tar.append_data(&mut h, &e.path, &b[..]).map_err(err),
                    FileData::Rooted(root, rel) => {
                        let p = root.path().join(rel);
                        let f = root
                            .open_file(rel)
                            .map_err(|e| Error::Io { context: format!("reading {}", p.display()), source: e.into_io() })?;
                        let f = f.ok_or_else(|| Error::Changed { path: p.clone() })?;
                        self.append_counted(e, &mut h, f, *size, &p)
                    }
                    FileData::Path(p) => {
                        let f = File::open(p).map_err(|s| Error::Io { context: format!("reading {}", p.display()), source: s })?;
                        self.append_counted(e, &mut h, f, *size, p)
                    }
                }
            }
            EntryKind::Symlink(target) => {
                let mut h = Self::header(e, tar::EntryType::Symlink, 0);
                self.tar.append_link(&mut h, &e.path, target).map_err(err)
            }
            EntryKind::Hardlink(target) => {
                let mut h = Self::header(e, tar::EntryType::Link, 0);
                self.tar.append_link(&mut h, &e.path, target).map_err(err)
            }
            EntryKind::Fifo | EntryKind::CharDevice(..) | EntryKind::BlockDevice(..) => {
                let ty = match e.kind {
                    EntryKind::Fifo => tar::EntryType::Fifo,
                    EntryKind::CharDevice(..) => tar::EntryType::Char,
                    _ => tar::EntryType::Block,
                };
                let mut h = Self::header(e, ty, 0);
                if let EntryKind::CharDevice(ma, mi) | EntryKind::BlockDevice(ma, mi) = e.kind {
                    h.set_device_major(ma).map_err(io_err(&file))?;
                    h.set_device_minor(mi).map_err(io_err(&file))?;
                }
                self.tar.append_data(&mut h, &e.path, io::empty()).map_err(err)
            }
        }
    }

    /// Close the tar, the compressor and the file; the digests come out of the same pass.
    pub fn finish(self) -> Result<SpooledLayer, Error> {
        let file = self.file;
        let side = self.tar.into_inner().map_err(io_err(&file))?;
        let diff_id = side.diff.finish();
        let out = match side.enc {
            Encoder::None(w) => w,
            Encoder::Gzip(w) => w.finish().map_err(io_err(&file))?,
            Encoder::Zstd(w) => w.finish().map_err(io_err(&file))?,
        };
        let Counted { inner, hasher } = out;
        let f = inner.into_inner().map_err(|e| io_err(&file)(e.into_error()))?;
        f.sync_all().map_err(io_err(&file))?;
        let size = hasher.len();
        let descriptor = Descriptor::new(MediaType::layer(self.opts.flavor, self.opts.compression), hasher.finish(), size);
        Ok(SpooledLayer { file, descriptor, diff_id })
    }
}

struct CountingReader<'a, R> {
    inner: &'a mut R,
    n: u64,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// Write `entries` as one layer.
pub fn write_layer(entries: impl IntoIterator<Item = TarEntry>, spool_dir: &Path, opts: LayerOptions) -> Result<SpooledLayer, Error> {
    let mut w = LayerWriter::new(spool_dir, opts)?;
    for e in entries {
        w.append(&e)?;
    }
    w.finish()
}
