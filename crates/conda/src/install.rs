//! Fetching and linking packages into a staging prefix, in-process.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use futures::{StreamExt, TryStreamExt};
use rattler_conda_types::{PackageName, PrefixRecord, RepoDataRecord, Subdir};
use serde_json::Value;

use crate::error::{Error, Result, io};
use crate::package::{CachedPackage, InstalledPackage};

/// Install `records` (already solved) into `staging`, patching prefix placeholders for
/// `target_prefix`, with packages fetched into `cache`. Nothing from a package is run.
/// Returns the packages in the order of `records`.
pub async fn install(
    records: &[RepoDataRecord],
    staging: &Path,
    target_prefix: &str,
    cache: &Path,
    subdir: Subdir,
) -> Result<Vec<InstalledPackage>> {
    let linked = link(records, &vec![true; records.len()], staging, target_prefix, cache, subdir).await?;
    Ok(linked.into_iter().flatten().map(|c| c.package).collect())
}

/// Link the records marked in `only` (the others are left alone, as if installed already;
/// the python they are linked for is still the solved one). Returns what each linked
/// package became, its `conda-meta` record sanitized, in the order of `records`.
pub(crate) async fn link(
    records: &[RepoDataRecord],
    only: &[bool],
    staging: &Path,
    target_prefix: &str,
    cache: &Path,
    subdir: Subdir,
) -> Result<Vec<Option<CachedPackage>>> {
    let name = |r: &RepoDataRecord| r.package_record.name.as_normalized().to_string();
    let wanted: HashSet<String> = records.iter().zip(only).filter(|(_, o)| **o).map(|(r, _)| name(r)).collect();
    if wanted.is_empty() {
        return Ok(vec![None; records.len()]);
    }
    let ignored: HashSet<PackageName> =
        records.iter().zip(only).filter(|(_, o)| !**o).map(|(r, _)| r.package_record.name.clone()).collect();
    std::fs::create_dir_all(cache).map_err(io(format!("creating the package cache {}", cache.display())))?;
    let wanted_records: Vec<&RepoDataRecord> = records.iter().zip(only).filter(|(_, o)| **o).map(|(r, _)| r).collect();
    for r in &wanted_records {
        crate::validate::check_record(r)?;
    }
    // Fetch (and unpack) first, so every package is checked before anything is linked.
    let packages = crate::fetch::package_cache(cache);
    let client = reqwest::Client::builder().build().map_err(|e| Error::install_from("making the download client", e))?;
    let fetched = futures::stream::iter(wanted_records.into_iter().cloned())
        .map(|r| {
            let (packages, client) = (packages.clone(), client.clone());
            async move {
                let dir = crate::fetch::fetch(&packages, &r, client).await?;
                Ok::<_, Error>((r, dir))
            }
        })
        .buffer_unordered(4)
        .try_collect::<Vec<_>>()
        .await?;
    let checked = fetched.iter().map(|(r, dir)| crate::validate::check_package(r, dir)).collect::<Result<Vec<_>>>()?;
    crate::validate::check_transaction(&checked)?;
    let job = crate::isolate::LinkJob {
        records: records.to_vec(),
        ignored: ignored.into_iter().collect(),
        staging: staging.to_path_buf(),
        target_prefix: target_prefix.to_string(),
        cache: cache.to_path_buf(),
        subdir,
    };
    crate::isolate::run(job).await?;
    // Read back through the rooted path layer: the prefix holds what packages put there.
    let fail = |e: imgtool_rootfs::Error| Error::install_from("reading the linked prefix", e);
    let root = imgtool_rootfs::Root::open(staging).map_err(fail)?;
    let meta = root.dir("conda-meta").map_err(fail)?.ok_or_else(|| Error::install("the linker wrote no conda-meta"))?;
    let mut by_name: BTreeMap<String, CachedPackage> = BTreeMap::new();
    for meta_name in meta.names().map_err(fail)? {
        let Some(meta_name) = meta_name.to_str().filter(|n| n.ends_with(".json")).map(str::to_string) else { continue };
        // Only the linker writes here; anything but a regular file is not its record.
        let text = root
            .read(format!("conda-meta/{meta_name}"), RECORD_LIMIT)
            .map_err(fail)?
            .filter(|_| meta.stat(&meta_name).ok().flatten().is_some_and(|s| s.kind == imgtool_rootfs::Kind::File))
            .ok_or_else(|| Error::install(format!("conda-meta/{meta_name} is not a regular file")))?;
        let text = String::from_utf8(text).map_err(|_| Error::install(format!("conda-meta/{meta_name} is not UTF-8")))?;
        let record: PrefixRecord =
            serde_json::from_str(&text).map_err(|e| Error::install_from(format!("reading conda-meta/{meta_name}"), e))?;
        let name = record.repodata_record.package_record.name.as_normalized().to_string();
        if !wanted.contains(&name) {
            continue;
        }
        let meta_json = sanitize(&meta_name, &text, records)?;
        let files: Vec<String> = record.files.iter().map(|f| f.to_string_lossy().replace('\\', "/")).collect();
        let size = files.iter().filter_map(|f| root.stat(f, false).ok().flatten()).map(|s| s.size).sum();
        let post_link = files.iter().find(|f| f.ends_with(&format!(".{name}-post-link.sh"))).cloned();
        let r = &record.repodata_record.package_record;
        let package = InstalledPackage { id: format!("{name}={}={}", r.version, r.build), files, size, post_link };
        by_name.insert(name, CachedPackage { package, meta_name, meta_json });
    }
    records
        .iter()
        .zip(only)
        .map(|(r, o)| match o {
            false => Ok(None),
            true => by_name
                .remove(&name(r))
                .map(Some)
                .ok_or_else(|| Error::install(format!("{} was solved but has no conda-meta record after linking", name(r)))),
        })
        .collect()
}

/// Remove what a record says about the build host (cache paths), in a stable key order,
/// so records are the same wherever the image was built.
fn sanitize(meta_name: &str, text: &str, records: &[RepoDataRecord]) -> Result<String> {
    let mut v: Value = serde_json::from_str(text).map_err(|e| Error::install_from(format!("conda-meta/{meta_name}"), e))?;
    if let Some(m) = v.as_object_mut() {
        for k in ["extracted_package_dir", "package_tarball_full_path"] {
            m.remove(k);
        }
        if let Some(link) = m.get_mut("link").and_then(Value::as_object_mut) {
            link.remove("source");
        }
        // A local channel's URL is a path on the build host: keep only its name.
        for k in ["url", "channel"] {
            if let Some(u) = m.get(k).and_then(Value::as_str).map(str::to_string)
                && let Some(local) = local_url(&u, records)
            {
                m.insert(k.into(), Value::String(local));
            }
        }
    }
    // Not written back yet: a later link into the same prefix reads these records as
    // rattler wrote them (it needs `link.source`).
    Ok(String::from_utf8_lossy(&imgtool_core::canonical_json(&v)).into_owned())
}

/// The most a `conda-meta` record may hold (a package with a million files is far less).
const RECORD_LIMIT: u64 = 256 << 20;

/// Write our own file `dir/name` into the staging prefix through the rooted path layer: a
/// directory a package made a symlink is followed inside the prefix only, and a link at the
/// name is replaced, never written through. Mode 0644.
pub(crate) fn write_in_prefix(staging: &Path, dir: &str, name: &str, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let fail = |e: imgtool_rootfs::Error| Error::install_from(format!("writing {dir}/{name}"), e);
    let root = imgtool_rootfs::Root::open(staging).map_err(fail)?;
    let d = root.make_dirs(dir, &mut |_, _| {}).map_err(fail)?;
    d.remove_all(name).map_err(fail)?;
    let mut f = d.create_file(name).map_err(fail)?;
    f.write_all(data).map_err(|e| Error::install_from(format!("writing {dir}/{name}"), e))?;
    d.set_meta(name, &imgtool_rootfs::Meta { mode: Some(0o644), ..Default::default() }, Some(&f)).map_err(fail)
}

/// `file:///home/me/chan/noarch/x.conda` -> `file:///local/chan/noarch/x.conda`, for
/// the channels of `records`.
fn local_url(u: &str, records: &[RepoDataRecord]) -> Option<String> {
    let rest = u.strip_prefix("file://")?;
    let channel = records.iter().filter_map(|r| r.channel.as_deref()).find(|c| {
        let c = c.strip_prefix("file://").unwrap_or(c).trim_end_matches('/');
        !c.is_empty() && rest.starts_with(c)
    })?;
    let base = channel.strip_prefix("file://").unwrap_or(channel).trim_end_matches('/');
    let name = base.rsplit('/').next().unwrap_or("channel");
    Some(format!("file:///local/{name}{}", &rest[base.len()..]))
}
