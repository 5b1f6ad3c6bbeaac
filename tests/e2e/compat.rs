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
