//! `imgtool export`: flatten an image into a directory or a tar.

use std::path::Path;

use anyhow::{Context, Result, bail};
use imgtool_archive::{Devices, ExtractOptions, LayerOptions, extract_image, flatten};
use imgtool_core::{Compression, Image, source_date_epoch};

use crate::printer::Printer;

/// What a destination's name says it is: a tar (and its compression), or a directory.
fn archive_kind(dest: &Path) -> Result<Option<Compression>> {
    let name = dest.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if let Some(c) = crate::transport::tar_compression(&name) {
        return Ok(Some(c));
    }
    if [".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".zip", ".7z", ".gz", ".zst"].iter().any(|e| name.ends_with(e)) {
        bail!("{} is named like an archive imgtool does not write; name a .tar, .tar.gz or .tar.zst file, or a directory", dest.display());
    }
    Ok(None)
}

pub async fn export(image: &Image, dest: &Path, p: Printer) -> Result<()> {
    if dest == Path::new("-") {
        // A tar on standard output, for `| tar x` or `| docker import -`.
        let spool = imgtool_core::spool().context("creating a spool directory")?;
        let opts = LayerOptions { compression: Compression::None, ..Default::default() };
        let layer = flatten(image, spool.path(), opts, source_date_epoch()).await?;
        let file = tokio::fs::File::open(&layer.file).await.context("reading the flattened tree")?;
        p.bytes(Box::pin(file)).await.context("writing the tar to standard output")?;
        return Ok(());
    }
    if let Some(compression) = archive_kind(dest)? {
        // Spooled beside the destination, so the finished tar is renamed onto it.
        let spool = imgtool_core::temp_dir_beside(dest).with_context(|| format!("creating a directory beside {}", dest.display()))?;
        let opts = LayerOptions { compression, ..Default::default() };
        let layer = flatten(image, spool.path(), opts, source_date_epoch()).await?;
        std::fs::set_permissions(&layer.file, imgtool_core::output_mode(0o666)).with_context(|| format!("writing {}", dest.display()))?;
        imgtool_core::publish(|| layer.file.persist(dest).map_err(|e| e.error)).with_context(|| format!("writing {}", dest.display()))?;
    } else {
        if dest.exists() && std::fs::read_dir(dest)?.next().is_some() {
            bail!("{} exists and is not empty; export into a new or empty directory", dest.display());
        }
        // Into a new directory beside the destination, renamed into place when every layer
        // is applied and verified: a bad layer leaves nothing half-extracted behind.
        let scratch = imgtool_core::temp_dir_beside(dest).with_context(|| format!("creating a directory beside {}", dest.display()))?;
        let root = running_as_root();
        extract_image(
            image,
            scratch.path(),
            ExtractOptions { devices: if root { Devices::Create } else { Devices::Skip }, same_owner: root, xattrs: root, package: false },
        )
        .await?;
        if dest.exists() {
            std::fs::remove_dir(dest).with_context(|| format!("replacing the empty directory {}", dest.display()))?;
        }
        // On a failure the tree stays where it is, and goes with `scratch`.
        scratch.publish_to(dest).with_context(|| format!("moving the exported tree to {}", dest.display()))?;
        let _ = scratch.keep();
    }
    p.record(
        serde_json::json!({"destination": dest.display().to_string(), "layers": image.layers().len()}),
        format!("exported {} layers to {}", image.layers().len(), dest.display()),
    );
    Ok(())
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}
