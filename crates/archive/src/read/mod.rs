//! Tar streams read as Go's archive/tar reads them, because Docker, containerd, BuildKit,
//! skopeo and umoci all do: an archive they read gives the same members here, and one they
//! refuse is refused. Headers are decoded from their raw blocks (`header.rs`), PAX records
//! merged by Go's rules (`pax.rs`), sparse files of every GNU format mapped (`sparse.rs`).
//!
//! Unlike Go's reader, nothing here grows with what a header claims: extension members
//! (PAX, GNU long names) over 1 MiB are refused at their header, as Go refuses them after
//! reading 1 MiB, and sparse maps are capped at [`sparse::MAX_FRAGMENTS`] fragments.

mod header;
mod pax;
mod sparse;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

pub use sparse::Fragment;

use header::{BLOCK, Block, Format, ZERO};

/// The most a PAX ('x', 'g') or GNU long name ('L', 'K') member may hold (Go's limit).
const MAX_SPECIAL: i64 = 1 << 20;
const COPY_BUF: usize = 256 << 10;

/// What a member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    /// A regular file ('0', '7', old '\0' without a trailing slash, GNU sparse 'S').
    File,
    /// A directory ('5', GNU dump directory 'D', old '\0' with a trailing slash).
    Dir,
    /// A symbolic link ('2').
    Symlink,
    /// A hard link ('1') to an earlier member.
    HardLink,
    /// A character device ('3').
    Char,
    /// A block device ('4').
    Block,
    /// A named pipe ('6').
    Fifo,
    /// A PAX global header ('g'): its records are in [`Member::pax`]; Go returns it as a
    /// member and applies it to nothing.
    GlobalHeader,
    /// Any other type flag.
    Other(u8),
}

/// One member of a tar stream, its extension headers merged in.
#[derive(Debug, Clone)]
pub struct Member {
    /// The name as bytes (Linux names need not be UTF-8), as the archive has it.
    pub path: Vec<u8>,
    /// The link target of a symlink or hard link.
    pub link: Vec<u8>,
    /// The type flag (after Go's rule for the old '\0' flag).
    pub typeflag: u8,
    /// Permission and mode bits as the header holds them.
    pub mode: i64,
    /// Owner.
    pub uid: i64,
    /// Group.
    pub gid: i64,
    /// Owner's name.
    pub uname: Vec<u8>,
    /// Group's name.
    pub gname: Vec<u8>,
    /// The size of the contents (of the whole file, holes included, for a sparse file).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Device major number.
    pub dev_major: i64,
    /// Device minor number.
    pub dev_minor: i64,
    /// The PAX records that applied to it.
    pub pax: BTreeMap<Vec<u8>, Vec<u8>>,
    /// For a sparse file, where its data is; everything else is a hole.
    pub sparse: Option<Vec<Fragment>>,
    /// Where its first header starts in the stream.
    pub header_at: u64,
    /// Where its stored data starts in the stream.
    pub data_at: u64,
}

impl Member {
    /// What it is.
    pub fn kind(&self) -> MemberKind {
        match self.typeflag {
            b'0' | b'7' | b'S' => MemberKind::File,
            b'5' | b'D' => MemberKind::Dir,
            b'2' => MemberKind::Symlink,
            b'1' => MemberKind::HardLink,
            b'3' => MemberKind::Char,
            b'4' => MemberKind::Block,
            b'6' => MemberKind::Fifo,
            b'g' => MemberKind::GlobalHeader,
            other => MemberKind::Other(other),
        }
    }

    /// Extended attributes, from `SCHILY.xattr.` records.
    pub fn xattrs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pax.iter().filter_map(|(k, v)| Some((k.strip_prefix(b"SCHILY.xattr.")?, v.as_slice())))
    }

    /// The name for messages.
    pub fn shown(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

/// What is wrong with a tar stream.
#[derive(Debug, thiserror::Error)]
pub enum Defect {
    /// It ends inside a member.
    #[error("the stream ends inside it (truncated)")]
    Truncated,
    /// A header that is not valid.
    #[error("{0}")]
    Header(String),
    /// An extension member larger than the limit.
    #[error("{what} of {size} bytes (limit 1 MiB)")]
    TooLarge {
        /// What kind of extension member.
        what: &'static str,
        /// The size its header claims.
        size: i64,
    },
    /// Reading the stream failed.
    #[error("reading failed: {0}")]
    Io(io::Error),
    /// An earlier error ended the stream.
    #[error("the stream was refused before")]
    Refused,
}

/// A tar stream refused, with where and why.
#[derive(Debug, thiserror::Error)]
#[error("tar member at byte {at}{}: {defect}", name.as_deref().map(|n| format!(" ({n:?})")).unwrap_or_default())]
pub struct TarError {
    /// Where the member's header starts.
    pub at: u64,
    /// The member's name, when it was read.
    pub name: Option<String>,
    /// What is wrong.
    pub defect: Defect,
}

/// Why copying a member's contents to a file failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The tar stream.
    #[error(transparent)]
    Tar(#[from] TarError),
    /// Writing the file.
    #[error("writing: {0}")]
    Write(#[source] io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    Ended,
    Failed,
}

/// Where reading a sparse member's contents is.
#[derive(Debug)]
struct Holes {
    frags: Vec<Fragment>,
    next: usize,
    pos: u64,
    size: u64,
}

/// A tar stream, member by member ([`TarReader::next_member`]), each member's contents read
/// through `Read` (holes as zeros) or written to a file with [`TarReader::write_into`]
/// (holes left as holes).
pub struct TarReader<R> {
    inner: R,
    skip: fn(&mut R, u64) -> io::Result<u64>,
    pos: u64,
    /// Stored bytes of the current member not read yet, and its padding.
    remaining: u64,
    pad: u64,
    holes: Option<Holes>,
    at: u64,
    name: Option<String>,
    state: State,
    buf: Vec<u8>,
}

fn skip_reading<R: Read>(r: &mut R, n: u64) -> io::Result<u64> {
    io::copy(&mut r.take(n), &mut io::sink())
}

fn skip_seeking<R: Read + Seek>(r: &mut R, n: u64) -> io::Result<u64> {
    if n <= 1 {
        return skip_reading(r, n);
    }
    // Seek to the last byte and read it: a seek past the end does not say the file is short.
    r.seek(SeekFrom::Current(i64::try_from(n - 1).map_err(io::Error::other)?))?;
    Ok(n - 1 + skip_reading(r, 1)?)
}

impl<R: Read> TarReader<R> {
    /// Read `inner` from its start; data that is not wanted is read and dropped.
    pub fn new(inner: R) -> Self {
        Self::with_skip(inner, skip_reading::<R>)
    }

    fn with_skip(inner: R, skip: fn(&mut R, u64) -> io::Result<u64>) -> Self {
        TarReader { inner, skip, pos: 0, remaining: 0, pad: 0, holes: None, at: 0, name: None, state: State::Reading, buf: Vec::new() }
    }

    /// The stream back.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn fail(&self, at: u64, defect: Defect) -> TarError {
        TarError { at, name: self.name.clone(), defect }
    }

    /// The next member, or `None` at the end of the archive (two zero blocks, or the end
    /// of the stream where a header or a member's padding would start). An error is final.
    pub fn next_member(&mut self) -> Result<Option<Member>, TarError> {
        match self.state {
            State::Ended => return Ok(None),
            State::Failed => return Err(self.fail(self.at, Defect::Refused)),
            State::Reading => {}
        }
        let got = self.advance();
        self.state = match &got {
            Ok(Some(_)) => State::Reading,
            Ok(None) => State::Ended,
            Err(_) => State::Failed,
        };
        got
    }

    fn advance(&mut self) -> Result<Option<Member>, TarError> {
        let mut recs = None;
        let (mut long_name, mut long_link) = (Vec::new(), Vec::new());
        loop {
            if !self.finish_member()? {
                return Ok(None);
            }
            let at = self.pos;
            (self.at, self.name) = (at, None);
            let Some(block) = self.header_block()? else { return Ok(None) };
            let mut raw = header::decode(&block).map_err(|w| self.fail(at, Defect::Header(w.into())))?;
            self.start_data(at, raw.size, raw.typeflag)?;
            match raw.typeflag {
                b'x' | b'g' => {
                    let what = if raw.typeflag == b'x' { "a PAX extended header" } else { "a PAX global header" };
                    let body = self.special(at, what, raw.size)?;
                    let parsed = pax::parse(&body).map_err(|w| self.fail(at, Defect::Header(w)))?;
                    if raw.typeflag == b'g' {
                        // Go merges a global header into itself only, ignoring what fails.
                        let _ = pax::merge(&mut raw, &parsed);
                        raw.size = 0;
                        return Ok(Some(self.member(raw, parsed, None, at)));
                    }
                    recs = Some(parsed);
                }
                b'L' | b'K' => {
                    let what = if raw.typeflag == b'L' { "a GNU long name" } else { "a GNU long link name" };
                    let body = self.special(at, what, raw.size)?;
                    let name = header::string(&body).to_vec();
                    if raw.typeflag == b'L' { long_name = name } else { long_link = name }
                }
                _ => {
                    let recs = recs.take().unwrap_or_default();
                    pax::merge(&mut raw, &recs).map_err(|w| self.fail(at, Defect::Header(w)))?;
                    if !long_name.is_empty() {
                        raw.name = long_name;
                    }
                    if !long_link.is_empty() {
                        raw.link = long_link;
                    }
                    if raw.typeflag == 0 {
                        raw.typeflag = if raw.name.ends_with(b"/") { b'5' } else { b'0' };
                    }
                    self.name = Some(String::from_utf8_lossy(&raw.name).into_owned());
                    self.start_data(at, raw.size, raw.typeflag)?;
                    let sparse = self.sparse(at, &mut raw, &block, &recs).map_err(|d| self.fail(at, d))?;
                    return Ok(Some(self.member(raw, recs, sparse, at)));
                }
            }
        }
    }

    fn member(&mut self, raw: header::Raw, pax: BTreeMap<Vec<u8>, Vec<u8>>, sparse: Option<Vec<Fragment>>, at: u64) -> Member {
        Member {
            path: raw.name,
            link: raw.link,
            typeflag: raw.typeflag,
            mode: raw.mode,
            uid: raw.uid,
            gid: raw.gid,
            uname: raw.uname,
            gname: raw.gname,
            size: raw.size.max(0) as u64,
            mtime: raw.mtime,
            dev_major: raw.dev_major,
            dev_minor: raw.dev_minor,
            pax,
            sparse,
            header_at: at,
            data_at: self.pos,
        }
    }

    /// The sparse map, if the member is a sparse file; sets its logical size in `raw`.
    fn sparse(&mut self, at: u64, raw: &mut header::Raw, block: &Block, recs: &pax::Records) -> Result<Option<Vec<Fragment>>, Defect> {
        let map = if raw.typeflag == b'S' {
            if raw.format != Format::Gnu {
                return Err(Defect::Header("a sparse member that is not in GNU format".into()));
            }
            let mut map = Vec::new();
            let (size, mut more) = sparse::old_gnu_header(block, &mut map)?;
            raw.size = size;
            for blocks in 1.. {
                if !more {
                    break;
                }
                if blocks > sparse::MAX_EXTENSIONS {
                    return Err(Defect::Header(format!("more than {} GNU sparse extension headers", sparse::MAX_EXTENSIONS)));
                }
                let ext = self.block_of_stream().map_err(|e| e.defect)?;
                more = sparse::old_gnu(&ext[..505], &mut map)?;
            }
            map
        } else {
            let Some(is_1x0) = sparse::pax_version(recs) else { return Ok(None) };
            if let Some(name) = recs.get(&b"GNU.sparse.name"[..]).filter(|n| !n.is_empty()) {
                raw.name = name.clone();
                self.name = Some(String::from_utf8_lossy(name).into_owned());
            }
            let size = recs.get(&b"GNU.sparse.size"[..]).or_else(|| recs.get(&b"GNU.sparse.realsize"[..])).filter(|s| !s.is_empty());
            if let Some(size) = size {
                raw.size = pax::int(size).ok_or_else(|| Defect::Header("GNU.sparse.size is not a number".into()))?;
            }
            if is_1x0 { sparse::pax_1x0(|| self.block_of_data(at).map_err(|e| e.defect))? } else { sparse::pax_0x1(recs)? }
        };
        if matches!(raw.typeflag, b'1'..=b'6') {
            return Err(Defect::Header("a sparse map on a member that holds no data".into()));
        }
        let frags = sparse::fragments(&map, raw.size)
            .ok_or_else(|| Defect::Header("a sparse map out of order, overlapping, or past the file's end".into()))?;
        let data: u64 = frags.iter().map(|f| f.length).sum();
        if data != self.remaining {
            return Err(Defect::Header(format!("the sparse map places {data} bytes of data, the member stores {}", self.remaining)));
        }
        self.holes = Some(Holes { frags: frags.clone(), next: 0, pos: 0, size: raw.size as u64 });
        Ok(Some(frags))
    }

    /// Drop the rest of the current member and its padding; `false` when the stream ends
    /// in the padding (Go reads that as the end of the archive).
    fn finish_member(&mut self) -> Result<bool, TarError> {
        self.holes = None;
        if self.remaining > 0 {
            let n = (self.skip)(&mut self.inner, self.remaining).map_err(|e| self.fail(self.at, Defect::Io(e)))?;
            self.pos += n;
            if n < self.remaining {
                return Err(self.fail(self.at, Defect::Truncated));
            }
            self.remaining = 0;
        }
        let mut pad = [0u8; BLOCK];
        let want = std::mem::take(&mut self.pad) as usize;
        Ok(self.read_full(&mut pad[..want])? == want)
    }

    fn start_data(&mut self, at: u64, size: i64, typeflag: u8) -> Result<(), TarError> {
        let Ok(size) = u64::try_from(size) else { return Err(self.fail(at, Defect::Header(format!("a negative size ({size})")))) };
        self.remaining = if matches!(typeflag, b'1'..=b'6') { 0 } else { size };
        self.pad = self.remaining.wrapping_neg() % BLOCK as u64;
        Ok(())
    }

    /// The whole body of an extension member.
    fn special(&mut self, at: u64, what: &'static str, size: i64) -> Result<Vec<u8>, TarError> {
        if size > MAX_SPECIAL {
            return Err(self.fail(at, Defect::TooLarge { what, size }));
        }
        let mut body = vec![0; self.remaining as usize];
        let mut got = 0;
        while got < body.len() {
            got += self.read_stored(&mut body[got..])?;
        }
        Ok(body)
    }

    /// A header block; `None` at the end of the archive.
    fn header_block(&mut self) -> Result<Option<Block>, TarError> {
        let at = self.pos;
        let mut b = ZERO;
        match self.read_full(&mut b)? {
            0 => return Ok(None),
            BLOCK => {}
            _ => return Err(self.fail(at, Defect::Truncated)),
        }
        if b != ZERO {
            return Ok(Some(b));
        }
        match self.read_full(&mut b)? {
            0 => Ok(None),
            BLOCK if b == ZERO => Ok(None),
            BLOCK => Err(self.fail(at, Defect::Header("a zero block, then a header: not the end of the archive, nor a member".into()))),
            _ => Err(self.fail(at, Defect::Truncated)),
        }
    }

    /// The next block of the stream itself (an old GNU sparse extension block).
    fn block_of_stream(&mut self) -> Result<Block, TarError> {
        let mut b = ZERO;
        if self.read_full(&mut b)? < BLOCK {
            return Err(self.fail(self.at, Defect::Truncated));
        }
        Ok(b)
    }

    /// The next block of the member's stored data (a GNU sparse 1.0 map).
    fn block_of_data(&mut self, at: u64) -> Result<Block, TarError> {
        let mut b = ZERO;
        if self.remaining < BLOCK as u64 {
            return Err(self.fail(at, Defect::Header("the GNU sparse 1.0 map runs past the member's data".into())));
        }
        let mut got = 0;
        while got < BLOCK {
            got += self.read_stored(&mut b[got..])?;
        }
        Ok(b)
    }

    /// Fill `buf` from the stream, short only at its end.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, TarError> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(self.at, Defect::Io(e))),
            }
        }
        self.pos += got as u64;
        Ok(got)
    }

    /// Some of the member's stored bytes (0 only when none are left).
    fn read_stored(&mut self, buf: &mut [u8]) -> Result<usize, TarError> {
        let n = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        loop {
            match self.inner.read(&mut buf[..n]) {
                Ok(0) => return Err(self.fail(self.at, Defect::Truncated)),
                Ok(k) => {
                    self.pos += k as u64;
                    self.remaining -= k as u64;
                    return Ok(k);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(self.at, Defect::Io(e))),
            }
        }
    }

    /// Some of the member's contents, holes read as zeros.
    fn read_contents(&mut self, buf: &mut [u8]) -> Result<usize, TarError> {
        let Some(h) = &self.holes else { return self.read_stored(buf) };
        if h.pos >= h.size || buf.is_empty() {
            return Ok(0);
        }
        let (pos, frag) = (h.pos, h.frags.get(h.next).copied());
        let n = match frag {
            Some(f) if pos >= f.offset => {
                let want = buf.len().min(usize::try_from(f.offset + f.length - pos).unwrap_or(usize::MAX));
                self.read_stored(&mut buf[..want])?
            }
            _ => {
                let hole_end = frag.map_or(h.size, |f| f.offset);
                let n = buf.len().min(usize::try_from(hole_end - pos).unwrap_or(usize::MAX));
                buf[..n].fill(0);
                n
            }
        };
        if let Some(h) = &mut self.holes {
            h.pos += n as u64;
            if frag.is_some_and(|f| h.pos == f.offset + f.length) {
                h.next += 1;
            }
        }
        Ok(n)
    }

    /// Write the current member's contents into `out` from its start: a sparse file's
    /// holes stay holes (only its data is written, then the length is set).
    pub fn write_into(&mut self, out: &File) -> Result<(), CopyError> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(COPY_BUF, 0);
        let done = self.write_with(out, &mut buf);
        self.buf = buf;
        done
    }

    fn write_with(&mut self, mut out: &File, buf: &mut [u8]) -> Result<(), CopyError> {
        let Some(h) = self.holes.take() else {
            loop {
                let n = self.read_stored(buf)?;
                if n == 0 {
                    return Ok(());
                }
                out.write_all(&buf[..n]).map_err(CopyError::Write)?;
            }
        };
        for f in &h.frags {
            let mut at = f.offset;
            while at < f.offset + f.length {
                let want = buf.len().min(usize::try_from(f.offset + f.length - at).unwrap_or(usize::MAX));
                let n = self.read_stored(&mut buf[..want])?;
                out.write_all_at(&buf[..n], at).map_err(CopyError::Write)?;
                at += n as u64;
            }
        }
        out.set_len(h.size).map_err(CopyError::Write)
    }
}

impl<R: Read + Seek> TarReader<R> {
    /// Read `inner` from its start; data that is not wanted is seeked over.
    pub fn seeking(inner: R) -> Self {
        Self::with_skip(inner, skip_seeking::<R>)
    }
}

impl<R: Read> Read for TarReader<R> {
    /// The current member's contents (holes of a sparse file read as zeros).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_contents(buf).map_err(|e| {
            let kind = if matches!(e.defect, Defect::Truncated) { io::ErrorKind::UnexpectedEof } else { io::ErrorKind::InvalidData };
            io::Error::new(kind, e)
        })
    }
}
