//! Installing exactly what a lock file says: `pixi.lock`, or `conda-lock.yml`.

use std::path::Path;

use rattler_conda_types::{PackageRecord, RepoDataRecord, Subdir};

use crate::error::{Error, Result};

/// The records `path` locks for `subdir` in its default environment, in dependency order.
/// A `conda-lock.yml` (CEP-37) is recognised by its name; anything else is read as a pixi
/// lock file.
pub fn locked_records(path: &Path, subdir: Subdir) -> Result<Vec<RepoDataRecord>> {
    let bad = |why: String| Error::Lock { path: path.to_path_buf(), why };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let lock = if name.ends_with(".yml") || name.ends_with(".yaml") {
        let doc = rattler_conda_lock::Document::from_path(path).map_err(|e| bad(format!("not a readable conda-lock file: {e}")))?;
        rattler_lock::LockFile::from_conda_lock_document(&doc, &rattler_lock::conda_lock::ImportOptions::default())
            .map_err(|e| bad(format!("cannot use this conda-lock file: {e}")))?
    } else {
        rattler_lock::LockFile::from_path(path).map_err(|e| bad(format!("not a readable pixi lock file: {e}")))?
    };
    let env = lock.default_environment().ok_or_else(|| bad("it has no default environment".into()))?;
    let by_platform = env.conda_repodata_records_by_platform().map_err(|e| bad(e.to_string()))?;
    let available: Vec<String> = by_platform.keys().map(|p| p.subdir().to_string()).collect();
    let records = by_platform
        .into_iter()
        .find(|(p, _)| p.subdir() == subdir)
        .map(|(_, r)| r)
        .ok_or_else(|| bad(format!("it locks nothing for {subdir}; it has: {}", available.join(", "))))?;
    Ok(PackageRecord::sort_topologically(records))
}

/// Write a pixi lock file of `records` for `subdir` (the default environment), as a solve
/// would have produced; used to pin an environment for later, solve-free builds.
pub fn write_lock(path: &Path, subdir: Subdir, channels: &[String], records: &[RepoDataRecord]) -> Result<()> {
    let bad = |why: String| Error::Lock { path: path.to_path_buf(), why };
    let platform = rattler_lock::PlatformData { name: (&subdir).into(), subdir, virtual_packages: Vec::new() };
    let mut builder = rattler_lock::LockFile::builder()
        .with_platforms(vec![platform])
        .map_err(|e| bad(e.to_string()))?
        .with_channels("default", channels.iter().map(|c| rattler_lock::Channel::from(c.as_str())));
    for r in records {
        builder = builder.with_conda_package("default", subdir.as_str(), r.clone().into()).map_err(|e| bad(e.to_string()))?;
    }
    builder.finish().to_path(path).map_err(|e| bad(format!("writing it: {e}")))
}
