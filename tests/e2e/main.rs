//! End-to-end tests: the real `imgtool` binary, and real tools reading what it writes.

#![allow(clippy::unwrap_used)]

mod auth_files;
mod compat;
mod conda;
mod creds;
mod docs;
mod edits;
mod gc;
mod gocorpus;
mod hostile;
mod interrupt;
mod map_clients;
mod map_networks;
mod maps;
mod mutate;
mod parallel;
mod paths;
mod pipeline_checks;
mod platforms;
mod references;
mod registry;
mod registry_errors;
mod sandbox;
mod steps;
mod store;
mod writers;

use std::path::Path;

use registry::sha256_hex;

use imgtool_tests::{Registry, busybox_rootfs, podman, podman_run, require, run_ok, transcript, workspace};

/// The `imgtool` binary cargo built for this test run (this test belongs to the CLI
/// package, so the binary shares the test build's features and is never rebuilt).
fn imgtool(dir: &Path) -> std::process::Command {
    imgtool_tests::imgtool_at(Path::new(env!("CARGO_BIN_EXE_imgtool")), dir)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() == "out" {
            continue;
        }
        let ty = e.file_type().unwrap();
        if ty.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The bundled example, copied so its outputs land in a temporary directory.
fn example() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&workspace().join("fixtures/example"), tmp.path());
    tmp
}

#[test]
fn example_pipeline_is_reproducible() {
    let a = example();
    let b = example();
    for dir in [a.path(), b.path()] {
        run_ok(imgtool(dir).args(["pipe", "pipeline.toml"]));
    }
    for out in ["out/example-docker-image.tar", "out/example-oci.tar", "out/layout/index.json"] {
        let (x, y) = (std::fs::read(a.path().join(out)).unwrap(), std::fs::read(b.path().join(out)).unwrap());
        assert!(x == y, "{out} differs between runs: {} vs {}", sha256_hex(&x), sha256_hex(&y));
    }
    // The snapshot holds the digests: a change to any byte of the image shows here.
    let json = run_ok(imgtool(a.path()).args(["inspect", "--json", "oci:out/layout:latest"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    // Compared as sorted-key JSON: the map order serde_json uses depends on its features,
    // which `cargo test -p` and `--workspace` unify differently.
    let v: serde_json::Value = serde_json::from_slice(&imgtool_core::canonical_json(&v)).unwrap();
    insta::assert_json_snapshot!("example_manifest", v);
}

#[test]
fn real_tools_accept_our_outputs() {
    require("skopeo", "skopeo");
    require("umoci", "umoci");
    let dir = example();
    run_ok(imgtool(dir.path()).args(["pipe", "pipeline.toml"]));
    let digest = run_ok(imgtool(dir.path()).args(["inspect", "--json", "oci:out/layout:latest"]));
    let digest = serde_json::from_str::<serde_json::Value>(&digest).unwrap()["digest"].as_str().unwrap().to_string();
    for t in ["docker-archive:out/example-docker-image.tar", "oci:out/layout:latest", "oci-archive:out/example-oci.tar:latest"] {
        let out = run_ok(std::process::Command::new("skopeo").current_dir(dir.path()).args(["inspect", t]));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(v["Env"].as_array().unwrap().contains(&serde_json::json!("FOO=BAR")), "{t}");
        assert_eq!(v["Labels"]["org.example.team"], "data", "{t}");
        if !t.starts_with("docker-archive") {
            assert_eq!(v["Digest"], digest.as_str(), "{t}");
        }
    }
    run_ok(std::process::Command::new("umoci").current_dir(dir.path()).args([
        "unpack",
        "--rootless",
        "--image",
        "out/layout:latest",
        "bundle",
    ]));
    let rootfs = dir.path().join("bundle/rootfs");
    assert_eq!(std::fs::read_to_string(rootfs.join("this/is/a/test1")).unwrap(), "this is test 1");
    assert!(rootfs.join("app/hello.sh").is_file());
    assert!(!rootfs.join("app/compiled.pyc").exists(), "excluded files stay out");
}

#[test]
fn podman_runs_an_image_built_on_busybox() {
    require("runc", "runc");
    let tmp = tempfile::tempdir().unwrap();
    busybox_rootfs(tmp.path());
    std::fs::write(
        tmp.path().join("pipeline.toml"),
        r#"
[source]
image = "scratch"
[[step]]
add_path = { from = "rootfs", to = "/" }
[[step]]
add_contents = { "/this/is/a/test1" = "this is test 1" }
[[step]]
config = { env = ["FOO=BAR"], cmd = ["/bin/sh", "-c", "cat /this/is/a/test1; echo \" FOO=$FOO\""] }
[[sink]]
to = "docker-archive:bb.tar:imgtool-e2e-busybox:latest"
"#,
    )
    .unwrap();
    run_ok(imgtool(tmp.path()).args(["pipe", "pipeline.toml"]));
    let loaded = run_ok(podman(tmp.path()).args(["load", "-i"]).arg(tmp.path().join("bb.tar")));
    assert!(loaded.contains("imgtool-e2e-busybox:latest"), "{loaded}");
    let out = run_ok(&mut podman_run(tmp.path(), &["imgtool-e2e-busybox:latest"]));
    assert_eq!(out.trim(), "this is test 1 FOO=BAR");
}

#[test]
fn skopeo_copies_our_archive_to_a_real_registry() {
    require("skopeo", "skopeo");
    let reg = Registry::start();
    let dir = example();
    run_ok(imgtool(dir.path()).args(["pipe", "pipeline.toml"]));
    let dest = format!("docker://{}/imgtool/example:latest", reg.addr);
    run_ok(std::process::Command::new("skopeo").current_dir(dir.path()).args([
        "copy",
        "--dest-tls-verify=false",
        "docker-archive:out/example-docker-image.tar",
        &dest,
    ]));
    let out = run_ok(std::process::Command::new("skopeo").args(["inspect", "--tls-verify=false", &dest]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["Env"].as_array().unwrap().contains(&serde_json::json!("FOO=BAR")));
    assert_eq!(v["Layers"].as_array().unwrap().len(), 5);
}

#[test]
fn copy_and_append_between_transports() {
    let dir = example();
    run_ok(imgtool(dir.path()).args(["pipe", "-q", "pipeline.toml"]));
    run_ok(imgtool(dir.path()).args(["copy", "-q", "docker-archive:out/example-docker-image.tar", "oci:copied:v2"]));
    run_ok(imgtool(dir.path()).args([
        "append",
        "-q",
        "oci:copied:v2",
        "oci-archive:appended.tar:v3",
        "--contents",
        "/extra=more",
        "--env",
        "A=B",
    ]));
    let v: serde_json::Value =
        serde_json::from_str(&run_ok(imgtool(dir.path()).args(["inspect", "--json", "oci-archive:appended.tar:v3"]))).unwrap();
    let layers = v["manifest"]["layers"].as_array().unwrap().len();
    assert_eq!(layers, 6, "the example's five layers and one more");
    let env: Vec<String> = serde_json::from_value(v["config"]["config"]["Env"].clone()).unwrap();
    assert_eq!(env.iter().filter(|e| *e == "FOO=BAR" || *e == "A=B").count(), 2, "{env:?}");
    assert_eq!(env.last().map(String::as_str), Some("A=B"));
    assert_eq!(v["config"]["history"].as_array().unwrap().len(), 6);
}

/// Bad pipelines: each error names the file, line and column and what was expected.
#[test]
fn bad_pipelines_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("unknown_key", "[source]\nimage = \"scratch\"\ncolour = \"red\"\n[[sink]]\nto = \"oci:o\"\n"),
        ("unknown_step", "[source]\nimage = \"scratch\"\n[[step]]\nfrobnicate = 1\n[[sink]]\nto = \"oci:o\"\n"),
        ("wrong_type", "[source]\nimage = \"scratch\"\n[[step]]\nremove_layers = \"two\"\n[[sink]]\nto = \"oci:o\"\n"),
        (
            "missing_path",
            "[source]\nimage = \"scratch\"\n[[step]]\nadd_path = { from = \"nowhere\", to = \"/x\" }\n[[sink]]\nto = \"oci:o\"\n",
        ),
        ("bad_transport", "[source]\nimage = \"ftp:thing\"\n[[sink]]\nto = \"oci:o\"\n"),
        ("no_sink", "[source]\nimage = \"scratch\"\n"),
        ("too_many_removed", "[source]\nimage = \"scratch\"\n[[step]]\nremove_layers = 3\n[[sink]]\nto = \"oci:o\"\n"),
        ("bad_env", "[source]\nimage = \"scratch\"\n[[step]]\nconfig = { env = [\"NOVALUE\"] }\n[[sink]]\nto = \"oci:o\"\n"),
        ("bad_syntax", "[source\nimage = \"scratch\"\n"),
        ("missing_source_file", "[source]\nimage = \"docker-archive:absent.tar\"\n[[sink]]\nto = \"oci:o\"\n"),
    ];
    for (name, text) in cases {
        let file = dir.path().join(format!("{name}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = imgtool(dir.path()).args(["pipe", &format!("{name}.toml")]).output().unwrap();
        assert!(!out.status.success(), "{name} should fail");
        assert!(!dir.path().join("o").exists(), "{name}: nothing is written");
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(&regex_escape(&dir.path().display().to_string()), "[TEMP]");
        settings.bind(|| insta::assert_snapshot!(name, transcript(&out)));
    }
}

fn regex_escape(s: &str) -> String {
    s.chars().flat_map(|c| if "\\.+*?()|[]{}^$".contains(c) { vec!['\\', c] } else { vec![c] }).collect()
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let dir = example();
    let out = run_ok(imgtool(dir.path()).args(["pipe", "--dry-run", "pipeline.toml"]));
    insta::assert_snapshot!("dry_run", out);
    assert!(!dir.path().join("out").exists());
}

#[test]
fn export_and_squash_flatten_the_layers() {
    let dir = example();
    run_ok(imgtool(dir.path()).args(["pipe", "-q", "pipeline.toml"]));
    run_ok(imgtool(dir.path()).args(["export", "-q", "oci:out/layout:latest", "flat"]));
    assert_eq!(std::fs::read_to_string(dir.path().join("flat/this/is/a/test2")).unwrap(), "this is test 2");
    assert!(dir.path().join("flat/app/hello.sh").is_file());
    run_ok(imgtool(dir.path()).args(["export", "-q", "oci:out/layout:latest", "flat.tar"]));
    let listing = run_ok(std::process::Command::new("tar").current_dir(dir.path()).args(["-tf", "flat.tar"]));
    assert!(listing.lines().any(|l| l == "this/is/a/test1"), "{listing}");

    let text = std::fs::read_to_string(dir.path().join("pipeline.toml")).unwrap();
    let squashed = text.replace("[[sink]]", "[[step]]\nsquash = true\n\n[[sink]]").replacen("out/", "sq/", 3);
    let squashed = squashed.replace("out/", "sq/");
    std::fs::write(dir.path().join("squash.toml"), squashed).unwrap();
    run_ok(imgtool(dir.path()).args(["pipe", "-q", "squash.toml"]));
    let v: serde_json::Value =
        serde_json::from_str(&run_ok(imgtool(dir.path()).args(["inspect", "--json", "oci:sq/layout:latest"]))).unwrap();
    assert_eq!(v["manifest"]["layers"].as_array().unwrap().len(), 1);
    assert_eq!(v["config"]["history"][0]["created_by"], "imgtool squash");
    run_ok(imgtool(dir.path()).args(["export", "-q", "oci:sq/layout:latest", "flat2"]));
    assert_eq!(std::fs::read_to_string(dir.path().join("flat2/this/is/a/test1")).unwrap(), "this is test 1");
    let err = imgtool(dir.path()).args(["export", "oci:sq/layout:latest", "flat2"]).output().unwrap();
    insta::assert_snapshot!("export_into_nonempty_dir", transcript(&err));
}

#[test]
fn json_results_and_additional_tags() {
    require("skopeo", "skopeo");
    let dir = example();
    let out = run_ok(imgtool(dir.path()).args(["--json", "pipe", "pipeline.toml"]));
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "one JSON object per sink: {out}");
    assert!(lines.iter().all(|v| v["digest"] == lines[0]["digest"] && v["destination"].is_string()));
    let out = run_ok(imgtool(dir.path()).args([
        "copy",
        "--json",
        "--additional-tag",
        "demo:v2",
        "--additional-tag",
        "other/name:latest",
        "oci:out/layout:latest",
        "docker-archive:tags.tar:demo:v1",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["digest"], lines[0]["digest"]);
    for name in ["demo:v1", "demo:v2", "other/name:latest"] {
        let info = run_ok(
            std::process::Command::new("skopeo").current_dir(dir.path()).args(["inspect", &format!("docker-archive:tags.tar:{name}")]),
        );
        assert!(info.contains("FOO=BAR"), "{name}: {info}");
    }
}

#[test]
fn owner_and_mode_overrides() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/a"), "a").unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        "[source]\nimage = \"scratch\"\n[options]\ncompression = \"none\"\n[[step]]\nadd_path = { from = \"src\", to = \"/srv/\", owner = \"1000:2000\", mode = \"0640\" }\n[[sink]]\nto = \"oci:o:x\"\n",
    )
    .unwrap();
    run_ok(imgtool(dir.path()).args(["pipe", "-q", "p.toml"]));
    run_ok(imgtool(dir.path()).args(["export", "-q", "oci:o:x", "flat.tar"]));
    let listing = run_ok(std::process::Command::new("tar").current_dir(dir.path()).args(["--numeric-owner", "-tvf", "flat.tar"]));
    let a = listing.lines().find(|l| l.ends_with("srv/a")).unwrap_or_else(|| panic!("{listing}"));
    assert!(a.starts_with("-rw-r----- 1000/2000"), "{a}");
}

/// conda-docker's job: a conda environment on a busybox base, run by podman.
#[test]
fn conda_build_runs_in_podman() {
    require("runc", "runc");
    require("skopeo", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    busybox_rootfs(tmp.path());
    let channel = workspace().join("fixtures/example/conda-channel");
    let channel = channel.to_str().unwrap();
    let cache = tmp.path().join("pkgs");
    let cache = cache.to_str().unwrap();
    run_ok(imgtool(tmp.path()).args(["append", "-q", "scratch", "docker-archive:base.tar:bb:latest", "--path", "rootfs:/"]));
    let out = run_ok(imgtool(tmp.path()).args([
        "--json",
        "conda",
        "build",
        "-b",
        "docker-archive:base.tar",
        "-i",
        "imgtool-e2e-conda:latest",
        "-o",
        "conda.tar",
        "-c",
        channel,
        "--cache-dir",
        cache,
        "hello",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["destination"].as_str().unwrap().contains("imgtool-e2e-conda:latest"), "{v}");
    run_ok(podman(tmp.path()).args(["load", "-i"]).arg(tmp.path().join("conda.tar")));
    let ran = run_ok(&mut podman_run(tmp.path(), &["imgtool-e2e-conda:latest", "hello"]));
    assert_eq!(ran, "hello from a conda package\nmy prefix is /opt/conda\n");

    // --push sends it to NAME:TAG on a registry.
    let reg = Registry::start();
    let name = format!("{}/conda/hello:1", reg.addr);
    run_ok(imgtool(tmp.path()).args([
        "conda",
        "build",
        "-q",
        "-b",
        "docker-archive:base.tar",
        "-i",
        &name,
        "--push",
        "-c",
        channel,
        "--cache-dir",
        cache,
        "hello",
    ]));
    let pushed: serde_json::Value = serde_json::from_str(&run_ok(std::process::Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ])))
    .unwrap();
    assert!(pushed["Labels"]["org.imgtool.conda.packages"].as_str().unwrap().contains("hello=1.0=0"), "{pushed}");

    // Two platforms make one index.
    run_ok(imgtool(tmp.path()).args([
        "conda",
        "build",
        "-q",
        "-b",
        "scratch",
        "-i",
        "multi:1",
        "-o",
        "oci:multi:1",
        "-c",
        channel,
        "--cache-dir",
        cache,
        "--platform",
        "linux-64",
        "--platform",
        "linux/arm64",
        "hello",
    ]));
    let raw: serde_json::Value = serde_json::from_str(&run_ok(std::process::Command::new("skopeo").current_dir(tmp.path()).args([
        "inspect",
        "--raw",
        "oci:multi:1",
    ])))
    .unwrap();
    let arches: Vec<&str> = raw["manifests"].as_array().unwrap().iter().map(|m| m["platform"]["architecture"].as_str().unwrap()).collect();
    assert_eq!(arches, ["amd64", "arm64"]);

    // A post-link script is reported, not run.
    let out = imgtool(tmp.path())
        .args(["conda", "build", "-b", "scratch", "-i", "pl:1", "-o", "pl.tar", "-c", channel, "--cache-dir", cache, "postlink-demo"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", transcript(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("postlink-demo=1.0=0") && stderr.contains("post-link") && stderr.contains("not run"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour codes when stderr is not a terminal: {stderr:?}");

    // Bad input: clear errors, nothing written.
    let out = imgtool(tmp.path())
        .args(["conda", "build", "-b", "scratch", "-i", "x:1", "-o", "bad.tar", "-c", channel, "hello>=9"])
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("cannot be satisfied"), "{}", transcript(&out));
    std::fs::write(
        tmp.path().join("environment.yml"),
        "name: x\nchannels: [conda-forge]\ndependencies:\n  - hello\n  - pip:\n    - requests\n",
    )
    .unwrap();
    let out = imgtool(tmp.path())
        .args(["conda", "build", "-b", "scratch", "-i", "x:1", "-o", "bad.tar", "-f", "environment.yml"])
        .output()
        .unwrap();
    insta::assert_snapshot!("conda_pip_dependencies", transcript(&out));
    let out = imgtool(tmp.path())
        .args(["conda", "build", "-b", "scratch", "-i", "x:1", "-o", "bad.tar", "-c", channel, "--platform", "win-64", "hello"])
        .output()
        .unwrap();
    insta::assert_snapshot!("conda_unknown_platform", transcript(&out));
    assert!(!tmp.path().join("bad.tar").exists());
}

/// A busybox image as a docker-archive in `dir`, made by imgtool itself.
fn busybox_archive(dir: &Path) -> std::path::PathBuf {
    busybox_rootfs(dir);
    run_ok(imgtool(dir).args(["append", "scratch", "docker-archive:bb.tar:busybox:latest", "--path", "rootfs:/"]));
    dir.join("bb.tar")
}

/// docker-map's and python-docker's jobs without docker: a Dockerfile built from a
/// registry base, pushed, run by podman and by `imgtool run`.
#[test]
fn build_push_and_run_a_dockerfile() {
    require("runc", "runc");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let reg = Registry::start();
    let bb = busybox_archive(t);
    let base = format!("{}/library/busybox:latest", reg.addr);
    run_ok(imgtool(t).args(["--insecure-registry", &reg.addr, "push"]).arg(&bb).arg(&base));
    let ctx = t.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("greeting.txt"), "hello from the context\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "ARG BASE\nFROM $BASE AS build\nRUN echo built-by-imgtool > /msg\nFROM $BASE\nCOPY --from=build /msg /msg\nCOPY greeting.txt /\nCMD [\"cat\", \"/msg\", \"/greeting.txt\"]\n",
    )
    .unwrap();
    let pushed = format!("{}/demo/app:1", reg.addr);
    let cache = t.join("cache");
    let build = |extra: &[&str]| {
        let mut c = imgtool(t);
        c.args(["--insecure-registry", &reg.addr, "build", "--build-arg"]).arg(format!("BASE={base}")).arg("--cache-dir").arg(&cache);
        c.args(extra).arg("ctx");
        c
    };
    run_ok(&mut build(&["-t", &pushed, "--push"]));
    run_ok(&mut build(&["-t", "demo/app:1", "-o", "app.tar"]));

    run_ok(podman(t).args(["load", "-i"]).arg(t.join("app.tar")));
    let out = run_ok(&mut podman_run(t, &["demo/app:1"]));
    assert_eq!(out, "built-by-imgtool\nhello from the context\n");

    // imgtool run: the image's command, from the registry; then flags and an exit code.
    let ran = run_ok(imgtool(t).args(["--insecure-registry", &reg.addr, "run", &pushed]));
    assert_eq!(ran, "built-by-imgtool\nhello from the context\n");
    std::fs::create_dir_all(t.join("host")).unwrap();
    std::fs::write(t.join("host/f"), "mounted").unwrap();
    let out = imgtool(t)
        .args(["run", "-e", "X=1", "-w", "/tmp", "-u", "1000", "-v"])
        .arg(format!("{}:/mnt:ro", t.join("host").display()))
        .args(["app.tar", "--", "sh", "-c", "echo $X $(pwd) $(id -u) $(cat /mnt/f); exit 5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", transcript(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1 /tmp 1000 mounted\n");
}

#[test]
fn a_failing_run_stops_the_build_with_its_code_and_writes_nothing() {
    require("runc", "runc");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let bb = busybox_archive(t);
    std::fs::create_dir_all(t.join("ctx")).unwrap();
    std::fs::write(
        t.join("ctx/Dockerfile"),
        format!("FROM docker-archive:{}\nRUN echo about to fail\nRUN echo broken >&2; exit 3\n", bb.display()),
    )
    .unwrap();
    let out = imgtool(t).args(["build", "-o", "out.tar", "--cache-dir", "cache", "ctx"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", transcript(&out));
    insta::assert_snapshot!("build_run_fails", transcript(&out).replace(&t.display().to_string(), "[dir]"));
    assert!(!t.join("out.tar").exists(), "nothing written");
}

/// A Dockerfile as the pipeline's source, another (without FROM) as a step.
#[test]
fn pipelines_build_dockerfiles_as_source_and_step() {
    require("runc", "runc");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    busybox_archive(t);
    std::fs::create_dir_all(t.join("app")).unwrap();
    std::fs::write(t.join("app/Dockerfile"), "FROM docker-archive:../bb.tar\nARG WHO\nRUN echo \"built for $WHO\" > /built\n").unwrap();
    std::fs::write(t.join("step.Dockerfile"), "ENV STEP=yes\nRUN cat /built /this-file > /combined\nCMD [\"cat\", \"/combined\"]\n")
        .unwrap();
    let pipeline = r#"
[source]
dockerfile = { file = "app/Dockerfile", build_args = { WHO = "pipelines" }, cache_dir = "cache" }
[[step]]
add_contents = { "/this-file" = "added by a step\n" }
[[step]]
dockerfile = { file = "step.Dockerfile", context = ".", cache_dir = "cache" }
[[sink]]
to = "oci:out:latest"
"#;
    std::fs::write(t.join("p.toml"), pipeline).unwrap();
    let plan = run_ok(imgtool(t).args(["pipe", "--dry-run", "p.toml"]));
    assert!(plan.contains("source: build") && plan.contains("step: dockerfile step.Dockerfile"), "{plan}");
    run_ok(imgtool(t).args(["pipe", "p.toml"]));
    let ran = run_ok(imgtool(t).args(["run", "oci:out:latest"]));
    assert_eq!(ran, "built for pipelines\nadded by a step\n");
    let cfg = run_ok(imgtool(t).args(["inspect", "--json", "oci:out:latest"]));
    assert!(cfg.contains("STEP=yes"), "{cfg}");

    // A step file with FROM is refused, saying what to do.
    std::fs::write(t.join("step.Dockerfile"), "FROM busybox\nRUN true\n").unwrap();
    let out = imgtool(t).args(["pipe", "p.toml"]).output().unwrap();
    assert!(!out.status.success());
    // Refused before anything is built: no "building" line.
    insta::assert_snapshot!("pipe_dockerfile_step_with_from", transcript(&out).replace(&t.display().to_string(), "[dir]"));
}

/// Two builders with their own local caches share step results through a registry
/// repository: the second runs nothing (each RUN writes a random value, so a rerun
/// would change the digest).
#[test]
fn builders_share_a_cache_through_a_registry() {
    require("runc", "runc");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let reg = Registry::start();
    let bb = busybox_archive(t);
    std::fs::create_dir_all(t.join("ctx")).unwrap();
    std::fs::write(t.join("ctx/f.txt"), "f").unwrap();
    std::fs::write(
        t.join("ctx/Dockerfile"),
        format!("FROM docker-archive:{}\nRUN cat /proc/sys/kernel/random/uuid > /a\nCOPY f.txt /\nRUN true\nRUN cat /proc/sys/kernel/random/uuid > /b\n", bb.display()),
    )
    .unwrap();
    let repo = format!("{}/build-cache", reg.addr);
    let build = |cache: &str, out: &str| {
        let line = run_ok(imgtool(t).args([
            "-q",
            "--insecure-registry",
            &reg.addr,
            "build",
            "--cache-repo",
            &repo,
            "--cache-dir",
            cache,
            "-o",
            out,
            "ctx",
        ]));
        line.split_whitespace().last().unwrap().to_string()
    };
    let first = build("cache-a", "oci:one:latest");
    let second = build("cache-b", "oci:two:latest");
    assert_eq!(first, second, "the second builder reused every step from the repository");
    let third = build("cache-c", "oci:three:latest");
    assert_eq!(first, third);
    let tags = run_ok(imgtool(t).args(["--insecure-registry", &reg.addr, "tags", &repo]));
    assert_eq!(tags.lines().count(), 4, "one tag per layer-making step: {tags}");
}

/// The README's Dockerfile example, as a newcomer runs it: offline, reproducible, and
/// accepted by skopeo.
#[test]
fn the_readme_dockerfile_example_builds() {
    require("skopeo", "skopeo");
    let (a, b) = (example(), example());
    for dir in [a.path(), b.path()] {
        run_ok(imgtool(dir).args(["build", "-t", "example:1", "-o", "out/built.tar", "--cache-dir", "cache", "dockerfile"]));
    }
    let (x, y) = (std::fs::read(a.path().join("out/built.tar")).unwrap(), std::fs::read(b.path().join("out/built.tar")).unwrap());
    assert!(x == y, "the same bytes from two builds");
    let out = run_ok(std::process::Command::new("skopeo").current_dir(a.path()).args(["inspect", "docker-archive:out/built.tar"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Labels"]["org.example.version"], "1.0");
    assert!(v["Env"].as_array().unwrap().contains(&serde_json::json!("GREETING=hello from a Dockerfile")), "{v}");
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1, "{v}");
}
