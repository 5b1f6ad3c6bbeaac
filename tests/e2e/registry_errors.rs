//! Registry errors that say what to do, at once: a plain-HTTP registry reached over HTTPS,
//! a repository given to `catalog`.

use std::time::{Duration, Instant};

use imgtool_tests::{Registry, run_ok, transcript};

use super::imgtool;

/// This machine's name, when it resolves to loopback: a registry there that is not called
/// a loopback address is reached over HTTPS only, as any remote one.
fn host_name() -> Option<String> {
    let name = run_ok(&mut std::process::Command::new("hostname")).trim().to_string();
    let hosts = run_ok(std::process::Command::new("getent").args(["hosts", &name]));
    hosts.starts_with("127.").then_some(name)
}

#[test]
fn plain_http_and_catalog_errors_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let reg = Registry::start();
    let out = imgtool(t).args(["catalog", &format!("{}/some/repo", reg.addr)]).output().unwrap();
    insta::assert_snapshot!("catalog_of_a_repository", transcript(&out).replace(&reg.addr, "[registry]"));

    let Some(name) = host_name() else { return };
    let port = reg.addr.rsplit(':').next().unwrap();
    let remote = format!("{name}:{port}");
    let started = Instant::now();
    let out = imgtool(t).args(["tags", &format!("{remote}/x")]).output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "an error no retry mends is not retried");
    insta::assert_snapshot!("plain_http_registry", transcript(&out).replace(&remote, "[host:port]"));
    // Named insecure, it is reached over plain HTTP.
    let out = imgtool(t).args(["catalog", "--insecure-registry", &remote, &remote]).output().unwrap();
    assert!(out.status.success(), "{}", transcript(&out));
}
