//! One client per registry host: scheme and TLS, authentication, retries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::sync::{Mutex, OnceCell};
use url::Url;

use crate::auth::{Challenge, Credential, TokenCache};
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
    /// Credentials by registry name (as written in references, e.g. `docker.io`, or
    /// `host:port`). There is deliberately no catch-all entry: a credential belongs to one
    /// registry, and registries not named here use the `auth_files` or none.
    pub credentials: HashMap<String, Credential>,
    /// Attempts for a request that fails in a way worth retrying.
    pub retries: u32,
    /// The longest a request keeps being retried.
    pub retry_budget: Duration,
    /// The most manifest bytes read.
    pub manifest_limit: u64,
    /// Chunk size for chunked uploads; `None` uploads each blob in one request. Clamped to
    /// 1 KiB..=64 MiB, since each chunk is held in memory.
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
pub(crate) struct AuthState {
    pub challenge: Option<Challenge>,
    pub tokens: TokenCache,
    /// The realm our credentials were kept from, and why, for the error a refusal gives.
    pub withheld: Option<(String, String)>,
}

/// A client for one registry.
#[derive(Debug)]
pub struct RegistryClient {
    registry: String,
    pub(crate) insecure: bool,
    /// For the registry's own origin (and a token realm on its host): its CAs, and
    /// unverified TLS when it is named insecure.
    pub(crate) http: reqwest::Client,
    /// For every other origin (storage hosts, upload or page URLs elsewhere, token realms on
    /// other hosts): never credentials, always verified TLS.
    pub(crate) foreign: reqwest::Client,
    base: OnceCell<Url>,
    pub(crate) credential: Credential,
    /// The certificate files trusted for this registry, named in advice when TLS fails.
    cert_files: Vec<PathBuf>,
    pub(crate) auth: Mutex<AuthState>,
    /// Set once the token server turned down an OAuth2 password POST: use GET from then on.
    pub(crate) no_oauth_post: std::sync::atomic::AtomicBool,
    pub(crate) opts: ClientOptions,
    /// What moved through this client.
    pub stats: Stats,
}

pub(crate) fn transport(what: impl Into<String>) -> impl FnOnce(reqwest::Error) -> Error {
    let what = what.into();
    move |source| Error::Transport { what, source: source.without_url() }
}

impl RegistryClient {
    /// A client for `registry` (a reference's registry part, e.g. `docker.io`, `localhost:5000`).
    pub fn new(registry: &str, opts: &ClientOptions) -> Result<Self> {
        let host = api_host(registry).to_string();
        let insecure = opts.insecure.iter().any(|h| h == registry || h == &host);
        // Redirects are followed by hand, through the one place that decides on credentials.
        let new_builder = || {
            reqwest::Client::builder()
                .user_agent(concat!("imgtool/", env!("CARGO_PKG_VERSION")))
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(30))
                .read_timeout(Duration::from_secs(120))
        };
        let mut builder = new_builder();
        let mut foreign = new_builder();
        let config = |why: String| Error::Config { registry: registry.into(), why };
        let (certs, cert_files) = crate::tls::load(&opts.cert_dirs, registry).map_err(config)?;
        for c in &certs {
            // A registry's private CA usually signs its storage and token hosts too.
            let c = reqwest::Certificate::from_der(c.as_ref()).map_err(|e| config(format!("a certificate for it: {e}")))?;
            foreign = foreign.add_root_certificate(c);
        }
        if insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        } else if !certs.is_empty() {
            builder = builder.use_preconfigured_tls(crate::tls::pinned_config(certs).map_err(config)?);
        }
        let setup = |e: reqwest::Error| Error::Config { registry: registry.into(), why: format!("cannot set up HTTPS: {e}") };
        let http = builder.build().map_err(setup)?;
        let foreign = foreign.build().map_err(setup)?;
        let explicit = opts.credentials.get(registry).or_else(|| opts.credentials.get(&host)).cloned();
        let credential = match explicit {
            Some(c) => c,
            None => opts.auth_files.lookup(registry)?.unwrap_or_default(),
        };
        Ok(Self {
            registry: registry.to_string(),
            insecure,
            http,
            foreign,
            base: OnceCell::new(),
            credential,
            cert_files,
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
                    Err(e) if !self.insecure && error_chain(&e).contains("certificate") => {
                        Err(Error::Config { registry: self.registry.clone(), why: self.untrusted(&error_chain(&e)) })
                    }
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

    /// A TLS failure no retry mends, said as what to do: the server speaks plain HTTP, or
    /// its certificate is not trusted.
    fn tls_refusal(&self, e: &Error) -> Option<Error> {
        if !matches!(e, Error::Transport { .. }) {
            return None;
        }
        let chain = error_chain(e);
        let why = if chain.contains("InvalidContentType") || chain.contains("corrupt message") {
            format!("server gave HTTP response to HTTPS client: add --insecure-registry {}", self.registry)
        } else if chain.contains("certificate") && !self.insecure {
            self.untrusted(&chain)
        } else {
            return None;
        };
        Some(Error::Config { registry: self.registry.clone(), why })
    }

    fn untrusted(&self, why: &str) -> String {
        let files: Vec<String> = self.cert_files.iter().map(|p| p.display().to_string()).collect();
        if files.is_empty() {
            format!(
                "its TLS certificate is not trusted ({why}); put its CA certificate, or its own self-signed certificate, in a --cert-dir as {}/ca.crt, or name it with --insecure-registry",
                self.registry
            )
        } else {
            format!(
                "its TLS certificate is not trusted ({why}), though {} is trusted for it: that file holds neither the CA that signed the registry's certificate nor the certificate itself (for this host, and still valid); replace it with its CA's certificate or the registry's own, obtained from its operator (`openssl s_client -showcerts -connect {}` shows what the server presents: compare its fingerprint with theirs before trusting it)",
                files.join(", "),
                api_host(&self.registry)
            )
        }
    }

    /// A URL under `/v2/`.
    pub async fn url(&self, path: &str) -> Result<Url> {
        let base = self.base().await?;
        base.join(&format!("v2/{path}")).map_err(|e| Error::Protocol { url: base.to_string(), why: format!("bad path {path:?}: {e}") })
    }

    /// Whether `url` is on the origin (scheme, host, port) this registry is reached at:
    /// the one place that decides whether a request may carry its credentials.
    pub async fn is_own_origin(&self, url: &Url) -> Result<bool> {
        Ok(self.base().await?.origin() == url.origin())
    }

    /// A request to `url`, authorized for `scopes` when `url` is on the registry's own
    /// origin; to any other origin (an absolute upload `Location`, a `Link` page, a
    /// redirect, a scheme change on the same host) it goes without credentials.
    async fn request(&self, method: &Method, url: &Url, scopes: &[String]) -> Result<(RequestBuilder, bool)> {
        if self.is_own_origin(url).await? {
            let rb = self.http.request(method.clone(), url.clone());
            Ok((self.authorize(rb, scopes, false).await?, true))
        } else {
            tracing::debug!(registry = %self.registry, url = %strip_query(url), "another origin: no credentials");
            Ok((self.foreign.request(method.clone(), url.clone()), false))
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
            let (rb, own) = self.request(&method, &url, scopes).await?;
            let mut rb = rb.headers(headers.clone());
            if let Some(b) = &body {
                rb = rb.body(b.clone());
            }
            let outcome = rb.send().await.map_err(transport(format!("{method} {}", strip_query(&url))));
            let (err, retry_after) = match outcome {
                // Only the registry itself may tell us how to authenticate to it.
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !reauthed && own => {
                    self.learn_challenge(&resp).await;
                    reauthed = true;
                    // Force a fresh token for these scopes before the retry.
                    let _ = self.authorize(self.http.get(url.clone()), scopes, true).await?;
                    continue;
                }
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN => {
                    let errors = error_body(resp).await;
                    return Err(self.unauthorized(scopes, errors).await);
                }
                Ok(resp) if is_retryable(resp.status()) => {
                    let ra = retry_after(&resp);
                    let status = resp.status().as_u16();
                    let errors = error_body(resp).await;
                    (Error::Status { method: method.to_string(), url: strip_query(&url), status, errors }, ra)
                }
                Ok(resp) => return Ok(resp),
                Err(e) if self.tls_refusal(&e).is_some() => return Err(self.tls_refusal(&e).unwrap_or(e)),
                Err(e) if e.should_retry() => (e, None),
                Err(e) => return Err(e),
            };
            let left = self.opts.retry_budget.saturating_sub(start.elapsed());
            if attempt >= self.opts.retries.max(1) || left.is_zero() {
                return Err(err);
            }
            // Never sleep past the budget, whatever the server asked for.
            let wait = retry_after.unwrap_or_else(|| backoff(attempt)).min(left);
            tracing::info!(%err, attempt, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "retrying");
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
        let (rb, _) = self.request(&method, &url, scopes).await?;
        rb.headers(headers).body(body).send().await.map_err(transport(format!("{method} {}", strip_query(&url))))
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

/// The longest a `Retry-After` is honoured: a registry asking for more gets a retry
/// sooner (or the error, when the retries run out) rather than a hung command.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

fn retry_after(resp: &Response) -> Option<Duration> {
    parse_retry_after(resp.headers().get(header::RETRY_AFTER)?.to_str().ok()?, SystemTime::now())
}

/// `Retry-After` as seconds or an HTTP date, capped at [`MAX_RETRY_AFTER`]; anything else
/// (negative, junk) is ignored and the usual backoff applies.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    let wait = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is still just "a long time".
        Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        httpdate::parse_http_date(v).ok()?.duration_since(now).unwrap_or(Duration::ZERO)
    };
    if wait > MAX_RETRY_AFTER {
        tracing::debug!(retry_after = v, cap_s = MAX_RETRY_AFTER.as_secs(), "Retry-After capped");
        return Some(MAX_RETRY_AFTER);
    }
    Some(wait)
}

/// The most bytes of an error answer read: enough for any registry's JSON errors, and a
/// hostile endless body costs nothing.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The registry's error entries from an error answer, reading at most [`ERROR_BODY_LIMIT`].
pub(crate) async fn error_body(resp: Response) -> Vec<crate::ApiError> {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = ERROR_BODY_LIMIT.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= ERROR_BODY_LIMIT {
            break;
        }
    }
    parse_errors(&body)
}

/// A whole answer body, refusing more than `limit` bytes (announced or received).
pub(crate) async fn read_limited(resp: Response, limit: u64, what: &str) -> Result<Bytes> {
    let too_large = || Error::Core(imgtool_core::Error::TooLarge { what: what.to_string(), limit });
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::Transport { what: format!("reading {what}"), source: e.without_url() })?;
        body.extend_from_slice(&chunk);
        if body.len() as u64 > limit {
            return Err(too_large());
        }
    }
    Ok(Bytes::from(body))
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

    #[test]
    fn retry_after_is_bounded() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        for huge in ["61", "18446744073709551615", "99999999999999999999999999", "Fri, 31 Dec 9999 23:59:59 GMT"] {
            assert_eq!(parse_retry_after(huge, now), Some(MAX_RETRY_AFTER), "{huge}");
        }
        let soon = httpdate::fmt_http_date(now + Duration::from_secs(5));
        assert_eq!(parse_retry_after(&soon, now), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::ZERO), "a past date: now");
        for junk in ["-5", "-18446744073709551616", "1.5", "soon", ""] {
            assert_eq!(parse_retry_after(junk, now), None, "{junk}");
        }
    }

    #[test]
    fn origins_include_scheme_and_port() {
        let base = Url::parse("https://registry.example/").unwrap();
        let same = |u: &str| Url::parse(u).unwrap().origin() == base.origin();
        assert!(same("https://registry.example:443/v2/x/blobs/uploads/1?_state=a"));
        for other in [
            "http://registry.example/v2/",
            "https://registry.example:5000/v2/",
            "https://storage.example/b",
            "https://REGISTRY.example.evil/",
        ] {
            assert!(!same(other), "{other}");
        }
    }
}
