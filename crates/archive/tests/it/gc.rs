//! `gc` follows only well-formed digests: a hostile index cannot make it read outside the
//! layout (and so keep what no tag reaches).

use imgtool_tests::hostile::add_to_layout;

#[test]
fn a_digest_that_climbs_out_of_the_layout_is_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("lay");
    add_to_layout(&layout, "kept", &[b"kept layer".to_vec()]);
    // A blob no tag reaches, and a "manifest" outside the layout that names it.
    let stray = "0".repeat(64);
    std::fs::write(layout.join("blobs/sha256").join(&stray), "stray").unwrap();
    let outside = serde_json::json!({"schemaVersion": 2, "layers": [{"mediaType": "x", "digest": format!("sha256:{stray}")}]});
    std::fs::write(tmp.path().join("outside.json"), outside.to_string()).unwrap();
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:../../../outside.json", "size": 1,
    }));
    std::fs::write(&index_path, index.to_string()).unwrap();
    let report = imgtool_archive::gc(&layout, false).unwrap();
    let removed: Vec<String> = report.removed.iter().map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(removed, [stray], "only the stray blob goes");
    assert!(tmp.path().join("outside.json").exists());
}

/// Someone who can write a shared layout plants a `blobs` symlink to another directory (and
/// lock-file symlinks): gc and writers must not reach through them.
#[test]
fn a_blobs_symlink_leads_gc_nowhere() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("lay");
    add_to_layout(&layout, "kept", &[b"kept layer".to_vec()]);
    // Elsewhere, files that look like blobs no tag of this layout reaches.
    let victim = tmp.path().join("victim");
    std::fs::create_dir_all(victim.join("sha256")).unwrap();
    let named = "1".repeat(64);
    std::fs::write(victim.join("sha256").join(&named), "someone else's").unwrap();
    std::fs::rename(layout.join("blobs"), tmp.path().join("real-blobs")).unwrap();
    std::os::unix::fs::symlink(&victim, layout.join("blobs")).unwrap();
    let report = imgtool_archive::gc(&layout, false).unwrap();
    assert!(report.removed.is_empty(), "gc went through the symlink: {:?}", report.removed);
    assert!(victim.join("sha256").join(&named).exists(), "a file outside the layout was removed");
    std::fs::remove_file(layout.join(".imgtool-writers.lock")).unwrap();
    std::os::unix::fs::symlink(victim.join("created-by-lock"), layout.join(".imgtool-writers.lock")).unwrap();
    assert!(imgtool_archive::gc(&layout, false).is_err(), "a lock file symlink was followed");
    assert!(!victim.join("created-by-lock").exists(), "a lock file was created through a symlink");
}

/// A directory where a blob or a temporary file should be does not stop gc half-way.
#[test]
fn directories_among_blobs_are_left_and_gc_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("lay");
    add_to_layout(&layout, "kept", &[b"kept layer".to_vec()]);
    let stray = "2".repeat(64);
    std::fs::write(layout.join("blobs/sha256").join(&stray), "stray").unwrap();
    std::fs::create_dir(layout.join("blobs/sha256").join("3".repeat(64))).unwrap();
    std::fs::create_dir(layout.join("blobs/sha256/.imgtool-tmp-abcdef")).unwrap();
    let report = imgtool_archive::gc(&layout, false).unwrap();
    let removed: Vec<String> = report.removed.iter().map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(removed, [stray]);
}
