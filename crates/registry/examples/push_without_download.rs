//! Push an edited image to another repository of the same registry without downloading
//! its base layers: they are mounted; only the new layer and config are uploaded.
//!
//! cargo run -p imgtool-registry --example push_without_download -- localhost:5000/busybox:latest localhost:5000/mine:v1

// An example prints its results.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use imgtool_archive::ContentsLayer;
use imgtool_core::{Compression, CopyOptions, Image, ImageSink, copy_image};
use imgtool_registry::{ClientOptions, Registries};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, from, to] = args.as_slice() else {
        eprintln!("usage: push_without_download FROM TO");
        std::process::exit(2);
    };
    let (from, to): (imgtool_core::Reference, imgtool_core::Reference) = (from.parse()?, to.parse()?);
    let registries = Registries::new(ClientOptions::default());
    let mut image = Image::load(Arc::new(registries.source(&from)?), None, None).await?;

    let spool = tempfile::tempdir()?;
    image =
        image.add_layers(&ContentsLayer::new([("/etc/motd", "pushed without downloading\n")]), spool.path(), 0, Compression::Gzip).await?;

    let sink: Box<dyn ImageSink> = Box::new(registries.sink(&to)?);
    let tags = to.tag().map(|t| vec![t.to_string()]).unwrap_or_default();
    let desc = copy_image(&image, sink.as_ref(), &CopyOptions { tags, ..Default::default() }).await?;
    sink.finish().await?;
    let stats = &registries.client(to.registry())?.stats;
    println!(
        "pushed {to} ({}): {} blobs uploaded, {} mounted, {} blob downloads",
        desc.digest,
        stats.uploads.load(Ordering::Relaxed),
        stats.mounts.load(Ordering::Relaxed),
        stats.blob_gets.load(Ordering::Relaxed)
    );
    Ok(())
}
