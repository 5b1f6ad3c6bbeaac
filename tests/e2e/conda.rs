//! Hostile conda channels through the CLI: every way of reaching the channel (a path, an
//! http:// server), both package formats, the layer cache on and off. And the linker's own
//! wall: the isolated child links a package the checks would refuse without touching the
//! host.

use std::path::{Path, PathBuf};

use imgtool_tests::conda_channel::{self as channel, Item, Pkg, serve};
use imgtool_tests::hostile::Sentinel;
use serde_json::json;

use crate::imgtool;

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Evil packages (name, items, noarch python) and what the refusal must say.
fn cases(s: &Path) -> Vec<(&'static str, Vec<Item>, bool, &'static str)> {
    let sdir = leak(s.join("dir").display().to_string());
    let up = leak(format!("{}{}", "../".repeat(30), s.join("secret").display().to_string().trim_start_matches('/')));
    let delete = json!({"_path": up, "path_type": "hardlink", "sha256": "0".repeat(64), "size_in_bytes": 0});
    let site = json!({"_path": format!("site-packages/{up}"), "path_type": "hardlink", "sha256": "0".repeat(64), "size_in_bytes": 0});
    vec![
        ("link-to-host-dir", vec![Item::Link("share/evil", sdir)], false, "outside the environment"),
        ("dotdot-delete", vec![Item::Raw(delete)], false, "without '..'"),
        ("noarch-dotdot", vec![Item::Raw(site)], true, "without '..'"),
        ("placeholder-link", vec![Item::LinkAsText("etc/conf", leak(s.join("secret").display().to_string()))], false, "listed as a file"),
    ]
}

#[test]
fn hostile_channels_are_refused_however_they_are_reached() {
    let tmp = tempfile::tempdir().unwrap();
    let sentinel = Sentinel::create(tmp.path());
    let before = sentinel.snapshot();
    for (name, items, noarch, want) in cases(&sentinel.path) {
        for conda_format in [true, false] {
            let ch = tmp.path().join(format!("ch-{name}-{conda_format}"));
            let mut evil = Pkg::new("evil", "1.0");
            evil.items = items.clone();
            evil.conda_format = conda_format;
            if noarch {
                evil.noarch_python = Some(vec![]);
                evil.subdir = "noarch";
                let mut python = Pkg::new("python", "3.11.0");
                python.items = vec![Item::File("bin/python3.11", b"#!/bin/sh\n".to_vec())];
                evil.depends = vec!["python"];
                channel::write_channel(&ch, &[python, evil]);
            } else {
                channel::write_channel(&ch, &[evil]);
            }
            let served = serve(&ch);
            for (how, url) in [("path", ch.display().to_string()), ("http", served.1.clone())] {
                for cache_flag in [None, Some("--no-layer-cache")] {
                    let what = format!("{name} ({how}, .conda {conda_format}, {cache_flag:?})");
                    let work = tmp.path().join(format!("w-{name}-{conda_format}-{how}-{}", cache_flag.is_some()));
                    std::fs::create_dir_all(&work).unwrap();
                    let mut cmd = imgtool(&work);
                    cmd.args(["conda", "build", "-b", "scratch", "-i", "evil:1", "-o", "oci:out:1", "--cache-dir", "cache", "-c", &url]);
                    cmd.args(cache_flag).arg("evil");
                    let out = cmd.output().unwrap();
                    let err = String::from_utf8_lossy(&out.stderr);
                    assert!(!out.status.success(), "{what} was built");
                    assert!(err.contains("evil-1.0-0") && err.contains(want), "{what}: {err}");
                    assert_eq!(sentinel.snapshot(), before, "{what} changed the host");
                    assert!(!work.join("out").exists(), "{what}: an output was written");
                }
            }
        }
    }
}

/// A good environment from an http:// channel, cache on and off: the same image, and
/// nothing in it outside the prefix.
#[test]
fn images_hold_nothing_outside_the_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let ch = tmp.path().join("ch");
    channel::standard_channel(&ch);
    let served = serve(&ch);
    let mut digests = Vec::new();
    for flag in [None, Some("--no-layer-cache"), None] {
        let mut cmd = imgtool(tmp.path());
        cmd.args(["conda", "build", "-b", "scratch", "-i", "env:1", "-o", "oci:out:1", "--cache-dir", "cache", "-c", &served.1]);
        cmd.args(flag).args(["hello", "pytool"]);
        let printed = crate::run_ok(&mut cmd);
        digests.push(printed.split_whitespace().last().unwrap_or_default().to_string());
        let root = tmp.path().join("root");
        let _ = std::fs::remove_dir_all(&root);
        crate::run_ok(imgtool(tmp.path()).args(["export", "oci:out:1", "root"]));
        for e in walkdir::WalkDir::new(&root).min_depth(1) {
            let rel = e.unwrap().path().strip_prefix(&root).unwrap().to_string_lossy().into_owned();
            assert!(rel == "opt" || rel.starts_with("opt/conda"), "{rel} is outside the prefix");
        }
    }
    assert!(digests.iter().all(|d| d == &digests[0] && d.starts_with("sha256:")), "{digests:?}");
}

/// The second wall, alone: the link helper is handed packages the checks would refuse (as
/// if a check had a hole) and must leave the host as it was, having linked what it could.
#[test]
fn the_isolated_linker_cannot_reach_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let sentinel = Sentinel::create(tmp.path());
    let before = sentinel.snapshot();
    let mounts_before = std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().count();
    let secret = sentinel.path.join("secret").display().to_string();
    let sdir = sentinel.path.join("dir").display().to_string();
    let up = format!("{}{}", "../".repeat(30), secret.trim_start_matches('/'));
    // The channel lives in the cache: the child sees only the cache and the prefix.
    let cache = tmp.path().join("cache");
    let ch = cache.join("ch");
    let mut a = Pkg::new("evil-a", "1.0");
    a.items = vec![Item::File("share/fine.txt", b"linked".to_vec()), Item::Link("share/evil", leak(sdir.clone()))];
    let mut b = Pkg::new("evil-b", "1.0");
    b.items = vec![Item::Raw(json!({"_path": "share/evil/new", "path_type": "hardlink", "sha256": "0".repeat(64), "size_in_bytes": 0}))];
    let mut c = Pkg::new("evil-c", "1.0");
    c.items = vec![Item::Raw(json!({"_path": up, "path_type": "hardlink", "sha256": "0".repeat(64), "size_in_bytes": 0}))];
    let mut d = Pkg::new("evil-d", "1.0");
    d.items = vec![Item::LinkAsText("etc/conf", leak(secret.clone()))];
    channel::write_channel(&ch, &[a, b, c, d]);
    let staging = tmp.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    // One package a run, the earlier ones kept (ignored), as builds link what is missing.
    let pkgs = ["evil-a", "evil-b", "evil-c", "evil-d"];
    for (n, pkg) in pkgs.iter().enumerate() {
        let job = json!({
            "job": {
                "records": pkgs[..=n].iter().map(|p| record(&ch, p)).collect::<Vec<_>>(),
                "ignored": &pkgs[..n],
                "staging": staging,
                "target_prefix": "/opt/conda",
                "cache": cache,
                "subdir": "linux-64",
            },
            "root": tmp.path().join("mnt"),
        });
        std::fs::create_dir_all(tmp.path().join("mnt")).unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_imgtool"))
            .arg("__imgtool-conda-link")
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(job.to_string().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        eprintln!("{pkg}: {} {}", out.status, String::from_utf8_lossy(&out.stderr));
        assert_eq!(sentinel.snapshot(), before, "linking {pkg} changed the host");
    }
    // It did link (this is not a helper that refuses everything): evil-a's plain file is there.
    assert_eq!(std::fs::read(staging.join("share/fine.txt")).unwrap(), b"linked");
    let conf = staging.join("etc/conf");
    assert!(std::fs::read(&conf).map(|d| !d.starts_with(b"host secret")).unwrap_or(true), "the host secret was copied in");
    let mounts_after = std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().count();
    assert_eq!(mounts_before, mounts_after, "a mount leaked into the host's namespace");
    assert!(std::fs::read_dir(tmp.path().join("mnt")).unwrap().next().is_none(), "the mount point is not empty on the host");
}

/// `pkg`'s record from the channel's repodata, as the solver hands it on.
fn record(ch: &Path, pkg: &str) -> serde_json::Value {
    let rd: serde_json::Value = serde_json::from_slice(&std::fs::read(ch.join("linux-64/repodata.json")).unwrap()).unwrap();
    let (file, rec) = rd["packages.conda"].as_object().unwrap().iter().find(|(f, _)| f.starts_with(&format!("{pkg}-1.0"))).unwrap();
    let mut rec = rec.clone();
    let url: PathBuf = ch.join("linux-64").join(file);
    rec["fn"] = json!(file);
    rec["url"] = json!(format!("file://{}", url.display()));
    rec["channel"] = json!(format!("file://{}", ch.display()));
    rec
}

/// Two channels publish the same file name with other bytes (and records with no sha256 to
/// tell them apart): one package cache serves each channel its own package.
#[test]
fn one_package_cache_keeps_channels_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    for (ch, text) in [("ch-a", "from a\n"), ("ch-b", "from b\n")] {
        let mut hello = Pkg::new("hello", "1.0");
        hello.items = vec![Item::File("share/hello.txt", text.as_bytes().to_vec())];
        channel::write_channel(&t.join(ch), &[hello]);
        // Only md5 to go by, as older channels have.
        for rd in ["linux-64/repodata.json", "noarch/repodata.json"] {
            let path = t.join(ch).join(rd);
            let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            for section in ["packages", "packages.conda"] {
                if let Some(m) = v[section].as_object_mut() {
                    m.values_mut().for_each(|r| drop(r.as_object_mut().map(|r| r.remove("sha256"))));
                }
            }
            std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        }
    }
    let build = |ch: &str, out: &str| {
        let args = ["conda", "build", "-q", "-b", "scratch", "-i", "x:1", "-o", out, "-c", ch, "--cache-dir", "pkgs", "hello"];
        imgtool_tests::run_ok(imgtool(t).args(args));
    };
    build("ch-a", "a.tar");
    build("ch-b", "b.tar");
    for (out, want) in [("a.tar", "from a\n"), ("b.tar", "from b\n")] {
        imgtool_tests::run_ok(imgtool(t).args(["export", "-q", out, &format!("{out}.root")]));
        assert_eq!(std::fs::read_to_string(t.join(format!("{out}.root/opt/conda/share/hello.txt"))).unwrap(), want, "{out}");
    }
}
