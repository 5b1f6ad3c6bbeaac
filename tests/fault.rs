//! An in-process HTTP proxy in front of a real registry that injects the faults a real
//! server will not produce on demand: dropped connections, error statuses, 429 with
//! `Retry-After`, blob redirects to another host, corrupted bytes; and a **foreign host**
//! on another loopback address (127.0.0.2) that records every request's `Authorization`,
//! to prove credentials stay with the origin they belong to.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;

use crate::tls::{Peer, Sniffing};

/// One fault, applied to the next `times` requests it matches.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer `status` (with `Retry-After` seconds when given) to `method` requests whose
    /// path contains `path`.
    Status {
        /// HTTP method.
        method: &'static str,
        /// Substring of the path.
        path: &'static str,
        /// Status to answer.
        status: u16,
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
        /// How many times.
        times: usize,
    },
    /// Cut blob downloads off after `bytes` bytes.
    DropBlob {
        /// Bytes sent before the cut.
        bytes: usize,
        /// How many times.
        times: usize,
    },
    /// Flip a byte in blob downloads.
    CorruptBlob {
        /// How many times.
        times: usize,
    },
    /// Redirect every blob GET to the foreign host (see [`FaultProxy::foreign_seen`]).
    RedirectBlobs,
    /// Redirect every blob GET that came over TLS to the same host and port over plain
    /// HTTP (the proxy answers both there; see [`FaultProxy::start_tls`]).
    RedirectBlobsToHttp,
    /// Point the `Location` and `Link` headers of `method` answers whose path contains
    /// `path` at the foreign host, which forwards what it gets to the registry. A GET
    /// answer without `Link` gets one (to the same page) since docker-registry 2.8 never
    /// paginates.
    ToForeign {
        /// HTTP method.
        method: &'static str,
        /// Substring of the path.
        path: &'static str,
        /// How many times.
        times: usize,
    },
    /// Move the token realm of every `WWW-Authenticate: Bearer` to the foreign host over
    /// plain HTTP; the foreign host passes token requests on to the real realm as they came.
    ForeignRealm,
    /// The foreign host answers 401 with a Basic challenge to requests without
    /// `Authorization`, so a client holding credentials for it shows which it sends.
    ForeignChallenge,
    /// Answer `method` requests whose path contains `path` with `status` and `headers`.
    Answer {
        /// HTTP method.
        method: &'static str,
        /// Substring of the path.
        path: &'static str,
        /// Status to answer.
        status: u16,
        /// Headers to send.
        headers: Vec<(&'static str, String)>,
        /// How many times.
        times: usize,
    },
    /// Answer `method` requests whose path contains `path` with this body and content type.
    Respond {
        /// HTTP method.
        method: &'static str,
        /// Substring of the path.
        path: &'static str,
        /// The content type.
        content_type: &'static str,
        /// The body.
        body: Vec<u8>,
        /// How many times.
        times: usize,
    },
}

/// One request as a listener saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Whether it came over TLS.
    pub tls: bool,
    /// Its `Authorization` header, if any.
    pub authorization: Option<String>,
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    /// The proxy's own `127.0.0.1:PORT`.
    addr: Mutex<String>,
    /// The foreign host's `127.0.0.2:PORT`.
    foreign: Mutex<String>,
    /// The token realm's `HOST:PORT` that [`Fault::ForeignRealm`] moved away.
    realm: Mutex<Option<String>>,
    faults: Mutex<Vec<(Fault, usize)>>,
    /// Every request the foreign host got.
    foreign_seen: Mutex<Vec<Seen>>,
    /// Every request the proxy got.
    seen: Mutex<Vec<Seen>>,
    client: reqwest::Client,
    storage_creds: Option<(String, String)>,
    requests: AtomicUsize,
}

/// The proxy and its foreign host, serving until dropped.
pub struct FaultProxy {
    /// `127.0.0.1:PORT` to point clients at.
    pub addr: String,
    /// `127.0.0.2:PORT`: another host, as far as any client can tell.
    pub foreign: String,
    shared: Arc<Shared>,
    cert_dir: Option<tempfile::TempDir>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FaultProxy {
    /// Start in front of `upstream` (`127.0.0.1:PORT`), over plain HTTP. The foreign host
    /// forwards to upstream with `storage_creds` (never with what it was sent).
    pub fn start(upstream: &str, storage_creds: Option<(&str, &str)>) -> Self {
        Self::start_with(upstream, storage_creds, false)
    }

    /// Like [`FaultProxy::start`], answering both HTTPS and plain HTTP on the same port;
    /// its CA is in [`FaultProxy::cert_dir`].
    pub fn start_tls(upstream: &str, storage_creds: Option<(&str, &str)>) -> Self {
        Self::start_with(upstream, storage_creds, true)
    }

    fn start_with(upstream: &str, storage_creds: Option<(&str, &str)>, tls: bool) -> Self {
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            addr: Mutex::new(String::new()),
            foreign: Mutex::new(String::new()),
            realm: Mutex::new(None),
            faults: Mutex::new(Vec::new()),
            foreign_seen: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            storage_creds: storage_creds.map(|(u, p)| (u.to_string(), p.to_string())),
            requests: AtomicUsize::new(0),
        });
        let cert_dir = tls.then(|| tempfile::tempdir().unwrap());
        // Its own thread and runtime, so it serves whatever runtime the test uses.
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let sh = shared.clone();
        let certs = cert_dir.as_ref().map(|d| d.path().to_path_buf());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = proxy.local_addr().unwrap().to_string();
                let foreign = tokio::net::TcpListener::bind("127.0.0.2:0")
                    .await
                    .expect("binding 127.0.0.2 (the foreign host): the loopback interface must carry 127.0.0.0/8");
                *sh.addr.lock().unwrap() = addr.clone();
                *sh.foreign.lock().unwrap() = foreign.local_addr().unwrap().to_string();
                let acceptor = certs.map(|d| crate::tls::acceptor(&d, &addr));
                tx.send(addr).unwrap();
                let app = axum::Router::new().fallback(handle).with_state(sh.clone());
                let listener = Sniffing { tcp: proxy, tls: acceptor };
                tokio::spawn(async move { axum::serve(listener, app.into_make_service_with_connect_info::<Peer>()).await.unwrap() });
                let elsewhere = axum::Router::new().fallback(handle_foreign).with_state(sh);
                tokio::spawn(async move { axum::serve(foreign, elsewhere).await.unwrap() });
                let _ = stop_rx.await;
            });
        });
        let addr = rx.recv().unwrap();
        let foreign = shared.foreign.lock().unwrap().clone();
        Self { addr, foreign, shared, cert_dir, _stop: stop_tx }
    }

    /// For [`FaultProxy::start_tls`]: a `--cert-dir` trusting the proxy's certificate.
    pub fn cert_dir(&self) -> Option<PathBuf> {
        self.cert_dir.as_ref().map(|d| d.path().to_path_buf())
    }

    /// Add a fault.
    pub fn inject(&self, fault: Fault) {
        let times = match &fault {
            Fault::Status { times, .. }
            | Fault::DropBlob { times, .. }
            | Fault::CorruptBlob { times }
            | Fault::Respond { times, .. }
            | Fault::ToForeign { times, .. }
            | Fault::Answer { times, .. } => *times,
            Fault::RedirectBlobs | Fault::RedirectBlobsToHttp | Fault::ForeignRealm | Fault::ForeignChallenge => usize::MAX,
        };
        self.shared.faults.lock().unwrap().push((fault, times));
    }

    /// Remove all faults.
    pub fn clear(&self) {
        self.shared.faults.lock().unwrap().clear();
    }

    /// For each request the foreign host got: whether it carried `Authorization`.
    pub fn storage_saw_auth(&self) -> Vec<bool> {
        self.foreign_seen().iter().map(|s| s.authorization.is_some()).collect()
    }

    /// For each blob GET the proxy got: whether it carried `Authorization`.
    pub fn registry_saw_auth(&self) -> Vec<bool> {
        self.seen().iter().filter(|s| s.method == "GET" && s.path.contains("/blobs/sha256:")).map(|s| s.authorization.is_some()).collect()
    }

    /// Every request the foreign host got.
    pub fn foreign_seen(&self) -> Vec<Seen> {
        self.shared.foreign_seen.lock().unwrap().clone()
    }

    /// Every request the proxy got.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// How many requests the proxy got.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::Relaxed)
    }
}

/// Take one use of the first fault `pick` accepts.
fn take_fault(shared: &Shared, pick: impl Fn(&Fault) -> bool) -> Option<Fault> {
    let mut faults = shared.faults.lock().unwrap();
    let i = faults.iter().position(|(f, left)| *left > 0 && pick(f))?;
    if faults[i].1 != usize::MAX {
        faults[i].1 -= 1;
    }
    Some(faults[i].0.clone())
}

fn status(code: u16, retry_after: Option<u64>) -> Response {
    let mut r = Response::new(Body::from(format!(r#"{{"errors":[{{"code":"INJECTED","message":"fault {code}"}}]}}"#)));
    *r.status_mut() = StatusCode::from_u16(code).unwrap();
    if let Some(s) = retry_after {
        r.headers_mut().insert("retry-after", HeaderValue::from_str(&s.to_string()).unwrap());
    }
    r
}

async fn forward(
    shared: &Shared,
    base: &str,
    req: Request,
    extra_auth: Option<&(String, String)>,
) -> (StatusCode, HeaderMap, reqwest::Response) {
    let (parts, body) = req.into_parts();
    let url = format!("http://{base}{}", parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut rb = shared.client.request(parts.method.clone(), url);
    // The Host header goes along, so the registry builds upload Locations that point
    // back at the proxy rather than around it.
    for (k, v) in &parts.headers {
        rb = rb.header(k, v);
    }
    if let Some((u, p)) = extra_auth {
        rb = rb.basic_auth(u, Some(p));
    }
    let body = reqwest::Body::wrap_stream(body.into_data_stream());
    let resp = rb.body(body).send().await.unwrap();
    (resp.status(), resp.headers().clone(), resp)
}

fn is_blob_get(req: &Request) -> bool {
    req.method() == "GET" && req.uri().path().contains("/blobs/sha256:")
}

fn seen(req: &Request, tls: bool) -> Seen {
    Seen {
        method: req.method().to_string(),
        path: req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string(),
        tls,
        authorization: req.headers().get("authorization").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
    }
}

fn redirect(to: String) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    r.headers_mut().insert("location", HeaderValue::from_str(&to).unwrap());
    r
}

async fn handle(State(shared): State<Arc<Shared>>, ConnectInfo(peer): ConnectInfo<Peer>, req: Request) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    shared.seen.lock().unwrap().push(seen(&req, peer.tls));
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let matches = |m: &str, p: &str| m == method && path.contains(p);
    if let Some(Fault::Status { status: code, retry_after, .. }) =
        take_fault(&shared, |f| matches!(f, Fault::Status { method: m, path: p, .. } if matches(m, p)))
    {
        return status(code, retry_after);
    }
    if let Some(Fault::Answer { status: code, headers, .. }) =
        take_fault(&shared, |f| matches!(f, Fault::Answer { method: m, path: p, .. } if matches(m, p)))
    {
        let mut r = status(code, None);
        for (k, v) in headers {
            r.headers_mut().insert(k, HeaderValue::from_str(&v).unwrap());
        }
        return r;
    }
    if let Some(Fault::Respond { content_type, body, .. }) =
        take_fault(&shared, |f| matches!(f, Fault::Respond { method: m, path: p, .. } if matches(m, p)))
    {
        let mut r = Response::new(Body::from(body));
        r.headers_mut().insert("content-type", HeaderValue::from_static(content_type));
        return r;
    }
    let blob = is_blob_get(&req);
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    if blob && take_fault(&shared, |f| matches!(f, Fault::RedirectBlobs)).is_some() {
        let foreign = shared.foreign.lock().unwrap().clone();
        return redirect(format!("http://{foreign}{}?signature=abc", req.uri().path()));
    }
    if blob && peer.tls && take_fault(&shared, |f| matches!(f, Fault::RedirectBlobsToHttp)).is_some() {
        let own = shared.addr.lock().unwrap().clone();
        return redirect(format!("http://{own}{path_and_query}"));
    }
    let to_foreign = take_fault(&shared, |f| matches!(f, Fault::ToForeign { method: m, path: p, .. } if matches(m, p))).is_some();
    let foreign_realm = take_fault(&shared, |f| matches!(f, Fault::ForeignRealm)).is_some();
    let drop_after = if blob { take_fault(&shared, |f| matches!(f, Fault::DropBlob { .. })) } else { None };
    let corrupt = blob && take_fault(&shared, |f| matches!(f, Fault::CorruptBlob { .. })).is_some();
    let mut req = req;
    if peer.tls {
        // So the registry writes https:// into the Locations it builds from Host.
        req.headers_mut().insert("x-forwarded-proto", HeaderValue::from_static("https"));
    }
    let (code, headers, resp) = forward(&shared, &shared.upstream, req, None).await;
    let limit = match drop_after {
        Some(Fault::DropBlob { bytes, .. }) => Some(bytes),
        _ => None,
    };
    let mut sent = 0usize;
    let mut flipped = false;
    let stream = resp.bytes_stream().map(move |chunk| -> Result<Bytes, std::io::Error> {
        let mut chunk = chunk.map_err(std::io::Error::other)?;
        if corrupt && !flipped && !chunk.is_empty() {
            let mut v = chunk.to_vec();
            v[0] ^= 0xff;
            chunk = Bytes::from(v);
            flipped = true;
        }
        if let Some(limit) = limit {
            // An error in the body makes the server cut the connection mid-blob.
            if sent >= limit {
                return Err(std::io::Error::other("injected: connection dropped"));
            }
            if sent + chunk.len() > limit {
                let part = chunk.slice(..limit - sent);
                sent = limit;
                return Ok(part);
            }
        }
        sent += chunk.len();
        Ok(chunk)
    });
    let mut r = Response::new(Body::from_stream(stream));
    *r.status_mut() = code;
    *r.headers_mut() = headers;
    let foreign = shared.foreign.lock().unwrap().clone();
    if to_foreign {
        if method == "GET" && code == StatusCode::OK && !r.headers().contains_key("link") {
            // docker-registry 2.8 sends everything in one page: make a next page, the
            // same one again, elsewhere.
            r.headers_mut().insert("link", HeaderValue::from_str(&format!("<{path_and_query}>; rel=\"next\"")).unwrap());
        }
        rewrite(r.headers_mut(), "location", |v| Some(format!("http://{foreign}{}", path_of(v))));
        rewrite(r.headers_mut(), "link", |v| {
            let (target, rest) = v.strip_prefix('<')?.split_once('>')?;
            Some(format!("<http://{foreign}{}>{rest}", path_of(target)))
        });
    }
    if foreign_realm {
        rewrite(r.headers_mut(), "www-authenticate", |v| {
            let start = v.find("realm=\"")? + "realm=\"".len();
            let end = start + v[start..].find('"')?;
            let realm = reqwest::Url::parse(&v[start..end]).ok()?;
            *shared.realm.lock().unwrap() = Some(format!("{}:{}", realm.host_str()?, realm.port_or_known_default()?));
            Some(format!("{}http://{foreign}{}{}", &v[..start], realm.path(), &v[end..]))
        });
    }
    r
}

/// The path and query of an absolute or relative URL.
fn path_of(url: &str) -> &str {
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => url,
    }
}

fn rewrite(headers: &mut HeaderMap, name: &'static str, f: impl Fn(&str) -> Option<String>) {
    if let Some(new) = headers.get(name).and_then(|v| v.to_str().ok()).and_then(&f) {
        headers.insert(name, HeaderValue::from_str(&new).unwrap());
    }
}

/// The foreign host: records, then passes token requests on to the realm it stands in
/// for (as they came), and everything else to the registry with its own credentials.
async fn handle_foreign(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    shared.foreign_seen.lock().unwrap().push(seen(&req, false));
    if !req.headers().contains_key("authorization") && take_fault(&shared, |f| matches!(f, Fault::ForeignChallenge)).is_some() {
        let mut r = status(401, None);
        r.headers_mut().insert("www-authenticate", HeaderValue::from_static("Basic realm=\"foreign\""));
        return r;
    }
    let realm = shared.realm.lock().unwrap().clone();
    let (code, headers, resp) = match realm {
        Some(realm) if req.uri().path().starts_with("/token") => forward(&shared, &realm, req, None).await,
        _ => forward(&shared, &shared.upstream, strip_auth(req), shared.storage_creds.as_ref()).await,
    };
    let mut r = Response::new(Body::from_stream(resp.bytes_stream()));
    *r.status_mut() = code;
    *r.headers_mut() = headers;
    r
}

fn strip_auth(mut req: Request) -> Request {
    req.headers_mut().remove("authorization");
    req
}
