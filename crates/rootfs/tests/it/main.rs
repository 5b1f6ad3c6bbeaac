//! The rooted path layer against the escapes an image can try.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use imgtool_rootfs::{Kind, Meta, Node, Root};

/// A root and, beside it, a host directory with a file the root must never reach.
fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let host = t.path().join("host");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("secret"), "host secret").unwrap();
    std::fs::set_permissions(host.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    (t, root, host)
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn absolute_and_relative_links_resolve_inside_the_root() {
    let (_t, root, host) = setup();
    symlink(&host, root.join("abs")).unwrap();
    symlink("../../../../host", root.join("rel")).unwrap();
    let r = Root::open(&root).unwrap();
    // Both links point at a host directory; inside the root they name /host... which is missing.
    assert!(r.dir("abs").unwrap().is_none());
    assert!(r.dir("rel").unwrap().is_none());
    assert!(r.read("abs/secret", 1 << 20).unwrap().is_none());
    assert!(r.read("rel/secret", 1 << 20).unwrap().is_none());
    // Making the directory through the link makes it inside the root.
    let d = r.make_dirs("abs/new", &mut |_, _| {}).unwrap();
    let f = d.create_file("x").unwrap();
    drop(f);
    assert!(root.join(host.strip_prefix("/").unwrap()).join("new/x").exists());
    assert!(!host.join("new").exists());
    assert_eq!(std::fs::read_dir(&host).unwrap().count(), 1);
}

#[test]
fn metadata_never_follows_the_last_component() {
    let (_t, root, host) = setup();
    symlink(host.join("secret"), root.join("x")).unwrap();
    let r = Root::open(&root).unwrap();
    let top = r.top().unwrap();
    top.set_meta("x", &Meta { owner: Some((0, 0)), mode: Some(0o6777), xattrs: vec![], mtime: Some(0) }, None).unwrap();
    assert_eq!(mode(&host.join("secret")), 0o600);
    assert_ne!(std::fs::metadata(host.join("secret")).unwrap().mtime(), 0);
    // Nor do file opens or directory opens.
    assert!(top.open_file("x").unwrap().is_none());
    assert!(top.open_dir("x").unwrap().is_none());
    assert!(top.create_file("x").is_err());
    assert_eq!(std::fs::read_to_string(host.join("secret")).unwrap(), "host secret");
}

#[test]
fn remove_all_does_not_follow_links() {
    let (_t, root, host) = setup();
    std::fs::create_dir_all(root.join("d/e")).unwrap();
    symlink(&host, root.join("d/e/link")).unwrap();
    symlink(&host, root.join("d/link2")).unwrap();
    let r = Root::open(&root).unwrap();
    assert!(r.top().unwrap().remove_all("d").unwrap());
    assert!(!root.join("d").exists());
    assert!(host.join("secret").exists());
    assert!(!r.top().unwrap().remove_all("d").unwrap());
}

#[test]
fn special_files_are_never_opened_for_reading() {
    let (_t, root, _host) = setup();
    let r = Root::open(&root).unwrap();
    let top = r.top().unwrap();
    top.mkdir("etc", 0o755).unwrap();
    let etc = top.open_dir("etc").unwrap().unwrap();
    etc.mknod("passwd", Node::Fifo).unwrap();
    // A FIFO would block forever if opened.
    assert!(r.read("etc/passwd", 1024).unwrap().is_none());
    assert!(etc.open_file("passwd").unwrap().is_none());
    assert_eq!(etc.stat("passwd").unwrap().unwrap().kind, Kind::Fifo);
}

#[test]
fn fifo_modes_are_exact_and_order_keeps_setuid() {
    let (_t, root, _host) = setup();
    let r = Root::open(&root).unwrap();
    let top = r.top().unwrap();
    top.mknod("p", Node::Fifo).unwrap();
    top.set_meta("p", &Meta { mode: Some(0o666), ..Meta::default() }, None).unwrap();
    assert_eq!(mode(&root.join("p")), 0o666);
    let mut f = top.create_file("su").unwrap();
    f.write_all(b"x").unwrap();
    let me = (rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw());
    top.set_meta("su", &Meta { owner: Some(me), mode: Some(0o4755), ..Meta::default() }, Some(&f)).unwrap();
    assert_eq!(mode(&root.join("su")), 0o4755);
}

#[test]
fn reads_are_bounded() {
    let (_t, root, _host) = setup();
    std::fs::write(root.join("big"), vec![0u8; 4096]).unwrap();
    let r = Root::open(&root).unwrap();
    assert!(matches!(r.read("big", 100), Err(imgtool_rootfs::Error::TooLarge { .. })));
    assert_eq!(r.read("big", 4096).unwrap().unwrap().len(), 4096);
}

#[test]
fn names_are_single_components() {
    let (_t, root, _host) = setup();
    let r = Root::open(&root).unwrap();
    let top = r.top().unwrap();
    for bad in ["", ".", "..", "a/b", "../x"] {
        assert!(top.create_file(bad).is_err(), "{bad:?}");
        assert!(top.mkdir(bad, 0o755).is_err(), "{bad:?}");
    }
}

#[test]
fn make_dirs_through_a_dangling_link_creates_its_target_inside() {
    let (_t, root, _host) = setup();
    symlink("/var/run-target", root.join("run")).unwrap();
    let r = Root::open(&root).unwrap();
    let mut made = Vec::new();
    r.make_dirs("run/lock", &mut |d, n| made.push(format!("{}/{}", d.path().trim_end_matches('/'), n.display()))).unwrap();
    assert!(root.join("var/run-target/lock").is_dir());
    assert_eq!(made, vec!["/var", "/var/run-target", "/var/run-target/lock"]);
}

#[test]
fn names_that_are_not_utf8_are_removed_too() {
    use std::os::unix::ffi::OsStrExt;
    let (_t, root, _host) = setup();
    let odd = std::ffi::OsStr::from_bytes(b"\xff");
    std::fs::create_dir_all(root.join("d").join(odd)).unwrap();
    std::fs::write(root.join("d").join(odd).join(odd), "x").unwrap();
    std::fs::write(root.join("d").join("\u{fffd}"), "y").unwrap();
    let r = Root::open(&root).unwrap();
    assert!(r.top().unwrap().remove_all("d").unwrap());
    assert!(!root.join("d").exists());
}

#[test]
fn deep_missing_paths_are_made_in_one_walk() {
    let (_t, root, _host) = setup();
    let r = Root::open(&root).unwrap();
    let deep = vec!["a"; 1500].join("/");
    let mut n = 0;
    r.make_dirs(&deep, &mut |_, _| n += 1).unwrap();
    assert_eq!(n, 1500);
    assert!(r.dir(&deep).unwrap().is_some());
}
