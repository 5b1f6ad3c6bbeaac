//! Every package checked before it is linked: a channel is someone else's input, and
//! linking happens on the host, so nothing a package names may lead outside the staging
//! prefix. Paths must be relative without `..`, symlinks must stay inside the prefix,
//! files the linker reads (placeholders, `no_link`) must be regular files, nothing may be
//! shipped under `conda-meta/`, and the record's URL must lie inside its channel.

use std::path::Path;

use rattler_conda_types::RepoDataRecord;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The largest `info/paths.json` read (a real one is a few MiB at most).
const PATHS_JSON_LIMIT: u64 = 64 << 20;

fn id(r: &RepoDataRecord) -> String {
    let p = &r.package_record;
    format!("{}-{}-{}", p.name.as_normalized(), p.version, p.build)
}

fn unsafe_entry(r: &RepoDataRecord, entry: &str, why: impl Into<String>) -> Error {
    Error::Unsafe { package: id(r), entry: entry.into(), why: why.into() }
}

/// The record's file name and URL stay inside its channel: a repodata `fn` with `../` or a
/// `base_url` elsewhere would install any file the host can read as a package.
pub(crate) fn check_record(r: &RepoDataRecord) -> Result<()> {
    let name = &r.identifier.to_file_name();
    if name.is_empty() || name.contains('/') || name.contains('\\') || name == "." || name == ".." {
        return Err(unsafe_entry(r, "fn", format!("{name:?} is not a file name")));
    }
    if let Some(channel) = r.channel.as_deref().filter(|c| !c.is_empty()) {
        let base = channel.trim_end_matches('/');
        let url = r.url.as_str();
        let inside = url.strip_prefix(base).is_some_and(|rest| rest.starts_with('/') && !rest.split('/').any(|c| c == ".." || c == "."));
        if !inside {
            return Err(unsafe_entry(r, "url", format!("{url} is not inside its channel {base}")));
        }
    }
    if r.url.path_segments().is_some_and(|mut s| s.any(|c| c == ".." || c == "%2e%2e" || c == "%2E%2E")) {
        return Err(unsafe_entry(r, "url", format!("{} climbs with ..", r.url)));
    }
    Ok(())
}

#[derive(Deserialize)]
struct PathsJson {
    paths: Vec<PathEntry>,
}

#[derive(Deserialize)]
struct PathEntry {
    #[serde(rename = "_path")]
    path: String,
    #[serde(default)]
    path_type: String,
    #[serde(default)]
    prefix_placeholder: Option<String>,
    #[serde(default)]
    no_link: bool,
}

/// A path a package names: relative, no `..`, no empty or `.` parts, not under conda-meta.
fn check_path(r: &RepoDataRecord, p: &str) -> Result<Vec<String>> {
    if p.starts_with('/') || p.contains('\0') || p.contains('\\') {
        return Err(unsafe_entry(r, p, "an absolute or malformed path"));
    }
    let parts: Vec<String> = p.split('/').map(str::to_string).collect();
    if parts.iter().any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(unsafe_entry(r, p, "a path must be relative, without '..' or empty parts"));
    }
    if parts[0] == "conda-meta" {
        return Err(unsafe_entry(r, p, "packages may not ship files under conda-meta/"));
    }
    Ok(parts)
}

/// Where a symlink at `parts` pointing at `target` leads, lexically, from the prefix;
/// `None` when it leaves the prefix (or is absolute: staging is on the host, so an
/// absolute link would be followed there while linking).
fn link_stays_inside(parts: &[String], target: &str) -> bool {
    if target.starts_with('/') || target.is_empty() {
        return false;
    }
    let mut at: Vec<&str> = parts[..parts.len() - 1].iter().map(String::as_str).collect();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if at.pop().is_none() {
                    return false;
                }
            }
            c => at.push(c),
        }
    }
    true
}

/// Check the extracted package at `dir` (in the package cache) before it is linked.
pub(crate) fn check_package(r: &RepoDataRecord, dir: &Path) -> Result<()> {
    let root = imgtool_rootfs::Root::open(dir).map_err(|e| unsafe_entry(r, &dir.display().to_string(), e.to_string()))?;
    let bytes = match root.read("info/paths.json", PATHS_JSON_LIMIT) {
        Ok(Some(b)) => b,
        // Old packages have `info/files` only; rattler reads it, and the same checks
        // apply to what the directory holds below.
        Ok(None) if root.stat("info/paths.json", false).ok().flatten().is_none() => return check_tree(r, &root, None),
        Ok(None) => return Err(unsafe_entry(r, "info/paths.json", "not a regular file")),
        Err(e) => return Err(unsafe_entry(r, "info/paths.json", e.to_string())),
    };
    let paths: PathsJson = serde_json::from_slice(&bytes).map_err(|e| unsafe_entry(r, "info/paths.json", e.to_string()))?;
    check_tree(r, &root, Some(&paths.paths))
}

fn check_tree(r: &RepoDataRecord, root: &imgtool_rootfs::Root, listed: Option<&[PathEntry]>) -> Result<()> {
    let Some(listed) = listed else { return Ok(()) };
    for e in listed {
        let parts = check_path(r, &e.path)?;
        let (name, dirs) = parts.split_last().unwrap_or((&e.path, &[]));
        // The package's own copy, looked at without following anything.
        let parent = root.dir(&dirs.join("/")).map_err(|x| unsafe_entry(r, &e.path, x.to_string()))?;
        let st = match parent.as_ref().map(|d| d.stat(name)).transpose().map_err(|x| unsafe_entry(r, &e.path, x.to_string()))?.flatten() {
            Some(st) => st,
            None => continue, // rattler reports missing files itself
        };
        match st.kind {
            imgtool_rootfs::Kind::Symlink => {
                let target = parent
                    .as_ref()
                    .map(|d| d.read_link(name))
                    .transpose()
                    .map_err(|x| unsafe_entry(r, &e.path, x.to_string()))?
                    .unwrap_or_default();
                let target = String::from_utf8_lossy(&target);
                if !link_stays_inside(&parts, &target) {
                    return Err(unsafe_entry(r, &e.path, format!("a symlink to {target:?}, outside the environment")));
                }
                if e.prefix_placeholder.is_some() || e.no_link {
                    return Err(unsafe_entry(r, &e.path, "a symlink listed as a file to copy or patch"));
                }
            }
            imgtool_rootfs::Kind::File | imgtool_rootfs::Kind::Dir => {}
            other => return Err(unsafe_entry(r, &e.path, format!("a {other:?} node, not a file"))),
        }
        if e.path_type == "softlink" && st.kind != imgtool_rootfs::Kind::Symlink {
            return Err(unsafe_entry(r, &e.path, "listed as a symlink but is not one"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_must_stay_inside() {
        let p = |s: &str| s.split('/').map(str::to_string).collect::<Vec<_>>();
        assert!(link_stays_inside(&p("lib/libz.so"), "libz.so.1"));
        assert!(link_stays_inside(&p("bin/python"), "../lib/python3"));
        assert!(!link_stays_inside(&p("bin/python"), "../../usr/bin/python"));
        assert!(!link_stays_inside(&p("share/evil"), "/etc"));
        assert!(!link_stays_inside(&p("x"), ".."));
    }
}
