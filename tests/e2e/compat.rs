//! Layers written by the tools people use, read as Go's archive/tar reads them.

use imgtool_tests::{require, run_ok};

use crate::imgtool;

/// Debian's umoci 0.4.7 `insert` writes a small tree's layer with no padding after the last
/// file and no end blocks; Docker loads it, and so must imgtool.
#[test]
fn umoci_layers_without_padding_are_read() {
    require("umoci", "umoci");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::create_dir_all(t.join("src/etc")).unwrap();
    std::fs::write(t.join("src/etc/motd"), "hello\n").unwrap();
    let umoci = |args: &[&str]| run_ok(std::process::Command::new("umoci").current_dir(t).args(args));
    umoci(&["init", "--layout", "lay"]);
    umoci(&["new", "--image", "lay:t"]);
    umoci(&["insert", "--image", "lay:t", "src", "/"]);
    run_ok(imgtool(t).args(["export", "oci:lay:t", "root"]));
    assert_eq!(std::fs::read(t.join("root/etc/motd")).unwrap(), b"hello\n");
    run_ok(imgtool(t).args(["export", "oci:lay:t", "root.tar"]));
}

/// A file with holes goes into a layer as a sparse member (GNU PAX 1.0): Go's archive/tar,
/// in umoci, reads it back as the same file; `export` to a directory keeps the holes, and
/// `export` to a tar writes them sparse again.
#[test]
fn sparse_files_are_read_by_go_and_kept_sparse() {
    use std::os::unix::fs::{FileExt, MetadataExt};
    require("umoci", "umoci");
    const SIZE: u64 = 64 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::create_dir_all(t.join("src")).unwrap();
    let f = std::fs::File::create(t.join("src/db")).unwrap();
    f.set_len(SIZE).unwrap();
    f.write_all_at(b"head", 0).unwrap();
    f.write_all_at(b"tail", SIZE - 4).unwrap();
    run_ok(imgtool(t).args(["append", "-q", "scratch", "oci:lay:t", "--path", "src:/", "--compression", "none"]));
    let blobs: u64 = std::fs::read_dir(t.join("lay/blobs/sha256")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert!(blobs < 1 << 20, "{blobs} bytes of blobs for a sparse file");

    run_ok(std::process::Command::new("umoci").current_dir(t).args(["unpack", "--rootless", "--image", "lay:t", "bundle"]));
    let read = |p: &std::path::Path| {
        let f = std::fs::File::open(p).unwrap();
        let (mut head, mut tail, mut mid) = ([0; 4], [0; 4], [1; 4]);
        f.read_exact_at(&mut head, 0).unwrap();
        f.read_exact_at(&mut tail, SIZE - 4).unwrap();
        f.read_exact_at(&mut mid, SIZE / 2).unwrap();
        (f.metadata().unwrap().len(), head, tail, mid, f.metadata().unwrap().blocks() * 512)
    };
    let (len, head, tail, mid, _) = read(&t.join("bundle/rootfs/db"));
    assert_eq!((len, &head, &tail, mid), (SIZE, b"head", b"tail", [0; 4]), "as umoci (Go) reads it");

    run_ok(imgtool(t).args(["export", "oci:lay:t", "root"]));
    let (len, head, tail, mid, disk) = read(&t.join("root/db"));
    assert_eq!((len, &head, &tail, mid), (SIZE, b"head", b"tail", [0; 4]));
    assert!(disk <= 1 << 20, "{disk} bytes on disk: the holes were filled");
    run_ok(imgtool(t).args(["export", "oci:lay:t", "root.tar"]));
    let size = std::fs::metadata(t.join("root.tar")).unwrap().len();
    assert!(size < 1 << 20, "export wrote {size} bytes of tar for a sparse file");
}
