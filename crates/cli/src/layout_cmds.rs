//! Commands on OCI layout directories: `gc`, and `delete oci:DIR:TAG`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::printer::Printer;
use crate::transport::Transport;

/// `imgtool gc LAYOUT [--dry-run]`.
pub async fn gc(layout: PathBuf, dry_run: bool, p: Printer) -> Result<()> {
    let shown = layout.display().to_string();
    let report = tokio::task::spawn_blocking(move || imgtool_archive::gc(&layout, dry_run))
        .await
        .context("the collector stopped")?
        .with_context(|| format!("collecting garbage in {shown}"))?;
    let verb = if dry_run { "would remove" } else { "removed" };
    for (path, size) in &report.removed {
        p.record(serde_json::json!({"path": path, "size": size, "removed": !dry_run}), format!("{verb} {} ({size} bytes)", path.display()));
    }
    p.status(format!("{shown}: {verb} {} files, {} bytes", report.removed.len(), report.freed()));
    Ok(())
}

/// `imgtool delete oci:DIR:TAG`: untag, then free the blobs nothing reaches any more (as
/// `skopeo delete oci:` does), waiting for the layout's other imgtool writers.
pub async fn delete(image: &str, p: Printer) -> Result<()> {
    let Transport::Oci(layout, tag) = Transport::source_arg(image)? else {
        bail!("{image}: delete works on registries (REF) and OCI layouts (oci:DIR:TAG); write a new archive with `imgtool copy` instead");
    };
    let Some(tag) = tag else { bail!("{image}: name the tag to delete, as oci:{}:TAG", layout.display()) };
    untag(layout, tag, p).await
}

/// Remove `tag` from `layout`, then free the blobs nothing reaches any more.
pub async fn untag(layout: PathBuf, tag: String, p: Printer) -> Result<()> {
    let image = format!("oci:{}:{tag}", layout.display());
    let (l, t) = (layout.clone(), tag.clone());
    let (untagged, report) = tokio::task::spawn_blocking(move || {
        let untagged = imgtool_archive::remove_tag(&l, &t)?;
        Ok::<_, imgtool_archive::Error>((untagged, imgtool_archive::gc(&l, false)?))
    })
    .await
    .context("the delete stopped")??;
    for d in &untagged {
        p.record(serde_json::json!({"deleted": image, "digest": d.to_string(), "freed": report.freed()}), format!("deleted {image} {d}"));
    }
    p.status(format!("{}: freed {} files, {} bytes", layout.display(), report.removed.len(), report.freed()));
    Ok(())
}
