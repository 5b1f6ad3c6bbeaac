//! crane's other commands on imgtool's steps: `flatten`, `rebase`, `blob`, `ls`; and the
//! shell completions and man pages clap makes.

use std::path::Path;

use imgtool_tests::{Registry, run_ok, transcript};

use super::{busybox_archive, imgtool};

/// The layer digests skopeo reads from an image.
fn layers(dir: &Path, image: &str) -> Vec<String> {
    let raw = run_ok(std::process::Command::new("skopeo").args(["inspect", "--raw", image]).current_dir(dir));
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect()
}

/// Digests vary with the busybox a machine has: snapshots show where they are, not which.
fn redacted(name: &str, text: &str) {
    insta::with_settings!({filters => vec![(r"sha256:[0-9a-f]{64}", "sha256:[digest]")]}, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn flatten_and_rebase_keep_what_the_image_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    busybox_archive(t);
    run_ok(imgtool(t).args(["append", "-q", "bb.tar", "oci:app:1", "--contents", "/app=hi"]));
    run_ok(imgtool(t).args(["append", "-q", "bb.tar", "oci:nb:1", "--contents", "/newbase=new-"]));
    let (base, app, nb) = (layers(t, "docker-archive:bb.tar"), layers(t, "oci:app:1"), layers(t, "oci:nb:1"));
    assert_eq!((base.len(), app.len(), nb.len()), (1, 2, 2));

    // flatten: one layer, the same files.
    run_ok(imgtool(t).args(["flatten", "-q", "oci:app:1", "-t", "oci:flat:1"]));
    assert_eq!(layers(t, "oci:flat:1").len(), 1);
    assert_eq!(run_ok(imgtool(t).args(["run", "oci:flat:1", "--", "cat", "/app"])), "hi");
    let out = imgtool(t).args(["flatten", "scratch"]).output().unwrap();
    insta::assert_snapshot!("flatten_scratch", transcript(&out));

    // rebase: the new base's layers, then the image's own; the old base's are gone.
    run_ok(imgtool(t).args(["rebase", "-q", "oci:app:1", "--old-base", "bb.tar", "--new-base", "oci:nb:1", "-t", "oci:rb:1"]));
    assert_eq!(layers(t, "oci:rb:1"), [nb[0].clone(), nb[1].clone(), app[1].clone()]);
    assert_eq!(run_ok(imgtool(t).args(["run", "oci:rb:1", "--", "cat", "/newbase", "/app"])), "new-hi");
    let cfg: serde_json::Value =
        serde_json::from_str(&run_ok(std::process::Command::new("skopeo").args(["inspect", "--config", "oci:rb:1"]).current_dir(t)))
            .unwrap();
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 3, "{cfg}");
    assert_eq!(cfg["history"].as_array().unwrap().len(), 3, "{cfg}");

    // An old base the image is not built on: refused, nothing written.
    let out =
        imgtool(t).args(["rebase", "oci:app:1", "--old-base", "oci:nb:1", "--new-base", "bb.tar", "-t", "oci:rb:2"]).output().unwrap();
    assert!(!out.status.success());
    redacted("rebase_not_on_old_base", &transcript(&out));
    let index = std::fs::read_to_string(t.join("rb/index.json")).unwrap();
    assert!(!index.contains("\"2\""), "{index}");
}

#[test]
fn blob_streams_one_blob_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    busybox_archive(t);
    run_ok(imgtool(t).args(["append", "-q", "bb.tar", "oci:app:1", "--contents", "/app=hi"]));
    let top = layers(t, "oci:app:1")[1].clone();
    let sha = |p: &Path| format!("sha256:{}", run_ok(std::process::Command::new("sha256sum").arg(p)).split(' ').next().unwrap());

    // A layer of an image on any transport, to a file; its config to standard output.
    run_ok(imgtool(t).args(["blob", "oci:app:1", &top, "-o", "top.tgz"]));
    assert_eq!(sha(&t.join("top.tgz")), top);
    let inspect: serde_json::Value = serde_json::from_str(&run_ok(imgtool(t).args(["inspect", "--json", "oci:app:1"]))).unwrap();
    let config_digest = inspect["manifest"]["config"]["digest"].as_str().unwrap();
    let config = run_ok(imgtool(t).args(["blob", "oci:app:1", config_digest]));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&config).unwrap(), inspect["config"]);

    // crane's REPO@DIGEST from a registry; `ls` lists the tags there.
    let reg = Registry::start();
    run_ok(imgtool(t).args(["copy", "-q", "oci:app:1", &format!("docker://{}/app:1", reg.addr)]));
    run_ok(imgtool(t).args(["copy", "-q", "oci:app:1", &format!("docker://{}/app:2", reg.addr)]));
    run_ok(imgtool(t).args(["blob", &format!("{}/app@{top}", reg.addr), "-o", "from-registry.tgz"]));
    assert_eq!(sha(&t.join("from-registry.tgz")), top);
    let mut tags: Vec<String> = run_ok(imgtool(t).args(["ls", &format!("{}/app", reg.addr)])).lines().map(str::to_string).collect();
    tags.sort();
    assert_eq!(tags, ["1", "2"]);

    // A digest the image does not have, and a registry reference without one.
    for (name, args) in [
        ("blob_not_in_image", vec!["blob".to_string(), "oci:app:1".into(), format!("sha256:{}", "0".repeat(64))]),
        ("blob_needs_a_digest", vec!["blob".to_string(), format!("{}/app:1", reg.addr)]),
    ] {
        let out = imgtool(t).args(&args).output().unwrap();
        assert!(!out.status.success());
        redacted(name, &transcript(&out).replace(&reg.addr, "[registry]"));
    }
    assert!(!t.join("sha256").exists());
}

#[test]
fn completions_and_man_pages_come_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let bash = run_ok(imgtool(t).args(["completions", "bash"]));
    assert!(bash.contains("_imgtool()") && bash.contains("flatten") && bash.contains("--old-base"), "{bash}");
    let fish = run_ok(imgtool(t).args(["completions", "fish"]));
    assert!(fish.contains("complete -c imgtool") && fish.contains("rebase"), "{fish}");
    run_ok(imgtool(t).args(["man", "-q", "man1"]));
    let top = std::fs::read_to_string(t.join("man1/imgtool.1")).unwrap();
    assert!(top.starts_with(".ie \\n(.g .ds Aq") || top.contains(".TH imgtool 1"), "{top}");
    let rebase = std::fs::read_to_string(t.join("man1/imgtool-rebase.1")).unwrap();
    assert!(rebase.contains("old\\-base") && rebase.contains("crane rebase"), "{rebase}");
    assert!(t.join("man1/imgtool-conda-build.1").exists());
    let out = imgtool(t).args(["completions", "tcsh"]).output().unwrap();
    insta::assert_snapshot!("completions_unknown_shell", transcript(&out));
}

#[test]
fn help_lists_a_commands_own_flags_first() {
    let tmp = tempfile::tempdir().unwrap();
    let help = run_ok(imgtool(tmp.path()).args(["copy", "--help"]));
    let (own, global) = (help.find("--preserve-digests").unwrap(), help.find("Global options:").unwrap());
    assert!(own < global && help.find("--quiet").unwrap() > global, "{help}");
    assert!(help.contains("docker://REF"), "{help}");
    insta::assert_snapshot!("pipe_help", run_ok(imgtool(tmp.path()).args(["pipe", "--help"])));
}
