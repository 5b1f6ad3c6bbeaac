//! `ADD https://...`: the download, into the spool, streamed.

use std::path::Path;

use futures::StreamExt;

/// Download `url` into a temporary file under `dir`; returns it, the file name the URL
/// gives (its last path segment, else `download`) and the sha256 of its bytes.
pub(crate) async fn download(url: &str, dir: &Path) -> Result<(tempfile::NamedTempFile, String, imgtool_core::Digest), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url}: not a valid URL: {e}"))?;
    let name = parsed
        .path_segments()
        .and_then(|mut s| s.next_back().map(str::to_string))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "download".into());
    let resp = reqwest::get(parsed.clone()).await.map_err(|e| format!("{url}: {}", imgtool_core::error_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("{url}: the server answered {}", resp.status()));
    }
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| format!("creating a download file: {e}"))?;
    let mut hasher = imgtool_core::Hasher::sha256();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("{url}: {}", imgtool_core::error_chain(&e)))?;
        hasher.update(&chunk);
        std::io::Write::write_all(&mut file, &chunk).map_err(|e| format!("writing the download of {url}: {e}"))?;
    }
    Ok((file, name, hasher.finish()))
}
