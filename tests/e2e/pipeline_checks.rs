//! A pipeline file is checked before any work: its source as written, one kind per step,
//! config edits and sink names; `add_path` reads its tree as `build` reads a context and
//! never packs the pipeline's own outputs.

use imgtool_tests::{run_ok, transcript};

use super::imgtool;

#[test]
fn pipelines_are_checked_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let sink = "[[sink]]\nto = \"oci:out:1\"\n";
    for (name, text) in [
        ("source_as_a_string", format!("source = \"scratch\"\n{sink}")),
        (
            "two_kinds_in_one_step",
            format!("source = \"scratch\"\n[[step]]\nadd_contents = {{ \"/a\" = \"b\" }}\nconfig = {{ env = [\"A=1\"] }}\n{sink}"),
        ),
        ("bad_env_in_dry_run", format!("source = \"scratch\"\n[[step]]\nconfig = {{ env = [\"NOEQ\"] }}\n{sink}")),
        ("bad_sink_name", "source = \"scratch\"\n[[sink]]\nto = \"docker-archive:x.tar:Bad Name\"\n".to_string()),
    ] {
        std::fs::write(t.join(format!("{name}.toml")), text).unwrap();
        let out = imgtool(t).args(["pipe", "--dry-run", &format!("{name}.toml")]).output().unwrap();
        insta::assert_snapshot!(name, transcript(&out));
    }
    assert!(!t.join("out").exists());
}

#[test]
fn add_path_reads_dockerignore_and_skips_the_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::create_dir_all(t.join("app/tmp")).unwrap();
    std::fs::write(t.join("app/x"), "x").unwrap();
    std::fs::write(t.join("app/tmp/junk"), "junk").unwrap();
    std::fs::write(t.join("app/.dockerignore"), "# scratch files\ntmp/\n").unwrap();
    std::fs::write(
        t.join("p.toml"),
        "source = \"scratch\"\n[[step]]\nadd_path = { from = \"app\", to = \"/app\" }\n[[sink]]\nto = \"oci:app/out:1\"\n[[sink]]\nto = \"docker-archive:app/o.tar:x:1\"\n",
    )
    .unwrap();
    // Run twice: the second finds the first one's outputs inside `from`, and leaves them out.
    let first = run_ok(imgtool(t).args(["pipe", "-q", "p.toml"]));
    let second = run_ok(imgtool(t).args(["pipe", "-q", "p.toml"]));
    assert_eq!(first, second);
    run_ok(imgtool(t).args(["export", "-q", "oci:app/out:1", "root.tar"]));
    let listed = run_ok(std::process::Command::new("tar").args(["tf", "root.tar"]).current_dir(t));
    let mut names: Vec<&str> = listed.lines().collect();
    names.sort();
    assert_eq!(names, ["app/", "app/.dockerignore", "app/x"]);
}
