//! One rule for relative paths: a path written inside a file is relative to that file; a
//! path on the command line is relative to the working directory.

use imgtool_tests::{run_ok, workspace};

use crate::{copy_dir, imgtool};

#[test]
fn paths_written_in_files_are_relative_to_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();

    // environment.yml's channel directory, beside the file, run from elsewhere.
    copy_dir(&workspace().join("fixtures/example/conda-channel"), &t.join("env/channel"));
    std::fs::write(t.join("env/environment.yml"), "name: demo\nchannels: [./channel]\ndependencies: [hello]\n").unwrap();
    run_ok(imgtool(t).args(["conda", "build", "-q", "-b", "scratch", "-i", "env:1", "-o", "oci:env-out:1", "-f", "env/environment.yml"]));
    run_ok(imgtool(&t.join("env")).args([
        "conda",
        "build",
        "-q",
        "-b",
        "scratch",
        "-i",
        "env:1",
        "-o",
        "oci:out:1",
        "-f",
        "environment.yml",
    ]));

    // A Dockerfile's FROM docker-archive:base.tar, beside the Dockerfile, built from elsewhere
    // (the command line's own paths, the context and -o, stay relative to the working directory).
    std::fs::create_dir_all(t.join("app")).unwrap();
    run_ok(imgtool(&t.join("app")).args(["append", "-q", "scratch", "docker-archive:base.tar:base:1", "--contents", "/etc/base=1"]));
    std::fs::write(t.join("app/Dockerfile"), "FROM docker-archive:base.tar\nENV FROM_BASE=1\n").unwrap();
    run_ok(imgtool(t).args(["build", "-q", "-t", "app:1", "-o", "built.tar", "app"]));
    assert!(t.join("built.tar").is_file());
    std::fs::create_dir_all(t.join("files")).unwrap();
    run_ok(imgtool(t).args(["build", "-q", "-t", "app:1", "-f", "app/Dockerfile", "-o", "built2.tar", "files"]));

    // The same Dockerfile as a pipeline's source, the pipeline in another directory.
    std::fs::create_dir_all(t.join("pipes")).unwrap();
    std::fs::write(t.join("pipes/p.toml"), "[source]\ndockerfile = { file = \"../app/Dockerfile\" }\n[[sink]]\nto = \"oci:piped:1\"\n")
        .unwrap();
    run_ok(imgtool(t).args(["pipe", "-q", "pipes/p.toml"]));
    assert!(t.join("pipes/piped/index.json").is_file(), "sinks are relative to the pipeline file");
}
