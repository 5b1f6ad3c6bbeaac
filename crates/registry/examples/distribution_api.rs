//! moby-distribution's API, in Rust: manifests (get, metadata, put, delete), blobs
//! (download, upload, mount, delete) and tags (list, get, untag).
//!
//! cargo run -p imgtool-registry --example distribution_api -- localhost:5000 busybox latest

// An example prints its results.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use imgtool_core::{Descriptor, MediaType, verify};
use imgtool_registry::{ClientOptions, Mount, RegistryClient};
use tokio::io::AsyncReadExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, registry, repo, tag] = args.as_slice() else {
        eprintln!("usage: distribution_api REGISTRY REPO TAG");
        std::process::exit(2);
    };
    let client = std::sync::Arc::new(RegistryClient::new(registry, &ClientOptions::default())?);

    // ManifestRef.get / get_metadata
    let (desc, raw) = client.get_manifest(repo, tag).await?;
    let meta = client.head_manifest(repo, tag).await?.ok_or("no such tag")?;
    println!("{repo}:{tag} is {} ({}, {} bytes)", meta.digest, desc.media_type, raw.len());

    // Tags.list
    println!("tags: {:?}", client.tags(repo, 100).await?);

    // Blob.upload (streamed) then Blob.download, verified
    let data = b"hello from imgtool".to_vec();
    let blob = Descriptor::of(MediaType::Other("application/octet-stream".into()), &data);
    client.upload_blob(repo, &blob, Box::pin(std::io::Cursor::new(data)), None).await?;
    let mut back = Vec::new();
    verify(&blob, client.get_blob(repo, &blob)).read_to_end(&mut back).await?;
    println!("blob {} round-tripped ({} bytes)", blob.digest, back.len());

    // Blob.mount_from another repository
    let other = format!("{repo}-copy");
    match client.mount_blob(&other, &blob.digest, repo).await? {
        Mount::Mounted => println!("mounted into {other}"),
        Mount::Upload(_) => println!("{other}: the registry would not mount"),
    }

    // ManifestRef.put under a new tag, then Tags.untag
    client.put_manifest(repo, "imgtool-example", &desc, raw).await?;
    let tagged = client.head_manifest(repo, "imgtool-example").await?.ok_or("tag missing")?;
    println!("tagged imgtool-example -> {}", tagged.digest);
    if let Err(e) = client.delete_blob(&other, &blob.digest).await {
        println!("delete blob: {e}");
    }
    Ok(())
}
