//! The local image store, as podman's and buildah's: one OCI layout under the user's data
//! directory, written by the layout writer (locks, atomic index), each image under its full
//! name (`docker.io/library/app:1`). `build -t NAME` and `pull` keep images here; a bare
//! name that the store holds is found here before any registry is asked.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use imgtool_core::Reference;

use crate::printer::Printer;
use crate::transport::Transport;

/// The store's layout: `$XDG_DATA_HOME/imgtool/images`, else `~/.local/share/imgtool/images`.
/// Only absolute bases count (as the XDG rules say): a relative one would make a directory
/// planted where imgtool runs the store; without either there is none.
pub fn dir() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    let base = std::env::var_os("XDG_DATA_HOME")
        .and_then(absolute)
        .or_else(|| std::env::var_os("HOME").and_then(absolute).map(|h| h.join(".local/share")))?;
    Some(base.join("imgtool").join("images"))
}

fn need_dir() -> Result<PathBuf> {
    dir().ok_or_else(|| {
        anyhow::anyhow!("the local image store needs an absolute HOME or XDG_DATA_HOME; or name where the image goes with -o")
    })
}

/// The name an image is kept under: the full reference when it names its registry, else
/// `localhost/NAME` as podman keeps what it builds (so `app:1` never stands for Docker
/// Hub's `app`).
pub fn name_for(given: &str) -> Result<Reference> {
    let qualified = if crate::transport::names_a_registry(given) { given.to_string() } else { format!("localhost/{given}") };
    qualified.parse::<Reference>().with_context(|| format!("{given:?} is not an image name"))
}

/// Where an image named `given` (as written) is kept.
pub fn sink(given: &str) -> Result<Transport> {
    Ok(Transport::Oci(need_dir()?, Some(name_for(given)?.to_string())))
}

/// The names the store holds, with their manifests' digests and sizes.
fn entries() -> Result<Vec<(String, imgtool_core::Descriptor)>> {
    let Some(dir) = dir() else { return Ok(Vec::new()) };
    if !dir.join("index.json").is_file() {
        return Ok(Vec::new());
    }
    let layout = imgtool_archive::OciLayoutSource::open_dir(&dir).with_context(|| format!("opening the image store {}", dir.display()))?;
    Ok(layout
        .index()
        .manifests
        .iter()
        .filter_map(|d| d.annotations.get(imgtool_archive::REF_NAME).map(|n| (n.clone(), d.clone())))
        .collect())
}

/// The store's copy of the image `s` names, if it has one: `localhost/NAME` first for a
/// name without a registry, then the name as crane reads it. A name pinned to a digest is
/// only ever the registry's.
pub fn find(s: &str) -> Option<Transport> {
    let r = s.parse::<Reference>().ok()?;
    if r.digest().is_some() {
        return None;
    }
    let held = entries().ok()?;
    let local = name_for(s).ok().map(|n| n.to_string());
    [local, Some(r.to_string())]
        .into_iter()
        .flatten()
        .find(|name| held.iter().any(|(n, _)| n == name))
        .and_then(|name| Some(Transport::Oci(dir()?, Some(name))))
}

/// The name the store holds for `t`, when `t` is the store's.
pub fn held_name(t: &Transport) -> Option<String> {
    match t {
        Transport::Oci(d, Some(n)) if Some(d) == dir().as_ref() => Some(n.clone()),
        _ => None,
    }
}

/// `imgtool images`: what the store holds.
pub fn list(p: Printer) -> Result<()> {
    for (name, d) in entries()? {
        p.record(
            serde_json::json!({"name": name, "digest": d.digest.to_string(), "mediaType": d.media_type.as_str()}),
            format!("{name}  {}", d.digest),
        );
    }
    Ok(())
}

/// `imgtool rmi NAME...`: untag each, then free what no name reaches.
pub async fn remove(names: &[String], p: Printer) -> Result<()> {
    for given in names {
        let Some(Transport::Oci(dir, Some(name))) = find(given) else {
            bail!("the image store has no {given} (imgtool images lists what it has)");
        };
        crate::layout_cmds::untag(dir, name, p).await?;
    }
    Ok(())
}
