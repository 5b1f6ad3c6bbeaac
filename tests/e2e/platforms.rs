//! Multi-platform images: copying the whole index or one platform.

use std::path::Path;

use imgtool_tests::{require, run_ok, transcript};

use super::imgtool;

/// A layout with a two-platform index tagged `multi`, made with the library.
fn multi_platform_layout(dir: &Path) {
    use imgtool_core::{Compression, CopyOptions, Flavor, Image, ImageSink};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut images = Vec::new();
        for platform in ["linux/amd64", "linux/arm64"] {
            let image = Image::scratch(&platform.parse().unwrap(), Flavor::Oci);
            let producer = imgtool_archive::ContentsLayer::new([("/arch", platform)]);
            let image = image.add_layers(&producer, dir, 0, Compression::Gzip).await.unwrap();
            images.push(image);
        }
        let sink: Box<dyn ImageSink> = Box::new(imgtool_archive::LayoutSink::oci_dir(&dir.join("multi")).unwrap());
        imgtool_core::copy_index(&images, sink.as_ref(), &CopyOptions { tags: vec!["multi".into()], ..Default::default() }).await.unwrap();
        sink.finish().await.unwrap();
    });
}

#[test]
fn copy_all_platforms_or_one() {
    require("skopeo", "skopeo");
    let dir = tempfile::tempdir().unwrap();
    multi_platform_layout(dir.path());
    run_ok(imgtool(dir.path()).args(["copy", "-q", "--all", "oci:multi:multi", "oci-archive:all.tar:everything"]));
    let raw = |t: &str| run_ok(std::process::Command::new("skopeo").current_dir(dir.path()).args(["inspect", "--raw", t]));
    assert_eq!(raw("oci:multi:multi"), raw("oci-archive:all.tar:everything"), "the index is copied byte for byte");
    run_ok(imgtool(dir.path()).args(["copy", "-q", "--platform", "linux/arm64", "oci:multi:multi", "docker-archive:arm.tar:arm:latest"]));
    let v: serde_json::Value = serde_json::from_str(&run_ok(
        std::process::Command::new("skopeo").current_dir(dir.path()).args(["inspect", "docker-archive:arm.tar"]),
    ))
    .unwrap();
    assert_eq!(v["Architecture"], "arm64");
    let out = imgtool(dir.path()).args(["copy", "--all", "oci:multi:multi", "docker-archive:fail.tar:x:y"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("single-platform"), "{}", transcript(&out));
    let left: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!left.iter().any(|n| n.contains("fail.tar")), "nothing is left behind: {left:?}");
}
