//! imgtool-registry against real registry servers (Debian's docker-registry).
#![allow(clippy::unwrap_used)]

mod origins;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use imgtool_archive::ContentsLayer;
use imgtool_core::{Compression, CopyOptions, Flavor, Image, ImageSink, Reference, copy_image, validate};
use imgtool_registry::{ClientOptions, Credential, Registries, Secret};
use imgtool_tests::{Registry, RegistryAuth, RegistryConfig, run_ok};

async fn image_with_layers(spool: &Path, n: usize, seed: &str) -> Image {
    let mut image = Image::scratch(&"linux/amd64".parse().unwrap(), Flavor::Oci);
    for i in 0..n {
        let producer = ContentsLayer::new([(format!("/layer{i}"), format!("{seed} layer {i} {}", "x".repeat(i * 1000)))]);
        image = image.add_layers(&producer, spool, 0, Compression::Gzip).await.unwrap();
    }
    image
}

fn reference(reg: &Registry, repo: &str) -> Reference {
    format!("{}/{repo}", reg.addr).parse().unwrap()
}

async fn push(registries: &Registries, image: &Image, r: &Reference) {
    let sink: Box<dyn ImageSink> = Box::new(registries.sink(r).unwrap());
    copy_image(image, sink.as_ref(), &CopyOptions { tags: r.tag().into_iter().map(str::to_string).collect(), ..Default::default() })
        .await
        .unwrap();
    sink.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn push_pull_tags_catalog_delete_on_an_open_registry() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let registries = Registries::new(ClientOptions::default());
    let image = image_with_layers(tmp.path(), 3, "open").await;
    let r = reference(&reg, "team/app:v1");
    push(&registries, &image, &r).await;

    let pulled = Image::load(Arc::new(registries.source(&r).unwrap()), None, None).await.unwrap();
    assert_eq!(pulled.digest(), image.digest());
    validate(&pulled).await.unwrap();

    // skopeo sees what we pushed the way we do.
    let out = run_ok(std::process::Command::new("skopeo").args(["inspect", "--tls-verify=false", &format!("docker://{r}")]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"], image.digest().to_string());

    let client = registries.client(&reg.addr).unwrap();
    for t in ["v2", "v3", "v4", "latest"] {
        push(&registries, &image, &reference(&reg, &format!("team/app:{t}"))).await;
    }
    let mut tags = client.tags("team/app", 2).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["latest", "v1", "v2", "v3", "v4"], "all pages are followed");
    push(&registries, &image, &reference(&reg, "other:x")).await;
    assert_eq!(client.catalog(1).await.unwrap(), ["other", "team/app"]);

    let head = client.head_manifest("team/app", "v1").await.unwrap().unwrap();
    assert_eq!(head.digest, image.digest());
    client.delete_manifest("team/app", &head.digest).await.unwrap();
    assert!(client.head_manifest("team/app", "v1").await.unwrap().is_none());
    let err = Image::load(Arc::new(registries.source(&r).unwrap()), None, None).await.unwrap_err().to_string();
    assert!(err.contains("manifest v1 not found"), "{err}");
    let referrers = client.referrers("other", &image.digest()).await.unwrap();
    assert!(referrers.manifests.is_empty());
}

/// Pulling is lazy and pushing to the same registry mounts: base layers never move.
#[tokio::test(flavor = "multi_thread")]
async fn edit_and_push_moves_no_base_layer_bytes() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let seed_registries = Registries::new(ClientOptions::default());
    let base = image_with_layers(tmp.path(), 3, "base").await;
    push(&seed_registries, &base, &reference(&reg, "base:1")).await;

    // A fresh pool, as a new process would have.
    let registries = Registries::new(ClientOptions::default());
    let mut image = Image::load(Arc::new(registries.source(&reference(&reg, "base:1")).unwrap()), None, None).await.unwrap();
    let producer = ContentsLayer::new([("/added", "new")]);
    image = image.add_layers(&producer, tmp.path(), 0, Compression::Gzip).await.unwrap();
    push(&registries, &image, &reference(&reg, "derived:1")).await;

    let client = registries.client(&reg.addr).unwrap();
    assert_eq!(client.stats.blob_gets.load(Ordering::Relaxed), 1, "only the config blob was downloaded");
    assert_eq!(client.stats.mounts.load(Ordering::Relaxed), 3, "the three base layers were mounted");
    assert_eq!(client.stats.uploads.load(Ordering::Relaxed), 2, "only the new layer and the config were uploaded");
    // The server agrees: nobody asked it for a layer of the base repository.
    for l in base.layers() {
        assert_eq!(reg.requests("GET", &format!("/v2/base/blobs/{}", l.descriptor.digest)), 0, "{}", reg.log());
    }
    assert_eq!(reg.requests("GET", "/v2/base/blobs/"), 1, "the config, once");

    // Pushing the same image again uploads nothing.
    push(&registries, &image, &reference(&reg, "derived:1")).await;
    assert_eq!(client.stats.uploads.load(Ordering::Relaxed), 2);
    assert_eq!(client.stats.mounts.load(Ordering::Relaxed), 3);

    let pulled = Image::load(Arc::new(registries.source(&reference(&reg, "derived:1")).unwrap()), None, None).await.unwrap();
    validate(&pulled).await.unwrap();
    assert_eq!(pulled.layers().len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth() {
    let reg = Registry::start_with(RegistryConfig {
        auth: RegistryAuth::Basic { user: "alice".into(), pass: "s3cret".into() },
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let image = image_with_layers(tmp.path(), 1, "auth").await;
    let r = reference(&reg, "private:1");

    let anonymous = Registries::new(ClientOptions::default());
    let sink = anonymous.sink(&r).unwrap();
    let err = copy_image(&image, &sink, &CopyOptions::default()).await.unwrap_err().to_string();
    assert!(err.contains("authentication failed") && err.contains("imgtool login"), "{err}");

    let mut opts = ClientOptions::default();
    let wrong = Credential::Basic { username: "alice".into(), password: Secret::new("wrong-password") };
    opts.credentials.insert(reg.addr.clone(), wrong);
    let err = copy_image(&image, &Registries::new(opts.clone()).sink(&r).unwrap(), &CopyOptions::default()).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("authentication failed") && !shown.contains("wrong-password"), "{shown}");

    opts.credentials.insert(reg.addr.clone(), Credential::Basic { username: "alice".into(), password: Secret::new("s3cret") });
    let registries = Registries::new(opts);
    push(&registries, &image, &r).await;
    let pulled = Image::load(Arc::new(registries.source(&r).unwrap()), None, None).await.unwrap();
    validate(&pulled).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_private_ca() {
    let reg = Registry::start_with(RegistryConfig { tls: true, ..Default::default() });
    let tmp = tempfile::tempdir().unwrap();
    let image = image_with_layers(tmp.path(), 1, "tls").await;
    let r = reference(&reg, "secure:1");

    // Without the CA the certificate is refused (and there is no silent fallback to HTTP).
    let untrusting = Registries::new(ClientOptions { cert_dirs: vec![], ..Default::default() });
    let err = copy_image(&image, &untrusting.sink(&r).unwrap(), &CopyOptions::default()).await.unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("certificate is not trusted") && shown.contains("--cert-dir"), "{shown}");

    let trusting = Registries::new(ClientOptions { cert_dirs: vec![reg.cert_dir()], ..Default::default() });
    push(&trusting, &image, &r).await;
    assert!(trusting.client(&reg.addr).unwrap().base().await.unwrap().as_str().starts_with("https://"));

    let insecure = Registries::new(ClientOptions { cert_dirs: vec![], insecure: vec![reg.addr.clone()], ..Default::default() });
    let pulled = Image::load(Arc::new(insecure.source(&r).unwrap()), None, None).await.unwrap();
    validate(&pulled).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_self_signed_certificate_in_the_cert_dir_is_trusted_for_its_registry() {
    let reg = Registry::start_with(RegistryConfig { tls: true, self_signed: true, ..Default::default() });
    let tmp = tempfile::tempdir().unwrap();
    let image = image_with_layers(tmp.path(), 1, "self-signed").await;
    let r = reference(&reg, "self/signed:1");

    let trusting = Registries::new(ClientOptions { cert_dirs: vec![reg.cert_dir()], ..Default::default() });
    push(&trusting, &image, &r).await;
    assert!(trusting.client(&reg.addr).unwrap().base().await.unwrap().as_str().starts_with("https://"));
    let pulled = Image::load(Arc::new(trusting.source(&r).unwrap()), None, None).await.unwrap();
    validate(&pulled).await.unwrap();

    // Another self-signed certificate in its place is not the registry's: refused, and the
    // advice names the file and what to put there instead.
    let other = tempfile::tempdir().unwrap();
    let wrong = other.path().join(&reg.addr);
    std::fs::create_dir_all(&wrong).unwrap();
    imgtool_tests::self_signed_server_cert(&wrong, "k.pem", "ca.crt");
    let mistaken = Registries::new(ClientOptions { cert_dirs: vec![other.path().to_path_buf()], ..Default::default() });
    let err = Image::load(Arc::new(mistaken.source(&r).unwrap()), None, None).await.unwrap_err();
    let shown = imgtool_core::error_chain(&err);
    assert!(shown.contains("not trusted") && shown.contains(&wrong.join("ca.crt").display().to_string()), "{shown}");
    assert!(shown.contains("openssl s_client"), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_tokens_anonymous_and_with_credentials() {
    use imgtool_tests::TokenServer;
    let tmp = tempfile::tempdir().unwrap();
    let image = image_with_layers(tmp.path(), 2, "token").await;

    // Anyone may get a token: anonymous push and pull work, with scopes escalated to push.
    let open = TokenServer::start(None);
    let reg = Registry::start_with(RegistryConfig {
        auth: RegistryAuth::Token { realm: open.realm.clone(), cert: open.cert.clone() },
        ..Default::default()
    });
    let registries = Registries::new(ClientOptions::default());
    push(&registries, &image, &reference(&reg, "tok/a:1")).await;
    // A second repository on the same registry: mounting asks for pull on the source too.
    let from_a = Image::load(Arc::new(registries.source(&reference(&reg, "tok/a:1")).unwrap()), None, None).await.unwrap();
    push(&registries, &from_a, &reference(&reg, "tok/b:1")).await;
    let pulled = Image::load(Arc::new(registries.source(&reference(&reg, "tok/b:1")).unwrap()), None, None).await.unwrap();
    validate(&pulled).await.unwrap();
    let client = registries.client(&reg.addr).unwrap();
    assert_eq!(client.stats.mounts.load(Ordering::Relaxed), 2, "the layers were mounted from tok/a");
    let seen = open.seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|(q, _)| q.contains("repository%3Atok%2Fa%3Apull%2Cpush") || q.contains("repository:tok/a:pull,push")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|(q, _)| q.contains("tok%2Fa%3Apull&") || q.ends_with("tok%2Fa%3Apull")),
        "mount asks pull on the source: {seen:?}"
    );
    assert!(seen.len() < 12, "tokens are cached per scope, not fetched per request: {}", seen.len());

    // Tokens only for alice: her password goes to the token endpoint, never to the registry.
    let strict = TokenServer::start(Some(("alice", "pw")));
    let reg2 = Registry::start_with(RegistryConfig {
        auth: RegistryAuth::Token { realm: strict.realm.clone(), cert: strict.cert.clone() },
        ..Default::default()
    });
    let err =
        copy_image(&image, &Registries::new(ClientOptions::default()).sink(&reference(&reg2, "p:1")).unwrap(), &CopyOptions::default())
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains("authentication failed"), "{err}");
    let mut opts = ClientOptions::default();
    opts.credentials.insert(reg2.addr.clone(), Credential::Basic { username: "alice".into(), password: Secret::new("pw") });
    push(&Registries::new(opts), &image, &reference(&reg2, "p:1")).await;
    let seen = strict.seen.lock().unwrap().clone();
    assert!(seen.iter().any(|(q, _)| q.contains("grant_type=password")), "OAuth2 POST first: {seen:?}");
    assert!(seen.iter().any(|(_, auth)| *auth), "then the GET with Basic credentials: {seen:?}");
}

async fn big_image(spool: &Path) -> Image {
    let mut image = Image::scratch(&"linux/amd64".parse().unwrap(), Flavor::Oci);
    for i in 0..2u64 {
        let producer = ContentsLayer::new([(format!("/noise{i}"), imgtool_tests::noise(600_000, i + 7))]);
        image = image.add_layers(&producer, spool, 0, Compression::Gzip).await.unwrap();
    }
    image
}

async fn pull_to_archive(registries: &Registries, r: &Reference, out: &Path) -> imgtool_core::Result<()> {
    let image = Image::load(Arc::new(registries.source(r).unwrap()), None, None).await?;
    let sink: Box<dyn ImageSink> = Box::new(imgtool_archive::LayoutSink::docker_archive(out).unwrap());
    copy_image(&image, sink.as_ref(), &CopyOptions { tags: vec!["x:y".into()], ..Default::default() }).await?;
    sink.finish().await
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_are_survived_or_reported() {
    use imgtool_tests::{Fault, FaultProxy};
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = big_image(tmp.path()).await;
    push(&Registries::new(ClientOptions::default()), &image, &reference(&reg, "f/app:1")).await;
    let proxy = FaultProxy::start(&reg.addr, None);
    let via = |repo: &str| -> Reference { format!("{}/{repo}", proxy.addr).parse().unwrap() };

    // Connections cut mid-blob: resumed with Range, and the result is intact.
    proxy.inject(Fault::DropBlob { bytes: 200_000, times: 3 });
    let registries = Registries::new(ClientOptions::default());
    let out = tmp.path().join("resumed.tar");
    pull_to_archive(&registries, &via("f/app:1"), &out).await.unwrap();
    let back = Image::load(Arc::new(imgtool_archive::DockerArchiveSource::open(&out).unwrap()), None, None).await.unwrap();
    validate(&back).await.unwrap();
    assert_eq!(back.digest(), image.digest());
    let gets = registries.client(&proxy.addr).unwrap().stats.blob_gets.load(Ordering::Relaxed);
    // The fault is armed for the next three blob requests, whichever they are: the config's
    // (too small to cut) or a HEAD may take one, so only "at least one resumption" is sure.
    assert!(gets >= 4, "3 blobs and at least one resumption, got {gets}");

    // 500s and 429 with Retry-After are retried.
    proxy.inject(Fault::Status { method: "GET", path: "/manifests/", status: 500, retry_after: None, times: 2 });
    proxy.inject(Fault::Status { method: "HEAD", path: "/blobs/", status: 429, retry_after: Some(1), times: 1 });
    let started = std::time::Instant::now();
    let registries = Registries::new(ClientOptions::default());
    let pulled = Image::load(Arc::new(registries.source(&via("f/app:1")).unwrap()), None, None).await.unwrap();
    push(&registries, &pulled, &via("f/copy:1")).await;
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "Retry-After was honoured");

    // Corrupted bytes: a clear error, and no output file.
    proxy.clear();
    proxy.inject(Fault::CorruptBlob { times: 100 });
    let out = tmp.path().join("corrupt.tar");
    let err = pull_to_archive(&Registries::new(ClientOptions::default()), &via("f/app:1"), &out).await.unwrap_err().to_string();
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("corrupt")).count(),
        0
    );

    // One failed upload is tried again from the source.
    proxy.clear();
    proxy.inject(Fault::Status { method: "PUT", path: "/blobs/uploads/", status: 503, retry_after: None, times: 1 });
    push(&Registries::new(ClientOptions::default()), &image, &via("f/retried:1")).await;

    // A push whose upload keeps failing reports it and tags nothing.
    proxy.clear();
    proxy.inject(Fault::Status { method: "PUT", path: "/blobs/uploads/", status: 500, retry_after: None, times: 100 });
    let sink = Registries::new(ClientOptions::default()).sink(&via("f/broken:1")).unwrap();
    let err = copy_image(&image, &sink, &CopyOptions { tags: vec!["1".into()], ..Default::default() }).await.unwrap_err().to_string();
    assert!(err.contains("500") && err.contains("INJECTED"), "{err}");
    let client = Registries::new(ClientOptions::default()).client(&reg.addr).unwrap();
    assert!(client.head_manifest("f/broken", "1").await.unwrap().is_none());
}

/// Blob GETs redirected to a storage host: followed, without our credentials.
#[tokio::test(flavor = "multi_thread")]
async fn redirects_do_not_leak_credentials() {
    use imgtool_tests::{Fault, FaultProxy};
    let reg =
        Registry::start_with(RegistryConfig { auth: RegistryAuth::Basic { user: "bob".into(), pass: "pw".into() }, ..Default::default() });
    let tmp = tempfile::tempdir().unwrap();
    let image = image_with_layers(tmp.path(), 2, "redirect").await;
    let mut opts = ClientOptions::default();
    opts.credentials.insert(reg.addr.clone(), Credential::Basic { username: "bob".into(), password: Secret::new("pw") });
    push(&Registries::new(opts.clone()), &image, &reference(&reg, "r/app:1")).await;

    let proxy = FaultProxy::start(&reg.addr, Some(("bob", "pw")));
    proxy.inject(Fault::RedirectBlobs);
    let mut opts = ClientOptions::default();
    opts.credentials.insert(proxy.addr.clone(), Credential::Basic { username: "bob".into(), password: Secret::new("pw") });
    let out = tmp.path().join("r.tar");
    pull_to_archive(&Registries::new(opts), &format!("{}/r/app:1", proxy.addr).parse().unwrap(), &out).await.unwrap();
    let to_registry = proxy.registry_saw_auth();
    let to_storage = proxy.storage_saw_auth();
    assert!(!to_storage.is_empty() && to_registry.iter().any(|a| *a), "registry {to_registry:?}, storage {to_storage:?}");
    assert!(to_storage.iter().all(|a| !a), "credentials reached the storage host: {to_storage:?}");
    let back = Image::load(Arc::new(imgtool_archive::DockerArchiveSource::open(&out).unwrap()), None, None).await.unwrap();
    validate(&back).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_uploads_recover_from_416() {
    use imgtool_tests::{Fault, FaultProxy};
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = big_image(tmp.path()).await;
    let proxy = FaultProxy::start(&reg.addr, None);
    // A PATCH is refused with 416: the client asks the upload where it is and resends from there.
    proxy.inject(Fault::Status { method: "PATCH", path: "/blobs/uploads/", status: 416, retry_after: None, times: 1 });
    let opts = ClientOptions { chunk_size: Some(256 * 1024), ..Default::default() };
    let r: Reference = format!("{}/chunked/app:1", proxy.addr).parse().unwrap();
    push(&Registries::new(opts), &image, &r).await;
    let pulled =
        Image::load(Arc::new(Registries::new(ClientOptions::default()).source(&reference(&reg, "chunked/app:1")).unwrap()), None, None)
            .await
            .unwrap();
    validate(&pulled).await.unwrap();
    assert_eq!(pulled.digest(), image.digest());
    assert!(reg.requests("PATCH", "/v2/chunked/app/blobs/uploads/") > 4, "uploads went in several chunks");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_manifests_are_refused_clearly() {
    use imgtool_tests::{Fault, FaultProxy};
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = image_with_layers(tmp.path(), 1, "bad").await;
    push(&Registries::new(ClientOptions::default()), &image, &reference(&reg, "m/app:1")).await;
    let proxy = FaultProxy::start(&reg.addr, None);
    let r: Reference = format!("{}/m/app:1", proxy.addr).parse().unwrap();
    let load = |opts: ClientOptions| {
        let r = r.clone();
        async move { Image::load(Arc::new(Registries::new(opts).source(&r).unwrap()), None, None).await }
    };

    let schema1 = br#"{"schemaVersion": 1, "name": "m/app", "tag": "1", "fsLayers": [], "history": []}"#.to_vec();
    proxy.inject(Fault::Respond {
        method: "GET",
        path: "/manifests/",
        content_type: "application/vnd.docker.distribution.manifest.v1+prettyjws",
        body: schema1,
        times: 1,
    });
    let err = load(ClientOptions::default()).await.unwrap_err().to_string();
    assert!(err.contains("schema 1"), "{err}");

    let err = load(ClientOptions { manifest_limit: 100, ..Default::default() }).await.unwrap_err().to_string();
    assert!(err.contains("larger than the 100-byte limit"), "{err}");

    // A manifest that is not what the digest says is refused.
    let (d, _) = Registries::new(ClientOptions::default()).client(&reg.addr).unwrap().get_manifest("m/app", "1").await.unwrap();
    let other = br#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "size": 0}, "layers": []}"#.to_vec();
    proxy.inject(Fault::Respond {
        method: "GET",
        path: "/manifests/",
        content_type: "application/vnd.oci.image.manifest.v1+json",
        body: other,
        times: 1,
    });
    let pinned: Reference = format!("{}/m/app@{}", proxy.addr, d.digest).parse().unwrap();
    let err = Image::load(Arc::new(Registries::new(ClientOptions::default()).source(&pinned).unwrap()), None, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("digest mismatch"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_platform_indexes_and_referrers() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let registries = Registries::new(ClientOptions::default());
    let mut images = Vec::new();
    for p in ["linux/amd64", "linux/arm64/v8"] {
        let mut img = image_with_layers(tmp.path(), 1, p).await;
        img.config_mut().apply(&imgtool_core::ConfigEdit { platform: Some(p.into()), ..Default::default() }).unwrap();
        images.push(img);
    }
    let r = reference(&reg, "multi:1");
    let sink = registries.sink(&r).unwrap();
    let index = imgtool_core::copy_index(&images, &sink, &CopyOptions { tags: vec!["1".into()], ..Default::default() }).await.unwrap();
    let arm = Image::load(Arc::new(registries.source(&r).unwrap()), None, Some(&"linux/arm64".parse().unwrap())).await.unwrap();
    assert_eq!(arm.digest(), images[1].digest());
    validate(&arm).await.unwrap();
    let host = Image::load(Arc::new(registries.source(&r).unwrap()), None, None).await.unwrap();
    assert_eq!(host.digest(), images[0].digest(), "the host platform (amd64 here) by default");

    // Referrers: a registry without the API falls back to the sha256-HEX tag.
    let client = registries.client(&reg.addr).unwrap();
    let mut referrers = imgtool_core::Index::new();
    referrers.manifests.push(index.clone());
    let raw = bytes::Bytes::from(serde_json::to_vec(&referrers).unwrap());
    let desc = imgtool_core::Descriptor::of(imgtool_core::MediaType::OciIndex, &raw);
    let tag = format!("sha256-{}", images[0].digest().hex());
    client.put_manifest("multi", &tag, &desc, raw).await.unwrap();
    let found = client.referrers("multi", &images[0].digest()).await.unwrap();
    assert_eq!(found.manifests.len(), 1);
    assert_eq!(found.manifests[0].digest, index.digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_tokens_are_exchanged_with_oauth2() {
    use imgtool_tests::TokenServer;
    let tmp = tempfile::tempdir().unwrap();
    let image = image_with_layers(tmp.path(), 1, "refresh").await;
    let tokens = TokenServer::start_with_refresh(Some(("alice", "pw")), Some("my-refresh-token"));
    let reg = Registry::start_with(RegistryConfig {
        auth: RegistryAuth::Token { realm: tokens.realm.clone(), cert: tokens.cert.clone() },
        ..Default::default()
    });
    let mut opts = ClientOptions::default();
    opts.credentials.insert(reg.addr.clone(), Credential::IdentityToken(Secret::new("my-refresh-token")));
    push(&Registries::new(opts), &image, &reference(&reg, "id/app:1")).await;
    let seen = tokens.seen.lock().unwrap().clone();
    assert!(seen.iter().all(|(q, _)| q.contains("grant_type=refresh_token")), "{seen:?}");
    let mut opts = ClientOptions::default();
    opts.credentials.insert(reg.addr.clone(), Credential::IdentityToken(Secret::new("stale")));
    let err =
        copy_image(&image, &Registries::new(opts).sink(&reference(&reg, "id/app:2")).unwrap(), &CopyOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("authentication failed") && !format!("{err:?}").contains("stale"), "{err:?}");
}

/// A source that claims its blobs live in `origin`, to drive the registry's 202 answer.
#[derive(Debug)]
struct PretendOrigin {
    inner: imgtool_core::SharedSource,
    origin: Reference,
}

#[async_trait::async_trait]
impl imgtool_core::BlobSource for PretendOrigin {
    async fn resolve(&self, s: Option<&str>) -> imgtool_core::Result<imgtool_core::Descriptor> {
        self.inner.resolve(s).await
    }
    async fn open(&self, d: &imgtool_core::Descriptor) -> imgtool_core::Result<imgtool_core::BlobStream> {
        self.inner.open(d).await
    }
    async fn exists(&self, d: &imgtool_core::Descriptor) -> imgtool_core::Result<bool> {
        self.inner.exists(d).await
    }
    fn describe(&self) -> String {
        "pretend".into()
    }
    fn mount_origin(&self) -> Option<Reference> {
        Some(self.origin.clone())
    }
}

/// A mount the registry cannot do (202) hands over an upload session, which is used.
#[tokio::test(flavor = "multi_thread")]
async fn refused_mounts_upload_into_the_session_given() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let built = image_with_layers(tmp.path(), 2, "session").await;
    // Same layers, but their source claims a repository that does not hold them.
    let mut image = Image::scratch(&"linux/amd64".parse().unwrap(), Flavor::Oci);
    let history = built.config().history().unwrap();
    for (l, h) in built.layers().iter().zip(history) {
        let mut l = l.clone();
        l.source = Arc::new(PretendOrigin { inner: l.source.clone(), origin: reference(&reg, "ghost:x") });
        image.push_layer(l, h);
    }
    let registries = Registries::new(ClientOptions::default());
    push(&registries, &image, &reference(&reg, "target:1")).await;
    let pulled = Image::load(Arc::new(registries.source(&reference(&reg, "target:1")).unwrap()), None, None).await.unwrap();
    validate(&pulled).await.unwrap();
    assert_eq!(reg.requests("POST", "&from=ghost"), 2, "{}", reg.log());
    // Two mount attempts answered 202 plus one plain upload (the config): no extra POSTs.
    assert_eq!(reg.requests("POST", "/v2/target/blobs/uploads/"), 3, "{}", reg.log());
    assert_eq!(registries.client(&reg.addr).unwrap().stats.mounts.load(Ordering::Relaxed), 0);
}
