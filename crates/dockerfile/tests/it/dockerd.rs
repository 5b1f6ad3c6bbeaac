//! Every corpus Dockerfile BuildKit can build (the builder inside Debian's dockerd 20.10),
//! built by imgtool and by BuildKit from the same busybox base: the same files and config.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use imgtool_archive::DockerArchiveSource;
use imgtool_core::Image;

use crate::{busybox_base, cases, config_fields, ours, tree, without_runtime_leftovers};

/// Cases dockerd's built-in frontend cannot build: it has no heredocs (and a `# syntax=`
/// line would make it pull a frontend from the internet). buildah and explicit
/// expectations check them.
const NO_BUILDKIT: &[&str] = &["05-heredocs"];

fn ok(c: &mut Command) -> Result<(), String> {
    let out = c.output().unwrap();
    if out.status.success() { Ok(()) } else { Err(imgtool_tests::transcript(&out)) }
}

async fn buildkit(engine: &imgtool_tests::Dockerd, case: &Path, work: &Path, base: &str) -> Result<(Image, std::path::PathBuf), String> {
    let tag = format!("imgtool-case-{}:1", case.file_name().unwrap().to_string_lossy());
    ok(engine
        .docker()
        .env("DOCKER_BUILDKIT", "1")
        .args(["build", "-q", "--network=none", "--build-arg"])
        .arg(format!("BASE={base}"))
        .args(["-t", &tag, "-f"])
        .arg(case.join("Dockerfile"))
        .arg(case))?;
    let out = work.join("buildkit.tar");
    ok(engine.docker().args(["save", &tag, "-o"]).arg(&out))?;
    let image = Image::load(Arc::new(DockerArchiveSource::open(&out).unwrap()), None, None).await.map_err(|e| e.to_string())?;
    let root = work.join("buildkit");
    imgtool_archive::extract_image(&image, &root, imgtool_archive::ExtractOptions { same_owner: true, ..Default::default() })
        .await
        .unwrap();
    Ok((image, root))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_corpus_builds_like_buildkit() {
    imgtool_tests::require("skopeo", "skopeo");
    imgtool_tests::require("runc", "runc");
    let engine = imgtool_tests::Dockerd::start();
    let registry = imgtool_tests::Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = busybox_base(tmp.path()).await;
    // BuildKit takes its base from a registry (the engine treats 127.0.0.1 as insecure).
    let remote = format!("{}/busybox:latest", registry.addr);
    ok(Command::new("skopeo").args(["copy", "-q", "--dest-tls-verify=false", &layout, &format!("docker://{remote}")])).unwrap();
    let mut failures = Vec::new();
    let mut built = 0;
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        if NO_BUILDKIT.contains(&name.as_str()) {
            continue;
        }
        let work = tmp.path().join(&name);
        std::fs::create_dir_all(&work).unwrap();
        let (mine, my_root) = match ours(&case, &work, &layout).await {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{name}: imgtool failed: {e}"));
                continue;
            }
        };
        let (theirs, their_root) = match buildkit(&engine, &case, &work, &remote).await {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{name}: BuildKit failed: {e}"));
                continue;
            }
        };
        built += 1;
        let (a, b) = (tree(&my_root), tree(&their_root));
        let b = without_runtime_leftovers(b, &a);
        if a != b {
            let only_ours: Vec<_> = a.iter().filter(|(k, v)| b.get(*k) != Some(v)).take(10).collect();
            let only_theirs: Vec<_> = b.iter().filter(|(k, v)| a.get(*k) != Some(v)).take(10).collect();
            // Small files that differ, shown whole.
            let show = |root: &Path, k: &str| {
                std::fs::read(root.join(k)).ok().filter(|b| b.len() < 512).map(|b| String::from_utf8_lossy(&b).into_owned())
            };
            let texts: Vec<_> = only_ours.iter().map(|(k, _)| (k, show(&my_root, k), show(&their_root, k))).collect();
            failures
                .push(format!("{name}: filesystems differ\n  imgtool:  {only_ours:?}\n  BuildKit: {only_theirs:?}\n  contents: {texts:?}"));
        }
        let (ca, cb) = (config_fields(&mine), config_fields(&theirs));
        if ca != cb {
            failures.push(format!("{name}: configs differ\n  imgtool:  {ca}\n  BuildKit: {cb}"));
        }
    }
    assert!(built >= 15, "only {built} cases were built by both");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
