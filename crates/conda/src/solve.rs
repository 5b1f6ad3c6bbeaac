//! Channels, repodata and solving.

use std::path::Path;
use std::str::FromStr;

use rattler_conda_types::{
    Channel, GenericVirtualPackage, MatchSpec, PackageName, PackageRecord, ParseStrictness, RepoData, RepoDataRecord, Subdir, Version,
};
use rattler_solve::{ChannelPriority, SolverImpl, SolverTask};
use url::Url;

use crate::error::{Error, Result};

/// A channel as a user writes it: a local directory, a `file://`, `http://` or `https://`
/// URL, or a bare name (on conda.anaconda.org).
pub fn channel_url(channel: &str, base: &Path) -> Result<Url> {
    let bad = |why: String| Error::Channel { channel: channel.into(), why };
    let with_slash = |mut u: Url| {
        if !u.path().ends_with('/') {
            let p = format!("{}/", u.path());
            u.set_path(&p);
        }
        u
    };
    if channel.starts_with("file://") || channel.starts_with("http://") || channel.starts_with("https://") {
        return Url::parse(channel).map(with_slash).map_err(|e| bad(e.to_string()));
    }
    let p = Path::new(channel);
    if p.is_absolute() || channel.starts_with('.') || base.join(p).is_dir() {
        let abs = if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        let abs = abs.canonicalize().map_err(|e| bad(format!("{} is not a readable directory ({e})", abs.display())))?;
        return Url::from_directory_path(&abs).map_err(|()| bad("not an absolute path".into()));
    }
    if channel.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Url::parse(&format!("https://conda.anaconda.org/{channel}/")).map_err(|e| bad(e.to_string()));
    }
    Err(bad("expected a directory, a file://, http(s):// URL, or a channel name".into()))
}

/// The records of one channel for one subdir (empty when the subdir is absent, except
/// `noarch`, which every channel has). Remote channels are read over HTTP(S), preferring
/// `repodata.json.zst`.
pub async fn load_records(channel: &Url, subdir: Subdir) -> Result<Vec<RepoDataRecord>> {
    if channel.scheme() == "http" || channel.scheme() == "https" {
        return load_remote(channel, subdir).await;
    }
    load_local(channel, subdir)
}

/// The most repodata read for one subdir, compressed or not (conda-forge's largest is a
/// few hundred MiB): a small `.zst` that inflates without end must not exhaust memory.
const REPODATA_LIMIT: u64 = 1 << 30;

async fn read_limited(mut resp: reqwest::Response, url: &Url) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("GET {url}: {e}"))? {
        if body.len() as u64 + chunk.len() as u64 > REPODATA_LIMIT {
            return Err(format!("{url} is larger than {} MiB", REPODATA_LIMIT >> 20));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn inflate_limited(body: &[u8], url: &Url) -> std::result::Result<Vec<u8>, String> {
    use std::io::Read;
    let dec = zstd::stream::read::Decoder::new(body).map_err(|e| format!("{url} is not valid zstd: {e}"))?;
    let mut out = Vec::new();
    dec.take(REPODATA_LIMIT + 1).read_to_end(&mut out).map_err(|e| format!("{url} is not valid zstd: {e}"))?;
    if out.len() as u64 > REPODATA_LIMIT {
        return Err(format!("{url} inflates to more than {} MiB", REPODATA_LIMIT >> 20));
    }
    Ok(out)
}

async fn load_remote(channel: &Url, subdir: Subdir) -> Result<Vec<RepoDataRecord>> {
    let bad = |why: String| Error::Channel { channel: channel.to_string(), why };
    let client = reqwest::Client::builder()
        .user_agent(concat!("imgtool/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| bad(format!("cannot set up HTTPS: {e}")))?;
    let base = channel.join(&format!("{}/", subdir.as_str())).map_err(|e| bad(e.to_string()))?;
    let mut raw = None;
    for (name, zst) in [("repodata.json.zst", true), ("repodata.json", false)] {
        let url = base.join(name).map_err(|e| bad(e.to_string()))?;
        let resp = client.get(url.clone()).send().await.map_err(|e| bad(format!("GET {url}: {e}")))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            continue;
        }
        if !resp.status().is_success() {
            return Err(bad(format!("GET {url}: {}", resp.status())));
        }
        let body = read_limited(resp, &url).await.map_err(bad)?;
        raw = Some(if zst { inflate_limited(&body, &url).map_err(bad)? } else { body });
        break;
    }
    let Some(raw) = raw else {
        if subdir == Subdir::NoArch {
            return Err(bad("it has no noarch/repodata.json; is it a conda channel?".into()));
        }
        return Ok(Vec::new());
    };
    let repodata: RepoData = serde_json::from_slice(&raw).map_err(|e| bad(format!("{}repodata.json: {e}", base)))?;
    Ok(repodata.into_repo_data_records(&Channel::from_url(channel.clone())))
}

fn load_local(channel: &Url, subdir: Subdir) -> Result<Vec<RepoDataRecord>> {
    let bad = |why: String| Error::Channel { channel: channel.to_string(), why };
    match channel.scheme() {
        "file" => {
            let dir = channel.to_file_path().map_err(|()| bad("not a local path".into()))?;
            let path = dir.join(subdir.as_str()).join("repodata.json");
            if !path.exists() {
                if subdir == Subdir::NoArch && !dir.join("noarch").exists() {
                    return Err(bad(format!("{} has no noarch/repodata.json; is it a conda channel?", dir.display())));
                }
                return Ok(Vec::new());
            }
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() && m.len() <= REPODATA_LIMIT => {}
                Ok(m) if m.is_file() => return Err(bad(format!("{} is larger than {} MiB", path.display(), REPODATA_LIMIT >> 20))),
                _ => return Err(bad(format!("{} is not a regular file", path.display()))),
            }
            let repodata = RepoData::from_path(&path).map_err(|e| bad(format!("reading {}: {e}", path.display())))?;
            Ok(repodata.into_repo_data_records(&Channel::from_url(channel.clone())))
        }
        other => Err(bad(format!("unsupported URL scheme {other:?}"))),
    }
}

/// Parse a platform as conda names it (`linux-64`) or as images do (`linux/amd64`).
pub fn conda_subdir(platform: &str) -> Result<Subdir> {
    let mapped = match platform {
        "linux/amd64" => "linux-64",
        "linux/arm64" | "linux/arm64/v8" => "linux-aarch64",
        "linux/ppc64le" => "linux-ppc64le",
        "linux/s390x" => "linux-s390x",
        "linux/386" => "linux-32",
        other => other,
    };
    match Subdir::from_str(mapped) {
        Ok(s) if s != Subdir::NoArch && s.as_str().starts_with("linux") => Ok(s),
        _ => Err(Error::Platform {
            platform: platform.into(),
            why: "expected a Linux platform such as linux-64, linux-aarch64, linux/amd64 or linux/arm64".into(),
        }),
    }
}

/// The image platform (`linux/arm64/v8`) of a conda subdir.
pub fn image_platform(subdir: Subdir) -> imgtool_core::Platform {
    let s = match subdir.as_str() {
        "linux-aarch64" => "linux/arm64/v8",
        "linux-ppc64le" => "linux/ppc64le",
        "linux-s390x" => "linux/s390x",
        "linux-32" => "linux/386",
        _ => "linux/amd64",
    };
    s.parse().unwrap_or_else(|_| imgtool_core::Platform::host())
}

/// Virtual packages for a Linux container: `__unix`, `__linux`, `__glibc`, `__archspec`,
/// with the given overrides (`name=version`, e.g. `__glibc=2.28`, `__cuda=12.2`).
pub fn virtual_packages(subdir: Subdir, overrides: &[String]) -> Result<Vec<GenericVirtualPackage>> {
    let arch = match subdir.as_str() {
        "linux-aarch64" => "aarch64",
        "linux-ppc64le" => "ppc64le",
        "linux-s390x" => "s390x",
        "linux-32" => "x86",
        _ => "x86_64",
    };
    let mut list: Vec<(String, String, String)> = vec![
        ("__unix".into(), "0".into(), "0".into()),
        ("__linux".into(), "6.1".into(), "0".into()),
        ("__glibc".into(), "2.36".into(), "0".into()),
        ("__archspec".into(), "1".into(), arch.into()),
    ];
    for o in overrides {
        let mut parts = o.splitn(3, '=');
        let name = parts.next().unwrap_or_default().to_string();
        let version = parts.next().unwrap_or("0").to_string();
        let build = parts.next().unwrap_or("0").to_string();
        if !name.starts_with("__") {
            return Err(Error::Spec { spec: o.clone(), why: "virtual packages start with __, e.g. __glibc=2.28".into() });
        }
        list.retain(|(n, _, _)| *n != name);
        list.push((name, version, build));
    }
    list.into_iter()
        .map(|(n, v, b)| {
            let bad = |why: String| Error::Spec { spec: format!("{n}={v}"), why };
            Ok(GenericVirtualPackage {
                name: PackageName::from_str(&n).map_err(|e| bad(e.to_string()))?,
                version: Version::from_str(&v).map_err(|e| bad(e.to_string()))?,
                build_string: b.parse().map_err(|_| bad("bad build string".into()))?,
            })
        })
        .collect()
}

/// Parse match specs (`numpy>=1.26`, `python=3.12`).
pub fn parse_specs(specs: &[String]) -> Result<Vec<MatchSpec>> {
    specs
        .iter()
        .map(|s| MatchSpec::from_str(s, ParseStrictness::Lenient).map_err(|e| Error::Spec { spec: s.clone(), why: e.to_string() }))
        .collect()
}

/// Solve `specs` against `channels` (strict priority, in order) for `subdir`, returning the
/// records in dependency order.
pub async fn solve(
    channels: &[Url],
    specs: &[String],
    subdir: Subdir,
    virtual_packages: Vec<GenericVirtualPackage>,
) -> Result<Vec<RepoDataRecord>> {
    let specs = parse_specs(specs)?;
    let mut available = Vec::new();
    for c in channels {
        let mut records = load_records(c, subdir).await?;
        records.extend(load_records(c, Subdir::NoArch).await?);
        available.push(records);
    }
    let records = tokio::task::spawn_blocking(move || {
        let mut task = SolverTask::from_iter(available.iter());
        task.specs = specs;
        task.virtual_packages = virtual_packages;
        task.channel_priority = ChannelPriority::Strict;
        rattler_solve::resolvo::Solver.solve(task)
    })
    .await
    .map_err(|e| Error::install_from("the solver stopped", e))?
    .map_err(|e| match e {
        rattler_solve::SolveError::Unsolvable(lines) => Error::Unsolvable { explanation: lines.join("\n") },
        other => Error::Unsolvable { explanation: other.to_string() },
    })?
    .records;
    Ok(PackageRecord::sort_topologically(records))
}
