//! PAX extended header records, parsed and merged as Go's archive/tar does: a malformed
//! record fails the archive (Docker, containerd and skopeo would refuse it), a later
//! record of the same key wins, and an empty value keeps the header's own field.

use std::collections::BTreeMap;

use super::header::Raw;

/// Records by key.
pub(crate) type Records = BTreeMap<Vec<u8>, Vec<u8>>;

/// The key GNU's PAX sparse format 0.0 map is gathered under, as format 0.1 stores it.
pub(crate) const SPARSE_MAP: &[u8] = b"GNU.sparse.map";

/// Parse the body of an 'x' or 'g' member. GNU sparse 0.0's repeated `offset`/`numbytes`
/// records are joined into one 0.1 `GNU.sparse.map`.
pub(crate) fn parse(mut buf: &[u8]) -> Result<Records, String> {
    let mut recs = Records::new();
    let mut map: Vec<&[u8]> = Vec::new();
    while !buf.is_empty() {
        let (k, v, rest) = record(buf)?;
        buf = rest;
        match k {
            b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => {
                let want: &[u8] = if map.len() % 2 == 0 { b"GNU.sparse.offset" } else { b"GNU.sparse.numbytes" };
                if k != want || v.contains(&b',') {
                    return Err("GNU sparse 0.0 records out of order".into());
                }
                map.push(v);
            }
            _ => {
                recs.insert(k.to_vec(), v.to_vec());
            }
        }
    }
    if !map.is_empty() {
        recs.insert(SPARSE_MAP.to_vec(), map.join(&b","[..]));
    }
    Ok(recs)
}

/// Key, value and what follows a record.
type Split<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// One `"<len> key=value\n"` record and what follows it.
fn record(s: &[u8]) -> Result<Split<'_>, String> {
    let bad = |why: &str| Err(format!("a malformed PAX record ({why})"));
    let Some(sp) = s.iter().position(|c| *c == b' ') else { return bad("no length") };
    let Some(n) = std::str::from_utf8(&s[..sp]).ok().and_then(|n| n.parse::<i64>().ok()) else { return bad("no length") };
    if n < 5 || n > s.len() as i64 || n as usize <= sp + 1 {
        return bad("a length out of range");
    }
    let (rec, rest) = (&s[sp + 1..n as usize - 1], &s[n as usize..]);
    if s[n as usize - 1] != b'\n' {
        return bad("no newline where its length ends");
    }
    let Some(eq) = rec.iter().position(|c| *c == b'=') else { return bad("no '='") };
    let (k, v) = (&rec[..eq], &rec[eq + 1..]);
    let strings: [&[u8]; 4] = [b"path", b"linkpath", b"uname", b"gname"];
    if k.is_empty() {
        return bad("an empty key");
    }
    if strings.contains(&k) && v.contains(&0) || !strings.contains(&k) && k.contains(&0) {
        return Err(format!("a NUL in the PAX record {:?}", String::from_utf8_lossy(k)));
    }
    Ok((k, v, rest))
}

/// A decimal integer as Go's `strconv.ParseInt(v, 10, 64)` reads it.
pub(crate) fn int(v: &[u8]) -> Option<i64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// A PAX time (`secs[.frac]`), as whole seconds.
fn time(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    frac.bytes().all(|b| b.is_ascii_digit()).then_some(secs)
}

/// Apply the records to a header, as Go's `mergePAX`: an unparsable number or time fails.
pub(crate) fn merge(raw: &mut Raw, recs: &Records) -> Result<(), String> {
    for (k, v) in recs {
        if v.is_empty() {
            continue;
        }
        let bad = || format!("the PAX record {}={:?} is not valid", String::from_utf8_lossy(k), String::from_utf8_lossy(v));
        match k.as_slice() {
            b"path" => raw.name = v.clone(),
            b"linkpath" => raw.link = v.clone(),
            b"uname" => raw.uname = v.clone(),
            b"gname" => raw.gname = v.clone(),
            b"uid" => raw.uid = int(v).ok_or_else(bad)?,
            b"gid" => raw.gid = int(v).ok_or_else(bad)?,
            b"mtime" => raw.mtime = time(v).ok_or_else(bad)?,
            b"atime" | b"ctime" => drop(time(v).ok_or_else(bad)?),
            b"size" => raw.size = int(v).ok_or_else(bad)?,
            _ => {}
        }
    }
    Ok(())
}
