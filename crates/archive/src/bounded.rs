//! A guard for tar streams read from input, between the stream and `tar::Archive`.
//!
//! The tar crate reads a GNU long name ('L'), long link ('K') or PAX ('x') member wholly
//! into memory, whatever size its header claims, and grows a list for every GNU sparse
//! extension block: a compressed layer of a few megabytes can claim gigabytes. This reader
//! follows the tar structure as the bytes go by (it looks only at the 512-byte blocks where
//! a header must be, and steps over data by arithmetic) and fails the read that completes a
//! header claiming more than Go's archive/tar allows (1 MiB), before the tar crate sees it.
//!
//! Its idea of where headers are must be the tar crate's, or a header could slip past
//! unseen: header fields are parsed with the tar crate's own `Header` and `PaxExtensions`,
//! and every rule below mirrors `tar::archive::EntriesFields::next_entry` (0.4.46).

use std::io::{self, Read, Seek, SeekFrom};

const BLOCK: u64 = 512;
/// The most an 'L', 'K', 'x' or 'g' member may hold (Go's `maxSpecialFileSize`).
const MAX_SPECIAL: u64 = 1 << 20;
/// The most GNU sparse extension blocks one entry may have: 2 MiB of sparse map, about
/// 86,000 fragments, far more than any real file.
const MAX_SPARSE_BLOCKS: u32 = 4096;

/// Why a stream was refused; carried inside the `io::Error` the read returns.
#[derive(Debug, Clone, thiserror::Error)]
enum Refused {
    #[error("tar member at byte {at}: {what} of {size} bytes (limit {} MiB)", MAX_SPECIAL >> 20)]
    TooLarge { at: u64, what: &'static str, size: u64 },
    #[error("tar member at byte {at}: more than {MAX_SPARSE_BLOCKS} GNU sparse extension headers")]
    SparseMap { at: u64 },
    #[error("the tar reader moved to byte {to}, past a header at byte {header} that the size guard has not seen")]
    Lost { to: u64, header: u64 },
}

impl Refused {
    fn io(&self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self.clone())
    }
}

/// What the block at `Tracker::block` is.
#[derive(Debug, Clone, Copy)]
enum Next {
    /// A member header (or an end-of-archive zero block).
    Header,
    /// A GNU sparse extension block of the entry whose header is at `entry`; `data` bytes of
    /// the entry (rounded up) follow the last one.
    Sparse { entry: u64, count: u32, data: u64 },
}

#[derive(Debug)]
enum State {
    Tracking,
    /// Past the end of the archive, or past a header the tar crate refuses: nothing more
    /// is looked at, the tar crate reads no further headers.
    Done,
    Failed(Refused),
}

/// A PAX 'x' member being collected (at most [`MAX_SPECIAL`] bytes) for its `size=`.
#[derive(Debug)]
struct Pax {
    end: u64,
    data: Vec<u8>,
}

/// A reader that refuses tar streams whose extension headers would make the tar crate
/// hold more than 1 MiB: GNU long names and long links, PAX local and global headers
/// larger than 1 MiB, and more than 4096 GNU sparse extension blocks for one entry.
/// Everything else passes through unchanged; the refusal is an `InvalidData` error that
/// names the member, its size and the limit.
///
/// Wrap the stream given to `tar::Archive::new`. When seeking (for `entries_with_seek`)
/// the stream must start at offset 0 of `R`, as the tar crate itself assumes. Seeking
/// back is fine (bytes already seen are not looked at again); seeking forward past a
/// header not yet seen fails. After two zero blocks (the end of an archive) nothing more is
/// looked at, so it does not guard `tar::Archive::set_ignore_zeros(true)` walks. A stream
/// that ends after a member's data without its padding reads as if padded, as Go reads it.
#[derive(Debug)]
pub struct Bounded<R> {
    inner: R,
    /// Where the next read of `inner` starts.
    pos: u64,
    /// Every byte before this has been tracked.
    seen: u64,
    /// Where the next block to look at starts; while `seen > block`, its first
    /// `seen - block` bytes are in `head`.
    block: u64,
    next: Next,
    head: [u8; BLOCK as usize],
    /// Where the data of the member before `block` ends (its padding follows).
    data_end: u64,
    /// Zero blocks in a row at header positions.
    zeros: u8,
    pax: Option<Pax>,
    /// A PAX `size=` waiting for the entry it describes.
    pax_size: Option<u64>,
    state: State,
}

impl<R> Bounded<R> {
    /// Guard `inner`, positioned at the start of a tar stream.
    pub fn new(inner: R) -> Self {
        Bounded {
            inner,
            pos: 0,
            seen: 0,
            block: 0,
            next: Next::Header,
            head: [0; BLOCK as usize],
            data_end: 0,
            zeros: 0,
            pax: None,
            pax_size: None,
            state: State::Tracking,
        }
    }

    /// The wrapped stream back.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn failed(&self) -> io::Result<()> {
        match &self.state {
            State::Failed(r) => Err(r.io()),
            _ => Ok(()),
        }
    }

    fn fail(&mut self, r: Refused) -> io::Error {
        let e = r.io();
        self.state = State::Failed(r);
        e
    }

    /// The stream is now at `to`: bytes before `seen` were tracked already; a jump past
    /// `seen` may only skip data, never a block still to be looked at.
    fn jump(&mut self, to: u64) -> Result<(), Refused> {
        if !matches!(self.state, State::Tracking) || to <= self.seen {
            return Ok(());
        }
        if to <= self.block && self.pax.is_none() {
            self.seen = to;
            return Ok(());
        }
        Err(Refused::Lost { to, header: self.block })
    }

    /// Track `bytes`, read at stream offset `at`.
    fn track(&mut self, bytes: &[u8], at: u64) -> Result<(), Refused> {
        self.jump(at)?;
        let end = at + bytes.len() as u64;
        while matches!(self.state, State::Tracking) && self.seen < end {
            let i = (self.seen - at) as usize;
            let left = end - self.seen;
            if self.seen < self.block {
                // Data: step over it, unless it is a PAX member's records.
                let upto = match &mut self.pax {
                    Some(p) => {
                        let take = left.min(p.end - self.seen) as usize;
                        p.data.extend_from_slice(&bytes[i..i + take]);
                        self.seen + take as u64
                    }
                    None => self.seen + left.min(self.block - self.seen),
                };
                self.seen = upto;
                if let Some(p) = self.pax.take_if(|p| p.end == upto) {
                    self.pax_size = pax_size(&p.data);
                }
            } else {
                let filled = (self.seen - self.block) as usize;
                let take = (left as usize).min(BLOCK as usize - filled);
                self.head[filled..filled + take].copy_from_slice(&bytes[i..i + take]);
                self.seen += take as u64;
                if filled + take == BLOCK as usize {
                    self.inspect()?;
                }
            }
        }
        Ok(())
    }

    /// Look at the complete block at `block` and find the next one.
    fn inspect(&mut self) -> Result<(), Refused> {
        let at = self.block;
        if let Next::Sparse { entry, count, data } = self.next {
            if count >= MAX_SPARSE_BLOCKS {
                return Err(Refused::SparseMap { at: entry });
            }
            let mut ext = tar::GnuExtSparseHeader::new();
            ext.as_mut_bytes().copy_from_slice(&self.head);
            if ext.is_extended() {
                self.next = Next::Sparse { entry, count: count + 1, data };
                self.block = at + BLOCK;
            } else {
                self.next = Next::Header;
                self.data_end = (at + BLOCK).saturating_add(data);
                self.advance(at + BLOCK, data);
            }
            return Ok(());
        }
        if self.head.iter().all(|b| *b == 0) {
            // The end of the archive is two zero blocks; the tar crate stops at the first.
            self.zeros += 1;
            self.block = at + BLOCK;
            if self.zeros >= 2 {
                self.state = State::Done;
            }
            return Ok(());
        }
        self.zeros = 0;
        let h = tar::Header::from_byte_slice(&self.head);
        // A header the tar crate refuses ends its walk: judging it is left to it.
        let sum = self.head[..148].iter().chain(&self.head[156..]).map(|b| u32::from(*b)).sum::<u32>() + 8 * 32;
        let (Ok(cksum), Ok(mut size)) = (h.cksum(), h.entry_size()) else {
            self.state = State::Done;
            return Ok(());
        };
        if cksum != sum {
            self.state = State::Done;
            return Ok(());
        }
        let ty = h.entry_type();
        let what = if ty.is_gnu_longname() {
            Some("a GNU long name")
        } else if ty.is_gnu_longlink() {
            Some("a GNU long link name")
        } else if ty.is_pax_local_extensions() {
            Some("a PAX extended header")
        } else if ty.is_pax_global_extensions() {
            Some("a PAX global header")
        } else {
            None
        };
        if let Some(what) = what
            && size > MAX_SPECIAL
        {
            return Err(Refused::TooLarge { at, what, size });
        }
        // The tar crate reads 'L', 'K' and 'x' as extensions only in ustar or GNU headers;
        // a PAX `size=` replaces the size of the next member that is not an extension,
        // and any member it returns as an entry (a 'g', an unrecognised 'x') uses it up.
        let recognised = h.as_gnu().is_some() || h.as_ustar().is_some();
        let mut sparse = false;
        match what {
            Some(_) if recognised && ty.is_pax_local_extensions() => {
                self.pax_size = None;
                if size > 0 {
                    self.pax = Some(Pax { end: at + BLOCK + size, data: Vec::with_capacity(size as usize) });
                }
            }
            // The `size=` waits for the member these name.
            Some(_) if recognised && (ty.is_gnu_longname() || ty.is_gnu_longlink()) => {}
            Some(_) => self.pax_size = None,
            None => {
                size = self.pax_size.take().unwrap_or(size);
                sparse = ty.is_gnu_sparse() && h.as_gnu().is_some_and(|g| g.is_extended());
            }
        }
        let Some(data) = size.checked_add(BLOCK - 1).map(|s| s & !(BLOCK - 1)) else {
            self.state = State::Done;
            return Ok(());
        };
        if sparse {
            self.next = Next::Sparse { entry: at, count: 0, data };
            self.block = at + BLOCK;
        } else {
            self.data_end = (at + BLOCK).saturating_add(size);
            self.advance(at + BLOCK, data);
        }
        Ok(())
    }

    /// The next header is `data` bytes after `from` (the tar crate fails on overflow).
    fn advance(&mut self, from: u64, data: u64) {
        match from.checked_add(data) {
            Some(b) => self.block = b,
            None => self.state = State::Done,
        }
    }
}

/// The `size=` record of a PAX member, exactly as the tar crate reads it (any malformed
/// record before it means none).
fn pax_size(data: &[u8]) -> Option<u64> {
    for ext in tar::PaxExtensions::new(data) {
        let ext = ext.ok()?;
        if ext.key() != Ok("size") {
            continue;
        }
        return ext.value().ok()?.parse().ok();
    }
    None
}

impl<R> Bounded<R> {
    /// At the end of the input: how many zero bytes stand in for the last member's missing
    /// padding. Go's archive/tar ends cleanly when the stream stops after a member's data
    /// (umoci 0.4.7 writes such layers); the tar crate wants the padding. A stream that
    /// stops inside a member's data is still truncated: nothing stands in for that.
    fn missing_padding(&self) -> u64 {
        let at_end_of_data = matches!(self.state, State::Tracking)
            && matches!(self.next, Next::Header)
            && self.pax.is_none()
            && self.seen == self.pos
            && self.seen >= self.data_end;
        if at_end_of_data { self.block.saturating_sub(self.seen) } else { 0 }
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.failed()?;
        let n = match self.inner.read(buf)? {
            0 if !buf.is_empty() => {
                let pad = (self.missing_padding() as usize).min(buf.len());
                buf[..pad].fill(0);
                pad
            }
            n => n,
        };
        if matches!(self.state, State::Tracking)
            && let Err(r) = self.track(&buf[..n], self.pos)
        {
            return Err(self.fail(r));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for Bounded<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.failed()?;
        let p = self.inner.seek(to)?;
        self.pos = p;
        if let Err(r) = self.jump(p) {
            return Err(self.fail(r));
        }
        Ok(p)
    }
}
