//! `imgtool mutate`: crane's config edits, read back by skopeo; bad edits change nothing.

use imgtool_tests::{run_ok, transcript};

use super::{busybox_archive, imgtool};

#[test]
fn mutate_edits_the_config_as_crane_does() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    busybox_archive(t);
    let flags = [
        "--env=A=1",
        "-l",
        "team=x",
        "-a",
        "org.example.note=y",
        "--entrypoint",
        "/bin/sh,-c",
        "--cmd",
        r#"["echo hi"]"#,
        "--workdir",
        "/w",
        "-u",
        "1000",
        "--exposed-ports",
        "80,53/udp",
    ];
    run_ok(imgtool(t).args(["mutate", "-q", "bb.tar", "-t", "oci:m:1"]).args(flags));
    let cfg: serde_json::Value =
        serde_json::from_str(&run_ok(std::process::Command::new("skopeo").args(["inspect", "--config", "oci:m:1"]).current_dir(t)))
            .unwrap();
    let c = &cfg["config"];
    assert!(c["Env"].as_array().unwrap().iter().any(|e| e == "A=1"), "{c}");
    assert_eq!((c["Labels"]["team"].as_str(), c["WorkingDir"].as_str(), c["User"].as_str()), (Some("x"), Some("/w"), Some("1000")));
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["echo hi"]));
    assert_eq!(
        c["ExposedPorts"].as_object().unwrap().keys().collect::<std::collections::BTreeSet<_>>(),
        [&"53/udp".to_string(), &"80/tcp".to_string()].into()
    );
    let raw = run_ok(std::process::Command::new("skopeo").args(["inspect", "--raw", "oci:m:1"]).current_dir(t));
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(manifest["annotations"]["org.example.note"].as_str(), Some("y"), "{raw}");

    // A bad edit and no edit at all: clear errors, and nothing written.
    for (name, args) in [
        ("mutate_bad_env", vec!["mutate", "bb.tar", "-t", "oci:m:2", "--env", "NOEQUALS"]),
        ("mutate_nothing", vec!["mutate", "bb.tar", "-t", "oci:m:2"]),
    ] {
        let out = imgtool(t).args(&args).output().unwrap();
        assert!(!out.status.success());
        insta::assert_snapshot!(name, transcript(&out));
    }
    let index = std::fs::read_to_string(t.join("m/index.json")).unwrap();
    assert!(!index.contains("\"m:2\"") && !index.contains(":\"2\""), "{index}");
}
