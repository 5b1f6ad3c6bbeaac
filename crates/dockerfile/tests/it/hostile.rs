//! Hostile Dockerfiles, contexts and base images: bounded work, clear errors naming the
//! line, and nothing read from outside the context.

use std::os::unix::fs::symlink;

use imgtool_tests::hostile;

use super::{build_text, busybox_base};

async fn error_of(work: &std::path::Path, base: &str, df: &str) -> String {
    build_text(work, base, df, &[("a", "a")], |_| {}).await.map(|_| ()).unwrap_err()
}

#[tokio::test(flavor = "multi_thread")]
async fn substitution_is_bounded_with_the_line_named() {
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_base(tmp.path()).await;
    let deep = format!("ARG BASE\nFROM ${{BASE}}\nENV A={}x{}\n", "${X:-".repeat(100_000), "}".repeat(100_000));
    let err = error_of(&tmp.path().join("deep"), &base, &deep).await;
    assert!(err.contains("Dockerfile:3") && err.contains("nested more than 64"), "{err}");
    assert!(err.len() < 1000, "the error repeats the whole word: {} bytes", err.len());

    let mut chain = format!("ARG BASE\nFROM ${{BASE}}\nARG A0={}\n", "x".repeat(1024));
    for n in 1..40 {
        chain.push_str(&format!("ARG A{n}=${{A{}}}${{A{}}}\n", n - 1, n - 1));
    }
    let err = error_of(&tmp.path().join("chain"), &base, &chain).await;
    assert!(err.contains("Dockerfile:14") && err.contains("longer than 1 MiB"), "{err}");

    // Many words just under the limit each: the build's total budget stops them.
    let mut wide = format!("ARG BASE\nFROM ${{BASE}}\nARG B={}\n", "y".repeat(1000 << 10));
    for n in 0..100 {
        wide.push_str(&format!("ARG C{n}=$B\n"));
    }
    let err = error_of(&tmp.path().join("wide"), &base, &wide).await;
    assert!(err.contains("more than 64 MiB"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn base_image_triggers_follow_the_onbuild_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let bb = hostile::layer_of_tree(&imgtool_tests::busybox_rootfs(&tmp.path().join("bb")));
    let layout = tmp.path().join("bases");
    let cases: &[(&str, serde_json::Value, &str)] = &[
        ("from", serde_json::json!(["FROM scratch"]), "ONBUILD cannot trigger FROM"),
        ("onbuild", serde_json::json!(["ONBUILD RUN true"]), "ONBUILD cannot trigger ONBUILD"),
        ("several", serde_json::json!(["RUN true\nRUN false"]), "exactly one instruction"),
        ("garbage", serde_json::json!(["FROOM x"]), "unknown instruction"),
    ];
    for (tag, triggers, want) in cases {
        hostile::add_to_layout_with(&layout, tag, std::slice::from_ref(&bb), serde_json::json!({"OnBuild": triggers}));
        let df = format!("FROM oci:{}:{tag}\nRUN true\n", layout.display());
        let err = error_of(&tmp.path().join(tag), "", &df).await;
        assert!(err.contains("Dockerfile:1") && err.contains(want), "{tag}: {err}");
    }
    hostile::add_to_layout_with(&layout, "fine", std::slice::from_ref(&bb), serde_json::json!({"OnBuild": ["RUN echo ran > /triggered"]}));
    let (_, root) = build_text(&tmp.path().join("fine"), "", &format!("FROM oci:{}:fine\n", layout.display()), &[], |_| {}).await.unwrap();
    assert_eq!(std::fs::read_to_string(root.join("triggered")).unwrap(), "ran\n");
}

/// Globs in a hostile context: a link to `/dev/zero` or to a host tar is copied as the
/// link it is (never read), a dangling link is copied too (as BuildKit does), and a link to
/// an ignored file leads nowhere (BuildKit never sends ignored files).
#[tokio::test(flavor = "multi_thread")]
async fn context_globs_read_only_regular_files_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_base(tmp.path()).await;
    let host_tar = tmp.path().join("host.tar");
    std::fs::write(&host_tar, hostile::layer(&[hostile::file("HOSTTAR", 0o644, "HOST TAR CONTENT")])).unwrap();
    let work = tmp.path().join("w");
    let ctx = work.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    symlink("/dev/zero", ctx.join("zero.txt")).unwrap();
    symlink("missing", ctx.join("dangling.txt")).unwrap();
    symlink(&host_tar, ctx.join("link.tar")).unwrap();
    symlink("secret.cfg", ctx.join("ign-link")).unwrap();
    std::fs::write(ctx.join("secret.cfg"), "IGNORED SECRET").unwrap();
    std::fs::write(ctx.join(".dockerignore"), "secret.cfg\n").unwrap();
    std::fs::write(ctx.join("a.txt"), "a").unwrap();
    let df = "ARG BASE\nFROM ${BASE}\nCOPY *.txt /t/\nADD *.tar /x/\nCOPY ign* /i/\n";
    let (_, root) = build_text(&work, &base, df, &[], |_| {}).await.unwrap();
    for link in ["t/zero.txt", "t/dangling.txt", "x/link.tar", "i/ign-link"] {
        assert!(std::fs::symlink_metadata(root.join(link)).unwrap().file_type().is_symlink(), "{link} should be a link");
    }
    assert_eq!(std::fs::read_to_string(root.join("t/a.txt")).unwrap(), "a");
    assert!(!root.join("x/HOSTTAR").exists(), "the host tar was extracted into the image");
    for e in walkdir::WalkDir::new(&root).follow_links(false) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let data = std::fs::read(e.path()).unwrap();
            for bad in [&b"IGNORED SECRET"[..], b"HOST TAR CONTENT"] {
                assert!(!data.windows(bad.len()).any(|w| w == bad), "{} holds host or ignored content", e.path().display());
            }
        }
    }
    // Named directly, a link to an ignored file is missing, as in BuildKit.
    let err = build_text(&tmp.path().join("n"), &base, "ARG BASE\nFROM ${BASE}\nCOPY ign-link /y\n", &[], |o| o.context = ctx.clone())
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(err.contains("no such file"), "{err}");
}

/// A context's Dockerfile or .dockerignore that is a link (to a host secret, to
/// /dev/zero) is refused without being read; a FIFO never blocks.
#[test]
fn context_files_are_read_only_when_regular() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = tmp.path().join("shadow");
    std::fs::write(&secret, "root:$6$SECRETHASH").unwrap();
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    symlink(&secret, ctx.join("Dockerfile")).unwrap();
    symlink("/dev/zero", ctx.join(".dockerignore")).unwrap();
    for name in ["Dockerfile", ".dockerignore"] {
        let err = imgtool_dockerfile::read_context_file(&ctx.join(name)).unwrap_err().to_string();
        assert!(err.contains("symlink") && !err.contains("SECRETHASH"), "{name}: {err}");
    }
    std::fs::remove_file(ctx.join("Dockerfile")).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(ctx.join("Dockerfile")).status().unwrap().success());
    let err = imgtool_dockerfile::read_context_file(&ctx.join("Dockerfile")).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
    assert!(imgtool_dockerfile::read_context_file(&ctx.join("missing")).unwrap().is_none());
}
