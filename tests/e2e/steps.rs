//! Edges of the step model: which Dockerfile is a build, and blobs written into what the
//! user named.

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
