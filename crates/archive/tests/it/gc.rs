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
