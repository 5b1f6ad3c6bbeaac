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
pub fn dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("imgtool").join("images")
}

/// Where an image named `name` is kept.
pub fn sink(name: &Reference) -> Transport {
    Transport::Oci(dir(), Some(name.to_string()))
}

/// The names the store holds, with their manifests' digests and sizes.
fn entries() -> Result<Vec<(String, imgtool_core::Descriptor)>> {
    let dir = dir();
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

/// The store's copy of the image `s` names (a reference as crane reads it), if it has one.
pub fn find(s: &str) -> Option<Transport> {
    let name = s.parse::<Reference>().ok()?.to_string();
    entries().ok()?.iter().any(|(n, _)| *n == name).then(|| Transport::Oci(dir(), Some(name)))
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
    let held = entries()?;
    for given in names {
        let name = given.parse::<Reference>().with_context(|| format!("{given:?} is not an image name"))?.to_string();
        if !held.iter().any(|(n, _)| *n == name) {
            bail!("the image store has no {name} (imgtool images lists what it has)");
        }
        crate::layout_cmds::untag(dir(), name, p).await?;
    }
    Ok(())
}
