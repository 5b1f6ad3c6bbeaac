//! The distribution API: manifests, blobs, uploads, mounts, tags, catalog, referrers.

use bytes::Bytes;
use imgtool_core::{BlobStream, Descriptor, Digest, Hasher, Index, MediaType};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use crate::client::{RegistryClient, count, error_body, headers, read_limited, strip_query};
use crate::error::{Error, Result};

/// Every manifest type we read, in the `Accept` header of manifest requests. Without the
/// OCI types a registry answers 404 for OCI manifests; without any, it may down-convert
/// to schema 1.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.1";

/// What a mount request gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// 201: the blob is in the repository now.
    Mounted,
    /// 202: the registry could not mount; upload at this location instead.
    Upload(Url),
}

async fn fail(method: &str, url: &Url, resp: Response) -> Error {
    let status = resp.status().as_u16();
    let errors = error_body(resp).await;
    Error::Status { method: method.into(), url: strip_query(url), status, errors }
}

/// The most bytes of one tag or catalog page, or of a referrers index.
const PAGE_LIMIT: u64 = 16 << 20;

/// The largest upload chunk: each is held in memory while it is sent.
const MAX_CHUNK: u64 = 64 << 20;

fn not_found(what: String, place: String) -> Error {
    Error::Core(imgtool_core::Error::NotFound { what, place })
}

fn digest_header(resp: &Response) -> Option<Digest> {
    resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).and_then(|s| s.parse().ok())
}

fn location(base: &Url, resp: &Response) -> Result<Url> {
    let loc = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Protocol { url: strip_query(base), why: "the registry sent no Location for the upload".into() })?;
    // Relative or absolute; the query (upload state) is kept as it is.
    base.join(loc).map_err(|e| Error::Protocol { url: strip_query(base), why: format!("bad Location {loc:?}: {e}") })
}

/// Where a 206 answer's `Content-Range: bytes START-END/TOTAL` starts.
fn content_range_start(resp: &Response) -> Option<u64> {
    let v = resp.headers().get(header::CONTENT_RANGE)?.to_str().ok()?;
    v.trim().strip_prefix("bytes")?.trim().split('-').next()?.trim().parse().ok()
}

impl RegistryClient {
    /// GET a manifest by tag or digest: its descriptor and bytes, verified against the
    /// digest asked for and the one the registry announced, and capped in size.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<(Descriptor, Bytes)> {
        let url = self.url(&format!("{repo}/manifests/{reference}")).await?;
        let scopes = [Self::scope(repo, "pull")];
        let resp = self.send(Method::GET, url.clone(), &scopes, headers(header::ACCEPT, MANIFEST_ACCEPT), None).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(not_found(format!("manifest {reference}"), format!("{}/{repo}", self.registry())));
        }
        if !resp.status().is_success() {
            return Err(fail("GET", &url, resp).await);
        }
        let announced = digest_header(&resp);
        let media_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
        let body = read_limited(resp, self.opts.manifest_limit, &format!("manifest {repo}:{reference}")).await?;
        let actual = Digest::sha256_of(&body);
        let expected = reference.parse::<Digest>().ok().or(announced.filter(|d| d.algorithm() == imgtool_core::Algorithm::Sha256));
        if let Some(expected) = expected {
            let actual = if expected.algorithm() == actual.algorithm() {
                actual
            } else {
                let mut h = Hasher::new(expected.algorithm());
                h.update(&body);
                h.finish()
            };
            if actual != expected {
                return Err(imgtool_core::Error::DigestMismatch { what: format!("manifest {repo}:{reference}"), expected, actual }.into());
            }
        }
        let mt = media_type.map(|m| MediaType::from(m.as_str())).unwrap_or(MediaType::OciManifest);
        if mt.is_schema1() {
            return Err(imgtool_core::Error::Schema1.into());
        }
        let desc = Descriptor::of(mt, &body);
        Ok((desc, body))
    }

    /// HEAD a manifest: its descriptor, or `None` when absent.
    pub async fn head_manifest(&self, repo: &str, reference: &str) -> Result<Option<Descriptor>> {
        let url = self.url(&format!("{repo}/manifests/{reference}")).await?;
        let resp =
            self.send(Method::HEAD, url.clone(), &[Self::scope(repo, "pull")], headers(header::ACCEPT, MANIFEST_ACCEPT), None).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(fail("HEAD", &url, resp).await);
        }
        let digest = digest_header(&resp)
            .ok_or_else(|| Error::Protocol { url: strip_query(&url), why: "no Docker-Content-Digest header".into() })?;
        let mt =
            resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/vnd.oci.image.manifest.v1+json");
        let size = resp.content_length().unwrap_or(0);
        Ok(Some(Descriptor::new(MediaType::from(mt.split(';').next().unwrap_or(mt).trim()), digest, size)))
    }

    /// PUT manifest bytes under a tag or their digest, exactly as given.
    pub async fn put_manifest(&self, repo: &str, reference: &str, desc: &Descriptor, raw: Bytes) -> Result<()> {
        let url = self.url(&format!("{repo}/manifests/{reference}")).await?;
        let h = headers(header::CONTENT_TYPE, desc.media_type.as_str());
        let resp = self.send(Method::PUT, url.clone(), &[Self::scope(repo, "pull,push")], h, Some(raw)).await?;
        if !resp.status().is_success() {
            return Err(fail("PUT", &url, resp).await);
        }
        if let Some(d) = digest_header(&resp)
            && d != desc.digest
        {
            return Err(imgtool_core::Error::DigestMismatch {
                what: format!("manifest pushed to {repo}:{reference}"),
                expected: desc.digest.clone(),
                actual: d,
            }
            .into());
        }
        Ok(())
    }

    /// DELETE a manifest by digest.
    pub async fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<()> {
        let url = self.url(&format!("{repo}/manifests/{digest}")).await?;
        let resp = self.send(Method::DELETE, url.clone(), &[Self::scope(repo, "delete")], HeaderMap::new(), None).await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Err(not_found(format!("manifest {digest}"), format!("{}/{repo}", self.registry()))),
            StatusCode::METHOD_NOT_ALLOWED => {
                Err(Error::Config { registry: self.registry().into(), why: "deleting is disabled on this registry".into() })
            }
            _ => Err(fail("DELETE", &url, resp).await),
        }
    }

    /// HEAD a blob: its size, or `None` when absent.
    pub async fn head_blob(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        let url = self.url(&format!("{repo}/blobs/{digest}")).await?;
        let resp = self.send(Method::HEAD, url.clone(), &[Self::scope(repo, "pull")], HeaderMap::new(), None).await?;
        match resp.status() {
            // The header, not `content_length()`: a HEAD response's body is empty, so that says 0.
            s if s.is_success() => {
                Ok(Some(resp.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0)))
            }
            StatusCode::NOT_FOUND => Ok(None),
            // A redirect means the blob exists at a storage host.
            s if s.is_redirection() => Ok(Some(0)),
            _ => Err(fail("HEAD", &url, resp).await),
        }
    }

    /// Open a blob from `offset` (following a redirect to a storage host without credentials).
    pub(crate) async fn open_blob_at(&self, repo: &str, digest: &Digest, offset: u64) -> Result<Response> {
        let url = self.url(&format!("{repo}/blobs/{digest}")).await?;
        let mut h = HeaderMap::new();
        if offset > 0
            && let Ok(v) = HeaderValue::from_str(&format!("bytes={offset}-"))
        {
            h.insert(header::RANGE, v);
        }
        count(&self.stats.blob_gets, 1);
        let scopes = [Self::scope(repo, "pull")];
        let mut resp = self.send(Method::GET, url.clone(), &scopes, h.clone(), None).await?;
        let mut at = url.clone();
        for _ in 0..5 {
            if !resp.status().is_redirection() {
                break;
            }
            // `send` gives credentials only to the registry's own origin: a storage host,
            // or the same host over another scheme, gets none.
            at = location(&at, &resp)?;
            resp = self.send(Method::GET, at.clone(), &scopes, h.clone(), None).await?;
        }
        match resp.status() {
            StatusCode::OK if offset == 0 => Ok(resp),
            StatusCode::PARTIAL_CONTENT if offset > 0 => match content_range_start(&resp) {
                Some(start) if start == offset => Ok(resp),
                start => Err(Error::Protocol {
                    url: strip_query(&url),
                    why: format!("asked for bytes from {offset}, got a range starting at {}", start.map_or("?".into(), |s| s.to_string())),
                }),
            },
            StatusCode::OK => Err(Error::Protocol { url: strip_query(&url), why: "the registry ignored a Range request".into() }),
            StatusCode::NOT_FOUND => Err(not_found(format!("blob {digest}"), format!("{}/{repo}", self.registry()))),
            _ => Err(fail("GET", &url, resp).await),
        }
    }

    /// Stream a blob; a dropped connection is resumed with `Range`. Not verified here:
    /// wrap it with [`imgtool_core::verify`].
    pub fn get_blob(self: &std::sync::Arc<Self>, repo: &str, desc: &Descriptor) -> BlobStream {
        crate::stream::ResumingBlob::start(self.clone(), repo.to_string(), desc.clone())
    }

    /// Try to mount `digest` from `from` (same registry) into `repo`.
    pub async fn mount_blob(&self, repo: &str, digest: &Digest, from: &str) -> Result<Mount> {
        let mut url = self.url(&format!("{repo}/blobs/uploads/")).await?;
        url.query_pairs_mut().append_pair("mount", &digest.to_string()).append_pair("from", from);
        let scopes = [Self::scope(repo, "pull,push"), Self::scope(from, "pull")];
        let resp = self.send(Method::POST, url.clone(), &scopes, HeaderMap::new(), Some(Bytes::new())).await?;
        match resp.status() {
            StatusCode::CREATED => {
                count(&self.stats.mounts, 1);
                Ok(Mount::Mounted)
            }
            StatusCode::ACCEPTED => Ok(Mount::Upload(location(&url, &resp)?)),
            _ => Err(fail("POST", &url, resp).await),
        }
    }

    /// Start an upload session.
    pub async fn start_upload(&self, repo: &str) -> Result<Url> {
        let url = self.url(&format!("{repo}/blobs/uploads/")).await?;
        let resp = self.send(Method::POST, url.clone(), &[Self::scope(repo, "pull,push")], HeaderMap::new(), Some(Bytes::new())).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(fail("POST", &url, resp).await);
        }
        location(&url, &resp)
    }

    /// Upload a blob from `data` into the session at `session` (or a new one).
    pub async fn upload_blob(&self, repo: &str, desc: &Descriptor, data: BlobStream, session: Option<Url>) -> Result<()> {
        let session = match session {
            Some(s) => s,
            None => self.start_upload(repo).await?,
        };
        let scopes = [Self::scope(repo, "pull,push")];
        match self.opts.chunk_size {
            None => self.upload_monolithic(repo, desc, data, session, &scopes).await,
            Some(chunk) => self.upload_chunked(repo, desc, data, session, &scopes, chunk.clamp(1024, MAX_CHUNK)).await,
        }?;
        count(&self.stats.uploads, 1);
        count(&self.stats.blob_bytes_out, desc.size);
        Ok(())
    }

    async fn upload_monolithic(&self, _repo: &str, desc: &Descriptor, data: BlobStream, session: Url, scopes: &[String]) -> Result<()> {
        let mut url = session;
        url.query_pairs_mut().append_pair("digest", &desc.digest.to_string());
        let mut h = headers(header::CONTENT_TYPE, "application/octet-stream");
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(desc.size));
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(data, 256 * 1024));
        let resp = self.send_stream(Method::PUT, url.clone(), scopes, h, body).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(fail("PUT", &url, resp).await);
        }
        Ok(())
    }

    async fn upload_chunked(
        &self,
        _repo: &str,
        desc: &Descriptor,
        mut data: BlobStream,
        session: Url,
        scopes: &[String],
        chunk: u64,
    ) -> Result<()> {
        use tokio::io::AsyncReadExt;
        let mut url = session;
        let mut sent = 0u64;
        let mut buf = Vec::with_capacity(usize::try_from(chunk).unwrap_or(1024));
        loop {
            buf.clear();
            (&mut data)
                .take(chunk)
                .read_to_end(&mut buf)
                .await
                .map_err(|e| imgtool_core::Error::io(format!("reading {}", desc.digest), e))?;
            if buf.is_empty() {
                break;
            }
            let end = sent.saturating_add(buf.len() as u64 - 1);
            let mut attempt = 0;
            loop {
                attempt += 1;
                let mut h = headers(header::CONTENT_TYPE, "application/octet-stream");
                if let Ok(v) = HeaderValue::from_str(&format!("{sent}-{end}")) {
                    h.insert(header::CONTENT_RANGE, v);
                }
                let resp = self.send(Method::PATCH, url.clone(), scopes, h, Some(Bytes::copy_from_slice(&buf))).await?;
                match resp.status() {
                    StatusCode::ACCEPTED => {
                        url = location(&url, &resp)?;
                        break;
                    }
                    // The registry has a different idea of where we are: ask, and resend
                    // from there if it is inside the chunk we still hold.
                    StatusCode::RANGE_NOT_SATISFIABLE if attempt < 3 => {
                        let have = self.upload_offset(&url, scopes).await?;
                        if have < sent || have > end.saturating_add(1) {
                            return Err(Error::Protocol {
                                url: strip_query(&url),
                                why: format!("upload offset {have} is outside the chunk {sent}-{end}"),
                            });
                        }
                        // In 0..=buf.len(), checked just above.
                        let skip = usize::try_from(have - sent).unwrap_or(buf.len()).min(buf.len());
                        buf.drain(..skip);
                        sent = have;
                        if buf.is_empty() {
                            break;
                        }
                    }
                    _ => return Err(fail("PATCH", &url, resp).await),
                }
            }
            sent = end.saturating_add(1);
        }
        url.query_pairs_mut().append_pair("digest", &desc.digest.to_string());
        let resp = self.send(Method::PUT, url.clone(), scopes, HeaderMap::new(), Some(Bytes::new())).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(fail("PUT", &url, resp).await);
        }
        Ok(())
    }

    /// How many bytes an upload session holds (from its `Range: 0-N`).
    async fn upload_offset(&self, session: &Url, scopes: &[String]) -> Result<u64> {
        let resp = self.send(Method::GET, session.clone(), scopes, HeaderMap::new(), None).await?;
        let Some(range) = resp.headers().get(header::RANGE) else { return Ok(0) };
        let bad = || Error::Protocol { url: strip_query(session), why: format!("unreadable upload Range {range:?}") };
        let range = range.to_str().map_err(|_| bad())?;
        // `0-0` is both "nothing yet" (204, as distribution says it) and "one byte".
        if range.trim() == "0-0" && resp.status() == StatusCode::NO_CONTENT {
            return Ok(0);
        }
        let (start, end) = range.trim().trim_start_matches("bytes=").split_once('-').ok_or_else(bad)?;
        let end: u64 = end.trim().parse().map_err(|_| bad())?;
        if start.trim() != "0" {
            return Err(bad());
        }
        end.checked_add(1).ok_or_else(bad)
    }

    /// DELETE a blob.
    pub async fn delete_blob(&self, repo: &str, digest: &Digest) -> Result<()> {
        let url = self.url(&format!("{repo}/blobs/{digest}")).await?;
        let resp = self.send(Method::DELETE, url.clone(), &[Self::scope(repo, "delete")], HeaderMap::new(), None).await?;
        if resp.status().is_success() { Ok(()) } else { Err(fail("DELETE", &url, resp).await) }
    }

    /// Every tag of `repo`, following `Link` pagination with pages of `page` names.
    pub async fn tags(&self, repo: &str, page: usize) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut url = self.url(&format!("{repo}/tags/list")).await?;
        url.query_pairs_mut().append_pair("n", &page.to_string());
        let mut out = Vec::new();
        for body in self.paginate(url, &[Self::scope(repo, "pull")]).await? {
            let t: Tags = serde_json::from_slice(&body)
                .map_err(|e| Error::Protocol { url: repo.into(), why: format!("unreadable tag list: {e}") })?;
            out.extend(t.tags.unwrap_or_default());
        }
        Ok(out)
    }

    /// Every repository in the registry's catalog.
    pub async fn catalog(&self, page: usize) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Catalog {
            #[serde(default)]
            repositories: Vec<String>,
        }
        let mut url = self.url("_catalog").await?;
        url.query_pairs_mut().append_pair("n", &page.to_string());
        let mut out = Vec::new();
        for body in self.paginate(url, &["registry:catalog:*".to_string()]).await? {
            let c: Catalog = serde_json::from_slice(&body)
                .map_err(|e| Error::Protocol { url: "_catalog".into(), why: format!("unreadable catalog: {e}") })?;
            out.extend(c.repositories);
        }
        Ok(out)
    }

    async fn paginate(&self, first: Url, scopes: &[String]) -> Result<Vec<Bytes>> {
        let mut pages = Vec::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            if pages.len() > 10_000 {
                return Err(Error::Protocol { url: strip_query(&url), why: "more than 10000 pages".into() });
            }
            let resp = self.send(Method::GET, url.clone(), scopes, HeaderMap::new(), None).await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Err(not_found(url.path().to_string(), self.registry().to_string()));
            }
            if !resp.status().is_success() {
                return Err(fail("GET", &url, resp).await);
            }
            // Link: </v2/x/tags/list?n=2&last=b>; rel="next"
            next = resp
                .headers()
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.split(',').find(|p| p.contains("rel=\"next\"")))
                .and_then(|p| p.split(['<', '>']).nth(1))
                .and_then(|target| url.join(target).ok());
            pages.push(read_limited(resp, PAGE_LIMIT, &strip_query(&url)).await?);
        }
        Ok(pages)
    }

    /// The manifests that refer to `digest` (the referrers API, or the `sha256-HEX` tag
    /// the fallback scheme uses when the registry has no such API).
    pub async fn referrers(&self, repo: &str, digest: &Digest) -> Result<Index> {
        let url = self.url(&format!("{repo}/referrers/{digest}")).await?;
        let resp = self
            .send(Method::GET, url.clone(), &[Self::scope(repo, "pull")], headers(header::ACCEPT, MediaType::OciIndex.as_str()), None)
            .await?;
        if resp.status().is_success() {
            let body = read_limited(resp, PAGE_LIMIT, &strip_query(&url)).await?;
            return serde_json::from_slice(&body)
                .map_err(|e| Error::Protocol { url: strip_query(&url), why: format!("unreadable referrers index: {e}") });
        }
        if resp.status() != StatusCode::NOT_FOUND {
            return Err(fail("GET", &url, resp).await);
        }
        let tag = format!("{}-{}", digest.algorithm().as_str(), digest.hex());
        match self.get_manifest(repo, &tag).await {
            Ok((_, raw)) => {
                serde_json::from_slice(&raw).map_err(|e| Error::Protocol { url: tag, why: format!("unreadable referrers index: {e}") })
            }
            Err(Error::Core(imgtool_core::Error::NotFound { .. })) => Ok(Index::new()),
            Err(e) => Err(e),
        }
    }
}
