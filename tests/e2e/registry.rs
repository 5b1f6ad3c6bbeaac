//! The registry commands and logins, as a user runs them.

use imgtool_tests::{Registry, run_ok, transcript};

use super::{example, imgtool};

/// The registry commands, as a user would run them, against a registry with Basic auth.
#[test]
fn registry_commands_with_login() {
    use imgtool_tests::{RegistryAuth, RegistryConfig};
    let reg = Registry::start_with(RegistryConfig {
        auth: RegistryAuth::Basic { user: "alice".into(), pass: "s3cret".into() },
        ..Default::default()
    });
    let dir = example();
    let auth = dir.path().join("auth.json");
    let cli = |args: &[&str]| {
        let mut c = imgtool(dir.path());
        c.env("REGISTRY_AUTH_FILE", &auth).args(args);
        c
    };
    run_ok(&mut cli(&["pipe", "-q", "pipeline.toml"]));
    let r = format!("{}/team/example", reg.addr);

    let out = cli(&["push", "oci:out/layout:latest", &format!("{r}:v1")]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("imgtool login"), "{}", transcript(&out));

    let mut login = cli(&["login", &reg.addr, "-u", "alice", "--password-stdin"]);
    login.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = login.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"wrong\n").unwrap();
    assert!(!child.wait_with_output().unwrap().status.success(), "a wrong password is refused");
    assert!(!auth.exists(), "and nothing is stored");
    let mut child = login.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", transcript(&out));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("s3cret"));

    let pushed = run_ok(&mut cli(&["--json", "push", "oci:out/layout:latest", &format!("{r}:v1")]));
    let digest = serde_json::from_str::<serde_json::Value>(&pushed).unwrap()["digest"].as_str().unwrap().to_string();
    run_ok(&mut cli(&["tag", &format!("{r}:v1"), "v2"]));
    assert_eq!(run_ok(&mut cli(&["tags", &r])), "v1\nv2\n");
    assert_eq!(run_ok(&mut cli(&["digest", &format!("docker://{r}:v2")])).trim(), digest);
    assert_eq!(run_ok(&mut cli(&["catalog", &reg.addr])).trim(), "team/example");
    let config: serde_json::Value = serde_json::from_str(&run_ok(&mut cli(&["config", &format!("{r}:v2")]))).unwrap();
    assert!(config["config"]["Env"].as_array().unwrap().contains(&serde_json::json!("FOO=BAR")));
    let manifest = run_ok(&mut cli(&["manifest", &format!("{r}:v2")]));
    assert_eq!(
        format!("sha256:{}", sha256_hex(manifest.trim_end_matches('\n').as_bytes())),
        digest,
        "the manifest is printed byte for byte"
    );

    // imgtool inspect and skopeo agree on what we pushed.
    let ours: serde_json::Value = serde_json::from_str(&run_ok(&mut cli(&["inspect", "--json", &format!("docker://{r}:v1")]))).unwrap();
    let skopeo: serde_json::Value = serde_json::from_str(&run_ok(std::process::Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--creds",
        "alice:s3cret",
        &format!("docker://{r}:v1"),
    ])))
    .unwrap();
    assert_eq!(ours["digest"], skopeo["Digest"]);
    assert_eq!(ours["manifest"]["layers"].as_array().unwrap().len(), skopeo["Layers"].as_array().unwrap().len());

    // Pull what skopeo pushed, and skopeo pulls what we pushed.
    run_ok(std::process::Command::new("skopeo").current_dir(dir.path()).args([
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:s3cret",
        "docker-archive:out/example-docker-image.tar",
        &format!("docker://{r}:from-skopeo"),
    ]));
    run_ok(&mut cli(&["pull", &format!("{r}:from-skopeo"), "-o", "oci:pulled:x"]));
    run_ok(&mut cli(&["inspect", "oci:pulled:x"]));
    run_ok(std::process::Command::new("skopeo").current_dir(dir.path()).args([
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        "alice:s3cret",
        &format!("docker://{r}:v1"),
        "oci:by-skopeo:x",
    ]));

    // pull without -o keeps the image in the local store, under its full name.
    run_ok(&mut cli(&["pull", "-q", &format!("{r}:v1")]));
    assert!(run_ok(&mut cli(&["images"])).contains(&format!("{r}:v1  sha256:")));
    run_ok(&mut cli(&["pull", &format!("{r}:v1"), "-o", &format!("docker-archive:example.tar:{r}:v1")]));
    let first = std::fs::read(dir.path().join("example.tar")).unwrap();
    run_ok(&mut cli(&["pull", &format!("{r}:v1"), "-o", &format!("docker-archive:example.tar:{r}:v1")]));
    assert_eq!(std::fs::read(dir.path().join("example.tar")).unwrap(), first, "-o names a file to replace");

    // An archive pulled to a bare file keeps the image's name, as docker save writes it.
    run_ok(&mut cli(&["pull", &format!("{r}:v1"), "-o", "named.tar"]));
    let manifest = run_ok(std::process::Command::new("tar").current_dir(dir.path()).args(["xOf", "named.tar", "manifest.json"]));
    assert!(manifest.contains(&format!("\"{r}:v1\"")), "{manifest}");

    // A registry deletes manifests: every tag on one goes, and they are named first.
    let out = cli(&["delete", "--dry-run", &format!("{r}:v2")]).output().unwrap();
    insta::with_settings!({filters => vec![(r"sha256:[0-9a-f]{64}", "sha256:[digest]")]}, {
        insta::assert_snapshot!("delete_dry_run_names_the_tags", transcript(&out).replace(&reg.addr, "[registry]"));
    });
    assert_eq!(run_ok(&mut cli(&["tags", &r])).lines().count(), 3, "a dry run deletes nothing");
    run_ok(&mut cli(&["delete", &format!("{r}:v2")]));
    assert_eq!(run_ok(&mut cli(&["tags", &r])), "from-skopeo\n");
    run_ok(&mut cli(&["logout", &reg.addr]));
    let out = cli(&["tags", &r]).output().unwrap();
    assert!(!out.status.success(), "logged out");
}

pub(super) fn sha256_hex(data: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            std::io::Write::write_all(&mut c.stdin.take().unwrap(), data)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

/// Credentials from a docker credential helper named in the auth file.
#[test]
fn credential_helpers_are_asked() {
    use imgtool_tests::{RegistryAuth, RegistryConfig};
    use std::os::unix::fs::PermissionsExt;
    let reg = Registry::start_with(RegistryConfig {
        auth: RegistryAuth::Basic { user: "carol".into(), pass: "from-helper".into() },
        ..Default::default()
    });
    let dir = example();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-imgtooltest");
    std::fs::write(&helper, "#!/bin/sh\nread server\necho \"$server\" >> \"$(dirname \"$0\")/asked\"\necho '{\"ServerURL\":\"'$server'\",\"Username\":\"carol\",\"Secret\":\"from-helper\"}'\n").unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let auth = dir.path().join("auth.json");
    std::fs::write(&auth, format!(r#"{{"credHelpers": {{"{}": "imgtooltest"}}}}"#, reg.addr)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    run_ok(imgtool(dir.path()).args(["pipe", "-q", "pipeline.toml"]));
    run_ok(imgtool(dir.path()).env("PATH", &path).env("REGISTRY_AUTH_FILE", &auth).args([
        "push",
        "-q",
        "oci:out/layout:latest",
        &format!("{}/helped:v1", reg.addr),
    ]));
    assert_eq!(std::fs::read_to_string(bin.join("asked")).unwrap().trim(), reg.addr);
}
