//! Applying layers to a directory, with OCI whiteouts, never writing outside it (the
//! per-entry work is in `apply.rs`).

use std::io::{self, Read};
use std::path::Path;

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
    /// The tar is a package (a conda package's), not an image layer: `.wh.` names are files
    /// like any other, and setuid, setgid and sticky bits are dropped, as conda's own
    /// unpackers do.
    pub package: bool,
}

/// Apply one uncompressed layer tar to `root`. `place` names the layer in errors.
///
/// Every path goes through the rooted path layer ([`imgtool_rootfs`]): nothing outside
/// `root` is read, written or has its metadata changed, whatever the tar holds.
pub fn apply_layer(root: &Path, tar: impl Read, opts: ExtractOptions, place: &str) -> Result<(), Error> {
    let root = imgtool_rootfs::Root::open(root).map_err(|source| Error::Extract { place: place.into(), source })?;
    apply_layer_in(&root, tar, opts, place)
}

/// [`apply_layer`] on a root already open.
pub fn apply_layer_in(root: &imgtool_rootfs::Root, tar: impl Read, opts: ExtractOptions, place: &str) -> Result<(), Error> {
    crate::apply::Applier::new(root, opts, place).apply(tar)
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
    extract_image(image, scratch.path(), ExtractOptions { devices, same_owner: root_user, xattrs: root_user, package: false }).await?;
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
