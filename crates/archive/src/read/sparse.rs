//! GNU sparse files, read as Go's archive/tar reads them: the old GNU format (a map in the
//! header and in extension blocks after it) and PAX formats 0.0, 0.1 (a map in the
//! records) and 1.0 (a map at the start of the data). The map lists the data fragments,
//! stored one after the other; everything between them is a hole.

use super::Defect;
use super::header::{Block, Numbers};
use super::pax::Records;
use super::pax::{SPARSE_MAP, int};

/// The most fragments one sparse map may list: 4 in an old GNU header and 21 in each of
/// 4096 extension blocks, far more than any real file (Go's reader has no cap, and grows
/// its map as long as the input goes on).
pub(crate) const MAX_FRAGMENTS: usize = 4 + MAX_EXTENSIONS * 21;
/// The most extension blocks an old GNU sparse header may have.
pub(crate) const MAX_EXTENSIONS: usize = 4096;

/// One run of data in a sparse file: `length` bytes at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Where the run starts in the file.
    pub offset: u64,
    /// How many bytes of data.
    pub length: u64,
}

/// The entries of an old GNU sparse array (4 in the header, 21 in an extension block)
/// up to the first empty one, and whether an extension block follows.
pub(crate) fn old_gnu(array: &[u8], out: &mut Vec<(i64, i64)>) -> Result<bool, Defect> {
    let entries = array.len() / 24;
    let mut p = Numbers::default();
    for i in 0..entries {
        let e = &array[i * 24..][..24];
        if e[0] == 0 {
            break;
        }
        out.push((p.numeric(&e[..12]), p.numeric(&e[12..24])));
        if p.bad {
            return Err(Defect::Header("a GNU sparse map entry is not a number".into()));
        }
        if out.len() > MAX_FRAGMENTS {
            return Err(Defect::Header(format!("a GNU sparse map of more than {MAX_FRAGMENTS} fragments")));
        }
    }
    Ok(array[entries * 24] != 0)
}

/// The old GNU header's own four entries and its real size.
pub(crate) fn old_gnu_header(b: &Block, out: &mut Vec<(i64, i64)>) -> Result<(i64, bool), Defect> {
    let mut p = Numbers::default();
    let size = p.numeric(&b[483..495]);
    if p.bad {
        return Err(Defect::Header("the GNU sparse real size is not a number".into()));
    }
    Ok((size, old_gnu(&b[386..483], out)?))
}

/// Which PAX sparse format the records announce, if any: `Some(true)` for 1.0.
pub(crate) fn pax_version(recs: &Records) -> Option<bool> {
    let get = |k: &[u8]| recs.get(k).map(Vec::as_slice).unwrap_or_default();
    match (get(b"GNU.sparse.major"), get(b"GNU.sparse.minor")) {
        (b"0", b"0" | b"1") => Some(false),
        (b"1", b"0") => Some(true),
        (b"", b"") if !get(SPARSE_MAP).is_empty() => Some(false),
        _ => None,
    }
}

/// A count of map entries, bounded.
fn count(v: &[u8]) -> Result<usize, Defect> {
    match int(v) {
        Some(n) if (0..=MAX_FRAGMENTS as i64).contains(&n) => Ok(n as usize),
        Some(n) if n > 0 => Err(Defect::Header(format!("a GNU sparse map of {n} fragments (limit {MAX_FRAGMENTS})"))),
        _ => Err(Defect::Header("a GNU sparse map with no valid count".into())),
    }
}

/// Format 0.0/0.1: `GNU.sparse.numblocks` and `GNU.sparse.map` (offset,length,...).
pub(crate) fn pax_0x1(recs: &Records) -> Result<Vec<(i64, i64)>, Defect> {
    let n = count(recs.get(&b"GNU.sparse.numblocks"[..]).map(Vec::as_slice).unwrap_or_default())?;
    let map = recs.get(SPARSE_MAP).map(Vec::as_slice).unwrap_or_default();
    let fields: Vec<&[u8]> = if map.is_empty() { Vec::new() } else { map.split(|c| *c == b',').collect() };
    if fields.len() != 2 * n {
        return Err(Defect::Header(format!("GNU.sparse.map holds {} numbers where numblocks={n} needs {}", fields.len(), 2 * n)));
    }
    fields.chunks(2).map(|p| pair(p[0], p[1])).collect()
}

fn pair(offset: &[u8], length: &[u8]) -> Result<(i64, i64), Defect> {
    match (int(offset), int(length)) {
        (Some(o), Some(l)) => Ok((o, l)),
        _ => Err(Defect::Header("a GNU sparse map entry is not a number".into())),
    }
}

/// Format 1.0: decimal numbers, one a line, at the start of the data: the count, then
/// offset and length of each fragment. It fills whole blocks, taken from `next_block`.
pub(crate) fn pax_1x0(mut next_block: impl FnMut() -> Result<Block, Defect>) -> Result<Vec<(i64, i64)>, Defect> {
    // A number is at most 20 digits and a sign: a longer line is no number, and is not
    // gathered (Go's reader would buffer the whole data looking for a newline).
    const LONGEST: usize = 24;
    let mut tokens: Vec<Vec<u8>> = Vec::new();
    let mut partial = Vec::new();
    let mut want = 1;
    while tokens.len() < want {
        let block = next_block()?;
        for &c in block.iter() {
            if tokens.len() >= want {
                break;
            }
            if c == b'\n' {
                tokens.push(std::mem::take(&mut partial));
                if tokens.len() == 1 {
                    want = 1 + 2 * count(&tokens[0])?;
                }
            } else if partial.len() < LONGEST {
                partial.push(c);
            } else {
                return Err(Defect::Header("a GNU sparse 1.0 map line is too long to be a number".into()));
            }
        }
    }
    tokens[1..want].chunks(2).map(|p| pair(&p[0], &p[1])).collect()
}

/// The fragments with data, checked as Go checks them (in order, not overlapping, inside
/// `size`), empty ones left out.
pub(crate) fn fragments(map: &[(i64, i64)], size: i64) -> Option<Vec<Fragment>> {
    if size < 0 {
        return None;
    }
    let mut end = 0i64;
    let mut out = Vec::with_capacity(map.len());
    for &(offset, length) in map {
        let stop = offset.checked_add(length)?;
        if offset < 0 || length < 0 || stop > size || end > offset {
            return None;
        }
        end = stop;
        if length > 0 {
            out.push(Fragment { offset: offset as u64, length: length as u64 });
        }
    }
    Some(out)
}
