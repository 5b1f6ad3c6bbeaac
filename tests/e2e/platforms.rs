//! Multi-platform images: copying the whole index or one platform.

use std::path::Path;

use imgtool_tests::{require, run_ok, transcript};

use super::imgtool;

/// A layout with a two-platform index tagged `multi`, made with the library.
fn multi_platform_layout(dir: &Path) {
    multi_platform_layout_as(dir, "multi", imgtool_core::Flavor::Oci);
}

/// As [`multi_platform_layout`], in layout `name`, with `flavor`'s media types.
fn multi_platform_layout_as(dir: &Path, name: &str, flavor: imgtool_core::Flavor) {
    use imgtool_core::{Compression, CopyOptions, Image, ImageSink};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut images = Vec::new();
        for platform in ["linux/amd64", "linux/arm64"] {
            let image = Image::scratch(&platform.parse().unwrap(), flavor);
            let producer = imgtool_archive::ContentsLayer::new([("/arch", platform)]);
            let image = image.add_layers(&producer, dir, 0, Compression::Gzip).await.unwrap();
            images.push(image);
        }
        let sink: Box<dyn ImageSink> = Box::new(imgtool_archive::LayoutSink::oci_dir(&dir.join(name)).unwrap());
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

/// A Docker manifest list copied whole into an OCI layout becomes an OCI index of OCI
/// images, which skopeo reads.
#[test]
fn a_docker_index_lands_in_a_layout_as_oci() {
    require("skopeo", "skopeo");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    multi_platform_layout_as(d, "dmulti", imgtool_core::Flavor::Docker);
    let raw = |t: &str| -> serde_json::Value {
        serde_json::from_str(&run_ok(std::process::Command::new("skopeo").current_dir(d).args(["inspect", "--raw", t]))).unwrap()
    };
    // (skopeo cannot read this source: Docker media types in an OCI layout.)
    let source: serde_json::Value = serde_json::from_str(&run_ok(imgtool(d).args(["manifest", "oci:dmulti:multi"]))).unwrap();
    assert_eq!(source["mediaType"], "application/vnd.docker.distribution.manifest.list.v2+json");
    run_ok(imgtool(d).args(["copy", "-q", "--all", "oci:dmulti:multi", "oci:conv:all"]));
    let index = raw("oci:conv:all");
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json", "{index}");
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
    let arm = run_ok(imgtool(d).args(["manifest", "--platform", "linux/arm64", "oci:conv:all"]));
    assert!(arm.contains("application/vnd.oci.image.manifest.v1+json"), "{arm}");
}

/// `push` of an index: refused naming its platforms, or pushed whole with --all, or one with
/// --platform; `inspect` says it is an index; `--platform arm64` reads as linux/arm64.
#[test]
fn push_and_inspect_know_an_index() {
    require("skopeo", "skopeo");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    multi_platform_layout(d);
    let reg = imgtool_tests::Registry::start();
    let out = imgtool(d).args(["push", "oci:multi:multi", &format!("{}/m:1", reg.addr)]).output().unwrap();
    insta::assert_snapshot!("push_an_index_needs_all_or_platform", transcript(&out));
    assert_eq!(reg.requests("PUT", "/manifests/"), 0, "nothing pushed");
    run_ok(imgtool(d).args(["push", "-q", "--all", "oci:multi:multi", &format!("{}/m:all", reg.addr)]));
    let raw = |t: &str| run_ok(std::process::Command::new("skopeo").current_dir(d).args(["inspect", "--tls-verify=false", "--raw", t]));
    assert_eq!(raw("oci:multi:multi"), raw(&format!("docker://{}/m:all", reg.addr)));
    run_ok(imgtool(d).args(["push", "-q", "--platform", "arm64", "oci:multi:multi", &format!("{}/m:arm", reg.addr)]));
    let cfg = run_ok(imgtool(d).args(["config", &format!("{}/m:arm", reg.addr)]));
    assert!(cfg.contains("\"architecture\":\"arm64\""), "{cfg}");
    let text = run_ok(imgtool(d).args(["inspect", "--platform", "linux/arm64", "oci:multi:multi"]));
    assert!(text.contains("Index:      2 platforms: linux/amd64, linux/arm64 (shown: linux/arm64)"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&run_ok(imgtool(d).args(["inspect", "--json", "--platform", "linux/arm64", "oci:multi:multi"]))).unwrap();
    assert_eq!(json["index"], serde_json::json!({"platforms": ["linux/amd64", "linux/arm64"], "shown": "linux/arm64"}));
}

/// `--platform` that a single-platform source cannot meet is refused by every command that
/// takes it, as Docker refuses it, unless `--any-platform` (or `any_platform`) says to take
/// the image as it is; a RUN for a platform this host cannot execute says so by name.
#[test]
fn a_platform_that_cannot_be_met_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use imgtool_core::{Compression, CopyOptions, Flavor, Image, ImageSink};
        let image = Image::scratch(&"linux/amd64".parse().unwrap(), Flavor::Oci);
        let image = image.add_layers(&imgtool_archive::ContentsLayer::new([("/arch", "amd64")]), d, 0, Compression::Gzip).await.unwrap();
        let sink: Box<dyn ImageSink> = Box::new(imgtool_archive::LayoutSink::oci_dir(&d.join("amd")).unwrap());
        imgtool_core::copy_image(&image, sink.as_ref(), &CopyOptions { tags: vec!["one".into()], ..Default::default() }).await.unwrap();
        sink.finish().await.unwrap();
    });
    let mismatch = "image platform (linux/amd64) does not match the expected platform (linux/arm64)";
    let refused = |args: &[&str]| {
        let out = imgtool(d).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success() && err.contains(mismatch) && err.contains("--any-platform"), "{args:?}: {}", transcript(&out));
    };
    refused(&["copy", "--platform", "linux/arm64", "oci:amd:one", "oci:out:1"]);
    assert!(!d.join("out").exists(), "nothing written");
    let out = imgtool(d).args(["copy", "--any-platform", "--platform", "linux/arm64", "oci:amd:one", "oci:out:1"]).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stderr).contains("warning:"), "{}", transcript(&out));

    let pipeline = |extra: &str| {
        std::fs::write(
            d.join("p.toml"),
            format!("[source]\nimage = \"oci:amd:one\"\nplatform = \"linux/arm64\"\n{extra}\n[[sink]]\nto = \"oci:piped:1\"\n"),
        )
        .unwrap();
    };
    pipeline("");
    let out = imgtool(d).args(["pipe", "p.toml"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains(mismatch), "{}", transcript(&out));
    pipeline("any_platform = true");
    run_ok(imgtool(d).args(["pipe", "p.toml"]));

    std::fs::create_dir(d.join("ctx")).unwrap();
    std::fs::write(d.join("ctx/Dockerfile"), "FROM oci:../amd:one\nENV A=1\n").unwrap();
    refused(&["build", "--platform", "linux/arm64", "-t", "x:1", "-o", "oci:built:1", "ctx"]);
    run_ok(imgtool(d).args(["build", "--platform", "linux/amd64", "-t", "x:1", "-o", "oci:built:1", "ctx"]));

    let host = run_ok(std::process::Command::new("uname").arg("-m"));
    let (foreign, emulator) = if host.trim() == "aarch64" { ("linux/amd64", "x86_64") } else { ("linux/arm64", "aarch64") };
    let handler = std::fs::read_to_string(format!("/proc/sys/fs/binfmt_misc/qemu-{emulator}")).unwrap_or_default();
    if handler.starts_with("enabled") {
        return; // this machine emulates the other platform: its RUN may well work
    }
    std::fs::write(d.join("ctx/Dockerfile"), "FROM scratch\nRUN true\n").unwrap();
    let out = imgtool(d).args(["build", "--platform", foreign, "-t", "x:2", "-o", "oci:built:2", "ctx"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(&format!("cannot execute commands for {foreign}")) && err.contains("binfmt_misc"),
        "{}",
        transcript(&out)
    );
}
