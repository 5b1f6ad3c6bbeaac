//! Edges of commands: which Dockerfile is a build, blobs written into what the user named,
//! and `export` to a stream or a compressed tar.

use std::os::unix::fs::FileTypeExt;

use imgtool_tests::{run_ok, transcript};

use super::{busybox_archive, imgtool};

#[test]
fn a_dockerfile_without_from_is_no_build() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::create_dir_all(t.join("ctx")).unwrap();
    std::fs::write(t.join("ctx/Dockerfile"), "ENV A=1\n").unwrap();
    let out = imgtool(t).args(["build", "-q", "-o", "out.tar", "ctx"]).output().unwrap();
    insta::assert_snapshot!("build_without_from", transcript(&out));
    assert!(!t.join("out.tar").exists());
}

#[test]
fn blob_writes_into_a_device_without_replacing_it() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    busybox_archive(t);
    let inspect: serde_json::Value = serde_json::from_str(&run_ok(imgtool(t).args(["inspect", "--json", "bb.tar"]))).unwrap();
    let layer = inspect["manifest"]["layers"][0]["digest"].as_str().unwrap().to_string();
    // A null device of our own (mknod needs root, as these tests have).
    run_ok(std::process::Command::new("mknod").args(["null", "c", "1", "3"]).current_dir(t));
    run_ok(imgtool(t).args(["blob", "bb.tar", &layer, "-o", "null"]));
    assert!(std::fs::symlink_metadata(t.join("null")).unwrap().file_type().is_char_device());
    let out = imgtool(t).args(["blob", "bb.tar", &layer, "-o", "."]).output().unwrap();
    insta::assert_snapshot!("blob_into_a_directory", transcript(&out));
}

#[test]
fn export_streams_and_compresses() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    busybox_archive(t);
    let list = |args: &[&str]| -> Vec<String> {
        let out = run_ok(std::process::Command::new("tar").args(args).current_dir(t));
        let mut names: Vec<String> = out.lines().map(|l| l.trim_start_matches("./").to_string()).collect();
        names.sort();
        names
    };
    run_ok(imgtool(t).args(["export", "-q", "bb.tar", "root.tar"]));
    let want = list(&["tf", "root.tar"]);
    assert!(want.iter().any(|n| n.ends_with("busybox")), "{want:?}");
    run_ok(imgtool(t).args(["export", "-q", "bb.tar", "root.tgz"]));
    assert_eq!(list(&["tzf", "root.tgz"]), want);
    let out = imgtool(t).args(["export", "-q", "bb.tar", "-"]).output().unwrap();
    assert!(out.status.success());
    std::fs::write(t.join("streamed.tar"), &out.stdout).unwrap();
    assert_eq!(list(&["tf", "streamed.tar"]), want);
    let out = imgtool(t).args(["export", "bb.tar", "root.tar.xz"]).output().unwrap();
    insta::assert_snapshot!("export_to_an_unknown_archive", transcript(&out));
    assert!(!t.join("root.tar.xz").exists());
}

#[test]
fn build_prints_each_step_and_what_was_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::create_dir_all(t.join("ctx")).unwrap();
    std::fs::write(t.join("ctx/a.txt"), "a").unwrap();
    std::fs::write(t.join("ctx/Dockerfile"), "FROM scratch\nCOPY a.txt /a.txt\nENV X=1\n").unwrap();
    let build = || imgtool(t).args(["build", "--cache-dir", "cache", "-o", "out.tar", "ctx"]).output().unwrap();
    let first = build();
    let second = build();
    // The second finds the COPY in the step cache; the result line counts new layers only.
    let strip = |out: &std::process::Output| {
        transcript(out).lines().filter(|l| !l.contains("sha256:") && !l.starts_with("blob ")).collect::<Vec<_>>().join("\n")
    };
    insta::assert_snapshot!("build_steps_first", strip(&first));
    insta::assert_snapshot!("build_steps_cached", strip(&second));
}
