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

/// Copies, builds and `delete`s of one layout's tags at once, several rounds: every copy's
/// and build's tag lands and reads whole, every deleted tag is gone, and the blobs of the
/// images still tagged survive the collection each delete runs.
#[test]
fn copies_builds_and_deletes_at_once_keep_what_they_should() {
    require("skopeo", "skopeo");
    require("umoci", "umoci");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for i in 0..4 {
        run_ok(imgtool(t).args(["append", "-q", "scratch", &format!("oci:src:{i}"), "--contents", &format!("/n={i}")]));
        std::fs::create_dir_all(t.join(format!("ctx{i}"))).unwrap();
        std::fs::write(t.join(format!("ctx{i}/f")), format!("built {i}")).unwrap();
        std::fs::write(t.join(format!("ctx{i}/Dockerfile")), "FROM scratch\nCOPY f /f\n").unwrap();
    }
    for round in 0..3 {
        // Tags to delete, on images no other tag shares (their blobs are freed).
        for i in 0..4 {
            let ctx = t.join(format!("gone{i}"));
            std::fs::create_dir_all(&ctx).unwrap();
            std::fs::write(ctx.join("Dockerfile"), format!("FROM scratch\nENV ROUND={round} I={i}\n")).unwrap();
            run_ok(imgtool(t).args(["build", "-q", "-t", "g", "-o", &format!("oci:lay:d{i}"), &format!("gone{i}")]));
        }
        let children: Vec<Child> = (0..12)
            .map(|i| {
                let mut c = imgtool(t);
                match i % 3 {
                    0 => c.args(["copy", "-q", &format!("oci:src:{}", i / 3), &format!("oci:lay:c{round}-{}", i / 3)]),
                    1 => c.args(["build", "-q", "-t", "x", "-o", &format!("oci:lay:b{round}-{}", i / 3), &format!("ctx{}", i / 3)]),
                    _ => c.args(["delete", "-q", &format!("oci:lay:d{}", i / 3)]),
                };
                c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", transcript(&out));
        }
        let mut want: Vec<String> =
            (0..=round).flat_map(|r| (0..4).flat_map(move |i| [format!("b{r}-{i}"), format!("c{r}-{i}")])).collect();
        want.sort();
        assert_eq!(tags(&t.join("lay")), want, "round {round}");
        for tag in &want {
            run_ok(std::process::Command::new("skopeo").current_dir(t).args(["inspect", &format!("oci:lay:{tag}")]));
            run_ok(std::process::Command::new("umoci").current_dir(t).args(["stat", "--image", &format!("lay:{tag}")]));
        }
        let report = run_ok(imgtool(t).args(["gc", "-q", "--dry-run", "lay"]));
        assert_eq!(report, "", "round {round}: blobs of deleted tags were left");
    }
}
