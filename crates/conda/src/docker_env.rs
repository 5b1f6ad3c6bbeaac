//! The seeds' one-call API.

use std::path::Path;
use std::sync::Arc;

use imgtool_core::{CopyOptions, Image, ImageSink, Reference, copy_image, source_date_epoch};
use imgtool_registry::{ClientOptions, Registries};

use crate::{CondaLayers, CondaSpec};

/// Build a conda environment image the way docker-envs' and conda-docker's
/// `build_docker_environment(base_image, output_image, packages, output_filename)` do, with
/// no docker and no conda: pull `base_image` lazily from its registry (or use `"scratch"`),
/// install `packages` from `channels`, and write a `docker save` tarball named
/// `output_image` to `output_filename`. Returns the manifest digest.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// imgtool_conda::build_docker_environment(
///     "localhost:5000/busybox:latest",
///     "example-image:123456",
///     &["numpy", "numba", "flask"],
///     &["https://conda.anaconda.org/conda-forge"],
///     "demo.tar".as_ref(),
/// )
/// .await?;
/// # Ok(()) }
/// ```
pub async fn build_docker_environment(
    base_image: &str,
    output_image: &str,
    packages: &[&str],
    channels: &[&str],
    output_filename: &Path,
) -> Result<imgtool_core::Digest, Box<dyn std::error::Error + Send + Sync>> {
    let base = if base_image == "scratch" {
        Image::scratch(&imgtool_core::Platform::host(), imgtool_core::Flavor::Oci)
    } else {
        let registries = Registries::new(ClientOptions::default());
        let reference: Reference = base_image.parse()?;
        Image::load(Arc::new(registries.source(&reference)?), None, None).await?
    };
    let spec = CondaSpec::new(channels.iter().map(|c| c.to_string()).collect(), packages.iter().map(|p| p.to_string()).collect());
    let spool = tempfile::tempdir()?;
    let cwd = std::env::current_dir()?;
    let image = base.add_layers(&CondaLayers::new(spec, cwd), spool.path(), source_date_epoch(), imgtool_core::Compression::Gzip).await?;
    let name: Reference = output_image.parse()?;
    let sink: Box<dyn ImageSink> = Box::new(imgtool_archive::LayoutSink::docker_archive(output_filename)?);
    let desc = copy_image(&image, sink.as_ref(), &CopyOptions { tags: vec![name.familiar()], ..Default::default() }).await?;
    sink.finish().await?;
    Ok(desc.digest)
}
