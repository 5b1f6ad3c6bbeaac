//! Every corpus Dockerfile BuildKit can build (the builder inside Debian's dockerd 20.10),
//! built by imgtool and by BuildKit from the same busybox base: the same files and config.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use imgtool_archive::DockerArchiveSource;
use imgtool_core::Image;

use crate::{busybox_base, cases, differences, ours};

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
        failures.extend(differences(&name, "BuildKit", (&mine, &my_root), (&theirs, &their_root), &[]));
    }
    assert!(built >= 15, "only {built} cases were built by both");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
