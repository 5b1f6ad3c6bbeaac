//! Command-line credentials go to the registry the command names as its target (or the
//! side `--src-creds` / `--dest-creds` names), never to a base image's registry elsewhere.

use std::path::Path;

use imgtool_tests::{Fault, FaultProxy, Registry, RegistryAuth, RegistryConfig, Seen, run_ok, transcript};

use super::imgtool;

/// `carol:theirs`, the login stored for the other registry.
const CAROL: &str = "Basic Y2Fyb2w6dGhlaXJz";

/// A registry on 127.0.0.2 (the fault proxy's foreign host in front of an open registry)
/// that challenges requests without credentials and records what it was sent; an auth
/// file with a login for it; and a base image there.
struct Elsewhere {
    proxy: FaultProxy,
    _reg: Registry,
}

impl Elsewhere {
    fn start(dir: &Path) -> Self {
        let reg = Registry::start();
        run_ok(imgtool(dir).args(["append", "scratch", &format!("docker://{}/base:1", reg.addr), "--contents", "/base=yes"]));
        let proxy = FaultProxy::start(&reg.addr, None);
        proxy.inject(Fault::ForeignChallenge);
        let auth = format!(r#"{{"auths": {{"{}": {{"auth": "Y2Fyb2w6dGhlaXJz"}}}}}}"#, proxy.foreign);
        std::fs::write(dir.join("auth.json"), auth).unwrap();
        Self { proxy, _reg: reg }
    }

    fn base(&self) -> String {
        format!("{}/base:1", self.proxy.foreign)
    }

    /// What the other registry was sent: stored logins only, never alice's.
    fn assert_only_stored_login(&self, what: &str) {
        let seen: Vec<Seen> = self.proxy.foreign_seen();
        assert!(seen.iter().any(|s| s.authorization.as_deref() == Some(CAROL)), "{what}: the stored login was used: {seen:?}");
        let wrong: Vec<&Seen> = seen.iter().filter(|s| s.authorization.as_deref().is_some_and(|a| a != CAROL)).collect();
        assert!(wrong.is_empty(), "{what}: other credentials reached the base image's registry: {wrong:?}");
    }
}

fn cli(dir: &Path) -> std::process::Command {
    let mut c = imgtool(dir);
    c.env("REGISTRY_AUTH_FILE", dir.join("auth.json")).env_remove("IMGTOOL_CREDS").env_remove("XDG_RUNTIME_DIR");
    c
}

/// `--creds` with a Dockerfile whose `FROM` is on another registry: the push target gets
/// them, the base image's registry gets its stored login.
#[test]
fn creds_stay_with_the_push_target() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let target = Registry::start_with(RegistryConfig {
        auth: RegistryAuth::Basic { user: "alice".into(), pass: "s3cret".into() },
        ..Default::default()
    });
    let other = Elsewhere::start(t);
    let ctx = t.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {}\nENV BUILT=1\n", other.base())).unwrap();
    let pushed = format!("{}/app:1", target.addr);
    let out = cli(t).args(["--creds", "alice:s3cret", "build", "-t", &pushed, "--push", "--cache-dir", "cache", "ctx"]).output().unwrap();
    assert!(out.status.success(), "{}", transcript(&out));
    other.assert_only_stored_login("build FROM");

    // The environment variable is the same flag.
    let out = cli(t)
        .env("IMGTOOL_CREDS", "alice:s3cret")
        .args(["copy", &format!("docker://{}", other.base()), &format!("docker://{}/app:2", target.addr)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", transcript(&out));
    other.assert_only_stored_login("IMGTOOL_CREDS copy");
}

/// `copy --src-creds --dest-creds`: each side gets its own; `--creds` goes to the
/// destination only.
#[test]
fn copy_creds_go_to_their_side() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let target = Registry::start_with(RegistryConfig {
        auth: RegistryAuth::Basic { user: "alice".into(), pass: "s3cret".into() },
        ..Default::default()
    });
    let other = Elsewhere::start(t);
    let src = format!("docker://{}", other.base());
    let out = cli(t).args(["--creds", "alice:s3cret", "copy", &src, &format!("docker://{}/c:1", target.addr)]).output().unwrap();
    assert!(out.status.success(), "{}", transcript(&out));
    other.assert_only_stored_login("copy --creds");

    // No stored login this time: --src-creds is what the source gets.
    std::fs::write(t.join("auth.json"), "{}").unwrap();
    let out = cli(t)
        .args(["copy", "--src-creds", "carol:theirs", "--dest-creds", "alice:s3cret", &src, &format!("docker://{}/c:2", target.addr)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", transcript(&out));
    other.assert_only_stored_login("copy --src-creds");

    let out = cli(t).args(["copy", "--dest-creds", "alice:s3cret", &src, "oci:out:x"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--dest-creds: the destination is not a registry") && !err.contains("s3cret"), "{err}");
}
