//! The tar reader: extension members that claim gigabytes are refused at their header, and
//! every legitimate archive reads as the tar crate reads it (streamed in small pieces, and
//! walked with seeks).

use std::collections::BTreeMap;
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};

use imgtool_archive::{DockerArchiveSource, Error, ExtractOptions, TarReader, apply_layer};
use imgtool_tests::Rng;
use tar::{EntryType, Header};

const HUGE: u64 = 64 << 30;

/// A reader that hands out 1 to 700 bytes per read, so headers straddle reads.
struct Chunky<R> {
    inner: R,
    rng: Rng,
}
impl<R: Read> Read for Chunky<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (1 + self.rng.below(700)).min(buf.len());
        self.inner.read(&mut buf[..n])
    }
}
impl<R: Seek> Seek for Chunky<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.inner.seek(to)
    }
}
fn chunky<R>(inner: R, seed: u64) -> Chunky<R> {
    Chunky { inner, rng: Rng(seed | 1) }
}

/// Counts what is pulled from the source.
struct Counted<R>(R, u64);
impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1 += n as u64;
        Ok(n)
    }
}

/// A header of type `ty` claiming `size` bytes (base 256 past 8 GiB), checksum set.
fn header(ty: EntryType, name: &str, size: u64, gnu: bool) -> Header {
    let mut h = if gnu { Header::new_gnu() } else { Header::new_ustar() };
    h.set_entry_type(ty);
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_mode(0o644);
    h.set_size(size);
    h.set_cksum();
    h
}

/// PAX records, each `"<len> key=value\n"`.
fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let rest = k.len() + v.len() + 3;
        let mut len = rest + rest.to_string().len();
        if len.to_string().len() + rest != len {
            len = rest + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {k}=").as_bytes());
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, path, data).unwrap();
}

fn link(b: &mut tar::Builder<Vec<u8>>, ty: EntryType, path: impl AsRef<std::path::Path>, target: impl AsRef<std::path::Path>) {
    let mut h = Header::new_gnu();
    h.set_entry_type(ty);
    h.set_mode(0o777);
    h.set_size(0);
    b.append_link(&mut h, path, target).unwrap();
}

/// A small archive of one file (two blocks), then `h`; the rest of the stream is zeros.
fn hostile(h: &Header, zeros: u64) -> impl Read {
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "first", b"first\n");
    let mut head = b.get_ref().clone();
    head.extend_from_slice(h.as_bytes());
    Cursor::new(head).chain(io::repeat(0).take(zeros))
}

/// What a walk shows of each member: path, type, size, contents, link, PAX records.
type Listing = Vec<(Vec<u8>, u8, u64, Vec<u8>, Option<Vec<u8>>, BTreeMap<Vec<u8>, Vec<u8>>)>;

/// The tar crate's view (a PAX global header's own body is left out: Go's reader and ours
/// give its records, not its bytes).
fn list_tar_crate(bytes: &[u8]) -> Listing {
    let mut out = Vec::new();
    for e in tar::Archive::new(bytes).entries().unwrap() {
        let mut e = e.unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let mut exts: BTreeMap<_, _> = match e.pax_extensions().unwrap() {
            Some(x) => x.map(|x| x.map(|x| (x.key_bytes().to_vec(), x.value_bytes().to_vec()))).collect::<io::Result<_>>().unwrap(),
            None => BTreeMap::new(),
        };
        let (ty, mut size) = (e.header().entry_type().as_byte(), e.size());
        if ty == b'g' {
            (exts, data, size) = (pax_records(&data), Vec::new(), 0);
        }
        let link = e.link_name_bytes().map(|l| l.into_owned());
        out.push((e.path_bytes().into_owned(), ty, size, data, link, exts));
    }
    out
}

fn pax_records(mut body: &[u8]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    while let Some(sp) = body.iter().position(|c| *c == b' ') {
        let n: usize = std::str::from_utf8(&body[..sp]).unwrap().parse().unwrap();
        let rec = &body[sp + 1..n - 1];
        let eq = rec.iter().position(|c| *c == b'=').unwrap();
        out.insert(rec[..eq].to_vec(), rec[eq + 1..].to_vec());
        body = &body[n..];
    }
    out
}

fn list<R: Read>(mut tar: TarReader<R>) -> Result<Listing, imgtool_archive::TarError> {
    let mut out = Vec::new();
    while let Some(m) = tar.next_member()? {
        let mut data = Vec::new();
        tar.read_to_end(&mut data).unwrap();
        let link = (!m.link.is_empty()).then(|| m.link.clone());
        out.push((m.path, m.typeflag, m.size, data, link, m.pax));
    }
    Ok(out)
}

/// The archive as the tar crate reads it, then through our reader (read in small pieces,
/// and walked with seeks); all three must agree.
fn same_as_the_tar_crate(bytes: &[u8], seed: u64) -> Listing {
    let plain = list_tar_crate(bytes);
    let streamed = list(TarReader::new(chunky(bytes, seed))).unwrap();
    assert_eq!(plain, streamed, "read in pieces");
    let seeking = list(TarReader::seeking(chunky(Cursor::new(bytes), seed + 1))).unwrap();
    assert_eq!(plain, seeking, "walked with seeks");
    plain
}

const EXTENSIONS: [(EntryType, bool, &str); 4] = [
    (EntryType::XHeader, false, "a PAX extended header"),
    (EntryType::GNULongName, true, "a GNU long name"),
    (EntryType::GNULongLink, true, "a GNU long link name"),
    (EntryType::XGlobalHeader, false, "a PAX global header"),
];

#[test]
fn huge_extension_members_are_refused_at_their_header() {
    for (ty, gnu, what) in EXTENSIONS {
        let h = header(ty, "././@LongLink", HUGE, gnu);
        assert_eq!(h.as_old().size[0] & 0x80, 0x80, "the size is in base 256");
        let root = tempfile::tempdir().unwrap();
        let mut src = Counted(hostile(&h, HUGE), 0);
        let err = apply_layer(root.path(), &mut src, ExtractOptions::default(), "layer 7").unwrap_err();
        let Error::Format { place, why } = &err else { panic!("{what}: {err:?}") };
        assert_eq!(place, "layer 7");
        assert!(why.contains(&format!("tar member at byte 1024: {what} of {HUGE} bytes (limit 1 MiB)")), "{why}");
        assert!(src.1 < 64 << 10, "{what}: {} bytes were read before the refusal", src.1);
        // Straight from the reader: refused at the header, after the first member.
        let mut tar = TarReader::new(chunky(hostile(&h, HUGE), 9));
        assert!(tar.next_member().unwrap().is_some());
        let e = tar.next_member().unwrap_err();
        assert_eq!(e.at, 1024, "{e}");
    }
}

#[test]
fn a_large_pax_header_in_a_gzip_layer_is_refused() {
    // One that holds all it claims (8 MiB), one that claims 64 GiB: both fail at once.
    for (size, zeros) in [(8 << 20, 8 << 20), (HUGE, 16 << 20)] {
        for (ty, gnu, what) in EXTENSIONS {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            io::copy(&mut hostile(&header(ty, "PaxHeader", size, gnu), zeros), &mut gz).unwrap();
            let layer = gz.finish().unwrap();
            let root = tempfile::tempdir().unwrap();
            let err = apply_layer(root.path(), flate2::read::GzDecoder::new(&layer[..]), ExtractOptions::default(), "layer 0").unwrap_err();
            assert!(err.to_string().contains(&format!("{what} of {size} bytes (limit 1 MiB)")), "{err}");
        }
    }
}

#[test]
fn extension_members_at_the_limit_pass() {
    let long = "d/".repeat(300) + "f";
    let mut b = tar::Builder::new(Vec::new());
    // A PAX path padded to exactly 1 MiB of records.
    let mut body = pax(&[("path", long.as_bytes())]);
    let pad = (1 << 20) - body.len();
    let mut n = pad - 20;
    while pax(&[("comment", &vec![b'c'; n])]).len() < pad {
        n += 1;
    }
    let filler = pax(&[("comment", &vec![b'c'; n])]);
    assert_eq!(filler.len(), pad);
    body.extend_from_slice(&filler);
    b.append(&header(EntryType::XHeader, "PaxHeader", body.len() as u64, false), &body[..]).unwrap();
    b.append(&header(EntryType::Regular, "short", 3, false), &b"abc"[..]).unwrap();
    let bytes = b.into_inner().unwrap();
    let listing = same_as_the_tar_crate(&bytes, 3);
    assert_eq!(listing[0].0, long.as_bytes());
}

/// A GNU sparse entry whose map goes on for `blocks` extension blocks, all empty.
fn sparse_chain(blocks: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(EntryType::GNUSparse, "sparse", 0, true);
    h.as_gnu_mut().unwrap().isextended[0] = 1;
    h.as_gnu_mut().unwrap().set_real_size(0);
    h.set_cksum();
    b.get_mut().extend_from_slice(h.as_bytes());
    for i in 0..blocks {
        let mut ext = tar::GnuExtSparseHeader::new();
        ext.set_is_extended(i + 1 < blocks);
        b.get_mut().extend_from_slice(ext.as_bytes());
    }
    file(&mut b, "after", b"after\n");
    b.into_inner().unwrap()
}

#[test]
fn long_gnu_sparse_maps_are_refused() {
    let listing = same_as_the_tar_crate(&sparse_chain(4096), 5);
    assert_eq!(listing.iter().map(|e| e.0.clone()).collect::<Vec<_>>(), [b"sparse".to_vec(), b"after".to_vec()]);
    let bytes = sparse_chain(5000);
    let e = TarReader::new(chunky(&bytes[..], 6)).next_member().unwrap_err();
    assert_eq!(e.to_string(), "tar member at byte 0 (\"sparse\"): more than 4096 GNU sparse extension headers");
}

/// GNU long names and links, PAX paths, xattrs and a PAX size override, a GNU sparse file
/// with two extension blocks, hard links and symlinks.
fn legit() -> Vec<u8> {
    let long = format!("{}/{}", "dir".repeat(40), "name".repeat(30));
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, &long, b"gnu long name\n");
    link(&mut b, EntryType::Symlink, "link-to-long", &long);
    link(&mut b, EntryType::Link, format!("{long}.hard"), &long);
    let pax_long = format!("pax/{}", "p".repeat(150));
    let body = pax(&[("path", pax_long.as_bytes()), ("SCHILY.xattr.user.k", b"v"), ("uid", b"4242")]);
    b.append(&header(EntryType::XHeader, "PaxHeader", body.len() as u64, false), &body[..]).unwrap();
    b.append(&header(EntryType::Regular, "ignored", 5, false), &b"pax!\n"[..]).unwrap();
    // A PAX size= over a header that says 0: where the header's size would put the next
    // header, the data holds a header claiming a 64 GiB PAX member.
    let mut data = header(EntryType::XHeader, "trap", HUGE, false).as_bytes().to_vec();
    data.extend((0..1000u32).map(|i| i as u8));
    let body = pax(&[("size", data.len().to_string().as_bytes())]);
    b.append(&header(EntryType::XHeader, "PaxHeader", body.len() as u64, false), &body[..]).unwrap();
    b.append(&header(EntryType::Regular, "sized-by-pax", 0, false), &data[..]).unwrap();
    // The same with a GNU long name between the PAX member and the file it sizes.
    b.append(&header(EntryType::XHeader, "PaxHeader", body.len() as u64, false), &body[..]).unwrap();
    let mut h = Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(0);
    b.append_data(&mut h, format!("{long}.sized"), &data[..]).unwrap();
    // A global header, returned as an entry.
    let body = pax(&[("comment", b"global")]);
    b.append(&header(EntryType::XGlobalHeader, "GlobalHead", body.len() as u64, false), &body[..]).unwrap();
    // GNU sparse: 4 fragments in the header, 21 and 3 in two extension blocks, each 512
    // bytes of data every 1024 bytes.
    let frag = |k: u64| (k * 1024, 512u64);
    let mut h = header(EntryType::GNUSparse, "sparse", 28 * 512, true);
    let g = h.as_gnu_mut().unwrap();
    for (k, s) in g.sparse.iter_mut().enumerate() {
        s.set_offset(frag(k as u64).0);
        s.set_length(frag(k as u64).1);
    }
    g.isextended[0] = 1;
    g.set_real_size(27 * 1024 + 512);
    h.set_cksum();
    b.get_mut().extend_from_slice(h.as_bytes());
    for (first, n, more) in [(4, 21, true), (25, 3, false)] {
        let mut ext = tar::GnuExtSparseHeader::new();
        for (i, s) in ext.sparse_mut().iter_mut().take(n).enumerate() {
            s.set_offset(frag(first + i as u64).0);
            s.set_length(512);
        }
        ext.set_is_extended(more);
        b.get_mut().extend_from_slice(ext.as_bytes());
    }
    // Its 27th fragment is where a reader that forgot the two extension blocks would look
    // for the next header: it holds one claiming a 64 GiB PAX member.
    let mut data: Vec<u8> = (0..28 * 512).map(|i| (i / 512) as u8 + 1).collect();
    data[26 * 512..27 * 512].copy_from_slice(header(EntryType::XHeader, "trap", HUGE, false).as_bytes());
    b.get_mut().extend_from_slice(&data);
    link(&mut b, EntryType::Symlink, "short-link", "sized-by-pax");
    file(&mut b, "last", b"last\n");
    b.into_inner().unwrap()
}

#[test]
fn legit_archives_read_as_the_tar_crate_reads_them() {
    let bytes = legit();
    let listing = same_as_the_tar_crate(&bytes, 11);
    let names: Vec<String> = listing.iter().map(|e| String::from_utf8_lossy(&e.0).into_owned()).collect();
    assert_eq!(names.len(), 10, "{names:?}");
    let pax_size = &listing[names.iter().position(|n| n == "sized-by-pax").unwrap()];
    assert_eq!(pax_size.3.len(), 1512);
    let sparse = &listing[names.iter().position(|n| n == "sparse").unwrap()];
    assert_eq!(sparse.2, 27 * 1024 + 512);
    assert_eq!(&sparse.3[1024..1536], &[2u8; 512][..]);
    assert_eq!(names.last().unwrap(), "last");

    // Extraction makes the same files.
    let root = tempfile::tempdir().unwrap();
    apply_layer(root.path(), &bytes[..], ExtractOptions::default(), "legit").unwrap();
    for e in &listing {
        let p = root.path().join(String::from_utf8_lossy(&e.0).as_ref());
        match EntryType::new(e.1) {
            EntryType::Regular => assert_eq!(std::fs::read(&p).unwrap(), e.3, "{}", p.display()),
            EntryType::Link => {
                let target = root.path().join(String::from_utf8_lossy(e.4.as_deref().unwrap()).as_ref());
                assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(target).unwrap());
            }
            EntryType::Symlink => assert_eq!(std::fs::read_link(&p).unwrap().as_os_str().as_encoded_bytes(), e.4.as_deref().unwrap()),
            _ => {}
        }
    }
}

#[test]
fn random_archives_pass_through_unchanged() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    const SIZES: [usize; 9] = [0, 1, 511, 512, 513, 1023, 1024, 1025, 100];
    for round in 0..150 {
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..1 + rng.below(12) {
            let name = format!("{i}-{}", "n".repeat(rng.below(260)));
            let size = if rng.below(3) == 0 { rng.below(5000) } else { SIZES[rng.below(SIZES.len())] };
            let data: Vec<u8> = (0..size).map(|_| rng.next_u64() as u8).collect();
            match rng.below(5) {
                0 => {
                    link(&mut b, EntryType::Symlink, &name, "t".repeat(rng.below(300) + 1));
                }
                1 => {
                    // PAX path and a size= that differs from the header's.
                    let body = pax(&[("path", name.as_bytes()), ("size", size.to_string().as_bytes())]);
                    b.append(&header(EntryType::XHeader, "PaxHeader", body.len() as u64, false), &body[..]).unwrap();
                    let mut h = header(EntryType::Regular, "x", rng.below(2000) as u64, rng.below(2) == 0);
                    if rng.below(2) == 0 {
                        b.append(&h, &data[..]).unwrap();
                    } else {
                        b.append_data(&mut h, format!("{name}.gnu"), &data[..]).unwrap();
                    }
                }
                _ => file(&mut b, &name, &data),
            }
        }
        let bytes = b.into_inner().unwrap();
        same_as_the_tar_crate(&bytes, round);
    }
}

#[test]
fn bytes_after_the_end_of_the_archive_are_not_judged() {
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "a", b"a");
    let mut bytes = b.into_inner().unwrap();
    bytes.extend_from_slice(header(EntryType::XHeader, "PaxHeader", HUGE, false).as_bytes());
    bytes.extend_from_slice(&[7; 3000]);
    let listing = list(TarReader::new(chunky(&bytes[..], 4))).unwrap();
    assert_eq!(listing.len(), 1);
}

#[test]
fn data_cut_short_is_noticed_when_seeking_over_it() {
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "big", &[1; 5000]);
    let bytes = b.into_inner().unwrap();
    for cut in [512 + 10, 512 + 4999] {
        let mut tar = TarReader::seeking(Cursor::new(&bytes[..cut]));
        assert!(tar.next_member().unwrap().is_some());
        let e = tar.next_member().unwrap_err();
        assert_eq!(e.to_string(), "tar member at byte 0 (\"big\"): the stream ends inside it (truncated)", "cut at {cut}");
        assert!(tar.next_member().is_err(), "a refused stream stays refused");
    }
}

#[test]
fn a_docker_archive_with_a_huge_pax_header_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("hostile.tar");
    let mut f = std::fs::File::create(&path).unwrap();
    io::copy(&mut hostile(&header(EntryType::XHeader, "PaxHeader", HUGE, false), 1 << 20), &mut f).unwrap();
    f.flush().unwrap();
    let err = DockerArchiveSource::open(&path).unwrap_err();
    let Error::Format { place, why } = &err else { panic!("{err:?}") };
    assert_eq!(place, &path.display().to_string());
    assert!(why.contains(&format!("a PAX extended header of {HUGE} bytes (limit 1 MiB)")), "{why}");
}

/// umoci 0.4.7 writes small layers that stop right after the last member's data, with no
/// padding and no end blocks. Go's archive/tar reads them to a clean end, so must we; a
/// stream cut inside a member's data is still refused as truncated.
#[test]
fn a_layer_that_stops_after_its_last_data_reads_as_go_reads_it() {
    let mut b = tar::Builder::new(Vec::new());
    let mut d = header(EntryType::Directory, "d/", 0, false);
    d.set_mode(0o755);
    d.set_cksum();
    b.append(&d, io::empty()).unwrap();
    file(&mut b, "d/f", b"hello\n");
    let full = b.into_inner().unwrap();
    let data_end = 512 + 512 + 6;
    for (cut, ok) in [(data_end, true), (data_end + 100, true), (1536, true), (data_end - 3, false), (512 + 300, false)] {
        for seed in [1, 2, 3] {
            let tmp = tempfile::tempdir().unwrap();
            let got = apply_layer(tmp.path(), chunky(&full[..cut], seed), ExtractOptions::default(), "layer");
            match (ok, got) {
                (true, Ok(())) => assert_eq!(std::fs::read(tmp.path().join("d/f")).unwrap(), b"hello\n", "cut at {cut}"),
                (false, Err(_)) => {}
                (want, got) => panic!("cut at {cut}: expected ok={want}, got {got:?}"),
            }
        }
    }
}
