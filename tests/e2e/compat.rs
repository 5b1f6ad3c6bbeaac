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

/// A tree with what layers carry: long names and link targets, links of both kinds, modes,
/// an empty directory, a name that is not UTF-8, a sparse file.
fn tool_tree(src: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileExt, PermissionsExt};
    let long = src.join("l".repeat(60)).join("m".repeat(60));
    for d in [src.join("d"), src.join("empty"), long.clone()] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(src.join("d/f"), "hello\n").unwrap();
    std::fs::write(src.join("d/x"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(src.join("d/x"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::set_permissions(src.join("empty"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(long.join("file-with-a-long-name"), "deep\n").unwrap();
    std::os::unix::fs::symlink("d/f", src.join("link")).unwrap();
    std::os::unix::fs::symlink(format!("../{}", "t".repeat(120)), src.join("longlink")).unwrap();
    std::fs::hard_link(src.join("d/f"), src.join("d/hard")).unwrap();
    std::fs::write(src.join(std::ffi::OsStr::from_bytes(b"caf\xe9")), "latin-1\n").unwrap();
    let f = std::fs::File::create(src.join("sparse")).unwrap();
    f.set_len(8 << 20).unwrap();
    f.write_all_at(b"data", 4 << 20).unwrap();
}

/// Layers written by GNU tar (GNU and POSIX formats, sparse), Python's tarfile (GNU, PAX)
/// and Go's archive/tar writer (Docker's and BuildKit's), each exported as the same tree.
#[test]
fn layers_written_by_the_tools_people_use_are_read_as_written() {
    use crate::gocorpus::{differences, listing};
    require("tar", "tar");
    require("go", "golang-go");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    tool_tree(&t.join("src"));
    let want = listing(&t.join("src"));
    let sh = |script: &str| run_ok(std::process::Command::new("sh").current_dir(t).args(["-c", script]));
    sh("tar --format=gnu --sparse -C src -cf gnu.tar .");
    sh("tar --format=posix --sparse -C src -cf posix.tar .");
    let py = "import sys, tarfile\nfmt = getattr(tarfile, sys.argv[1])\nwith tarfile.open(sys.argv[2], 'w', format=fmt) as t: t.add('src', arcname='.')";
    run_ok(std::process::Command::new("python3").current_dir(t).args(["-c", py, "GNU_FORMAT", "python-gnu.tar"]));
    run_ok(std::process::Command::new("python3").current_dir(t).args(["-c", py, "PAX_FORMAT", "python-pax.tar"]));
    let go = imgtool_tests::workspace().join("fixtures/gowriter/main.go");
    run_ok(
        std::process::Command::new("go")
            .current_dir(t)
            .env("GOCACHE", t.join("gocache"))
            .env("GO111MODULE", "off")
            .arg("run")
            .arg(&go)
            .args(["src", "go.tar"]),
    );
    let mut problems = Vec::new();
    for tool in ["gnu", "posix", "python-gnu", "python-pax", "go"] {
        let layer = std::fs::read(t.join(format!("{tool}.tar"))).unwrap();
        imgtool_tests::hostile::add_to_layout(&t.join("lay"), tool, &[layer]);
        run_ok(imgtool(t).args(["export", &format!("oci:lay:{tool}"), &format!("out-{tool}")]));
        let got = listing(&t.join(format!("out-{tool}")));
        if got != want {
            problems.push(format!("{tool}:\n{}", differences(&want, &got)));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
