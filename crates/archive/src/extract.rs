//! Applying layers to a directory, with OCI whiteouts, never writing outside it.
//!
//! Every path is resolved component by component from the root: `..` stops at the root,
//! symlinks met on the way are followed *inside* the root (as a container would see them),
//! and the last component is never followed. Hostile tarballs are refused or contained.

use std::collections::HashSet;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::Error;
use crate::error::io as ioe;

/// What to do with character and block device nodes in a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Devices {
    /// Leave them out, with a warning (the default: only root can make them, and a
    /// device node in an exported tree is rarely wanted).
    #[default]
    Skip,
    /// Fail the extraction.
    Refuse,
    /// Create them (needs root).
    Create,
}

impl std::str::FromStr for Devices {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "skip" => Ok(Devices::Skip),
            "refuse" => Ok(Devices::Refuse),
            "create" => Ok(Devices::Create),
            _ => Err(format!("invalid device handling {s:?}: expected skip, refuse or create")),
        }
    }
}

/// How layers are applied.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// Device nodes.
    pub devices: Devices,
    /// Set owners from the tar (needs root; otherwise files belong to the caller).
    pub same_owner: bool,
    /// Restore extended attributes from PAX `SCHILY.xattr.*` records.
    pub xattrs: bool,
}

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// The entry's path as components, leading `/` and `./` dropped; `..` is refused.
fn components(raw: &[u8], place: &str) -> Result<Vec<String>, Error> {
    let s = String::from_utf8_lossy(raw);
    let mut out = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(Error::UnsafePath { path: s.into_owned(), place: place.into(), why: "'..' in a tar entry path".into() }),
            c => out.push(c.to_string()),
        }
    }
    Ok(out)
}

/// Resolve `parts` under `root` the way the container would, following symlinks inside the
/// root and clamping `..` there; with `create`, missing directories are made. The result
/// contains no symlink and is inside `root`.
fn resolve_dir(root: &Path, parts: &[String], create: bool, place: &str) -> Result<PathBuf, Error> {
    let mut todo: Vec<String> = parts.iter().rev().cloned().collect();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        let here: PathBuf = root.join(cur.iter().collect::<PathBuf>()).join(&c);
        match std::fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err(Error::UnsafePath {
                        path: parts.join("/"),
                        place: place.into(),
                        why: "too many levels of symbolic links".into(),
                    });
                }
                let target = std::fs::read_link(&here).map_err(ioe(format!("reading link {}", here.display())))?;
                if target.is_absolute() {
                    cur.clear();
                }
                let comps: Vec<String> = target
                    .components()
                    .filter_map(|k| match k {
                        Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                        Component::ParentDir => Some("..".into()),
                        _ => None,
                    })
                    .collect();
                todo.extend(comps.into_iter().rev());
            }
            Ok(m) if m.is_dir() => cur.push(c),
            Ok(_) => {
                return Err(Error::UnsafePath { path: parts.join("/"), place: place.into(), why: format!("{c} is not a directory") });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                std::fs::create_dir(&here).map_err(ioe(format!("creating {}", here.display())))?;
                cur.push(c);
            }
            Err(e) => return Err(ioe(format!("reading {}", here.display()))(e)),
        }
    }
    Ok(root.join(cur.iter().collect::<PathBuf>()))
}

fn remove_any(p: &Path) -> Result<(), Error> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).map_err(ioe(format!("removing {}", p.display()))),
        Ok(_) => std::fs::remove_file(p).map_err(ioe(format!("removing {}", p.display()))),
        Err(_) => Ok(()),
    }
}

/// Apply one uncompressed layer tar to `root`. `place` names the layer in errors.
pub fn apply_layer(root: &Path, tar: impl Read, opts: ExtractOptions, place: &str) -> Result<(), Error> {
    let mut ar = tar::Archive::new(tar);
    let mut created: HashSet<PathBuf> = HashSet::new();
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
    let bad = |e: io::Error| Error::Format { place: place.into(), why: format!("not a readable layer tar: {e}") };
    for entry in ar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path_bytes().into_owned();
        let parts = components(&raw, place)?;
        let Some((name, dirs)) = parts.split_last() else { continue };
        let parent = resolve_dir(root, dirs, true, place)?;
        if name == OPAQUE {
            for child in std::fs::read_dir(&parent).map_err(ioe(format!("reading {}", parent.display())))? {
                let child = child.map_err(ioe(format!("reading {}", parent.display())))?.path();
                if !created.contains(&child) {
                    remove_any(&child)?;
                }
            }
            continue;
        }
        if let Some(victim) = name.strip_prefix(WHITEOUT) {
            if victim.is_empty() || victim == "." || victim == ".." || victim.contains('/') {
                return Err(Error::UnsafePath {
                    path: String::from_utf8_lossy(&raw).into(),
                    place: place.into(),
                    why: "a whiteout must name an entry".into(),
                });
            }
            remove_any(&parent.join(victim))?;
            continue;
        }
        let dest = parent.join(name);
        let mut xattrs = Vec::new();
        if opts.xattrs
            && let Ok(Some(exts)) = entry.pax_extensions()
        {
            for ext in exts.flatten() {
                if let Some(name) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                    xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
        let h = entry.header().clone();
        let ty = h.entry_type();
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        match ty {
            tar::EntryType::Directory => {
                if !std::fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) {
                    remove_any(&dest)?;
                    std::fs::create_dir(&dest).map_err(ioe(format!("creating {}", dest.display())))?;
                }
                dir_modes.push((dest.clone(), mode));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_any(&dest)?;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true) // never follows a symlink planted at dest
                    .open(&dest)
                    .map_err(ioe(format!("creating {}", dest.display())))?;
                io::copy(&mut entry, &mut f).map_err(ioe(format!("writing {}", dest.display())))?;
                std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode)).map_err(ioe(format!("chmod {}", dest.display())))?;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().map(|l| String::from_utf8_lossy(&l).into_owned()).unwrap_or_default();
                remove_any(&dest)?;
                std::os::unix::fs::symlink(&target, &dest).map_err(ioe(format!("creating link {}", dest.display())))?;
            }
            tar::EntryType::Link => {
                let target = entry.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default();
                let tparts = components(&target, place)?;
                let Some((tname, tdirs)) = tparts.split_last() else {
                    return Err(Error::UnsafePath {
                        path: String::from_utf8_lossy(&raw).into(),
                        place: place.into(),
                        why: "a hard link with no target".into(),
                    });
                };
                let tparent = resolve_dir(root, tdirs, false, place)?;
                let source = tparent.join(tname);
                let meta = std::fs::symlink_metadata(&source).map_err(|_| Error::UnsafePath {
                    path: String::from_utf8_lossy(&raw).into(),
                    place: place.into(),
                    why: format!("hard link target {} is not in the image", String::from_utf8_lossy(&target)),
                })?;
                if meta.is_dir() {
                    return Err(Error::UnsafePath {
                        path: String::from_utf8_lossy(&raw).into(),
                        place: place.into(),
                        why: "a hard link to a directory".into(),
                    });
                }
                remove_any(&dest)?;
                std::fs::hard_link(&source, &dest).map_err(ioe(format!("linking {}", dest.display())))?;
            }
            tar::EntryType::Fifo => {
                remove_any(&dest)?;
                rustix::fs::mknodat(rustix::fs::CWD, &dest, rustix::fs::FileType::Fifo, rustix::fs::Mode::from_raw_mode(mode), 0)
                    .map_err(|e| ioe(format!("creating FIFO {}", dest.display()))(e.into()))?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                let what = String::from_utf8_lossy(&raw).into_owned();
                match opts.devices {
                    Devices::Refuse => {
                        return Err(Error::UnsafePath { path: what, place: place.into(), why: "device nodes are not allowed here".into() });
                    }
                    Devices::Skip => {
                        tracing::warn!(path = %what, "skipping a device node");
                        continue;
                    }
                    Devices::Create => {
                        let kind = if ty == tar::EntryType::Char {
                            rustix::fs::FileType::CharacterDevice
                        } else {
                            rustix::fs::FileType::BlockDevice
                        };
                        let major = h.device_major().ok().flatten().unwrap_or(0);
                        let minor = h.device_minor().ok().flatten().unwrap_or(0);
                        remove_any(&dest)?;
                        rustix::fs::mknodat(
                            rustix::fs::CWD,
                            &dest,
                            kind,
                            rustix::fs::Mode::from_raw_mode(mode),
                            rustix::fs::makedev(major, minor),
                        )
                        .map_err(|e| ioe(format!("creating device {} (this needs root)", dest.display()))(e.into()))?;
                    }
                }
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName | tar::EntryType::GNULongLink => continue,
            other => {
                tracing::warn!(path = %String::from_utf8_lossy(&raw), "skipping a tar entry of type {other:?}");
                continue;
            }
        }
        for (name, value) in &xattrs {
            if let Err(e) = xattr::set(&dest, name, value) {
                tracing::warn!(path = %dest.display(), xattr = %name, "cannot set extended attribute: {e}");
            }
        }
        if opts.same_owner
            && let (Ok(u), Ok(g)) = (h.uid(), h.gid())
        {
            std::os::unix::fs::lchown(&dest, Some(u as u32), Some(g as u32)).map_err(ioe(format!("chown {}", dest.display())))?;
        }
        if let Ok(mtime) = h.mtime() {
            let t = filetime::FileTime::from_unix_time(mtime as i64, 0);
            let _ = filetime::set_symlink_file_times(&dest, t, t);
        }
        created.insert(dest);
    }
    // Directory modes last, so a read-only directory can still be filled first.
    for (d, mode) in dir_modes.into_iter().rev() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).map_err(ioe(format!("chmod {}", d.display())))?;
    }
    Ok(())
}

/// Apply every layer of `image`, base first, into `root` (created if missing).
pub async fn extract_image(image: &imgtool_core::Image, root: &Path, opts: ExtractOptions) -> Result<(), Error> {
    apply_layers(image.layers(), root, opts).await
}

/// Apply `layers` in order onto `root` (created if missing), each read once and verified.
pub async fn apply_layers(layers: &[imgtool_core::Layer], root: &Path, opts: ExtractOptions) -> Result<(), Error> {
    std::fs::create_dir_all(root).map_err(ioe(format!("creating {}", root.display())))?;
    for (i, layer) in layers.iter().enumerate() {
        let compression = layer.descriptor.media_type.layer_compression().unwrap_or_default();
        let stream = imgtool_core::verify(&layer.descriptor, layer.source.open(&layer.descriptor).await?);
        let root = root.to_path_buf();
        let place = format!("layer {i} ({})", layer.descriptor.digest);
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || -> Result<(), Error> {
            let _g = handle.enter();
            let mut sync = tokio_util::io::SyncIoBridge::new(stream);
            {
                let r = imgtool_core::decompress(compression, &mut sync).map_err(ioe(format!("reading {place}")))?;
                apply_layer(&root, r, opts, &place)?;
            }
            // Reading to the end is what checks the layer's digest.
            io::copy(&mut sync, &mut io::sink()).map_err(|e| Error::Core(imgtool_core::Error::io(format!("reading {place}"), e)))?;
            Ok(())
        })
        .await
        .map_err(|e| Error::Format { place: "extraction".into(), why: e.to_string() })??;
    }
    Ok(())
}

/// Flatten `image` into one layer: apply every layer into a scratch directory under
/// `spool_dir`, then write that tree back as a single reproducible layer (owners kept
/// when running as root).
pub async fn flatten(
    image: &imgtool_core::Image,
    spool_dir: &Path,
    opts: crate::LayerOptions,
    epoch: i64,
) -> Result<crate::SpooledLayer, Error> {
    let root_user = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
    let scratch = tempfile::Builder::new()
        .prefix("rootfs-")
        .tempdir_in(spool_dir)
        .map_err(ioe(format!("creating a directory in {}", spool_dir.display())))?;
    // As root the tree can hold everything a layer can: owners, device nodes, xattrs.
    let devices = if root_user { Devices::Create } else { Devices::Skip };
    extract_image(image, scratch.path(), ExtractOptions { devices, same_owner: root_user, xattrs: root_user }).await?;
    let dir = spool_dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut layer = crate::PathLayer::new(scratch.path(), "/");
        layer.xattrs = root_user;
        layer.owner = if root_user { crate::Owner::Preserve } else { crate::Owner::Root };
        let entries = layer.entries(epoch.max(0) as u64)?;
        crate::write_layer(entries, &dir, opts)
    })
    .await
    .map_err(|e| Error::Format { place: "flatten".into(), why: e.to_string() })?
}
