//! Sparse files written as sparse members (GNU's PAX format 1.0, which Go's archive/tar,
//! and so Docker, containerd and umoci, GNU tar, bsdtar and Python read): a file whose holes
//! a layer would otherwise store as gigabytes of zeros. Which parts are data depends on the
//! contents only (4 KiB blocks that are not all zeros), not on how a filesystem happened to
//! allocate them, so the same tree gives the same layer bytes anywhere.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};

const BLOCK: u64 = 4096;

/// The runs of data (offset, length) of a file with holes on disk; `None` for a file
/// without holes, which is written as it is.
pub(crate) fn data_runs(f: &File, size: u64) -> io::Result<Option<Vec<(u64, u64)>>> {
    if size == 0 || f.metadata()?.blocks().saturating_mul(512) >= size {
        return Ok(None);
    }
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut block = vec![0u8; BLOCK as usize];
    let mut pos = 0;
    while pos < size {
        let data = match rustix::fs::seek(f, rustix::fs::SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e.into()),
        };
        if data >= size {
            break;
        }
        let hole = rustix::fs::seek(f, rustix::fs::SeekFrom::Hole(data))?.min(size);
        // Holes are block-aligned; the data between them is looked at block by block.
        let mut at = data - data % BLOCK;
        while at < hole {
            let len = BLOCK.min(size - at);
            let buf = &mut block[..len as usize];
            f.read_exact_at(buf, at)?;
            if buf.iter().any(|b| *b != 0) {
                match runs.last_mut() {
                    Some((o, l)) if *o + *l == at => *l += len,
                    _ => runs.push((at, len)),
                }
            }
            at += len;
        }
        pos = hole.max(data + 1);
    }
    Ok(Some(runs))
}

/// The sparse map that starts a 1.0 member's data: count, then offset and length of each
/// run, one decimal number a line, padded with zeros to whole 512-byte blocks. As GNU tar
/// writes it, it ends with an empty run at the file's size.
pub(crate) fn map(runs: &[(u64, u64)], size: u64) -> Vec<u8> {
    let mut out = format!("{}\n", runs.len() + 1);
    for (o, l) in runs.iter().chain([&(size, 0)]) {
        out.push_str(&format!("{o}\n{l}\n"));
    }
    let mut out = out.into_bytes();
    out.resize(out.len().next_multiple_of(512), 0);
    out
}

/// The stored bytes of a sparse member: the runs of data, one after the other.
pub(crate) struct Runs<'a> {
    pub(crate) file: &'a File,
    pub(crate) runs: &'a [(u64, u64)],
    /// Bytes of the current run already given.
    pub(crate) done: u64,
}

impl Read for Runs<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(&(offset, len)) = self.runs.first() else { return Ok(0) };
        let want = buf.len().min(usize::try_from(len - self.done).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], offset + self.done)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file got shorter while it was read"));
        }
        self.done += n as u64;
        if self.done == len {
            self.runs = &self.runs[1..];
            self.done = 0;
        }
        Ok(n)
    }
}
