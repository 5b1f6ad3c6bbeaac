//! Every kind of writer (copies into archives and layouts, exports to directories and tars,
//! builds, conda builds) stopped at seeded points, by SIGINT/SIGTERM or by `kill -9`: each
//! output is complete or absent, and nothing temporary stays (after a kill, once the next
//! writer of the same output has run).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use imgtool_tests::conda_channel::{self as channel, Item, Pkg, Served, serve};
use imgtool_tests::{Rng, noise, require, run_ok};

use super::imgtool;
use super::interrupt::{signal, wait_within};

/// One writer: its arguments, and the output it makes.
struct Writer {
    args: Vec<String>,
    out: &'static str,
}

/// Inputs big enough to stop writers half-way: 256 MiB that does not compress, as a context,
/// an uncompressed image, and a conda channel with a 48 MiB package.
struct Scene {
    dir: tempfile::TempDir,
    _channel: Served,
    url: String,
}

impl Scene {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        std::fs::create_dir_all(t.join("ctx/src")).unwrap();
        std::fs::create_dir_all(t.join("tmp")).unwrap();
        for i in 0..64 {
            std::fs::write(t.join(format!("ctx/src/f{i}")), noise(4 << 20, 0x5eed + i)).unwrap();
        }
        std::fs::write(t.join("ctx/Dockerfile"), "FROM scratch\nCOPY src /data\n").unwrap();
        run_ok(imgtool(t).args(["append", "-q", "scratch", "oci:img:big", "--path", "ctx/src:/data", "--compression", "none"]));
        let mut big = Pkg::new("bigdata", "1.0");
        big.items = vec![Item::File("share/big.bin", noise(48 << 20, 77))];
        channel::standard_channel_with(&t.join("ch"), |p| p.push(big));
        let channel = serve(&t.join("ch"));
        let url = channel.1.clone();
        Self { dir, _channel: channel, url }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn writers(&self) -> Vec<Writer> {
        let w = |args: &[&str], out| Writer { args: args.iter().map(ToString::to_string).collect(), out };
        vec![
            w(&["copy", "-q", "oci:img:big", "docker-archive:out.tar:big:1"], "out.tar"),
            w(&["copy", "-q", "oci:img:big", "oci:lay:big"], "lay"),
            w(&["export", "-q", "oci:img:big", "root"], "root"),
            w(&["export", "-q", "oci:img:big", "root.tar"], "root.tar"),
            w(&["build", "-q", "-t", "b:1", "-o", "built.tar", "ctx"], "built.tar"),
            w(&["build", "-q", "--no-cache", "-t", "b:1", "-o", "oci:blay:b", "ctx"], "blay"),
            w(
                &[
                    "conda",
                    "build",
                    "-q",
                    "-b",
                    "scratch",
                    "-i",
                    "env:1",
                    "-o",
                    "oci:clay:1",
                    "--cache-dir",
                    "cache",
                    "-c",
                    &self.url,
                    "hello",
                    "bigdata",
                ],
                "clay",
            ),
        ]
    }

    fn command(&self, w: &Writer) -> Command {
        let mut c = imgtool(self.path());
        c.env("TMPDIR", self.path().join("tmp")).args(&w.args);
        c
    }

    /// Started, its output not shown (it is checked instead).
    fn start(&self, w: &Writer) -> std::process::Child {
        self.command(w).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap()
    }

    /// The output is whole: real tools read it.
    fn check_complete(&self, w: &Writer, what: &str) {
        let t = self.path();
        let skopeo = |r: &str| run_ok(Command::new("skopeo").current_dir(t).args(["inspect", r]));
        match w.out {
            "out.tar" | "built.tar" => {
                skopeo(&format!("docker-archive:{}", w.out));
            }
            "lay" => {
                skopeo("oci:lay:big");
            }
            "blay" | "clay" => {
                let tag = if w.out == "blay" { "b" } else { "1" };
                run_ok(Command::new("umoci").current_dir(t).args(["stat", "--image", &format!("{}:{tag}", w.out)]));
            }
            "root" => assert_eq!(std::fs::read_dir(t.join("root/data")).unwrap().count(), 64, "{what}: an incomplete export"),
            _ => {
                let listed = run_ok(Command::new("tar").current_dir(t).args(["tf", "root.tar"]));
                assert_eq!(listed.lines().filter(|l| l.starts_with("data/f")).count(), 64, "{what}: an incomplete export tar");
            }
        }
    }

    fn remove_output(&self, w: &Writer) {
        let p = self.path().join(w.out);
        if p.is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        } else if p.exists() {
            std::fs::remove_file(p).unwrap();
        }
    }

    /// Temporary files and directories anywhere in the scene (the spool, caches, beside and
    /// inside outputs), by the names imgtool gives them. Lock files and the per-user spool
    /// directory itself are not temporary.
    fn leftovers(&self) -> Vec<PathBuf> {
        let t = self.path();
        walkdir::WalkDir::new(t)
            .min_depth(1)
            .into_iter()
            .filter_entry(|e| !(e.depth() == 1 && ["ctx", "ch", "img"].contains(&e.file_name().to_str().unwrap_or(""))))
            .filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name().to_string_lossy();
                let ours = n.contains(".imgtool-") || n.starts_with("imgtool-spool-") || is_tmp(&n);
                let kept = n.ends_with(".lock") || e.path() == t.join("tmp").join(spool_base());
                ours && !kept
            })
            .map(|e| e.path().to_path_buf())
            .collect()
    }

    /// Age every leftover, as if its writer had died a while ago.
    fn age_leftovers(&self) {
        for p in self.leftovers() {
            run_ok(Command::new("touch").args(["-h", "-d", "5 minutes ago"]).arg(p));
        }
    }
}

fn is_tmp(name: &str) -> bool {
    name.strip_prefix(".tmp").is_some_and(|r| r.len() == 6)
}

pub(crate) fn spool_base() -> String {
    use std::os::unix::fs::MetadataExt;
    format!("imgtool-{}", std::fs::metadata("/proc/self").unwrap().uid())
}

/// SIGINT and SIGTERM at seeded points: the writer stops within 3 s with 130 or 143 (or
/// had finished), its output is complete or absent, and nothing temporary is left.
#[test]
fn signalled_writers_leave_outputs_complete_or_absent() {
    require("skopeo", "skopeo");
    require("umoci", "umoci");
    let scene = Scene::new();
    let mut rng = Rng(0x5eed_1234);
    let (mut interrupted, mut finished) = (0, 0);
    for round in 0..3 {
        for w in scene.writers() {
            let delay = Duration::from_millis(rng.below(700) as u64);
            let sig = if rng.below(2) == 0 { ("INT", 130) } else { ("TERM", 143) };
            let what = format!("round {round}: {} signalled (SIG{}) after {delay:?}", w.args.join(" "), sig.0);
            let mut child = scene.start(&w);
            std::thread::sleep(delay);
            let code = match child.try_wait().unwrap() {
                Some(st) => st.code().unwrap_or(-1),
                None => {
                    signal(&child, sig.0);
                    wait_within(&mut child, Duration::from_secs(3))
                }
            };
            match code {
                0 => {
                    finished += 1;
                    scene.check_complete(&w, &what);
                }
                c if c == sig.1 => {
                    interrupted += 1;
                    // The signal may come after the output was renamed into place.
                    if scene.path().join(w.out).exists() {
                        scene.check_complete(&w, &what);
                    }
                }
                other => panic!("{what}: exit code {other}"),
            }
            assert_eq!(scene.leftovers(), Vec::<PathBuf>::new(), "{what}: temporary files left");
            scene.remove_output(&w);
        }
    }
    assert!(interrupted >= 8, "only {interrupted} of 21 writers were interrupted ({finished} finished first)");
}

/// `kill -9` at seeded points: whatever the killed writer left is named as temporary and
/// never taken for an output; the next writer of the same output (once the leftovers are
/// old enough to be sure their writer is gone) completes it and clears them all.
#[test]
fn killed_writers_are_cleared_by_the_next_one() {
    require("skopeo", "skopeo");
    require("umoci", "umoci");
    let scene = Scene::new();
    let mut rng = Rng(0x0bad_5eed);
    let mut left_something = 0;
    for round in 0..3 {
        for w in scene.writers() {
            let delay = Duration::from_millis(rng.below(700) as u64);
            let what = format!("round {round}: {} killed after {delay:?}", w.args.join(" "));
            let mut child = scene.start(&w);
            std::thread::sleep(delay);
            let _ = child.kill();
            let status = child.wait().unwrap();
            // Outputs appear by a rename, whole, or not at all.
            if status.success() || scene.path().join(w.out).exists() {
                scene.check_complete(&w, &what);
            }
            if !scene.leftovers().is_empty() {
                left_something += 1;
            }
            scene.age_leftovers();
            scene.remove_output(&w);
            run_ok(&mut scene.command(&w));
            scene.check_complete(&w, &what);
            assert_eq!(scene.leftovers(), Vec::<PathBuf>::new(), "{what}: the next writer left temporary files");
            scene.remove_output(&w);
        }
    }
    assert!(left_something >= 6, "only {left_something} of 21 killed writers left anything: the schedule cuts too late");
}
