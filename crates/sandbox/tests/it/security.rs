//! The confinement, checked from inside: what the kernel reports for the process and what
//! it refuses.

use imgtool_sandbox::{Output, RunSpec, Security, run};

use super::spec;

/// `Seccomp` and the capability sets of the sandboxed shell, as `/proc/self/status`
/// shows them ("Name:\tvalue" lines).
const STATUS: &str = "grep -E '^(Seccomp|Cap(Inh|Prm|Eff|Bnd|Amb)):' /proc/self/status";

/// Docker's 14 default capabilities as a kernel bit mask.
const DOCKER_CAPS: &str = "00000000a80425fb";

fn ran(root: &std::path::Path, s: &RunSpec) -> String {
    let out = run(root, s, Output::Capture).unwrap();
    assert_eq!(out.code, 0, "{}", out.tail);
    out.tail
}

#[test]
fn root_gets_dockers_seccomp_filter_and_capabilities() {
    let tmp = tempfile::tempdir().unwrap();
    let root = imgtool_tests::busybox_rootfs(tmp.path());
    let out = ran(&root, &spec(STATUS));
    for line in ["Seccomp:\t2", &format!("CapEff:\t{DOCKER_CAPS}"), &format!("CapPrm:\t{DOCKER_CAPS}"), &format!("CapBnd:\t{DOCKER_CAPS}")]
    {
        assert!(out.lines().any(|l| l == line), "{line:?} in {out}");
    }
    for line in ["CapInh:\t0000000000000000", "CapAmb:\t0000000000000000"] {
        assert!(out.lines().any(|l| l == line), "{line:?} in {out}");
    }
    // No new namespaces (user namespaces first), while fork, clone and chroot (a default
    // capability's call) still work.
    let out = ran(
        &root,
        &spec(
            "unshare -U -r true 2>/dev/null && echo userns; unshare -m true 2>/dev/null && echo mountns; true & wait $! && echo forked; chroot / true && echo chroot",
        ),
    );
    assert_eq!(out, "forked\nchroot\n");
}

#[test]
fn other_users_hold_no_capabilities() {
    let tmp = tempfile::tempdir().unwrap();
    let root = imgtool_tests::busybox_rootfs(tmp.path());
    let mut s = spec(STATUS);
    s.user = "65534".into();
    let out = ran(&root, &s);
    for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert!(out.lines().any(|l| l == format!("{set}:\t0000000000000000")), "{set} in {out}");
    }
    assert!(out.lines().any(|l| l == format!("CapBnd:\t{DOCKER_CAPS}")), "{out}");
    assert!(out.lines().any(|l| l == "Seccomp:\t2"), "{out}");
}

#[test]
fn unconfined_drops_only_the_filter() {
    let tmp = tempfile::tempdir().unwrap();
    let root = imgtool_tests::busybox_rootfs(tmp.path());
    let mut s = spec(STATUS);
    s.security = Security { seccomp: false, ..Security::default() };
    let out = ran(&root, &s);
    assert!(out.lines().any(|l| l == "Seccomp:\t0"), "{out}");
    assert!(out.lines().any(|l| l == format!("CapEff:\t{DOCKER_CAPS}")), "{out}");
}

#[test]
fn host_files_and_devices_stay_hidden() {
    let tmp = tempfile::tempdir().unwrap();
    let root = imgtool_tests::busybox_rootfs(tmp.path());
    // Masked: empty files (bound to /dev/null) or empty directories; read-only /proc/sys.
    // Only files the host has and that are not empty there tell anything (no kcore here).
    let masked: Vec<&str> = ["/proc/kcore", "/proc/keys", "/proc/interrupts", "/proc/timer_list"]
        .into_iter()
        .filter(|f| std::fs::read(f).is_ok_and(|b| !b.is_empty()))
        .collect();
    assert!(!masked.is_empty());
    let out = ran(
        &root,
        &spec(&format!(
            "for f in {}; do echo $f $(cat $f | wc -c); done; ls /sys/firmware | wc -l; \
             echo 1 2>/dev/null > /proc/sys/kernel/ns_last_pid || echo sys-ro",
            masked.join(" ")
        )),
    );
    let expected: String = masked.iter().map(|f| format!("{f} 0\n")).collect();
    assert_eq!(out, format!("{expected}0\nsys-ro\n"));
    // A node made for the host's first disk cannot be opened (mknod itself is allowed, as
    // in Docker, so images can carry device files).
    let disk = std::fs::read_to_string("/proc/partitions").unwrap_or_default();
    let first = disk.lines().skip(2).find_map(|l| {
        let mut f = l.split_whitespace();
        Some((f.next()?, f.next()?))
    });
    if let Some((major, minor)) = first {
        let out = ran(
            &root,
            &spec(&format!("mknod /tmp/disk b {major} {minor} && echo made; head -c 1 /tmp/disk >/dev/null 2>&1 || echo denied")),
        );
        assert_eq!(out, "made\ndenied\n");
    }
}

#[test]
fn process_and_memory_limits_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let root = imgtool_tests::busybox_rootfs(tmp.path());
    let fork_ten = "for n in 1 2 3 4 5 6 7 8 9 10; do sleep 1 & done; wait; echo all-started";
    let out = ran(&root, &spec(fork_ten));
    assert!(out.contains("all-started"), "unlimited: {out}");
    let mut s = spec(fork_ten);
    s.security.pids_limit = Some(5);
    let out = run(&root, &s, Output::Capture).unwrap();
    assert_ne!(out.code, 0, "{}", out.tail);
    assert!(out.tail.contains("can't fork") && !out.tail.contains("all-started"), "{}", out.tail);

    let big = "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null && echo big";
    assert_eq!(ran(&root, &spec(big)), "big\n");
    let mut s = spec(&format!("dd if=/dev/zero of=/dev/null bs=1M count=1 2>/dev/null && echo small; {big}"));
    s.security.memory = Some(32 << 20);
    let out = run(&root, &s, Output::Capture).unwrap();
    assert_eq!(out.code, 137, "killed by the OOM killer: {}", out.tail);
    assert!(out.tail.starts_with("small\n") && !out.tail.contains("big"), "{}", out.tail);

    s.security.memory = Some(1 << 20);
    let err = run(&root, &s, Output::Capture).unwrap_err();
    assert!(err.to_string().contains("below the minimum"), "{err}");
}
