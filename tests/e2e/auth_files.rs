//! Credentials where skopeo and podman keep them, `--authfile` as skopeo takes it, and a
//! failed login that says who refused whom.

use std::path::Path;

use imgtool_tests::{Registry, RegistryAuth, RegistryConfig, run_ok, transcript};

use super::imgtool;

/// imgtool with a home of its own and none of the auth-file variables set.
fn cli(home: &Path, args: &[&str]) -> std::process::Command {
    let mut c = imgtool(home);
    c.env("HOME", home)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("DOCKER_CONFIG")
        .args(args);
    c
}

#[test]
fn credentials_are_found_where_skopeo_keeps_them() {
    let reg = Registry::start_with(RegistryConfig {
        auth: RegistryAuth::Basic { user: "alice".into(), pass: "s3cret".into() },
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let repo = format!("{}/team/app", reg.addr);
    run_ok(&mut cli(home, &["--creds", "alice:s3cret", "append", "-q", "scratch", &repo, "--contents", "/a=1"]));
    assert!(!cli(home, &["tags", &repo]).output().unwrap().status.success(), "no stored login yet");

    // skopeo login writes $XDG_RUNTIME_DIR/containers/auth.json: imgtool reads it there...
    let run = home.join("run");
    std::fs::create_dir_all(&run).unwrap();
    run_ok(std::process::Command::new("skopeo").env("XDG_RUNTIME_DIR", &run).env("HOME", home).args([
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        "s3cret",
        &reg.addr,
    ]));
    let written = run.join("containers/auth.json");
    assert!(written.is_file());
    assert_eq!(run_ok(cli(home, &["tags", &repo]).env("XDG_RUNTIME_DIR", &run)), "latest\n");
    // ...and in ~/.config/containers/auth.json.
    std::fs::create_dir_all(home.join(".config/containers")).unwrap();
    std::fs::copy(&written, home.join(".config/containers/auth.json")).unwrap();
    assert_eq!(run_ok(&mut cli(home, &["tags", &repo])), "latest\n");
    std::fs::remove_file(home.join(".config/containers/auth.json")).unwrap();

    // --authfile: the one file read, and the one login writes.
    let mut login = cli(home, &["--authfile", "mine.json", "login", &reg.addr, "-u", "alice", "--password-stdin"]);
    login.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = login.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"s3cret\n").unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert!(home.join("mine.json").is_file() && !home.join(".docker/config.json").exists());
    assert_eq!(run_ok(&mut cli(home, &["--authfile", "mine.json", "tags", &repo])), "latest\n");
    assert!(!cli(home, &["tags", &repo]).output().unwrap().status.success(), "only with --authfile");

    // On a terminal (script(1) gives it one), login asks for the password and does not echo it.
    let line = format!("{} --authfile tty.json login {} -u alice", env!("CARGO_BIN_EXE_imgtool"), reg.addr);
    let mut tty = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(home)
        .env("HOME", home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = tty.stdin.take().unwrap();
    // After the prompt is up: what a terminal holds before it is read as the password too.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    std::io::Write::write_all(&mut stdin, b"s3cret\n").unwrap();
    let out = tty.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("Password for alice@") && !shown.contains("s3cret"), "{shown}");
    assert!(home.join("tty.json").is_file(), "{shown}");

    // A refused login names the registry and the user, and suggests nothing circular.
    let out = cli(home, &["login", &reg.addr, "-u", "alice", "-p", "wrong"]).output().unwrap();
    insta::assert_snapshot!("login_refused", transcript(&out).replace(&reg.addr, "[registry]"));
}
