//! Ctrl-C and SIGTERM during a `RUN`: imgtool stops within 3 s with 130 or 143 and ends
//! the container it started. `kill -9` of layout writers. (Every other writer, stopped
//! either way: writers.rs.)

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use imgtool_tests::{Rng, require, run_ok};

use super::{busybox_archive, imgtool};

pub(crate) fn signal(child: &Child, sig: &str) {
    run_ok(Command::new("kill").args([&format!("-{sig}"), &child.id().to_string()]));
}

/// Wait for `child` at most `limit`; its exit code (a signal death counts as 128 + signal).
pub(crate) fn wait_within(child: &mut Child, limit: Duration) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("imgtool did not stop within {limit:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn running(pattern: &str) -> bool {
    Command::new("pgrep").args(["-f", pattern]).output().is_ok_and(|o| o.status.success())
}

/// Names in `dir` (not recursive).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
    v.sort();
    v
}

/// A build during its `RUN`, and `imgtool run`, each signalled: the container is ended with
/// the command.
#[test]
fn an_interrupted_build_or_run_ends_its_container_and_leaves_nothing() {
    require("runc", "runc");
    require("pgrep", "procps");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    busybox_archive(t);
    std::fs::create_dir_all(t.join("ctx")).unwrap();
    std::fs::create_dir_all(t.join("tmp")).unwrap();
    // PID 1 of its namespace ignores SIGINT: only killing the container ends it.
    std::fs::write(t.join("ctx/Dockerfile"), "FROM docker-archive:../bb.tar\nRUN sleep 3737\n").unwrap();
    let build = ["build", "-q", "-t", "x:1", "-o", "out.tar", "ctx"];
    let run = ["run", "bb.tar", "--", "sleep", "3737"];
    for (args, sig, code) in [(&build[..], "INT", 130), (&build[..], "TERM", 143), (&run[..], "INT", 130), (&run[..], "TERM", 143)] {
        let mut child = imgtool(t).env("TMPDIR", t.join("tmp")).args(args).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !running("sleep 3737") {
            assert!(Instant::now() < deadline, "the container never started ({})", args[0]);
            assert!(child.try_wait().unwrap().is_none(), "{} ended before its container started", args[0]);
            std::thread::sleep(Duration::from_millis(20));
        }
        signal(&child, sig);
        assert_eq!(wait_within(&mut child, Duration::from_secs(3)), code, "exit code of {} after SIG{sig}", args[0]);
        let deadline = Instant::now() + Duration::from_secs(2);
        while running("sleep 3737") {
            assert!(Instant::now() < deadline, "the container's process outlived {} (SIG{sig})", args[0]);
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!t.join("out.tar").exists(), "an output appeared");
        let base = super::writers::spool_base();
        assert!(names(&t.join("tmp")).iter().all(|n| *n == base), "temporary files left (SIG{sig}): {:?}", names(&t.join("tmp")));
        assert_eq!(names(&t.join("tmp").join(&base)), Vec::<String>::new(), "spool directories left (SIG{sig})");
        assert!(names(t).iter().all(|n| !n.contains("imgtool-")), "staging files left: {:?}", names(t));
    }
}

/// `kill -9` of copies into one existing layout at seeded points: every tag the layout lists
/// reads whole, no file named by a digest holds other bytes, and `gc` then leaves no
/// temporary file (a killed writer's files are aged as if it died a while ago).
#[test]
fn killed_layout_writers_leave_it_readable_and_gc_clears_after_them() {
    require("skopeo", "skopeo");
    require("sha256sum", "coreutils");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::create_dir_all(t.join("src")).unwrap();
    let mut rng = Rng(0x0dd_c0ffee);
    for i in 0..32 {
        let data: Vec<u8> = (0..(4 << 20) / 8).flat_map(|_| rng.next_u64().to_le_bytes()).collect();
        std::fs::write(t.join(format!("src/f{i}")), data).unwrap();
    }
    run_ok(imgtool(t).args(["append", "-q", "scratch", "oci:img:big", "--path", "src:/data", "--compression", "none"]));
    run_ok(imgtool(t).args(["append", "-q", "scratch", "oci:lay:small", "--contents", "/x=1"]));
    for round in 0..8 {
        let mut child = imgtool(t).args(["copy", "-q", "oci:img:big", &format!("oci:lay:t{round}")]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(400) as u64));
        let _ = child.kill();
        let _ = child.wait();
    }
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(t.join("lay/index.json")).unwrap()).unwrap();
    for m in index["manifests"].as_array().unwrap() {
        let tag = m["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap();
        run_ok(Command::new("skopeo").current_dir(t).args(["inspect", &format!("oci:lay:{tag}")]));
    }
    let sums = run_ok(Command::new("sh").current_dir(t.join("lay/blobs/sha256")).args(["-c", "sha256sum [0-9a-f]*"]));
    for line in sums.lines() {
        let (sum, name) = line.split_once("  ").unwrap();
        assert_eq!(sum, name, "a file named by a digest holds other bytes");
    }
    for n in names(&t.join("lay/blobs/sha256")).into_iter().filter(|n| n.starts_with('.')) {
        run_ok(Command::new("touch").args(["-d", "5 minutes ago"]).arg(t.join("lay/blobs/sha256").join(n)));
    }
    run_ok(imgtool(t).args(["gc", "lay"]));
    let left: Vec<String> = names(&t.join("lay/blobs/sha256")).into_iter().filter(|n| n.starts_with('.')).collect();
    assert!(left.is_empty(), "temporary files left after gc: {left:?}");
    run_ok(Command::new("skopeo").current_dir(t).args(["inspect", "oci:lay:small"]));
}
