//! Every package checked before it is linked: a channel is someone else's input, and
//! linking happens on the host, so nothing a package names may lead outside the staging
//! prefix. Paths must be relative without `..`, symlinks must stay inside the prefix,
//! files the linker reads (placeholders, `no_link`) must be regular files, nothing may be
//! shipped under `conda-meta/`, and the record's URL must lie inside its channel.

use std::collections::HashMap;
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
    // Encoded separators and dots decode into `../` when a file:// URL becomes a path.
    let lower = r.url.path().to_ascii_lowercase();
    if ["%2f", "%5c", "%00", "%2e"].iter().any(|e| lower.contains(e)) {
        return Err(unsafe_entry(r, "url", format!("{} holds an encoded separator or dot", r.url)));
    }
    if r.url.path_segments().is_some_and(|mut s| s.any(|c| c == ".." || c == ".")) {
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

/// Where `parts` leads in the prefix once the symlinks of every package in the
/// transaction are followed (as the linker will, on the host); `None` when it climbs out
/// of the prefix, is absolute, or loops.
fn resolve(links: &HashMap<String, String>, parts: &[String]) -> Option<Vec<String>> {
    let mut todo: Vec<String> = parts.iter().rev().cloned().collect();
    let mut at: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "" | "." => {}
            ".." => {
                at.pop()?;
            }
            _ => {
                at.push(c);
                if let Some(target) = links.get(&at.join("/")) {
                    hops += 1;
                    if hops > 40 || target.starts_with('/') || target.is_empty() {
                        return None;
                    }
                    at.pop();
                    todo.extend(target.split('/').rev().map(str::to_string));
                }
            }
        }
    }
    Some(at)
}

/// What one package will link: its paths, and its symlinks with their targets.
pub(crate) struct Checked {
    package: String,
    paths: Vec<Vec<String>>,
    links: Vec<(Vec<String>, String)>,
}

/// Check the extracted package at `dir` (in the package cache) before it is linked: its
/// listing is a regular file in a real `info/` directory, and every path it lists is
/// there, reached through real directories only (the linker reads them on the host).
pub(crate) fn check_package(r: &RepoDataRecord, dir: &Path) -> Result<Checked> {
    let fail = |entry: &str, e: imgtool_rootfs::Error| unsafe_entry(r, entry, e.to_string());
    let root = imgtool_rootfs::Root::open(dir).map_err(|e| fail(&dir.display().to_string(), e))?;
    let top = root.top().map_err(|e| fail("/", e))?;
    let info = top.open_dir("info").map_err(|e| fail("info", e))?.ok_or_else(|| unsafe_entry(r, "info", "not a directory"))?;
    let read = |name: &str| -> Result<Option<Vec<u8>>> {
        use std::io::Read;
        match info.open_file(name).map_err(|e| fail(name, e))? {
            Some(f) => {
                let mut buf = Vec::new();
                f.take(PATHS_JSON_LIMIT + 1).read_to_end(&mut buf).map_err(|e| unsafe_entry(r, name, e.to_string()))?;
                if buf.len() as u64 > PATHS_JSON_LIMIT {
                    return Err(unsafe_entry(r, name, "too large"));
                }
                Ok(Some(buf))
            }
            None if info.stat(name).map_err(|e| fail(name, e))?.is_some() => {
                Err(unsafe_entry(r, &format!("info/{name}"), "not a regular file"))
            }
            None => Ok(None),
        }
    };
    let listed = match read("paths.json")? {
        Some(bytes) => serde_json::from_slice::<PathsJson>(&bytes).map_err(|e| unsafe_entry(r, "info/paths.json", e.to_string()))?.paths,
        // Old packages list their files in `info/files` (and placeholders in
        // `info/has_prefix`, the path last on each line); rattler links from those.
        None => legacy_entries(&read("files")?.unwrap_or_default(), &read("has_prefix")?.unwrap_or_default()),
    };
    let mut out = Checked { package: id(r), paths: Vec::new(), links: Vec::new() };
    for e in &listed {
        let parts = check_path(r, &e.path)?;
        let (name, dirs) = parts.split_last().unwrap_or((&e.path, &[]));
        let mut cur = top.try_clone().map_err(|x| fail(&e.path, x))?;
        for d in dirs {
            cur = cur
                .open_dir(d)
                .map_err(|x| fail(&e.path, x))?
                .ok_or_else(|| unsafe_entry(r, &e.path, format!("{d} is missing from the package or is not a real directory")))?;
        }
        let st = cur.stat(name).map_err(|x| fail(&e.path, x))?.ok_or_else(|| unsafe_entry(r, &e.path, "missing from the package"))?;
        match st.kind {
            imgtool_rootfs::Kind::Symlink => {
                if e.prefix_placeholder.is_some() || e.no_link {
                    return Err(unsafe_entry(r, &e.path, "a symlink listed as a file to copy or patch"));
                }
                let target = String::from_utf8_lossy(&cur.read_link(name).map_err(|x| fail(&e.path, x))?).into_owned();
                out.links.push((parts.clone(), target));
            }
            imgtool_rootfs::Kind::File | imgtool_rootfs::Kind::Dir => {}
            other => return Err(unsafe_entry(r, &e.path, format!("a {other:?} node, not a file"))),
        }
        if e.path_type == "softlink" && st.kind != imgtool_rootfs::Kind::Symlink {
            return Err(unsafe_entry(r, &e.path, "listed as a symlink but is not one"));
        }
        out.paths.push(parts);
    }
    Ok(out)
}

fn legacy_entries(files: &[u8], has_prefix: &[u8]) -> Vec<PathEntry> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let patched: std::collections::HashSet<String> =
        text(has_prefix).lines().filter_map(|l| l.split_whitespace().last().map(str::to_string)).collect();
    text(files)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|p| PathEntry {
            path: p.to_string(),
            path_type: String::new(),
            prefix_placeholder: patched.contains(p).then(String::new),
            no_link: false,
        })
        .collect()
}

/// The packages of one transaction together: every path is linked through real
/// directories of the prefix or through links that stay inside it, and every link leads
/// inside it, whichever package made the links on the way.
pub(crate) fn check_transaction(packages: &[Checked]) -> Result<()> {
    let links: HashMap<String, String> = packages.iter().flat_map(|p| p.links.iter().map(|(k, t)| (k.join("/"), t.clone()))).collect();
    let refuse = |p: &Checked, path: &[String], why: String| Error::Unsafe { package: p.package.clone(), entry: path.join("/"), why };
    for p in packages {
        for path in &p.paths {
            if resolve(&links, &path[..path.len() - 1]).is_none() {
                return Err(refuse(p, path, "reached through symlinks that lead outside the environment".into()));
            }
        }
        for (path, target) in &p.links {
            let mut through: Vec<String> = path[..path.len() - 1].to_vec();
            through.extend(target.split('/').map(str::to_string));
            // Absolute: staging is on the host, so the linker would follow it there.
            if target.starts_with('/') || target.is_empty() || resolve(&links, &through).is_none() {
                return Err(refuse(p, path, format!("a symlink to {target:?}, outside the environment")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_file_lists_are_read() {
        let e = legacy_entries(b"bin/x\n../../etc/passwd\n\n", b"/opt/anaconda1anaconda2anaconda3 text bin/x\n");
        let got: Vec<_> = e.iter().map(|e| (e.path.as_str(), e.prefix_placeholder.is_some())).collect();
        assert_eq!(got, [("bin/x", true), ("../../etc/passwd", false)]);
    }

    #[test]
    fn links_must_stay_inside_across_packages() {
        let p = |s: &str| s.split('/').map(str::to_string).collect::<Vec<_>>();
        let pkg = |links: &[(&str, &str)], paths: &[&str]| Checked {
            package: "p".into(),
            paths: paths.iter().map(|s| p(s)).collect(),
            links: links.iter().map(|(a, t)| (p(a), t.to_string())).collect(),
        };
        let ok = |v: Vec<Checked>| check_transaction(&v).is_ok();
        assert!(ok(vec![pkg(&[("lib/libz.so", "libz.so.1"), ("bin/python", "../lib/python3")], &["lib/libz.so.1"])]));
        assert!(!ok(vec![pkg(&[("bin/python", "../../usr/bin/python")], &[])]));
        assert!(!ok(vec![pkg(&[("share/evil", "/etc")], &[])]));
        assert!(!ok(vec![pkg(&[("x", "..")], &[])]));
        // a -> . then a/b -> .. : each fine as text, together one level above the prefix.
        assert!(!ok(vec![pkg(&[("a", ".")], &[]), pkg(&[("a/b", "..")], &[]), pkg(&[], &["b/x"])]));
        assert!(!ok(vec![pkg(&[("l", ".")], &[]), pkg(&[("m", "l/..")], &[])]));
        assert!(!ok(vec![pkg(&[("loop", "loop")], &["loop/x"])]));
        assert!(ok(vec![pkg(&[("lib64", "lib")], &["lib64/x"]), pkg(&[("y", "lib64/x")], &[])]));
    }
}
