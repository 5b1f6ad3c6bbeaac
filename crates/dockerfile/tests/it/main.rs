//! imgtool-dockerfile: the parser over the corpus, and every corpus Dockerfile built by
//! imgtool and by buildah from the same busybox base, with equal results.
#![allow(clippy::unwrap_used)]

mod buildkit;
mod dockerd;
mod hostile;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use async_trait::async_trait;
use imgtool_archive::{DockerArchiveSource, LayoutSink, OciLayoutSource, Owner, PathLayer};
use imgtool_core::{Compression, CopyOptions, Flavor, Image, ImageSink, Platform, copy_image};
use imgtool_dockerfile::{BuildOptions, Images, build, parse};

fn corpus() -> PathBuf {
    imgtool_tests::workspace().join("fixtures/dockerfiles")
}

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(corpus()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.join("Dockerfile").is_file()).collect();
    v.sort();
    v
}

#[test]
fn the_corpus_parses_as_snapshotted() {
    let mut all = BTreeMap::new();
    for dir in cases() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
        all.insert(name, parse(&text).unwrap());
    }
    assert!(all.len() >= 15, "the corpus has {} Dockerfiles", all.len());
    insta::assert_json_snapshot!("corpus", all);
}

/// `oci:DIR:TAG` images, as the test base is stored.
struct Layouts;

#[async_trait]
impl Images for Layouts {
    async fn load(&self, reference: &str, platform: Option<&Platform>) -> Result<Image, imgtool_dockerfile::BoxError> {
        let rest = reference.strip_prefix("oci:").ok_or_else(|| format!("{reference}: only oci:DIR:TAG here"))?;
        let (dir, tag) = rest.rsplit_once(':').ok_or("no tag")?;
        let src = OciLayoutSource::open_dir(Path::new(dir))?;
        Ok(Image::load(Arc::new(src), Some(tag), platform).await?)
    }
}

/// A busybox image in an OCI layout; returns its `oci:DIR:bb` reference.
async fn busybox_base(dir: &Path) -> String {
    let root = imgtool_tests::busybox_rootfs(dir);
    let mut layer = PathLayer::new(&root, "/");
    layer.owner = Owner::Preserve;
    let image = Image::scratch(&Platform::host(), Flavor::Oci).add_layers(&layer, dir, 0, Compression::Gzip).await.unwrap();
    let layout = dir.join("base");
    let sink = LayoutSink::oci_dir(&layout).unwrap();
    copy_image(&image, &sink, &CopyOptions { tags: vec!["bb".into()], ..Default::default() }).await.unwrap();
    Box::new(sink).finish().await.unwrap();
    format!("oci:{}:bb", layout.display())
}

fn options(context: &Path, spool: &Path, base: &str) -> BuildOptions {
    let mut o = BuildOptions::new(context, spool);
    o.build_args.insert("BASE".into(), base.into());
    o.cache_dir = Some(spool.join("cache"));
    o
}

/// Paths with type, mode, owners and content or link target.
fn tree(root: &Path) -> BTreeMap<String, String> {
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap())
        .map(|e| {
            let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            let what = if m.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(e.path()).unwrap().display())
            } else if m.is_dir() {
                "dir".to_string()
            } else {
                format!("file {}", imgtool_core::Digest::sha256_of(&std::fs::read(e.path()).unwrap()))
            };
            (rel, format!("{what} {:o} {}:{}", m.mode() & 0o7777, m.uid(), m.gid()))
        })
        .collect()
}

/// What buildah's runtime leaves behind in a RUN's layer, when the image had none of it.
fn without_runtime_leftovers(mut t: BTreeMap<String, String>, ours: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    for p in ["dev", "proc", "sys", "run", "etc/hosts", "etc/hostname", "etc/resolv.conf"] {
        if !ours.contains_key(p) {
            t.retain(|k, _| k != p && !k.starts_with(&format!("{p}/")));
        }
    }
    t
}

/// The config fields the issue compares, buildah's own label left out.
fn config_fields(image: &Image) -> serde_json::Value {
    let c = image.config().container().cloned().unwrap_or_default();
    let mut out = serde_json::Map::new();
    for k in ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels", "StopSignal", "Healthcheck", "OnBuild"]
    {
        let mut v = c.get(k).cloned().unwrap_or(serde_json::Value::Null);
        if k == "Labels" {
            if let Some(m) = v.as_object_mut() {
                m.remove("io.buildah.version");
            }
        }
        let empty =
            v.is_null() || v.as_str() == Some("") || v.as_array().is_some_and(Vec::is_empty) || v.as_object().is_some_and(|m| m.is_empty());
        if !empty {
            out.insert(k.into(), v);
        }
    }
    serde_json::Value::Object(out)
}

fn buildah(store: &Path) -> Command {
    let mut c = Command::new("buildah");
    c.arg("--root").arg(store.join("root")).arg("--runroot").arg(store.join("run")).args(["--storage-driver", "vfs"]);
    c
}

/// Cases buildah 1.28 (Debian 12) cannot build: it predates heredocs. They are checked
/// against explicit expectations instead.
const NO_BUILDAH: &[&str] = &["05-heredocs"];

/// Paths where buildah differs from Docker, left out of the comparison with buildah (the
/// comparison with BuildKit, in dockerd.rs, checks them): `id` run as a user with member
/// groups shows the primary group among the supplementary ones under buildah only.
const BUILDAH_DIFFERS: &[(&str, &str)] = &[("07-users", "home/app/id.txt")];

async fn ours(case: &Path, work: &Path, base: &str) -> Result<(Image, PathBuf), String> {
    let text = std::fs::read_to_string(case.join("Dockerfile")).unwrap();
    let df = parse(&text).unwrap();
    let spool = work.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let image = build(&df, &Layouts, &options(case, &spool, base)).await.map_err(|e| e.to_string())?;
    let root = work.join("ours");
    imgtool_archive::extract_image(&image, &root, imgtool_archive::ExtractOptions { same_owner: true, ..Default::default() })
        .await
        .unwrap();
    Ok((image, root))
}

async fn theirs(case: &Path, work: &Path, base: &str) -> Result<(Image, PathBuf), String> {
    let store = work.join("buildah");
    let tag = "localhost/imgtool-case:latest";
    let ok = |c: &mut Command| {
        let mut out = c.output().unwrap();
        // runc under buildah sometimes fails to seal its memfd copy under load ("Device or
        // resource busy"): the reference's own transient, so its step is tried once more.
        if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("sealing memfd copy") {
            out = c.output().unwrap();
        }
        if out.status.success() { Ok(()) } else { Err(imgtool_tests::transcript(&out)) }
    };
    ok(buildah(&store)
        .args(["bud", "--isolation", "chroot", "--format", "docker", "--build-arg"])
        .arg(format!("BASE={base}"))
        .args(["-t", tag, "-f"])
        .arg(case.join("Dockerfile"))
        .arg(case))?;
    let out = work.join("buildah.tar");
    ok(buildah(&store).args(["push", tag]).arg(format!("docker-archive:{}:{tag}", out.display())))?;
    let image = Image::load(Arc::new(DockerArchiveSource::open(&out).unwrap()), None, None).await.unwrap();
    let root = work.join("theirs");
    imgtool_archive::extract_image(&image, &root, imgtool_archive::ExtractOptions { same_owner: true, ..Default::default() })
        .await
        .unwrap();
    Ok((image, root))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_corpus_builds_like_buildah() {
    imgtool_tests::require("buildah", "buildah");
    imgtool_tests::require("runc", "runc");
    let tmp = tempfile::tempdir().unwrap();
    // buildah turns an oci: path into an image name, which must be lower case.
    let base_dir = tempfile::Builder::new().prefix(&format!("imgtool-base-{}", std::process::id())).rand_bytes(0).tempdir().unwrap();
    let base = busybox_base(base_dir.path()).await;
    let mut failures = Vec::new();
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        if NO_BUILDAH.contains(&name.as_str()) {
            continue;
        }
        let work = tmp.path().join(&name);
        std::fs::create_dir_all(&work).unwrap();
        let (mine, my_root) = match ours(&case, &work, &base).await {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{name}: imgtool failed: {e}"));
                continue;
            }
        };
        let (their, their_root) = match theirs(&case, &work, &base).await {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{name}: buildah failed: {e}"));
                continue;
            }
        };
        let skip: Vec<&str> = BUILDAH_DIFFERS.iter().filter(|(case, _)| *case == name).map(|(_, path)| *path).collect();
        failures.extend(differences(&name, "buildah", (&mine, &my_root), (&their, &their_root), &skip));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What differs between imgtool's build of case `name` and a reference builder's (`who`):
/// files (the reference's runtime leftovers and the paths in `skip` left out; small ones
/// that differ shown whole) and config fields.
fn differences(
    name: &str,
    who: &str,
    (mine, my_root): (&Image, &Path),
    (theirs, their_root): (&Image, &Path),
    skip: &[&str],
) -> Vec<String> {
    let mut out = Vec::new();
    let (mut a, b) = (tree(my_root), tree(their_root));
    let mut b = without_runtime_leftovers(b, &a);
    for path in skip {
        a.remove(*path);
        b.remove(*path);
    }
    if a != b {
        let only_ours: Vec<_> = a.iter().filter(|(k, v)| b.get(*k) != Some(v)).take(10).collect();
        let only_theirs: Vec<_> = b.iter().filter(|(k, v)| a.get(*k) != Some(v)).take(10).collect();
        let show = |root: &Path, k: &str| {
            std::fs::read(root.join(k)).ok().filter(|b| b.len() < 512).map(|b| String::from_utf8_lossy(&b).into_owned())
        };
        let texts: Vec<_> = only_ours.iter().map(|(k, _)| (k, show(my_root, k), show(their_root, k))).collect();
        out.push(format!("{name}: filesystems differ\n  imgtool: {only_ours:?}\n  {who}: {only_theirs:?}\n  contents: {texts:?}"));
    }
    let (ca, cb) = (config_fields(mine), config_fields(theirs));
    if ca != cb {
        out.push(format!("{name}: configs differ\n  imgtool: {ca}\n  {who}: {cb}"));
    }
    out
}

/// Build `dockerfile` (text) with `files` as its context; the image and its filesystem.
async fn build_text(
    work: &Path,
    base: &str,
    dockerfile: &str,
    files: &[(&str, &str)],
    edit: impl FnOnce(&mut BuildOptions),
) -> Result<(Image, PathBuf), String> {
    let ctx = work.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    for (name, text) in files {
        std::fs::write(ctx.join(name), text).unwrap();
    }
    let spool = work.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let mut opts = options(&ctx, &spool, base);
    opts.cache_dir = Some(work.join("cache"));
    edit(&mut opts);
    let df = parse(dockerfile).map_err(|e| e.to_string())?;
    let image = build(&df, &Layouts, &opts).await.map_err(|e| imgtool_core::error_chain(&e))?;
    let root = tempfile::tempdir_in(work).unwrap().keep();
    imgtool_archive::extract_image(&image, &root, imgtool_archive::ExtractOptions { same_owner: true, ..Default::default() })
        .await
        .unwrap();
    Ok((image, root))
}

#[tokio::test(flavor = "multi_thread")]
async fn heredocs_and_docker_semantics_buildah_lacks() {
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_base(tmp.path()).await;
    let case = corpus().join("05-heredocs");
    let (_, root) = ours(&case, tmp.path(), &base).await.unwrap();
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    assert_eq!(read("hd/script.txt"), "script from a heredoc\n");
    assert_eq!(read("hd/cat.txt"), "line one\nline two\ndone\n");
    assert_eq!(read("hd/copied.txt"), "copied by heredoc\n");
    assert_eq!(read("hd/literal.txt"), "not expanded: $WHO\n");
    assert_eq!(read("hd/first"), "first body\n");
    assert_eq!(read("hd/second"), "second body\n");

    // SHELL applies to shell-form CMD and ENTRYPOINT too, as Docker documents.
    let (image, _) = build_text(
        &tmp.path().join("shell"),
        &base,
        "ARG BASE\nFROM ${BASE}\nSHELL [\"/bin/busybox\", \"sh\", \"-c\"]\nCMD echo hi\n",
        &[],
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(image.config().container().unwrap()["Cmd"], serde_json::json!(["/bin/busybox", "sh", "-c", "echo hi"]));

    // RUN --network: none leaves only loopback.
    let (_, root) = build_text(
        &tmp.path().join("net"),
        &base,
        "ARG BASE\nFROM ${BASE}\nRUN --network=none ls /sys/class/net > /net.txt\n",
        &[],
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read_to_string(root.join("net.txt")).unwrap(), "lo\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_skips_unchanged_steps_and_redoes_those_after_a_changed_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_base(tmp.path()).await;
    // Each RUN writes a fresh random value: a step that ran again cannot give the same layer.
    let df = "ARG BASE\nFROM ${BASE}\nRUN cat /proc/sys/kernel/random/uuid > /first\nCOPY f.txt /f.txt\nRUN cat /proc/sys/kernel/random/uuid > /second\n";
    let work = tmp.path().join("w");
    let layers = |i: &Image| i.layers().iter().map(|l| l.descriptor.digest.to_string()).collect::<Vec<_>>();
    let (one, _) = build_text(&work, &base, df, &[("f.txt", "v1")], |_| {}).await.unwrap();
    let (two, _) = build_text(&work, &base, df, &[("f.txt", "v1")], |_| {}).await.unwrap();
    assert_eq!(two.digest(), one.digest(), "an unchanged rebuild runs nothing");
    let (fresh, _) = build_text(&work, &base, df, &[("f.txt", "v1")], |o| o.no_cache = true).await.unwrap();
    assert_ne!(layers(&fresh)[1], layers(&one)[1], "--no-cache runs the RUN again");
    let (changed, root) = build_text(&work, &base, df, &[("f.txt", "v2")], |_| {}).await.unwrap();
    let (a, b) = (layers(&fresh), layers(&changed));
    assert_eq!(b[1], a[1], "the step before the changed COPY is reused");
    assert_ne!(b[2], a[2], "the COPY is redone");
    assert_ne!(b[3], a[3], "and every step after it");
    assert_eq!(std::fs::read_to_string(root.join("f.txt")).unwrap(), "v2");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_error_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_base(tmp.path()).await;
    let cases: &[(&str, &[&str])] = &[
        ("ARG BASE\nFROM ${BASE}\nFROOM x\n", &["Dockerfile:3:1", "unknown instruction \"FROOM\""]),
        ("ARG BASE\nFROM ${BASE}\nENV A=${B\n", &["Dockerfile:3", "ENV", "not closed"]),
        ("ARG BASE\nFROM ${BASE}\nENV A=${B:?required}\n", &["Dockerfile:3", "B: required"]),
        (
            "ARG BASE\nFROM ${BASE}\nCOPY missing.txt /\n",
            &["Dockerfile:3:1: COPY", "missing.txt: no such file or directory in the build context"],
        ),
        ("ARG BASE\nFROM ${BASE}\nCOPY ../outside /\n", &["Dockerfile:3", "outside the build context"]),
        ("ARG BASE\nFROM ${BASE}\nCOPY a b /not-a-dir\n", &["Dockerfile:3", "must be a directory ending in /"]),
        ("ARG BASE\nFROM ${BASE}\nRUN echo boom >&2; exit 3\n", &["Dockerfile:3", "exit code 3", "boom"]),
        ("ARG BASE\nFROM ${BASE}\nRUN --mount=type=cache,target=/x true\n", &["Dockerfile:3", "--mount"]),
        ("ARG BASE\nFROM ${BASE}\nUSER nobody\nRUN true\n", &["Dockerfile:4", "nobody"]),
        ("RUN true\n", &["no FROM"]),
        ("ARG BASE\nFROM ${BASE}\nCMD --verbose sh\n", &["Dockerfile:3", "CMD takes no flags"]),
        ("# only a comment\n", &["no instructions"]),
        ("ARG BASE\nFROM ${BASE}\nCMD [\"sh\", 1]\n", &["Dockerfile:3", "strings only"]),
    ];
    for (n, (df, wants)) in cases.iter().enumerate() {
        let work = tmp.path().join(format!("c{n}"));
        let err = build_text(&work, &base, df, &[("a", "a"), ("b", "b")], |_| {}).await.map(|_| ()).unwrap_err();
        for w in *wants {
            assert!(err.contains(w), "{df:?}: {err:?} should say {w:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_builder_api_renders_parseable_text_and_builds() {
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_base(tmp.path()).await;
    let host = tmp.path().join("myfiles");
    std::fs::create_dir_all(host.join("sub")).unwrap();
    std::fs::write(host.join("sub/data.txt"), "data").unwrap();
    let df = imgtool_dockerfile::Dockerfile::from_image(&base)
        .arg("WHO", Some("builder"))
        .run("mkdir -p /var/lib/app && echo made by $WHO > /var/lib/app/made")
        .add_file(&host, "/var/lib/myfiles")
        .env("GREETING", "say \"hi\" to $WHO")
        .label("org.example/quoted key", "v")
        .workdir("/var/lib/app")
        .user("0:0")
        .expose("8080")
        .volume("/data")
        .entrypoint(["/bin/sh", "-c"])
        .cmd(["echo $GREETING"]);
    let text = df.render();
    assert!(text.starts_with(&format!("FROM {base}\nARG WHO=builder\nRUN mkdir")), "{text}");
    let reparsed = parse(&text).unwrap();
    let kinds = |d: &imgtool_dockerfile::Dockerfile| d.instructions.iter().map(|i| i.kind.clone()).collect::<Vec<_>>();
    assert_eq!(kinds(&reparsed), kinds(&df), "render() says what the builder built:\n{text}");

    let spool = tmp.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let image = build(&df, &Layouts, &BuildOptions::new(tmp.path().join("unused"), &spool)).await.unwrap();
    let root = tmp.path().join("root");
    imgtool_archive::extract_image(&image, &root, Default::default()).await.unwrap();
    assert_eq!(std::fs::read_to_string(root.join("var/lib/app/made")).unwrap(), "made by builder\n");
    assert_eq!(std::fs::read_to_string(root.join("var/lib/myfiles/sub/data.txt")).unwrap(), "data");
    let c = image.config().container().unwrap();
    assert!(c["Env"].as_array().unwrap().contains(&serde_json::json!("GREETING=say \"hi\" to builder")), "{:?}", c["Env"]);
    assert_eq!(c["Labels"]["org.example/quoted key"], "v");
    assert_eq!(c["Cmd"], serde_json::json!(["echo $GREETING"]));
}

/// What the fuzz target checks (`fuzz/`, run by scripts/fuzz.sh with cargo-fuzz), on a
/// bounded number of deterministic mutations of the corpus, so every test run covers it.
#[test]
fn the_parser_survives_mutated_dockerfiles() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet: &[u8] = b"$\\`{}:-+?\"'<>#=[], \n\tEOFRUNCOPY";
    for case in cases() {
        let text = std::fs::read(case.join("Dockerfile")).unwrap();
        for _ in 0..3000 {
            let mut m = text.clone();
            for _ in 0..(next() % 4 + 1) {
                let pos = (next() as usize) % (m.len() + 1);
                match next() % 3 {
                    0 => m.insert(pos, alphabet[(next() as usize) % alphabet.len()]),
                    1 if pos < m.len() => {
                        m.remove(pos);
                    }
                    _ => m.truncate(pos),
                }
            }
            imgtool_dockerfile::check_never_panics(&String::from_utf8_lossy(&m));
        }
    }
}

/// Serve `body` at any path, once per connection, on 127.0.0.1; returns the base URL.
fn serve(body: &'static [u8]) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let status = if String::from_utf8_lossy(&buf[..n]).starts_with("GET /missing") { "404 Not Found" } else { "200 OK" };
            let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = s.write_all(body);
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread")]
async fn add_downloads_urls_and_from_takes_a_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_base(tmp.path()).await;
    let url = serve(b"#!/bin/sh\necho downloaded\n");
    let df = format!("ARG BASE\nFROM ${{BASE}}\nADD {url}/files/tool.sh /opt/\nADD {url}/other /opt/renamed\n");
    let (_, root) = build_text(&tmp.path().join("a"), &base, &df, &[], |_| {}).await.unwrap();
    assert_eq!(std::fs::read_to_string(root.join("opt/tool.sh")).unwrap(), "#!/bin/sh\necho downloaded\n");
    assert_eq!(std::fs::metadata(root.join("opt/renamed")).unwrap().mode() & 0o7777, 0o600, "downloads are 0600, as Docker makes them");
    let err = build_text(&tmp.path().join("b"), &base, &format!("ARG BASE\nFROM ${{BASE}}\nADD {url}/missing /x\n"), &[], |_| {})
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(err.contains("Dockerfile:3") && err.contains("404"), "{err}");
    let sum = imgtool_core::Digest::sha256_of(b"#!/bin/sh\necho downloaded\n");
    let ok = format!("ARG BASE\nFROM ${{BASE}}\nADD --checksum={sum} {url}/t /t\n");
    build_text(&tmp.path().join("d"), &base, &ok, &[], |_| {}).await.unwrap();
    let bad = format!("ARG BASE\nFROM ${{BASE}}\nADD --checksum=sha256:{} {url}/t /t\n", "0".repeat(64));
    let err = build_text(&tmp.path().join("e"), &base, &bad, &[], |_| {}).await.map(|_| ()).unwrap_err();
    assert!(err.contains("does not match"), "{err}");

    // FROM --platform picks the platform (declared on scratch here), and TARGETARCH follows.
    let df = "FROM --platform=linux/arm64 scratch\nARG TARGETARCH\nLABEL arch=$TARGETARCH\n";
    let (image, _) = build_text(&tmp.path().join("c"), &base, df, &[], |_| {}).await.unwrap();
    assert_eq!(image.platform().to_string(), "linux/arm64");
    assert_eq!(image.config().container().unwrap()["Labels"]["arch"], "arm64");
}

/// A hostile context: links that point out of it are never read through, whether named
/// directly or matched by a glob.
#[tokio::test(flavor = "multi_thread")]
async fn context_symlinks_never_reach_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_base(tmp.path()).await;
    let secret = tmp.path().join("host-secret");
    std::fs::write(&secret, "HOST SECRET").unwrap();
    let work = tmp.path().join("w");
    let ctx = work.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::os::unix::fs::symlink(&secret, ctx.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../host-secret", ctx.join("up")).unwrap();
    std::fs::write(ctx.join("fine.txt"), "fine").unwrap();
    let (_, root) = build_text(&work, &base, "ARG BASE\nFROM ${BASE}\nCOPY * /x/\n", &[], |_| {}).await.unwrap();
    let mut found = Vec::new();
    for e in walkdir::WalkDir::new(&root).follow_links(false) {
        let e = e.unwrap();
        if e.file_type().is_file() && std::fs::read(e.path()).unwrap().windows(11).any(|w| w == b"HOST SECRET") {
            found.push(e.path().to_path_buf());
        }
    }
    assert!(found.is_empty(), "host file copied into the image: {found:?}");
    assert_eq!(std::fs::read_to_string(root.join("x/fine.txt")).unwrap(), "fine");
    assert!(std::fs::symlink_metadata(root.join("x/abs")).unwrap().file_type().is_symlink(), "kept as a link");
    for named in ["abs", "up"] {
        let err =
            build_text(&tmp.path().join(format!("n-{named}")), &base, &format!("ARG BASE\nFROM ${{BASE}}\nCOPY {named} /y\n"), &[], |o| {
                o.context = ctx.clone()
            })
            .await
            .map(|_| ())
            .unwrap_err();
        assert!(err.contains("no such file"), "{named}: {err}");
    }
}

/// WORKDIR through a symlink in the image stays inside the image: the link is followed in
/// the image's root, never on the host.
#[tokio::test(flavor = "multi_thread")]
async fn workdir_through_a_symlink_stays_in_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_base(tmp.path()).await;
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let df = format!("ARG BASE\nFROM ${{BASE}}\nRUN ln -s {} /w\nWORKDIR /w/made\nRUN pwd > /where\n", outside.display());
    let (_, root) = build_text(&tmp.path().join("b"), &base, &df, &[], |_| {}).await.unwrap();
    assert!(!outside.join("made").exists(), "WORKDIR created a directory on the host");
    assert!(root.join(outside.strip_prefix("/").unwrap()).join("made").is_dir(), "created where the link leads inside the image");
    // RUN starts there (runc resolves the link inside the image, so pwd shows its target).
    assert_eq!(std::fs::read_to_string(root.join("where")).unwrap(), format!("{}\n", outside.join("made").display()));
}

/// A bare `--` ends the flags and is no source, as in BuildKit.
#[test]
fn a_bare_double_dash_ends_the_flags() {
    let df = imgtool_dockerfile::parse("FROM scratch\nCOPY --chmod=644 -- a b /x/\n").unwrap();
    let imgtool_dockerfile::Kind::Copy { flags, sources, dest, .. } = &df.instructions[1].kind else { panic!("{:?}", df.instructions[1]) };
    assert_eq!(flags.len(), 1);
    assert_eq!(sources, &["a", "b"]);
    assert_eq!(dest, "/x/");
}

/// Names that are not UTF-8 go through RUN's layer (added, and deleted by a whiteout) and
/// COPY (of a directory, and by a wildcard) as the bytes they are.
#[tokio::test(flavor = "multi_thread")]
async fn names_that_are_not_utf8_survive_run_and_copy() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let base = busybox_base(tmp.path()).await;
    let name = |b: &[u8]| std::ffi::OsStr::from_bytes(b).to_owned();
    let stage = "ARG BASE\nFROM ${BASE} AS a\nRUN mkdir /n && printf latin > \"/n/$(printf 'caf\\351')\" && printf gone > \"/n/$(printf 'd\\351j\\340')\"\nRUN rm \"/n/$(printf 'd\\351j\\340')\"\n";
    let (_, root) = build_text(&tmp.path().join("run"), &base, stage, &[], |_| {}).await.unwrap();
    assert_eq!(std::fs::read(root.join("n").join(name(b"caf\xe9"))).unwrap(), b"latin");
    assert!(!root.join("n").join(name(b"d\xe9j\xe0")).exists(), "the whiteout of a non-UTF-8 name did not apply");
    let copy = format!("{stage}FROM ${{BASE}}\nCOPY --from=a /n /copied/\nCOPY --from=a /n/caf* /globbed/\n");
    let (_, root) = build_text(&tmp.path().join("copy"), &base, &copy, &[], |_| {}).await.unwrap();
    assert_eq!(std::fs::read(root.join("copied").join(name(b"caf\xe9"))).unwrap(), b"latin");
    assert_eq!(std::fs::read(root.join("globbed").join(name(b"caf\xe9"))).unwrap(), b"latin");
}
