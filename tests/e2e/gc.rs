//! `imgtool gc LAYOUT`: blobs no tag reaches and dead writers' temporary files go; what
//! tags reach, and files live writers hold, stay.

use std::path::Path;
use std::process::Command;

use imgtool_tests::{require, run_ok};

use super::imgtool;

fn blobs(layout: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(layout.join("blobs/sha256")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Make `path` look a few minutes old, as a leftover of a writer that died a while ago is.
fn age(path: &Path) {
    run_ok(Command::new("touch").args(["-d", "5 minutes ago"]).arg(path));
}

#[test]
fn gc_removes_what_no_tag_reaches_and_what_dead_writers_left() {
    require("skopeo", "skopeo");
    require("flock", "util-linux");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    run_ok(imgtool(t).args(["append", "-q", "scratch", "oci:lay:base", "--contents", "/base=shared"]));
    run_ok(imgtool(t).args(["append", "-q", "oci:lay:base", "oci:lay:app", "--contents", "/app=first"]));
    let with_first = blobs(&t.join("lay"));
    // The same tag again, on another image: the first one's manifest, config and layer
    // are reached by nothing now.
    run_ok(imgtool(t).args(["append", "-q", "oci:lay:base", "oci:lay:app", "--contents", "/app=second"]));
    let with_both = blobs(&t.join("lay"));
    assert_eq!(with_both.len(), with_first.len() + 3);

    let dir = t.join("lay/blobs/sha256");
    let (dead, young, held) = (dir.join(".imgtool-tmp-dead01"), dir.join(".imgtool-tmp-young1"), dir.join(".imgtool-tmp-held01"));
    for f in [&dead, &young, &held] {
        std::fs::write(f, vec![7u8; 1000]).unwrap();
    }
    age(&dead);
    age(&held);
    // A live writer's file: flock(1) holds it while gc runs.
    let mut holder = Command::new("flock").arg(&held).args(["sleep", "30"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));

    let dry = run_ok(imgtool(t).args(["gc", "--dry-run", "lay"]));
    assert_eq!(dry.lines().filter(|l| l.starts_with("would remove")).count(), 4, "{dry}");
    assert!(dry.contains(".imgtool-tmp-dead01") && !dry.contains("young") && !dry.contains("held"), "{dry}");
    assert_eq!(blobs(&t.join("lay")).len(), with_both.len() + 3, "--dry-run removed something");

    let out = run_ok(imgtool(t).args(["gc", "lay"]));
    assert_eq!(out.lines().filter(|l| l.starts_with("removed")).count(), 4, "{out}");
    let _ = holder.kill();
    let _ = holder.wait();
    let left = blobs(&t.join("lay"));
    assert!(left.contains(&".imgtool-tmp-young1".to_string()) && left.contains(&".imgtool-tmp-held01".to_string()));
    assert!(!left.contains(&".imgtool-tmp-dead01".to_string()));
    assert_eq!(left.iter().filter(|n| !n.starts_with('.')).count(), with_first.len(), "{left:?}");
    // Every tag still reads whole.
    for tag in ["base", "app"] {
        run_ok(Command::new("skopeo").current_dir(t).args(["inspect", &format!("oci:lay:{tag}")]));
        run_ok(imgtool(t).args(["export", &format!("oci:lay:{tag}"), &format!("root-{tag}")]));
    }
    assert_eq!(std::fs::read_to_string(t.join("root-app/app")).unwrap(), "second");

    // The next writer clears a dead writer's leftover on its way.
    age(&young);
    run_ok(imgtool(t).args(["append", "-q", "oci:lay:base", "oci:lay:other", "--contents", "/other=1"]));
    assert!(!young.exists(), "the next writer left a dead writer's temporary file");

    // Not a layout: a clear error, nothing touched.
    std::fs::create_dir(t.join("plain")).unwrap();
    std::fs::write(t.join("plain/keep"), "x").unwrap();
    let out = imgtool(t).args(["gc", "plain"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not an OCI layout"));
    assert!(t.join("plain/keep").exists());
}
