//! One client per registry host: scheme and TLS, authentication, retries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::sync::{Mutex, OnceCell};
use url::Url;

use crate::auth::{Challenge, Credential, Secret, TokenCache, TokenResponse};
use crate::error::{Error, Result, parse_errors};
use imgtool_core::error_chain;

/// The API host for a registry name: Docker Hub's API lives on `registry-1.docker.io`.
pub fn api_host(registry: &str) -> &str {
    if registry == imgtool_core::DOCKER_HUB { "registry-1.docker.io" } else { registry }
}

/// Whether `host` (with an optional port) is a loopback address.
pub fn is_loopback(host: &str) -> bool {
    let h = host.rsplit_once(':').filter(|(h, p)| p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':')).map_or(host, |(h, _)| h);
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// How clients are made: which registries may skip TLS, where CAs are, who we are.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registries (host[:port]) where plain HTTP and unverified TLS are allowed.
    pub insecure: Vec<String>,
    /// Directories holding `HOST[:PORT]/*.crt` CA files, as `/etc/containers/certs.d`.
    pub cert_dirs: Vec<PathBuf>,
    /// Credentials by registry name (as written in references, e.g. `docker.io`).
    pub credentials: HashMap<String, Credential>,
    /// Credentials for every registry not named in `credentials` (from --creds).
    pub default_credential: Option<Credential>,
    /// Attempts for a request that fails in a way worth retrying.
    pub retries: u32,
    /// The longest a request keeps being retried.
    pub retry_budget: Duration,
    /// The most manifest bytes read.
    pub manifest_limit: u64,
    /// Chunk size for chunked uploads; `None` uploads each blob in one request.
    pub chunk_size: Option<u64>,
    /// Files (and helpers) to find credentials in when none are given.
    pub auth_files: crate::AuthFiles,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            cert_dirs: vec!["/etc/containers/certs.d".into(), "/etc/docker/certs.d".into()],
            credentials: HashMap::new(),
            default_credential: None,
            retries: 5,
            retry_budget: Duration::from_secs(120),
            manifest_limit: imgtool_core::MANIFEST_LIMIT,
            chunk_size: None,
            auth_files: crate::AuthFiles::from_env(),
        }
    }
}

/// Counts of what moved, for progress output and for tests that prove laziness.
#[derive(Debug, Default)]
pub struct Stats {
    /// Blob GETs started (resumptions included).
    pub blob_gets: AtomicU64,
    /// Blob bytes received.
    pub blob_bytes_in: AtomicU64,
    /// Blob uploads completed.
    pub uploads: AtomicU64,
    /// Blob bytes sent.
    pub blob_bytes_out: AtomicU64,
    /// Successful cross-repository mounts.
    pub mounts: AtomicU64,
}

#[derive(Debug, Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: TokenCache,
}

/// A client for one registry.
#[derive(Debug)]
pub struct RegistryClient {
    registry: String,
    insecure: bool,
    http: reqwest::Client,
    /// For following blob redirects to storage hosts: no auth, default TLS.
    plain: reqwest::Client,
    base: OnceCell<Url>,
    credential: Credential,
    auth: Mutex<AuthState>,
    /// Set once the token server turned down an OAuth2 password POST: use GET from then on.
    no_oauth_post: std::sync::atomic::AtomicBool,
    pub(crate) opts: ClientOptions,
    /// What moved through this client.
    pub stats: Stats,
}

fn transport(what: impl Into<String>) -> impl FnOnce(reqwest::Error) -> Error {
    let what = what.into();
    move |source| Error::Transport { what, source: source.without_url() }
}

impl RegistryClient {
    /// A client for `registry` (a reference's registry part, e.g. `docker.io`, `localhost:5000`).
    pub fn new(registry: &str, opts: &ClientOptions) -> Result<Self> {
        let host = api_host(registry).to_string();
        let insecure = opts.insecure.iter().any(|h| h == registry || h == &host);
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("imgtool/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120));
        for dir in &opts.cert_dirs {
            let d = dir.join(registry);
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "crt") {
                    let pem = std::fs::read(&p)
                        .map_err(|e| Error::Config { registry: registry.into(), why: format!("reading {}: {e}", p.display()) })?;
                    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| Error::Config {
                        registry: registry.into(),
                        why: format!("{} is not a PEM certificate: {e}", p.display()),
                    })?;
                    for c in certs {
                        builder = builder.add_root_certificate(c);
                    }
                    tracing::debug!(registry, ca = %p.display(), "trusting CA");
                }
            }
        }
        if insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(|e| Error::Config { registry: registry.into(), why: format!("cannot set up HTTPS: {e}") })?;
        let plain = reqwest::Client::builder()
            .user_agent(concat!("imgtool/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| Error::Config { registry: registry.into(), why: format!("cannot set up HTTPS: {e}") })?;
        let explicit =
            opts.credentials.get(registry).or_else(|| opts.credentials.get(&host)).cloned().or_else(|| opts.default_credential.clone());
        let credential = match explicit {
            Some(c) => c,
            None => opts.auth_files.lookup(registry)?.unwrap_or_default(),
        };
        Ok(Self {
            registry: registry.to_string(),
            insecure,
            http,
            plain,
            base: OnceCell::new(),
            credential,
            auth: Mutex::new(AuthState::default()),
            no_oauth_post: std::sync::atomic::AtomicBool::new(false),
            opts: opts.clone(),
            stats: Stats::default(),
        })
    }

    /// The registry name this client talks to.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// `https://HOST/`, or `http://HOST/` for a loopback or insecure registry that does not speak TLS.
    pub async fn base(&self) -> Result<&Url> {
        self.base
            .get_or_try_init(|| async {
                let host = api_host(&self.registry);
                let https = Url::parse(&format!("https://{host}/"))
                    .map_err(|e| Error::Config { registry: self.registry.clone(), why: e.to_string() })?;
                if !(self.insecure || is_loopback(host)) {
                    return Ok(https);
                }
                // Like docker: loopback and insecure registries may speak plain HTTP; try TLS first.
                let ping = https.join("v2/").map_err(|e| Error::Config { registry: self.registry.clone(), why: e.to_string() })?;
                match self.http.get(ping).timeout(Duration::from_secs(10)).send().await {
                    Ok(_) => Ok(https),
                    // A server that speaks TLS with a certificate we do not trust is not a
                    // reason to drop to plain HTTP: say what to do instead.
                    Err(e) if !self.insecure && error_chain(&e).contains("certificate") => Err(Error::Config {
                        registry: self.registry.clone(),
                        why: format!(
                            "its TLS certificate is not trusted ({}); put its CA in a --cert-dir as {}/ca.crt, or name it with --insecure-registry",
                            error_chain(&e),
                            self.registry
                        ),
                    }),
                    Err(e) if e.is_connect() || e.is_request() => {
                        tracing::debug!(registry = %self.registry, "no TLS ({}); using plain HTTP", error_chain(&e));
                        Url::parse(&format!("http://{host}/"))
                            .map_err(|e| Error::Config { registry: self.registry.clone(), why: e.to_string() })
                    }
                    Err(e) => Err(transport(format!("connecting to {}", self.registry))(e)),
                }
            })
            .await
    }

    /// A URL under `/v2/`.
    pub async fn url(&self, path: &str) -> Result<Url> {
        let base = self.base().await?;
        base.join(&format!("v2/{path}")).map_err(|e| Error::Protocol { url: base.to_string(), why: format!("bad path {path:?}: {e}") })
    }

    async fn authorize(&self, rb: RequestBuilder, scopes: &[String], force: bool) -> Result<RequestBuilder> {
        let mut st = self.auth.lock().await;
        match st.challenge.clone() {
            None => Ok(rb),
            Some(Challenge::Basic) => match &self.credential {
                Credential::Basic { username, password } => Ok(rb.basic_auth(username, Some(password.expose()))),
                _ => Ok(rb),
            },
            Some(Challenge::Bearer { realm, service, .. }) => {
                if let Credential::Bearer(t) = &self.credential {
                    return Ok(rb.bearer_auth(t.expose()));
                }
                let key = scopes.join(" ");
                if force {
                    st.tokens.forget(&key);
                }
                let token = match st.tokens.get(&key) {
                    Some(t) => t,
                    None => {
                        let (t, exp) = self.fetch_token(&realm, service.as_deref(), scopes).await?;
                        st.tokens.put(key, t.clone(), exp);
                        t
                    }
                };
                Ok(rb.bearer_auth(token.expose()))
            }
        }
    }

    async fn fetch_token(&self, realm: &str, service: Option<&str>, scopes: &[String]) -> Result<(Secret, Option<u64>)> {
        let url = Url::parse(realm).map_err(|e| Error::Protocol { url: realm.into(), why: format!("bad token realm: {e}") })?;
        let what = || format!("getting a token from {}", url.host_str().unwrap_or(realm));
        // OAuth2 form fields common to both grants.
        let oauth = |grant: Vec<(&'static str, String)>| {
            let mut form = grant;
            form.push(("client_id", "imgtool".into()));
            if let Some(s) = service {
                form.push(("service", s.into()));
            }
            if !scopes.is_empty() {
                form.push(("scope", scopes.join(" ")));
            }
            form
        };
        let resp = match &self.credential {
            Credential::IdentityToken(refresh) => {
                let form = oauth(vec![("grant_type", "refresh_token".into()), ("refresh_token", refresh.expose().into())]);
                self.http.post(url.clone()).form(&form).send().await.map_err(transport(what()))?
            }
            cred => {
                // A user and password go by OAuth2 POST first; token servers that only
                // know the classic GET answer 404 or 405, and get the GET.
                let posted = match cred {
                    Credential::Basic { username, password } if !self.no_oauth_post.load(Ordering::Relaxed) => {
                        let form = oauth(vec![
                            ("grant_type", "password".into()),
                            ("username", username.clone()),
                            ("password", password.expose().into()),
                        ]);
                        let resp = self.http.post(url.clone()).form(&form).send().await.map_err(transport(what()))?;
                        match resp.status() {
                            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::BAD_REQUEST => {
                                self.no_oauth_post.store(true, Ordering::Relaxed);
                                None
                            }
                            _ => Some(resp),
                        }
                    }
                    _ => None,
                };
                match posted {
                    Some(resp) => resp,
                    None => {
                        let mut get = url.clone();
                        {
                            let mut q = get.query_pairs_mut();
                            if let Some(s) = service {
                                q.append_pair("service", s);
                            }
                            for s in scopes {
                                q.append_pair("scope", s);
                            }
                        }
                        let mut rb = self.http.get(get);
                        if let Credential::Basic { username, password } = cred {
                            rb = rb.basic_auth(username, Some(password.expose()));
                        }
                        rb.send().await.map_err(transport(what()))?
                    }
                }
            }
        };
        let status = resp.status();
        let body = resp.bytes().await.map_err(transport(what()))?;
        if !status.is_success() {
            let errors = parse_errors(&body);
            return Err(if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                Error::Unauthorized { registry: self.registry.clone(), scope: scopes.join(" "), errors }
            } else {
                Error::Status { method: "GET".into(), url: strip_query(&url), status: status.as_u16(), errors }
            });
        }
        let t: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| Error::Protocol { url: strip_query(&url), why: format!("unreadable token answer: {e}") })?;
        let token = t
            .token
            .or(t.access_token)
            .ok_or_else(|| Error::Protocol { url: strip_query(&url), why: "the token answer holds no token".into() })?;
        Ok((Secret::new(token), t.expires_in))
    }

    async fn learn_challenge(&self, resp: &Response) {
        if let Some(c) = resp.headers().get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).and_then(Challenge::parse) {
            self.auth.lock().await.challenge = Some(c);
        }
    }

    /// Send a request whose body can be sent again: authenticates on 401 and retries
    /// 408/429/5xx and connection errors with backoff, honouring `Retry-After`.
    pub async fn send(&self, method: Method, url: Url, scopes: &[String], headers: HeaderMap, body: Option<Bytes>) -> Result<Response> {
        let start = Instant::now();
        let mut attempt = 0u32;
        let mut reauthed = false;
        loop {
            attempt += 1;
            let mut rb = self.http.request(method.clone(), url.clone()).headers(headers.clone());
            if let Some(b) = &body {
                rb = rb.body(b.clone());
            }
            let rb = self.authorize(rb, scopes, false).await?;
            let outcome = rb.send().await.map_err(transport(format!("{method} {}", strip_query(&url))));
            let (err, retry_after) = match outcome {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !reauthed => {
                    self.learn_challenge(&resp).await;
                    reauthed = true;
                    // Force a fresh token for these scopes before the retry.
                    let _ = self.authorize(self.http.get(url.clone()), scopes, true).await?;
                    continue;
                }
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN => {
                    let errors = parse_errors(&resp.bytes().await.unwrap_or_default());
                    return Err(Error::Unauthorized { registry: self.registry.clone(), scope: scopes.join(" "), errors });
                }
                Ok(resp) if is_retryable(resp.status()) => {
                    let ra = retry_after(&resp);
                    let status = resp.status().as_u16();
                    let errors = parse_errors(&resp.bytes().await.unwrap_or_default());
                    (Error::Status { method: method.to_string(), url: strip_query(&url), status, errors }, ra)
                }
                Ok(resp) => return Ok(resp),
                Err(e) if e.should_retry() => (e, None),
                Err(e) => return Err(e),
            };
            if attempt >= self.opts.retries.max(1) || start.elapsed() > self.opts.retry_budget {
                return Err(err);
            }
            let wait = retry_after.unwrap_or_else(|| backoff(attempt)).min(Duration::from_secs(30));
            tracing::info!(%err, attempt, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Send a request with a streamed body, once (the caller retries from a fresh stream).
    /// Authentication is settled beforehand by the request that opened the upload.
    pub async fn send_stream(
        &self,
        method: Method,
        url: Url,
        scopes: &[String],
        headers: HeaderMap,
        body: reqwest::Body,
    ) -> Result<Response> {
        let rb = self.http.request(method.clone(), url.clone()).headers(headers).body(body);
        let rb = self.authorize(rb, scopes, false).await?;
        rb.send().await.map_err(transport(format!("{method} {}", strip_query(&url))))
    }

    /// GET a URL on another host (a blob redirect) with no credentials at all.
    pub async fn get_foreign(&self, url: Url, headers: HeaderMap) -> Result<Response> {
        self.plain.get(url.clone()).headers(headers).send().await.map_err(transport(format!("GET {}", strip_query(&url))))
    }

    /// The scope for `repo` with `actions` (`pull`, `pull,push`, `delete`).
    pub fn scope(repo: &str, actions: &str) -> String {
        format!("repository:{repo}:{actions}")
    }

    /// Make sure a token for `scopes` exists (ping with the scopes), so that a following
    /// streamed request is not refused for lack of one.
    pub async fn ensure_auth(&self, scopes: &[String]) -> Result<()> {
        let url = self.url("").await?;
        let resp = self.send(Method::GET, url, scopes, HeaderMap::new(), None).await?;
        let _ = resp.bytes().await;
        Ok(())
    }

    /// The shared handle type.
    pub fn shared(self) -> Arc<Self> {
        Arc::new(self)
    }
}

fn is_retryable(s: StatusCode) -> bool {
    matches!(s.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

fn retry_after(resp: &Response) -> Option<Duration> {
    resp.headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

fn backoff(attempt: u32) -> Duration {
    let base = 200u64 << attempt.min(6);
    let jitter = rand::random::<u64>() % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter).min(Duration::from_secs(10))
}

/// A URL without its query (which may hold signatures) for messages.
pub fn strip_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

/// A header map with one entry.
pub(crate) fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
    h
}

pub(crate) fn count(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "localhost:5000", "127.0.0.1:5000", "127.9.9.9", "[::1]:5000", "::1"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["example.com", "10.0.0.1:5000", "registry-1.docker.io"] {
            assert!(!is_loopback(h), "{h}");
        }
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
    }
}
