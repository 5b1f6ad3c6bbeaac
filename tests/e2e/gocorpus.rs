//! Go's archive/tar reader corpus (Debian's golang-1.19-src) through the CLI, each archive
//! the one layer of an image: `export` to a directory is refused exactly where Go refuses
//! the archive; everything that re-writes entries (`export` to a tar, read back by GNU
//! tar; `ADD` in a Dockerfile) keeps the tree `export` made; `copy` through a registry and
//! a docker-archive leaves the layer's digest as it was.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use imgtool_tests::hostile::add_to_layout;
use imgtool_tests::{Registry, require, run_ok, workspace};
use serde_json::Value;

use crate::imgtool;

const TESTDATA: &str = "/usr/share/go-1.19/src/archive/tar/testdata";

/// Path -> what a tree holds there: type, permission bits, size, md5, link target.
pub(crate) fn listing(root: &Path) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().as_os_str().as_bytes().to_vec();
            let what = if m.is_dir() {
                stack.push(p.clone());
                format!("dir {:o}", m.mode() & 0o7777)
            } else if m.is_symlink() {
                format!("symlink -> {:?}", std::fs::read_link(&p).unwrap())
            } else if m.is_file() {
                let sum = std::process::Command::new("md5sum").arg(&p).output().unwrap().stdout;
                format!("file {:o} {} {}", m.mode() & 0o7777, m.len(), String::from_utf8_lossy(&sum[..32.min(sum.len())]))
            } else {
                format!("other {:o}", m.mode())
            };
            out.insert(rel, what);
        }
    }
    out
}

pub(crate) fn differences(a: &BTreeMap<Vec<u8>, String>, b: &BTreeMap<Vec<u8>, String>) -> String {
    let keys: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
    let diff: Vec<String> = keys
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{}: {:?} vs {:?}", String::from_utf8_lossy(k), a.get(k), b.get(k)))
        .collect();
    diff.join("\n")
}

fn layer_digest(dir: &Path, reference: &str) -> String {
    let doc: Value = serde_json::from_str(&run_ok(imgtool(dir).args(["inspect", "--json", reference]))).unwrap();
    doc["manifest"]["layers"][0]["digest"].as_str().unwrap().to_string()
}

#[test]
fn go_corpus_through_export_add_and_copy() {
    require("bzip2", "bzip2");
    require("tar", "tar");
    assert!(Path::new(TESTDATA).is_dir(), "{TESTDATA} is needed: apt-get install golang-1.19-src (scripts/test.sh installs it)");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let reg = Registry::start();
    let text = std::fs::read_to_string(workspace().join("fixtures/gotar/expected.jsonl")).unwrap();
    let mut problems = Vec::new();
    let mut read = 0;
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let row: Value = serde_json::from_str(line).unwrap();
        let file = row["file"].as_str().unwrap();
        let go_reads = row["error"].is_null();
        let path = Path::new(TESTDATA).join(file);
        let bytes = if file.ends_with(".bz2") {
            std::process::Command::new("bzip2").arg("-dc").arg(&path).output().unwrap().stdout
        } else {
            std::fs::read(&path).unwrap()
        };
        let tag: String =
            file.trim_end_matches(".bz2").trim_end_matches(".tar").chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        add_to_layout(&t.join("lay"), &tag, std::slice::from_ref(&bytes));
        let image = format!("oci:lay:{tag}");

        let exported = imgtool(t).args(["export", &image, &format!("dir-{tag}")]).output().unwrap();
        if exported.status.success() != go_reads {
            problems.push(format!("{file}: export {} where Go {}", exported.status, if go_reads { "reads it" } else { "refuses it" }));
        }
        if !go_reads || !exported.status.success() {
            continue;
        }
        read += 1;
        let want = listing(&t.join(format!("dir-{tag}")));

        // Re-written by export to a tar, read by GNU tar.
        let tar_out = imgtool(t).args(["export", &image, &format!("{tag}.tar")]).output().unwrap();
        if tar_out.status.success() {
            std::fs::create_dir(t.join(format!("gnu-{tag}"))).unwrap();
            run_ok(std::process::Command::new("tar").current_dir(t).args(["-xf", &format!("{tag}.tar"), "-C", &format!("gnu-{tag}")]));
            let got = listing(&t.join(format!("gnu-{tag}")));
            if got != want {
                problems.push(format!("{file}: export to a tar, as GNU tar extracts it:\n{}", differences(&want, &got)));
            }
        } else {
            problems.push(format!("{file}: export to a tar failed: {}", String::from_utf8_lossy(&tar_out.stderr)));
        }

        // ADD of the archive in a Dockerfile.
        let ctx = t.join(format!("ctx-{tag}"));
        std::fs::create_dir(&ctx).unwrap();
        std::fs::write(ctx.join("layer.tar"), &bytes).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nADD layer.tar /\n").unwrap();
        let built = imgtool(t)
            .args(["build", "-q", "-t", &format!("add:{tag}"), "-o", &format!("add-{tag}.tar"), &format!("ctx-{tag}")])
            .output()
            .unwrap();
        if built.status.success() {
            run_ok(imgtool(t).args(["export", &format!("docker-archive:add-{tag}.tar"), &format!("added-{tag}")]));
            let got = listing(&t.join(format!("added-{tag}")));
            if got != want {
                problems.push(format!("{file}: ADD in a Dockerfile:\n{}", differences(&want, &got)));
            }
        } else {
            problems.push(format!("{file}: ADD failed: {}", String::from_utf8_lossy(&built.stderr)));
        }

        // Copied as it is, never re-written.
        let digest = layer_digest(t, &image);
        let remote = format!("docker://{}/corpus:{tag}", reg.addr);
        run_ok(imgtool(t).args(["copy", "-q", &image, &remote]));
        run_ok(imgtool(t).args(["copy", "-q", &image, &format!("docker-archive:da-{tag}.tar:corpus:{tag}")]));
        run_ok(imgtool(t).args(["copy", "-q", &format!("docker-archive:da-{tag}.tar"), &format!("oci:back:{tag}")]));
        for other in [remote, format!("oci:back:{tag}")] {
            if layer_digest(t, &other) != digest {
                problems.push(format!("{file}: the layer's digest changed in {other}"));
            }
        }
    }
    assert!(read >= 20, "only {read} archives were read");
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}
