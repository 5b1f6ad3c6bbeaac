//! Writers side by side: every process that exits 0 has its output.

use std::process::Child;

use imgtool_tests::{require, run_ok, transcript};

use crate::imgtool;

fn tags(layout: &std::path::Path) -> Vec<String> {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut t: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str().map(str::to_string))
        .collect();
    t.sort();
    t
}

/// Eight copies into one OCI layout at once, into an existing layout and into one that does
/// not exist yet, several rounds: every tag lands, and skopeo reads each.
#[test]
fn parallel_copies_into_one_layout_keep_every_tag() {
    require("skopeo", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for i in 0..8 {
        run_ok(imgtool(t).args(["append", "-q", "scratch", &format!("oci:src:{i}"), "--contents", &format!("/n={i}")]));
    }
    for round in 0..3 {
        let layout = t.join(format!("out{round}"));
        if round > 0 {
            // An existing layout with a tag of its own, which must survive too.
            run_ok(imgtool(t).args(["copy", "-q", "oci:src:0", &format!("oci:out{round}:old")]));
        }
        let children: Vec<Child> = (0..8)
            .map(|i| {
                imgtool(t)
                    .args(["copy", "-q", &format!("oci:src:{i}"), &format!("oci:out{round}:t{i}")])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", transcript(&out));
        }
        let mut want: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
        if round > 0 {
            want.push("old".into());
        }
        want.sort();
        assert_eq!(tags(&layout), want, "round {round}");
        for tag in &want {
            run_ok(std::process::Command::new("skopeo").current_dir(t).args(["inspect", &format!("oci:out{round}:{tag}")]));
        }
        let left: Vec<String> = std::fs::read_dir(t)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("imgtool-"))
            .collect();
        assert!(left.is_empty(), "round {round}: staging left behind: {left:?}");
    }
}
