//! A hostile channel: packages that try to write, delete or read host files while they are
//! linked, and repodata that names files outside the channel. Each must be refused with an
//! error naming the package and the entry, leaving the sentinel tree as it was.

use std::path::Path;

use imgtool_tests::hostile::Sentinel;
use serde_json::json;

use imgtool_tests::conda_channel::{self as channel, Item, Pkg};

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The cases: a name, the evil package's items, what the error must say.
fn cases(s: &Path) -> Vec<(&'static str, Vec<Item>, &'static str)> {
    let sdir = leak(s.join("dir").display().to_string());
    let secret = leak(s.join("secret").display().to_string());
    let up = leak(format!("{}{}", "../".repeat(30), s.join("secret").display().to_string().trim_start_matches('/')));
    vec![
        ("abs-link-to-host-dir", vec![Item::Link("share/evil", sdir)], "outside the environment"),
        ("rel-link-out", vec![Item::Link("lib/evil", leak("../".repeat(12)))], "outside the environment"),
        (
            "dotdot-path-delete",
            vec![Item::Raw(json!({"_path": up, "path_type": "hardlink", "sha256": "0".repeat(64), "size_in_bytes": 0}))],
            "without '..'",
        ),
        (
            "dotdot-placeholder",
            vec![Item::Raw(json!({"_path": up, "path_type": "hardlink", "prefix_placeholder": channel::PLACEHOLDER, "file_mode": "text"}))],
            "without '..'",
        ),
        (
            "dotdot-through-link",
            vec![Item::Link("share/evil", "../lib"), Item::Raw(json!({"_path": "share/red/../evil/new", "path_type": "hardlink"}))],
            "without '..'",
        ),
        ("absolute-path", vec![Item::Raw(json!({"_path": secret, "path_type": "hardlink"}))], "absolute"),
        ("placeholder-link-to-host", vec![Item::LinkAsText("etc/conf", secret)], "listed as a file"),
        ("placeholder-link-inside", vec![Item::File("etc/real", b"x".to_vec()), Item::LinkAsText("etc/conf", "real")], "listed as a file"),
        ("profile-d-link", vec![Item::Link("etc/profile.d", sdir)], "outside the environment"),
        ("conda-meta-shipped", vec![Item::File("conda-meta/evil.json", b"{}".to_vec())], "conda-meta"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_packages_are_refused_before_linking() {
    let tmp = tempfile::tempdir().unwrap();
    let sentinel = Sentinel::create(tmp.path());
    let before = sentinel.snapshot();
    for conda_format in [true, false] {
        for (name, items, want) in cases(&sentinel.path) {
            let ch = tmp.path().join(format!("ch-{name}-{conda_format}"));
            let mut evil = Pkg::new("evil", "1.0");
            evil.items = items;
            evil.conda_format = conda_format;
            channel::write_channel(&ch, &[evil]);
            let work = tmp.path().join(format!("w-{name}-{conda_format}"));
            std::fs::create_dir_all(&work).unwrap();
            let err = crate::build(&ch, &work, &work.join("cache"), &["evil"], "linux/amd64").await.map(|_| ()).unwrap_err();
            let err = imgtool_core::error_chain(&err);
            assert!(err.contains("evil-1.0-0") && err.contains(want), "{name} ({conda_format}): {err}");
            assert_eq!(sentinel.snapshot(), before, "{name} ({conda_format}) changed the host");
            let staging_left = walkdir::WalkDir::new(&work)
                .into_iter()
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with("staging"));
            assert!(!staging_left, "{name}: a staging directory was left behind");
        }
    }
}

/// Links that are harmless one package at a time and climb out together: `a -> .` in one
/// package, `a/b -> ..` in another, then a file under `b/`.
#[tokio::test(flavor = "multi_thread")]
async fn symlink_chains_across_packages_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let sentinel = Sentinel::create(tmp.path());
    let before = sentinel.snapshot();
    let ch = tmp.path().join("chain");
    let mut a = Pkg::new("evil-a", "1.0");
    a.items = vec![Item::Link("a", ".")];
    let mut b = Pkg::new("evil-b", "1.0");
    b.depends = vec!["evil-a"];
    b.items = vec![Item::Link("a/b", "..")];
    let mut c = Pkg::new("evil", "1.0");
    c.depends = vec!["evil-b"];
    c.items = vec![Item::File("b/x", b"pwned".to_vec())];
    channel::write_channel(&ch, &[a, b, c]);
    let res = crate::build(&ch, tmp.path(), &tmp.path().join("cache"), &["evil"], "linux/amd64").await;
    let err = imgtool_core::error_chain(&res.map(|_| ()).unwrap_err());
    assert!(err.contains("outside the environment"), "{err}");
    assert_eq!(sentinel.snapshot(), before);
    assert!(!tmp.path().join("b").exists(), "a file was linked outside the prefix");
}

/// Repodata that points outside the channel: `fn` with `../`, a `base_url` elsewhere.
#[tokio::test(flavor = "multi_thread")]
async fn repodata_cannot_name_files_outside_the_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    channel::write_channel(&outside, &[Pkg::new("evil", "1.0")]);
    for (n, edit) in ["fn", "base_url"].into_iter().enumerate() {
        let ch = tmp.path().join(format!("ch{n}"));
        channel::write_channel(&ch, &[Pkg::new("other", "1.0")]);
        let rd = ch.join("linux-64/repodata.json");
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&rd).unwrap()).unwrap();
        let good: serde_json::Value = serde_json::from_slice(&std::fs::read(outside.join("linux-64/repodata.json")).unwrap()).unwrap();
        let record = good["packages.conda"]["evil-1.0-0.conda"].clone();
        if edit == "fn" {
            v["packages.conda"]["../../outside/linux-64/evil-1.0-0.conda"] = record;
        } else {
            v["info"]["base_url"] = json!(format!("file://{}/linux-64/", outside.display()));
            v["packages.conda"]["evil-1.0-0.conda"] = record;
        }
        std::fs::write(&rd, serde_json::to_vec(&v).unwrap()).unwrap();
        let res = crate::build(&ch, tmp.path(), &tmp.path().join(format!("cache{n}")), &["evil"], "linux/amd64").await;
        let err = imgtool_core::error_chain(&res.map(|_| ()).unwrap_err());
        let want = if edit == "fn" { "is not a file name" } else { "is not inside its channel" };
        assert!(err.contains("evil-1.0-0") && err.contains(want), "{edit}: {err}");
    }
}

/// A small `repodata.json.zst` that inflates past the limit, over HTTP, and a local
/// `repodata.json` that is a FIFO: clear errors, bounded memory, no hang.
#[tokio::test(flavor = "multi_thread")]
async fn repodata_is_read_with_limits() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let ch = tmp.path().join("bomb");
    channel::write_channel(&ch, &[Pkg::new("other", "1.0")]);
    let f = std::fs::File::create(ch.join("noarch/repodata.json.zst")).unwrap();
    let mut enc = zstd::stream::write::Encoder::new(f, 1).unwrap();
    let zeros = vec![b' '; 1 << 20];
    for _ in 0..1100 {
        enc.write_all(&zeros).unwrap();
    }
    enc.finish().unwrap();
    assert!(std::fs::metadata(ch.join("noarch/repodata.json.zst")).unwrap().len() < 1 << 20);
    let served = imgtool_tests::conda_channel::serve(&ch);
    let res = crate::build(Path::new(&served.1), tmp.path(), &tmp.path().join("cache"), &["other"], "linux/amd64").await;
    let err = imgtool_core::error_chain(&res.map(|_| ()).unwrap_err());
    assert!(err.contains("inflates to more than 1024 MiB"), "{err}");

    let fifo_ch = tmp.path().join("fifo");
    channel::write_channel(&fifo_ch, &[Pkg::new("other", "1.0")]);
    std::fs::remove_file(fifo_ch.join("linux-64/repodata.json")).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(fifo_ch.join("linux-64/repodata.json")).status().unwrap().success());
    let res = crate::build(&fifo_ch, tmp.path(), &tmp.path().join("cache2"), &["other"], "linux/amd64").await;
    let err = imgtool_core::error_chain(&res.map(|_| ()).unwrap_err());
    assert!(err.contains("not a regular file"), "{err}");
}

/// A package whose compressed stream runs on long after its tar has ended (zeros, which
/// compress to almost nothing): refused after a bounded read, naming the package, in both
/// formats. rattler's own unpacker reads such a stream to its end.
#[tokio::test(flavor = "multi_thread")]
async fn package_streams_that_run_on_are_cut() {
    const PAD: usize = 16 << 20;
    let pad = |tar: Vec<u8>| [tar, vec![0u8; PAD]].concat();
    for conda_format in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let ch = tmp.path().join("ch");
        let mut p = Pkg::new("bomb", "1.0");
        p.items = vec![Item::File("share/x", b"x".to_vec())];
        p.conda_format = conda_format;
        channel::write_channel(&ch, &[p]);
        let file = if conda_format { "bomb-1.0-0.conda" } else { "bomb-1.0-0.tar.bz2" };
        let path = ch.join("linux-64").join(file);
        let bytes = std::fs::read(&path).unwrap();
        let padded = if conda_format {
            use std::io::{Read, Write};
            let mut zin = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
            let mut zout = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            for i in 0..zin.len() {
                let mut m = zin.by_index(i).unwrap();
                let name = m.name().unwrap().to_string();
                if name.starts_with("pkg-") && name.ends_with(".tar.zst") {
                    let mut zst = Vec::new();
                    m.read_to_end(&mut zst).unwrap();
                    let tar = zstd::decode_all(&zst[..]).unwrap();
                    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
                    zout.start_file(name, opts).unwrap();
                    zout.write_all(&zstd::encode_all(&pad(tar)[..], 1).unwrap()).unwrap();
                } else {
                    zout.raw_copy_file(m).unwrap();
                }
            }
            zout.finish().unwrap().into_inner()
        } else {
            use std::io::Read;
            let mut tar = Vec::new();
            bzip2::read::BzDecoder::new(&bytes[..]).read_to_end(&mut tar).unwrap();
            let mut out = Vec::new();
            bzip2::read::BzEncoder::new(&pad(tar)[..], bzip2::Compression::fast()).read_to_end(&mut out).unwrap();
            out
        };
        assert!(padded.len() < 1 << 20, "the bomb should be small: {}", padded.len());
        std::fs::write(&path, &padded).unwrap();
        let rd = ch.join("linux-64/repodata.json");
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&rd).unwrap()).unwrap();
        let key = if conda_format { "packages.conda" } else { "packages" };
        let rec = &mut v[key][file];
        rec["sha256"] = json!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&padded)));
        rec["size"] = json!(padded.len());
        rec.as_object_mut().unwrap().remove("md5");
        std::fs::write(&rd, serde_json::to_vec(&v).unwrap()).unwrap();
        let res = crate::build(&ch, tmp.path(), &tmp.path().join("cache"), &["bomb"], "linux/amd64").await;
        let err = imgtool_core::error_chain(&res.map(|_| ()).unwrap_err());
        assert!(err.contains(file) && err.contains("runs on past its tar's end"), "{conda_format}: {err}");
    }
}
