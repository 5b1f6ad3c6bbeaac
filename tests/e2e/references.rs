//! One rule for names on every command: a transport prefix says the transport; otherwise an
//! existing path is a local archive or layout, and a source is a registry reference; a
//! destination is a registry only when it names its registry.

use imgtool_tests::{Registry, run_ok, transcript};

use super::{busybox_archive, imgtool};

#[test]
fn bare_names_mean_the_same_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    busybox_archive(t);
    let reg = Registry::start();
    let remote = format!("{}/busybox:latest", reg.addr);

    // A destination naming its registry is pushed to; a bare source reference is pulled.
    run_ok(imgtool(t).args(["copy", "-q", "bb.tar", &remote]));
    let text = run_ok(imgtool(t).args(["inspect", &remote]));
    assert!(text.contains(&format!("Image:      docker://{remote}")), "{text}");
    run_ok(imgtool(t).args(["copy", "-q", &remote, "copied.tar"]));
    run_ok(imgtool(t).args(["copy", "-q", &remote, "oci:lay:1"]));
    run_ok(imgtool(t).args(["export", "-q", &remote, "rootfs-out"]));
    assert!(t.join("rootfs-out/bin/busybox").exists() || t.join("rootfs-out/busybox").exists());

    // push without a destination goes where the archive's name says, as docker push NAME.
    run_ok(imgtool(t).args(["copy", "-q", "bb.tar", &format!("docker-archive:named.tar:{}/named:1", reg.addr)]));
    run_ok(imgtool(t).args(["push", "-q", "named.tar"]));
    assert_eq!(run_ok(imgtool(t).args(["digest", &format!("{}/named:1", reg.addr)])), run_ok(imgtool(t).args(["digest", &remote])));

    // manifest, config and digest read every transport, as skopeo inspect --raw/--config do.
    let skopeo = |args: &[&str]| run_ok(std::process::Command::new("skopeo").args(args).current_dir(t));
    assert_eq!(run_ok(imgtool(t).args(["manifest", "oci:lay:1"])).trim(), skopeo(&["inspect", "--raw", "oci:lay:1"]).trim());
    let cfg: serde_json::Value = serde_json::from_str(&run_ok(imgtool(t).args(["config", "docker-archive:bb.tar"]))).unwrap();
    let want: serde_json::Value = serde_json::from_str(&skopeo(&["inspect", "--config", "docker-archive:bb.tar"])).unwrap();
    assert_eq!(cfg, want);
    let digest = run_ok(imgtool(t).args(["digest", "oci:lay:1"]));
    assert_eq!(digest.trim(), skopeo(&["inspect", "--format", "{{.Digest}}", "oci:lay:1"]).trim());
    assert_eq!(run_ok(imgtool(t).args(["digest", &remote])), digest);

    // A destination that could be Docker Hub is refused, and a name that is both a path here
    // and a registry reference names both readings. Nothing is written.
    std::fs::create_dir_all(t.join("example.com")).unwrap();
    std::fs::copy(t.join("bb.tar"), t.join("example.com/app")).unwrap();
    for (name, args) in [
        ("copy_to_a_bare_reference", vec!["copy", "bb.tar", "busybox:latest"]),
        ("both_a_path_and_a_reference", vec!["inspect", "example.com/app"]),
        ("unknown_transport", vec!["copy", "dir:/tmp/x", "out.tar"]),
    ] {
        let out = imgtool(t).args(&args).output().unwrap();
        assert!(!out.status.success());
        insta::assert_snapshot!(name, transcript(&out));
    }
    assert!(!t.join("busybox:latest").exists() && !t.join("out.tar").exists());
}

#[test]
fn oci_layouts_get_oci_media_types() {
    imgtool_tests::require("umoci", "umoci");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    busybox_archive(t);
    let reg = Registry::start();
    let docker = format!("{}/bb:docker", reg.addr);
    let media = |image: &str| -> serde_json::Value {
        let raw = run_ok(std::process::Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", image]).current_dir(t));
        let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
        serde_json::json!([m["mediaType"], m["config"]["mediaType"], m["layers"][0]["mediaType"]])
    };
    // A Docker schema-2 image in a registry...
    run_ok(imgtool(t).args(["copy", "-q", "--format", "docker", "bb.tar", &docker]));
    assert_eq!(media(&format!("docker://{docker}"))[0], "application/vnd.docker.distribution.manifest.v2+json");
    // ...becomes OCI in an OCI layout, which umoci (and skopeo) read.
    run_ok(imgtool(t).args(["copy", "-q", &docker, "oci:lay:1"]));
    assert_eq!(
        media("oci:lay:1"),
        serde_json::json!([
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip"
        ])
    );
    run_ok(std::process::Command::new("umoci").args(["unpack", "--image", "lay:1", "bundle"]).current_dir(t));
    assert!(t.join("bundle/rootfs").is_dir());
    // Unless the digest must not change.
    let out = imgtool(t).args(["copy", "--preserve-digests", &docker, "oci:lay:2"]).output().unwrap();
    assert!(!out.status.success());
    insta::assert_snapshot!("preserve_digests_refuses_conversion", transcript(&out).replace(&reg.addr, "[registry]"));
    let index = std::fs::read_to_string(t.join("lay/index.json")).unwrap();
    assert!(!index.contains("\"2\""), "{index}");
}
