//! A deterministic parallel gzip writer.
//!
//! The input is cut into fixed-size chunks; each chunk is deflated on its own, primed with
//! the 32 KiB before it as a dictionary, and ended with a sync flush so the pieces join into
//! one deflate stream (the way pigz works). Chunk boundaries depend only on the input, so the
//! output is the same bytes whatever the number of threads.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression as Level, FlushCompress, Status};

const CHUNK: usize = 512 * 1024;
const WINDOW: usize = 32 * 1024;
/// gzip header: no name, no mtime, OS unknown, so the bytes never depend on the host.
const HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff];

struct Job {
    seq: u64,
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
}

/// Whether `data` looks like noise to deflate (already compressed or random): its byte
/// counts are about even. Deflating such data at level 6 costs the most time and saves
/// nothing, so it is stored instead. Integer arithmetic keeps the choice, and so the
/// output bytes, the same on every machine.
fn incompressible(data: &[u8]) -> bool {
    if data.len() < 64 * 1024 {
        return false;
    }
    // A sample (the first 512 bytes of every 4 KiB) judges the chunk at an eighth of the cost.
    let mut counts = [0u64; 256];
    let mut n = 0i64;
    for block in data.chunks(4096) {
        for &b in &block[..block.len().min(512)] {
            counts[b as usize] += 1;
        }
        n += block.len().min(512) as i64;
    }
    // Pearson's chi-square against a uniform distribution: about 255 for random bytes,
    // tens of thousands and more for text and code.
    let sum: u64 = counts.iter().map(|&c| (256 * c as i64 - n).unsigned_abs().pow(2)).sum();
    sum / (256 * n as u64) < 512
}

fn deflate_chunk(level: u32, dict: &[u8], data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let level = if incompressible(data) { 0 } else { level };
    let mut c = Compress::new(Level::new(level), false);
    if !dict.is_empty() && level > 0 {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
    loop {
        if out.capacity() - out.len() < 64 * 1024 {
            out.reserve(64 * 1024);
        }
        let consumed = c.total_in() as usize;
        let status = c.compress_vec(&data[consumed..], &mut out, flush).map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == data.len();
        // A flush is complete once a call leaves output space unused.
        let flushed = all_in && out.len() < out.capacity();
        if (last && status == Status::StreamEnd) || (!last && flushed) {
            break;
        }
    }
    Ok(out)
}

/// A `Write` that gzips what it is given into `inner`, using `threads` cores.
pub struct ParallelGzip<W: Write> {
    inner: W,
    level: u32,
    buf: Vec<u8>,
    prev_tail: Vec<u8>,
    crc: crc32fast::Hasher,
    total: u64,
    seq: u64,
    written_seq: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    in_flight: usize,
    max_in_flight: usize,
    workers: Vec<JoinHandle<()>>,
    jobs: Option<SyncSender<Job>>,
    results: Option<Receiver<(u64, io::Result<Vec<u8>>)>>,
}

impl<W: Write> ParallelGzip<W> {
    /// A writer at `level` (1-9) with `threads` compressing threads (1 compresses inline).
    pub fn new(mut inner: W, level: u32, threads: usize) -> io::Result<Self> {
        inner.write_all(&HEADER)?;
        let mut me = Self {
            inner,
            level,
            buf: Vec::with_capacity(CHUNK),
            prev_tail: Vec::new(),
            crc: crc32fast::Hasher::new(),
            total: 0,
            seq: 0,
            written_seq: 0,
            pending: BTreeMap::new(),
            in_flight: 0,
            max_in_flight: threads * 2,
            workers: Vec::new(),
            jobs: None,
            results: None,
        };
        if threads > 1 {
            let (jtx, jrx) = sync_channel::<Job>(threads * 2);
            let (rtx, rrx) = sync_channel(threads * 2 + 1);
            let jrx = Arc::new(Mutex::new(jrx));
            for _ in 0..threads {
                let jrx = jrx.clone();
                let rtx = rtx.clone();
                me.workers.push(std::thread::spawn(move || {
                    loop {
                        let job = match jrx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let out = deflate_chunk(level, &job.dict, &job.data, job.last);
                        if rtx.send((job.seq, out)).is_err() {
                            return;
                        }
                    }
                }));
            }
            me.jobs = Some(jtx);
            me.results = Some(rrx);
        }
        Ok(me)
    }

    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let dict = std::mem::take(&mut self.prev_tail);
        self.prev_tail = data[data.len().saturating_sub(WINDOW)..].to_vec();
        if self.prev_tail.len() < WINDOW && !dict.is_empty() {
            // A short chunk: the window reaches back into the chunk before it.
            let need = WINDOW - self.prev_tail.len();
            let mut t = dict[dict.len().saturating_sub(need)..].to_vec();
            t.extend_from_slice(&self.prev_tail);
            self.prev_tail = t;
        }
        let seq = self.seq;
        self.seq += 1;
        match &self.jobs {
            None => {
                let out = deflate_chunk(self.level, &dict, &data, last)?;
                self.inner.write_all(&out)?;
                self.written_seq += 1;
            }
            Some(jobs) => {
                jobs.send(Job { seq, dict, data, last }).map_err(|_| io::Error::other("a compression thread stopped"))?;
                self.in_flight += 1;
                while self.in_flight >= self.max_in_flight {
                    self.receive_one()?;
                }
            }
        }
        Ok(())
    }

    fn receive_one(&mut self) -> io::Result<()> {
        let rx = self.results.as_ref().ok_or_else(|| io::Error::other("no compression threads"))?;
        let (seq, out) = rx.recv().map_err(|_| io::Error::other("a compression thread stopped"))?;
        self.in_flight -= 1;
        self.pending.insert(seq, out?);
        while let Some(out) = self.pending.remove(&self.written_seq) {
            self.inner.write_all(&out)?;
            self.written_seq += 1;
        }
        Ok(())
    }

    /// Write the last chunk and the trailer; returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while self.in_flight > 0 {
            self.receive_one()?;
        }
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        self.inner.write_all(&crc.to_le_bytes())?;
        self.inner.write_all(&(self.total as u32).to_le_bytes())?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.crc.update(&data[..n]);
        self.total += n as u64;
        if self.buf.len() == CHUNK {
            self.dispatch(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn noise(n: usize) -> Vec<u8> {
        // xorshift: random-looking bytes without a dependency.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn gzip(data: &[u8], threads: usize) -> Vec<u8> {
        let mut w = ParallelGzip::new(Vec::new(), 6, threads).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn noise_is_stored_and_text_deflated_the_same_with_any_threads() {
        let text: Vec<u8> = b"fn main() { println!(\"hello\"); }\n".iter().copied().cycle().take(3 << 20).collect();
        let mut data = noise(2 << 20);
        data.extend_from_slice(&text);
        data.extend(noise(700 << 10));
        assert!(incompressible(&data[..CHUNK]) && !incompressible(&text[..CHUNK]));
        let one = gzip(&data, 1);
        assert_eq!(one, gzip(&data, 3), "the same bytes whatever the threads");
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&one[..]), &mut back).unwrap();
        assert!(back == data, "round trip");
        // Stored noise costs a few bytes per 64 KiB block; deflated text almost nothing.
        let noise_len = (2 << 20) + (700 << 10);
        assert!(one.len() > noise_len && one.len() < noise_len + 4096 + text.len() / 100, "{} bytes", one.len());
    }
}
