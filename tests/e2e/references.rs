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
