//! `imgtool blob`: one blob, streamed and verified, to standard output or a file.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use imgtool_core::{BlobStream, Descriptor, Digest, Flavor, MediaType, Reference, verify};
use imgtool_registry::Registries;

use crate::args::BlobArgs;
use crate::printer::Printer;
use crate::transport::Transport;

/// The registries the command line names.
pub fn names(args: &BlobArgs) -> Vec<String> {
    match &args.digest {
        Some(_) => Transport::source_arg(&args.image).ok().map(|t| crate::commands::names(&t)).unwrap_or_default(),
        None => crate::creds::registry_of_ref(&args.image).into_iter().collect(),
    }
}

pub async fn blob(args: BlobArgs, p: Printer, reg: &Registries) -> Result<()> {
    let stream = match &args.digest {
        Some(d) => {
            in_image(&args.image, d.parse().with_context(|| format!("{d:?} is not a digest"))?, args.platform.as_deref(), reg).await?
        }
        None => by_reference(&args.image, reg).await?,
    };
    match args.output.as_deref().filter(|o| *o != Path::new("-")) {
        None => p.bytes(stream).await.map(drop).context("writing the blob to standard output"),
        Some(out) => to_file(stream, out).await.with_context(|| format!("writing {}", out.display())),
    }
}

/// crane's form, `REPO@DIGEST`: any blob of a registry repository.
async fn by_reference(image: &str, reg: &Registries) -> Result<BlobStream> {
    let r: Reference = crate::transport::strip_docker(image).parse().with_context(|| format!("{image:?} is not REPO@DIGEST"))?;
    let Some(digest) = r.digest().cloned() else {
        bail!("{image}: name the blob, REPO@sha256:HEX (crane's form), or IMAGE DIGEST for a blob of an image on any transport");
    };
    let client = reg.client(r.registry())?;
    let size = client
        .head_blob(r.repository(), &digest)
        .await
        .with_context(|| format!("looking up {digest} in {}", r.name()))?
        .ok_or_else(|| anyhow!("{} has no blob {digest}", r.name()))?;
    if size == 0 && digest != imgtool_core::Digest::sha256_of(b"") {
        // A redirect or no Content-Length: without a size the bytes cannot be checked whole.
        bail!(
            "{} did not say the size of {digest} (its HEAD answer redirects or has no Content-Length); name an image that has it instead, `imgtool blob IMAGE {digest}`, where the manifest gives the size",
            r.registry()
        );
    }
    let desc = Descriptor::new(MediaType::from("application/octet-stream"), digest, size);
    Ok(verify(&desc, client.get_blob(r.repository(), &desc)))
}

/// A blob of an image (its config, a layer or the manifest), on any transport.
async fn in_image(image: &str, digest: Digest, platform: Option<&str>, reg: &Registries) -> Result<BlobStream> {
    let t = Transport::source_arg(image)?;
    let img = crate::commands::load(&t, platform, Flavor::Oci, reg).await?;
    if let Some(l) = img.layers().iter().find(|l| l.descriptor.digest == digest) {
        let stream = l.source.open(&l.descriptor).await.with_context(|| format!("reading {digest} from {t}"))?;
        return Ok(verify(&l.descriptor, stream));
    }
    for (desc, raw) in [img.config_blob(), img.manifest()] {
        if desc.digest == digest {
            return Ok(Box::pin(std::io::Cursor::new(raw)));
        }
    }
    bail!("{t} has no blob {digest}: its config, layers and manifest are other blobs (imgtool inspect {image} lists them)")
}

/// Write `stream` to `out` whole, or not at all. A device or pipe named there (`/dev/null`,
/// a FIFO) is written into, as the user asked, never replaced by a file.
async fn to_file(mut stream: BlobStream, out: &Path) -> Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(out)
        && !meta.is_file()
        && !meta.is_symlink()
    {
        if meta.is_dir() {
            bail!("{} is a directory; name a file", out.display());
        }
        let mut file = tokio::fs::OpenOptions::new().write(true).open(out).await?;
        tokio::io::copy(&mut stream, &mut file).await?;
        return Ok(());
    }
    let (tmp, _tracked) = imgtool_core::temp_file_beside(out)?;
    let mut file = tokio::fs::File::from_std(tmp.reopen()?);
    tokio::io::copy(&mut stream, &mut file).await?;
    file.sync_all().await?;
    imgtool_core::publish_file(tmp, out)?;
    Ok(())
}
