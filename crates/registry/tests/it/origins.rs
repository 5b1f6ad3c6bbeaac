//! Credentials stay with the origin they belong to, token realms get them only when safe,
//! and numbers from the network cannot panic or hang the client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use imgtool_core::{CopyOptions, Descriptor, Image, MediaType, Reference, copy_image, validate};
use imgtool_registry::{ClientOptions, Credential, Registries, Secret};
use imgtool_tests::{Fault, FaultProxy, Registry, RegistryAuth, RegistryConfig, Seen, TokenServer};

use crate::{image_with_layers, pull_to_archive, push, reference};

fn basic(user: &str, pass: &str) -> Credential {
    Credential::Basic { username: user.into(), password: Secret::new(pass) }
}

fn with_creds(registry: &str, c: Credential) -> ClientOptions {
    let mut opts = ClientOptions::default();
    opts.credentials.insert(registry.to_string(), c);
    opts
}

fn via(proxy: &FaultProxy, repo: &str) -> Reference {
    format!("{}/{repo}", proxy.addr).parse().unwrap()
}

fn assert_no_auth(seen: &[Seen], what: &str) {
    assert!(!seen.is_empty(), "{what}: the foreign host got no request");
    let leaked: Vec<&Seen> = seen.iter().filter(|s| s.authorization.is_some()).collect();
    assert!(leaked.is_empty(), "{what}: credentials reached another host: {leaked:?}");
}

/// An upload `Location` and a `Link` page on another host (127.0.0.2) get no
/// `Authorization`, with Basic credentials and with Bearer tokens alike.
#[tokio::test(flavor = "multi_thread")]
async fn locations_and_links_elsewhere_get_no_credentials() {
    let reg =
        Registry::start_with(RegistryConfig { auth: RegistryAuth::Basic { user: "bob".into(), pass: "pw".into() }, ..Default::default() });
    let tmp = tempfile::tempdir().unwrap();
    let image = image_with_layers(tmp.path(), 2, "origins").await;
    // The foreign host passes what it gets on to the registry with its own login.
    let proxy = FaultProxy::start(&reg.addr, Some(("bob", "pw")));
    let registries = Registries::new(with_creds(&proxy.addr, basic("bob", "pw")));

    proxy.inject(Fault::ToForeign { method: "POST", path: "/blobs/uploads/", times: usize::MAX });
    push(&registries, &image, &via(&proxy, "o/app:1")).await;
    let seen = proxy.foreign_seen();
    assert!(seen.iter().any(|s| s.method == "PUT" && s.path.contains("digest=")), "uploads went to the Location given: {seen:?}");
    assert_no_auth(&seen, "upload Location");
    assert!(proxy.seen().iter().any(|s| s.authorization.is_some()), "the registry itself still gets them");

    proxy.clear();
    for t in ["2", "3", "4"] {
        push(&registries, &image, &via(&proxy, &format!("o/app:{t}"))).await;
    }
    let before = proxy.foreign_seen().len();
    proxy.inject(Fault::ToForeign { method: "GET", path: "/tags/list", times: 1 });
    let mut tags = registries.client(&proxy.addr).unwrap().tags("o/app", 1).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["1", "1", "2", "2", "3", "3", "4", "4"], "the page elsewhere is still read");
    let pages = &proxy.foreign_seen()[before..];
    assert!(pages.iter().all(|s| s.path.contains("/tags/list")), "{pages:?}");
    assert_no_auth(pages, "Link pagination");

    // Bearer tokens: the same rule.
    let tokens = TokenServer::start(None);
    let reg = Registry::start_with(RegistryConfig {
        auth: RegistryAuth::Token { realm: tokens.realm.clone(), cert: tokens.cert.clone() },
        ..Default::default()
    });
    let proxy = FaultProxy::start(&reg.addr, None);
    let registries = Registries::new(ClientOptions::default());
    push(&registries, &image, &via(&proxy, "t/app:1")).await;
    push(&registries, &image, &via(&proxy, "t/app:2")).await;
    assert!(proxy.seen().iter().any(|s| s.authorization.as_deref().is_some_and(|a| a.starts_with("Bearer "))));
    proxy.inject(Fault::ToForeign { method: "POST", path: "/blobs/uploads/", times: 1 });
    proxy.inject(Fault::ToForeign { method: "GET", path: "/tags/list", times: 1 });
    let client = registries.client(&proxy.addr).unwrap();
    // The foreign host has no token to pass on, so these fail; what matters is what it saw.
    let data = b"not for other hosts".to_vec();
    let desc = Descriptor::of(MediaType::Other("application/octet-stream".into()), &data);
    let session = client.start_upload("t/app").await.unwrap();
    assert_eq!(session.host_str(), Some("127.0.0.2"));
    let _ = client.upload_blob("t/app", &desc, Box::pin(std::io::Cursor::new(data)), Some(session)).await;
    let _ = client.tags("t/app", 1).await;
    assert_no_auth(&proxy.foreign_seen(), "Bearer token");
}

/// A blob redirect to another host, or to the same host and port over plain HTTP, gets no
/// `Authorization`.
#[tokio::test(flavor = "multi_thread")]
async fn redirects_to_another_scheme_get_no_credentials() {
    let reg =
        Registry::start_with(RegistryConfig { auth: RegistryAuth::Basic { user: "bob".into(), pass: "pw".into() }, ..Default::default() });
    let tmp = tempfile::tempdir().unwrap();
    let image = image_with_layers(tmp.path(), 1, "scheme").await;
    push(&Registries::new(with_creds(&reg.addr, basic("bob", "pw"))), &image, &reference(&reg, "s/app:1")).await;

    let proxy = FaultProxy::start_tls(&reg.addr, None);
    proxy.inject(Fault::RedirectBlobsToHttp);
    let mut opts = with_creds(&proxy.addr, basic("bob", "pw"));
    opts.cert_dirs = vec![proxy.cert_dir().unwrap()];
    let registries = Registries::new(opts);
    assert!(registries.client(&proxy.addr).unwrap().base().await.unwrap().as_str().starts_with("https://"));
    // Plain HTTP without credentials is refused by the registry: the pull fails, and
    // nothing was given away on the way.
    pull_to_archive(&registries, &via(&proxy, "s/app:1"), &tmp.path().join("s.tar")).await.unwrap_err();
    let seen = proxy.seen();
    let (tls, plain): (Vec<&Seen>, Vec<&Seen>) = seen.iter().partition(|s| s.tls);
    assert!(tls.iter().any(|s| s.authorization.is_some()), "HTTPS requests carry the credentials: {tls:?}");
    assert!(!plain.is_empty() && plain.iter().all(|s| s.path.contains("/blobs/")), "the redirect was followed: {plain:?}");
    assert!(plain.iter().all(|s| s.authorization.is_none()), "credentials went over plain HTTP: {plain:?}");
}

/// A token realm on another host over plain HTTP never gets the Basic credentials: the
/// client asks it anonymously, which keeps public pulls working and fails clearly
/// otherwise. A realm on the registry's own loopback host does get them.
#[tokio::test(flavor = "multi_thread")]
async fn token_realms_get_credentials_only_when_safe() {
    let tmp = tempfile::tempdir().unwrap();
    let image = image_with_layers(tmp.path(), 1, "realm").await;

    let strict = TokenServer::start(Some(("alice", "pw")));
    let reg = Registry::start_with(RegistryConfig {
        auth: RegistryAuth::Token { realm: strict.realm.clone(), cert: strict.cert.clone() },
        ..Default::default()
    });
    // Realm on 127.0.0.1 (another port), registry on 127.0.0.1: the password goes there.
    push(&Registries::new(with_creds(&reg.addr, basic("alice", "pw"))), &image, &reference(&reg, "r/app:1")).await;
    assert!(strict.seen.lock().unwrap().iter().any(|(_, auth)| *auth), "the own-host realm got the credentials");

    let proxy = FaultProxy::start(&reg.addr, None);
    proxy.inject(Fault::ForeignRealm);
    let before = strict.seen.lock().unwrap().len();
    let registries = Registries::new(with_creds(&proxy.addr, basic("alice", "pw")));
    let err = pull_to_archive(&registries, &via(&proxy, "r/app:1"), &tmp.path().join("r.tar")).await.unwrap_err().to_string();
    assert!(err.contains(&proxy.foreign) && err.contains("plain HTTP") && err.contains("another host"), "{err}");
    assert!(!err.contains("pw"), "{err}");
    let asked = proxy.foreign_seen();
    assert!(asked.iter().all(|s| s.method == "GET" && s.path.starts_with("/token")), "anonymous token requests only: {asked:?}");
    assert_no_auth(&asked, "foreign realm");
    let got = strict.seen.lock().unwrap()[before..].to_vec();
    assert!(got.iter().all(|(q, auth)| !auth && !q.contains("password")), "{got:?}");

    // An open token server behind a foreign realm: the anonymous token is enough to pull.
    let open = TokenServer::start(None);
    let reg = Registry::start_with(RegistryConfig {
        auth: RegistryAuth::Token { realm: open.realm.clone(), cert: open.cert.clone() },
        ..Default::default()
    });
    push(&Registries::new(ClientOptions::default()), &image, &reference(&reg, "p/app:1")).await;
    let proxy = FaultProxy::start(&reg.addr, None);
    proxy.inject(Fault::ForeignRealm);
    let registries = Registries::new(with_creds(&proxy.addr, basic("alice", "pw")));
    let pulled = Image::load(Arc::new(registries.source(&via(&proxy, "p/app:1")).unwrap()), None, None).await.unwrap();
    validate(&pulled).await.unwrap();
    assert_no_auth(&proxy.foreign_seen(), "foreign realm, anonymous pull");
}

/// `expires_in` of any size or sign: tokens work, nothing overflows.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_token_lifetimes_are_survived() {
    let tmp = tempfile::tempdir().unwrap();
    let image = image_with_layers(tmp.path(), 1, "expiry").await;
    for expires_in in [serde_json::json!(u64::MAX), serde_json::json!(-1), serde_json::json!(0), serde_json::json!(1e300)] {
        let tokens = TokenServer::start_expiring(None, expires_in.clone());
        let reg = Registry::start_with(RegistryConfig {
            auth: RegistryAuth::Token { realm: tokens.realm.clone(), cert: tokens.cert.clone() },
            ..Default::default()
        });
        let registries = Registries::new(ClientOptions::default());
        push(&registries, &image, &reference(&reg, "e/app:1")).await;
        let pulled = Image::load(Arc::new(registries.source(&reference(&reg, "e/app:1")).unwrap()), None, None).await.unwrap();
        assert_eq!(pulled.digest(), image.digest(), "expires_in {expires_in}");
    }
}

/// Huge, negative and far-future `Retry-After`, and an upload `Range` past `u64`: no
/// panic, no wait past the retry budget, a clear error where there is no sane way on.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_retry_after_and_ranges_are_bounded() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let image = image_with_layers(tmp.path(), 2, "numbers").await;
    push(&Registries::new(ClientOptions::default()), &image, &reference(&reg, "n/app:1")).await;
    let proxy = FaultProxy::start(&reg.addr, None);
    for value in ["99999999999999999999999999", "18446744073709551615", "-1", "Fri, 31 Dec 9999 23:59:59 GMT"] {
        proxy.inject(Fault::Answer {
            method: "GET",
            path: "/manifests/",
            status: 503,
            headers: vec![("retry-after", value.to_string())],
            times: 1,
        });
        let opts = ClientOptions { retry_budget: Duration::from_secs(2), ..Default::default() };
        let started = Instant::now();
        let pulled = Image::load(Arc::new(Registries::new(opts).source(&via(&proxy, "n/app:1")).unwrap()), None, None).await.unwrap();
        assert_eq!(pulled.digest(), image.digest());
        assert!(started.elapsed() < Duration::from_secs(10), "Retry-After {value:?} waited {:?}", started.elapsed());
    }

    proxy.clear();
    proxy.inject(Fault::Status { method: "PATCH", path: "/blobs/uploads/", status: 416, retry_after: None, times: 1 });
    proxy.inject(Fault::Answer {
        method: "GET",
        path: "/blobs/uploads/",
        status: 204,
        headers: vec![("range", "0-18446744073709551615".into())],
        times: 1,
    });
    let opts = ClientOptions { chunk_size: Some(1024), ..Default::default() };
    let sink = Registries::new(opts).sink(&via(&proxy, "n/chunked:1")).unwrap();
    let err = copy_image(&image, &sink, &CopyOptions::default()).await.unwrap_err().to_string();
    assert!(err.contains("upload Range"), "{err}");
}
