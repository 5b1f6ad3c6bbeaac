//! The local image store: build -t and pull keep images there; run, inspect, push and FROM
//! find them there before any registry; images lists it, rmi removes from it.

use imgtool_tests::{Registry, require, run_ok, transcript};

use super::{busybox_archive, imgtool};

#[test]
fn images_built_and_pulled_are_found_by_name() {
    require("runc", "runc");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    busybox_archive(t);
    std::fs::create_dir_all(t.join("ctx")).unwrap();
    std::fs::write(t.join("ctx/Dockerfile"), format!("FROM docker-archive:{}\nENV STORED=yes\n", t.join("bb.tar").display())).unwrap();
    // No -o: the store, as localhost/NAME (as podman keeps what it builds: never Docker Hub's).
    run_ok(imgtool(t).args(["build", "-q", "-t", "bb-stored:1", "ctx"]));
    let listed = run_ok(imgtool(t).args(["images"]));
    assert!(listed.starts_with("localhost/bb-stored:1  sha256:"), "{listed}");
    assert!(t.join(".local/share/imgtool/images/index.json").is_file());

    // Found by name, with no registry to ask: run, inspect, FROM.
    assert_eq!(run_ok(imgtool(t).args(["run", "bb-stored:1", "--", "sh", "-c", "echo $STORED"])), "yes\n");
    assert!(run_ok(imgtool(t).args(["inspect", "bb-stored:1"])).contains("STORED=yes"));
    std::fs::write(t.join("ctx/Dockerfile"), "FROM bb-stored:1\nENV MORE=1\n").unwrap();
    run_ok(imgtool(t).args(["build", "-q", "-t", "bb-more:1", "ctx"]));
    assert!(run_ok(imgtool(t).args(["inspect", "bb-more:1"])).contains("STORED=yes"));

    // push NAME from the store; pull keeps what it pulls there. Without a destination, a
    // name with no registry of its own goes nowhere.
    let out = imgtool(t).args(["push", "bb-more:1"]).output().unwrap();
    insta::assert_snapshot!("push_stored_without_registry", transcript(&out));
    let reg = Registry::start();
    run_ok(imgtool(t).args(["push", "-q", "bb-more:1", &format!("{}/bb:more", reg.addr)]));
    run_ok(imgtool(t).args(["pull", "-q", &format!("{}/bb:more", reg.addr)]));
    assert!(run_ok(imgtool(t).args(["images"])).contains(&format!("{}/bb:more  sha256:", reg.addr)));

    // rmi: gone from the list, and its name no longer finds it.
    run_ok(imgtool(t).args(["rmi", "-q", "bb-stored:1", "bb-more:1"]));
    let listed = run_ok(imgtool(t).args(["images"]));
    assert!(!listed.contains("bb-stored") && !listed.contains("bb-more"), "{listed}");
    let out = imgtool(t).args(["rmi", "bb-stored:1"]).output().unwrap();
    insta::assert_snapshot!("rmi_of_a_name_not_stored", transcript(&out));

    // A relative data directory is no store: one planted where imgtool runs is never read.
    let out = imgtool(t).env("XDG_DATA_HOME", "rel").env("HOME", "rel").args(["build", "-t", "x:1", "ctx"]).output().unwrap();
    insta::assert_snapshot!("no_store_without_an_absolute_home", transcript(&out));

    // A new file in a directory here is a path, even when its name looks like a registry's.
    std::fs::create_dir_all(t.join("my.dir")).unwrap();
    run_ok(imgtool(t).args(["copy", "-q", "bb.tar", "my.dir/out.tar"]));
    assert!(t.join("my.dir/out.tar").is_file());
}
