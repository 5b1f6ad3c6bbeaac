//! One 512-byte header block decoded as Go's archive/tar decodes it: the checksum may be
//! a sum of unsigned or of signed bytes, numbers are octal or base-256, strings end at
//! their first NUL, and the format (V7, USTAR/PAX, STAR, GNU) is told by its magic.

pub(crate) const BLOCK: usize = 512;
pub(crate) type Block = [u8; BLOCK];
pub(crate) const ZERO: Block = [0; BLOCK];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    V7,
    Ustar,
    Star,
    Gnu,
}

/// The block's format, or `None` when its checksum does not match (either way of summing).
pub(crate) fn format(b: &Block) -> Option<Format> {
    let mut p = Numbers::default();
    let want = p.octal(&b[148..156]);
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &c) in b.iter().enumerate() {
        let c = if (148..156).contains(&i) { b' ' } else { c };
        unsigned += i64::from(c);
        signed += i64::from(c as i8);
    }
    if p.bad || (want != unsigned && want != signed) {
        return None;
    }
    let (magic, version, trailer) = (&b[257..263], &b[263..265], &b[508..512]);
    Some(match () {
        _ if magic == b"ustar\0" && trailer == b"tar\0" => Format::Star,
        _ if magic == b"ustar\0" => Format::Ustar,
        _ if magic == b"ustar " && version == b" \0" => Format::Gnu,
        _ => Format::V7,
    })
}

/// A string field: up to its first NUL.
pub(crate) fn string(b: &[u8]) -> &[u8] {
    b.split(|c| *c == 0).next().unwrap_or(b)
}

/// Numeric fields parsed as Go parses them; `bad` records that one did not parse.
#[derive(Default)]
pub(crate) struct Numbers {
    pub(crate) bad: bool,
}

impl Numbers {
    /// Base-256 when the first bit is set (two's complement, big-endian), else octal.
    pub(crate) fn numeric(&mut self, b: &[u8]) -> i64 {
        let Some(&first) = b.first() else { return 0 };
        if first & 0x80 == 0 {
            return self.octal(b);
        }
        let inv = if first & 0x40 != 0 { 0xff } else { 0 };
        let mut x: u64 = 0;
        for (i, &c) in b.iter().enumerate() {
            let mut c = c ^ inv;
            if i == 0 {
                c &= 0x7f;
            }
            if x >> 56 > 0 {
                self.bad = true;
                return 0;
            }
            x = x << 8 | u64::from(c);
        }
        if x >> 63 > 0 {
            self.bad = true;
            return 0;
        }
        if inv == 0xff { !(x as i64) } else { x as i64 }
    }

    /// Octal digits, with leading and trailing spaces and NULs ignored.
    pub(crate) fn octal(&mut self, b: &[u8]) -> i64 {
        let pad = |c: &u8| *c == b' ' || *c == 0;
        let start = b.iter().position(|c| !pad(c)).unwrap_or(b.len());
        let end = b.iter().rposition(|c| !pad(c)).map_or(start, |e| e + 1);
        let digits = string(&b[start..end]);
        if start == end {
            return 0;
        }
        let mut x: u64 = 0;
        for &c in digits {
            match x.checked_mul(8).and_then(|m| m.checked_add(u64::from(c.wrapping_sub(b'0')))) {
                Some(n) if (b'0'..=b'7').contains(&c) => x = n,
                _ => {
                    self.bad = true;
                    return 0;
                }
            }
        }
        if digits.is_empty() {
            self.bad = true;
        }
        x as i64
    }
}

/// What one header block says, before extension headers are merged in.
#[derive(Debug, Clone)]
pub(crate) struct Raw {
    pub(crate) format: Format,
    pub(crate) typeflag: u8,
    pub(crate) name: Vec<u8>,
    pub(crate) link: Vec<u8>,
    pub(crate) size: i64,
    pub(crate) mode: i64,
    pub(crate) uid: i64,
    pub(crate) gid: i64,
    pub(crate) mtime: i64,
    pub(crate) uname: Vec<u8>,
    pub(crate) gname: Vec<u8>,
    pub(crate) dev_major: i64,
    pub(crate) dev_minor: i64,
}

/// Decode a (non-zero) header block.
pub(crate) fn decode(b: &Block) -> Result<Raw, &'static str> {
    let format = format(b).ok_or("the header's checksum does not match its bytes (not a tar header)")?;
    let mut p = Numbers::default();
    let mut raw = Raw {
        format,
        typeflag: b[156],
        name: string(&b[0..100]).to_vec(),
        link: string(&b[157..257]).to_vec(),
        size: p.numeric(&b[124..136]),
        mode: p.numeric(&b[100..108]),
        uid: p.numeric(&b[108..116]),
        gid: p.numeric(&b[116..124]),
        mtime: p.numeric(&b[136..148]),
        uname: Vec::new(),
        gname: Vec::new(),
        dev_major: 0,
        dev_minor: 0,
    };
    if format != Format::V7 {
        raw.uname = string(&b[265..297]).to_vec();
        raw.gname = string(&b[297..329]).to_vec();
        raw.dev_major = p.numeric(&b[329..337]);
        raw.dev_minor = p.numeric(&b[337..345]);
        let prefix: &[u8] = match format {
            Format::Ustar => string(&b[345..500]),
            Format::Star => {
                p.numeric(&b[476..488]);
                p.numeric(&b[488..500]);
                string(&b[345..476])
            }
            _ => {
                // Go before 1.8 wrote a USTAR prefix where GNU keeps atime and ctime: when
                // those do not parse and the field reads as ASCII, it is a prefix.
                let mut times = Numbers::default();
                for field in [&b[345..357], &b[357..369]] {
                    if field[0] != 0 {
                        times.numeric(field);
                    }
                }
                let prefix = string(&b[345..500]);
                if times.bad && prefix.is_ascii() { prefix } else { &[] }
            }
        };
        if !prefix.is_empty() {
            raw.name = [prefix, b"/", &raw.name].concat();
        }
    }
    if p.bad {
        return Err("a numeric field of the header is not a number");
    }
    Ok(raw)
}
