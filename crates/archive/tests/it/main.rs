//! Integration tests of imgtool-archive: every backend round-trips through the shared
//! validator, layers are reproducible, and outputs appear only when complete.

#![allow(clippy::unwrap_used)]

mod gc;
mod gotar;
mod mutated;
mod reader;
mod sparse;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use imgtool_archive::{ContentsLayer, DockerArchiveSource, LayerOptions, LayoutSink, OciLayoutSource, PathLayer, write_layer};
use imgtool_core::{
    Compression, CopyOptions, Descriptor, Flavor, Image, ImageSink, LayerProducer, MediaType, Platform, SharedSource, copy_image, validate,
};

fn platform() -> Platform {
    "linux/amd64".parse().unwrap()
}

async fn build(spool: &Path, tree: &Path) -> Image {
    let mut image = Image::scratch(&platform(), Flavor::Oci);
    let producers: Vec<Box<dyn LayerProducer>> = vec![
        Box::new(PathLayer::new(tree, "/app")),
        Box::new(ContentsLayer::new([("/etc/motd", "hello\n"), ("/this/is/a/test1", "this is test 1")])),
    ];
    for p in producers {
        image = image.add_layers(p.as_ref(), spool, 0, Compression::Gzip).await.unwrap();
    }
    image
}

fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deep")).unwrap();
    std::fs::write(root.join("a.txt"), "a").unwrap();
    std::fs::write(root.join("sub/deep/b.pyc"), "b").unwrap();
    std::fs::write(root.join("sub/c.txt"), "c".repeat(100_000)).unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
    std::fs::hard_link(root.join("a.txt"), root.join("hard")).unwrap();
    let long = "x".repeat(120);
    std::fs::write(root.join(format!("sub/{long}")), "long name").unwrap();
}

async fn write_to(image: &Image, sink: LayoutSink, tag: &str) -> Descriptor {
    let sink: Box<dyn ImageSink> = Box::new(sink);
    let d = copy_image(image, sink.as_ref(), &CopyOptions { tags: vec![tag.into()], ..Default::default() }).await.unwrap();
    sink.finish().await.unwrap();
    d
}

async fn reload(source: SharedSource, sel: &str) -> Image {
    let image = Image::load(source, Some(sel), None).await.unwrap();
    validate(&image).await.unwrap();
    image
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_through_every_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    make_tree(&tree);
    let image = build(tmp.path(), &tree).await;
    validate(&image).await.unwrap();
    let first = image.manifest();

    let da = tmp.path().join("a.tar");
    write_to(&image, LayoutSink::docker_archive(&da).unwrap(), "demo:v1").await;
    let from_da = reload(Arc::new(DockerArchiveSource::open(&da).unwrap()), "demo:v1").await;

    let oci = tmp.path().join("layout");
    write_to(&from_da, LayoutSink::oci_dir(&oci).unwrap(), "v1").await;
    let from_oci = reload(Arc::new(OciLayoutSource::open_dir(&oci).unwrap()), "v1").await;

    let oa = tmp.path().join("o.tar");
    write_to(&from_oci, LayoutSink::oci_archive(&oa).unwrap(), "v1").await;
    let from_oa = reload(Arc::new(OciLayoutSource::open_archive(&oa).unwrap()), "v1").await;

    let da2 = tmp.path().join("b.tar");
    write_to(&from_oa, LayoutSink::docker_archive(&da2).unwrap(), "demo:v1").await;
    let last = reload(Arc::new(DockerArchiveSource::open(&da2).unwrap()), "docker.io/library/demo:v1").await;

    for img in [&from_da, &from_oci, &from_oa, &last] {
        assert_eq!(img.manifest(), first, "manifest bytes and digest survive every hop");
        assert_eq!(img.config().to_bytes(), image.config().to_bytes());
        let a: Vec<_> = img.layers().iter().map(|l| (&l.descriptor, &l.diff_id)).collect();
        let b: Vec<_> = image.layers().iter().map(|l| (&l.descriptor, &l.diff_id)).collect();
        assert_eq!(a, b);
    }
    assert_eq!(std::fs::read(&da).unwrap(), std::fs::read(&da2).unwrap(), "docker archives are byte-identical");
}

#[tokio::test(flavor = "multi_thread")]
async fn layers_are_reproducible_and_filtered() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    make_tree(&tree);
    let a = build(tmp.path(), &tree).await;
    // A second copy of the tree, made in another order, gives the same bytes.
    let tree2 = tmp.path().join("elsewhere/tree");
    std::fs::create_dir_all(&tree2).unwrap();
    make_tree(&tree2);
    let b = build(tmp.path(), &tree2).await;
    assert_eq!(a.digest(), b.digest());

    let mut layer = PathLayer::new(&tree, "/app");
    layer.exclude = vec!["**/*.pyc".into(), "sub/x*".into()];
    let names: Vec<String> = layer.entries(0).unwrap().into_iter().map(|e| e.path.into_string().unwrap()).collect();
    assert_eq!(names, ["app", "app/a.txt", "app/hard", "app/link", "app/sub", "app/sub/c.txt", "app/sub/deep"]);
    layer.exclude.clear();
    layer.include = vec!["**/*.txt".into()];
    let names: Vec<String> = layer.entries(0).unwrap().into_iter().map(|e| e.path.into_string().unwrap()).collect();
    assert_eq!(names, ["app", "app/a.txt", "app/sub", "app/sub/c.txt"]);
}

#[test]
fn gzip_bytes_do_not_depend_on_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8 ^ (i % 7) as u8).collect();
    let entries = || ContentsLayer::new([("/big", big.clone()), ("/small", b"x".to_vec())]).entries(0).unwrap();
    let mut digests = Vec::new();
    for threads in [1, 2, 4] {
        let l = write_layer(entries(), tmp.path(), LayerOptions { threads, ..Default::default() }).unwrap();
        // The stream is one valid gzip member whose content hashes to the diff_id.
        let mut dec = flate2::read::GzDecoder::new(std::fs::File::open(&l.file).unwrap());
        let mut h = imgtool_core::Hasher::sha256();
        std::io::copy(&mut dec, &mut h).unwrap();
        assert_eq!(h.finish(), l.diff_id);
        digests.push((l.descriptor.digest.clone(), l.diff_id.clone()));
    }
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    let kept = write_layer(entries(), tmp.path(), LayerOptions::default()).unwrap().file.keep().unwrap();
    let status = std::process::Command::new("gzip").arg("-t").arg(&kept).status().unwrap();
    assert!(status.success(), "gzip -t accepts the stream");
    for c in [Compression::Zstd, Compression::None] {
        let a = write_layer(entries(), tmp.path(), LayerOptions { compression: c, threads: 1, ..Default::default() }).unwrap();
        let b = write_layer(entries(), tmp.path(), LayerOptions { compression: c, threads: 2, ..Default::default() }).unwrap();
        assert_eq!(a.descriptor, b.descriptor);
        assert_eq!(a.descriptor.media_type, MediaType::layer(Flavor::Oci, c));
        assert_eq!(a.diff_id, digests[0].1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_write_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.tar");
    std::fs::write(&out, "previous contents").unwrap();
    let sink = LayoutSink::docker_archive(&out).unwrap();
    let wrong = Descriptor::of(MediaType::OciLayerGzip, b"expected bytes");
    let err = sink.put_blob(&wrong, Box::pin(std::io::Cursor::new(b"other bytes!!!".to_vec()))).await.unwrap_err();
    assert!(err.to_string().contains("mismatch"), "{err}");
    drop(sink);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous contents", "the old file is untouched");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left: {leftovers:?}");

    let layout = tmp.path().join("layout");
    let sink = LayoutSink::oci_dir(&layout).unwrap();
    drop(sink);
    assert!(!layout.exists(), "an unfinished layout never appears");
}

#[tokio::test(flavor = "multi_thread")]
async fn several_images_and_tags_in_one_tarball() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    make_tree(&tree);
    let a = build(tmp.path(), &tree).await;
    let mut b = a.clone();
    b.config_mut().set_env("X=1").unwrap();
    let out = tmp.path().join("multi.tar");
    let sink: Box<dyn ImageSink> = Box::new(LayoutSink::docker_archive(&out).unwrap());
    copy_image(&a, sink.as_ref(), &CopyOptions { tags: vec!["one:latest".into(), "one:v1".into()], ..Default::default() }).await.unwrap();
    copy_image(&b, sink.as_ref(), &CopyOptions { tags: vec!["two:latest".into()], ..Default::default() }).await.unwrap();
    sink.finish().await.unwrap();
    let src = Arc::new(DockerArchiveSource::open(&out).unwrap());
    assert_eq!(src.tags(), vec![vec!["one:latest".to_string(), "one:v1".into()], vec!["two:latest".into()]]);
    assert_eq!(reload(src.clone(), "one:v1").await.digest(), a.digest());
    assert_eq!(reload(src.clone(), "two").await.digest(), b.digest());
    let err = Image::load(src.clone(), None, None).await.unwrap_err().to_string();
    assert!(err.contains("holds 2 images") && err.contains("one:latest"), "{err}");
    let err = Image::load(src, Some("three:latest"), None).await.unwrap_err().to_string();
    assert!(err.contains("three:latest") && err.contains("two:latest"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_legacy_and_v1_2_docker_tarballs() {
    // A v1.2 tarball the way docker save wrote it before 25: uncompressed layer.tar files.
    let tmp = tempfile::tempdir().unwrap();
    let layer = write_layer(
        ContentsLayer::new([("/hello", "world")]).entries(0).unwrap(),
        tmp.path(),
        LayerOptions { compression: Compression::None, ..Default::default() },
    )
    .unwrap();
    let layer_bytes = std::fs::read(&layer.file).unwrap();
    let diff = layer.diff_id.to_string();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff]},
        "history": [{"created_by": "x"}]
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let id = layer.diff_id.hex().to_string();
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    files.insert(format!("{id}/layer.tar"), layer_bytes.clone());
    files.insert(format!("{id}/json"), serde_json::to_vec(&serde_json::json!({"id": id, "created": "2020-01-01T00:00:00Z", "config": {"Cmd": ["sh"]}, "architecture": "amd64", "os": "linux"})).unwrap());
    files.insert(format!("{id}/VERSION"), b"1.0".to_vec());
    files.insert("repositories".into(), serde_json::to_vec(&serde_json::json!({"old": {"latest": id}})).unwrap());
    let legacy = tmp.path().join("legacy.tar");
    write_tar(&legacy, &files);
    let src = Arc::new(DockerArchiveSource::open(&legacy).unwrap());
    let img = reload(src, "old:latest").await;
    assert_eq!(img.layers()[0].diff_id, layer.diff_id);
    assert_eq!(img.config().json()["config"]["Cmd"], serde_json::json!(["sh"]));

    files.insert("cfg.json".into(), config_bytes);
    files.insert(
        "manifest.json".into(),
        serde_json::to_vec(&serde_json::json!([{"Config": "cfg.json", "RepoTags": ["v12:latest"], "Layers": [format!("{id}/layer.tar")]}]))
            .unwrap(),
    );
    let v12 = tmp.path().join("v12.tar");
    write_tar(&v12, &files);
    let img = reload(Arc::new(DockerArchiveSource::open(&v12).unwrap()), "v12:latest").await;
    assert_eq!(img.layers()[0].descriptor.media_type, MediaType::DockerLayer);
    assert_eq!(img.layers()[0].descriptor.digest, layer.diff_id);

    let not = tmp.path().join("not.tar");
    write_tar(&not, &BTreeMap::from([("x".to_string(), b"y".to_vec())]));
    let err = DockerArchiveSource::open(&not).unwrap_err().to_string();
    assert!(err.contains("not a docker save tarball"), "{err}");
}

fn write_tar(path: &Path, files: &BTreeMap<String, Vec<u8>>) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.finish().unwrap();
}

fn outside_state(sandbox: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(sandbox).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(sandbox).unwrap().to_string_lossy().into_owned();
        if rel == "root" || rel.starts_with("root/") {
            continue;
        }
        let content = if e.file_type().is_file() { std::fs::read_to_string(e.path()).unwrap() } else { String::new() };
        out.push((rel, content));
    }
    out
}

/// Every hostile tarball is refused or contained: nothing outside the root changes.
#[test]
fn hostile_tarballs_are_refused_or_contained() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/hostile");
    let mut names: Vec<_> =
        std::fs::read_dir(&corpus).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "tar")).collect();
    names.sort();
    assert!(names.len() >= 10, "the corpus has {} cases", names.len());
    let mut summary = String::new();
    for tar in names {
        for devices in [imgtool_archive::Devices::Refuse, imgtool_archive::Devices::Skip] {
            let sandbox = tempfile::tempdir().unwrap();
            std::fs::write(sandbox.path().join("outside-file"), "secret").unwrap();
            std::fs::create_dir(sandbox.path().join("victim")).unwrap();
            std::fs::write(sandbox.path().join("victim/keep"), "keep").unwrap();
            let root = sandbox.path().join("root");
            std::fs::create_dir(&root).unwrap();
            let before = outside_state(sandbox.path());
            let opts = imgtool_archive::ExtractOptions { devices, same_owner: false, xattrs: true, package: false };
            let name = tar.file_name().unwrap().to_string_lossy().into_owned();
            let result = imgtool_archive::apply_layer(&root, std::fs::File::open(&tar).unwrap(), opts, &name);
            assert_eq!(outside_state(sandbox.path()), before, "{name} changed something outside the root");
            if devices == imgtool_archive::Devices::Refuse {
                let outcome = match result {
                    Ok(()) => {
                        let mut inside: Vec<String> = walkdir::WalkDir::new(&root)
                            .min_depth(1)
                            .sort_by_file_name()
                            .into_iter()
                            .map(|e| e.unwrap().path().strip_prefix(&root).unwrap().to_string_lossy().into_owned())
                            .collect();
                        inside.sort();
                        format!("contained: {}", inside.join(", "))
                    }
                    Err(e) => format!("refused: {}", e.to_string().replace(&root.display().to_string(), "[ROOT]")),
                };
                summary.push_str(&format!("{name}: {outcome}\n"));
            }
        }
    }
    insta::assert_snapshot!(summary);
}

#[test]
fn whiteouts_delete_from_lower_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let tar_of = |files: &[(&str, &str)]| {
        let mut b = tar::Builder::new(Vec::new());
        for (p, d) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, p, d.as_bytes()).unwrap();
        }
        b.into_inner().unwrap()
    };
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let opts = imgtool_archive::ExtractOptions::default();
    imgtool_archive::apply_layer(&root, &tar_of(&[("a/b", "1"), ("a/c", "2"), ("d", "3"), ("e/f", "4"), ("e/g", "5")])[..], opts, "l0")
        .unwrap();
    imgtool_archive::apply_layer(&root, &tar_of(&[("a/.wh.b", ""), (".wh.d", ""), ("e/.wh..wh..opq", ""), ("e/h", "6")])[..], opts, "l1")
        .unwrap();
    let mut left: Vec<String> = walkdir::WalkDir::new(&root)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap().path().strip_prefix(&root).unwrap().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["a", "a/c", "e", "e/h"]);
}

async fn platform_image(spool: &Path, platform: &str, shared: &str) -> Image {
    let mut image = Image::scratch(&platform.parse().unwrap(), Flavor::Oci);
    for p in [ContentsLayer::new([("/shared", shared.to_string())]), ContentsLayer::new([("/arch", platform.to_string())])] {
        image = image.add_layers(&p, spool, 0, Compression::Gzip).await.unwrap();
    }
    image
}

/// Writes a two-platform index into an OCI layout; returns the index descriptor.
pub async fn multi_platform_layout(spool: &Path, dir: &Path) -> Descriptor {
    let amd = platform_image(spool, "linux/amd64", "same bytes").await;
    let arm = platform_image(spool, "linux/arm64/v8", "same bytes").await;
    let sink: Box<dyn ImageSink> = Box::new(LayoutSink::oci_dir(dir).unwrap());
    let d = imgtool_core::copy_index(&[amd, arm], sink.as_ref(), &CopyOptions { tags: vec!["multi".into()], ..Default::default() })
        .await
        .unwrap();
    sink.finish().await.unwrap();
    d
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_platform_indexes() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("multi");
    let index = multi_platform_layout(tmp.path(), &layout).await;
    // The shared base layer is stored once: 2 configs + 3 layers + 2 manifests + 1 index.
    assert_eq!(std::fs::read_dir(layout.join("blobs/sha256")).unwrap().count(), 8);
    let src: SharedSource = Arc::new(OciLayoutSource::open_dir(&layout).unwrap());
    let arm = Image::load(src.clone(), Some("multi"), Some(&"linux/arm64".parse().unwrap())).await.unwrap();
    validate(&arm).await.unwrap();
    assert_eq!(arm.platform().to_string(), "linux/arm64/v8");
    let err = Image::load(src.clone(), Some("multi"), Some(&"linux/s390x".parse().unwrap())).await.unwrap_err().to_string();
    assert!(err.contains("linux/s390x") && err.contains("linux/amd64, linux/arm64/v8"), "{err}");

    // copy --all keeps the index bytes, so its digest.
    let oa = tmp.path().join("multi.tar");
    let sink: Box<dyn ImageSink> = Box::new(LayoutSink::oci_archive(&oa).unwrap());
    imgtool_core::copy_manifest_tree(
        src.as_ref(),
        &index,
        sink.as_ref(),
        &CopyOptions { tags: vec!["again".into()], ..Default::default() },
    )
    .await
    .unwrap();
    sink.finish().await.unwrap();
    let copied = OciLayoutSource::open_archive(&oa).unwrap();
    assert_eq!(imgtool_core::BlobSource::resolve(&copied, Some("again")).await.unwrap().digest, index.digest);

    // A docker archive holds one platform and says so.
    let da = LayoutSink::docker_archive(&tmp.path().join("d.tar")).unwrap();
    let err = imgtool_core::copy_manifest_tree(src.as_ref(), &index, &da, &CopyOptions { tags: vec!["x:y".into()], ..Default::default() })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("single-platform") && err.contains("--platform"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn oci_layouts_hold_several_tags_and_retag() {
    let tmp = tempfile::tempdir().unwrap();
    let a = platform_image(tmp.path(), "linux/amd64", "a").await;
    let b = platform_image(tmp.path(), "linux/amd64", "b").await;
    let dir = tmp.path().join("layout");
    write_to(&a, LayoutSink::oci_dir(&dir).unwrap(), "v1").await;
    write_to(&a, LayoutSink::oci_dir(&dir).unwrap(), "stable").await;
    write_to(&b, LayoutSink::oci_dir(&dir).unwrap(), "v2").await;
    write_to(&b, LayoutSink::oci_dir(&dir).unwrap(), "stable").await; // moves the tag
    let src = Arc::new(OciLayoutSource::open_dir(&dir).unwrap());
    let names: Vec<String> = src.index().manifests.iter().map(|d| d.annotations[imgtool_archive::REF_NAME].clone()).collect();
    assert_eq!(names, ["v1", "v2", "stable"]);
    assert_eq!(reload(src.clone(), "stable").await.digest(), b.digest());
    assert_eq!(reload(src.clone(), "v1").await.digest(), a.digest());
    let err = Image::load(src, None, None).await.unwrap_err().to_string();
    assert!(err.contains("several images") && err.contains("v1, v2, stable"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_compressed_docker_archives() {
    let tmp = tempfile::tempdir().unwrap();
    let image = platform_image(tmp.path(), "linux/amd64", "gz").await;
    let plain = tmp.path().join("plain.tar");
    write_to(&image, LayoutSink::docker_archive(&plain).unwrap(), "gz:latest").await;
    let gz = tmp.path().join("image.tar.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    std::io::copy(&mut std::fs::File::open(&plain).unwrap(), &mut enc).unwrap();
    enc.finish().unwrap();
    let loaded = reload(Arc::new(DockerArchiveSource::open(&gz).unwrap()), "gz:latest").await;
    assert_eq!(loaded.digest(), image.digest());
}

#[test]
fn xattrs_fifos_and_devices_round_trip() {
    use std::os::unix::fs::FileTypeExt;
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("f"), "x").unwrap();
    xattr::set(tree.join("f"), "user.imgtool", b"kept").unwrap();
    assert!(std::process::Command::new("mkfifo").arg(tree.join("pipe")).status().unwrap().success());
    let mut layer = PathLayer::new(&tree, "/");
    layer.xattrs = true;
    let spooled =
        write_layer(layer.entries(0).unwrap(), tmp.path(), LayerOptions { compression: Compression::None, ..Default::default() }).unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let opts = imgtool_archive::ExtractOptions { xattrs: true, ..Default::default() };
    imgtool_archive::apply_layer(&root, std::fs::File::open(&spooled.file).unwrap(), opts, "l").unwrap();
    assert_eq!(xattr::get(root.join("f"), "user.imgtool").unwrap().as_deref(), Some(&b"kept"[..]));
    assert!(std::fs::symlink_metadata(root.join("pipe")).unwrap().file_type().is_fifo());

    // Device nodes only when asked, and only root can make them.
    let dev = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/hostile/08-device-node.tar");
    let root2 = tmp.path().join("root2");
    std::fs::create_dir(&root2).unwrap();
    imgtool_archive::apply_layer(&root2, std::fs::File::open(&dev).unwrap(), Default::default(), "dev").unwrap();
    assert!(!root2.join("dev/evil").exists(), "skipped by default");
    let as_root = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap();
    let create = imgtool_archive::ExtractOptions { devices: imgtool_archive::Devices::Create, ..Default::default() };
    let made = imgtool_archive::apply_layer(&root2, std::fs::File::open(&dev).unwrap(), create, "dev");
    if as_root {
        made.unwrap();
        assert!(std::fs::symlink_metadata(root2.join("dev/evil")).unwrap().file_type().is_char_device());
    } else {
        assert!(made.unwrap_err().to_string().contains("needs root"));
    }
}

/// Entries taken from a tree someone else wrote (a conda prefix, a stage) are read through
/// the rooted path layer: a symlink in it to a host directory leads inside the tree, and a
/// file swapped for such a link after listing is not read on the host either.
#[test]
fn entries_from_a_tree_never_read_host_files() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("secret"), "host secret").unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(tree.join("real")).unwrap();
    std::fs::write(tree.join("real/secret"), "in the tree").unwrap();
    std::os::unix::fs::symlink(&host, tree.join("lib")).unwrap();
    // `lib/secret` through the link: resolved inside the tree, where `lib` leads nowhere.
    let err = imgtool_archive::entries_for_files(&tree, &["lib/secret".into()], "opt", 0, imgtool_archive::Owner::Root);
    assert!(err.is_err(), "a path through a link out of the tree was listed");
    // Listed while a regular file, then swapped for a link to the host file.
    let entries = imgtool_archive::entries_for_files(&tree, &["real/secret".into()], "opt", 0, imgtool_archive::Owner::Root).unwrap();
    std::fs::remove_file(tree.join("real/secret")).unwrap();
    std::os::unix::fs::symlink(host.join("secret"), tree.join("real/secret")).unwrap();
    let spool = tempfile::tempdir().unwrap();
    match write_layer(entries, spool.path(), LayerOptions::default()) {
        Err(e) => assert!(e.to_string().contains("changed") || e.to_string().contains("secret"), "{e}"),
        Ok(layer) => {
            let bytes = std::fs::read(&layer.file).unwrap();
            let mut tar = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut tar).unwrap();
            assert!(!tar.windows(11).any(|w| w == b"host secret"), "the host file was read into the layer");
        }
    }
}
