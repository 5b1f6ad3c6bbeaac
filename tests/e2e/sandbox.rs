//! `imgtool run` and `imgtool build` with the sandbox flags.

use imgtool_tests::{require, run_ok, transcript};

use super::{busybox_archive, imgtool};

#[test]
fn run_and_build_take_the_sandbox_flags() {
    require("runc", "runc");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    busybox_archive(t);
    let seccomp = |extra: &[&str]| {
        let mut c = imgtool(t);
        c.arg("run").args(extra).args(["bb.tar", "--", "grep", "^Seccomp:", "/proc/self/status"]);
        run_ok(&mut c)
    };
    assert_eq!(seccomp(&[]), "Seccomp:\t2\n");
    assert_eq!(seccomp(&["--security-opt", "seccomp=unconfined"]), "Seccomp:\t0\n");

    for (flags, says) in [
        (&["--security-opt", "apparmor=unconfined"][..], "--security-opt apparmor=unconfined"),
        (&["--security-opt", "seccomp=/tmp/profile.json"][..], "the only accepted value is seccomp=unconfined"),
        (&["--memory", "lots"][..], "--memory lots"),
    ] {
        let out = imgtool(t).arg("run").args(flags).args(["bb.tar", "--", "true"]).output().unwrap();
        assert!(!out.status.success(), "{}", transcript(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{says:?} in {err}");
    }

    // Ten background processes: fine without a limit, not with --pids-limit 5.
    let ten = ["bb.tar", "--", "sh", "-c", "for n in 1 2 3 4 5 6 7 8 9 10; do sleep 1 & done; wait; echo all-started"];
    assert_eq!(run_ok(imgtool(t).args(["run", "--memory", "64m"]).args(ten)), "all-started\n");
    let out = imgtool(t).args(["run", "--pids-limit", "5"]).args(ten).output().unwrap();
    assert!(!out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("all-started"), "{}", transcript(&out));

    // A build's RUN gets the flags too: this step passes only without the filter.
    std::fs::create_dir_all(t.join("ctx")).unwrap();
    std::fs::write(t.join("ctx/Dockerfile"), "FROM docker-archive:../bb.tar\nRUN grep -q '^Seccomp:.0$' /proc/self/status\n").unwrap();
    let build = |extra: &[&str]| {
        imgtool(t).args(["build", "-o", "out.tar", "--no-cache", "--cache-dir", "cache"]).args(extra).arg("ctx").output().unwrap()
    };
    let out = build(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let out = build(&["--security-opt", "seccomp=unconfined"]);
    assert!(out.status.success(), "{}", transcript(&out));
}

/// Exit codes as podman gives them, on the same image: 127 for a command that does not
/// exist, 126 for one that cannot be run, the command's own otherwise; `-i` passes stdin.
#[test]
fn run_exits_like_podman() {
    require("runc", "runc");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    busybox_rootfs_with_a_plain_file(t);
    run_ok(imgtool(t).args(["append", "-q", "scratch", "docker-archive:bbx.tar:bbx:1", "--path", "rootfs:/"]));
    run_ok(imgtool_tests::podman(t).args(["load", "-q", "-i"]).arg(t.join("bbx.tar")));
    for (name, cmd) in [("run_missing_command", "nosuchcmd"), ("run_not_executable", "/plain"), ("run_own_code", "/bin/false")] {
        let ours = imgtool(t).args(["run", "bbx.tar", "--", cmd]).output().unwrap();
        let podman = imgtool_tests::podman_run(t, &["bbx:1", cmd]).output().unwrap();
        assert_eq!(ours.status.code(), podman.status.code(), "{cmd}: {}\n{}", transcript(&ours), transcript(&podman));
        insta::assert_snapshot!(name, transcript(&ours));
    }
    let mut child = imgtool(t)
        .args(["run", "-i", "bbx.tar", "--", "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"through\n").unwrap();
    assert_eq!(String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout), "through\n");
    assert_eq!(run_ok(imgtool(t).args(["run", "bbx.tar", "--", "cat"])), "", "without -i the command reads nothing");
}

/// Debian's busybox as a root filesystem, with a file that is not executable.
fn busybox_rootfs_with_a_plain_file(dir: &std::path::Path) {
    imgtool_tests::busybox_rootfs(dir);
    std::fs::write(dir.join("rootfs/plain"), "not a program\n").unwrap();
}
