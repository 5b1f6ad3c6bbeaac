//! The sandbox on a real busybox root with runc.
#![allow(clippy::unwrap_used)]

mod security;

use imgtool_sandbox::{Bind, Output, RunSpec, run};

fn spec(script: &str) -> RunSpec {
    RunSpec { args: vec!["/bin/sh".into(), "-c".into(), script.into()], ..Default::default() }
}

#[test]
fn runs_isolated_with_the_image_env_user_and_workdir() {
    let tmp = tempfile::tempdir().unwrap();
    let root = imgtool_tests::busybox_rootfs(tmp.path());
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
    let mut s =
        spec("echo pid=$$ host=$(hostname) user=$(id -u):$(id -g) pwd=$PWD home=$HOME v=$V; ls /sys/class/net; echo made > made.txt");
    s.env = vec!["V=1".into()];
    s.cwd = "/work".into();
    s.user = "app".into();
    std::fs::create_dir_all(root.join("work")).unwrap();
    std::os::unix::fs::chown(root.join("work"), Some(1000), Some(1000)).unwrap();
    let out = run(&root, &s, Output::Capture).unwrap();
    assert_eq!(out.code, 0, "{}", out.tail);
    assert!(out.tail.contains("pid=1 host=imgtool user=1000:1000 pwd=/work home=/home/app v=1"), "{}", out.tail);
    assert_eq!(out.tail.lines().nth(1), Some("lo"), "only a loopback interface: {}", out.tail);
    // The command wrote into the root it was given.
    assert_eq!(std::fs::read_to_string(root.join("work/made.txt")).unwrap(), "made\n");
}

#[test]
fn exit_codes_binds_and_bad_users() {
    let tmp = tempfile::tempdir().unwrap();
    let root = imgtool_tests::busybox_rootfs(tmp.path());
    let out = run(&root, &spec("echo failing >&2; exit 7"), Output::Capture).unwrap();
    assert_eq!(out.code, 7);
    assert!(out.tail.contains("failing"));
    let host = tmp.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in.txt"), "from the host").unwrap();
    let mut s = spec("cat /mnt/in.txt; touch /mnt/x 2>/dev/null || echo read-only");
    s.binds = vec![Bind { host: host.clone(), target: "/mnt".into(), readonly: true }];
    let out = run(&root, &s, Output::Capture).unwrap();
    assert_eq!(out.tail, "from the hostread-only\n");
    let mut s = spec("true");
    s.user = "nobody".into();
    let err = run(&root, &s, Output::Capture).unwrap_err().to_string();
    assert!(err.contains("nobody") && err.contains("/etc/passwd"), "{err}");
}
