use std::io;

use crate::{Error, Hasher, Image, ParsedManifest, Result, compression::decompress, verify};

/// Check that an image's parts agree: media types of one family, the config descriptor
/// matching its bytes, `rootfs.diff_ids` matching the layers, history aligned with the
/// layers, and every layer's bytes hashing to its digest, size and diff_id.
///
/// Every backend's tests run this over what they read back. All problems are reported
/// together in [`Error::InvalidImage`].
pub async fn validate(image: &Image) -> Result<()> {
    let mut problems = Vec::new();
    let (mdesc, raw) = image.manifest();
    let manifest = match ParsedManifest::parse(&raw, Some(&mdesc.media_type))? {
        ParsedManifest::Image(m) => *m,
        ParsedManifest::Index(_) => return Err(Error::InvalidImage { problems: vec!["the manifest is an index".into()] }),
    };
    if crate::Digest::sha256_of(&raw) != mdesc.digest || raw.len() as u64 != mdesc.size {
        problems.push("the manifest descriptor does not match its bytes".into());
    }
    let family = manifest.media_type.as_ref().unwrap_or(&mdesc.media_type).flavor();
    let mut types = vec![&manifest.config.media_type];
    types.extend(manifest.layers.iter().map(|l| &l.media_type));
    for t in types {
        if let (Some(f), Some(g)) = (family, t.flavor())
            && f != g
        {
            problems.push(format!("media type {t} mixes with a {f:?} manifest"));
        }
    }
    let (cdesc, craw) = image.config_blob();
    if manifest.config.digest != cdesc.digest || manifest.config.size != craw.len() as u64 {
        problems.push(format!("the manifest's config {} does not match the config bytes ({})", manifest.config.digest, cdesc.digest));
    }
    let diff_ids = image.config().diff_ids()?;
    if diff_ids.len() != image.layers().len() || manifest.layers.len() != image.layers().len() {
        problems.push(format!(
            "{} layers, {} in the manifest, {} diff_ids in the config",
            image.layers().len(),
            manifest.layers.len(),
            diff_ids.len()
        ));
    }
    let history = image.config().history()?;
    let layered = history.iter().filter(|h| !h.empty_layer).count();
    if !history.is_empty() && layered != image.layers().len() {
        problems.push(format!("history has {layered} layer entries for {} layers", image.layers().len()));
    }
    for (i, layer) in image.layers().iter().enumerate() {
        if diff_ids.get(i) != Some(&layer.diff_id) {
            problems.push(format!("layer {i}: diff_id {} is not rootfs.diff_ids[{i}]", layer.diff_id));
        }
        let Some(compression) = layer.descriptor.media_type.layer_compression() else {
            problems.push(format!("layer {i}: {} is not a layer media type", layer.descriptor.media_type));
            continue;
        };
        let stream = verify(&layer.descriptor, layer.source.open(&layer.descriptor).await?);
        let expected = layer.diff_id.clone();
        let handle = tokio::runtime::Handle::current();
        let outcome = tokio::task::spawn_blocking(move || -> io::Result<crate::Digest> {
            let _guard = handle.enter();
            let mut sync = tokio_util::io::SyncIoBridge::new(stream);
            let mut hasher = Hasher::new(expected.algorithm());
            let mut r = decompress(compression, &mut sync)?;
            io::copy(&mut r, &mut hasher)?;
            drop(r);
            // Drain what the decompressor left so the digest check sees every byte.
            io::copy(&mut sync, &mut io::sink())?;
            Ok(hasher.finish())
        })
        .await
        .map_err(|e| Error::Unsupported(format!("validation task failed: {e}")))?;
        match outcome {
            Ok(actual) if actual == layer.diff_id => {}
            Ok(actual) => problems.push(format!("layer {i}: uncompressed digest {actual} is not its diff_id {}", layer.diff_id)),
            Err(e) => problems.push(format!("layer {i} ({}): {}", layer.descriptor.digest, Error::io("reading", e))),
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(Error::InvalidImage { problems }) }
}
