//! An in-process HTTP proxy in front of a real registry that injects the faults a real
//! server will not produce on demand: dropped connections, error statuses, 429 with
//! `Retry-After`, blob redirects to another host, corrupted bytes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;

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
    /// Redirect every blob GET to the storage host (see [`FaultProxy::storage_saw_auth`]).
    RedirectBlobs,
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

#[derive(Debug)]
struct Shared {
    upstream: String,
    storage: Mutex<String>,
    faults: Mutex<Vec<(Fault, usize)>>,
    /// Authorization presence on requests that reached the storage host.
    storage_auth: Mutex<Vec<bool>>,
    /// Authorization presence on blob GETs that reached the proxy.
    registry_auth: Mutex<Vec<bool>>,
    client: reqwest::Client,
    storage_creds: Option<(String, String)>,
    requests: AtomicUsize,
}

/// The proxy and its storage host, serving until dropped.
pub struct FaultProxy {
    /// `127.0.0.1:PORT` to point clients at.
    pub addr: String,
    shared: Arc<Shared>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FaultProxy {
    /// Start in front of `upstream` (`127.0.0.1:PORT`). The storage host fetches blobs
    /// from upstream with `storage_creds` when the registry needs them.
    pub fn start(upstream: &str, storage_creds: Option<(&str, &str)>) -> Self {
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            storage: Mutex::new(String::new()),
            faults: Mutex::new(Vec::new()),
            storage_auth: Mutex::new(Vec::new()),
            registry_auth: Mutex::new(Vec::new()),
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            storage_creds: storage_creds.map(|(u, p)| (u.to_string(), p.to_string())),
            requests: AtomicUsize::new(0),
        });
        // Its own thread and runtime, so it serves whatever runtime the test uses.
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let sh = shared.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let storage = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                *sh.storage.lock().unwrap() = storage.local_addr().unwrap().to_string();
                tx.send(proxy.local_addr().unwrap().to_string()).unwrap();
                let app = axum::Router::new().fallback(handle).with_state(sh.clone());
                tokio::spawn(async move { axum::serve(proxy, app).await.unwrap() });
                let store = axum::Router::new().fallback(handle_storage).with_state(sh);
                tokio::spawn(async move { axum::serve(storage, store).await.unwrap() });
                let _ = stop_rx.await;
            });
        });
        let addr = rx.recv().unwrap();
        Self { addr, shared, _stop: stop_tx }
    }

    /// Add a fault.
    pub fn inject(&self, fault: Fault) {
        let times = match &fault {
            Fault::Status { times, .. } | Fault::DropBlob { times, .. } | Fault::CorruptBlob { times } | Fault::Respond { times, .. } => {
                *times
            }
            Fault::RedirectBlobs => usize::MAX,
        };
        self.shared.faults.lock().unwrap().push((fault, times));
    }

    /// Remove all faults.
    pub fn clear(&self) {
        self.shared.faults.lock().unwrap().clear();
    }

    /// For each request the storage host got: whether it carried `Authorization`.
    pub fn storage_saw_auth(&self) -> Vec<bool> {
        self.shared.storage_auth.lock().unwrap().clone()
    }

    /// For each blob GET the proxy got: whether it carried `Authorization`.
    pub fn registry_saw_auth(&self) -> Vec<bool> {
        self.shared.registry_auth.lock().unwrap().clone()
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

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    if let Some(Fault::Status { status: code, retry_after, .. }) =
        take_fault(&shared, |f| matches!(f, Fault::Status { method: m, path: p, .. } if *m == method && path.contains(p)))
    {
        return status(code, retry_after);
    }
    if let Some(Fault::Respond { content_type, body, .. }) =
        take_fault(&shared, |f| matches!(f, Fault::Respond { method: m, path: p, .. } if *m == method && path.contains(p)))
    {
        let mut r = Response::new(Body::from(body));
        r.headers_mut().insert("content-type", HeaderValue::from_static(content_type));
        return r;
    }
    let blob = is_blob_get(&req);
    if blob {
        shared.registry_auth.lock().unwrap().push(req.headers().contains_key("authorization"));
        if take_fault(&shared, |f| matches!(f, Fault::RedirectBlobs)).is_some() {
            let storage = shared.storage.lock().unwrap().clone();
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
            let loc = format!("http://{storage}{}?signature=abc", req.uri().path());
            r.headers_mut().insert("location", HeaderValue::from_str(&loc).unwrap());
            return r;
        }
    }
    let drop_after = if blob { take_fault(&shared, |f| matches!(f, Fault::DropBlob { .. })) } else { None };
    let corrupt = blob && take_fault(&shared, |f| matches!(f, Fault::CorruptBlob { .. })).is_some();
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
    r
}

async fn handle_storage(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    shared.storage_auth.lock().unwrap().push(req.headers().contains_key("authorization"));
    let (code, headers, resp) = forward(&shared, &shared.upstream, strip_auth(req), shared.storage_creds.as_ref()).await;
    let mut r = Response::new(Body::from_stream(resp.bytes_stream()));
    *r.status_mut() = code;
    *r.headers_mut() = headers;
    r
}

fn strip_auth(mut req: Request) -> Request {
    req.headers_mut().remove("authorization");
    req
}
