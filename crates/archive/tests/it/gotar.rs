//! Go's archive/tar reader corpus (Debian's golang-1.19-src) through our extraction: each
//! archive must be refused exactly when Go refuses it, and extract the files Go reads from
//! it (type, size, contents, link targets). The expectations are our own table,
//! `fixtures/gotar/expected.jsonl` (see its README.md).
//! Sparse files are also checked for holes left as holes (disk use).

use std::path::{Path, PathBuf};

use imgtool_archive::{ExtractOptions, apply_layer};
use imgtool_tests::{require, workspace};
use serde_json::Value;

const TESTDATA: &str = "/usr/share/go-1.19/src/archive/tar/testdata";

fn archive(file: &str) -> Vec<u8> {
    let path = Path::new(TESTDATA).join(file);
    if file.ends_with(".bz2") {
        require("bzip2", "bzip2");
        let out = std::process::Command::new("bzip2").arg("-dc").arg(&path).output().unwrap();
        assert!(out.status.success(), "bzip2 -dc {}", path.display());
        return out.stdout;
    }
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn md5(path: &Path) -> String {
    let out = std::process::Command::new("md5sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

/// The entry's name as bytes (`name_hex` for names that are not UTF-8), cleaned as the
/// extractor cleans it.
fn name_of(e: &Value) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let raw: Vec<u8> = match (e["name"].as_str(), e["name_hex"].as_str()) {
        (Some(n), _) => n.as_bytes().to_vec(),
        (None, Some(h)) => (0..h.len()).step_by(2).filter_map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok()).collect(),
        _ => return None,
    };
    let p = PathBuf::from(std::ffi::OsStr::from_bytes(&raw));
    let p: PathBuf = p.components().filter(|c| matches!(c, std::path::Component::Normal(_))).collect();
    (!p.as_os_str().is_empty()).then_some(p)
}

/// What is wrong with the extraction of one archive, compared with Go's reading of it.
fn check(file: &str, want_error: bool, entries: &[Value]) -> Option<String> {
    let tmp = tempfile::tempdir().unwrap();
    let opts = ExtractOptions { same_owner: true, xattrs: true, ..Default::default() };
    let got = apply_layer(tmp.path(), &archive(file)[..], opts, file);
    match (want_error, got) {
        (true, Ok(())) => return Some("Go refuses it; we extracted it".into()),
        (true, Err(_)) => return None,
        (false, Err(e)) => return Some(format!("Go reads it; we refused it: {e}")),
        (false, Ok(())) => {}
    }
    // The last entry of a name is what a root shows.
    let mut problems = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let Some(name) = name_of(e) else { continue };
        if entries[i + 1..].iter().any(|l| name_of(l).as_ref() == Some(&name)) {
            continue;
        }
        let path = tmp.path().join(&name);
        let meta = std::fs::symlink_metadata(&path);
        let ty = e["type"].as_str().unwrap_or_default();
        let shown = name.display();
        match (ty, meta) {
            ("0" | "" | "7" | "S", Ok(m)) if m.is_file() => {
                let size = e["size"].as_u64().unwrap_or_default();
                use std::os::unix::fs::MetadataExt;
                if m.len() != size {
                    problems.push(format!("{shown}: {} bytes, Go reads {size}", m.len()));
                } else if m.blocks() * 512 > size.next_multiple_of(4096) + 4096 {
                    problems.push(format!("{shown}: {} bytes on disk for {size} bytes: holes were filled", m.blocks() * 512));
                } else if let Some(sum) = e["md5"].as_str()
                    && md5(&path) != sum
                {
                    problems.push(format!("{shown}: other contents than Go reads"));
                }
                // Extended attributes in the user namespace (any filesystem keeps those).
                for (k, v) in e["xattrs"].as_object().into_iter().flatten().filter(|(k, _)| k.starts_with("user.")) {
                    let got = xattr::get(&path, k).ok().flatten();
                    if got.as_deref() != Some(v.as_str().unwrap_or_default().as_bytes()) {
                        problems.push(format!("{shown}: xattr {k} is {got:?}, Go reads {v}"));
                    }
                }
            }
            ("2", Ok(m)) if m.is_symlink() => {
                let target = std::fs::read_link(&path).unwrap_or_default();
                if target.as_os_str() != e["linkname"].as_str().unwrap_or_default() {
                    problems.push(format!("{shown}: links to {}, Go reads {}", target.display(), e["linkname"]));
                }
            }
            ("5" | "D", Ok(m)) if m.is_dir() => {}
            ("0" | "" | "7" | "S" | "2" | "5" | "D", Ok(_)) => problems.push(format!("{shown}: of another type than Go's {ty:?}")),
            ("0" | "" | "7" | "S" | "2" | "5" | "D", Err(_)) => problems.push(format!("{shown}: missing (Go's type {ty:?})")),
            _ => {}
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

#[test]
fn go_reader_corpus_extracts_as_go_reads_it() {
    assert!(Path::new(TESTDATA).is_dir(), "{TESTDATA} is needed: apt-get install golang-1.19-src (scripts/test.sh installs it)");
    let text = std::fs::read_to_string(workspace().join("fixtures/gotar/expected.jsonl")).unwrap();
    let (mut cases, mut disagreements) = (0, Vec::new());
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let row: Value = serde_json::from_str(line).unwrap();
        let file = row["file"].as_str().unwrap();
        let entries = row["entries"].as_array().cloned().unwrap_or_default();
        cases += 1;
        if let Some(why) = check(file, !row["error"].is_null(), &entries) {
            disagreements.push(format!("{file}: {why}"));
        }
    }
    let list = disagreements.join("\n");
    eprintln!("{} of {cases} archives of Go's corpus are not extracted as Go reads them:\n{list}", disagreements.len());
    assert!(cases >= 30, "expected.jsonl has only {cases} archives");
    assert!(disagreements.is_empty(), "{} archives are not read as Go reads them:\n{list}", disagreements.len());
}

/// Go's two 60 GB sparse files (old GNU and PAX 1.0, from its writer tests): extracted at
/// their full size with their holes left as holes, each fragment's data in place.
#[test]
fn sixty_gigabyte_sparse_files_keep_their_holes() {
    use std::os::unix::fs::{FileExt, MetadataExt};
    const GB10: u64 = 10_000_000_000;
    for (file, name) in [("gnu-sparse-big.tar", "gnu-sparse"), ("pax-sparse-big.tar", "pax-sparse")] {
        let tmp = tempfile::tempdir().unwrap();
        apply_layer(tmp.path(), &archive(file)[..], ExtractOptions::default(), file).unwrap();
        let f = std::fs::File::open(tmp.path().join(name)).unwrap();
        let meta = f.metadata().unwrap();
        assert_eq!(meta.len(), 6 * GB10, "{file}");
        assert!(meta.blocks() * 512 <= 1 << 20, "{file}: {} bytes on disk", meta.blocks() * 512);
        for k in 0..6 {
            let mut data = [0xffu8; 100];
            f.read_exact_at(&mut data, (k + 1) * GB10 - 100).unwrap();
            assert_eq!(&data[..], "0123456789".repeat(10).as_bytes(), "{file}: fragment {k}");
            let mut hole = [0xffu8; 512];
            f.read_exact_at(&mut hole, k * GB10 + GB10 / 2).unwrap();
            assert_eq!(hole, [0; 512], "{file}: hole {k}");
        }
    }
}

/// One input of Go's truncation table, built from its parts.
fn truncation_input(row: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    for part in row["input"].as_array().unwrap() {
        let mut bytes = match (part["file"].as_str(), part["repeat"].as_str()) {
            (Some(f), _) => [archive(f), vec![0; part["zeros"].as_u64().unwrap_or(0) as usize]].concat(),
            (None, Some(r)) => r.repeat(part["times"].as_u64().unwrap() as usize).into_bytes(),
            _ => panic!("a part with neither file nor repeat: {part}"),
        };
        if let Some(take) = part["take"].as_u64() {
            bytes.truncate(take as usize);
        }
        out.extend(bytes);
    }
    assert_eq!(out.len() as u64, row["input_len"].as_u64().unwrap());
    out
}

/// How many members a reader returns, and how it ends: `None` for a clean end, else
/// Go's name for the error.
fn read_all<R: std::io::Read>(mut tar: imgtool_archive::TarReader<R>, read_data: bool) -> (u64, Option<&'static str>) {
    use imgtool_archive::Defect;
    let class = |d: &Defect| match d {
        Defect::Truncated => "io.ErrUnexpectedEOF",
        _ => "ErrHeader",
    };
    let mut count = 0;
    loop {
        match tar.next_member() {
            Ok(None) => return (count, None),
            Ok(Some(_)) => count += 1,
            Err(e) => return (count, Some(class(&e.defect))),
        }
        if read_data && let Err(e) = std::io::copy(&mut tar, &mut std::io::sink()) {
            let e = e.into_inner().and_then(|e| e.downcast::<imgtool_archive::TarError>().ok()).expect("a tar error");
            return (count, Some(class(&e.defect)));
        }
    }
}

/// Go's `TestReadTruncation`: every cut input gives as many members, then the same end,
/// read with data skipped or read, streamed or seeking; extraction refuses exactly the
/// inputs Go does not read to a clean end.
#[test]
fn truncated_inputs_end_as_go_reads_them() {
    let text = std::fs::read_to_string(workspace().join("fixtures/gotar/truncation.jsonl")).unwrap();
    let mut cases = 0;
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let row: Value = serde_json::from_str(line).unwrap();
        let input = truncation_input(&row);
        let case = row["case"].as_u64().unwrap();
        let want = (row["count"].as_u64().unwrap(), row["error"].as_str());
        for read_data in [false, true] {
            let streamed = read_all(imgtool_archive::TarReader::new(&input[..]), read_data);
            let seeking = read_all(imgtool_archive::TarReader::seeking(std::io::Cursor::new(&input[..])), read_data);
            for (how, got) in [("streamed", streamed), ("seeking", seeking)] {
                assert_eq!((got.0, got.1), want, "case {case} ({how}, data read: {read_data})");
            }
        }
        let tmp = tempfile::tempdir().unwrap();
        let got = apply_layer(tmp.path(), &input[..], ExtractOptions::default(), "truncated");
        assert_eq!(got.is_ok(), want.1.is_none(), "case {case}: extraction gave {got:?}");
        cases += 1;
    }
    assert!(cases >= 40, "truncation.jsonl has only {cases} cases");
}

/// Where GNU tar names an entry otherwise than Go: Go writers before 1.8 put a USTAR prefix
/// where GNU headers keep times; Go's reader (so Docker) joins it to the name, GNU tar does
/// not. The entry is checked under Go's name by the test above.
const GNU_NAMES_DIFFER: &[(&str, &str)] = &[("invalid-go17.tar", "foo")];

/// GNU tar's extraction of the corpus (`fixtures/gotar/gnutar.jsonl`, as root), where both
/// GNU tar and Go read an archive: the same paths with the same type, permission bits,
/// owners, size, modification time, contents, link target and device numbers.
#[test]
fn extraction_matches_gnu_tar_where_gnu_tar_and_go_agree_to_read() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let root_user = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    let go: std::collections::HashMap<String, bool> = std::fs::read_to_string(workspace().join("fixtures/gotar/expected.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| (r["file"].as_str().unwrap().to_string(), r["error"].is_null()))
        .collect();
    let text = std::fs::read_to_string(workspace().join("fixtures/gotar/gnutar.jsonl")).unwrap();
    let (mut compared, mut problems) = (0, Vec::new());
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let row: Value = serde_json::from_str(line).unwrap();
        let file = row["file"].as_str().unwrap();
        // Archives Go's table leaves out (its writer's tests) count as read by Go when GNU tar reads them.
        if row["extract"]["rc"] != 0 || !go.get(file).copied().unwrap_or(true) {
            continue;
        }
        let tmp = tempfile::tempdir().unwrap();
        let devices = if root_user { imgtool_archive::Devices::Create } else { imgtool_archive::Devices::Skip };
        let opts = ExtractOptions { same_owner: root_user, devices, ..Default::default() };
        if let Err(e) = apply_layer(tmp.path(), &archive(file)[..], opts, file) {
            problems.push(format!("{file}: GNU tar and Go read it; we refused it: {e}"));
            continue;
        }
        compared += 1;
        for e in row["extract"]["entries"].as_array().unwrap() {
            let Some(name) = name_of(
                &e["path"].as_str().map_or_else(|| serde_json::json!({"name_hex": e["path_hex"]}), |p| serde_json::json!({"name": p})),
            ) else {
                continue;
            };
            if GNU_NAMES_DIFFER.contains(&(file, name.to_str().unwrap_or_default())) {
                continue;
            }
            let path = tmp.path().join(&name);
            let shown = format!("{file}: {}", name.display());
            let Ok(m) = std::fs::symlink_metadata(&path) else {
                problems.push(format!("{shown}: missing"));
                continue;
            };
            let ty = m.file_type();
            let our_type = if ty.is_dir() {
                "dir"
            } else if ty.is_symlink() {
                "symlink"
            } else if ty.is_fifo() {
                "fifo"
            } else if ty.is_char_device() {
                "char"
            } else if ty.is_block_device() {
                "block"
            } else {
                "file"
            };
            let mut ours = serde_json::json!({"type": our_type, "mode": m.mode() & 0o7777});
            let mut theirs = serde_json::json!({"type": e["type"], "mode": e["mode"]});
            if root_user {
                ours["owner"] = serde_json::json!([m.uid(), m.gid()]);
                theirs["owner"] = serde_json::json!([e["uid"], e["gid"]]);
            }
            match our_type {
                "file" => {
                    ours["size"] = m.len().into();
                    theirs["size"] = e["size"].clone();
                    ours["mtime"] = m.mtime().into();
                    theirs["mtime"] = e["mtime"].clone();
                    if let Some(sum) = e["md5"].as_str() {
                        ours["md5"] = md5(&path).into();
                        theirs["md5"] = sum.into();
                    }
                }
                "symlink" => {
                    ours["target"] = std::fs::read_link(&path).unwrap().to_string_lossy().into_owned().into();
                    theirs["target"] = e["target"].clone();
                    // GNU tar leaves a symlink's permission bits at 0777; so does Linux.
                }
                "char" | "block" => {
                    ours["dev"] = serde_json::json!([libc::major(m.rdev()), libc::minor(m.rdev())]);
                    theirs["dev"] = serde_json::json!([e["devmajor"], e["devminor"]]);
                }
                _ => {}
            }
            if ours != theirs {
                problems.push(format!("{shown}: ours {ours}, GNU tar's {theirs}"));
            }
        }
    }
    assert!(compared >= 25, "only {compared} archives compared");
    assert!(problems.is_empty(), "{} differences from GNU tar:\n{}", problems.len(), problems.join("\n"));
}
