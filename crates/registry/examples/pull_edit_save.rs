//! The seeds' first example: pull lazily, drop the top layer, add a folder and two files,
//! set FOO=BAR, and write a `docker save` tarball. Only the layers the tarball needs are
//! downloaded, when it is written.
//!
//! cargo run -p imgtool-registry --example pull_edit_save -- localhost:5000/busybox:latest ./ out.tar

// An example prints its results.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;

use imgtool_archive::{ContentsLayer, LayoutSink, PathLayer};
use imgtool_core::{Compression, ConfigEdit, CopyOptions, Image, ImageSink, LayerProducer, copy_image, source_date_epoch};
use imgtool_registry::{ClientOptions, Registries};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, image, folder, out] = args.as_slice() else {
        eprintln!("usage: pull_edit_save IMAGE FOLDER OUT.tar");
        std::process::exit(2);
    };
    let registries = Registries::new(ClientOptions::default());
    let source = Arc::new(registries.source(&image.parse()?)?);
    let mut image = Image::load(source, None, None).await?; // manifest + config only
    image.remove_top_layers(1)?;

    let spool = tempfile::tempdir()?;
    let producers: Vec<Box<dyn LayerProducer>> = vec![
        Box::new(PathLayer::new(folder, "/app")),
        Box::new(ContentsLayer::new([("/this/is/a/test1", "this is test 1"), ("/this/is/a/test2", "this is test 2")])),
    ];
    for p in producers {
        image = image.add_layers(p.as_ref(), spool.path(), source_date_epoch(), Compression::Gzip).await?;
    }
    image.config_mut().apply(&ConfigEdit { env: vec!["FOO=BAR".into()], ..Default::default() })?;

    let sink: Box<dyn ImageSink> = Box::new(LayoutSink::docker_archive(out.as_ref())?);
    let desc = copy_image(&image, sink.as_ref(), &CopyOptions { tags: vec!["this-is-a-test:latest".into()], ..Default::default() }).await?;
    sink.finish().await?;
    println!("wrote {out} ({})", desc.digest);
    Ok(())
}
