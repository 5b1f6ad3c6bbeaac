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

/// The same tag written by eight processes at once (copies of different images and builds),
/// into an existing layout, several rounds: all exit 0, the index is valid and holds the tag
/// once, for one of the images written, and the layout's other tags stay.
#[test]
fn one_tag_written_at_once_by_copies_and_builds_names_one_of_them() {
    require("skopeo", "skopeo");
    require("umoci", "umoci");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let digest = |image: &str| -> String {
        let doc: serde_json::Value = serde_json::from_str(&run_ok(imgtool(t).args(["inspect", "--json", image]))).unwrap();
        doc["digest"].as_str().unwrap().to_string()
    };
    let mut candidates = Vec::new();
    for i in 0..4 {
        run_ok(imgtool(t).args(["append", "-q", "scratch", &format!("oci:src:{i}"), "--contents", &format!("/n={i}")]));
        candidates.push(digest(&format!("oci:src:{i}")));
        std::fs::create_dir_all(t.join(format!("ctx{i}"))).unwrap();
        std::fs::write(t.join(format!("ctx{i}/f")), format!("built {i}")).unwrap();
        std::fs::write(t.join(format!("ctx{i}/Dockerfile")), "FROM scratch\nCOPY f /f\n").unwrap();
    }
    run_ok(imgtool(t).args(["copy", "-q", "oci:src:0", "oci:out:old"]));
    for round in 0..3 {
        let children: Vec<Child> = (0..8)
            .map(|i| {
                let mut c = imgtool(t);
                if i % 2 == 0 {
                    c.args(["copy", "-q", &format!("oci:src:{}", i / 2), "oci:out:same"]);
                } else {
                    c.args(["build", "-q", "-t", "same", "-o", "oci:out:same", &format!("ctx{}", i / 2)]);
                }
                c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", transcript(&out));
        }
        assert_eq!(tags(&t.join("out")), ["old", "same"], "round {round}");
        let got = digest("oci:out:same");
        let built: Vec<String> =
            (0..4).map(|i| run_ok(imgtool(t).args(["build", "-q", "-t", "x", "-o", "oci:b:x", &format!("ctx{i}")]))).collect();
        let built: Vec<String> = built.iter().filter_map(|o| o.split_whitespace().nth(1).map(str::to_string)).collect();
        assert!(candidates.contains(&got) || built.contains(&got), "round {round}: {got} is none of the images written");
        run_ok(std::process::Command::new("skopeo").current_dir(t).args(["inspect", "oci:out:same"]));
        run_ok(std::process::Command::new("umoci").current_dir(t).args(["stat", "--image", "out:same"]));
    }
}
