use std::io::{self, Read};

use crate::Compression;

/// A reader yielding the uncompressed bytes of `inner`.
pub fn decompress<'a, R: Read + 'a>(compression: Compression, inner: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(inner),
        // Multi-member gzip is valid (pigz and parallel writers produce it).
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(256 * 1024, inner))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(inner)?),
    })
}

/// A reader that sniffs the first bytes of `inner` and decompresses accordingly.
pub fn decompress_sniffed<'a, R: Read + 'a>(inner: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut r = io::BufReader::with_capacity(256 * 1024, inner);
    let head = io::BufRead::fill_buf(&mut r)?;
    let c = Compression::sniff(head);
    decompress(c, r)
}
